//! The token key ring kept in the store (the default setup, without
//! `LINKTRACK_TOKEN_KEYS`): loading it, adding and retiring keys
//! (`linktrack token-keys`), and the reload loop through which running
//! servers learn of a change.
//!
//! # Layout in the settings table
//!
//! - `token_key.<id>`: the secret of key `<id>` (32 random bytes). Key 0 is
//!   the key every store has had since the first `serve`; nothing moves when
//!   rotation starts.
//! - `token_keys`: the ids of the ring, minting key first, as ASCII
//!   (`"2,1,0"`). Absent until the first `add`: the ring is then key 0 alone.
//!
//! `add` writes the new secret first and then, by compare-and-swap, the ring
//! with the new id in front; `retire` swaps the ring without the id and then
//! deletes the secret. A server reloading between the two steps therefore
//! never finds a listed key without its secret. Secrets never reach a log
//! line or an error message; only ids do.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::{ArcSwap, Guard};
use rand::RngExt;
use tokio_util::sync::CancellationToken;

use crate::day::Clock;
use crate::store::Store;
use crate::token::{KeyRing, MAX_KEY_ID, TokenKey};
use crate::{Error, Result};

/// The ring's ids, minting first.
pub const RING_SETTING: &str = "token_keys";
/// Bytes of a generated key secret.
pub const GENERATED_SECRET_LEN: usize = 32;

/// The setting holding key `id`'s secret. `token_key.0` is the key `serve`
/// has always generated.
pub fn key_setting(id: u8) -> String {
    format!("token_key.{id}")
}

/// The key ring a running server signs and verifies with, replaced whole
/// when the store's ring changes. Reading it takes no lock and allocates nothing.
#[derive(Debug)]
pub struct LiveKeys(ArcSwap<KeyRing>);

impl LiveKeys {
    pub fn new(ring: KeyRing) -> LiveKeys {
        LiveKeys(ArcSwap::from_pointee(ring))
    }

    /// The current ring.
    pub fn load(&self) -> Guard<Arc<KeyRing>> {
        self.0.load()
    }

    fn replace(&self, ring: KeyRing) {
        self.0.store(Arc::new(ring));
    }
}

/// One key of the stored ring: its id and, for a key added with a delay,
/// when it starts minting (unix ms). Stored as `ID` or `ID@MS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub id: u8,
    pub mints_from_ms: Option<i64>,
}

/// The ring's entries as stored (`"2@1764620000000,1,0"`), newest first.
fn parse_entries(raw: &[u8]) -> Result<Vec<Entry>> {
    let bad = || Error::Schema(format!("setting {RING_SETTING} is not a comma-separated list of key ids"));
    let text = std::str::from_utf8(raw).map_err(|_| bad())?;
    let entries: Vec<Entry> = text
        .split(',')
        .map(|item| {
            let (id, from) = match item.trim().split_once('@') {
                Some((id, from)) => (id, Some(from.parse::<i64>().map_err(|_| bad())?)),
                None => (item.trim(), None),
            };
            let id = id.parse::<u8>().map_err(|_| bad())?;
            if id > MAX_KEY_ID {
                return Err(bad());
            }
            Ok(Entry { id, mints_from_ms: from })
        })
        .collect::<Result<_>>()?;
    if entries.is_empty() {
        return Err(bad());
    }
    Ok(entries)
}

fn format_entries(entries: &[Entry]) -> String {
    let item = |e: &Entry| e.mints_from_ms.map_or_else(|| e.id.to_string(), |ms| format!("{}@{ms}", e.id));
    entries.iter().map(item).collect::<Vec<_>>().join(",")
}

fn format_ids(ids: &[u8]) -> String {
    ids.iter().map(u8::to_string).collect::<Vec<_>>().join(",")
}

/// The ring's ids at `now_ms`, minting first: the newest entry whose time
/// has come mints (a key added with a delay only verifies until then), and
/// the rest follow in stored order.
pub fn order(entries: &[Entry], now_ms: i64) -> Vec<u8> {
    let active = |e: &&Entry| e.mints_from_ms.is_none_or(|t| t <= now_ms);
    let minting = entries.iter().find(active).or_else(|| entries.iter().min_by_key(|e| e.mints_from_ms)).map(|e| e.id);
    let mut ids: Vec<u8> = minting.into_iter().collect();
    ids.extend(entries.iter().map(|e| e.id).filter(|id| Some(*id) != minting));
    ids
}

