-- Orders the site reports through the widget are unverified (a visitor holding an attribution
-- token could exaggerate them); an order the shop's server reports (`purchase` event) is verified
-- and replaces a site-reported one with the same order id. Counters move with the replacement,
-- exactly once, in the same transaction.

CREATE TRIGGER conversions_unverified AFTER INSERT ON conversions
WHEN NEW.source = 'site'
BEGIN
  INSERT INTO rollup_total (campaign_id, metric, label, link_index, n)
    VALUES (NEW.campaign_id, 'conversion_unverified', NEW.channel, NEW.link_index, 1)
    ON CONFLICT DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER conversions_replaced AFTER UPDATE ON conversions
BEGIN
  -- Out with the old row's counts…
  UPDATE rollup_total SET n = n - 1
    WHERE campaign_id = OLD.campaign_id AND metric = 'conversion' AND label = OLD.channel AND link_index = OLD.link_index;
  UPDATE rollup_total SET n = n - OLD.value_minor
    WHERE campaign_id = OLD.campaign_id AND metric = 'revenue:' || OLD.currency AND label = OLD.channel
      AND link_index = OLD.link_index;
  UPDATE rollup_total SET n = n - 1
    WHERE OLD.source = 'site' AND campaign_id = OLD.campaign_id AND metric = 'conversion_unverified'
      AND label = OLD.channel AND link_index = OLD.link_index;
  UPDATE rollup_series SET conversions = conversions - 1
    WHERE campaign_id = OLD.campaign_id AND hour = OLD.hour - OLD.hour % 24
      AND NOT EXISTS (SELECT 1 FROM rollup_series WHERE campaign_id = OLD.campaign_id AND hour = OLD.hour);
  UPDATE rollup_series SET conversions = conversions - 1
    WHERE campaign_id = OLD.campaign_id AND hour = OLD.hour;
  -- …in with the new one's.
  INSERT INTO rollup_total (campaign_id, metric, label, link_index, n)
    VALUES (NEW.campaign_id, 'conversion', NEW.channel, NEW.link_index, 1)
    ON CONFLICT DO UPDATE SET n = n + 1;
  INSERT INTO rollup_total (campaign_id, metric, label, link_index, n)
    VALUES (NEW.campaign_id, 'revenue:' || NEW.currency, NEW.channel, NEW.link_index, NEW.value_minor)
    ON CONFLICT DO UPDATE SET n = n + excluded.n;
  INSERT INTO rollup_series (campaign_id, hour, conversions) VALUES (NEW.campaign_id, NEW.hour, 1)
    ON CONFLICT DO UPDATE SET conversions = conversions + 1;
END;
