//! The conformance suite: every store behaviour the service relies on,
//! written once and run against every backend through [`Fixture`], at the
//! store level and over HTTP against the real server on port 0.
//!
//! A backend's test file implements `Fixture` and invokes
//! `conformance_suite!(ThatFixture)`.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use linktrack::day::{Clock, Day};
use linktrack::link::{Idempotency, Letter, LinkKind, MintBatch, MintOutcome, NewLink};
use linktrack::store::{MaintenancePolicy, Store};
use linktrack::token::{self, KeyRing, Version};
use serde_json::json;

use super::client::path_of;
use super::server::{API_KEY, FALLBACK, START_UNIX, TOKEN_KEYS, TestServer, serve_args, start_day};

/// A fresh, empty store of one backend.
pub trait Fixture: Send + Sync + Sized + 'static {
    type S: Store;
    fn open(hint: &str) -> impl Future<Output = Self> + Send;
    fn store(&self) -> Arc<Self::S>;
    /// Rows in the links table, all days.
    fn count_links(&self) -> impl Future<Output = u64> + Send;
    /// Rows in the events table, all days, read straight from the store.
    fn count_events(&self) -> impl Future<Output = u64> + Send;
    /// Another store on the same database, as another replica opens it.
    fn replica(&self) -> impl Future<Output = Arc<Self::S>> + Send;
}

fn keys() -> KeyRing {
    KeyRing::parse(TOKEN_KEYS).expect("test keys")
}

fn policy(today: Day, ahead: u16, retention: u16) -> MaintenancePolicy {
    MaintenancePolicy { today, ahead, retention, dry_run: false }
}

/// A migrated store with partitions around the start day.
pub async fn ready<F: Fixture>(hint: &str) -> F {
    let f = F::open(hint).await;
    f.store().migrate().await.expect("migrate");
    let rep = f.store().maintain(policy(start_day(), 7, 90)).await.expect("maintain");
    assert!(rep.acquired);
    f
}

/// Link ids for store-level v2 mints, far above what a test's server reserves from the sequence.
static NEXT_TEST_ID: AtomicU64 = AtomicU64::new(1 << 40);

/// A v2 mint batch (what the service mints): tokens for ids no other test batch uses.
pub fn batch(day: Day, urls: &[&str], pixel: bool, idem: Option<Idempotency>) -> MintBatch {
    batch_of(Version::V2, day, urls, pixel, idem)
}

