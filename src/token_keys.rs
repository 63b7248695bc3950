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

/// The ring's ids as stored (`"2,1,0"`), minting first.
fn parse_ids(raw: &[u8]) -> Result<Vec<u8>> {
    let bad = || Error::Schema(format!("setting {RING_SETTING} is not a comma-separated list of key ids"));
    let text = std::str::from_utf8(raw).map_err(|_| bad())?;
    let ids: Vec<u8> = text.split(',').map(|id| id.trim().parse::<u8>().map_err(|_| bad())).collect::<Result<_>>()?;
    if ids.is_empty() || ids.iter().any(|&id| id > MAX_KEY_ID) {
        return Err(bad());
    }
    Ok(ids)
}

fn format_ids(ids: &[u8]) -> String {
    ids.iter().map(u8::to_string).collect::<Vec<_>>().join(",")
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

/// The stored ring's ids and the raw `token_keys` value they came from
/// (`None`: no ring setting yet, so key 0 alone if it exists).
async fn stored_ids<S: Store>(store: &S) -> Result<(Option<Vec<u8>>, Vec<u8>)> {
    match store.setting(RING_SETTING).await? {
        Some(raw) => {
            let ids = parse_ids(&raw)?;
            Ok((Some(raw), ids))
        }
        None => Ok((None, if store.setting(&key_setting(0)).await?.is_some() { vec![0] } else { Vec::new() })),
    }
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

/// The stored ring, or `None` when the store holds no token key yet.
/// Creates nothing (`linktrack inspect`, the reload loop).
pub async fn load<S: Store>(store: &S) -> Result<Option<KeyRing>> {
    let (_, ids) = stored_ids(store).await?;
    if ids.is_empty() {
        return Ok(None);
    }
    ring_of(store, &ids).await.map(Some)
}

/// The stored ring, generating and storing key 0 first if the store has no
/// key at all (what `serve` does without `LINKTRACK_TOKEN_KEYS`). Concurrent
/// replicas all get the same key 0.
pub async fn load_or_create<S: Store>(store: &S) -> Result<KeyRing> {
    if let Some(ring) = load(store).await? {
        return Ok(ring);
    }
    let generated: [u8; GENERATED_SECRET_LEN] = rand::rng().random();
    let secret = store.setting_or_insert(&key_setting(0), &generated).await?;
    Ok(KeyRing::new(vec![TokenKey::new(0, &secret)?])?)
}

/// Generate a key, store it, and put it first in the ring, so new tokens
/// are minted with it once servers reload. Returns the new ring.
pub async fn add<S: Store>(store: &S) -> Result<KeyRing> {
    // Two admins adding at once: the loser's swap fails and it tries again.
    for _ in 0..5 {
        let (raw, ids) = stored_ids(store).await?;
        let id = next_id(&ids).ok_or_else(|| Error::Config("all 62 token key ids are in use; retire one first".into()))?;
        let generated: [u8; GENERATED_SECRET_LEN] = rand::rng().random();
        // A retired id's secret was deleted, so the setting is new, unless another add took this id just now.
        if !store.swap_setting(&key_setting(id), None, Some(&generated)).await? {
            continue;
        }
        let mut new_ids = vec![id];
        new_ids.extend(&ids);
        if store.swap_setting(RING_SETTING, raw.as_deref(), Some(format_ids(&new_ids).as_bytes())).await? {
            return ring_of(store, &new_ids).await;
        }
        // The ring changed under us: take our secret back out and start over.
        store.swap_setting(&key_setting(id), Some(&generated), None).await?;
    }
    Err(Error::Unavailable("the token key ring kept changing while adding a key; try again".into()))
}

/// Take key `id` out of the ring and delete its secret: its tokens stop
/// verifying (404, no lookup) once servers reload. The minting key cannot
/// be retired (add its successor first), nor the last key.
pub async fn retire<S: Store>(store: &S, id: u8) -> Result<KeyRing> {
    for _ in 0..5 {
        let (raw, ids) = stored_ids(store).await?;
        if !ids.contains(&id) {
            return Err(Error::Config(format!("token key {id} is not in the ring (keys: {})", format_ids(&ids))));
        }
        if ids.first() == Some(&id) {
            return Err(Error::Config(format!(
                "token key {id} mints new tokens; run `linktrack token-keys add` first, then retire {id} once every server mints with the new key"
            )));
        }
        let rest: Vec<u8> = ids.iter().copied().filter(|&k| k != id).collect();
        if !store.swap_setting(RING_SETTING, raw.as_deref(), Some(format_ids(&rest).as_bytes())).await? {
            continue;
        }
        if let Some(secret) = store.setting(&key_setting(id)).await? {
            store.swap_setting(&key_setting(id), Some(&secret), None).await?;
        }
        return ring_of(store, &rest).await;
    }
    Err(Error::Unavailable("the token key ring kept changing while retiring a key; try again".into()))
}

/// Ids of `ring`, minting first, as `token-keys list` shows them.
pub fn ids(ring: &KeyRing) -> Vec<u8> {
    ring.ids().collect()
}

/// Re-read the stored ring every `every` until `cancel` fires, and swap it
/// in when its ids changed. A failed read keeps the current ring (logged);
/// a ring that cannot be read never replaces a working one.
pub async fn reload_loop<S: Store>(store: Arc<S>, live: Arc<LiveKeys>, every: Duration, cancel: CancellationToken) {
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        match load(&*store).await {
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
    fn ids_round_trip_and_reject_garbage() {
        assert_eq!(parse_ids(b"2,1,0").unwrap(), vec![2, 1, 0]);
        assert_eq!(format_ids(&[2, 1, 0]), "2,1,0");
        for bad in [&b""[..], b"1,,2", b"62", b"a", b"\xff"] {
            assert!(parse_ids(bad).is_err(), "{bad:?}");
        }
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
