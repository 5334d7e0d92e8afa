-- The sending module: contact attributes and tags, address-level suppressions (imported lists),
-- templates, campaigns, and campaign sends with their outcome counted into the rollups.

-- Attributes segments and audience tags match on. Custom attributes stay in contacts.fields (JSON).
ALTER TABLE contacts ADD COLUMN name TEXT;
ALTER TABLE contacts ADD COLUMN gender TEXT;            -- free text as given, e.g. female | male
ALTER TABLE contacts ADD COLUMN birthday TEXT;          -- YYYY-MM-DD
ALTER TABLE contacts ADD COLUMN locale TEXT;            -- e.g. en, uk
ALTER TABLE contacts ADD COLUMN time_zone TEXT;         -- IANA name, e.g. Europe/Kyiv
ALTER TABLE contacts ADD COLUMN test_list INTEGER NOT NULL DEFAULT 0;  -- 1 = receives test sends

CREATE TABLE contact_tags (
  contact_id TEXT NOT NULL,
  tag        TEXT NOT NULL,
  PRIMARY KEY (contact_id, tag)
) WITHOUT ROWID;
CREATE INDEX contact_tags_tag ON contact_tags (tag);

-- Suppressions imported from another sender, by address hash (SHA-256 of the normalised address),
-- so a list of people who are not contacts stores no address. Checked at send time.
CREATE TABLE address_suppressions (
  address_hash TEXT PRIMARY KEY,
  reason       TEXT NOT NULL,
  source       TEXT,
  created_at   INTEGER NOT NULL
) WITHOUT ROWID;

-- Message content. Checked when saved: a template that does not compile is never stored.
CREATE TABLE templates (
  id          TEXT PRIMARY KEY,
  name        TEXT NOT NULL,
  subject     TEXT NOT NULL,
  html        TEXT NOT NULL,
  text        TEXT,
  sms         TEXT,
  audience    TEXT NOT NULL DEFAULT '{}', -- JSON object: attribute -> value the recipient must have
  created_at  INTEGER NOT NULL,
  updated_at  INTEGER NOT NULL
);

CREATE TABLE campaigns (
  id            TEXT PRIMARY KEY,
  name          TEXT NOT NULL,
  site_id       TEXT NOT NULL,            -- whose consents and sender address apply
  template_id   TEXT NOT NULL,
  purpose       TEXT NOT NULL,            -- consent purpose, e.g. newsletter
  segment       TEXT NOT NULL,            -- JSON segment rules (core::segment)
  send_window   TEXT,                     -- JSON {weekdays, hours} in the recipient's local time
  anonymous     INTEGER NOT NULL DEFAULT 0, -- 1 = opens/clicks counted without contact ids
  status        TEXT NOT NULL,            -- draft | tested | approved | scheduled | sending | done | cancelled
  audience_size INTEGER,                  -- counted at approval
  scheduled_at  INTEGER,
  cursor        TEXT NOT NULL DEFAULT '', -- fan-out: last contact id scheduled
  base_url      TEXT NOT NULL DEFAULT '',
  created_at    INTEGER NOT NULL,
  updated_at    INTEGER NOT NULL
);
CREATE INDEX campaigns_status ON campaigns (status, scheduled_at);

-- Campaign sends share the sends table (send key = campaign + contact); these columns say which
-- campaign and channel, why a message was skipped or deferred, and when a deferred one is due.
ALTER TABLE sends ADD COLUMN campaign_id TEXT;
ALTER TABLE sends ADD COLUMN channel TEXT NOT NULL DEFAULT 'email';
ALTER TABLE sends ADD COLUMN reason TEXT;
ALTER TABLE sends ADD COLUMN due_at INTEGER;
CREATE INDEX sends_contact ON sends (contact_id, updated_at);
CREATE INDEX sends_due ON sends (status, due_at);

-- Outcomes counted where stats read them, in the same transaction as the state change, once per
-- transition: sent, skipped (label = reason), deferred (label = reason), failed.
CREATE TRIGGER sends_count_insert AFTER INSERT ON sends
WHEN NEW.campaign_id IS NOT NULL AND NEW.status IN ('sent', 'skipped', 'deferred', 'failed')
BEGIN
  INSERT INTO rollup_hourly (campaign_id, metric, label, link_index, hour, n)
    VALUES (NEW.campaign_id, NEW.status, COALESCE(NEW.reason, ''), -1, NEW.updated_at / 3600, 1)
    ON CONFLICT DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER sends_count_update AFTER UPDATE OF status ON sends
WHEN NEW.campaign_id IS NOT NULL AND NEW.status <> OLD.status
  AND NEW.status IN ('sent', 'skipped', 'deferred', 'failed')
BEGIN
  INSERT INTO rollup_hourly (campaign_id, metric, label, link_index, hour, n)
    VALUES (NEW.campaign_id, NEW.status, COALESCE(NEW.reason, ''), -1, NEW.updated_at / 3600, 1)
    ON CONFLICT DO UPDATE SET n = n + 1;
END;

-- Engagement facts for segments ("no open in N days") read a contact's events.
CREATE INDEX events_contact ON events (contact_id, kind, occurred_at);
