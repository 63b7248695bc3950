//! Webhook endpoints in the embedded store's main file. Every call runs on
//! the writer thread, one at a time, so the lease's read-then-write needs
//! no more than a transaction.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::db_err;
use crate::day::Day;
use crate::events::Cursor;
use crate::tenant::TenantId;
use crate::webhooks::{Change, Filters, Progress, Webhook, WebhookSecret};
use crate::{Error, Result};

const SELECT: &str = "SELECT id, tenant, url, secret, old_secret, old_secret_until_ms, filters, cursor_day, cursor_id, paused, \
                      failing_since_ms, last_success_ms, last_error, lag_events, lag_ms, created_at FROM webhooks";

fn webhook(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Webhook, String)> {
    let cursor_id: i64 = r.get(8)?;
    Ok((
        Webhook {
            id: r.get(0)?,
            tenant: TenantId(r.get(1)?),
            url: r.get(2)?,
            secret: WebhookSecret(r.get(3)?),
            old_secret: r.get::<_, Option<String>>(4)?.map(WebhookSecret),
            old_secret_until_ms: r.get(5)?,
            filters: Filters::default(),
            cursor: Cursor { day: Day(r.get(7)?), id: u64::try_from(cursor_id).unwrap_or(0) },
            paused: r.get::<_, i64>(9)? != 0,
            failing_since_ms: r.get(10)?,
            last_success_ms: r.get(11)?,
            last_error: r.get(12)?,
            lag_events: u64::try_from(r.get::<_, i64>(13)?).unwrap_or(0),
            lag_ms: r.get(14)?,
            created_at: r.get(15)?,
        },
        r.get(6)?,
    ))
}

fn sql_id(id: u64) -> Result<i64> {
    i64::try_from(id).map_err(|_| Error::Database(format!("id {id} out of range")))
}

pub fn create(main: &Connection, w: &Webhook) -> Result<u32> {
    main.execute(
        "INSERT INTO webhooks (tenant, url, secret, filters, cursor_day, cursor_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![w.tenant.0, w.url, w.secret.0, serde_json::to_string(&w.filters)?, w.cursor.day.0, sql_id(w.cursor.id)?, w.created_at],
    )
    .map_err(db_err)?;
    u32::try_from(main.last_insert_rowid()).map_err(|_| Error::Database("webhook id out of range".into()))
}

pub fn list(main: &Connection, tenant: Option<TenantId>) -> Result<Vec<Webhook>> {
    let rows: Vec<(Webhook, String)> = match tenant {
        Some(t) => main
            .prepare_cached(&format!("{SELECT} WHERE tenant = ?1 ORDER BY id"))
            .and_then(|mut s| s.query_map([t.0], webhook)?.collect()),
        None => main.prepare_cached(&format!("{SELECT} ORDER BY id")).and_then(|mut s| s.query_map([], webhook)?.collect()),
    }
    .map_err(db_err)?;
    rows.into_iter()
        .map(|(mut w, filters)| {
            w.filters = serde_json::from_str(&filters).map_err(|_| Error::Database(format!("webhook {}: bad filters", w.id)))?;
            Ok(w)
        })
        .collect()
}

pub fn delete(main: &Connection, tenant: TenantId, id: u32) -> Result<bool> {
    Ok(main.execute("DELETE FROM webhooks WHERE id = ?1 AND tenant = ?2", params![id, tenant.0]).map_err(db_err)? == 1)
}

pub fn change(main: &mut Connection, tenant: TenantId, id: u32, change: &Change) -> Result<bool> {
    let tx = main.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_err)?;
    let current: Option<String> = tx
        .query_row("SELECT secret FROM webhooks WHERE id = ?1 AND tenant = ?2", params![id, tenant.0], |r| r.get(0))
        .optional()
        .map_err(db_err)?;
    let Some(current) = current else { return Ok(false) };
    match change {
        Change::Pause => tx.execute("UPDATE webhooks SET paused = 1 WHERE id = ?1", [id]),
        Change::Resume => tx.execute("UPDATE webhooks SET paused = 0, failing_since_ms = NULL, last_error = NULL WHERE id = ?1", [id]),
        Change::RotateSecret { new, old_until_ms } => tx.execute(
            "UPDATE webhooks SET secret = ?1, old_secret = ?2, old_secret_until_ms = ?3 WHERE id = ?4",
            params![new.0, current, old_until_ms, id],
        ),
    }
    .map_err(db_err)?;
    tx.commit().map_err(db_err)?;
    Ok(true)
}

pub fn lease(main: &mut Connection, id: u32, owner: [u8; 16], now_ms: i64, until_ms: i64) -> Result<bool> {
    let tx = main.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_err)?;
    let held: Option<(Option<Vec<u8>>, i64)> = tx
        .query_row("SELECT lease_owner, lease_until_ms FROM webhooks WHERE id = ?1", [id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .map_err(db_err)?;
    let granted = match held {
        None => false,
        Some((holder, until)) => holder.is_none() || holder.as_deref() == Some(&owner[..]) || until < now_ms,
    };
    if granted {
        tx.execute("UPDATE webhooks SET lease_owner = ?1, lease_until_ms = ?2 WHERE id = ?3", params![&owner[..], until_ms, id])
            .map_err(db_err)?;
    }
    tx.commit().map_err(db_err)?;
    Ok(granted)
}

pub fn progress(main: &mut Connection, id: u32, owner: [u8; 16], p: &Progress) -> Result<bool> {
    let tx = main.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_err)?;
    let holder: Option<Option<Vec<u8>>> =
        tx.query_row("SELECT lease_owner FROM webhooks WHERE id = ?1", [id], |r| r.get(0)).optional().map_err(db_err)?;
    if holder.flatten().as_deref() != Some(&owner[..]) {
        return Ok(false);
    }
    let error = p.last_error.as_deref().map(|e| e.chars().take(512).collect::<String>());
    tx.execute(
        "UPDATE webhooks SET cursor_day = ?1, cursor_id = ?2, paused = ?3, failing_since_ms = ?4, last_success_ms = ?5, \
         last_error = ?6, lag_events = ?7, lag_ms = ?8 WHERE id = ?9",
        params![
            p.cursor.day.0,
            sql_id(p.cursor.id)?,
            i64::from(p.paused),
            p.failing_since_ms,
            p.last_success_ms,
            error,
            sql_id(p.lag_events)?,
            p.lag_ms,
            id
        ],
    )
    .map_err(db_err)?;
    tx.commit().map_err(db_err)?;
    Ok(true)
}
