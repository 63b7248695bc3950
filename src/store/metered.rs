//! [`Metered`], a [`Store`] decorator that counts every call by kind and its
//! errors, for both backends alike: what `/metrics` shows as
//! `linktrack_db_statements_total{kind}` and
//! `linktrack_db_statement_errors_total{kind}`.
//!
//! One count is one store call: a single statement (a resolve, a setting
//! read), or the single transaction the call runs (a mint, an event batch, a
//! rollup apply). A call that fails before reaching the database (no pooled
//! connection in time) counts as an error of its kind. The counters are
//! atomics resolved once per kind, so counting allocates nothing.

use std::future::Future;
use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use crate::Result;
use crate::day::Day;
use crate::events::{EventBatch, EventQuery, EventRow, MailingStats, RollupApply, RollupState, SeriesRow, WriteOutcome};
use crate::link::{MintBatch, MintOutcome, Resolved};
use crate::store::{MaintenancePolicy, MaintenanceReport, PoolMetrics, ReadRouting, Store};
use crate::tenant::{NewApiKey, StoredApiKey, TenantId};
use crate::token::{Random, Version};
use crate::webhooks::{Change as WebhookChange, Progress as WebhookProgress, Webhook};

/// What a store call does, as the `kind` label names it. Labels only, never stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementKind {
    Resolve,
    Mint,
    ReserveIds,
    EventsInsert,
    /// Event pages read by the export and by the rollup.
    EventsRead,
    RollupState,
    RollupApply,
    Stats,
    Readiness,
    /// Partition maintenance passes.
    Maintenance,
    Migrate,
    /// Settings reads and writes (token keys).
    Setting,
    /// Tenant lookups and creation.
    Tenant,
    /// API key inserts, reads (the periodic refresh) and revocations.
    ApiKeys,
    /// Recipient erasures.
    Erasure,
    /// Webhook endpoint writes and reads (create, list, delete, pause, resume, rotate).
    Webhooks,
    /// The webhook deliverer's lease renewals and progress records.
    WebhookDelivery,
}

impl StatementKind {
    pub const ALL: [StatementKind; 17] = [
        StatementKind::Resolve,
        StatementKind::Mint,
        StatementKind::ReserveIds,
        StatementKind::EventsInsert,
        StatementKind::EventsRead,
        StatementKind::RollupState,
        StatementKind::RollupApply,
        StatementKind::Stats,
        StatementKind::Readiness,
        StatementKind::Maintenance,
        StatementKind::Migrate,
        StatementKind::Setting,
        StatementKind::Tenant,
        StatementKind::ApiKeys,
        StatementKind::Erasure,
        StatementKind::Webhooks,
        StatementKind::WebhookDelivery,
    ];

    /// The `kind` label value.
    pub fn label(self) -> &'static str {
        match self {
            StatementKind::Resolve => "resolve",
            StatementKind::Mint => "mint",
            StatementKind::ReserveIds => "reserve_ids",
            StatementKind::EventsInsert => "events_insert",
            StatementKind::EventsRead => "events_read",
            StatementKind::RollupState => "rollup_state",
            StatementKind::RollupApply => "rollup_apply",
            StatementKind::Stats => "stats",
            StatementKind::Readiness => "readiness",
            StatementKind::Maintenance => "maintenance",
            StatementKind::Migrate => "migrate",
            StatementKind::Setting => "setting",
            StatementKind::Tenant => "tenant",
            StatementKind::ApiKeys => "api_keys",
            StatementKind::Erasure => "erasure",
            StatementKind::Webhooks => "webhooks",
            StatementKind::WebhookDelivery => "webhook_delivery",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: &'static str,
}

/// The counters [`Metered`] adds to, shared with `/metrics`. Every kind's
/// series exists from the start (at 0), so a rate never lacks its series.
#[derive(Debug, Clone)]
pub struct StatementCounts {
    pub calls: Family<KindLabel, Counter>,
    pub errors: Family<KindLabel, Counter>,
    /// `calls` and `errors` of each kind, in [`StatementKind::ALL`] order, resolved once.
    resolved: Arc<[(Counter, Counter); 17]>,
}

impl Default for StatementCounts {
    fn default() -> StatementCounts {
        let (calls, errors) = (Family::<KindLabel, Counter>::default(), Family::<KindLabel, Counter>::default());
        let resolved = StatementKind::ALL.map(|k| {
            let label = KindLabel { kind: k.label() };
            (calls.get_or_create(&label).clone(), errors.get_or_create(&label).clone())
        });
        StatementCounts { calls, errors, resolved: Arc::new(resolved) }
    }
}

impl StatementCounts {
    fn pair(&self, kind: StatementKind) -> &(Counter, Counter) {
        &self.resolved[kind as usize]
    }

