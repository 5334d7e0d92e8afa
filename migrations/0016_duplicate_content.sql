-- The same letter twice, by copy: a campaign's content (its template before personalisation) is
-- fingerprinted on every sent letter, so a copy of a campaign to the same people within the window
-- is skipped as `duplicate_content` unless the campaign says it may resend.
ALTER TABLE sends ADD COLUMN content_hash TEXT;
CREATE INDEX sends_content ON sends (content_hash, contact_id) WHERE content_hash IS NOT NULL;
ALTER TABLE campaigns ADD COLUMN allow_resend INTEGER NOT NULL DEFAULT 0;