/// A mint batch of tokens of either format (v1: as minted before token v2).
pub fn batch_of(version: Version, day: Day, urls: &[&str], pixel: bool, idem: Option<Idempotency>) -> MintBatch {
    let n = urls.len() + usize::from(pixel);
    let mut minted = Vec::new();
    match version {
        Version::V1 => token::generate(&keys(), day, n, &mut minted),
        Version::V2 => token::generate_v2(&keys(), day, NEXT_TEST_ID.fetch_add(n as u64, Ordering::Relaxed), n, &mut minted),
    }
    let links = minted
        .iter()
        .enumerate()
        .map(|(i, (tok, random))| {
            let url: Option<Arc<str>> = urls.get(i).map(|u| Arc::from(*u));
            let position = if url.is_some() { linktrack::link::stored_position(i) } else { linktrack::link::NO_POSITION };
            NewLink { kind: if url.is_some() { LinkKind::Click } else { LinkKind::Open }, random: *random, token: *tok, url, position }
        })
        .collect();
    MintBatch {
        day,
        version,
        letter: Letter {
            tenant: linktrack::tenant::TenantId::DEFAULT,
            mailing_id: "m-1".into(),
            recipient: "r@example.com".into(),
            meta: Some(r#"{"a":1}"#.into()),
            minted_at: START_UNIX,
            click_links: urls.len() as u32,
        },
        links,
        idempotency: idem,
    }
}

// ---- store level -----------------------------------------------------------

pub async fn migrate_is_idempotent<F: Fixture>() {
    let f = F::open("migrate").await;
    let first = f.store().migrate().await.expect("first migrate");
    assert!(!first.is_empty(), "a fresh store applies migrations");
    let second = f.store().migrate().await.expect("second migrate");
    assert!(second.is_empty(), "second migrate must be a no-op, applied {second:?}");
}

pub async fn settings_keep_the_first_value<F: Fixture>() {
    let f = ready::<F>("settings").await;
    let a = f.store().setting_or_insert("k", b"first").await.unwrap();
    let b = f.store().setting_or_insert("k", b"second").await.unwrap();
    assert_eq!(a, b"first");
    assert_eq!(b, b"first");
}

/// `setting` reads without creating; `swap_setting` changes a value only
/// from the expected one (absent, present, deleted).
pub async fn settings_compare_and_swap<F: Fixture>() {
    let f = ready::<F>("settings-swap").await;
    let s = f.store();
    assert_eq!(s.setting("cas").await.unwrap(), None);
    assert!(s.swap_setting("cas", None, None).await.unwrap(), "absent as expected");
    assert!(s.swap_setting("cas", None, Some(b"one")).await.unwrap());
    assert!(!s.swap_setting("cas", None, Some(b"two")).await.unwrap(), "no longer absent");
    assert!(!s.swap_setting("cas", Some(b"two"), Some(b"three")).await.unwrap(), "wrong expected value");
    assert_eq!(s.setting("cas").await.unwrap().as_deref(), Some(&b"one"[..]));
    assert!(s.swap_setting("cas", Some(b"one"), Some(b"one")).await.unwrap(), "same value, as expected");
    assert!(s.swap_setting("cas", Some(b"one"), Some(b"two")).await.unwrap());
    assert!(!s.swap_setting("cas", Some(b"one"), None).await.unwrap(), "stale delete refused");
    assert!(s.swap_setting("cas", Some(b"two"), None).await.unwrap());
    assert_eq!(s.setting("cas").await.unwrap(), None);
    assert!(!s.swap_setting("cas", Some(b"two"), Some(b"x")).await.unwrap(), "gone");
}

pub async fn maintenance_creates_ahead_and_drops_past_retention<F: Fixture>() {
    let f = F::open("maint").await;
    let s = f.store();
    s.migrate().await.unwrap();
    let d = start_day();
    let rep = s.maintain(policy(d, 3, 5)).await.unwrap();
    assert_eq!(rep.created, (d.0..=d.0 + 3).map(Day).collect::<Vec<_>>());
    assert_eq!(rep.partitions, rep.created);
    // Dry run ten days later reports but changes nothing.
    let later = d.plus(10);
    let dry = s.maintain(MaintenancePolicy { dry_run: true, ..policy(later, 3, 5) }).await.unwrap();
    assert_eq!(dry.created, (d.0 + 10..=d.0 + 13).map(Day).collect::<Vec<_>>());
    assert_eq!(dry.dropped, (d.0..=d.0 + 3).map(Day).collect::<Vec<_>>());
    assert_eq!(dry.partitions, (d.0..=d.0 + 3).map(Day).collect::<Vec<_>>());
    let real = s.maintain(policy(later, 3, 5)).await.unwrap();
    assert_eq!((real.created.clone(), real.dropped.clone()), (dry.created, dry.dropped), "dry run changed something");
    assert_eq!(real.partitions, (d.0 + 10..=d.0 + 13).map(Day).collect::<Vec<_>>());
    let again = s.maintain(policy(later, 3, 5)).await.unwrap();
    assert!(again.created.is_empty() && again.dropped.is_empty(), "maintenance is idempotent: {again:?}");
}

pub async fn mint_then_resolve<F: Fixture>() {
    let fixture = ready::<F>("resolve").await;
    let store = fixture.store();
    let day = start_day();
    let minted = batch(day, &["https://a.example/1", "https://b.example/2", "https://a.example/1"], true, None);
    let MintOutcome::Stored(ids) = store.mint(&minted).await.unwrap() else { panic!("not stored") };
    assert_eq!(fixture.count_links().await, 4);
    assert_eq!(ids.len(), 4, "ids of every link, in batch order");
    assert!(ids.iter().all(|i| i.letter_id == ids[0].letter_id), "one letter: {ids:?}");
    assert_eq!(ids[0].url_id, ids[2].url_id, "a URL twice in a letter is stored once");
    assert!(ids[0].url_id != 0 && ids[1].url_id != 0 && ids[0].url_id != ids[1].url_id, "{ids:?}");
    assert_eq!(ids[3].url_id, 0, "the pixel has no URL");
    for (i, link) in minted.links.iter().enumerate() {
        let found = store.resolve(day, Version::V2, &link.random).await.unwrap().unwrap_or_else(|| panic!("link {i} not found"));
        assert_eq!(found.kind, link.kind);
        assert_eq!(found.url.as_deref(), link.url.as_deref());
        assert_eq!(found.ids, ids[i], "the resolve reads the ids the mint stored");
    }
    // The same link on another day, or an unknown one, is not found.
    assert_eq!(store.resolve(day.plus(1), Version::V2, &minted.links[0].random).await.unwrap(), None);
    assert_eq!(store.resolve(day, Version::V2, &token::Random([7; 16])).await.unwrap(), None);
}

/// Readiness names what is missing: nothing right after migrate and
/// maintenance, tomorrow's partition once the clock is past what exists.
pub async fn readiness_names_missing_partitions<F: Fixture>() {
    let fixture = ready::<F>("readiness").await;
    let store = fixture.store();
    assert_eq!(store.readiness(start_day()).await.unwrap(), Vec::<String>::new());
    let later = start_day().plus(30);
    let problems = store.readiness(later).await.unwrap();
    assert!(!problems.is_empty() && problems.iter().all(|p| p.contains("maintenance is behind")), "{problems:?}");
    store.maintain(policy(later, 2, 90)).await.unwrap();
    assert_eq!(store.readiness(later).await.unwrap(), Vec::<String>::new(), "ready again once maintenance ran");
}

/// Link ids for v2 tokens: three replicas reserving blocks of random sizes
/// at the same time never get the same id (gaps are fine), and ids start at 1.
pub async fn id_reservation_across_three_replicas<F: Fixture>() {
    let fixture = ready::<F>("ids").await;
    let replicas = [fixture.store(), fixture.replica().await, fixture.replica().await];
    let mut tasks = Vec::new();
    for (r, store) in replicas.into_iter().enumerate() {
        for t in 0..4u64 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut got = Vec::new();
                for i in 0..50u64 {
                    let n = 1 + (i * 7919 + t * 104_729 + r as u64 * 13) % 5000;
                    got.push((store.reserve_ids(n).await.expect("reserve"), n));
                }
                got
            }));
        }
    }
    let mut ranges = Vec::new();
    for t in tasks {
        ranges.extend(t.await.expect("reserving task"));
    }
    ranges.sort_unstable();
    assert_eq!(ranges.len(), 600);
    assert!(ranges[0].0 >= 1, "ids start at 1: {:?}", ranges[0]);
    for w in ranges.windows(2) {
        assert!(w[0].0 + w[0].1 <= w[1].0, "ranges overlap: {:?} and {:?}", w[0], w[1]);
    }
}

