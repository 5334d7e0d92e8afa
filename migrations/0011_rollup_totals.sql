-- Stats that cost the same at a thousand or a million events. Instead of one counter per
-- (metric, label, link, hour):
--   rollup_total  one row per (campaign, metric, label, link): every total and unique count, per link;
--   rollup_series one row per (campaign, hour) with a column per plotted number. Hours older than a
--                 couple of days (SERIES_HOURLY_HOURS, default 48) are folded into their day by the
--                 edge cron's hourly maintenance.
-- A stats read is then bounded by metrics × labels × links plus the days of the campaign, whatever
-- the number of events. rollup_hourly is replaced by the two.

CREATE TABLE rollup_total (
  campaign_id TEXT NOT NULL,
  metric      TEXT NOT NULL,
  label       TEXT NOT NULL,
  link_index  INTEGER NOT NULL,
  n           INTEGER NOT NULL,
  PRIMARY KEY (campaign_id, metric, label, link_index)
) WITHOUT ROWID;
INSERT INTO rollup_total (campaign_id, metric, label, link_index, n)
  SELECT campaign_id, metric, label, link_index, SUM(n) FROM rollup_hourly
  GROUP BY campaign_id, metric, label, link_index;

CREATE TABLE rollup_series (
  campaign_id          TEXT NOT NULL,
  hour                 INTEGER NOT NULL,   -- unix hours; after folding, a day is its first hour
  opens_human          INTEGER NOT NULL DEFAULT 0,
  opens_privacy_proxy  INTEGER NOT NULL DEFAULT 0,
  opens_scanner        INTEGER NOT NULL DEFAULT 0,
  clicks_human         INTEGER NOT NULL DEFAULT 0,
  clicks_privacy_proxy INTEGER NOT NULL DEFAULT 0,
  clicks_scanner       INTEGER NOT NULL DEFAULT 0,
  unsubscribes         INTEGER NOT NULL DEFAULT 0,
  conversions          INTEGER NOT NULL DEFAULT 0,
  sent                 INTEGER NOT NULL DEFAULT 0, -- all channels
  PRIMARY KEY (campaign_id, hour)
) WITHOUT ROWID;
INSERT INTO rollup_series
  SELECT campaign_id, hour,
    SUM(CASE WHEN metric = 'open' AND label = 'human' THEN n ELSE 0 END),
    SUM(CASE WHEN metric = 'open' AND label = 'privacy_proxy' THEN n ELSE 0 END),
    SUM(CASE WHEN metric = 'open' AND label = 'scanner' THEN n ELSE 0 END),
    SUM(CASE WHEN metric = 'click' AND label = 'human' THEN n ELSE 0 END),
    SUM(CASE WHEN metric = 'click' AND label = 'privacy_proxy' THEN n ELSE 0 END),
    SUM(CASE WHEN metric = 'click' AND label = 'scanner' THEN n ELSE 0 END),
    SUM(CASE WHEN metric = 'unsubscribe' THEN n ELSE 0 END),
    SUM(CASE WHEN metric = 'conversion' THEN n ELSE 0 END),
    SUM(CASE WHEN metric IN ('sent', 'sms_sent') THEN n ELSE 0 END)
  FROM rollup_hourly GROUP BY campaign_id, hour;

DROP TRIGGER events_count;
CREATE TRIGGER events_count AFTER INSERT ON events
BEGIN
  INSERT INTO rollup_total (campaign_id, metric, label, link_index, n)
    VALUES (NEW.campaign_id, NEW.kind, NEW.label, NEW.link_index, 1)
    ON CONFLICT DO UPDATE SET n = n + 1;
  INSERT INTO rollup_series (campaign_id, hour, opens_human, opens_privacy_proxy, opens_scanner,
                             clicks_human, clicks_privacy_proxy, clicks_scanner, unsubscribes)
    VALUES (NEW.campaign_id, NEW.hour,
            NEW.kind = 'open' AND NEW.label = 'human', NEW.kind = 'open' AND NEW.label = 'privacy_proxy',
            NEW.kind = 'open' AND NEW.label = 'scanner', NEW.kind = 'click' AND NEW.label = 'human',
            NEW.kind = 'click' AND NEW.label = 'privacy_proxy', NEW.kind = 'click' AND NEW.label = 'scanner',
            NEW.kind = 'unsubscribe')
    ON CONFLICT DO UPDATE SET
      opens_human = opens_human + excluded.opens_human,
      opens_privacy_proxy = opens_privacy_proxy + excluded.opens_privacy_proxy,
      opens_scanner = opens_scanner + excluded.opens_scanner,
      clicks_human = clicks_human + excluded.clicks_human,
      clicks_privacy_proxy = clicks_privacy_proxy + excluded.clicks_privacy_proxy,
      clicks_scanner = clicks_scanner + excluded.clicks_scanner,
      unsubscribes = unsubscribes + excluded.unsubscribes;
  INSERT INTO first_seen (campaign_id, metric, label, link_index, contact_id, hour)
    SELECT NEW.campaign_id, NEW.kind, l.label, k.link_index, NEW.contact_id, NEW.hour
    FROM (SELECT NEW.label AS label UNION SELECT 'all') AS l,
         (SELECT NEW.link_index AS link_index UNION SELECT -1) AS k
    WHERE NEW.contact_id <> ''
    ON CONFLICT DO NOTHING;
