-- Epistola spine: API tokens, suppressions, tracked links, raw events and their rollups.

-- Marketer API tokens, stored only as SHA-256 hashes. `scopes` is a space-separated list.
CREATE TABLE api_tokens (
  id          TEXT PRIMARY KEY,
  token_hash  TEXT NOT NULL UNIQUE,
  name        TEXT NOT NULL,
  scopes      TEXT NOT NULL,
  created_at  INTEGER NOT NULL,
  revoked_at  INTEGER
);

-- Contacts that must never be sent to again (unsubscribed, bounced, complained, imported).
CREATE TABLE suppressions (
  contact_id  TEXT PRIMARY KEY,
  reason      TEXT NOT NULL,
  campaign_id TEXT,
  created_at  INTEGER NOT NULL
);

-- The destination registered for each link index of a campaign (first one wins), for per-link stats.
CREATE TABLE campaign_links (
  campaign_id TEXT NOT NULL,
  link_index  INTEGER NOT NULL,
  url         TEXT NOT NULL,
  PRIMARY KEY (campaign_id, link_index)
) WITHOUT ROWID;

-- Raw tracked events. The primary key is the edge-generated event id: a redelivered queue message
-- hits ON CONFLICT DO NOTHING, so no trigger fires and no counter moves.
CREATE TABLE events (
  id           TEXT PRIMARY KEY,
  kind         TEXT NOT NULL,          -- open | click | unsubscribe
  campaign_id  TEXT NOT NULL,
  contact_id   TEXT NOT NULL,          -- '' for anonymous tracking
  message_id   TEXT NOT NULL,
  link_index   INTEGER NOT NULL,       -- -1 unless a click
  label        TEXT NOT NULL,          -- human | privacy_proxy | scanner | '' (unsubscribe)
  reason       TEXT NOT NULL,
  occurred_at  INTEGER NOT NULL,       -- unix seconds
  hour         INTEGER NOT NULL,       -- occurred_at / 3600
  ip_hash      TEXT,
  received_at  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX events_campaign ON events (campaign_id, occurred_at);

-- One counter per (campaign, metric, label, link, hour). Stats read only this table.
CREATE TABLE rollup_hourly (
  campaign_id TEXT NOT NULL,
  metric      TEXT NOT NULL,           -- open | click | unsubscribe | open_unique | click_unique | unsubscribe_unique
  label       TEXT NOT NULL,           -- a label, 'all' (unique across labels) or ''
  link_index  INTEGER NOT NULL,        -- -1 = not about one link
  hour        INTEGER NOT NULL,
  n           INTEGER NOT NULL,
  PRIMARY KEY (campaign_id, metric, label, link_index, hour)
) WITHOUT ROWID;

-- First time a contact did something (per label and per link, and across them): drives unique counts.
CREATE TABLE first_seen (
  campaign_id TEXT NOT NULL,
  metric      TEXT NOT NULL,
  label       TEXT NOT NULL,
  link_index  INTEGER NOT NULL,
  contact_id  TEXT NOT NULL,
  hour        INTEGER NOT NULL,
  PRIMARY KEY (campaign_id, metric, label, link_index, contact_id)
) WITHOUT ROWID;

-- Counting happens in the same transaction as the insert of a new event, so a counter can neither
-- miss an event nor count it twice, whatever the queue redelivers.
CREATE TRIGGER events_count AFTER INSERT ON events
BEGIN
  INSERT INTO rollup_hourly (campaign_id, metric, label, link_index, hour, n)
    VALUES (NEW.campaign_id, NEW.kind, NEW.label, NEW.link_index, NEW.hour, 1)
    ON CONFLICT DO UPDATE SET n = n + 1;
  INSERT INTO first_seen (campaign_id, metric, label, link_index, contact_id, hour)
    SELECT NEW.campaign_id, NEW.kind, l.label, k.link_index, NEW.contact_id, NEW.hour
    FROM (SELECT NEW.label AS label UNION SELECT 'all') AS l,
         (SELECT NEW.link_index AS link_index UNION SELECT -1) AS k
    WHERE NEW.contact_id <> ''
    ON CONFLICT DO NOTHING;
END;

CREATE TRIGGER first_seen_count AFTER INSERT ON first_seen
BEGIN
  INSERT INTO rollup_hourly (campaign_id, metric, label, link_index, hour, n)
    VALUES (NEW.campaign_id, NEW.metric || '_unique', NEW.label, NEW.link_index, NEW.hour, 1)
    ON CONFLICT DO UPDATE SET n = n + 1;
END;