/// Token v1 links minted before the upgrade resolve beside v2 links, each
/// only under its own format; a v2 id with a wrong secret is not found.
pub async fn v1_and_v2_links_side_by_side<F: Fixture>() {
    let fixture = ready::<F>("v1v2").await;
    let store = fixture.store();
    let day = start_day();
    let old = batch_of(Version::V1, day, &["https://old.example/"], true, None);
    let new = batch(day, &["https://new.example/"], true, None);
    let MintOutcome::Stored(old_ids) = store.mint(&old).await.unwrap() else { panic!("not stored") };
    let MintOutcome::Stored(new_ids) = store.mint(&new).await.unwrap() else { panic!("not stored") };
    assert_eq!(fixture.count_links().await, 4);
    for (b, url, ids) in [(&old, "https://old.example/", &old_ids), (&new, "https://new.example/", &new_ids)] {
        let found = store.resolve(day, b.version, &b.links[0].random).await.unwrap().expect("found under its own format");
        assert_eq!((found.kind, found.url.as_deref(), found.ids), (LinkKind::Click, Some(url), ids[0]));
        let other = if b.version == Version::V1 { Version::V2 } else { Version::V1 };
        assert_eq!(store.resolve(day, other, &b.links[0].random).await.unwrap(), None, "not under the other format");
    }
    let mut wrong = token::Sealed::from_block(&new.links[0].random);
    wrong.secret[0] ^= 1;
    assert_eq!(store.resolve(day, Version::V2, &wrong.to_block()).await.unwrap(), None, "the secret must match");
}

