-- linktrack embedded store (SQLite), main file, migration 0006: insights
-- (schema/mysql/0008_insights.sql). Totals per (mailing, kind, URL,
-- position) with unique humans; rows of earlier versions keep position 65535
-- (unknown). A quarter-hour time series per mailing. Distinct letters with a
-- human click per mailing. The rollup's `seen_<day>` tables gain a `human`
-- column (added by the migration code, one table per link day), and
-- `hletters_<day>` tables hold the letters whose human click was counted.
CREATE TABLE stats_totals_v6 (
  tenant        INTEGER NOT NULL,
  mailing_hash  BLOB NOT NULL,
  kind          INTEGER NOT NULL,
  url_hash      BLOB NOT NULL,
  pos           INTEGER NOT NULL,        -- position in the letter; 65535 none
  mailing_id    TEXT NOT NULL,
  url           TEXT,
  human         INTEGER NOT NULL,
  bot           INTEGER NOT NULL,
  suspect       INTEGER NOT NULL,
  uniq          INTEGER NOT NULL,        -- links hit at least once
  uniq_human    INTEGER NOT NULL,        -- links hit at least once by a human event
  PRIMARY KEY (tenant, mailing_hash, kind, url_hash, pos)
) STRICT, WITHOUT ROWID;
INSERT INTO stats_totals_v6
  SELECT tenant, mailing_hash, kind, url_hash, 65535, mailing_id, url, human, bot, suspect, uniq, 0 FROM stats_totals;
DROP TABLE stats_totals;
ALTER TABLE stats_totals_v6 RENAME TO stats_totals;

ALTER TABLE mailings ADD COLUMN recipients_human INTEGER NOT NULL DEFAULT 0;

CREATE TABLE stats_series (
  tenant        INTEGER NOT NULL,
  mailing_hash  BLOB NOT NULL,
  slot          INTEGER NOT NULL,        -- unix seconds / 900
  kind          INTEGER NOT NULL,        -- 1 click, 2 open
  human         INTEGER NOT NULL,
  bot           INTEGER NOT NULL,
  suspect       INTEGER NOT NULL,
  PRIMARY KEY (tenant, mailing_hash, slot, kind)
) STRICT, WITHOUT ROWID;