END;

DROP TRIGGER first_seen_count;
CREATE TRIGGER first_seen_count AFTER INSERT ON first_seen
BEGIN
  INSERT INTO rollup_total (campaign_id, metric, label, link_index, n)
    VALUES (NEW.campaign_id, NEW.metric || '_unique', NEW.label, NEW.link_index, 1)
    ON CONFLICT DO UPDATE SET n = n + 1;
END;

DROP TRIGGER sends_count_insert;
DROP TRIGGER sends_count_update;
CREATE TRIGGER sends_count_insert AFTER INSERT ON sends
WHEN NEW.campaign_id IS NOT NULL AND NEW.status IN ('sent', 'skipped', 'deferred', 'failed')
BEGIN
  INSERT INTO rollup_total (campaign_id, metric, label, link_index, n)
    VALUES (NEW.campaign_id, CASE WHEN NEW.channel = 'sms' THEN 'sms_' || NEW.status ELSE NEW.status END,
            COALESCE(NEW.reason, ''), -1, 1)
    ON CONFLICT DO UPDATE SET n = n + 1;
  INSERT INTO rollup_series (campaign_id, hour, sent)
    SELECT NEW.campaign_id, NEW.updated_at / 3600, 1 WHERE NEW.status = 'sent'
    ON CONFLICT DO UPDATE SET sent = sent + 1;
END;
CREATE TRIGGER sends_count_update AFTER UPDATE OF status ON sends
WHEN NEW.campaign_id IS NOT NULL AND NEW.status <> OLD.status
  AND NEW.status IN ('sent', 'skipped', 'deferred', 'failed')
BEGIN
  INSERT INTO rollup_total (campaign_id, metric, label, link_index, n)
    VALUES (NEW.campaign_id, CASE WHEN NEW.channel = 'sms' THEN 'sms_' || NEW.status ELSE NEW.status END,
            COALESCE(NEW.reason, ''), -1, 1)
    ON CONFLICT DO UPDATE SET n = n + 1;
  INSERT INTO rollup_series (campaign_id, hour, sent)
    SELECT NEW.campaign_id, NEW.updated_at / 3600, 1 WHERE NEW.status = 'sent'
    ON CONFLICT DO UPDATE SET sent = sent + 1;
END;

DROP TRIGGER conversions_count;
CREATE TRIGGER conversions_count AFTER INSERT ON conversions
BEGIN
  INSERT INTO rollup_total (campaign_id, metric, label, link_index, n)
    VALUES (NEW.campaign_id, 'conversion', NEW.channel, NEW.link_index, 1)
    ON CONFLICT DO UPDATE SET n = n + 1;
  INSERT INTO rollup_total (campaign_id, metric, label, link_index, n)
    VALUES (NEW.campaign_id, 'revenue:' || NEW.currency, NEW.channel, NEW.link_index, NEW.value_minor)
    ON CONFLICT DO UPDATE SET n = n + excluded.n;
  INSERT INTO rollup_series (campaign_id, hour, conversions) VALUES (NEW.campaign_id, NEW.hour, 1)
    ON CONFLICT DO UPDATE SET conversions = conversions + 1;
END;

DROP TABLE rollup_hourly;

-- Retention: raw events older than EVENT_RETENTION_DAYS are deleted by the edge cron (counters stay).
CREATE INDEX events_occurred ON events (occurred_at);
