-- The contact list (GET /v1/contacts and the workspace's contacts page) pages newest first by
-- (created_at, id): keyset pages walk this index, so page 10,000 costs what page 1 costs.
CREATE INDEX contacts_created ON contacts (created_at, id);
