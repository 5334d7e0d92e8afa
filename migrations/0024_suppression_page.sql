-- The suppressions page: the newest own suppressions a page at a time (keyset, newest first), and
-- one address's ledger rows, without scanning either table.
CREATE INDEX suppressions_newest ON suppressions (created_at, contact_id);
CREATE INDEX suppression_ledger_address ON suppression_ledger (address_hash, seq);