pub async fn idempotent_mint_replays<F: Fixture>() {
    let f = ready::<F>("idem").await;
    let s = f.store();
    let idem = Idempotency { key_hash: [1; 16], body_hash: [2; 16] };
    let first = batch(start_day(), &["https://a.example/"], true, Some(idem));
    assert!(matches!(s.mint(&first).await.unwrap(), MintOutcome::Stored(_)));
    let tokens: Vec<String> = first.links.iter().map(|l| l.token.to_string()).collect();
    let retry = batch(start_day(), &["https://a.example/"], true, Some(idem));
    assert_eq!(s.mint(&retry).await.unwrap(), MintOutcome::Replayed(tokens.clone()));
    // Still honoured the next day.
    let next_day = batch(start_day().plus(1), &["https://a.example/"], true, Some(idem));
    assert_eq!(s.mint(&next_day).await.unwrap(), MintOutcome::Replayed(tokens));
    assert_eq!(f.count_links().await, 2, "a replay stores nothing");
    let other_body = batch(start_day(), &["https://b.example/"], true, Some(Idempotency { body_hash: [3; 16], ..idem }));
    assert!(matches!(s.mint(&other_body).await, Err(linktrack::Error::IdempotencyMismatch)));
    assert_eq!(f.count_links().await, 2);
}

pub async fn no_catch_all_partition<F: Fixture>() {
    let f = F::open("catchall").await;
    let s = f.store();
    s.migrate().await.unwrap();
    s.maintain(policy(start_day(), 1, 30)).await.unwrap();
    let beyond = batch(start_day().plus(5), &["https://a.example/"], false, None);
    match s.mint(&beyond).await {
        Err(linktrack::Error::NoPartition(day)) => assert_eq!(day, start_day().plus(5)),
        other => panic!("an insert beyond the created days must fail loudly, got {other:?}"),
    }
    assert_eq!(f.count_links().await, 0, "nothing partial is stored");
}

// ---- over HTTP -------------------------------------------------------------

pub async fn serve<F: Fixture>(f: &F, extra: &[&str]) -> TestServer {
    TestServer::start(f.store(), Clock::manual(START_UNIX), serve_args(extra)).await
}

pub async fn http_mint_1000_and_redirect_each<F: Fixture>() {
    let f = F::open("http1000").await;
    let srv = serve(&f, &[]).await;
    let mut c = srv.client();
    let urls: Vec<String> = (0..1000).map(|i| format!("https://shop.example/item/{i}?utm_source=mail&n={}", i % 7)).collect();
    let body = json!({
        "mailing_id": "spring-sale", "recipient": "alice@example.com", "meta": {"segment": "vip"},
        "links": urls.iter().map(|u| json!({"url": u})).collect::<Vec<_>>(), "pixel": true
    });
    let r = c.mint(Some(API_KEY), &body, None).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let j = r.json();
    let links = j["links"].as_array().unwrap();
    assert_eq!(links.len(), 1000);
    assert_eq!(f.count_links().await, 1001);
    let base = format!("http://{}", srv.addr);
    for (i, l) in links.iter().enumerate() {
        assert_eq!(l["url"], urls[i], "links come back in request order");
        let tok = l["token"].as_str().unwrap();
        assert_eq!(l["tracking_url"], format!("{base}/c/{tok}"));
        let resp = c.get(&path_of(l["tracking_url"].as_str().unwrap())).await;
        assert_eq!(resp.status, 302, "link {i}");
        assert_eq!(resp.header("location"), urls[i]);
        assert_eq!(resp.header("cache-control"), "no-store");
        assert_eq!(resp.header("referrer-policy"), "no-referrer");
    }
    assert_eq!(j["pixel"]["tracking_url"], format!("{base}/o/{}", j["pixel"]["token"].as_str().unwrap()));
    srv.stop().await;
    // Again from a cold cache: every one of them resolved from the store.
    let srv = serve(&f, &[]).await;
    let mut c = srv.client();
    for (i, l) in links.iter().enumerate() {
        let resp = c.get(&path_of(l["tracking_url"].as_str().unwrap())).await;
        assert_eq!((resp.status.as_u16(), resp.header("location")), (302, urls[i].as_str()), "cold link {i}");
    }
    srv.stop().await;
}

