-- linktrack MySQL schema, migration 0006: tenants and scoped API keys.
--
-- Every letter belongs to a tenant (SMALLINT, 2 bytes, added last so MySQL
-- 8.0.12+ and MariaDB add it instantly, without rebuilding `letters`), and
-- so does every statistics row. Rows stored before this migration belong to
-- the default tenant, id 1, which is also the tenant of the bootstrap keys
-- of LINKTRACK_API_KEYS.
--
-- `mailings` records which tenant minted for which mailing id (one row per
-- tenant and mailing, written by the mint that first names it), so stats of
-- a mailing that has no hits yet answer zeros to its tenant and 404 to every
-- other tenant. It is backfilled from the letters already stored.
--
-- API keys are stored as SHA-256 digests, never as keys.

CREATE TABLE tenants (
  id    SMALLINT UNSIGNED NOT NULL AUTO_INCREMENT,
  name  VARBINARY(64) NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY tenants_name (name)
) ENGINE=InnoDB DEFAULT CHARSET=latin1;

INSERT INTO tenants (id, name) VALUES (1, 'default');

CREATE TABLE api_keys (
  id          INT UNSIGNED NOT NULL AUTO_INCREMENT,
  tenant      SMALLINT UNSIGNED NOT NULL,
  scopes      TINYINT UNSIGNED NOT NULL COMMENT 'bits: 1 mint, 2 read, 4 admin',
  digest      BINARY(32) NOT NULL COMMENT 'SHA-256 of the key',
  prefix      VARBINARY(16) NOT NULL COMMENT 'the key''s first characters, to recognise it',
  label       VARBINARY(255) NOT NULL,
  created_at  BIGINT NOT NULL COMMENT 'unix seconds',
  revoked_at  BIGINT NULL COMMENT 'unix seconds; NULL while valid',
  PRIMARY KEY (id),
  UNIQUE KEY api_keys_digest (digest)
) ENGINE=InnoDB DEFAULT CHARSET=latin1;

CREATE TABLE mailings (
  tenant        SMALLINT UNSIGNED NOT NULL,
  mailing_hash  BINARY(16) NOT NULL COMMENT 'first 16 bytes of SHA-256(len64be(mailing_id) || mailing_id)',
  mailing_id    VARBINARY(255) NOT NULL,
  PRIMARY KEY (tenant, mailing_hash)
) ENGINE=InnoDB DEFAULT CHARSET=latin1;

ALTER TABLE letters ADD COLUMN tenant SMALLINT UNSIGNED NOT NULL DEFAULT 1 COMMENT 'tenants.id';

ALTER TABLE stats_totals
  ADD COLUMN tenant SMALLINT UNSIGNED NOT NULL DEFAULT 1 COMMENT 'tenants.id' FIRST,
  DROP PRIMARY KEY,
  ADD PRIMARY KEY (tenant, mailing_hash, kind, url_hash);

-- The same digest as the service's hash16: SHA-256 over the 8-byte
-- big-endian length followed by the bytes, first 16 bytes.
INSERT INTO mailings (tenant, mailing_hash, mailing_id)
  SELECT DISTINCT 1, UNHEX(LEFT(SHA2(CONCAT(UNHEX(LPAD(HEX(LENGTH(mailing_id)), 16, '0')), mailing_id), 256), 32)), mailing_id
  FROM letters
  ON DUPLICATE KEY UPDATE tenant = mailings.tenant;
