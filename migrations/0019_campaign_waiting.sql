-- What a campaign's letters wait for (GET /v1/campaigns/{id} `delivery`, the dashboard): only the
-- rows still waiting are in this index, so it stays small however many letters were sent.
CREATE INDEX sends_campaign_waiting ON sends (campaign_id, status, reason, due_at)
  WHERE status IN ('deferred', 'retrying', 'waiting', 'sending');
