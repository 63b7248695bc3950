-- linktrack MySQL schema, migration 0002: events, their user agents, and the stats rollup.
--
-- Enums are TINYINT UNSIGNED with stable values (src/events/classify.rs, docs):
--   events.kind:    1 click, 2 open
--   events.method:  1 GET, 2 HEAD
--   events.verdict: 1 human, 2 bot, 3 suspect
--   events.reason:  0 none, 1 bot_user_agent, 2 head_request, 3 letter_burst,
--                   4 near_mint, 5 privacy_proxy, 6 image_proxy, 7 empty_user_agent
--
-- events, user_agents and event_batches are partitioned by the day a row is
-- WRITTEN (so rows append and export cursors only move forward); link_seen by
-- the day of the link it marks. All are kept in step by partition maintenance
-- like the 0001 tables. stats_totals and rollup_state are small and unpartitioned.

-- Click links per letter: the letter-burst rule compares one client's hits against it.
ALTER TABLE letters ADD COLUMN click_links SMALLINT UNSIGNED NOT NULL DEFAULT 0 COMMENT 'click links in the letter';

-- User agents, once per (day, UA): a browser string repeated a million times is stored once a day.
CREATE TABLE user_agents (
  id    INT UNSIGNED NOT NULL AUTO_INCREMENT,
  day   SMALLINT UNSIGNED NOT NULL,
  hash  BINARY(16) NOT NULL COMMENT 'first 16 bytes of SHA-256(ua)',
  ua    VARBINARY(512) NOT NULL,
  PRIMARY KEY (id, day),
  UNIQUE KEY user_agents_hash_day (hash, day)
) ENGINE=InnoDB DEFAULT CHARSET=latin1
  PARTITION BY RANGE (day) (PARTITION p_start VALUES LESS THAN (1));

-- One narrow row per click or open. AUTO_INCREMENT (id, day) appends; writers
-- are serialised on the `locks` row 'event_writer', so ids commit in order and
-- an export cursor never skips a row committed late.
CREATE TABLE events (
  id        BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  day       SMALLINT UNSIGNED NOT NULL COMMENT 'day the row was written',
  at_ms     BIGINT UNSIGNED NOT NULL COMMENT 'unix ms of the hit',
  link_day  SMALLINT UNSIGNED NOT NULL COMMENT 'the token''s day',
  rnd       BINARY(16) NOT NULL COMMENT 'the token''s random part: links (rnd, day)',
  kind      TINYINT UNSIGNED NOT NULL COMMENT '1 click, 2 open',
  method    TINYINT UNSIGNED NOT NULL COMMENT '1 GET, 2 HEAD',
  verdict   TINYINT UNSIGNED NOT NULL COMMENT '1 human, 2 bot, 3 suspect',
  reason    TINYINT UNSIGNED NOT NULL COMMENT 'see the header',
  ip        VARBINARY(16) NOT NULL COMMENT '4 or 16 bytes, anonymised as configured',
  ua_id     INT UNSIGNED NOT NULL COMMENT 'user_agents.id on the same day',
  PRIMARY KEY (id, day)
) ENGINE=InnoDB DEFAULT CHARSET=latin1
  PARTITION BY RANGE (day) (PARTITION p_start VALUES LESS THAN (1));

-- Ids of stored event batches, written in the same transaction as the
-- batch's rows: a batch replayed from the spool after an ambiguous failure is skipped.
CREATE TABLE event_batches (
  id   BINARY(16) NOT NULL,
  day  SMALLINT UNSIGNED NOT NULL,
  PRIMARY KEY (id, day)
) ENGINE=InnoDB DEFAULT CHARSET=latin1
  PARTITION BY RANGE (day) (PARTITION p_start VALUES LESS THAN (1));

-- Links hit at least once (unique counts), partitioned by the link's day.
CREATE TABLE link_seen (
  rnd   BINARY(16) NOT NULL,
  day   SMALLINT UNSIGNED NOT NULL COMMENT 'the link''s day',
  PRIMARY KEY (rnd, day)
) ENGINE=InnoDB DEFAULT CHARSET=latin1
  PARTITION BY RANGE (day) (PARTITION p_start VALUES LESS THAN (1));

-- Running totals per (mailing, kind, URL); the working set is the events
-- past rollup_state's watermark, folded in by the rollup pass. Reads never
-- count raw events.
CREATE TABLE stats_totals (
  mailing_hash  BINARY(16) NOT NULL COMMENT 'first 16 bytes of SHA-256(mailing_id)',
  kind          TINYINT UNSIGNED NOT NULL COMMENT '1 click, 2 open',
  url_hash      BINARY(16) NOT NULL COMMENT 'first 16 bytes of SHA-256(url); zeros for opens',
  mailing_id    VARBINARY(255) NOT NULL,
  url           VARBINARY(2048) NULL,
  human         BIGINT NOT NULL,
  bot           BIGINT NOT NULL,
  suspect       BIGINT NOT NULL,
  uniq          BIGINT NOT NULL COMMENT 'links hit at least once',
  PRIMARY KEY (mailing_hash, kind, url_hash)
) ENGINE=InnoDB DEFAULT CHARSET=latin1;

-- The rollup watermark: every event up to (cursor_day, cursor_id) is in stats_totals.
CREATE TABLE rollup_state (
  id          TINYINT UNSIGNED NOT NULL,
  cursor_day  SMALLINT UNSIGNED NOT NULL,
  cursor_id   BIGINT UNSIGNED NOT NULL,
  as_of_ms    BIGINT NOT NULL,
  PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=latin1;
INSERT INTO rollup_state (id, cursor_day, cursor_id, as_of_ms) VALUES (1, 0, 0, 0);

-- Rows locked FOR UPDATE to serialise one kind of writer across replicas.
CREATE TABLE locks (
  name  VARBINARY(64) NOT NULL,
  PRIMARY KEY (name)
) ENGINE=InnoDB DEFAULT CHARSET=latin1;
INSERT INTO locks (name) VALUES ('event_writer');
