-- Relabelling after the fact. A message's clicks become scanner clicks when they show a burst
-- (several links within seconds) or a hit on the letter's hidden honeypot link: the rules of
-- core::classify::relabel_clicks, applied here in the transaction that stores a click, so they
-- hold however the queue batches, orders or replays events. An UPDATE of `label` moves every
-- counter the insert moved, exactly once: it only touches rows whose label changes, and a replayed
-- event is never inserted again.
--
-- The numbers are core's (core/tests/relabel_sql.rs checks that they agree):
--   HONEYPOT_LINK 65535, HONEYPOT_WINDOW_SECONDS 120, BURST_WINDOW_SECONDS 5, BURST_MIN_LINKS 3;
--   burst_threshold(links) = MIN(3, MAX(2, links)), links = the campaign's registered links.
-- The rules only ever grow with more clicks, so applying them as each click arrives (to every
-- click of its message it can affect) ends where the reference over all clicks ends.

CREATE INDEX events_message_clicks ON events (message_id, occurred_at) WHERE kind = 'click';

-- The counting trigger of 0011, unchanged, and then the relabelling: in one trigger, because
-- SQLite does not promise an order between triggers, and a click must be counted before it can
-- be relabelled.
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
  -- A click within the window of a honeypot hit (a burst's reason gives way to the honeypot's).
  UPDATE events SET label = 'scanner', reason = 'honeypot'
    WHERE NEW.kind = 'click' AND NEW.message_id <> ''
      AND kind = 'click' AND message_id = NEW.message_id AND campaign_id = NEW.campaign_id
      AND contact_id = NEW.contact_id AND link_index <> 65535
      AND occurred_at BETWEEN NEW.occurred_at - 120 AND NEW.occurred_at + 120
      AND (label <> 'scanner' OR reason = 'burst')
      AND EXISTS (SELECT 1 FROM events h
                  WHERE h.kind = 'click' AND h.message_id = events.message_id
                    AND h.campaign_id = events.campaign_id AND h.contact_id = events.contact_id
                    AND h.link_index = 65535
                    AND h.occurred_at BETWEEN events.occurred_at - 120 AND events.occurred_at + 120);
  -- A click within the window of clicks on burst_threshold different links.
  UPDATE events SET label = 'scanner', reason = 'burst'
    WHERE NEW.kind = 'click' AND NEW.message_id <> ''
      AND kind = 'click' AND message_id = NEW.message_id AND campaign_id = NEW.campaign_id
      AND contact_id = NEW.contact_id AND label <> 'scanner'
      AND occurred_at BETWEEN NEW.occurred_at - 5 AND NEW.occurred_at + 5
      AND (SELECT COUNT(DISTINCT o.link_index) FROM events o
           WHERE o.kind = 'click' AND o.message_id = events.message_id
             AND o.campaign_id = events.campaign_id AND o.contact_id = events.contact_id
             AND o.link_index <> 65535
             AND o.occurred_at BETWEEN events.occurred_at - 5 AND events.occurred_at + 5)
        >= MIN(3, MAX(2, (SELECT COUNT(*) FROM campaign_links l
                          WHERE l.campaign_id = events.campaign_id)));
END;

