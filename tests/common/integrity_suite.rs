//! The event-integrity half of the conformance suite: the ways events were
//! once lost, run against every backend (wired into `conformance_suite!`).
//!
//! - A full spool must drain once the store is back, without a restart.
//! - A replica writing the next day's number between today's rows must not
//!   hide those rows from the export or the rollup, from any cursor.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use linktrack::day::Day;
use linktrack::events::{Cursor, EventBatch, EventQuery, EventRow, Hit, IpBytes, Method, Reason, RollupApply, RollupState, WriteOutcome};
use linktrack::link::{MintBatch, MintOutcome, NewLink, Resolved};
use linktrack::store::{MaintenancePolicy, MaintenanceReport, Store};
use linktrack::tenant::{NewApiKey, StoredApiKey, TenantId};
use linktrack::token::{Random, Version};
use linktrack::webhooks::{Change, Progress, Webhook};
use linktrack::{Error, Result};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};

use super::client::{Client, path_of};
use super::conformance::{Fixture, batch, ready};
use super::process::metric;
use super::server::{API_KEY, START_UNIX, TestServer, serve_args, start_day};

/// A store whose event writes fail while `blocked` is set, as a database
/// that is down or whose writer lock is held elsewhere makes them fail.
pub struct Blockable<S> {
    inner: Arc<S>,
    blocked: AtomicBool,
    /// Resolves fail too while set.
    resolves_blocked: AtomicBool,
}

impl<S: Store> Blockable<S> {
    pub fn new(inner: Arc<S>) -> Blockable<S> {
        Blockable { inner, blocked: AtomicBool::new(false), resolves_blocked: AtomicBool::new(false) }
    }

    pub fn block(&self, on: bool) {
        self.blocked.store(on, Ordering::SeqCst);
    }

    pub fn block_resolves(&self, on: bool) {
        self.resolves_blocked.store(on, Ordering::SeqCst);
    }
}

impl<S: Store> Store for Blockable<S> {
    fn migrate(&self) -> impl Future<Output = Result<Vec<String>>> + Send {
        self.inner.migrate()
    }
    fn setting_or_insert(&self, name: &str, generated: &[u8]) -> impl Future<Output = Result<Vec<u8>>> + Send {
        self.inner.setting_or_insert(name, generated)
    }
    fn setting(&self, name: &str) -> impl Future<Output = Result<Option<Vec<u8>>>> + Send {
        self.inner.setting(name)
    }
    fn swap_setting(&self, name: &str, expected: Option<&[u8]>, new: Option<&[u8]>) -> impl Future<Output = Result<bool>> + Send {
        self.inner.swap_setting(name, expected, new)
    }
    fn pool_metrics(&self) -> Option<linktrack::store::PoolMetrics> {
        self.inner.pool_metrics()
    }
    fn mint(&self, batch: &MintBatch) -> impl Future<Output = Result<MintOutcome>> + Send {
        self.inner.mint(batch)
    }
    async fn resolve(&self, day: Day, version: Version, random: &Random) -> Result<Option<Resolved>> {
        if self.resolves_blocked.load(Ordering::SeqCst) {
            return Err(Error::Unavailable("resolves blocked by the test".into()));
        }
        self.inner.resolve(day, version, random).await
    }
    fn reserve_ids(&self, n: u64) -> impl Future<Output = Result<u64>> + Send {
        self.inner.reserve_ids(n)
    }
    fn readiness(&self, today: Day) -> impl Future<Output = Result<Vec<String>>> + Send {
        self.inner.readiness(today)
    }
    fn maintain(&self, policy: MaintenancePolicy) -> impl Future<Output = Result<MaintenanceReport>> + Send {
        self.inner.maintain(policy)
    }
    async fn write_events(&self, batch: &EventBatch, today: Day) -> Result<WriteOutcome> {
        if self.blocked.load(Ordering::SeqCst) {
            return Err(Error::Unavailable("event writes blocked by the test".into()));
        }
        self.inner.write_events(batch, today).await
    }
    fn read_events(&self, query: &EventQuery) -> impl Future<Output = Result<Vec<EventRow>>> + Send {
        self.inner.read_events(query)
    }
    fn export_events(&self, query: &EventQuery) -> impl Future<Output = Result<Vec<EventRow>>> + Send {
        self.inner.export_events(query)
    }
    fn read_routing(&self) -> Option<linktrack::store::ReadRouting> {
        self.inner.read_routing()
    }
    fn rollup_state(&self) -> impl Future<Output = Result<RollupState>> + Send {
        self.inner.rollup_state()
    }
    fn apply_rollup(&self, apply: &RollupApply) -> impl Future<Output = Result<bool>> + Send {
        self.inner.apply_rollup(apply)
    }
    fn mailing_stats(
        &self,
        tenant: TenantId,
        mailing_id: &str,
    ) -> impl Future<Output = Result<Option<linktrack::events::MailingStats>>> + Send {
        self.inner.mailing_stats(tenant, mailing_id)
    }
    fn mailing_series(
        &self,
        tenant: TenantId,
        mailing_id: &str,
        from: u32,
        to: u32,
    ) -> impl Future<Output = Result<Option<Vec<linktrack::events::SeriesRow>>>> + Send {
        self.inner.mailing_series(tenant, mailing_id, from, to)
    }
    fn tenant(&self, name: &str, create: bool) -> impl Future<Output = Result<Option<TenantId>>> + Send {
        self.inner.tenant(name, create)
    }
    fn insert_api_key(&self, key: &NewApiKey) -> impl Future<Output = Result<u32>> + Send {
        self.inner.insert_api_key(key)
    }
    fn api_keys(&self) -> impl Future<Output = Result<Vec<StoredApiKey>>> + Send {
        self.inner.api_keys()
    }
    fn revoke_api_key(&self, id: u32, now: i64) -> impl Future<Output = Result<bool>> + Send {
        self.inner.revoke_api_key(id, now)
    }
    fn erase_recipient(&self, tenant: TenantId, recipient: &str) -> impl Future<Output = Result<u64>> + Send {
        self.inner.erase_recipient(tenant, recipient)
    }
    fn create_webhook(&self, w: &Webhook) -> impl Future<Output = Result<u32>> + Send {
        self.inner.create_webhook(w)
    }
    fn webhooks(&self, tenant: Option<TenantId>) -> impl Future<Output = Result<Vec<Webhook>>> + Send {
        self.inner.webhooks(tenant)
    }
    fn delete_webhook(&self, tenant: TenantId, id: u32) -> impl Future<Output = Result<bool>> + Send {
        self.inner.delete_webhook(tenant, id)
    }
    fn change_webhook(&self, tenant: TenantId, id: u32, change: &Change) -> impl Future<Output = Result<bool>> + Send {
        self.inner.change_webhook(tenant, id, change)
    }
    fn lease_webhook(&self, id: u32, owner: [u8; 16], now_ms: i64, until_ms: i64) -> impl Future<Output = Result<bool>> + Send {
        self.inner.lease_webhook(id, owner, now_ms, until_ms)
    }
    fn webhook_progress(&self, id: u32, owner: [u8; 16], progress: &Progress) -> impl Future<Output = Result<bool>> + Send {
        self.inner.webhook_progress(id, owner, progress)
    }
}

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";

