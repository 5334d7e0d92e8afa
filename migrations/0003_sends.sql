-- One row per message Epistola sends, keyed by its send key (kind + subject), so a redelivered job
-- finds it and does not send again. Failures are recorded with their reason.
CREATE TABLE sends (
  send_key    TEXT PRIMARY KEY,
  kind        TEXT NOT NULL,            -- confirmation | delivery
  contact_id  TEXT NOT NULL,
  capture_id  TEXT,
  status      TEXT NOT NULL,            -- sent | retrying | failed
  attempts    INTEGER NOT NULL,
  detail      TEXT,                     -- last error, never message content
  created_at  INTEGER NOT NULL,
  updated_at  INTEGER NOT NULL
) WITHOUT ROWID;
