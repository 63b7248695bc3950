-- linktrack embedded store (SQLite), main file schema, version 3: the id
-- sequence of token v2 links (schema/mysql/0004_links_v2.sql). Ranges are
-- handed out in blocks by the writer thread; gaps after a restart are fine.
CREATE TABLE sequences (
  name     TEXT PRIMARY KEY,
  next_id  INTEGER NOT NULL
) STRICT;
INSERT INTO sequences (name, next_id) VALUES ('links', 1);
