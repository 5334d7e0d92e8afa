-- The audience's portrait: how many captures chose each option of a site's quiz questions. Counted
-- when the capture is stored (same transaction), so the dashboard reads counters, not captures.
-- Free answers are never counted: they may be personal.
CREATE TABLE answer_counts (
  site_id  TEXT NOT NULL,
  question TEXT NOT NULL,
  answer   TEXT NOT NULL,
  n        INTEGER NOT NULL,
  PRIMARY KEY (site_id, question, answer)
) WITHOUT ROWID;