async fn metrics(c: &mut Client) -> String {
    String::from_utf8(c.get("/metrics").await.body.to_vec()).expect("metrics text")
}

async fn mint_one(c: &mut Client, mailing: &str) -> Value {
    let r = c
        .mint(Some(API_KEY), &json!({"mailing_id": mailing, "recipient": "r@example.com", "links": [{"url": "https://a.example/x"}]}), None)
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    r.json()
}

async fn click(c: &mut Client, letter: &Value) {
    let path = path_of(letter["links"][0]["tracking_url"].as_str().unwrap());
    let r = c.send(http::Method::GET, &path, &[("user-agent", FIREFOX)], bytes::Bytes::new()).await;
    assert_eq!(r.status, 302);
}

/// A server on `store` with a manual clock at the test start and `extra` flags.
async fn start_on<S: Store>(store: Arc<S>, extra: &[&str]) -> TestServer {
    TestServer::start(store, linktrack::day::Clock::manual(START_UNIX), serve_args(extra)).await
}

/// A server on a manual clock whose events are written and rolled up quickly, plus `extra` flags.
async fn serve_fast<F: Fixture>(f: &F, extra: &[&str]) -> TestServer {
    let mut args = vec!["--event-flush-ms", "20", "--rollup-interval-ms", "50", "--near-mint-secs", "1"];
    args.extend_from_slice(extra);
    start_on(f.store(), &args).await
}

