-- linktrack MySQL schema, migration 0001: the core path.
--
-- Every day-scoped table is RANGE-partitioned on `day` (UTC days since
-- 2020-01-01, SMALLINT UNSIGNED). Partitions are named p<YYYYMMDD> after the
-- last day they hold and are created ahead / dropped past retention by
-- `linktrack partitions` or the in-process maintenance task. `p_start` holds
-- days < 1 (never used) because a partitioned table needs one partition;
-- there is deliberately no MAXVALUE partition: an insert for a day with no
-- partition fails loudly instead of landing in a catch-all.
--
-- Enums are TINYINT UNSIGNED with stable values:
--   links.kind: 1 = click (redirect), 2 = open (pixel)

-- Destinations, once per (day, URL): a URL shared by a million recipients is
-- stored once per day, and dropped with its day like everything else.
CREATE TABLE urls (
  id    BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  day   SMALLINT UNSIGNED NOT NULL,
  hash  BINARY(16) NOT NULL COMMENT 'first 16 bytes of SHA-256(url)',
  url   VARBINARY(2048) NOT NULL,
  PRIMARY KEY (id, day),
  UNIQUE KEY urls_hash_day (hash, day)
) ENGINE=InnoDB DEFAULT CHARSET=latin1
  PARTITION BY RANGE (day) (PARTITION p_start VALUES LESS THAN (1));

-- One row per mint request: recipient and mailing are stored once per
-- letter, not once per link. Rarely read, so kept out of the hot links row.
CREATE TABLE letters (
  id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  day         SMALLINT UNSIGNED NOT NULL,
  minted_at   INT UNSIGNED NOT NULL COMMENT 'unix seconds',
  mailing_id  VARBINARY(255) NOT NULL,
  recipient   VARBINARY(320) NOT NULL,
  meta        BLOB NULL COMMENT 'compact JSON text',
  PRIMARY KEY (id, day)
) ENGINE=InnoDB DEFAULT CHARSET=latin1
  PARTITION BY RANGE (day) (PARTITION p_start VALUES LESS THAN (1));

-- The hot table: one narrow row per token. AUTO_INCREMENT (id, day) keeps
-- inserts appending; UNIQUE (rnd, day) is the resolve path and names exactly
-- one partition.
CREATE TABLE links (
  id         BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  day        SMALLINT UNSIGNED NOT NULL,
  rnd        BINARY(16) NOT NULL COMMENT 'the token''s 128 random bits',
  kind       TINYINT UNSIGNED NOT NULL COMMENT '1 click, 2 open',
  url_id     BIGINT UNSIGNED NOT NULL COMMENT 'urls.id on the same day; 0 for open pixels',
  letter_id  BIGINT UNSIGNED NOT NULL COMMENT 'letters.id on the same day',
  PRIMARY KEY (id, day),
  UNIQUE KEY links_rnd_day (rnd, day)
) ENGINE=InnoDB DEFAULT CHARSET=latin1
  PARTITION BY RANGE (day) (PARTITION p_start VALUES LESS THAN (1));

-- Idempotency-Key replay: only written when a client sends the header.
-- Looked up for today and yesterday, so a key is honoured for 24-48 hours.
CREATE TABLE idempotency (
  key_hash   BINARY(16) NOT NULL COMMENT 'SHA-256(api key, Idempotency-Key), 16 bytes',
  day        SMALLINT UNSIGNED NOT NULL,
  body_hash  BINARY(16) NOT NULL,
  tokens     MEDIUMBLOB NOT NULL COMMENT 'minted tokens, newline-separated, request order, pixel last',
  PRIMARY KEY (key_hash, day)
) ENGINE=InnoDB DEFAULT CHARSET=latin1
  PARTITION BY RANGE (day) (PARTITION p_start VALUES LESS THAN (1));

-- Small, unpartitioned settings, e.g. the generated token MAC key shared by replicas.
CREATE TABLE settings (
  name   VARBINARY(64) NOT NULL,
  value  VARBINARY(1024) NOT NULL,
  PRIMARY KEY (name)
) ENGINE=InnoDB DEFAULT CHARSET=latin1;
