-- Clicks imply opens: a contact who clicked as a person without a human pixel fetch (images off)
-- opened the letter. `open_inferred_unique` counts such contacts per campaign, exactly once each,
-- because first_seen rows are inserted once per (campaign, metric, label, link, contact):
--   a contact's first human click, with no human open seen yet  → +1
--   a contact's first human open, after a human click           → −1 (now a confirmed open)
DROP TRIGGER first_seen_count;
CREATE TRIGGER first_seen_count AFTER INSERT ON first_seen
BEGIN
  INSERT INTO rollup_total (campaign_id, metric, label, link_index, n)
    VALUES (NEW.campaign_id, NEW.metric || '_unique', NEW.label, NEW.link_index, 1)
    ON CONFLICT DO UPDATE SET n = n + 1;
  INSERT INTO rollup_total (campaign_id, metric, label, link_index, n)
    SELECT NEW.campaign_id, 'open_inferred_unique', 'human', -1, 1
    WHERE NEW.metric = 'click' AND NEW.label = 'human' AND NEW.link_index = -1
      AND NOT EXISTS (SELECT 1 FROM first_seen o WHERE o.campaign_id = NEW.campaign_id
                      AND o.metric = 'open' AND o.label = 'human' AND o.link_index = -1
                      AND o.contact_id = NEW.contact_id)
    ON CONFLICT DO UPDATE SET n = n + 1;
  UPDATE rollup_total SET n = n - 1
    WHERE NEW.metric = 'open' AND NEW.label = 'human' AND NEW.link_index = -1
      AND campaign_id = NEW.campaign_id AND metric = 'open_inferred_unique' AND label = 'human'
      AND link_index = -1
      AND EXISTS (SELECT 1 FROM first_seen c WHERE c.campaign_id = NEW.campaign_id
                  AND c.metric = 'click' AND c.label = 'human' AND c.link_index = -1
                  AND c.contact_id = NEW.contact_id);
END;

-- What the trigger would have counted for the events already stored.
INSERT INTO rollup_total (campaign_id, metric, label, link_index, n)
  SELECT c.campaign_id, 'open_inferred_unique', 'human', -1, COUNT(*) FROM first_seen c
  WHERE c.metric = 'click' AND c.label = 'human' AND c.link_index = -1
    AND NOT EXISTS (SELECT 1 FROM first_seen o WHERE o.campaign_id = c.campaign_id
                    AND o.metric = 'open' AND o.label = 'human' AND o.link_index = -1
                    AND o.contact_id = c.contact_id)
  GROUP BY c.campaign_id
  ON CONFLICT DO UPDATE SET n = excluded.n;
