-- linktrack embedded store (SQLite), main file schema, version 4: tenants
-- and scoped API keys (schema/mysql/0006_tenants.sql).
--
-- Statistics rows gain their tenant (existing ones belong to the default
-- tenant, 1); SQLite cannot change a primary key in place, so the table is
-- rebuilt. `mailings` records which tenant minted for which mailing id; the
-- store fills it from the day files' letters right after this migration.
CREATE TABLE tenants (
  id    INTEGER PRIMARY KEY,
  name  TEXT NOT NULL UNIQUE
) STRICT;
INSERT INTO tenants (id, name) VALUES (1, 'default');

CREATE TABLE api_keys (
  id          INTEGER PRIMARY KEY,
  tenant      INTEGER NOT NULL,
  scopes      INTEGER NOT NULL,          -- bits: 1 mint, 2 read, 4 admin
  digest      BLOB NOT NULL UNIQUE,      -- SHA-256 of the key
  prefix      TEXT NOT NULL,
  label       TEXT NOT NULL,
  created_at  INTEGER NOT NULL,          -- unix seconds
  revoked_at  INTEGER                    -- unix seconds; NULL while valid
) STRICT;

CREATE TABLE mailings (
  tenant        INTEGER NOT NULL,
  mailing_hash  BLOB NOT NULL,           -- first 16 bytes of SHA-256(len64be(mailing_id) || mailing_id)
  mailing_id    TEXT NOT NULL,
  PRIMARY KEY (tenant, mailing_hash)
) STRICT, WITHOUT ROWID;
INSERT INTO mailings (tenant, mailing_hash, mailing_id) SELECT DISTINCT 1, mailing_hash, mailing_id FROM stats_totals;

CREATE TABLE stats_totals_v4 (
  tenant        INTEGER NOT NULL,
  mailing_hash  BLOB NOT NULL,
  kind          INTEGER NOT NULL,
  url_hash      BLOB NOT NULL,
  mailing_id    TEXT NOT NULL,
  url           TEXT,
  human         INTEGER NOT NULL,
  bot           INTEGER NOT NULL,
  suspect       INTEGER NOT NULL,
  uniq          INTEGER NOT NULL,
  PRIMARY KEY (tenant, mailing_hash, kind, url_hash)
) STRICT, WITHOUT ROWID;
INSERT INTO stats_totals_v4 SELECT 1, mailing_hash, kind, url_hash, mailing_id, url, human, bot, suspect, uniq FROM stats_totals;
DROP TABLE stats_totals;
ALTER TABLE stats_totals_v4 RENAME TO stats_totals;