/// The id a new key gets: one above the highest in use, or, past 61, the
/// lowest free one. `None` when all 62 are in use.
pub fn next_id(ids: &[u8]) -> Option<u8> {
    match ids.iter().max() {
        None => Some(0),
        Some(&max) if max < MAX_KEY_ID => Some(max + 1),
        Some(_) => (0..=MAX_KEY_ID).find(|id| !ids.contains(id)),
    }
}

/// The stored ring's entries and the raw `token_keys` value they came from
/// (`None`: no ring setting yet, so key 0 alone if it exists).
async fn stored<S: Store>(store: &S) -> Result<(Option<Vec<u8>>, Vec<Entry>)> {
    if let Some(raw) = store.setting(RING_SETTING).await? {
        let entries = parse_entries(&raw)?;
        return Ok((Some(raw), entries));
    }
    let legacy = store.setting(&key_setting(0)).await?.map(|_| Entry { id: 0, mints_from_ms: None });
    Ok((None, legacy.into_iter().collect()))
}

/// The stored ring's entries, newest first, as `token-keys list` shows them.
pub async fn entries<S: Store>(store: &S) -> Result<Vec<Entry>> {
    Ok(stored(store).await?.1)
}

async fn ring_of<S: Store>(store: &S, ids: &[u8]) -> Result<KeyRing> {
    let mut keys = Vec::with_capacity(ids.len());
    for &id in ids {
        let secret = store
            .setting(&key_setting(id))
            .await?
            .ok_or_else(|| Error::Schema(format!("token key {id} is listed in {RING_SETTING} but its secret is missing")))?;
        keys.push(TokenKey::new(id, &secret)?);
    }
    Ok(KeyRing::new(keys)?)
}

/// The stored ring as it stands at `now_ms`, or `None` when the store holds
/// no token key yet. Creates nothing (`linktrack inspect`, the reload loop).
pub async fn load<S: Store>(store: &S, now_ms: i64) -> Result<Option<KeyRing>> {
    let (_, entries) = stored(store).await?;
    if entries.is_empty() {
        return Ok(None);
    }
    ring_of(store, &order(&entries, now_ms)).await.map(Some)
}

/// The stored ring, generating and storing key 0 first if the store has no
/// key at all (what `serve` does without `LINKTRACK_TOKEN_KEYS`). Concurrent
/// replicas all get the same key 0.
pub async fn load_or_create<S: Store>(store: &S, now_ms: i64) -> Result<KeyRing> {
    if let Some(ring) = load(store, now_ms).await? {
        return Ok(ring);
    }
    let generated: [u8; GENERATED_SECRET_LEN] = rand::rng().random();
    let secret = store.setting_or_insert(&key_setting(0), &generated).await?;
    Ok(KeyRing::new(vec![TokenKey::new(0, &secret)?])?)
}

/// Generate a key and store it first in the ring. It verifies as soon as a
/// server reloads, and mints from `now_ms + delay_ms`: with a delay of at
/// least the servers' reload interval, every replica knows the key before
/// any replica mints with it, so no fresh link gets a 404 on a replica that
/// has not reloaded yet. Returns the new key's id.
pub async fn add<S: Store>(store: &S, now_ms: i64, delay_ms: i64) -> Result<u8> {
    // Two admins adding at once: the loser's swap fails and it tries again.
    for _ in 0..5 {
        let (raw, entries) = stored(store).await?;
        let ids: Vec<u8> = entries.iter().map(|e| e.id).collect();
        let id = next_id(&ids).ok_or_else(|| Error::Config("all 62 token key ids are in use; retire one first".into()))?;
        let generated: [u8; GENERATED_SECRET_LEN] = rand::rng().random();
        // A retired id's secret was deleted, so the setting is new, unless another add took this id just now.
        if !store.swap_setting(&key_setting(id), None, Some(&generated)).await? {
            continue;
        }
        let mints_from_ms = (delay_ms > 0).then(|| now_ms.saturating_add(delay_ms));
        let mut new = vec![Entry { id, mints_from_ms }];
        new.extend(&entries);
        if store.swap_setting(RING_SETTING, raw.as_deref(), Some(format_entries(&new).as_bytes())).await? {
            return Ok(id);
        }
        // The ring changed under us: take our secret back out and start over.
        store.swap_setting(&key_setting(id), Some(&generated), None).await?;
    }
    Err(Error::Unavailable("the token key ring kept changing while adding a key; try again".into()))
}

