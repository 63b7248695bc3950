-- linktrack MySQL schema, migration 0004: token v2 links, found by primary key.
--
-- A v2 token hides its link's id (reserved from `sequences` before the
-- insert) and an 80-bit secret in one AES block (docs/token.md). So the
-- link row needs no random index at all: inserts append in id order, and a
-- resolve is one primary-key dive in the token's day partition plus a
-- compare of the secret. v1 links stay in `links` (found by UNIQUE (rnd,
-- day)) until their days are dropped; nothing new is written there.
--
-- links_v2.kind: 1 click, 2 open (as links.kind).
--
-- The ALTER goes first: it is the statement that can time out on a busy
-- table (DDL commits statement by statement), and a re-run must not stop
-- at "table already exists". The column goes last, so MySQL 8.0.12+ and
-- MariaDB add it instantly instead of rebuilding `events`.
-- Events name a v2 link by its id (NULL for v1 links, found by rnd).
ALTER TABLE events ADD COLUMN link_id BIGINT UNSIGNED NULL COMMENT 'links_v2.id for v2 tokens; NULL for v1';

CREATE TABLE IF NOT EXISTS links_v2 (
  id         BIGINT UNSIGNED NOT NULL COMMENT 'from sequences(links), carried in the token',
  day        SMALLINT UNSIGNED NOT NULL,
  secret     BINARY(10) NOT NULL COMMENT 'the token''s hidden secret, compared on resolve',
  kind       TINYINT UNSIGNED NOT NULL COMMENT '1 click, 2 open',
  url_id     BIGINT UNSIGNED NOT NULL COMMENT 'urls.id on the same day; 0 for open pixels',
  letter_id  BIGINT UNSIGNED NOT NULL COMMENT 'letters.id on the same day',
  PRIMARY KEY (id, day)
) ENGINE=InnoDB DEFAULT CHARSET=latin1
  PARTITION BY RANGE (day) (PARTITION p_start VALUES LESS THAN (1));

-- Id ranges handed out to replicas in blocks: UPDATE ... SET next_id =
-- LAST_INSERT_ID(next_id + n), as a Vitess sequence does. One short
-- autocommit statement per block, so the row is never hot.
CREATE TABLE IF NOT EXISTS sequences (
  name     VARBINARY(32) NOT NULL,
  next_id  BIGINT UNSIGNED NOT NULL,
  PRIMARY KEY (name)
) ENGINE=InnoDB DEFAULT CHARSET=latin1;
INSERT IGNORE INTO sequences (name, next_id) VALUES ('links', 1);

