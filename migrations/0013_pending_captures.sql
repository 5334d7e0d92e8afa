-- A public capture never changes a contact before the confirming POST: what it carries (phone,
-- fields, quiz answers, the consents asked for) waits on the capture and is applied by
-- confirmation. Contacts created by a capture are marked, so unconfirmed ones can be deleted after
-- the retention period without touching contacts a marketer imported.

ALTER TABLE captures ADD COLUMN phone TEXT;
-- JSON [[purpose, channel, text_version], ...]: the consents this submission asked for.
ALTER TABLE captures ADD COLUMN consents TEXT NOT NULL DEFAULT '[]';
CREATE INDEX captures_pending ON captures (status, created_at);

-- capture | api: who made the row. Existing rows predate the distinction and count as api.
ALTER TABLE contacts ADD COLUMN origin TEXT NOT NULL DEFAULT 'api';

-- Captures still waiting: move their consents from the ledger onto the capture. Those `given`
-- rows were never confirmed and, under the old rule, counted for a contact confirmed earlier;
-- confirmation now writes `given` and `confirmed` together.
UPDATE captures SET consents = (
  SELECT json_group_array(json_array(l.purpose, l.channel, l.text_version))
  FROM consent_ledger l
  WHERE l.capture_id = captures.id AND l.action = 'given' AND l.method = 'widget_form'
)
WHERE status = 'pending_confirmation';
DELETE FROM consent_ledger
WHERE action = 'given' AND method = 'widget_form'
  AND capture_id IN (SELECT id FROM captures WHERE status = 'pending_confirmation');

-- Double opt-in letters claim their send key like every other letter; `sends` is looked up per
-- contact and kind for "at most one confirmation letter per address per day".
CREATE INDEX sends_contact_kind ON sends (contact_id, kind, created_at);
