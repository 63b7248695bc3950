-- linktrack embedded store (SQLite), main file, migration 0001.
--
-- The main file holds what is not day-scoped: settings here, and the
-- `schema_migrations` table that `linktrack migrate` keeps itself. Day-scoped
-- data lives in one file per day (see 0001_day.sql), so a day is dropped by
-- deleting its file.

-- Small settings, e.g. the generated token MAC key.
CREATE TABLE settings (
  name   TEXT NOT NULL PRIMARY KEY,
  value  BLOB NOT NULL
) STRICT, WITHOUT ROWID;
