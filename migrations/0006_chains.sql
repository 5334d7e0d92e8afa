-- Trigger chains: server-side events, chain definitions and each contact's run through a chain.

-- Events about contacts (cart.abandoned, purchase, lead.confirmed, birthday, custom). The id is the
-- sender's idempotency key: the same event sent twice is stored, and enrols, once.
CREATE TABLE contact_events (
  id          TEXT PRIMARY KEY,
  contact_id  TEXT NOT NULL,
  type        TEXT NOT NULL,
  at          INTEGER NOT NULL,
  data        TEXT NOT NULL DEFAULT '{}',
  received_at INTEGER NOT NULL
);
CREATE INDEX contact_events_contact ON contact_events (contact_id, type, at);

CREATE TABLE chains (
  id         TEXT PRIMARY KEY,
  name       TEXT NOT NULL,
  site_id    TEXT NOT NULL,
  purpose    TEXT NOT NULL,
  trigger    TEXT NOT NULL,              -- event type that enrols
  steps      TEXT NOT NULL,              -- JSON [{delay_seconds, template, condition?}]
  status     TEXT NOT NULL,              -- draft | active | paused
  base_url   TEXT NOT NULL DEFAULT '',   -- public origin for links, set at activation
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE INDEX chains_trigger ON chains (status, trigger);

-- One contact's way through one chain. At most one active run per (chain, contact): a second
-- trigger while the first run is under way does not start the chain again.
CREATE TABLE chain_runs (
  id          TEXT PRIMARY KEY,          -- {event id}.{chain id}: a replayed event enrols once
  chain_id    TEXT NOT NULL,
  contact_id  TEXT NOT NULL,
  status      TEXT NOT NULL,             -- active | done | exited
  step        INTEGER NOT NULL,          -- next step to send (0-based)
  started_at  INTEGER NOT NULL,
  due_at      INTEGER,
  exit_reason TEXT,
  updated_at  INTEGER NOT NULL
);
CREATE UNIQUE INDEX chain_runs_one_active ON chain_runs (chain_id, contact_id) WHERE status = 'active';
CREATE INDEX chain_runs_due ON chain_runs (status, due_at);

-- Once-a-day jobs remember the day they last ran.
CREATE TABLE daily_jobs (
  name TEXT PRIMARY KEY,
  day  TEXT NOT NULL
) WITHOUT ROWID;
