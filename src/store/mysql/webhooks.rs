//! Webhook endpoints on MySQL: one unpartitioned row each. The lease and
//! the progress are read-then-written under the row lock (`FOR UPDATE`), so
//! two replicas never both believe they hold an endpoint.

use mysql_async::prelude::Queryable;
use mysql_async::{Row, TxOpts};

use super::{MysqlStore, db_err};
use crate::day::Day;
use crate::events::Cursor;
use crate::tenant::TenantId;
use crate::webhooks::{Change, Filters, Progress, Webhook, WebhookSecret};
use crate::{Error, Result};

const COLUMNS: &str = "id, tenant, url, secret, old_secret, old_secret_until_ms, filters, cursor_day, cursor_id, paused, \
                       failing_since_ms, last_success_ms, last_error, lag_events, lag_ms, created_at";

fn text(v: Vec<u8>) -> String {
    String::from_utf8_lossy(&v).into_owned()
}

fn webhook(mut r: Row) -> Result<Webhook> {
    let bad = |what: &str| Error::Database(format!("webhooks row: bad {what}"));
    macro_rules! col {
        ($i:expr, $what:expr) => {
            r.take_opt($i).ok_or_else(|| bad($what))?.map_err(|_| bad($what))?
        };
    }
    let filters: Vec<u8> = col!(6, "filters");
    let old_secret: Option<Vec<u8>> = col!(4, "old_secret");
    let last_error: Option<Vec<u8>> = col!(12, "last_error");
    let paused: u8 = col!(9, "paused");
    Ok(Webhook {
        id: col!(0, "id"),
        tenant: TenantId(col!(1, "tenant")),
        url: text(col!(2, "url")),
        secret: WebhookSecret(text(col!(3, "secret"))),
        old_secret: old_secret.map(|s| WebhookSecret(text(s))),
        old_secret_until_ms: col!(5, "old_secret_until_ms"),
        filters: serde_json::from_slice::<Filters>(&filters).map_err(|_| bad("filters"))?,
        cursor: Cursor { day: Day(col!(7, "cursor_day")), id: col!(8, "cursor_id") },
        paused: paused != 0,
        failing_since_ms: col!(10, "failing_since_ms"),
        last_success_ms: col!(11, "last_success_ms"),
        last_error: last_error.map(text),
        lag_events: col!(13, "lag_events"),
        lag_ms: col!(14, "lag_ms"),
        created_at: col!(15, "created_at"),
    })
}

impl MysqlStore {
    pub(super) async fn create_webhook_inner(&self, w: &Webhook) -> Result<u32> {
        let mut conn = self.conn().await?;
        let filters = serde_json::to_vec(&w.filters)?;
        conn.exec_drop(
            "INSERT INTO webhooks (tenant, url, secret, filters, cursor_day, cursor_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (w.tenant.0, w.url.as_bytes(), w.secret.0.as_bytes(), filters, w.cursor.day.0, w.cursor.id, w.created_at),
        )
        .await
        .map_err(db_err)?;
        let id = conn.last_insert_id().ok_or_else(|| Error::Database("no webhook id".into()))?;
        u32::try_from(id).map_err(|_| Error::Database(format!("webhook id {id} out of range")))
    }

    pub(super) async fn webhooks_inner(&self, tenant: Option<TenantId>) -> Result<Vec<Webhook>> {
        let mut conn = self.conn().await?;
        let rows: Vec<Row> = match tenant {
            Some(t) => conn.exec(format!("SELECT {COLUMNS} FROM webhooks WHERE tenant = ? ORDER BY id"), (t.0,)).await,
            None => conn.query(format!("SELECT {COLUMNS} FROM webhooks ORDER BY id")).await,
        }
        .map_err(db_err)?;
        rows.into_iter().map(webhook).collect()
    }

    pub(super) async fn delete_webhook_inner(&self, tenant: TenantId, id: u32) -> Result<bool> {
        let mut conn = self.conn().await?;
        conn.exec_drop("DELETE FROM webhooks WHERE id = ? AND tenant = ?", (id, tenant.0)).await.map_err(db_err)?;
        Ok(conn.affected_rows() == 1)
    }

    pub(super) async fn change_webhook_inner(&self, tenant: TenantId, id: u32, change: &Change) -> Result<bool> {
        let mut conn = self.conn().await?;
        let mut tx = conn.start_transaction(TxOpts::default()).await.map_err(db_err)?;
        let found: Option<Vec<u8>> =
            tx.exec_first("SELECT secret FROM webhooks WHERE id = ? AND tenant = ? FOR UPDATE", (id, tenant.0)).await.map_err(db_err)?;
        let Some(current) = found else {
            tx.rollback().await.map_err(db_err)?;
            return Ok(false);
        };
        match change {
            Change::Pause => tx.exec_drop("UPDATE webhooks SET paused = 1 WHERE id = ?", (id,)).await,
            Change::Resume => {
                tx.exec_drop("UPDATE webhooks SET paused = 0, failing_since_ms = NULL, last_error = NULL WHERE id = ?", (id,)).await
            }
            Change::RotateSecret { new, old_until_ms } => {
                tx.exec_drop(
                    "UPDATE webhooks SET secret = ?, old_secret = ?, old_secret_until_ms = ? WHERE id = ?",
                    (new.0.as_bytes(), current, old_until_ms, id),
                )
                .await
            }
        }
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(true)
    }

    pub(super) async fn lease_webhook_inner(&self, id: u32, owner: [u8; 16], now_ms: i64, until_ms: i64) -> Result<bool> {
        let mut conn = self.conn().await?;
        let mut tx = conn.start_transaction(TxOpts::default()).await.map_err(db_err)?;
        let held: Option<(Option<Vec<u8>>, i64)> =
            tx.exec_first("SELECT lease_owner, lease_until_ms FROM webhooks WHERE id = ? FOR UPDATE", (id,)).await.map_err(db_err)?;
        let granted = match held {
            None => false,
            Some((holder, until)) => holder.is_none() || holder.as_deref() == Some(&owner[..]) || until < now_ms,
        };
        if granted {
            tx.exec_drop("UPDATE webhooks SET lease_owner = ?, lease_until_ms = ? WHERE id = ?", (&owner[..], until_ms, id))
                .await
                .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(granted)
    }

    pub(super) async fn webhook_progress_inner(&self, id: u32, owner: [u8; 16], p: &Progress) -> Result<bool> {
        let mut conn = self.conn().await?;
        let mut tx = conn.start_transaction(TxOpts::default()).await.map_err(db_err)?;
        let holder: Option<Option<Vec<u8>>> =
            tx.exec_first("SELECT lease_owner FROM webhooks WHERE id = ? FOR UPDATE", (id,)).await.map_err(db_err)?;
        if holder.flatten().as_deref() != Some(&owner[..]) {
            tx.rollback().await.map_err(db_err)?;
            return Ok(false);
        }
        tx.exec_drop(
            "UPDATE webhooks SET cursor_day = ?, cursor_id = ?, paused = ?, failing_since_ms = ?, last_success_ms = ?, \
             last_error = ?, lag_events = ?, lag_ms = ? WHERE id = ?",
            mysql_async::Params::Positional(vec![
                p.cursor.day.0.into(),
                p.cursor.id.into(),
                u8::from(p.paused).into(),
                p.failing_since_ms.into(),
                p.last_success_ms.into(),
                p.last_error.as_deref().map(|e| &e.as_bytes()[..e.len().min(512)]).into(),
                p.lag_events.into(),
                p.lag_ms.into(),
                id.into(),
            ]),
        )
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(true)
    }
}
