-- Rate-limit windows record when they stop mattering, so the cron job can delete them.
ALTER TABLE rate_limits ADD COLUMN expires_at INTEGER NOT NULL DEFAULT 0;
CREATE INDEX rate_limits_expiry ON rate_limits (expires_at);
