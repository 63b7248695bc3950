//! Tenants, stored API keys, the mailings registry and recipient erasure
//! in the embedded store. Tenants, keys and mailings live in the main file;
//! erasure visits every day file, one transaction each.

use rusqlite::{Connection, OptionalExtension, params};

use super::db_err;
use crate::link::hash16;
use crate::tenant::{NewApiKey, Scopes, StoredApiKey, TenantId};
use crate::{Error, Result};

pub fn tenant(main: &Connection, name: &str, create: bool) -> Result<Option<TenantId>> {
    if create {
        main.execute("INSERT INTO tenants (name) VALUES (?1) ON CONFLICT (name) DO NOTHING", [name]).map_err(db_err)?;
    }
    let id: Option<i64> = main
        .prepare_cached("SELECT id FROM tenants WHERE name = ?1")
        .and_then(|mut s| s.query_row([name], |r| r.get(0)).optional())
        .map_err(db_err)?;
    id.map(|id| u16::try_from(id).map(TenantId).map_err(|_| Error::Config("no tenant id is left (at most 65535 tenants)".into())))
        .transpose()
}

pub fn insert_api_key(main: &Connection, key: &NewApiKey) -> Result<u32> {
    main.execute(
        "INSERT INTO api_keys (tenant, scopes, digest, prefix, label, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![key.tenant.0, key.scopes.bits(), &key.digest[..], key.prefix, key.label, key.created_at],
    )
    .map_err(db_err)?;
    u32::try_from(main.last_insert_rowid()).map_err(|_| Error::Database("api key id out of range".into()))
}

pub fn api_keys(main: &Connection) -> Result<Vec<StoredApiKey>> {
    let mut stmt = main
        .prepare_cached(
            "SELECT k.id, k.tenant, t.name, k.scopes, k.digest, k.prefix, k.label, k.created_at, k.revoked_at \
             FROM api_keys k JOIN tenants t ON t.id = k.tenant ORDER BY k.id",
        )
        .map_err(db_err)?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, u32>(0)?,
                r.get::<_, u16>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, u8>(3)?,
                r.get::<_, Vec<u8>>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, String>(6)?,
                r.get::<_, i64>(7)?,
                r.get::<_, Option<i64>>(8)?,
            ))
        })
        .map_err(db_err)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(db_err)?;
    rows.into_iter()
        .map(|(id, tenant, tenant_name, scopes, digest, prefix, label, created_at, revoked_at)| {
            Ok(StoredApiKey {
                id,
                tenant: TenantId(tenant),
                tenant_name,
                scopes: Scopes::from_bits(scopes).ok_or_else(|| Error::Database(format!("api key {id}: unknown scopes {scopes}")))?,
                digest: digest.try_into().map_err(|_| Error::Database(format!("api key {id}: digest is not 32 bytes")))?,
                prefix,
                label,
                created_at,
                revoked_at,
            })
        })
        .collect()
}

pub fn revoke_api_key(main: &Connection, id: u32, now: i64) -> Result<bool> {
    let n = main.execute("UPDATE api_keys SET revoked_at = ?1 WHERE id = ?2 AND revoked_at IS NULL", params![now, id]).map_err(db_err)?;
    Ok(n == 1)
}

/// Record that `tenant` minted for `mailing_id` (no-op when known).
pub fn note_mailing(main: &Connection, tenant: TenantId, mailing_id: &str) -> Result<()> {
    main.prepare_cached("INSERT INTO mailings (tenant, mailing_hash, mailing_id) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING")
        .and_then(|mut s| s.execute(params![tenant.0, &hash16(&[mailing_id.as_bytes()])[..], mailing_id]))
        .map_err(db_err)?;
    Ok(())
}

/// The distinct (tenant, mailing) pairs of one day file's letters.
pub fn day_mailings(day: &Connection) -> Result<Vec<(u16, String)>> {
    day.prepare("SELECT DISTINCT tenant, mailing_id FROM letters")
        .and_then(|mut s| s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
        .map_err(db_err)
}

/// Erase a recipient from one day file's letters; the letters changed.
pub fn erase_in_day(day: &Connection, tenant: TenantId, recipient: &str) -> Result<u64> {
    let n = day
        .execute("UPDATE letters SET recipient = '', meta = NULL WHERE tenant = ?1 AND recipient = ?2", params![tenant.0, recipient])
        .map_err(db_err)?;
    Ok(n as u64)
}
