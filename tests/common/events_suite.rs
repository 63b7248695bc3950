//! The events half of the conformance suite: event batches, the rollup,
//! stats and the export, run against every backend (wired into
//! `conformance_suite!`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use bytes::Bytes;
use http::Method as HttpMethod;
use linktrack::day::{Clock, Day};
use linktrack::events::{
    Counts, Cursor, EventBatch, EventQuery, FirstHit, Hit, IpBytes, LinkStats, Method, Reason, Relabel, RollupApply, StatKey, Verdict,
    WriteOutcome,
};
use linktrack::link::{LinkIds, LinkKind, MintBatch, MintOutcome};
use linktrack::store::Store;
use linktrack::tenant::TenantId;
use linktrack::token::Version;
use serde_json::{Value, json};

use super::client::{Client, path_of};
use super::conformance::{Fixture, batch, ready, serve};
use super::server::{API_KEY, START_UNIX, start_day};

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";
const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
/// Commas and quotes, so the CSV must quote and escape.
const UA_WITH_QUOTES: &str = "Mozilla/5.0 (compatible; \"Quoted\", comma) Gecko";
const GOOGLEBOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

fn hit(link: &linktrack::link::NewLink, day: Day, at_ms: i64, reason: Reason) -> Hit {
    Hit {
        at_ms,
        kind: link.kind,
        method: Method::Get,
        link_day: day,
        version: linktrack::token::Version::V2,
        random: link.random,
        link_ids: None,
        ip: IpBytes::new("198.51.100.7".parse().unwrap()),
        user_agent: FIREFOX.as_bytes().to_vec(),
        reason,
    }
}

fn query(after: Cursor) -> EventQuery {
    EventQuery { after, limit: 100, mailing_id: None }
}

// ---- store level -----------------------------------------------------------

