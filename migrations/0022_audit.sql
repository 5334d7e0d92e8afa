-- Two people above the approval threshold: who last edited a campaign (`token:{id}` or
-- `user:{id}`), so its approver can be required to be someone else.
ALTER TABLE campaigns ADD COLUMN edited_by TEXT;

-- Who minted an API token (NULL: a script or the seed).
ALTER TABLE api_tokens ADD COLUMN created_by TEXT;

-- The audit page filters by actor and by subject, newest first.
CREATE INDEX audit_log_actor ON audit_log (actor, seq);
CREATE INDEX audit_log_subject ON audit_log (subject, seq);
