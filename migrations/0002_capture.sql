-- Lead capture: contacts, captures, the append-only consent ledger, and rate-limit counters.
-- Site configuration lives in KV (CONFIG, key `site:{id}`), read at the edge.

CREATE TABLE contacts (
  id          TEXT PRIMARY KEY,
  email       TEXT NOT NULL UNIQUE,     -- normalised (trimmed, lower-case)
  phone       TEXT,                     -- E.164
  status      TEXT NOT NULL,            -- pending | confirmed
  fields      TEXT NOT NULL DEFAULT '{}', -- JSON object: form fields and quiz answers
  created_at  INTEGER NOT NULL,
  updated_at  INTEGER NOT NULL
);

-- One submitted form. Confirming it (double opt-in) confirms the consents given with it.
CREATE TABLE captures (
  id           TEXT PRIMARY KEY,
  contact_id   TEXT NOT NULL REFERENCES contacts (id),
  site_id      TEXT NOT NULL,
  form         TEXT NOT NULL,
  fields       TEXT NOT NULL,           -- JSON: what this submission carried
  status       TEXT NOT NULL,           -- pending_confirmation | confirmed
  ip_hash      TEXT,
  user_agent   TEXT,
  created_at   INTEGER NOT NULL,
  confirmed_at INTEGER
);
CREATE INDEX captures_contact ON captures (contact_id);

-- Proof of consent: who, when, where, which exact text, how. Never updated; withdrawal is a new row.
CREATE TABLE consent_ledger (
  seq          INTEGER PRIMARY KEY AUTOINCREMENT,
  contact_id   TEXT NOT NULL,
  site_id      TEXT NOT NULL,
  capture_id   TEXT,
  purpose      TEXT NOT NULL,
  channel      TEXT NOT NULL,           -- email | sms
  action       TEXT NOT NULL,           -- given | confirmed | withdrawn
  text_version TEXT,
  method       TEXT NOT NULL,           -- widget_form | double_opt_in | preference_centre
  ip_hash      TEXT,
  user_agent   TEXT,
  at           INTEGER NOT NULL
);
CREATE INDEX consent_ledger_contact ON consent_ledger (contact_id, purpose, channel, seq);
CREATE TRIGGER consent_ledger_append_only BEFORE UPDATE ON consent_ledger
BEGIN
  SELECT RAISE(ABORT, 'consent_ledger is append-only');
END;

-- Fixed-window counters for rate limits (per IP hash, per address hash).
CREATE TABLE rate_limits (
  key     TEXT NOT NULL,
  window  INTEGER NOT NULL,
  n       INTEGER NOT NULL,
  PRIMARY KEY (key, window)
) WITHOUT ROWID;
