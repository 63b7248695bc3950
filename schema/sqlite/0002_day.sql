-- linktrack embedded store (SQLite), day file schema, version 2: events.
--
-- Applied on top of version 1, to new day files at creation and to existing
-- ones by `migrate`. Events live in the file of the day they were WRITTEN
-- (rows append, export cursors only move forward); their link is found in
-- the file of the token's day. Mirrors schema/mysql/0002_events.sql.
--
-- Enums are small integers with stable values (src/events/classify.rs):
--   events.kind:    1 click, 2 open
--   events.method:  1 GET, 2 HEAD
--   events.verdict: 1 human, 2 bot, 3 suspect
--   events.reason:  0 none, 1 bot_user_agent, 2 head_request, 3 letter_burst,
--                   4 near_mint, 5 privacy_proxy, 6 image_proxy, 7 empty_user_agent

-- Click links per letter: the letter-burst rule compares one client's hits against it.
ALTER TABLE letters ADD COLUMN click_links INTEGER NOT NULL DEFAULT 0;

-- User agents, once per (day, UA).
CREATE TABLE user_agents (
  id    INTEGER PRIMARY KEY,
  hash  BLOB NOT NULL,                  -- first 16 bytes of SHA-256(ua)
  ua    BLOB NOT NULL
) STRICT;
CREATE UNIQUE INDEX user_agents_hash ON user_agents (hash);

-- One narrow row per click or open; the rowid appends.
CREATE TABLE events (
  id        INTEGER PRIMARY KEY,
  at_ms     INTEGER NOT NULL,           -- unix ms of the hit
  link_day  INTEGER NOT NULL,           -- the token's day (its file)
  rnd       BLOB NOT NULL,              -- the token's random part
  kind      INTEGER NOT NULL,
  method    INTEGER NOT NULL,
  verdict   INTEGER NOT NULL,
  reason    INTEGER NOT NULL,
  ip        BLOB NOT NULL,              -- 4 or 16 bytes, anonymised as configured
  ua_id     INTEGER NOT NULL            -- user_agents.id
) STRICT;

-- Ids of stored event batches, written with the batch: a replayed batch is skipped.
CREATE TABLE event_batches (
  id  BLOB NOT NULL PRIMARY KEY
) STRICT, WITHOUT ROWID;

PRAGMA user_version = 2;
