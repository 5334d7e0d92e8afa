-- Conversions: orders attributed to the campaign, link and channel that brought them. The order id
-- is the identity, so the widget's beacon and a server-side `purchase` for the same order count once.
CREATE TABLE conversions (
  order_id     TEXT PRIMARY KEY,
  campaign_id  TEXT NOT NULL,
  contact_id   TEXT NOT NULL,           -- '' for anonymous tracking
  message_id   TEXT NOT NULL,
  link_index   INTEGER NOT NULL,        -- the clicked link; -1 for an SMS
  channel      TEXT NOT NULL,           -- email | sms
  value_minor  INTEGER NOT NULL,        -- in minor units (cents) of `currency`
  currency     TEXT NOT NULL,
  source       TEXT NOT NULL,           -- site (widget beacon) | api (purchase event)
  occurred_at  INTEGER NOT NULL,
  hour         INTEGER NOT NULL,
  received_at  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX conversions_campaign ON conversions (campaign_id, occurred_at);

-- Counted like events: once per new order, per link and channel. Revenue is one counter per
-- currency (metric `revenue:EUR`), in minor units; label = channel.
CREATE TRIGGER conversions_count AFTER INSERT ON conversions
BEGIN
  INSERT INTO rollup_hourly (campaign_id, metric, label, link_index, hour, n)
    VALUES (NEW.campaign_id, 'conversion', NEW.channel, NEW.link_index, NEW.hour, 1)
    ON CONFLICT DO UPDATE SET n = n + 1;
  INSERT INTO rollup_hourly (campaign_id, metric, label, link_index, hour, n)
    VALUES (NEW.campaign_id, 'revenue:' || NEW.currency, NEW.channel, NEW.link_index, NEW.hour,
            NEW.value_minor)
    ON CONFLICT DO UPDATE SET n = n + excluded.n;
END;

