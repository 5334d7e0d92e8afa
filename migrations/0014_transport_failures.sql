-- A relay, account or configuration failure never suppresses anyone: the campaign or chain is
-- paused with the reason (shown in the API and the dashboard), its letters wait as `retrying`,
-- and the first delivery that works resumes it. Pausing announces `transport.failed` to webhook
-- endpoints, once per pause.

ALTER TABLE campaigns ADD COLUMN paused_reason TEXT;
ALTER TABLE campaigns ADD COLUMN paused_at INTEGER;
ALTER TABLE chains ADD COLUMN paused_reason TEXT;
ALTER TABLE chains ADD COLUMN paused_at INTEGER;

CREATE TRIGGER webhooks_campaign_paused AFTER UPDATE OF paused_reason ON campaigns
WHEN OLD.paused_reason IS NULL AND NEW.paused_reason IS NOT NULL
  AND EXISTS (SELECT 1 FROM webhook_endpoints WHERE status = 'active')
BEGIN
  INSERT INTO webhook_deliveries (id, endpoint_id, type, contact_id, payload, occurred_at, status, next_at, updated_at)
  SELECT 'tf_' || hex(NEW.id) || '_' || NEW.paused_at || '_' || w.id, w.id, 'transport.failed', '',
         json_object('campaign', NEW.id, 'reason', NEW.paused_reason, 'occurred_at', NEW.paused_at),
         NEW.paused_at, 'pending', NEW.paused_at, NEW.paused_at
  FROM webhook_endpoints w
  WHERE w.status = 'active'
    AND EXISTS (SELECT 1 FROM json_each(w.events) e WHERE e.value IN ('*', 'transport.failed'))
  ON CONFLICT DO NOTHING;
END;

CREATE TRIGGER webhooks_chain_paused AFTER UPDATE OF paused_reason ON chains
WHEN OLD.paused_reason IS NULL AND NEW.paused_reason IS NOT NULL
  AND EXISTS (SELECT 1 FROM webhook_endpoints WHERE status = 'active')
BEGIN
  INSERT INTO webhook_deliveries (id, endpoint_id, type, contact_id, payload, occurred_at, status, next_at, updated_at)
  SELECT 'tf_chain_' || hex(NEW.id) || '_' || NEW.paused_at || '_' || w.id, w.id, 'transport.failed', '',
         json_object('chain', NEW.id, 'reason', NEW.paused_reason, 'occurred_at', NEW.paused_at),
         NEW.paused_at, 'pending', NEW.paused_at, NEW.paused_at
  FROM webhook_endpoints w
  WHERE w.status = 'active'
    AND EXISTS (SELECT 1 FROM json_each(w.events) e WHERE e.value IN ('*', 'transport.failed'))
  ON CONFLICT DO NOTHING;
END;

-- Lifting a suppression is an audited act: who, when, why, and what the suppression said. The
-- address is kept only as its hash. Never updated, except that erasing the contact clears its id.
CREATE TABLE suppression_ledger (
  seq             INTEGER PRIMARY KEY AUTOINCREMENT,
  address_hash    TEXT NOT NULL,
  contact_id      TEXT,
  action          TEXT NOT NULL,        -- lifted
  reason          TEXT NOT NULL,        -- why it was lifted, as given
  previous_reason TEXT,                 -- unsubscribed | bounced | complained | imported
  actor           TEXT NOT NULL,        -- the API token's id
  at              INTEGER NOT NULL
);
CREATE TRIGGER suppression_ledger_append_only
BEFORE UPDATE OF seq, address_hash, action, reason, previous_reason, actor, at ON suppression_ledger
BEGIN
  SELECT RAISE(ABORT, 'suppression_ledger is append-only');
END;
