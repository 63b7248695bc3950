-- linktrack MySQL schema, migration 0007: webhook endpoints.
--
-- One row per endpoint, with its delivery state: the cursor up to which
-- events were acknowledged, failure bookkeeping, and the lease that lets one
-- replica at a time deliver it (owner and expiry, renewed every pass).
-- The signing secrets are stored as issued (they must sign), like the token
-- keys in `settings`.
CREATE TABLE webhooks (
  id                   INT UNSIGNED NOT NULL AUTO_INCREMENT,
  tenant               SMALLINT UNSIGNED NOT NULL COMMENT 'tenants.id',
  url                  VARBINARY(2048) NOT NULL,
  secret               VARBINARY(128) NOT NULL COMMENT 'whsec_...',
  old_secret           VARBINARY(128) NULL COMMENT 'the secret before the last rotation',
  old_secret_until_ms  BIGINT NOT NULL DEFAULT 0 COMMENT 'old_secret also signs until then',
  filters              BLOB NOT NULL COMMENT 'JSON: mailings, kinds, verdicts',
  cursor_day           SMALLINT UNSIGNED NOT NULL,
  cursor_id            BIGINT UNSIGNED NOT NULL,
  paused               TINYINT UNSIGNED NOT NULL DEFAULT 0,
  failing_since_ms     BIGINT NULL,
  last_success_ms      BIGINT NULL,
  last_error           VARBINARY(512) NULL,
  lag_events           BIGINT UNSIGNED NOT NULL DEFAULT 0,
  lag_ms               BIGINT NOT NULL DEFAULT 0,
  lease_owner          BINARY(16) NULL,
  lease_until_ms       BIGINT NOT NULL DEFAULT 0,
  created_at           BIGINT NOT NULL COMMENT 'unix seconds',
  PRIMARY KEY (id),
  KEY webhooks_tenant (tenant)
) ENGINE=InnoDB DEFAULT CHARSET=latin1;