pub async fn http_redirect_from_store_after_restart<F: Fixture>() {
    let f = F::open("http-cold").await;
    let srv = serve(&f, &[]).await;
    let r = srv
        .client()
        .mint(Some(API_KEY), &json!({"mailing_id": "m", "recipient": "r", "links": [{"url": "https://cold.example/x"}]}), None)
        .await;
    assert_eq!(r.status, 201);
    let path = path_of(r.json()["links"][0]["tracking_url"].as_str().unwrap());
    srv.stop().await;
    // A new server has an empty cache: this resolve reads the store.
    let srv = serve(&f, &[]).await;
    let resp = srv.client().get(&path).await;
    assert_eq!((resp.status.as_u16(), resp.header("location")), (302, "https://cold.example/x"));
    srv.stop().await;
}

pub async fn http_pixel<F: Fixture>() {
    let f = F::open("pixel").await;
    let srv = serve(&f, &[]).await;
    let mut c = srv.client();
    let r = c.mint(Some(API_KEY), &json!({"mailing_id": "m", "recipient": "r", "links": [], "pixel": true}), None).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let j = r.json();
    assert_eq!(j["links"], json!([]));
    let path = path_of(j["pixel"]["tracking_url"].as_str().unwrap());
    let gif = c.get(&path).await;
    assert_eq!(gif.status, 200);
    assert_eq!(gif.header("content-type"), "image/gif");
    assert_eq!(gif.header("cache-control"), "no-store");
    assert_eq!(gif.body.len(), 43);
    assert_eq!(&gif.body[..], &linktrack::http::redirect::PIXEL_GIF[..]);
    let head = c.head(&path).await;
    assert_eq!((head.status.as_u16(), head.header("content-length"), head.body.len()), (200, "43", 0));
    // A pixel token is not a click, and a click without pixel has no pixel.
    assert_eq!(c.get(&path.replace("/o/", "/c/")).await.status, 404);
    let r = c.mint(Some(API_KEY), &json!({"mailing_id": "m", "recipient": "r", "links": [{"url": "https://a.example/"}]}), None).await;
    assert_eq!(r.json()["pixel"], serde_json::Value::Null);
    let head = c.head(&path_of(r.json()["links"][0]["tracking_url"].as_str().unwrap())).await;
    assert_eq!((head.status.as_u16(), head.header("location")), (302, "https://a.example/"));
    srv.stop().await;
}

pub async fn http_idempotent_replay<F: Fixture>() {
    let f = F::open("http-idem").await;
    let srv = serve(&f, &[]).await;
    let mut c = srv.client();
    let body = json!({"mailing_id": "m", "recipient": "r", "links": [{"url": "https://a.example/"}, {"url": "https://b.example/"}], "pixel": true});
    let first = c.mint(Some(API_KEY), &body, Some("letter-42")).await;
    assert_eq!(first.status, 201);
    let count = f.count_links().await;
    let again = c.mint(Some(API_KEY), &body, Some("letter-42")).await;
    assert_eq!(again.status, 201);
    assert_eq!(again.json(), first.json(), "a replay returns the same tokens");
    assert_eq!(f.count_links().await, count, "a replay inserts no rows");
    let changed = json!({"mailing_id": "m", "recipient": "r", "links": [{"url": "https://c.example/"}]});
    let conflict = c.mint(Some(API_KEY), &changed, Some("letter-42")).await;
    assert_eq!((conflict.status.as_u16(), conflict.json()["error"].as_str()), (422, Some("idempotency_mismatch")));
    let bad_key = c.mint(Some(API_KEY), &body, Some("bad key with spaces")).await;
    assert_eq!(bad_key.status, 400);
    assert_eq!(f.count_links().await, count);
    srv.stop().await;
}