/// Poll a mailing's stats until `done` holds (or ~10 s pass); the last answer.
async fn wait_stats(c: &mut Client, mailing: &str, done: impl Fn(&Value) -> bool) -> Value {
    let (auth, path) = (format!("Bearer {API_KEY}"), format!("/v1/mailings/{mailing}/stats"));
    let mut stats = Value::Null;
    for _ in 0..400 {
        stats = c.send(http::Method::GET, &path, &[("authorization", &auth)], bytes::Bytes::new()).await.json();
        if done(&stats) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    stats
}

/// Poll `/metrics` until `done` holds (or fail after ~30 s, showing the metrics).
async fn wait_metrics(c: &mut Client, what: &str, done: impl Fn(&str) -> bool) -> String {
    let mut text = String::new();
    for _ in 0..600 {
        text = metrics(c).await;
        if done(&text) {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}:\n{text}");
}

/// A spool that filled while the store was down drains by itself once the
/// store is back: every event not counted as dropped is stored, without a
/// restart, and the spool returns to 0 bytes. (The writer used to stop
/// replaying for good once it held a batch the full spool refused.)
pub async fn full_spool_drains_when_the_store_is_back<F: Fixture>() {
    let f = ready::<F>("spoolfull").await;
    let store = Arc::new(Blockable::new(f.store()));
    let args = ["--spool-max-bytes", "2500", "--event-flush-ms", "100", "--event-retry-ms", "300", "--event-queue-capacity", "20"];
    let srv = start_on(store.clone(), &args).await;
    let mut c = srv.client();
    let letter = mint_one(&mut c, "spool").await;
    click(&mut c, &letter).await;
    wait_metrics(&mut c, "the first event stored", |m| metric(m, "linktrack_events_stored_total") == 1).await;

    store.block(true);
    let mut clicks = 1;
    // Click until the spool and the queue are both full and hits are dropped.
    while metric(&metrics(&mut c).await, "linktrack_events_dropped_total") < 5 {
        assert!(clicks < 2000, "the spool never filled");
        click(&mut c, &letter).await;
        clicks += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let full = metrics(&mut c).await;
    assert!(metric(&full, "linktrack_spool_bytes") > 1000, "the spool holds batches:\n{full}");

    store.block(false);
    for _ in 0..10 {
        click(&mut c, &letter).await;
        clicks += 1;
    }
    let end = wait_metrics(&mut c, "the spool to drain and every kept event to be stored", |m| {
        metric(m, "linktrack_spool_bytes") == 0
            && metric(m, "linktrack_events_stored_total") + metric(m, "linktrack_events_dropped_total") == clicks
    })
    .await;
    let dropped = metric(&end, "linktrack_events_dropped_total");
    assert_eq!(f.count_events().await, clicks - dropped, "stored rows, counted in the store:\n{end}");

    // The events replayed from the spool are counted like the others, once: the
    // stats and the series equal a recount of the export.
    srv.clock.advance_ms(120_000);
    let kept = clicks - dropped;
    let stats = wait_stats(&mut c, "spool", |s| s["links"][0]["clicks"]["total"] == kept).await;
    let rows = export_all(&mut c, None, 1000).await;
    let mut want = super::events_suite::brute_force(&rows, "spool", &super::events_suite::minted_links(&[&letter]));
    want["as_of"] = stats["as_of"].clone();
    assert_eq!(stats, want, "stats after a spool replay equal a recount of the export");
    let (series, got) = super::events_suite::hourly_series(&mut c, "spool").await;
    assert_eq!(got, super::events_suite::brute_force_series(&rows, "spool"), "{series:#}");
    srv.stop().await;
}

fn hit(link: &NewLink, day: Day, at_ms: i64) -> Hit {
    Hit {
        at_ms,
        kind: link.kind,
        method: Method::Get,
        link_day: day,
        version: Version::V2,
        random: link.random,
        link_ids: None,
        ip: IpBytes::new("198.51.100.7".parse().unwrap()),
        user_agent: FIREFOX.as_bytes().to_vec(),
        reason: Reason::None,
    }
}

/// Export every event over HTTP from `after`, in pages of `limit`, resuming
/// from the last cursor of each page as a client does.
async fn export_all(c: &mut Client, after: Option<&str>, limit: usize) -> Vec<Value> {
    let auth = format!("Bearer {API_KEY}");
    let mut out: Vec<Value> = Vec::new();
    let mut cursor = after.map(str::to_owned);
    loop {
        let q = match &cursor {
            Some(cur) => format!("/v1/events?limit={limit}&after={cur}"),
            None => format!("/v1/events?limit={limit}"),
        };
        let r = c.send(http::Method::GET, &q, &[("authorization", &auth)], bytes::Bytes::new()).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let page: Vec<Value> =
            std::str::from_utf8(&r.body).unwrap().lines().filter(|l| !l.is_empty()).map(|l| serde_json::from_str(l).unwrap()).collect();
        let Some(last) = page.last() else { return out };
        cursor = Some(last["cursor"].as_str().unwrap().to_owned());
        let full = page.len() == limit;
        out.extend(page);
        if !full {
            return out;
        }
    }
}

/// A replica whose clock is a day ahead writes the next day's number between
/// today's rows. The export (from any cursor) and the rollup must still
/// return and count every row. (Reads used to stop at the reader's today, so
/// once the cursor passed a later row the earlier-day row was never returned.)
pub async fn skewed_writer_rows_are_exported_and_counted<F: Fixture>() {
    let f = ready::<F>("skew").await;
    let srv = serve_fast(&f, &["--burst-window-secs", "1"]).await;
    let mut c = srv.client();
    let today = srv.clock.today();
    let minted = batch(today, &["https://a.example/x"], false, None);
    f.store().mint(&minted).await.unwrap();
    let link = &minted.links[0];
    let letter = json!({"links": [{"tracking_url": format!("http://x/c/{}", link.token)}]});
    srv.clock.advance_ms(10_000);
    click(&mut c, &letter).await;
    wait_metrics(&mut c, "the first click stored", |m| metric(m, "linktrack_events_stored_total") == 1).await;

    // The skewed replica: a batch for the same link, written as "tomorrow".
    let skewed = EventBatch { id: [7; 16], formed: today.plus(1), hits: vec![hit(link, today, srv.clock.now_ms())] };
    assert_eq!(f.store().write_events(&skewed, today.plus(1)).await.unwrap(), WriteOutcome::Stored);
    for n in 2..=3u64 {
        click(&mut c, &letter).await;
        wait_metrics(&mut c, "a click stored", |m| metric(m, "linktrack_events_stored_total") == n).await;
    }
    assert_eq!(f.count_events().await, 4);

    let all = export_all(&mut c, None, 1000).await;
    assert_eq!(all.len(), 4, "every row, the skewed one included: {all:#?}");
    let cursors: Vec<&str> = all.iter().map(|r| r["cursor"].as_str().unwrap()).collect();
    for (i, cur) in cursors.iter().enumerate() {
        for limit in [1, 2, 1000] {
            let rest = export_all(&mut c, Some(cur), limit).await;
            assert_eq!(rest, all[i + 1..].to_vec(), "resume after row {i} in pages of {limit}");
        }
    }

    // The rollup counts all four clicks once they settle.
    srv.clock.advance_ms(120_000);
    let auth = format!("Bearer {API_KEY}");
    let stats = wait_stats(&mut c, "m-1", |s| s["links"][0]["clicks"]["total"] == 4).await;
    assert_eq!(stats["links"][0]["clicks"]["total"], 4, "{stats:#}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = c.send(http::Method::GET, "/v1/mailings/m-1/stats", &[("authorization", &auth)], bytes::Bytes::new()).await;
    assert_eq!(r.json()["links"][0]["clicks"]["total"], 4, "counted once, not again");
    srv.stop().await;
}

/// The cursor, modelled: writers with day numbers skewed by up to a day
/// either way, interleaved at random with a live exporter that resumes from
/// its last cursor, then reads resumed from random cursors in random page
/// sizes. The live exporter's union and the walk from the start are the
/// whole table, no duplicates; every walk returns exactly the rows after its start.
pub async fn cursor_model_with_skewed_writers<F: Fixture>() {
    let f = ready::<F>("cursormodel").await;
    let s = f.store();
    let base = start_day().plus(1);
    let seed: u64 = rand::random();
    let mut rng = StdRng::seed_from_u64(seed);
    let minted = batch(base.minus(1), &["https://a.example/1", "https://b.example/2"], true, None);
    s.mint(&minted).await.unwrap();
    let walk = |after: Cursor, page: usize| {
        let s = s.clone();
        async move {
            let mut out: Vec<EventRow> = Vec::new();
            let mut at = after;
            loop {
                let rows = s.read_events(&EventQuery { after: at, limit: page, mailing_id: None }).await.unwrap();
                let Some(last) = rows.last() else { return out };
                at = last.cursor;
                let full = rows.len() == page;
                out.extend(rows);
                if !full {
                    return out;
                }
            }
        }
    };
    // A live exporter follows the writers, resuming from its last cursor.
    let (mut live, mut live_at) = (Vec::<EventRow>::new(), Cursor::START);
    let mut written = 0usize;
    for i in 0..120u32 {
        let skew: i32 = rng.random_range(-1..=1);
        let day = if skew < 0 { base.minus(1) } else { base.plus(u16::try_from(skew).unwrap()) };
        let hits: Vec<Hit> = (0..rng.random_range(1..4))
            .map(|j| hit(&minted.links[(i as usize + j) % minted.links.len()], base.minus(1), START_UNIX * 1000 + i64::from(i)))
            .collect();
        written += hits.len();
        let mut id = [0u8; 16];
        id[..4].copy_from_slice(&i.to_le_bytes());
        assert_eq!(s.write_events(&EventBatch { id, formed: day, hits }, day).await.unwrap(), WriteOutcome::Stored, "seed {seed}");
        if rng.random_range(0..4) == 0 {
            let more = walk(live_at, rng.random_range(1..20)).await;
            if let Some(last) = more.last() {
                live_at = last.cursor;
            }
            live.extend(more);
        }
    }
    live.extend(walk(live_at, 7).await);
    assert_eq!(f.count_events().await, written as u64, "seed {seed}");
    assert_eq!(live.len(), written, "seed {seed}: the live exporter saw every row once");

    let all = walk(Cursor::START, rng.random_range(1..50)).await;
    assert_eq!(all.len(), written, "seed {seed}: the walk from the start is the whole table");
    assert!(all.windows(2).all(|w| w[0].cursor < w[1].cursor), "seed {seed}: strictly increasing cursors, no duplicates");
    assert!(live.iter().zip(&all).all(|(a, b)| a.cursor == b.cursor), "seed {seed}: the live exporter saw the same rows");
    for _ in 0..40 {
        let i = rng.random_range(0..all.len());
        let page = rng.random_range(1..60);
        let rest = walk(all[i].cursor, page).await;
        assert_eq!(rest.len(), all.len() - i - 1, "seed {seed}: resume after row {i} in pages of {page}");
        assert!(rest.iter().zip(&all[i + 1..]).all(|(a, b)| a.cursor == b.cursor), "seed {seed}: resume after row {i}");
    }
}

/// The same `Idempotency-Key` either side of midnight mints one letter: the
/// request dated tomorrow applied first (a replica a little ahead, or the
/// later request winning the race), then today's, and both at once.
pub async fn idempotency_key_either_side_of_midnight<F: Fixture>() {
    let f = ready::<F>("idem-midnight").await;
    let s = f.store();
    let day = start_day();
    let idem = |n: u8| Some(linktrack::link::Idempotency { key_hash: [n; 16], body_hash: [9; 16] });
    let tomorrow = batch(day.plus(1), &["https://a.example/"], true, idem(1));
    assert!(matches!(s.mint(&tomorrow).await.unwrap(), MintOutcome::Stored(_)));
    let today = batch(day, &["https://a.example/"], true, idem(1));
    let tokens: Vec<String> = tomorrow.links.iter().map(|l| l.token.to_string()).collect();
    assert_eq!(s.mint(&today).await.unwrap(), MintOutcome::Replayed(tokens.clone()), "today's request replays tomorrow's letter");
    let links = f.count_links().await;
    assert_eq!(links, 2, "one letter stored");

    // Both at once, for many keys: each key stores exactly one letter.
    for n in 2..22u8 {
        let (a, b) = (batch(day, &["https://b.example/"], false, idem(n)), batch(day.plus(1), &["https://b.example/"], false, idem(n)));
        let (ra, rb) = tokio::join!(s.mint(&a), s.mint(&b));
        let outcomes = [ra.unwrap(), rb.unwrap()];
        let stored = outcomes.iter().filter(|o| matches!(o, MintOutcome::Stored(_))).count();
        assert_eq!(stored, 1, "key {n}: one letter, the other replayed: {outcomes:?}");
    }
    assert_eq!(f.count_links().await, links + 20, "one link per key");
}

/// A replica whose clock is a little ahead drops the oldest day this one
/// still counts as kept: its links go to the fallback, not to a 404.
pub async fn oldest_day_dropped_by_a_replica_ahead_goes_to_fallback<F: Fixture>() {
    let f = ready::<F>("edge-drop").await;
    let srv = start_on(f.store(), &["--retention-days", "30", "--cache-bytes", "0"]).await;
    let mut c = srv.client();
    let r = c.mint(Some(API_KEY), &json!({"mailing_id": "m", "recipient": "r", "links": [{"url": "https://edge.example/"}]}), None).await;
    let path = path_of(r.json()["links"][0]["tracking_url"].as_str().unwrap());
    srv.clock.advance_days(30);
    let rep =
        f.store().maintain(MaintenancePolicy { today: srv.clock.today().plus(1), ahead: 7, retention: 30, dry_run: false }).await.unwrap();
    assert!(rep.dropped.contains(&start_day()), "the replica ahead dropped the start day: {rep:?}");
    let answer = c.get(&path).await;
    assert_eq!((answer.status.as_u16(), answer.header("location")), (302, super::server::FALLBACK));
    srv.stop().await;
}

/// A v1 token minted before the upgrade to token v2 still redirects, and its
/// click and open are stored, exported with their link and counted, beside a
/// v2 token of the same mailing.
pub async fn v1_tokens_from_before_the_upgrade_keep_working<F: Fixture>() {
    let f = ready::<F>("v1-after-upgrade").await;
    let day = start_day();
    let old = super::conformance::batch_of(linktrack::token::Version::V1, day, &["https://old.example/"], true, None);
    let new = batch(day, &["https://new.example/"], false, None);
    f.store().mint(&old).await.unwrap();
    f.store().mint(&new).await.unwrap();
    let srv = serve_fast(&f, &["--cache-bytes", "0"]).await;
    let mut c = srv.client();
    srv.clock.advance_ms(10_000);
    for (path, status, location) in [
        (format!("/c/{}", old.links[0].token), 302, "https://old.example/"),
        (format!("/o/{}", old.links[1].token), 200, ""),
        (format!("/c/{}", new.links[0].token), 302, "https://new.example/"),
    ] {
        let r = c.send(http::Method::GET, &path, &[("user-agent", FIREFOX)], bytes::Bytes::new()).await;
        assert_eq!(r.status.as_u16(), status, "{path}");
        if status == 302 {
            assert_eq!(r.header("location"), location);
        }
    }
    wait_metrics(&mut c, "three events stored", |m| metric(m, "linktrack_events_stored_total") == 3).await;
    let rows = export_all(&mut c, None, 100).await;
    let got: Vec<(&str, &str, &str)> =
        rows.iter().map(|r| (r["kind"].as_str().unwrap(), r["mailing_id"].as_str().unwrap(), r["url"].as_str().unwrap_or(""))).collect();
    assert_eq!(got, [("click", "m-1", "https://old.example/"), ("open", "m-1", ""), ("click", "m-1", "https://new.example/")]);
    srv.clock.advance_ms(120_000);
    let stats = wait_stats(&mut c, "m-1", |s| s["opens"]["total"] == 1 && s["links"].as_array().is_some_and(|l| l.len() == 2)).await;
    assert_eq!(stats["opens"]["total"], 1, "{stats:#}");
    let totals: Vec<(&str, &Value)> =
        stats["links"].as_array().unwrap().iter().map(|l| (l["url"].as_str().unwrap(), &l["clicks"]["total"])).collect();
    assert_eq!(totals, [("https://new.example/", &json!(1)), ("https://old.example/", &json!(1))], "{stats:#}");
    srv.stop().await;
}

/// Send raw HTTP/1.1 bytes and read the status line and headers of the reply
/// (the client would not send these requests).
pub async fn raw(addr: std::net::SocketAddr, request: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(request.as_bytes()).await.expect("write");
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout_at(deadline, s.read(&mut buf))
            .await
            .expect("reply within 3 s (not after the body timeout)")
            .expect("read");
        assert!(n > 0, "connection closed without a reply: {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&got).into_owned();
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status line");
    (status, head.to_ascii_lowercase())
}

/// The API's edges: a declared body over the limit is a fast 413 before it is
/// sent, framing other than plain chunked is refused, the `Bearer` scheme is
/// case-insensitive, API answers are never cached, a repeated query
/// parameter is a 400, and a blank or control-character mailing id a 422.
pub async fn http_edges_are_refused_clearly<F: Fixture>() {
    let f = ready::<F>("edges").await;
    let srv = start_on(f.store(), &[]).await;
    let (status, head) = raw(
        srv.addr,
        &format!("POST /v1/links HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\nContent-Type: application/json\r\nContent-Length: 5000000000\r\n\r\n"),
    )
    .await;
    assert_eq!(status, 413, "{head}");
    let body = r#"{"mailing_id":"m","recipient":"r","links":[{"url":"https://a.example/"}]}"#;
    let (status, head) = raw(
        srv.addr,
        &format!(
            "POST /v1/links HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\nTransfer-Encoding: gzip, chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
            body.len()
        ),
    )
    .await;
    assert_eq!(status, 501, "{head}");
    let mut c = srv.client();
    let minted = c
        .send(
            http::Method::POST,
            "/v1/links",
            &[("authorization", &format!("BEARER {API_KEY}")), ("content-type", "application/json")],
            bytes::Bytes::from_static(body.as_bytes()),
        )
        .await;
    assert_eq!(minted.status, 201, "{:?}", minted.body);
    assert_eq!(minted.header("cache-control"), "no-store");
    let auth = format!("Bearer {API_KEY}");
    let read = c.send(http::Method::GET, "/v1/mailings/m/stats", &[("authorization", &auth)], bytes::Bytes::new()).await;
    assert_eq!(read.header("cache-control"), "no-store");
    let twice = c.send(http::Method::GET, "/v1/events?limit=1&limit=2", &[("authorization", &auth)], bytes::Bytes::new()).await;
    assert_eq!(twice.status, 400, "{:?}", twice.body);
    for mailing in ["   ", "a\u{0}b", "tab\there"] {
        let r =
            c.mint(Some(API_KEY), &json!({"mailing_id": mailing, "recipient": "r", "links": [{"url": "https://a.example/"}]}), None).await;
        assert_eq!(r.status, 422, "{mailing:?}: {:?}", r.body);
    }
    srv.stop().await;
}

/// What a redirect sends is the normal form of the minted URL (punycode
/// host, percent-encoded non-ASCII), and a URL with userinfo is refused.
pub async fn minted_urls_are_normalised_in_location<F: Fixture>() {
    let f = ready::<F>("normal-url").await;
    let srv = start_on(f.store(), &["--cache-bytes", "0"]).await;
    let mut c = srv.client();
    let body = json!({"mailing_id": "m", "recipient": "r", "links": [{"url": "HTTPS://Bücher.Example/a\u{2028}b?c=\u{202e}"}]});
    let r = c.mint(Some(API_KEY), &body, None).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let hit = c.get(&path_of(r.json()["links"][0]["tracking_url"].as_str().unwrap())).await;
    assert_eq!(hit.header("location"), "https://xn--bcher-kva.example/a%E2%80%A8b?c=%E2%80%AE");
    let phish = json!({"mailing_id": "m", "recipient": "r", "links": [{"url": "https://a.example/"}, {"url": "https://good.example@evil.example/"}]});
    let r = c.mint(Some(API_KEY), &phish, None).await;
    assert_eq!((r.status.as_u16(), &r.json()["index"]), (422, &json!(1)), "{:?}", r.body);
    srv.stop().await;
}

/// What a recipient sees when a link cannot be followed: a browser gets a
/// small HTML page (not found, unavailable with `Retry-After`; an expired
/// click goes to the fallback URL, which these servers set), an
/// API client JSON, and a pixel whose token we signed always renders.
pub async fn recipients_see_pages_and_pixels_always_render<F: Fixture>() {
    let f = ready::<F>("pages").await;
    let store = Arc::new(Blockable::new(f.store()));
    let srv = start_on(store.clone(), &["--retention-days", "30", "--cache-bytes", "0"]).await;
    let mut c = srv.client();
    let browser = [("accept", "text/html,application/xhtml+xml,*/*;q=0.8"), ("user-agent", FIREFOX)];
    let minted = batch(start_day(), &["https://a.example/"], true, None);
    f.store().mint(&minted).await.unwrap();
    let (click, open) = (format!("/c/{}", minted.links[0].token), format!("/o/{}", minted.links[1].token));
    let unknown = batch(start_day(), &[], true, None); // signed, never stored
    let unknown_open = format!("/o/{}", unknown.links[0].token);
    let forged = format!("/c/{}x", &minted.links[0].token.to_string()[..34]);

    let page = c.send(http::Method::GET, &forged, &browser, bytes::Bytes::new()).await;
    assert_eq!((page.status.as_u16(), page.header("content-type")), (404, "text/html; charset=utf-8"));
    assert!(std::str::from_utf8(&page.body).unwrap().contains("Link not found"));
    assert_eq!(c.get(&forged).await.json()["error"], "not_found", "API clients keep JSON");
    let gif = c.get(&unknown_open).await;
    assert_eq!((gif.status.as_u16(), gif.header("content-type"), gif.body.len()), (200, "image/gif", 43), "a signed pixel always renders");
    assert_eq!(c.get(&forged.replace("/c/", "/o/")).await.status, 404, "a forged pixel does not");

    store.block_resolves(true);
    let down = c.send(http::Method::GET, &click, &browser, bytes::Bytes::new()).await;
    assert_eq!((down.status.as_u16(), down.header("retry-after")), (503, "1"));
    assert!(std::str::from_utf8(&down.body).unwrap().contains("try again"));
    assert_eq!(c.get(&open).await.status, 200, "the pixel renders while the store is down");
    store.block_resolves(false);

    srv.clock.advance_days(40);
    let expired = c.send(http::Method::GET, &click, &browser, bytes::Bytes::new()).await;
    assert_eq!((expired.status.as_u16(), expired.header("location")), (302, super::server::FALLBACK), "expired clicks go to the fallback");
    assert_eq!(c.get(&open).await.status, 200, "an expired pixel still renders");
    srv.stop().await;
}

/// `/metrics` parses as Prometheus text, keeps the event series, and its
/// latency histograms, response and cache counters move as traffic flows.
pub async fn metrics_histograms_move_with_traffic<F: Fixture>() {
    let f = ready::<F>("metrics").await;
    let srv = start_on(f.store(), &[]).await;
    let mut c = srv.client();
    let scrape = |text: String| {
        let lines = text.lines().map(|l| Ok(l.to_owned()));
        prometheus_parse::Scrape::parse(lines).expect("Prometheus text format")
    };
    let value = |s: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]| -> f64 {
        s.samples
            .iter()
            .filter(|x| x.metric == name && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
            .map(|x| match x.value {
                prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => v,
                prometheus_parse::Value::Histogram(ref h) => h.iter().map(|b| b.count).fold(0.0, f64::max),
                prometheus_parse::Value::Summary(_) => 0.0,
            })
            .sum()
    };
    let before = scrape(metrics(&mut c).await);
    let letter = mint_one(&mut c, "metrics").await;
    for _ in 0..3 {
        click(&mut c, &letter).await;
    }
    assert_eq!(c.get("/c/not-a-token").await.status, 404);
    let after = scrape(metrics(&mut c).await);
    let redirects = [("route", "redirect"), ("status", "3xx")];
    let counted = |name: &str, labels: &[(&str, &str)]| (value(&after, name, labels) - value(&before, name, labels)).round();
    let near = |got: f64, want: f64| (got - want).abs() < 0.5;
    assert!(near(counted("linktrack_http_responses_total", &redirects), 3.0), "three redirects counted");
    assert!(value(&after, "linktrack_http_request_duration_seconds", &redirects) >= 3.0, "the histogram counts the redirects");
    assert!(near(counted("linktrack_http_responses_total", &[("route", "mint"), ("status", "2xx")]), 1.0), "one mint");
    assert!(near(counted("linktrack_http_responses_total", &[("route", "redirect"), ("status", "4xx")]), 1.0), "one forged click");
    assert!(counted("linktrack_cache_lookups_total", &[("cache", "link"), ("outcome", "hit")]) >= 3.0, "minted links are cached");
    assert!(near(value(&after, "linktrack_build_info", &[("version", env!("CARGO_PKG_VERSION"))]), 1.0), "build_info");
    assert!(after.samples.iter().any(|s| s.metric == "linktrack_events_captured_total"), "the event series stay");
    srv.stop().await;
}

/// Abuse limits: API requests per address and failed authentications per
/// address answer `429` with `Retry-After`; redirects are never limited; at
/// the connection cap a new connection waits until one closes.
pub async fn api_limits_and_the_connection_cap<F: Fixture>() {
    let f = ready::<F>("limits").await;
    let clock = linktrack::day::Clock::manual(START_UNIX);
    let srv = TestServer::start(f.store(), clock.clone(), serve_args(&["--api-rate-per-ip", "5", "--auth-failures-per-min", "0"])).await;
    let mut c = srv.client();
    let auth = format!("Bearer {API_KEY}");
    let mut statuses = Vec::new();
    for _ in 0..20 {
        statuses.push(c.send(http::Method::GET, "/v1/mailings/m/stats", &[("authorization", &auth)], bytes::Bytes::new()).await);
    }
    // Mailing `m` was never minted: a 404, but answered, not limited.
    assert!(statuses[..5].iter().all(|r| r.status == 404), "the burst passes");
    let limited = statuses.iter().find(|r| r.status == 429).expect("the 20 quick requests go over 5 per second");
    assert_eq!(limited.json()["error"], "rate_limited");
    assert!(limited.header("retry-after").parse::<u64>().unwrap() >= 1);
    for _ in 0..30 {
        assert_eq!(c.get("/c/not-a-token").await.status, 404, "redirects are not limited");
    }
    srv.stop().await;

    let srv = TestServer::start(
        f.store(),
        clock.clone(),
        serve_args(&["--api-rate-per-ip", "0", "--auth-failures-per-min", "3", "--max-connections", "2"]),
    )
    .await;
    let mut c = srv.client();
    for _ in 0..3 {
        assert_eq!(
            c.send(http::Method::GET, "/v1/mailings/m/stats", &[("authorization", "Bearer wrong-key-0123456789")], bytes::Bytes::new())
                .await
                .status,
            401
        );
    }
    let guessing =
        c.send(http::Method::GET, "/v1/mailings/m/stats", &[("authorization", "Bearer wrong-key-0123456789")], bytes::Bytes::new()).await;
    assert_eq!(guessing.status, 429, "the fourth failed key in a minute");
    assert_eq!(
        c.send(http::Method::GET, "/v1/mailings/m/stats", &[("authorization", &auth)], bytes::Bytes::new()).await.status,
        404,
        "a good key still passes (to the answer for a mailing never minted)"
    );

    // `c` holds one connection; a second fills the cap; a third waits until one closes.
    let mut second = srv.client();
    assert_eq!(second.get("/healthz").await.status, 200);
    let mut third = srv.client();
    let waiting = tokio::spawn(async move { third.get("/healthz").await.status });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "the third connection waits at the cap");
    drop(second);
    let status = tokio::time::timeout(Duration::from_secs(5), waiting).await.expect("served once a slot frees").unwrap();
    assert_eq!(status, 200);
    let text = metrics(&mut c).await;
    assert!(metric(&text, "linktrack_connections_waited_total") >= 1, "the wait is counted:\n{text}");
    srv.stop().await;
}