    /// Calls of `kind` so far.
    pub fn calls(&self, kind: StatementKind) -> u64 {
        self.pair(kind).0.get()
    }

    /// Failed calls of `kind` so far.
    pub fn errors(&self, kind: StatementKind) -> u64 {
        self.pair(kind).1.get()
    }

    fn record<T>(&self, kind: StatementKind, result: Result<T>) -> Result<T> {
        let (calls, errors) = self.pair(kind);
        calls.inc();
        if result.is_err() {
            errors.inc();
        }
        result
    }
}

/// A [`Store`] that counts each call of the one it wraps.
#[derive(Debug)]
pub struct Metered<S> {
    inner: Arc<S>,
    counts: StatementCounts,
}

impl<S: Store> Metered<S> {
    pub fn new(inner: Arc<S>, counts: StatementCounts) -> Metered<S> {
        Metered { inner, counts }
    }

    pub fn counts(&self) -> &StatementCounts {
        &self.counts
    }

    async fn count<T>(&self, kind: StatementKind, call: impl Future<Output = Result<T>>) -> Result<T> {
        let result = call.await;
        self.counts.record(kind, result)
    }
}

impl<S: Store> Store for Metered<S> {
    async fn migrate(&self) -> Result<Vec<String>> {
        self.count(StatementKind::Migrate, self.inner.migrate()).await
    }

    async fn setting_or_insert(&self, name: &str, generated: &[u8]) -> Result<Vec<u8>> {
        self.count(StatementKind::Setting, self.inner.setting_or_insert(name, generated)).await
    }

    async fn setting(&self, name: &str) -> Result<Option<Vec<u8>>> {
        self.count(StatementKind::Setting, self.inner.setting(name)).await
    }

    async fn swap_setting(&self, name: &str, expected: Option<&[u8]>, new: Option<&[u8]>) -> Result<bool> {
        self.count(StatementKind::Setting, self.inner.swap_setting(name, expected, new)).await
    }

    fn pool_metrics(&self) -> Option<PoolMetrics> {
        self.inner.pool_metrics()
    }

    async fn mint(&self, batch: &MintBatch) -> Result<MintOutcome> {
        self.count(StatementKind::Mint, self.inner.mint(batch)).await
    }

    async fn resolve(&self, day: Day, version: Version, random: &Random) -> Result<Option<Resolved>> {
        self.count(StatementKind::Resolve, self.inner.resolve(day, version, random)).await
    }

    async fn readiness(&self, today: Day) -> Result<Vec<String>> {
        self.count(StatementKind::Readiness, self.inner.readiness(today)).await
    }

    async fn reserve_ids(&self, n: u64) -> Result<u64> {
        self.count(StatementKind::ReserveIds, self.inner.reserve_ids(n)).await
    }

    async fn maintain(&self, policy: MaintenancePolicy) -> Result<MaintenanceReport> {
        self.count(StatementKind::Maintenance, self.inner.maintain(policy)).await
    }

    async fn write_events(&self, batch: &EventBatch, today: Day) -> Result<WriteOutcome> {
        self.count(StatementKind::EventsInsert, self.inner.write_events(batch, today)).await
    }

    async fn read_events(&self, query: &EventQuery) -> Result<Vec<EventRow>> {
        self.count(StatementKind::EventsRead, self.inner.read_events(query)).await
    }

    async fn export_events(&self, query: &EventQuery) -> Result<Vec<EventRow>> {
        self.count(StatementKind::EventsRead, self.inner.export_events(query)).await
    }