pub async fn http_bad_input_stores_nothing<F: Fixture>() {
    let f = F::open("http-bad").await;
    let srv = serve(&f, &["--max-body-bytes", "65536"]).await;
    let mut c = srv.client();
    let long = format!("https://a.example/{}", "x".repeat(3000));
    for (bad, why) in [
        ("javascript:alert(1)", "javascript"),
        ("/relative", "relative"),
        ("https://a.example/\r\nX-Evil: 1", "crlf"),
        (long.as_str(), "3 KB"),
    ] {
        let body = json!({"mailing_id": "m", "recipient": "r", "links": [{"url": "https://ok.example/"}, {"url": bad}]});
        let r = c.mint(Some(API_KEY), &body, None).await;
        assert_eq!(r.status, 422, "{why}: {:?}", r.body);
        let j = r.json();
        assert_eq!(j["error"], "invalid", "{why}");
        assert_eq!(j["index"], 1, "{why}");
        assert!(j["message"].as_str().unwrap().starts_with("links[1].url"), "{why}: {j}");
    }
    let r = c.send(http::Method::POST, "/v1/links", &[("authorization", &format!("Bearer {API_KEY}"))], "{not json").await;
    assert_eq!((r.status.as_u16(), r.json()["error"].as_str()), (400, Some("bad_request")));
    let too_many = json!({"mailing_id": "m", "recipient": "r", "links": vec![json!({"url": "https://a.example/"}); 1001]});
    assert_eq!(c.mint(Some(API_KEY), &too_many, None).await.status, 422);
    // Over the body limit without a declared length (chunked): cut off at the limit. (A declared
    // length over it is refused before the body is sent: `http_edges_are_refused_clearly`.)
    let huge = json!({"mailing_id": "m", "recipient": "r", "links": vec![json!({"url": "https://a.example/"}); 5000]}).to_string();
    let request = format!(
        "POST /v1/links HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{huge}\r\n0\r\n\r\n",
        huge.len()
    );
    assert_eq!(super::integrity_suite::raw(srv.addr, &request).await.0, 413);
    let empty = json!({"mailing_id": "", "recipient": "r", "links": [{"url": "https://a.example/"}]});
    assert_eq!(c.mint(Some(API_KEY), &empty, None).await.status, 422);
    assert_eq!(f.count_links().await, 0, "nothing from a rejected batch is stored");
    srv.stop().await;
}

pub async fn http_auth_required<F: Fixture>() {
    let f = F::open("http-auth").await;
    let srv = serve(&f, &[]).await;
    let mut c = srv.client();
    let body = json!({"mailing_id": "m", "recipient": "r", "links": [{"url": "https://a.example/"}]});
    for key in [None, Some("wrong-key"), Some("")] {
        let r = c.mint(key, &body, None).await;
        assert_eq!(r.status, 401, "{key:?}");
        assert_eq!(r.json()["error"], "unauthorized");
    }
    assert_eq!(f.count_links().await, 0);
    srv.stop().await;
}

pub async fn http_forged_tokens_404<F: Fixture>() {
    let f = F::open("http-forged").await;
    let srv = serve(&f, &[]).await;
    let mut c = srv.client();
    let r = c.mint(Some(API_KEY), &json!({"mailing_id": "m", "recipient": "r", "links": [{"url": "https://a.example/"}]}), None).await;
    let tok = r.json()["links"][0]["token"].as_str().unwrap().to_owned();
    // Flip one payload character: the MAC no longer matches.
    let mut forged = tok.clone().into_bytes();
    let i = usize::from(forged[0] == b'-');
    forged[i] = if forged[i] == b'a' { b'b' } else { b'a' };
    let forged = String::from_utf8(forged).unwrap();
    for path in [format!("/c/{forged}"), "/c/garbage".into(), "/c/".into(), format!("/c/{tok}x"), format!("/o/{tok}")] {
        let r = c.get(&path).await;
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.json()["error"], "not_found");
    }
    // A well-formed token whose MAC is valid but which was never stored.
    let mut minted = Vec::new();
    token::generate(&keys(), start_day(), 1, &mut minted);
    assert_eq!(c.get(&format!("/c/{}", minted[0].0)).await.status, 404);
    assert_eq!(c.get(&format!("/c/{tok}")).await.status, 302);
    srv.stop().await;
}

pub async fn http_expired_tokens_go_to_fallback<F: Fixture>() {
    let f = F::open("http-expired").await;
    let srv = serve(&f, &["--retention-days", "30"]).await;
    let mut c = srv.client();
    let r = c.mint(Some(API_KEY), &json!({"mailing_id": "m", "recipient": "r", "links": [{"url": "https://old.example/"}]}), None).await;
    let old = path_of(r.json()["links"][0]["tracking_url"].as_str().unwrap());
    // 40 days later: maintenance drops the old day; its tokens go to the fallback with no lookup.
    srv.clock.advance_days(40);
    let rep = f.store().maintain(policy(srv.clock.today(), 7, 30)).await.unwrap();
    assert!(rep.dropped.contains(&start_day()), "{rep:?}");
    let expired = c.get(&old).await;
    assert_eq!((expired.status.as_u16(), expired.header("location")), (302, FALLBACK));
    // Today's mint works and resolves.
    let r = c.mint(Some(API_KEY), &json!({"mailing_id": "m", "recipient": "r", "links": [{"url": "https://new.example/"}]}), None).await;
    assert_eq!(r.status, 201);
    let fresh = c.get(&path_of(r.json()["links"][0]["tracking_url"].as_str().unwrap())).await;
    assert_eq!((fresh.status.as_u16(), fresh.header("location")), (302, "https://new.example/"));
    srv.stop().await;
}