CREATE TRIGGER events_relabel AFTER UPDATE OF label ON events
WHEN NEW.label <> OLD.label AND OLD.kind IN ('open', 'click')
BEGIN
  UPDATE rollup_total SET n = n - 1
    WHERE campaign_id = OLD.campaign_id AND metric = OLD.kind AND label = OLD.label
      AND link_index = OLD.link_index;
  INSERT INTO rollup_total (campaign_id, metric, label, link_index, n)
    VALUES (NEW.campaign_id, NEW.kind, NEW.label, NEW.link_index, 1)
    ON CONFLICT DO UPDATE SET n = n + 1;
  -- The event's hour, or the day it was folded into (a day's row is its first hour).
  UPDATE rollup_series SET
      opens_human = opens_human - (OLD.kind = 'open' AND OLD.label = 'human')
                    + (NEW.kind = 'open' AND NEW.label = 'human'),
      opens_privacy_proxy = opens_privacy_proxy - (OLD.kind = 'open' AND OLD.label = 'privacy_proxy')
                    + (NEW.kind = 'open' AND NEW.label = 'privacy_proxy'),
      opens_scanner = opens_scanner - (OLD.kind = 'open' AND OLD.label = 'scanner')
                    + (NEW.kind = 'open' AND NEW.label = 'scanner'),
      clicks_human = clicks_human - (OLD.kind = 'click' AND OLD.label = 'human')
                    + (NEW.kind = 'click' AND NEW.label = 'human'),
      clicks_privacy_proxy = clicks_privacy_proxy - (OLD.kind = 'click' AND OLD.label = 'privacy_proxy')
                    + (NEW.kind = 'click' AND NEW.label = 'privacy_proxy'),
      clicks_scanner = clicks_scanner - (OLD.kind = 'click' AND OLD.label = 'scanner')
                    + (NEW.kind = 'click' AND NEW.label = 'scanner')
    WHERE campaign_id = OLD.campaign_id
      AND hour = (SELECT MAX(hour) FROM rollup_series
                  WHERE campaign_id = OLD.campaign_id AND hour <= OLD.hour);
  -- Unique counts under the new label (first_seen_count counts them)…
  INSERT INTO first_seen (campaign_id, metric, label, link_index, contact_id, hour)
    SELECT NEW.campaign_id, NEW.kind, NEW.label, k.link_index, NEW.contact_id, NEW.hour
    FROM (SELECT NEW.link_index AS link_index UNION SELECT -1) AS k
    WHERE NEW.contact_id <> ''
    ON CONFLICT DO NOTHING;
  -- …and under the old one, unless another stored event of the contact keeps them. A first sight
  -- before this event's hour came from an event that may be past retention: it stays.
  DELETE FROM first_seen
    WHERE campaign_id = OLD.campaign_id AND metric = OLD.kind AND label = OLD.label
      AND contact_id = OLD.contact_id AND OLD.contact_id <> ''
      AND link_index IN (OLD.link_index, -1) AND hour >= OLD.hour
      AND NOT EXISTS (SELECT 1 FROM events e
                      WHERE e.contact_id = OLD.contact_id AND e.kind = OLD.kind
                        AND e.campaign_id = OLD.campaign_id AND e.label = OLD.label
                        AND (first_seen.link_index = -1 OR e.link_index = first_seen.link_index));
END;

-- A contact no longer seen under a label: its unique count goes, and the inferred open follows
-- the rule of 0017 backwards (a lost human click without a human open takes its inferred open; a
-- lost human open beside a human click becomes an inferred one).
CREATE TRIGGER first_seen_uncount AFTER DELETE ON first_seen
BEGIN
  UPDATE rollup_total SET n = n - 1
    WHERE campaign_id = OLD.campaign_id AND metric = OLD.metric || '_unique'
      AND label = OLD.label AND link_index = OLD.link_index;
  UPDATE rollup_total SET n = n - 1
    WHERE OLD.metric = 'click' AND OLD.label = 'human' AND OLD.link_index = -1
      AND campaign_id = OLD.campaign_id AND metric = 'open_inferred_unique' AND label = 'human'
      AND link_index = -1
      AND NOT EXISTS (SELECT 1 FROM first_seen o WHERE o.campaign_id = OLD.campaign_id
                      AND o.metric = 'open' AND o.label = 'human' AND o.link_index = -1
                      AND o.contact_id = OLD.contact_id);
  INSERT INTO rollup_total (campaign_id, metric, label, link_index, n)
    SELECT OLD.campaign_id, 'open_inferred_unique', 'human', -1, 1
    WHERE OLD.metric = 'open' AND OLD.label = 'human' AND OLD.link_index = -1
      AND EXISTS (SELECT 1 FROM first_seen c WHERE c.campaign_id = OLD.campaign_id
                  AND c.metric = 'click' AND c.label = 'human' AND c.link_index = -1
                  AND c.contact_id = OLD.contact_id)
    ON CONFLICT DO UPDATE SET n = n + 1;
END;
