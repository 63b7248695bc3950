//! Tenants, stored API keys and recipient erasure on MySQL.
//!
//! Keys and tenants are small unpartitioned tables read at start-up and on
//! each key refresh. Erasure walks the kept days of `letters` one partition
//! at a time, each in its own short READ COMMITTED transaction, so it locks
//! only the rows it changes and never the insert end of today's partition.

use mysql_async::prelude::Queryable;
use mysql_async::{IsolationLevel, TxOpts};

use super::{MysqlStore, db_err};
use crate::tenant::{NewApiKey, Scopes, StoredApiKey, TenantId};
use crate::{Error, Result};

/// An `api_keys` row joined with its tenant's name.
type KeyRow = (u32, u16, Vec<u8>, u8, Vec<u8>, Vec<u8>, Vec<u8>, i64, Option<i64>);

impl MysqlStore {
    pub(super) async fn tenant_inner(&self, name: &str, create: bool) -> Result<Option<TenantId>> {
        let mut conn = self.conn().await?;
        if create {
            conn.exec_drop("INSERT INTO tenants (name) VALUES (?) ON DUPLICATE KEY UPDATE name = name", (name.as_bytes(),)).await.map_err(
                |e| match super::server_code(&e) {
                    // SMALLINT UNSIGNED ran out: 65535 tenants.
                    Some(1062 | 1467) => Error::Config("no tenant id is left (at most 65535 tenants)".into()),
                    _ => db_err(e),
                },
            )?;
        }
        let id: Option<u16> = conn.exec_first("SELECT id FROM tenants WHERE name = ?", (name.as_bytes(),)).await.map_err(db_err)?;
        Ok(id.map(TenantId))
    }

    pub(super) async fn insert_api_key_inner(&self, key: &NewApiKey) -> Result<u32> {
        let mut conn = self.conn().await?;
        conn.exec_drop(
            "INSERT INTO api_keys (tenant, scopes, digest, prefix, label, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (key.tenant.0, key.scopes.bits(), &key.digest[..], key.prefix.as_bytes(), key.label.as_bytes(), key.created_at),
        )
        .await
        .map_err(db_err)?;
        let id = conn.last_insert_id().ok_or_else(|| Error::Database("no api key id".into()))?;
        u32::try_from(id).map_err(|_| Error::Database(format!("api key id {id} out of range")))
    }

    pub(super) async fn api_keys_inner(&self) -> Result<Vec<StoredApiKey>> {
        let mut conn = self.conn().await?;
        let rows: Vec<KeyRow> = conn
            .query(
                "SELECT k.id, k.tenant, t.name, k.scopes, k.digest, k.prefix, k.label, k.created_at, k.revoked_at \
                 FROM api_keys k JOIN tenants t ON t.id = k.tenant ORDER BY k.id",
            )
            .await
            .map_err(db_err)?;
        rows.into_iter()
            .map(|(id, tenant, tenant_name, scopes, digest, prefix, label, created_at, revoked_at)| {
                Ok(StoredApiKey {
                    id,
                    tenant: TenantId(tenant),
                    tenant_name: String::from_utf8_lossy(&tenant_name).into_owned(),
                    scopes: Scopes::from_bits(scopes).ok_or_else(|| Error::Database(format!("api key {id}: unknown scopes {scopes}")))?,
                    digest: digest.try_into().map_err(|_| Error::Database(format!("api key {id}: digest is not 32 bytes")))?,
                    prefix: String::from_utf8_lossy(&prefix).into_owned(),
                    label: String::from_utf8_lossy(&label).into_owned(),
                    created_at,
                    revoked_at,
                })
            })
            .collect()
    }

    pub(super) async fn revoke_api_key_inner(&self, id: u32, now: i64) -> Result<bool> {
        let mut conn = self.conn().await?;
        conn.exec_drop("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (now, id)).await.map_err(db_err)?;
        Ok(conn.affected_rows() == 1)
    }

    pub(super) async fn erase_recipient_inner(&self, tenant: TenantId, recipient: &str) -> Result<u64> {
        let days: Vec<u16> = {
            let mut conn = self.conn().await?;
            let list = tokio::time::timeout(self.statement_timeout, Self::list_partitions(&mut conn))
                .await
                .map_err(|_| Error::Unavailable("database deadline exceeded".into()))??;
            list.get("letters").map(|parts| parts.iter().map(|(day, _)| day.0).collect()).unwrap_or_default()
        };
        let mut erased = 0;
        for day in days {
            let changed = self
                .deadline(async {
                    let mut conn = self.conn().await?;
                    let mut opts = TxOpts::default();
                    opts.with_isolation_level(IsolationLevel::ReadCommitted);
                    let mut tx = conn.start_transaction(opts).await.map_err(db_err)?;
                    tx.exec_drop(
                        "UPDATE letters SET recipient = '', meta = NULL WHERE day = ? AND tenant = ? AND recipient = ?",
                        (day, tenant.0, recipient.as_bytes()),
                    )
                    .await
                    .map_err(db_err)?;
                    let n = tx.affected_rows();
                    tx.commit().await.map_err(db_err)?;
                    Ok(n)
                })
                .await?;
            erased += changed;
        }
        Ok(erased)
    }
}
