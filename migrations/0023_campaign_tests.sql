-- The approval screen shows a campaign's last test letters: their run (its stats are `test:{run}`)
-- and when they went out.
ALTER TABLE campaigns ADD COLUMN last_test_run TEXT;
ALTER TABLE campaigns ADD COLUMN last_test_at INTEGER;
