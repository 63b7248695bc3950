-- linktrack embedded store (SQLite), day file schema, version 5: letters
-- carry their tenant (schema/mysql/0006_tenants.sql). Letters stored before
-- belong to the default tenant, 1.
ALTER TABLE letters ADD COLUMN tenant INTEGER NOT NULL DEFAULT 1;
PRAGMA user_version = 5;
