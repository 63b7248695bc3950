-- linktrack embedded store (SQLite), day file schema, version 1.
--
-- Each UTC day has its own database file, `<main>.days/YYYY-MM-DD.db`,
-- created with this schema by partition maintenance (never by a mint) and
-- deleted whole when the day passes retention. The file is the partition, so
-- no table carries a `day` column; otherwise the tables mirror
-- schema/mysql/0001_core.sql. `PRAGMA user_version` records the version.
--
-- Enums are small integers with stable values:
--   links.kind: 1 = click (redirect), 2 = open (pixel)

-- Destinations, once per (day, URL).
CREATE TABLE urls (
  id    INTEGER PRIMARY KEY,            -- rowid: inserts append
  hash  BLOB NOT NULL,                  -- first 16 bytes of SHA-256(url)
  url   TEXT NOT NULL
) STRICT;
CREATE UNIQUE INDEX urls_hash ON urls (hash);

-- One row per mint request: recipient and mailing once per letter, out of the hot row.
CREATE TABLE letters (
  id          INTEGER PRIMARY KEY,
  minted_at   INTEGER NOT NULL,         -- unix seconds
  mailing_id  TEXT NOT NULL,
  recipient   TEXT NOT NULL,
  meta        TEXT                      -- compact JSON text
) STRICT;

-- The hot table: one narrow row per token. The rowid keeps inserts
-- appending; the unique index on the 16 random bytes is the resolve path.
CREATE TABLE links (
  id         INTEGER PRIMARY KEY,
  rnd        BLOB NOT NULL,             -- the token's 128 random bits
  kind       INTEGER NOT NULL,          -- 1 click, 2 open
  url_id     INTEGER NOT NULL,          -- urls.id; 0 for open pixels
  letter_id  INTEGER NOT NULL           -- letters.id
) STRICT;
CREATE UNIQUE INDEX links_rnd ON links (rnd);

-- Idempotency-Key replay, looked up in the mint day's file and the day before.
CREATE TABLE idempotency (
  key_hash   BLOB NOT NULL PRIMARY KEY, -- SHA-256(api key, Idempotency-Key), 16 bytes
  body_hash  BLOB NOT NULL,
  tokens     TEXT NOT NULL              -- minted tokens, newline-separated, request order, pixel last
) STRICT, WITHOUT ROWID;

PRAGMA user_version = 1;
