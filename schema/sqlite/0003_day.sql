-- linktrack embedded store (SQLite), day file schema, version 3: token v2 links.
--
-- Mirrors schema/mysql/0004_links_v2.sql: a v2 token hides its link's id
-- (reserved from the main file's `sequences` before the insert) and an
-- 80-bit secret, so the row is found by rowid and the secret compared; no
-- random index is written. v1 links stay in `links` until the day is dropped.
CREATE TABLE links_v2 (
  id         INTEGER PRIMARY KEY,       -- from sequences(links), carried in the token
  secret     BLOB NOT NULL,             -- the token's hidden secret (10 bytes)
  kind       INTEGER NOT NULL,          -- 1 click, 2 open
  url_id     INTEGER NOT NULL,          -- urls.id; 0 for open pixels
  letter_id  INTEGER NOT NULL           -- letters.id
) STRICT;

-- Events name a v2 link by its id (NULL for v1 links, found by rnd).
ALTER TABLE events ADD COLUMN link_id INTEGER;
PRAGMA user_version = 3;