/// Instantiate the whole suite for one backend's [`Fixture`].
/// `/openapi.json` is `docs/openapi.yaml`, and the router answers exactly
/// what it documents: every documented (path, method) reaches its handler
/// (neither the "no such endpoint" 404 nor a 405), every other method of a
/// documented path gets 405 with `Allow`, and an undocumented path gets the
/// fallback 404.
pub async fn http_openapi_matches_the_router<F: Fixture>() {
    use hyper::Method;
    let f = ready::<F>("http-openapi").await;
    let srv = serve(&f, &[]).await;
    let mut c = srv.client();
    let r = c.get("/openapi.json").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), "application/json");
    let doc = r.json();
    assert_eq!(doc["openapi"], "3.1.0");
    let auth = format!("Bearer {API_KEY}");
    let fallback =
        |r: &super::client::Reply| r.status == 404 && r.body.starts_with(br#"{"error":"not_found","message":"no such endpoint""#);
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() >= 9, "{} paths", paths.len());
    for (template, item) in paths {
        let path = template.replace("{token}", "not-a-token").replace("{mailing_id}", "m-1").replace("{name}", "report.js");
        for method in [Method::GET, Method::HEAD, Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
            let name = method.as_str().to_ascii_lowercase();
            let body = if method == Method::POST { r#"{"mailing_id":"m","recipient":"r","links":[]}"# } else { "" };
            let r = c.send(method.clone(), &path, &[("authorization", &auth), ("content-type", "application/json")], body).await;
            let documented = item.get(&name).is_some();
            // HEAD of an undocumented GET route may be answered (the probes) or refused (the API).
            let head_of_get = method == Method::HEAD && item.get("get").is_some();
            assert!(!fallback(&r), "{name} {path}: the router has no such endpoint");
            if documented {
                assert_ne!(r.status, 405, "{name} {path} is documented but refused");
            } else if !head_of_get {
                assert_eq!(r.status, 405, "{name} {path} is not documented but answered {}", r.status);
                assert!(!r.header("allow").is_empty(), "{name} {path}: 405 without Allow");
            }
        }
    }
    assert!(fallback(&c.get("/v1/nothing-here").await));
    srv.stop().await;
}

