-- linktrack MySQL schema, migration 0005: events name their link's letter and URL.
--
-- The redirect already knows a link's letter and URL ids (its resolve reads
-- them from the same link row, and a mint hands them to the cache), so the
-- event of a hit carries them, and the rollup and the export read `letters`
-- and `urls` by primary key on the event's link_day instead of looking the
-- link up again (`links`/`links_v2`, then letter and URL).
--
-- Both are NULL when the hit's lookup did not find them: an open pixel
-- answered while the database was down, or a batch spooled by a version
-- before this one. Such events are read through the link, as before. Both
-- are set or both NULL, never one of them (nothing partial is stored).
-- url_id is 0 for open pixels, as in the link row.
--
-- Nullable columns added last: MySQL 8.0.12+ and MariaDB add them instantly,
-- without rebuilding `events`.
ALTER TABLE events
  ADD COLUMN letter_id BIGINT UNSIGNED NULL COMMENT 'letters.id on link_day, as the hit''s lookup found it; NULL: read through the link',
  ADD COLUMN url_id BIGINT UNSIGNED NULL COMMENT 'urls.id on link_day (0 for open pixels); NULL exactly when letter_id is';
