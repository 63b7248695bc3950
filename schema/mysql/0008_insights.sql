-- linktrack MySQL schema, migration 0008: insights. Links know their
-- position in the letter and how their token was spelled; stats name every
-- link of a mailing by (URL, position) and count unique humans; a
-- time series per quarter hour; distinct letters with a human click.
--
-- links_v2.pos: the link's 0-based order in its letter (request order for
-- POST /v1/links, document order for a rewrite); 65535 for the pixel and
-- for links stored before this migration.
-- links_v2.spell: key_id * 32 + split of the minted token, so an export can
-- write the token again (src/token.rs `respell_v2`); 0 = unknown.
-- Together 4 bytes per link row.
ALTER TABLE links_v2
  ADD COLUMN pos SMALLINT UNSIGNED NOT NULL DEFAULT 65535 COMMENT 'position in the letter; 65535 none',
  ADD COLUMN spell SMALLINT UNSIGNED NOT NULL DEFAULT 0 COMMENT 'token key id * 32 + split; 0 unknown';

-- A letter's first human click, counted once into its mailing's
-- recipients_human by the rollup. Set by the rollup only.
ALTER TABLE letters ADD COLUMN human_click TINYINT UNSIGNED NOT NULL DEFAULT 0 COMMENT '1 once a human click was counted';

-- Whether a link seen by the rollup was hit by a human event (unique_human).
-- Links seen before this migration start at 0: their next human hit counts.
ALTER TABLE link_seen ADD COLUMN human TINYINT UNSIGNED NOT NULL DEFAULT 0 COMMENT '1 once hit by a human event';

ALTER TABLE mailings ADD COLUMN recipients_human BIGINT NOT NULL DEFAULT 0 COMMENT 'letters with a human click';

-- Totals per (mailing, kind, URL, position). Rows of earlier versions keep
-- position 65535 (unknown). A mint registers its links' rows with zeros, so
-- stats list links nobody clicked.
ALTER TABLE stats_totals
  ADD COLUMN pos SMALLINT UNSIGNED NOT NULL DEFAULT 65535 COMMENT 'position in the letter; 65535 none' AFTER url_hash,
  ADD COLUMN uniq_human BIGINT NOT NULL DEFAULT 0 COMMENT 'links hit at least once by a human event',
  DROP PRIMARY KEY,
  ADD PRIMARY KEY (tenant, mailing_hash, kind, url_hash, pos);

-- Clicks and opens per mailing and quarter hour (UTC), split by verdict,
-- maintained by the rollup. 96 rows per mailing, kind and day at most.
CREATE TABLE stats_series (
  tenant        SMALLINT UNSIGNED NOT NULL COMMENT 'tenants.id',
  mailing_hash  BINARY(16) NOT NULL,
  kind          TINYINT UNSIGNED NOT NULL COMMENT '1 click, 2 open',
  slot          INT UNSIGNED NOT NULL COMMENT 'unix seconds / 900',
  human         BIGINT NOT NULL,
  bot           BIGINT NOT NULL,
  suspect       BIGINT NOT NULL,
  PRIMARY KEY (tenant, mailing_hash, slot, kind)
) ENGINE=InnoDB DEFAULT CHARSET=latin1;
