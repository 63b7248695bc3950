-- linktrack embedded store (SQLite), day file schema, version 6: links know
-- their position in the letter and how their token was spelled
-- (schema/mysql/0008_insights.sql). pos 65535: none (the pixel, links
-- stored before); spell 0: unknown.
ALTER TABLE links_v2 ADD COLUMN pos INTEGER NOT NULL DEFAULT 65535;
ALTER TABLE links_v2 ADD COLUMN spell INTEGER NOT NULL DEFAULT 0;
PRAGMA user_version = 6;