/// Take key `id` out of the ring and delete its secret: its tokens stop
/// verifying (404, no lookup) once servers reload. The key minting at
/// `now_ms` cannot be retired (add its successor first), nor the last key.
pub async fn retire<S: Store>(store: &S, id: u8, now_ms: i64) -> Result<()> {
    for _ in 0..5 {
        let (raw, entries) = stored(store).await?;
        let ids = order(&entries, now_ms);
        if !ids.contains(&id) {
            return Err(Error::Config(format!("token key {id} is not in the ring (keys: {})", format_ids(&ids))));
        }
        if ids.first() == Some(&id) {
            return Err(Error::Config(format!(
                "token key {id} mints new tokens; run `linktrack token-keys add` first, then retire {id} once the new key mints"
            )));
        }
        let rest: Vec<Entry> = entries.iter().copied().filter(|e| e.id != id).collect();
        if !store.swap_setting(RING_SETTING, raw.as_deref(), Some(format_entries(&rest).as_bytes())).await? {
            continue;
        }
        if let Some(secret) = store.setting(&key_setting(id)).await? {
            store.swap_setting(&key_setting(id), Some(&secret), None).await?;
        }
        return Ok(());
    }
    Err(Error::Unavailable("the token key ring kept changing while retiring a key; try again".into()))
}

/// Ids of `ring`, minting first, as `token-keys list` shows them.
pub fn ids(ring: &KeyRing) -> Vec<u8> {
    ring.ids().collect()
}

/// Re-read the stored ring every `every` until `cancel` fires, and swap it
/// in when its ids or its minting key changed (a delayed key's time came). A failed read keeps the current ring (logged);
/// a ring that cannot be read never replaces a working one.
pub async fn reload_loop<S: Store>(store: Arc<S>, live: Arc<LiveKeys>, clock: Clock, every: Duration, cancel: CancellationToken) {
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        match load(&*store, clock.now_ms()).await {
            Ok(Some(ring)) => {
                let (old, new) = (ids(&live.load()), ids(&ring));
                if old != new {
                    tracing::info!(minting = new[0], keys = %format_ids(&new), "token key ring changed in the store; reloaded");
                    live.replace(ring);
                }
            }
            Ok(None) => tracing::warn!("the store holds no token key any more; keeping the current ring"),
            Err(e) => tracing::warn!(error = %e, "reading the token key ring failed; keeping the current ring"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_reject_garbage() {
        let entries = parse_entries(b"2@1000,1,0").unwrap();
        assert_eq!(entries[0], Entry { id: 2, mints_from_ms: Some(1000) });
        assert_eq!(entries[2], Entry { id: 0, mints_from_ms: None });
        assert_eq!(format_entries(&entries), "2@1000,1,0");
        for bad in [&b""[..], b"1,,2", b"62", b"a", b"\xff", b"1@", b"1@x"] {
            assert!(parse_entries(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_delayed_key_verifies_first_and_mints_from_its_time() {
        let entries = parse_entries(b"2@1000,1,0").unwrap();
        assert_eq!(order(&entries, 999), vec![1, 2, 0], "before its time key 2 only verifies");
        assert_eq!(order(&entries, 1000), vec![2, 1, 0]);
        let both_pending = parse_entries(b"3@2000,2@1000").unwrap();
        assert_eq!(order(&both_pending, 0), vec![2, 3], "nothing active yet: the earliest mints");
        assert_eq!(order(&both_pending, 1500), vec![2, 3]);
        assert_eq!(order(&both_pending, 2000), vec![3, 2]);
    }

    #[test]
    fn next_id_counts_up_then_reuses_the_lowest_free() {
        assert_eq!(next_id(&[]), Some(0));
        assert_eq!(next_id(&[0]), Some(1));
        assert_eq!(next_id(&[3, 1]), Some(4));
        assert_eq!(next_id(&[61, 5]), Some(0));
        assert_eq!(next_id(&[61, 0, 1]), Some(2));
        let all: Vec<u8> = (0..=MAX_KEY_ID).collect();
        assert_eq!(next_id(&all), None);
    }

    #[test]
    fn ring_ids_list_the_minting_key_first() {
        let k = |id| TokenKey::new(id, &[id; 16]).unwrap();
        let ring = KeyRing::new(vec![k(5), k(0), k(9)]).unwrap();
        assert_eq!(ids(&ring), vec![5, 0, 9]);
        let live = LiveKeys::new(ring);
        live.replace(KeyRing::new(vec![k(9)]).unwrap());
        assert_eq!(ids(&live.load()), vec![9]);
        let shown = format!("{live:?}");
        assert!(shown.contains("redacted") && !shown.contains("9, 9"), "Debug shows no secret: {shown}");
    }
}