#[macro_export]
macro_rules! conformance_suite {
    ($fixture:ty) => {
        mod conformance_suite {
            use super::*;
            use $crate::common::conformance as c;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn migrate_is_idempotent() {
                c::migrate_is_idempotent::<$fixture>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn settings_keep_the_first_value() {
                c::settings_keep_the_first_value::<$fixture>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn settings_compare_and_swap() {
                c::settings_compare_and_swap::<$fixture>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn maintenance_creates_ahead_and_drops_past_retention() {
                c::maintenance_creates_ahead_and_drops_past_retention::<$fixture>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn mint_then_resolve() {
                c::mint_then_resolve::<$fixture>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn readiness_names_missing_partitions() {
                c::readiness_names_missing_partitions::<$fixture>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn id_reservation_across_three_replicas() {
                c::id_reservation_across_three_replicas::<$fixture>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn v1_and_v2_links_side_by_side() {
                c::v1_and_v2_links_side_by_side::<$fixture>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn idempotent_mint_replays() {
                c::idempotent_mint_replays::<$fixture>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn no_catch_all_partition() {
                c::no_catch_all_partition::<$fixture>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn http_mint_1000_and_redirect_each() {
                c::http_mint_1000_and_redirect_each::<$fixture>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn http_redirect_from_store_after_restart() {
                c::http_redirect_from_store_after_restart::<$fixture>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn http_pixel() {
                c::http_pixel::<$fixture>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn http_idempotent_replay() {
                c::http_idempotent_replay::<$fixture>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn http_bad_input_stores_nothing() {
                c::http_bad_input_stores_nothing::<$fixture>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn http_auth_required() {
                c::http_auth_required::<$fixture>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn http_forged_tokens_404() {
                c::http_forged_tokens_404::<$fixture>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn http_openapi_matches_the_router() {
                c::http_openapi_matches_the_router::<$fixture>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn http_expired_tokens_go_to_fallback() {
                c::http_expired_tokens_go_to_fallback::<$fixture>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn events_write_read_and_dedup() {
                $crate::common::events_suite::events_write_read_and_dedup::<$fixture>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn events_read_letter_and_url_by_the_ids_they_carry() {
                $crate::common::events_suite::events_read_letter_and_url_by_the_ids_they_carry::<$fixture>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn http_events_carry_link_ids_and_fall_back_without() {
                $crate::common::events_suite::http_events_carry_link_ids_and_fall_back_without::<$fixture>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn rollup_apply_is_exact_and_guarded() {
                $crate::common::events_suite::rollup_apply_is_exact_and_guarded::<$fixture>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn http_events_stats_match_brute_force() {
                $crate::common::events_suite::http_events_stats_match_brute_force::<$fixture>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn http_tenants_see_only_their_own() {
                $crate::common::tenancy_suite::http_tenants_see_only_their_own::<$fixture>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn http_erase_recipient_everywhere_in_the_tenant() {
                $crate::common::tenancy_suite::http_erase_recipient_everywhere_in_the_tenant::<$fixture>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn http_webhooks_deliver_settled_events_in_order_signed() {
                $crate::common::webhooks_suite::http_webhooks_deliver_settled_events_in_order_signed::<$fixture>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn webhook_lease_is_exclusive_and_expires() {
                $crate::common::webhooks_suite::webhook_lease_is_exclusive_and_expires::<$fixture>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn http_export_is_resumable() {
                $crate::common::events_suite::http_export_is_resumable::<$fixture>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn http_rewrite_corpus() {
                $crate::common::rewrite_suite::http_rewrite_corpus::<$fixture>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn http_rewrite_rejects_and_stores_nothing() {
                $crate::common::rewrite_suite::http_rewrite_rejects_and_stores_nothing::<$fixture>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn http_rewrite_is_idempotent() {
                $crate::common::rewrite_suite::http_rewrite_is_idempotent::<$fixture>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn full_spool_drains_when_the_store_is_back() {
                $crate::common::integrity_suite::full_spool_drains_when_the_store_is_back::<$fixture>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn skewed_writer_rows_are_exported_and_counted() {
                $crate::common::integrity_suite::skewed_writer_rows_are_exported_and_counted::<$fixture>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn cursor_model_with_skewed_writers() {
                $crate::common::integrity_suite::cursor_model_with_skewed_writers::<$fixture>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn v1_tokens_from_before_the_upgrade_keep_working() {
                $crate::common::integrity_suite::v1_tokens_from_before_the_upgrade_keep_working::<$fixture>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn http_edges_are_refused_clearly() {
                $crate::common::integrity_suite::http_edges_are_refused_clearly::<$fixture>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn minted_urls_are_normalised_in_location() {
                $crate::common::integrity_suite::minted_urls_are_normalised_in_location::<$fixture>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn recipients_see_pages_and_pixels_always_render() {
                $crate::common::integrity_suite::recipients_see_pages_and_pixels_always_render::<$fixture>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn metrics_histograms_move_with_traffic() {
                $crate::common::integrity_suite::metrics_histograms_move_with_traffic::<$fixture>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn api_limits_and_the_connection_cap() {
                $crate::common::integrity_suite::api_limits_and_the_connection_cap::<$fixture>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn idempotency_key_either_side_of_midnight() {
                $crate::common::integrity_suite::idempotency_key_either_side_of_midnight::<$fixture>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn metrics_count_statements_pool_and_rollup_lag() {
                $crate::common::store_metrics_suite::metrics_count_statements_pool_and_rollup_lag::<$fixture>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn token_keys_rotate_without_a_restart() {
                $crate::common::keys_suite::token_keys_rotate_without_a_restart::<$fixture>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn oldest_day_dropped_by_a_replica_ahead_goes_to_fallback() {
                $crate::common::integrity_suite::oldest_day_dropped_by_a_replica_ahead_goes_to_fallback::<$fixture>().await
            }
        }
    };
}
