//! Tenants, scoped keys and recipient erasure over HTTP, against every
//! backend (wired into `conformance_suite!`): each tenant's `read` key sees
//! only its own mailings in stats and export, another tenant's mailing is a
//! `404` exactly like an unknown one, a key without the scope gets `403`,
//! keys created or revoked in the store take effect on a running server, and
//! `DELETE /v1/recipients` blanks one tenant's recipient everywhere while
//! the links keep redirecting.

use std::time::Duration;

use http::Method;
use linktrack::day::Clock;
use linktrack::store::Store;
use serde_json::{Value, json};

use super::client::{Client, Reply, path_of};
use super::conformance::{Fixture, serve};
use super::server::API_KEY;

const FAST: [&str; 10] = [
    "--event-flush-ms",
    "20",
    "--rollup-interval-ms",
    "50",
    "--burst-window-secs",
    "1",
    "--api-keys-refresh-secs",
    "1",
    "--near-mint-secs",
    "0",
];

async fn key<S: Store>(store: &S, tenant: &str, scopes: &str) -> String {
    linktrack::app::create_api_key(store, tenant, scopes, "test").await.expect("create key").0
}

async fn call(c: &mut Client, method: Method, path: &str, key: &str, body: Option<Value>) -> Reply {
    c.api(method, path, key, body.as_ref()).await
}

async fn mint(c: &mut Client, key: &str, mailing: &str, recipient: &str, urls: &[&str]) -> Value {
    let links: Vec<Value> = urls.iter().map(|u| json!({"url": u})).collect();
    let body = json!({"mailing_id": mailing, "recipient": recipient, "meta": {"first_name": "Pat"}, "links": links, "pixel": true});
    let r = c.mint(Some(key), &body, None).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    r.json()
}

/// Follow every link and the pixel of a minted letter; the number of hits.
async fn hit_all(c: &mut Client, letter: &Value) -> usize {
    let mut n = 0;
    for l in letter["links"].as_array().unwrap() {
        assert_eq!(c.get(&path_of(l["tracking_url"].as_str().unwrap())).await.status, 302);
        n += 1;
    }
    assert_eq!(c.get(&path_of(letter["pixel"]["tracking_url"].as_str().unwrap())).await.status, 200);
    n + 1
}

