-- linktrack embedded store (SQLite), day file schema, version 4: events name
-- their link's letter and URL.
--
-- Mirrors schema/mysql/0005_event_link_ids.sql: the redirect already knows a
-- link's letter and URL ids (its resolve reads them from the link row, a mint
-- hands them to the cache), so each event carries them, and the rollup and
-- the export read `letters` and `urls` of the token's day file by rowid
-- instead of looking the link up again. Both NULL when the hit's lookup did
-- not find them (a pixel answered while the store was unavailable, a batch
-- spooled by an older version): such events are read through the link, as
-- before. Both set or both NULL; url_id is 0 for open pixels.
ALTER TABLE events ADD COLUMN letter_id INTEGER;
ALTER TABLE events ADD COLUMN url_id INTEGER;
PRAGMA user_version = 4;
