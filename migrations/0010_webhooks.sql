-- Outgoing webhooks (Standard Webhooks style) for a CRM: endpoints, and an outbox of deliveries
-- filled by triggers in the same transaction as the fact they report, so nothing is lost or
-- announced twice whatever the queue redelivers. The sending worker's tick delivers and retries.
CREATE TABLE webhook_endpoints (
  id         TEXT PRIMARY KEY,
  url        TEXT NOT NULL,
  secret     TEXT NOT NULL,              -- whsec_…: needed in clear to sign; never returned after creation
  events     TEXT NOT NULL,              -- JSON array of event types, or ["*"]
  status     TEXT NOT NULL,              -- active | disabled
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);

CREATE TABLE webhook_deliveries (
  id          TEXT PRIMARY KEY,          -- the webhook-id header: the same on every retry
  endpoint_id TEXT NOT NULL,
  type        TEXT NOT NULL,
  contact_id  TEXT NOT NULL,             -- for GDPR erasure of pending deliveries
  payload     TEXT NOT NULL,             -- JSON `data` object
  occurred_at INTEGER NOT NULL,
  status      TEXT NOT NULL,             -- pending | delivered | failed
  attempts    INTEGER NOT NULL DEFAULT 0,
  next_at     INTEGER NOT NULL,
  last_error  TEXT,                      -- status code or transport error, never the body
  updated_at  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_at);

CREATE TRIGGER webhooks_events AFTER INSERT ON events
WHEN EXISTS (SELECT 1 FROM webhook_endpoints WHERE status = 'active')
BEGIN
  INSERT INTO webhook_deliveries (id, endpoint_id, type, contact_id, payload, occurred_at, status, next_at, updated_at)
  SELECT 'evt_' || NEW.id || '_' || w.id, w.id,
         CASE NEW.kind WHEN 'open' THEN 'email.opened' WHEN 'click' THEN 'email.clicked' ELSE 'contact.unsubscribed' END,
         NEW.contact_id,
         json_object('campaign', NEW.campaign_id, 'contact', NEW.contact_id,
                     'email', (SELECT email FROM contacts WHERE id = NEW.contact_id),
                     'message', NEW.message_id,
                     'link', CASE WHEN NEW.link_index >= 0 THEN NEW.link_index END,
                     'url', (SELECT url FROM campaign_links WHERE campaign_id = NEW.campaign_id AND link_index = NEW.link_index),
                     'label', NULLIF(NEW.label, ''), 'reason', NULLIF(NEW.reason, ''),
                     'occurred_at', NEW.occurred_at),
         NEW.occurred_at, 'pending', NEW.received_at, NEW.received_at
  FROM webhook_endpoints w
  WHERE w.status = 'active' AND EXISTS (
    SELECT 1 FROM json_each(w.events) e WHERE e.value IN ('*',
      CASE NEW.kind WHEN 'open' THEN 'email.opened' WHEN 'click' THEN 'email.clicked' ELSE 'contact.unsubscribed' END))
  ON CONFLICT DO NOTHING;
END;

CREATE TRIGGER webhooks_conversions AFTER INSERT ON conversions
WHEN EXISTS (SELECT 1 FROM webhook_endpoints WHERE status = 'active')
BEGIN
  INSERT INTO webhook_deliveries (id, endpoint_id, type, contact_id, payload, occurred_at, status, next_at, updated_at)
  SELECT 'conv_' || hex(NEW.order_id) || '_' || w.id, w.id, 'conversion.created', NEW.contact_id,
         json_object('order_id', NEW.order_id, 'campaign', NEW.campaign_id, 'contact', NEW.contact_id,
                     'email', (SELECT email FROM contacts WHERE id = NEW.contact_id),
                     'link', CASE WHEN NEW.link_index >= 0 THEN NEW.link_index END, 'channel', NEW.channel,
                     'value_minor', NEW.value_minor, 'currency', NEW.currency, 'source', NEW.source,
                     'occurred_at', NEW.occurred_at),
         NEW.occurred_at, 'pending', NEW.received_at, NEW.received_at
  FROM webhook_endpoints w
  WHERE w.status = 'active'
    AND EXISTS (SELECT 1 FROM json_each(w.events) e WHERE e.value IN ('*', 'conversion.created'))
  ON CONFLICT DO NOTHING;
END;

CREATE TRIGGER webhooks_consent AFTER INSERT ON consent_ledger
WHEN EXISTS (SELECT 1 FROM webhook_endpoints WHERE status = 'active')
BEGIN
  INSERT INTO webhook_deliveries (id, endpoint_id, type, contact_id, payload, occurred_at, status, next_at, updated_at)
  SELECT 'cons_' || NEW.seq || '_' || w.id, w.id, 'consent.changed', NEW.contact_id,
         json_object('contact', NEW.contact_id, 'email', (SELECT email FROM contacts WHERE id = NEW.contact_id),
                     'site', NEW.site_id, 'purpose', NEW.purpose, 'channel', NEW.channel, 'action', NEW.action,
                     'method', NEW.method, 'text_version', NEW.text_version, 'occurred_at', NEW.at),
         NEW.at, 'pending', NEW.at, NEW.at
  FROM webhook_endpoints w
  WHERE w.status = 'active'
    AND EXISTS (SELECT 1 FROM json_each(w.events) e WHERE e.value IN ('*', 'consent.changed'))
  ON CONFLICT DO NOTHING;
END;
