-- SMS as a fallback channel: a campaign may send its SMS version to those who did not open or click
-- (as a person) within a set time. Outcomes are counted per channel: SMS outcomes as sms_sent,
-- sms_skipped, … Status 'waiting' (an SMS fallback not yet due) is not an outcome and not counted.

ALTER TABLE campaigns ADD COLUMN sms_fallback_after INTEGER;

DROP TRIGGER sends_count_insert;
DROP TRIGGER sends_count_update;
CREATE TRIGGER sends_count_insert AFTER INSERT ON sends
WHEN NEW.campaign_id IS NOT NULL AND NEW.status IN ('sent', 'skipped', 'deferred', 'failed')
BEGIN
  INSERT INTO rollup_hourly (campaign_id, metric, label, link_index, hour, n)
    VALUES (NEW.campaign_id, CASE WHEN NEW.channel = 'sms' THEN 'sms_' || NEW.status ELSE NEW.status END,
            COALESCE(NEW.reason, ''), -1, NEW.updated_at / 3600, 1)
    ON CONFLICT DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER sends_count_update AFTER UPDATE OF status ON sends
WHEN NEW.campaign_id IS NOT NULL AND NEW.status <> OLD.status
  AND NEW.status IN ('sent', 'skipped', 'deferred', 'failed')
BEGIN
  INSERT INTO rollup_hourly (campaign_id, metric, label, link_index, hour, n)
    VALUES (NEW.campaign_id, CASE WHEN NEW.channel = 'sms' THEN 'sms_' || NEW.status ELSE NEW.status END,
            COALESCE(NEW.reason, ''), -1, NEW.updated_at / 3600, 1)
    ON CONFLICT DO UPDATE SET n = n + 1;
END;
