-- linktrack embedded store (SQLite), main file, migration 0002: the stats rollup.
--
-- Running totals per (mailing, kind, URL) and the rollup watermark, in one
-- file so a pass commits them together. Links already counted as unique are
-- kept in one table per link day, `seen_<day number>`, created on first use
-- and dropped whole with their day by partition maintenance.

CREATE TABLE stats_totals (
  mailing_hash  BLOB NOT NULL,          -- first 16 bytes of SHA-256(mailing_id)
  kind          INTEGER NOT NULL,       -- 1 click, 2 open
  url_hash      BLOB NOT NULL,          -- first 16 bytes of SHA-256(url); zeros for opens
  mailing_id    TEXT NOT NULL,
  url           TEXT,
  human         INTEGER NOT NULL,
  bot           INTEGER NOT NULL,
  suspect       INTEGER NOT NULL,
  uniq          INTEGER NOT NULL,       -- links hit at least once
  PRIMARY KEY (mailing_hash, kind, url_hash)
) STRICT, WITHOUT ROWID;

-- The rollup watermark: every event up to (cursor_day, cursor_id) is in stats_totals.
CREATE TABLE rollup_state (
  id          INTEGER PRIMARY KEY,
  cursor_day  INTEGER NOT NULL,
  cursor_id   INTEGER NOT NULL,
  as_of_ms    INTEGER NOT NULL
) STRICT;
INSERT INTO rollup_state (id, cursor_day, cursor_id, as_of_ms) VALUES (1, 0, 0, 0);