fn ndjson(body: &[u8]) -> Vec<Value> {
    std::str::from_utf8(body).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

async fn export(c: &mut Client, key: &str) -> Vec<Value> {
    let r = call(c, Method::GET, "/v1/events?limit=10000", key, None).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    ndjson(&r.body)
}

/// Poll `key`'s export until it holds `n` rows (the writer flushes asynchronously).
async fn wait_export(c: &mut Client, key: &str, n: usize) -> Vec<Value> {
    for _ in 0..400 {
        let rows = export(c, key).await;
        if rows.len() >= n {
            assert_eq!(rows.len(), n, "more events than this tenant's hits");
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("fewer than {n} events were exported within 10 s");
}

/// Move the clock past the settle delay and wait until `key`'s stats of `mailing` count `clicks` clicks.
async fn settled_clicks(c: &mut Client, clock: &Clock, key: &str, mailing: &str, clicks: i64) -> Value {
    clock.advance_ms(60_000);
    let mut last = Value::Null;
    for _ in 0..400 {
        let r = call(c, Method::GET, &format!("/v1/mailings/{mailing}/stats"), key, None).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        last = r.json();
        let total: i64 = last["links"].as_array().unwrap().iter().map(|l| l["clicks"]["total"].as_i64().unwrap()).sum();
        if total >= clicks {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("stats of {mailing} did not reach {clicks} clicks: {last}");
}

pub async fn http_tenants_see_only_their_own<F: Fixture>() {
    let f = F::open("tenants").await;
    let store = f.store();
    store.migrate().await.expect("migrate");
    let (acme_mint, acme_read) = (key(&*store, "acme", "mint").await, key(&*store, "acme", "read").await);
    let (beta_all, beta_mint) = (key(&*store, "beta", "mint,read").await, key(&*store, "beta", "mint").await);
    let srv = serve(&f, &FAST).await;
    let mut c = srv.client();

    // Both tenants use the same mailing id; each mailing is its tenant's own.
    let acme_letter = mint(&mut c, &acme_mint, "spring", "alice@acme.example", &["https://acme.example/a", "https://acme.example/b"]).await;
    let beta_letter = mint(&mut c, &beta_mint, "spring", "bob@beta.example", &["https://beta.example/x"]).await;
    mint(&mut c, &acme_mint, "acme-only", "carol@acme.example", &["https://acme.example/c"]).await;
    let (a_hits, b_hits) = (hit_all(&mut c, &acme_letter).await, hit_all(&mut c, &beta_letter).await);

    // Scopes: a mint key cannot read, a read key cannot mint, nobody else may erase.
    for path in ["/v1/mailings/spring/stats", "/v1/events"] {
        let r = call(&mut c, Method::GET, path, &acme_mint, None).await;
        assert_eq!((r.status.as_u16(), r.json()["error"].as_str()), (403, Some("forbidden")), "{path}");
    }
    let r = c.mint(Some(&acme_read), &json!({"mailing_id": "m", "recipient": "r", "links": [], "pixel": true}), None).await;
    assert_eq!(r.status, 403, "a read key cannot mint");
    let r = call(&mut c, Method::DELETE, "/v1/recipients", &beta_all, Some(json!({"recipient": "bob@beta.example"}))).await;
    assert_eq!(r.status, 403, "erasure needs the admin scope");
    assert_eq!(call(&mut c, Method::GET, "/v1/events", "ltk_not-a-key-0000000000", None).await.status, 401);

    // Exports: each read key sees exactly its own tenant's events.
    let acme_rows = wait_export(&mut c, &acme_read, a_hits).await;
    let beta_rows = wait_export(&mut c, &beta_all, b_hits).await;
    assert!(acme_rows.iter().all(|r| r["recipient"] == "alice@acme.example"), "{acme_rows:?}");
    assert!(beta_rows.iter().all(|r| r["recipient"] == "bob@beta.example"), "{beta_rows:?}");
    assert!(export(&mut c, API_KEY).await.is_empty(), "the default tenant minted nothing, so it sees nothing");
    let r = call(&mut c, Method::GET, "/v1/events?mailing_id=spring&limit=100", &beta_all, None).await;
    assert_eq!(ndjson(&r.body).len(), b_hits, "a mailing filter stays within the tenant");

    // Stats: the same mailing id, each tenant's own counts; another tenant's mailing is a 404 like an unknown one.
    let acme_stats = settled_clicks(&mut c, &srv.clock, &acme_read, "spring", 2).await;
    let urls: Vec<&str> = acme_stats["links"].as_array().unwrap().iter().map(|l| l["url"].as_str().unwrap()).collect();
    assert_eq!(urls, ["https://acme.example/a", "https://acme.example/b"]);
    let beta_stats = settled_clicks(&mut c, &srv.clock, &beta_all, "spring", 1).await;
    assert_eq!(beta_stats["links"].as_array().unwrap().len(), 1);
    assert_eq!(beta_stats["links"][0]["url"], "https://beta.example/x");
    assert_eq!(beta_stats["opens"]["total"], 1);
    let unknown = call(&mut c, Method::GET, "/v1/mailings/never-sent/stats", &beta_all, None).await;
    let foreign = call(&mut c, Method::GET, "/v1/mailings/acme-only/stats", &beta_all, None).await;
    assert_eq!((foreign.status.as_u16(), unknown.status.as_u16()), (404, 404));
    assert_eq!(foreign.body, unknown.body, "another tenant's mailing looks exactly like one that does not exist");
    let own = call(&mut c, Method::GET, "/v1/mailings/acme-only/stats", &acme_read, None).await;
    assert_eq!(own.status, 200, "a mailing with no hits yet has zeros for its tenant");
    let zeros = json!({"total": 0, "unique": 0, "unique_human": 0, "human": 0, "bot": 0, "suspect": 0});
    assert_eq!(own.json()["links"], json!([{"url": "https://acme.example/c", "position": 0, "clicks": zeros}]), "its link, never clicked");

    // Keys created or revoked in the store take effect on the running server.
    let late = key(&*store, "acme", "read").await;
    let mut seen = false;
    for _ in 0..80 {
        if call(&mut c, Method::GET, "/v1/events?limit=1", &late, None).await.status == 200 {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen, "a key created while serving is accepted within the refresh interval");
    let id = store.api_keys().await.unwrap().iter().find(|k| k.digest == linktrack::tenant::key_digest(&acme_read)).unwrap().id;
    assert!(store.revoke_api_key(id, 0).await.unwrap());
    assert!(!store.revoke_api_key(id, 0).await.unwrap(), "revoking twice changes nothing");
    let mut refused = false;
    for _ in 0..80 {
        if call(&mut c, Method::GET, "/v1/events?limit=1", &acme_read, None).await.status == 401 {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(refused, "a revoked key is refused within the refresh interval");
}

pub async fn http_erase_recipient_everywhere_in_the_tenant<F: Fixture>() {
    let f = F::open("erase").await;
    let store = f.store();
    store.migrate().await.expect("migrate");
    let acme = key(&*store, "acme", "mint,read").await;
    let srv = serve(&f, &FAST).await;
    let mut c = srv.client();
    let alice = "alice@example.com";
    let a1 = mint(&mut c, API_KEY, "m1", alice, &["https://shop.example/1?a=1&b=2"]).await;
    let a2 = mint(&mut c, API_KEY, "m2", alice, &["https://shop.example/2"]).await;
    let bob = mint(&mut c, API_KEY, "m1", "bob@example.com", &["https://shop.example/1?a=1&b=2"]).await;
    let other = mint(&mut c, &acme, "m1", alice, &["https://acme.example/1"]).await;
    let hits = hit_all(&mut c, &a1).await + hit_all(&mut c, &a2).await + hit_all(&mut c, &bob).await;
    let other_hits = hit_all(&mut c, &other).await;

    let before = wait_export(&mut c, API_KEY, hits).await;
    let alice_rows = before.iter().filter(|r| r["recipient"] == alice).count();
    assert_eq!(alice_rows, 4, "two letters of one link and a pixel each");

    for (body, status) in [(json!({}), 400), (json!({"recipient": ""}), 422), (json!({"recipient": "x", "extra": 1}), 400)] {
        assert_eq!(call(&mut c, Method::DELETE, "/v1/recipients", API_KEY, Some(body.clone())).await.status, status, "{body}");
    }
    let r = call(&mut c, Method::DELETE, "/v1/recipients", API_KEY, Some(json!({"recipient": alice}))).await;
    assert_eq!((r.status.as_u16(), r.json()), (200, json!({"letters": 2})));
    let again = call(&mut c, Method::DELETE, "/v1/recipients", API_KEY, Some(json!({"recipient": alice}))).await;
    assert_eq!((again.status.as_u16(), again.json()), (200, json!({"letters": 0})), "erasure is idempotent");

    let after = export(&mut c, API_KEY).await;
    assert_eq!(after.len(), before.len(), "events stay, anonymous");
    assert!(after.iter().all(|r| r["recipient"] != alice), "the address is gone from every exported event");
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(a["cursor"], b["cursor"]);
        if b["recipient"] == alice {
            assert_eq!((a["recipient"].as_str(), &a["meta"]), (Some(""), &Value::Null), "address and meta erased");
            assert_eq!((&a["url"], &a["mailing_id"]), (&b["url"], &b["mailing_id"]));
        } else {
            assert_eq!(a, b, "other recipients are untouched");
        }
    }
    // Another tenant's letters to the same address are that tenant's to erase.
    let acme_rows = export(&mut c, &acme).await;
    assert_eq!(acme_rows.len(), other_hits);
    assert!(acme_rows.iter().all(|r| r["recipient"] == alice));
    // An old email still works.
    for letter in [&a1, &a2] {
        let r = c.get(&path_of(letter["links"][0]["tracking_url"].as_str().unwrap())).await;
        assert_eq!(r.status, 302);
        assert_eq!(r.header("location"), letter["links"][0]["url"].as_str().unwrap());
    }
}
