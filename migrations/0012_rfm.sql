-- RFM scores and churn risk per buyer, recomputed daily by the sending worker from `purchase`
-- events (core::rfm). Read by segment rules ({"rfm": [...]}) and per-segment frequency caps.
CREATE TABLE contact_rfm (
  contact_id   TEXT PRIMARY KEY,
  r            INTEGER NOT NULL,
  f            INTEGER NOT NULL,
  m            INTEGER NOT NULL,
  segment      TEXT NOT NULL,
  orders       INTEGER NOT NULL,
  total        REAL NOT NULL,
  last_at      INTEGER NOT NULL,
  churn_risk   INTEGER NOT NULL,
  computed_at  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX contact_rfm_segment ON contact_rfm (segment);