pub async fn events_write_read_and_dedup<F: Fixture>() {
    let f = ready::<F>("events").await;
    let s = f.store();
    let day = start_day();
    let minted = batch(day, &["https://a.example/1", "https://b.example/2"], true, None);
    s.mint(&minted).await.unwrap();
    let t0 = START_UNIX * 1000;
    let hits: Vec<Hit> = minted
        .links
        .iter()
        .enumerate()
        .map(|(i, l)| hit(l, day, t0 + i64::try_from(i).unwrap(), if i == 1 { Reason::HeadRequest } else { Reason::None }))
        .collect();
    let first = EventBatch { id: [1; 16], formed: day, hits: hits.clone() };
    assert_eq!(s.write_events(&first, day).await.unwrap(), WriteOutcome::Stored);
    assert_eq!(s.write_events(&first, day).await.unwrap(), WriteOutcome::AlreadyStored, "a replayed batch is not stored twice");
    assert_eq!(s.write_events(&first, day.plus(1)).await.unwrap(), WriteOutcome::AlreadyStored, "recognised on a later day too");
    let second = EventBatch { id: [2; 16], formed: day, hits: hits[..1].to_vec() };
    assert_eq!(s.write_events(&second, day.plus(1)).await.unwrap(), WriteOutcome::Stored);

    let all = s.read_events(&query(Cursor::START)).await.unwrap();
    assert_eq!(all.len(), 4, "3 + 1 events, no duplicates: {all:#?}");
    assert!(all.windows(2).all(|w| w[0].cursor < w[1].cursor), "cursors strictly increase");
    assert_eq!(
        all.iter().map(|r| r.cursor.day).collect::<Vec<_>>(),
        vec![day, day, day, day.plus(1)],
        "rows sit in the day they were written"
    );
    for (row, h) in all.iter().zip(hits.iter().chain(&hits[..1])) {
        assert_eq!((row.at_ms, row.kind, row.random, row.link_day), (h.at_ms, h.kind, h.random, h.link_day));
        assert_eq!((row.method, row.ip, row.user_agent.as_str()), (Method::Get, h.ip, FIREFOX));
        assert_eq!((row.reason, row.verdict), (h.reason, h.reason.verdict()));
        let link = row.link.as_ref().expect("the link is joined in");
        assert_eq!((link.mailing_id.as_str(), link.recipient.as_str(), link.meta.as_deref()), ("m-1", "r@example.com", Some(r#"{"a":1}"#)));
        assert_eq!((link.minted_at, link.letter_links), (START_UNIX, 2));
    }
    assert_eq!(all[0].link.as_ref().unwrap().url.as_deref(), Some("https://a.example/1"));
    assert_eq!(all[2].link.as_ref().unwrap().url, None, "the pixel has no URL");
    assert_eq!(all[1].verdict, Verdict::Bot);

    // Resuming after any row gives exactly the rows after it; a limit cuts the page.
    for (i, row) in all.iter().enumerate() {
        let rest = s.read_events(&query(row.cursor)).await.unwrap();
        assert_eq!(rest, all[i + 1..].to_vec(), "resume after row {i}");
    }
    let two = s.read_events(&EventQuery { limit: 2, ..query(Cursor::START) }).await.unwrap();
    assert_eq!(two, all[..2].to_vec());
    let other = EventQuery { mailing_id: Some("other".into()), ..query(Cursor::START) };
    assert!(s.read_events(&other).await.unwrap().is_empty());
    let mine = EventQuery { mailing_id: Some("m-1".into()), ..query(Cursor::START) };
    assert_eq!(s.read_events(&mine).await.unwrap(), all);
}

/// Mint `b` with its letter renamed to `mailing`, and return its links' ids.
async fn mint_as<S: Store>(s: &S, mut b: MintBatch, mailing: &str) -> (MintBatch, Vec<LinkIds>) {
    b.letter.mailing_id = mailing.into();
    b.letter.recipient = format!("{mailing}@example.com");
    match s.mint(&b).await.unwrap() {
        MintOutcome::Stored(ids) => (b, ids),
        MintOutcome::Replayed(tokens) => panic!("not stored: replayed {tokens:?}"),
    }
}

/// Events that carry their link's letter and URL ids are read with the
/// letter and URL those ids name; events without them (a pixel answered
/// while the store was down, a batch spooled before events carried ids)
/// find them through their link, v1 or v2. Both kinds mix in one page, and
/// in a mailing-filtered read.
pub async fn events_read_letter_and_url_by_the_ids_they_carry<F: Fixture>() {
    let f = ready::<F>("event-ids").await;
    let s = f.store();
    let day = start_day();
    let (with, with_ids) = mint_as(&*s, batch(day, &["https://a.example/1", "https://a.example/2"], true, None), "with").await;
    let (without, _) = mint_as(&*s, batch(day, &["https://b.example/1"], true, None), "without").await;
    let (v1, v1_ids) = mint_as(&*s, super::conformance::batch_of(Version::V1, day, &["https://c.example/1"], false, None), "v1").await;
    assert_eq!(with_ids[0].letter_id, with_ids[2].letter_id);
    assert_eq!(with_ids[2].url_id, 0, "the pixel has no URL");
    let t0 = START_UNIX * 1000;
    let carrying = |link: &linktrack::link::NewLink, ids: LinkIds, at| Hit { link_ids: Some(ids), ..hit(link, day, at, Reason::None) };
    let v1_hit = |ids| Hit { version: Version::V1, link_ids: ids, ..hit(&v1.links[0], day, t0 + 7, Reason::None) };
    let hits = vec![
        carrying(&with.links[0], with_ids[0], t0),
        hit(&without.links[0], day, t0 + 1, Reason::None),
        carrying(&with.links[1], with_ids[1], t0 + 2),
        carrying(&with.links[2], with_ids[2], t0 + 3),
        hit(&without.links[1], day, t0 + 4, Reason::None),
        carrying(&with.links[0], with_ids[0], t0 + 5),
        v1_hit(None),
        v1_hit(Some(v1_ids[0])),
    ];
    s.write_events(&EventBatch { id: [5; 16], formed: day, hits: hits.clone() }, day).await.unwrap();
    let rows = s.read_events(&query(Cursor::START)).await.unwrap();
    assert_eq!(rows.len(), hits.len());
    let seen: Vec<(Option<LinkIds>, &str, Option<&str>)> = rows
        .iter()
        .map(|r| {
            let link = r.link.as_ref().expect("every event finds its letter");
            assert_eq!(link.recipient, format!("{}@example.com", link.mailing_id));
            (r.link_ids, link.mailing_id.as_str(), link.url.as_deref())
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (Some(with_ids[0]), "with", Some("https://a.example/1")),
            (None, "without", Some("https://b.example/1")),
            (Some(with_ids[1]), "with", Some("https://a.example/2")),
            (Some(with_ids[2]), "with", None),
            (None, "without", None),
            (Some(with_ids[0]), "with", Some("https://a.example/1")),
            (None, "v1", Some("https://c.example/1")),
            (Some(v1_ids[0]), "v1", Some("https://c.example/1")),
        ]
    );
    for r in &rows {
        let link = r.link.as_ref().unwrap();
        assert_eq!((link.minted_at, link.meta.as_deref()), (START_UNIX, Some(r#"{"a":1}"#)));
        if let Some(ids) = r.link_ids {
            assert_eq!(link.letter_id, ids.letter_id);
        }
    }
    let by_lookup = rows.iter().find(|r| r.link_ids.is_none() && r.kind == LinkKind::Click).unwrap().link.clone().unwrap();
    assert_eq!(by_lookup.letter_links, 1, "the fallback reads the same letter columns");
    assert_eq!(rows[0].link.as_ref().unwrap().letter_links, 2);

    for (mailing, n) in [("with", 4), ("without", 2), ("v1", 2)] {
        let only = s.read_events(&EventQuery { mailing_id: Some(mailing.into()), ..query(Cursor::START) }).await.unwrap();
        let want: Vec<_> = rows.iter().filter(|r| r.link.as_ref().unwrap().mailing_id == mailing).cloned().collect();
        assert_eq!((only.len(), &only), (n, &want), "mailing {mailing}");
    }

    // The read trusts the ids: it does not read the link row again. (Ids are
    // only ever taken from the link row, at mint or resolve.)
    let crossed = carrying(&with.links[0], LinkIds { letter_id: v1_ids[0].letter_id, url_id: v1_ids[0].url_id }, t0 + 9);
    s.write_events(&EventBatch { id: [6; 16], formed: day, hits: vec![crossed] }, day).await.unwrap();
    let last = s.read_events(&query(rows.last().unwrap().cursor)).await.unwrap();
    let link = last[0].link.as_ref().unwrap();
    assert_eq!((link.mailing_id.as_str(), link.url.as_deref()), ("v1", Some("https://c.example/1")));
}

pub async fn rollup_apply_is_exact_and_guarded<F: Fixture>() {
    let f = ready::<F>("rollup").await;
    let s = f.store();
    let day = start_day();
    let minted = batch(day, &["https://a.example/1"], true, None);
    s.mint(&minted).await.unwrap();
    let t0 = START_UNIX * 1000;
    let hits = vec![hit(&minted.links[0], day, t0, Reason::None), hit(&minted.links[0], day, t0 + 1, Reason::None)];
    s.write_events(&EventBatch { id: [3; 16], formed: day, hits }, day).await.unwrap();
    let rows = s.read_events(&query(Cursor::START)).await.unwrap();
    assert_eq!(s.rollup_state().await.unwrap().watermark, Cursor::START);

    let key = StatKey {
        tenant: TenantId::DEFAULT,
        mailing_id: "m-1".into(),
        url: Some("https://a.example/1".into()),
        position: Some(0),
        kind: LinkKind::Click,
    };
    let first_hit = FirstHit { link_day: day, random: minted.links[0].random, key: key.clone(), human: false };
    let apply = RollupApply {
        from: Cursor::START,
        to: rows[1].cursor,
        as_of_ms: t0 + 10,
        relabels: vec![Relabel { event: rows[1].cursor, verdict: Verdict::Bot, reason: Reason::LetterBurst }],
        deltas: vec![(key.clone(), Counts { human: 1, bot: 1, ..Counts::default() })],
        first_hits: vec![first_hit.clone()],
        ..RollupApply::default()
    };
    assert!(s.apply_rollup(&apply).await.unwrap());
    assert!(!s.apply_rollup(&apply).await.unwrap(), "a pass from a stale watermark changes nothing");
    let stats = s.mailing_stats(TenantId::DEFAULT, "m-1").await.unwrap().expect("a mailing of the default tenant");
    let link = |clicks| LinkStats { url: "https://a.example/1".to_owned(), position: Some(0), clicks };
    assert_eq!(stats.links, vec![link(Counts { human: 1, bot: 1, suspect: 0, unique: 1, unique_human: 0 })]);
    assert_eq!((stats.opens, stats.as_of_ms), (Counts::default(), t0 + 10));
    let relabelled = s.read_events(&query(Cursor::START)).await.unwrap();
    assert_eq!((relabelled[1].verdict, relabelled[1].reason), (Verdict::Bot, Reason::LetterBurst));
    assert_eq!((relabelled[0].verdict, relabelled[0].reason), (Verdict::Human, Reason::None), "only the named event changes");
    let progress = s.rollup_state().await.unwrap();
    assert_eq!((progress.watermark, progress.as_of_ms), (rows[1].cursor, t0 + 10));

    // The same link hit again later is not unique again; another mailing is separate.
    let again = RollupApply {
        from: rows[1].cursor,
        to: rows[1].cursor,
        as_of_ms: t0 + 20,
        deltas: vec![(key, Counts { suspect: 2, ..Counts::default() })],
        first_hits: vec![FirstHit { human: true, ..first_hit.clone() }],
        ..RollupApply::default()
    };
    assert!(s.apply_rollup(&again).await.unwrap());
    let stats = s.mailing_stats(TenantId::DEFAULT, "m-1").await.unwrap().expect("still there");
    assert_eq!(stats.links, vec![link(Counts { human: 1, bot: 1, suspect: 2, unique: 1, unique_human: 1 })], "a first human hit later");
    let third = RollupApply {
        from: rows[1].cursor,
        to: rows[1].cursor,
        as_of_ms: t0 + 30,
        first_hits: vec![FirstHit { human: true, ..first_hit }],
        ..RollupApply::default()
    };
    assert!(s.apply_rollup(&third).await.unwrap());
    let stats = s.mailing_stats(TenantId::DEFAULT, "m-1").await.unwrap().expect("still there");
    assert_eq!(stats.links[0].clicks.unique_human, 1, "a link counts once as hit by a human");
    assert_eq!(s.mailing_stats(TenantId::DEFAULT, "nobody").await.unwrap(), None, "a mailing never minted is unknown");
    assert_eq!(s.mailing_stats(TenantId(2), "m-1").await.unwrap(), None, "another tenant's mailing is unknown too");
}

// ---- over HTTP -------------------------------------------------------------

async fn get(c: &mut Client, path: &str, ua: &str, ip: &str) -> u16 {
    c.send(HttpMethod::GET, path, &[("user-agent", ua), ("x-forwarded-for", ip)], Bytes::new()).await.status.as_u16()
}

async fn export(c: &mut Client, query: &str) -> super::client::Reply {
    let auth = format!("Bearer {API_KEY}");
    c.send(HttpMethod::GET, &format!("/v1/events?{query}"), &[("authorization", &auth)], Bytes::new()).await
}

fn ndjson(body: &[u8]) -> Vec<Value> {
    std::str::from_utf8(body).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Poll the export until it holds `n` rows (the writer flushes asynchronously).
async fn wait_for_events(c: &mut Client, n: usize) -> Vec<Value> {
    for _ in 0..400 {
        let rows = ndjson(&export(c, "limit=100000").await.body);
        if rows.len() >= n {
            assert_eq!(rows.len(), n, "more events than hits answered");
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("fewer than {n} events were stored within 10 s");
}

async fn mint(c: &mut Client, mailing: &str, urls: &[&str]) -> Value {
    let links: Vec<Value> = urls.iter().map(|u| json!({"url": u})).collect();
    let body = json!({"mailing_id": mailing, "recipient": format!("{mailing}@example.com"), "links": links, "pixel": true});
    let r = c.mint(Some(API_KEY), &body, None).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    r.json()
}

fn click(letter: &Value, i: usize) -> String {
    path_of(letter["links"][i]["tracking_url"].as_str().unwrap())
}

fn pixel(letter: &Value) -> String {
    path_of(letter["pixel"]["tracking_url"].as_str().unwrap())
}

fn counts_json(c: &Counts) -> Value {
    json!({"total": c.total(), "unique": c.unique, "unique_human": c.unique_human, "human": c.human, "bot": c.bot, "suspect": c.suspect})
}

fn verdict_of(r: &Value) -> Verdict {
    match r["verdict"].as_str().unwrap() {
        "human" => Verdict::Human,
        "bot" => Verdict::Bot,
        "suspect" => Verdict::Suspect,
        other => panic!("verdict {other}"),
    }
}

/// Stats recomputed from raw exported events of one mailing: per (position,
/// URL) and for opens, events by verdict, distinct links hit (a link is a
/// letter's link at a position, or its pixel) and those hit by a human;
/// distinct letters with a human click. `minted` is every (position, URL)
/// minted for the mailing: the stats list those nobody clicked too.
pub fn brute_force(rows: &[Value], mailing: &str, minted: &[(u64, String)]) -> Value {
    type Tally = (Counts, HashSet<String>, HashSet<String>);
    let mut by_link: BTreeMap<(u64, String), Tally> = minted.iter().map(|k| (k.clone(), Tally::default())).collect();
    let mut opens = Tally::default();
    let mut letters_human = HashSet::new();
    for r in rows.iter().filter(|r| r["mailing_id"] == mailing) {
        let verdict = verdict_of(r);
        let link = format!("{}/{}/{}", r["letter_id"], r["position"], r["url"]);
        let slot = if r["kind"] == "click" {
            let key = (r["position"].as_u64().expect("a click names its link's position"), r["url"].as_str().unwrap().to_owned());
            if verdict == Verdict::Human {
                letters_human.insert(r["letter_id"].to_string());
            }
            by_link.entry(key).or_default()
        } else {
            &mut opens
        };
        slot.0.add_verdict(verdict, 1);
        slot.1.insert(link.clone());
        if verdict == Verdict::Human {
            slot.2.insert(link);
        }
    }
    let fin = |(mut c, seen, human): Tally| {
        c.unique = i64::try_from(seen.len()).unwrap();
        c.unique_human = i64::try_from(human.len()).unwrap();
        c
    };
    let mut clicks = Counts::default();
    let links: Vec<Value> = by_link
        .into_iter()
        .map(|((position, url), v)| {
            let c = fin(v);
            clicks.merge(&c);
            json!({"url": url, "position": position, "clicks": counts_json(&c)})
        })
        .collect();
    json!({
        "mailing_id": mailing,
        "links": links,
        "clicks": counts_json(&clicks),
        "recipients_human": letters_human.len(),
        "opens": counts_json(&fin(opens)),
    })
}

/// Hourly buckets (UTC) recomputed from raw exported events of one mailing:
/// (bucket start, clicks and opens by verdict), only buckets with events.
pub fn brute_force_series(rows: &[Value], mailing: &str) -> BTreeMap<String, Value> {
    let mut by_hour: BTreeMap<String, (Counts, Counts)> = BTreeMap::new();
    for r in rows.iter().filter(|r| r["mailing_id"] == mailing) {
        let at = time::OffsetDateTime::parse(r["at"].as_str().unwrap(), &time::format_description::well_known::Rfc3339).unwrap();
        let hour = at.replace_minute(0).unwrap().replace_second(0).unwrap().replace_nanosecond(0).unwrap();
        let key = hour.format(&time::format_description::well_known::Rfc3339).unwrap();
        let e = by_hour.entry(key).or_default();
        if r["kind"] == "click" { &mut e.0 } else { &mut e.1 }.add_verdict(verdict_of(r), 1);
    }
    let v = |c: &Counts| json!({"total": c.total(), "human": c.human, "bot": c.bot, "suspect": c.suspect});
    by_hour.into_iter().map(|(k, (c, o))| (k, json!({"clicks": v(&c), "opens": v(&o)}))).collect()
}

/// `mailing`'s hourly series (UTC), and its buckets with hits in the shape of [`brute_force_series`].
pub async fn hourly_series(c: &mut Client, mailing: &str) -> (Value, BTreeMap<String, Value>) {
    let auth = format!("Bearer {API_KEY}");
    let r = c.send(HttpMethod::GET, &format!("/v1/mailings/{mailing}/series?bucket=hour"), &[("authorization", &auth)], Bytes::new()).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let series = r.json();
    let got = series["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["clicks"]["total"] != 0 || b["opens"]["total"] != 0)
        .map(|b| (b["start"].as_str().unwrap().replace("+00:00", "Z"), json!({"clicks": b["clicks"], "opens": b["opens"]})))
        .collect();
    (series, got)
}

/// The (position, URL) pairs of minted letters (mint responses).
pub fn minted_links(letters: &[&Value]) -> Vec<(u64, String)> {
    let mut out: Vec<(u64, String)> = letters
        .iter()
        .flat_map(|l| l["links"].as_array().unwrap().iter().enumerate().map(|(i, k)| (i as u64, k["url"].as_str().unwrap().to_owned())))
        .collect();
    out.sort();
    out.dedup();
    out
}

async fn stats(c: &mut Client, mailing: &str) -> Value {
    let auth = format!("Bearer {API_KEY}");
    let r = c.send(HttpMethod::GET, &format!("/v1/mailings/{mailing}/stats"), &[("authorization", &auth)], Bytes::new()).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.json()
}

/// Let every event settle (the clock moves a minute on), then wait for the
/// rollup to count up to the last hit and return `mailing`'s stats.
async fn settled_stats(c: &mut Client, clock: &Clock, mailing: &str) -> Value {
    let last_hit_ms = clock.now_ms();
    clock.advance_ms(60_000);
    for _ in 0..400 {
        let stats = stats(c, mailing).await;
        let as_of = time::OffsetDateTime::parse(stats["as_of"].as_str().unwrap(), &time::format_description::well_known::Rfc3339).unwrap();
        if (as_of.unix_timestamp_nanos() / 1_000_000) as i64 >= last_hit_ms {
            return stats;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the rollup did not count up to the last hit within 10 s");
}

/// Server flags for the HTTP event tests: fast flushes and rollup passes,
/// the client address from `X-Forwarded-For`, kept whole.
const FAST_EVENTS: [&str; 12] = [
    "--event-flush-ms",
    "20",
    "--rollup-interval-ms",
    "50",
    "--burst-window-secs",
    "5",
    "--near-mint-secs",
    "10",
    "--trusted-proxies",
    "127.0.0.1/32",
    "--ip-anonymisation",
    "none",
];

/// Every exported event (NDJSON and CSV) names the token that was hit and
/// its link's position, as minted in `letters` (mint responses).
async fn assert_tokens_named(c: &mut Client, after: &[Value], letters: &[&Value]) {
    // Every exported event names the token that was hit and its link's position.
    let mut minted_tokens: HashMap<String, Value> = HashMap::new();
    for l in letters {
        for (i, link) in l["links"].as_array().unwrap().iter().enumerate() {
            minted_tokens.insert(link["token"].as_str().unwrap().to_owned(), json!(i));
        }
        minted_tokens.insert(l["pixel"]["token"].as_str().unwrap().to_owned(), Value::Null);
    }
    for r in after {
        let token = r["token"].as_str().unwrap_or_else(|| panic!("no token: {r}"));
        assert_eq!(minted_tokens.get(token), Some(&r["position"]), "{r}");
    }
    let csv = export(c, "limit=100000&format=csv").await;
    let text = String::from_utf8(csv.body.to_vec()).unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    assert_eq!(&header[header.len() - 2..], ["token", "position"]);
    assert!(text.lines().skip(1).all(|l| minted_tokens.keys().any(|t| l.contains(t.as_str()))), "CSV rows name their tokens");
}

/// `mx`'s hourly series equals a brute-force bucketing of the same events;
/// days at another offset hold the same clicks; bad queries are refused.
async fn assert_series_match(c: &mut Client, after: &[Value]) {
    // The hourly series equals a brute-force bucketing of the same events.
    let auth = format!("Bearer {API_KEY}");
    let (series, got) = hourly_series(c, "mx").await;
    assert_eq!(got, brute_force_series(after, "mx"), "{series:#}");
    let hours: Vec<&str> = series["buckets"].as_array().unwrap().iter().map(|b| b["start"].as_str().unwrap()).collect();
    assert!(hours.windows(2).all(|w| w[0] < w[1]), "buckets in order, every hour present");
    let day = c.send(HttpMethod::GET, "/v1/mailings/mx/series?bucket=day&tz=%2B05:45", &[("authorization", &auth)], Bytes::new()).await;
    let total = |v: &Value| v["buckets"].as_array().unwrap().iter().map(|b| b["clicks"]["total"].as_i64().unwrap()).sum::<i64>();
    assert_eq!(total(&day.json()), total(&series), "days at +05:45 hold the same clicks");
    assert_eq!(day.json()["tz"], "+05:45");
    let unknown = c.send(HttpMethod::GET, "/v1/mailings/nobody/series", &[("authorization", &auth)], Bytes::new()).await;
    assert_eq!(unknown.status, 404);
    let bad = c.send(HttpMethod::GET, "/v1/mailings/mx/series?bucket=week", &[("authorization", &auth)], Bytes::new()).await;
    assert_eq!(bad.status, 400);
}

pub async fn http_events_stats_match_brute_force<F: Fixture>() {
    let f = F::open("stats").await;
    let srv = serve(&f, &FAST_EVENTS).await;
    let clock = srv.clock.clone();
    let mut c = srv.client();
    let urls = ["https://shop.example/a", "https://shop.example/b", "https://shop.example/c", "https://shop.example/d"];
    let letters: Vec<Value> = {
        let mut v = Vec::new();
        for _ in 0..5 {
            v.push(mint(&mut c, "mx", &urls).await);
        }
        v
    };
    let other = mint(&mut c, "other", &urls[..1]).await;
    clock.advance_ms(60_000); // well past the near-mint window
    let mut answered = 0;
    let mut expect = |code: u16, want: u16| {
        assert_eq!(code, want);
        answered += 1;
    };
    // People: a repeat click on one link, two spaced clicks, an open.
    expect(get(&mut c, &click(&letters[0], 0), FIREFOX, "198.51.100.1").await, 302);
    clock.advance_ms(30_000);
    expect(get(&mut c, &click(&letters[0], 0), FIREFOX, "198.51.100.1").await, 302);
    expect(get(&mut c, &pixel(&letters[0]), FIREFOX, "198.51.100.1").await, 200);
    expect(get(&mut c, &click(&letters[1], 1), CHROME, "198.51.100.2").await, 302);
    clock.advance_ms(20_000);
    expect(get(&mut c, &click(&letters[1], 2), CHROME, "198.51.100.2").await, 302);
    // Apple Mail Privacy Protection prefetching an open.
    expect(get(&mut c, &pixel(&letters[1]), "Mozilla/5.0", "17.58.0.9").await, 200);
    // A crawler, and a HEAD.
    expect(get(&mut c, &click(&letters[2], 0), GOOGLEBOT, "66.249.66.1").await, 302);
    let head = c.send(HttpMethod::HEAD, &click(&letters[3], 3), &[("user-agent", CHROME)], Bytes::new()).await;
    expect(head.status.as_u16(), 302);
    // Another mailing's click is not in this mailing's stats.
    expect(get(&mut c, &click(&other, 0), FIREFOX, "198.51.100.9").await, 302);
    // A security scanner with a browser UA clicks every link of letter 4 within a second.
    for i in 0..urls.len() {
        expect(get(&mut c, &click(&letters[4], i), CHROME, "203.0.113.50").await, 302);
        clock.advance_ms(200);
    }
    // A letter clicked two seconds after it was minted.
    let fresh = mint(&mut c, "mx", &urls).await;
    clock.advance_ms(2_000);
    expect(get(&mut c, &click(&fresh, 1), FIREFOX, "198.51.100.3").await, 302);

    let before = wait_for_events(&mut c, answered).await;
    let burst: Vec<&Value> = before.iter().filter(|r| r["ip"] == "203.0.113.50").collect();
    assert_eq!(burst.len(), 4);
    assert!(burst.iter().all(|r| r["verdict"] == "human" && r["reason"] == "none"), "at capture a browser UA looks human: {burst:?}");

    let stats = settled_stats(&mut c, &clock, "mx").await;
    let after = ndjson(&export(&mut c, "limit=100000").await.body);
    let reason_of = |ip: &str| -> Vec<(String, String)> {
        after
            .iter()
            .filter(|r| r["ip"] == ip)
            .map(|r| (r["verdict"].as_str().unwrap().into(), r["reason"].as_str().unwrap().into()))
            .collect()
    };
    let pair = |v: &str, r: &str| (v.to_owned(), r.to_owned());
    assert_eq!(reason_of("203.0.113.50"), vec![pair("bot", "letter_burst"); 4], "the burst is re-labelled after the fact");
    assert_eq!(reason_of("198.51.100.1"), vec![pair("human", "none"); 3]);
    assert_eq!(reason_of("198.51.100.2"), vec![pair("human", "none"); 2], "two spaced clicks of four links are no burst");
    assert_eq!(reason_of("17.58.0.9"), vec![pair("suspect", "privacy_proxy")]);
    assert_eq!(reason_of("66.249.66.1"), vec![pair("bot", "bot_user_agent")]);
    assert_eq!(reason_of("127.0.0.1"), vec![pair("bot", "head_request")], "no X-Forwarded-For: the (trusted) peer itself");
    assert_eq!(reason_of("198.51.100.3"), vec![pair("suspect", "near_mint")]);

    let mx: Vec<&Value> = letters.iter().chain([&fresh]).collect();
    let mut want = brute_force(&after, "mx", &minted_links(&mx));
    want["as_of"] = stats["as_of"].clone();
    assert_eq!(stats, want, "stats equal a brute-force count over the raw events");
    assert_eq!(
        stats["links"][0]["clicks"],
        json!({"total": 4, "unique": 3, "unique_human": 1, "human": 2, "bot": 2, "suspect": 0}),
        "link 0: letter 0 clicked twice by a person, letter 2 by a crawler, letter 4 by a scanner's burst"
    );
    assert_eq!(stats["links"].as_array().unwrap().len(), 4, "every link, clicked or not: {stats:#}");
    assert_eq!(
        stats["recipients_human"], 2,
        "letters 0 and 1 had a human click; the HEAD, the near-mint click and the burst are not human"
    );
    assert_eq!(stats["opens"]["unique_human"], 1, "letter 0 opened by a person; letter 1's open is a privacy proxy");

    assert_tokens_named(&mut c, &after, &mx.iter().copied().chain([&other]).collect::<Vec<_>>()).await;
    assert_series_match(&mut c, &after).await;
    // Stats need a key, like mint.
    assert_eq!(c.get("/v1/mailings/mx/stats").await.status, 401);
    srv.stop().await;
}

/// Events name their letter and URL by the ids the redirect knew: from the
/// cache for links minted over HTTP (a warm redirect), from the resolve for
/// links the cache never saw. Events stored without ids (as a batch spooled
/// before events carried them decodes, or a pixel answered while the store
/// was down) are found through their link. Either way the export rows and
/// the stats are right.
pub async fn http_events_carry_link_ids_and_fall_back_without<F: Fixture>() {
    let f = F::open("event-ids-http").await;
    let srv = serve(&f, &FAST_EVENTS).await;
    let clock = srv.clock.clone();
    let mut c = srv.client();
    let s = f.store();
    let warm = mint(&mut c, "warm", &["https://w.example/1", "https://w.example/2"]).await;
    let day = clock.today();
    let (cold, cold_ids) = mint_as(&*s, batch(day, &["https://c.example/1", "https://c.example/2"], true, None), "cold").await;
    let (unknown, _) = mint_as(&*s, batch(day, &["https://u.example/1", "https://u.example/2"], true, None), "unknown").await;
    clock.advance_ms(60_000);
    let path = |kind: &str, l: &linktrack::link::NewLink| format!("/{kind}/{}", l.token.as_str());
    let mut answered = 0;
    for (p, ip) in [
        (click(&warm, 0), "198.51.100.1"),
        (click(&warm, 1), "198.51.100.1"),
        (pixel(&warm), "198.51.100.1"),
        (click(&warm, 0), "198.51.100.2"),
        (path("c", &cold.links[1]), "198.51.100.3"),
        (path("o", &cold.links[2]), "198.51.100.3"),
        (path("c", &cold.links[1]), "198.51.100.4"),
    ] {
        let code = get(&mut c, &p, FIREFOX, ip).await;
        assert!(code == 302 || code == 200, "{p}: {code}");
        answered += 1;
        clock.advance_ms(1_000);
    }
    wait_for_events(&mut c, answered).await;
    let at = clock.now_ms();
    let unknown_hits =
        [0, 1, 2, 0].map(|i| Hit { ip: IpBytes::new("198.51.100.5".parse().unwrap()), ..hit(&unknown.links[i], day, at, Reason::None) });
    s.write_events(&EventBatch { id: [7; 16], formed: day, hits: unknown_hits.to_vec() }, day).await.unwrap();
    let rows = wait_for_events(&mut c, answered + unknown_hits.len()).await;

    // What the store kept: ids on every redirected event, none on the others.
    let stored = s.read_events(&EventQuery { after: Cursor::START, limit: 100, mailing_id: None }).await.unwrap();
    let mut warm_letter = None;
    for (row, exported) in stored.iter().zip(&rows) {
        let link = row.link.as_ref().expect("every event finds its letter");
        assert_eq!(exported["letter_id"], link.letter_id, "{exported}");
        match link.mailing_id.as_str() {
            "warm" => {
                let ids = row.link_ids.expect("a warm redirect's event carries the ids the cache had from the mint");
                assert_eq!(ids.letter_id, link.letter_id);
                assert_eq!(ids.url_id == 0, row.kind == LinkKind::Open);
                assert_eq!(*warm_letter.get_or_insert(ids.letter_id), ids.letter_id, "one letter");
            }
            "cold" => {
                let i = cold.links.iter().position(|l| l.random == row.random).unwrap();
                assert_eq!(row.link_ids, Some(cold_ids[i]), "a resolved redirect's event carries the ids its resolve read");
            }
            "unknown" => assert_eq!(row.link_ids, None),
            other => panic!("mailing {other}"),
        }
    }
    let urls: Vec<(&str, &str)> = rows.iter().map(|r| (r["mailing_id"].as_str().unwrap(), r["url"].as_str().unwrap_or("-"))).collect();
    assert_eq!(
        urls,
        [
            ("warm", "https://w.example/1"),
            ("warm", "https://w.example/2"),
            ("warm", "-"),
            ("warm", "https://w.example/1"),
            ("cold", "https://c.example/2"),
            ("cold", "-"),
            ("cold", "https://c.example/2"),
            ("unknown", "https://u.example/1"),
            ("unknown", "https://u.example/2"),
            ("unknown", "-"),
            ("unknown", "https://u.example/1"),
        ]
    );
    for r in &rows {
        let mailing = r["mailing_id"].as_str().unwrap();
        assert_eq!(r["recipient"], format!("{mailing}@example.com"));
        assert_eq!(r["verdict"], "human", "{r}");
    }
    for mailing in ["warm", "cold", "unknown"] {
        let only = ndjson(&export(&mut c, &format!("mailing_id={mailing}&limit=100")).await.body);
        let want: Vec<Value> = rows.iter().filter(|r| r["mailing_id"] == mailing).cloned().collect();
        assert_eq!(only, want, "the mailing filter, {mailing}");
    }

    settled_stats(&mut c, &clock, "warm").await;
    for mailing in ["warm", "cold", "unknown"] {
        let got = stats(&mut c, mailing).await;
        let prefix = &mailing[..1];
        let minted = [(0, format!("https://{prefix}.example/1")), (1, format!("https://{prefix}.example/2"))];
        let mut want = brute_force(&rows, mailing, &minted);
        want["as_of"] = got["as_of"].clone();
        assert_eq!(got, want, "stats of {mailing} equal a count over the raw events");
    }
    let unknown_stats = stats(&mut c, "unknown").await;
    let two = json!({"total": 2, "unique": 1, "unique_human": 1, "human": 2, "bot": 0, "suspect": 0});
    assert_eq!(unknown_stats["links"][0]["clicks"], two, "events without ids are counted through their link");
    srv.stop().await;
}

pub async fn http_export_is_resumable<F: Fixture>() {
    let f = F::open("export").await;
    let srv = serve(&f, &["--event-flush-ms", "20", "--event-batch-max", "200"]).await;
    let mut c = srv.client();
    let urls: Vec<String> = (0..10).map(|i| format!("https://shop.example/p/{i}?q=\"quoted\",comma")).collect();
    let url_refs: Vec<&str> = urls.iter().map(String::as_str).collect();
    let letter = mint(&mut c, "exp", &url_refs).await;
    let n = 1200;
    for i in 0..n {
        assert_eq!(get(&mut c, &click(&letter, i % 10), UA_WITH_QUOTES, "198.51.100.1").await, 302);
    }
    let full = wait_for_events(&mut c, n).await;
    let cursors: Vec<String> = full.iter().map(|r| r["cursor"].as_str().unwrap().to_owned()).collect();
    assert_eq!(cursors.iter().collect::<HashSet<_>>().len(), n, "every row has its own cursor");

    // NDJSON: interrupt at arbitrary rows, resume from the last cursor seen.
    // The edges of the writer's batches and pages, plus one random row (printed, to replay a failure).
    let random_cut = rand::random_range(2..n - 1);
    eprintln!("export: random cut at row {random_cut}");
    for cut in [1, 537, 999, 1000, 1001, n - 1, random_cut] {
        let head = ndjson(&export(&mut c, &format!("limit={cut}")).await.body);
        assert_eq!(head.len(), cut);
        let last = head.last().unwrap()["cursor"].as_str().unwrap().to_owned();
        let tail = ndjson(&export(&mut c, &format!("after={last}&limit=100000")).await.body);
        let union: Vec<Value> = head.into_iter().chain(tail).collect();
        assert_eq!(union, full, "cut at {cut}: the union is exactly the full export, in order, without duplicates");
    }
    let again = export(&mut c, &format!("after={}&limit=100000", cursors[499])).await;
    let once_more = export(&mut c, &format!("after={}&limit=100000", cursors[499])).await;
    assert_eq!(again.body, once_more.body, "rerunning from a cursor yields the same rows");
    assert_eq!(again.header("content-type"), "application/x-ndjson");

    // CSV, read back with a real CSV parser.
    let parse = |body: &[u8]| -> Vec<HashMap<String, String>> {
        let mut rdr = csv::Reader::from_reader(body);
        let headers = rdr.headers().unwrap().clone();
        rdr.records().map(|r| headers.iter().map(String::from).zip(r.unwrap().iter().map(String::from)).collect()).collect()
    };
    let all_csv = parse(&export(&mut c, "format=csv&limit=100000").await.body);
    assert_eq!(all_csv.len(), n);
    for (row, json_row) in all_csv.iter().zip(&full) {
        assert_eq!(row["cursor"], json_row["cursor"].as_str().unwrap());
        assert_eq!(row["url"], json_row["url"].as_str().unwrap());
        assert_eq!(row["user_agent"], UA_WITH_QUOTES);
    }
    let cut = 777;
    let head = parse(&export(&mut c, &format!("format=csv&limit={cut}")).await.body);
    let tail = parse(&export(&mut c, &format!("format=csv&limit=100000&after={}", head.last().unwrap()["cursor"])).await.body);
    assert_eq!(head.into_iter().chain(tail).collect::<Vec<_>>(), all_csv, "CSV resumes exactly too");

    // A mailing filter: another mailing's events come after 1200 of this one's.
    let other = mint(&mut c, "other", &url_refs[..2]).await;
    for i in 0..6 {
        assert_eq!(get(&mut c, &click(&other, i % 2), UA_WITH_QUOTES, "198.51.100.2").await, 302);
    }
    let everything = wait_for_events(&mut c, n + 6).await;
    let theirs = ndjson(&export(&mut c, "mailing_id=other&limit=100000").await.body);
    assert_eq!(theirs, everything[n..], "only the other mailing's rows");
    let ours = ndjson(&export(&mut c, "mailing_id=exp&limit=100000").await.body);
    assert_eq!(ours, full, "the filter keeps every row of its mailing");
    let head = ndjson(&export(&mut c, "mailing_id=other&limit=2").await.body);
    assert_eq!(head, everything[n..n + 2], "a small limit past many non-matching rows");
    let rest = ndjson(&export(&mut c, &format!("mailing_id=other&limit=100000&after={}", head[1]["cursor"].as_str().unwrap())).await.body);
    assert_eq!(rest, everything[n + 2..], "a filtered export resumes from its cursor");

    // Bad requests are clear 4xx JSON errors; the export needs a key.
    let bad = export(&mut c, "after=not-a-cursor").await;
    assert_eq!((bad.status.as_u16(), bad.json()["error"].as_str()), (400, Some("bad_cursor")));
    assert_eq!(export(&mut c, "limit=0").await.status, 422);
    assert_eq!(export(&mut c, "format=xml").await.status, 400);
    assert_eq!(c.get("/v1/events").await.status, 401);
    srv.stop().await;
}