    fn read_routing(&self) -> Option<ReadRouting> {
        self.inner.read_routing()
    }

    async fn rollup_state(&self) -> Result<RollupState> {
        self.count(StatementKind::RollupState, self.inner.rollup_state()).await
    }

    async fn apply_rollup(&self, apply: &RollupApply) -> Result<bool> {
        self.count(StatementKind::RollupApply, self.inner.apply_rollup(apply)).await
    }

    async fn mailing_stats(&self, tenant: TenantId, mailing_id: &str) -> Result<Option<MailingStats>> {
        self.count(StatementKind::Stats, self.inner.mailing_stats(tenant, mailing_id)).await
    }

    async fn mailing_series(&self, tenant: TenantId, mailing_id: &str, from: u32, to: u32) -> Result<Option<Vec<SeriesRow>>> {
        self.count(StatementKind::Stats, self.inner.mailing_series(tenant, mailing_id, from, to)).await
    }

    async fn tenant(&self, name: &str, create: bool) -> Result<Option<TenantId>> {
        self.count(StatementKind::Tenant, self.inner.tenant(name, create)).await
    }

    async fn insert_api_key(&self, key: &NewApiKey) -> Result<u32> {
        self.count(StatementKind::ApiKeys, self.inner.insert_api_key(key)).await
    }

    async fn api_keys(&self) -> Result<Vec<StoredApiKey>> {
        self.count(StatementKind::ApiKeys, self.inner.api_keys()).await
    }

    async fn revoke_api_key(&self, id: u32, now: i64) -> Result<bool> {
        self.count(StatementKind::ApiKeys, self.inner.revoke_api_key(id, now)).await
    }

    async fn erase_recipient(&self, tenant: TenantId, recipient: &str) -> Result<u64> {
        self.count(StatementKind::Erasure, self.inner.erase_recipient(tenant, recipient)).await
    }

    async fn create_webhook(&self, w: &Webhook) -> Result<u32> {
        self.count(StatementKind::Webhooks, self.inner.create_webhook(w)).await
    }

    async fn webhooks(&self, tenant: Option<TenantId>) -> Result<Vec<Webhook>> {
        self.count(StatementKind::Webhooks, self.inner.webhooks(tenant)).await
    }

    async fn delete_webhook(&self, tenant: TenantId, id: u32) -> Result<bool> {
        self.count(StatementKind::Webhooks, self.inner.delete_webhook(tenant, id)).await
    }

    async fn change_webhook(&self, tenant: TenantId, id: u32, change: &WebhookChange) -> Result<bool> {
        self.count(StatementKind::Webhooks, self.inner.change_webhook(tenant, id, change)).await
    }

    async fn lease_webhook(&self, id: u32, owner: [u8; 16], now_ms: i64, until_ms: i64) -> Result<bool> {
        self.count(StatementKind::WebhookDelivery, self.inner.lease_webhook(id, owner, now_ms, until_ms)).await
    }

    async fn webhook_progress(&self, id: u32, owner: [u8; 16], progress: &WebhookProgress) -> Result<bool> {
        self.count(StatementKind::WebhookDelivery, self.inner.webhook_progress(id, owner, progress)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_own_counters_in_all_order() {
        let counts = StatementCounts::default();
        for (i, kind) in StatementKind::ALL.iter().enumerate() {
            assert_eq!(*kind as usize, i, "{kind:?} is out of ALL order");
        }
        let _ = counts.record(StatementKind::Resolve, Ok(()));
        let _ = counts.record::<()>(StatementKind::Resolve, Err(crate::Error::Unavailable("down".into())));
        let _ = counts.record(StatementKind::Mint, Ok(()));
        assert_eq!((counts.calls(StatementKind::Resolve), counts.errors(StatementKind::Resolve)), (2, 1));
        assert_eq!((counts.calls(StatementKind::Mint), counts.errors(StatementKind::Mint)), (1, 0));
        assert_eq!(counts.calls(StatementKind::Setting), 0);
        let labels: std::collections::HashSet<_> = StatementKind::ALL.iter().map(|k| k.label()).collect();
        assert_eq!(labels.len(), StatementKind::ALL.len());
    }
}
