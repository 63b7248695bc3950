-- linktrack embedded store (SQLite), main file schema, version 5: webhook
-- endpoints and their delivery state (schema/mysql/0007_webhooks.sql).
CREATE TABLE webhooks (
  id                   INTEGER PRIMARY KEY,
  tenant               INTEGER NOT NULL,
  url                  TEXT NOT NULL,
  secret               TEXT NOT NULL,
  old_secret           TEXT,
  old_secret_until_ms  INTEGER NOT NULL DEFAULT 0,
  filters              TEXT NOT NULL,      -- JSON: mailings, kinds, verdicts
  cursor_day           INTEGER NOT NULL,
  cursor_id            INTEGER NOT NULL,
  paused               INTEGER NOT NULL DEFAULT 0,
  failing_since_ms     INTEGER,
  last_success_ms      INTEGER,
  last_error           TEXT,
  lag_events           INTEGER NOT NULL DEFAULT 0,
  lag_ms               INTEGER NOT NULL DEFAULT 0,
  lease_owner          BLOB,
  lease_until_ms       INTEGER NOT NULL DEFAULT 0,
  created_at           INTEGER NOT NULL
) STRICT;
CREATE INDEX webhooks_tenant ON webhooks (tenant);
