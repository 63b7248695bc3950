//! Token key rotation with the keys kept in the store (the default setup),
//! run against every backend (wired into `conformance_suite!`): a running
//! server picks up an added key (it verifies at once and mints from its
//! activation time) and a retired one (its
//! tokens get 404 with no store statement, counted by `/metrics`) without a
//! restart.

use std::time::Duration;

use linktrack::day::Clock;
use linktrack::store::Store;
use linktrack::token::{self, KeyRing};
use linktrack::token_keys;
use serde_json::json;

use super::client::Client;
use super::conformance::{Fixture, ready};
use super::process::metric;
use super::server::{API_KEY, START_UNIX, TestServer, serve_args};

/// How long a change may take to reach the server (it reloads every 100 ms here).
const RELOAD_LIMIT: Duration = Duration::from_secs(10);

async fn mint_one(c: &mut Client, url: &str) -> String {
    let r = c.mint(Some(API_KEY), &json!({"mailing_id": "rot", "recipient": "r", "links": [{"url": url}]}), None).await;
    assert_eq!(r.status, 201, "mint: {}", String::from_utf8_lossy(&r.body));
    r.json()["links"][0]["token"].as_str().expect("token").to_owned()
}

/// The key id `tok` is signed with, checked against the stored ring.
fn key_of(tok: &str, ring: &KeyRing, srv: &TestServer) -> u8 {
    token::parse(tok.as_bytes(), ring, srv.clock.today()).expect("a token the stored ring verifies").key_id
}

async fn statements(c: &mut Client, kind: &str) -> u64 {
    let text = String::from_utf8(c.get("/metrics").await.body.to_vec()).expect("utf-8 metrics");
    metric(&text, &format!("linktrack_db_statements_total{{kind=\"{kind}\"}}"))
}

pub async fn token_keys_rotate_without_a_restart<F: Fixture>() {
    let f = ready::<F>("key-rotation").await;
    let store = f.store();
    let clock = Clock::manual(START_UNIX);
    assert!(token_keys::load(&*store, clock.now_ms()).await.expect("load").is_none(), "a fresh store holds no token key");
    let mut args = serve_args(&["--token-key-reload-ms", "100"]);
    args.token_keys = None;
    let srv = TestServer::start(store.clone(), clock.clone(), args).await;
    let mut c = srv.client();

    // Key 0, generated and stored at the server's start, mints.
    let first = mint_one(&mut c, "https://one.example/").await;
    let ring = token_keys::load(&*store, clock.now_ms()).await.expect("load").expect("serve stored a key");
    assert_eq!(token_keys::ids(&ring), vec![0]);
    assert_eq!(key_of(&first, &ring, &srv), 0);

    // Add key 1, minting a minute from now: the server verifies with it at its next reload, but keeps minting with key 0.
    assert_eq!(token_keys::add(&*store, clock.now_ms(), 60_000).await.expect("add"), 1);
    let ring = token_keys::load(&*store, clock.now_ms()).await.expect("load").expect("ring");
    assert_eq!(token_keys::ids(&ring), vec![0, 1], "key 1 only verifies before its time");
    let mut signed = Vec::new();
    token::generate(&KeyRing::new(vec![ring.get(1).expect("key 1").clone()]).expect("ring"), srv.clock.today(), 1, &mut signed);
    let key1_unstored = format!("/c/{}", signed[0].0);
    let deadline = tokio::time::Instant::now() + RELOAD_LIMIT;
    loop {
        // A key-1 token passes the MAC check once the server knows key 1, and costs a lookup (404: never stored).
        let before = statements(&mut c, "resolve").await;
        assert_eq!(c.get(&key1_unstored).await.status, 404);
        if statements(&mut c, "resolve").await == before + 1 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the server does not verify key 1 {RELOAD_LIMIT:?} after it was added");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(key_of(&mint_one(&mut c, "https://one.example/b").await, &ring, &srv), 0, "key 0 mints until key 1's time");

    // A minute later key 1 mints.
    clock.advance_ms(60_000);
    let ring = token_keys::load(&*store, clock.now_ms()).await.expect("load").expect("ring");
    assert_eq!(token_keys::ids(&ring), vec![1, 0]);
    let deadline = tokio::time::Instant::now() + RELOAD_LIMIT;
    let second = loop {
        let tok = mint_one(&mut c, "https://two.example/").await;
        if key_of(&tok, &ring, &srv) == 1 {
            break tok;
        }
        assert!(tokio::time::Instant::now() < deadline, "the server still mints with key 0 {RELOAD_LIMIT:?} after key 1's time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for (tok, url) in [(&first, "https://one.example/"), (&second, "https://two.example/")] {
        let r = c.get(&format!("/c/{tok}")).await;
        assert_eq!((r.status.as_u16(), r.header("location")), (302, url), "both keys verify");
    }

    // Retire key 0: its tokens get 404 once the server reloads.
    token_keys::retire(&*store, 0, clock.now_ms()).await.expect("retire");
    let ring = token_keys::load(&*store, clock.now_ms()).await.expect("load").expect("ring");
    assert_eq!(token_keys::ids(&ring), vec![1]);
    assert!(store.setting(&token_keys::key_setting(0)).await.expect("read").is_none(), "the retired secret is deleted");
    let deadline = tokio::time::Instant::now() + RELOAD_LIMIT;
    while c.get(&format!("/c/{first}")).await.status != 404 {
        assert!(tokio::time::Instant::now() < deadline, "key 0's token still resolves {RELOAD_LIMIT:?} after retiring it");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // ... with zero statements: the MAC check rejects it before any lookup.
    let before = statements(&mut c, "resolve").await;
    for _ in 0..20 {
        assert_eq!(c.get(&format!("/c/{first}")).await.status, 404);
    }
    assert_eq!(statements(&mut c, "resolve").await, before, "a retired key's token cost a resolve");
    // The counter does move for a lookup: a key-1 token never stored costs exactly one.
    let mut unstored = Vec::new();
    token::generate(&ring, srv.clock.today(), 1, &mut unstored);
    assert_eq!(c.get(&format!("/c/{}", unstored[0].0)).await.status, 404);
    assert_eq!(statements(&mut c, "resolve").await, before + 1, "an unknown key-1 token is looked up once");
    // Key 1's tokens still resolve, and it mints.
    let r = c.get(&format!("/c/{second}")).await;
    assert_eq!((r.status.as_u16(), r.header("location")), (302, "https://two.example/"));
    let third = mint_one(&mut c, "https://three.example/").await;
    assert_eq!(key_of(&third, &ring, &srv), 1);
    assert_eq!(c.get(&format!("/c/{third}")).await.status, 302);
    srv.stop().await;
}
