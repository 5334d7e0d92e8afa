-- Workspace users: people who sign in to the dashboard with a one-time link mailed to them. The
-- role decides the scopes (core/src/roles.rs). A disabled user's sessions end at their next request.
CREATE TABLE users (
  id          TEXT PRIMARY KEY,
  email       TEXT NOT NULL UNIQUE,          -- normalised
  role        TEXT NOT NULL,                 -- admin | author | approver | analyst
  created_at  INTEGER NOT NULL,
  disabled_at INTEGER
);

-- One mailed sign-in link. Its URL is a signed token naming this row; using it sets used_at once
-- (compare and set), so a link works once, and never after expires_at. mailed_at is claimed just
-- before the transport, so a replayed queue message mails nothing twice.
CREATE TABLE sign_in_links (
  id         TEXT PRIMARY KEY,
  user_id    TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  mailed_at  INTEGER,
  used_at    INTEGER
);
CREATE INDEX sign_in_links_user ON sign_in_links (user_id, created_at);

-- Who changed what in the workspace, append-only: users (user:{id}) and API tokens (token:{id}).
CREATE TABLE audit_log (
  seq     INTEGER PRIMARY KEY AUTOINCREMENT,
  actor   TEXT NOT NULL,
  action  TEXT NOT NULL,                     -- e.g. user.signed_in, user.created
  subject TEXT NOT NULL,
  detail  TEXT NOT NULL DEFAULT '{}',        -- JSON: before/after where there is one
  at      INTEGER NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at);
