//! Bearer API keys, compared in constant time, and the caller they name.
//!
//! Keys are kept only as SHA-256 digests; a presented key is hashed once and
//! compared against every known digest with `subtle`, so neither a key's
//! contents nor which key matched leaks through timing. Two kinds of keys
//! are known: bootstrap keys (`LINKTRACK_API_KEYS`, or the generated
//! `data/api-key`), which have every scope in the default tenant, and keys
//! stored by `linktrack keys create`, which the server reloads from the store
//! periodically ([`ApiKeys::set_stored`]), so a new or revoked key takes
//! effect within one refresh interval on every replica.

use std::fmt;
use std::sync::{Arc, RwLock};

use subtle::{ConditionallySelectable, ConstantTimeEq};

use crate::tenant::{Scope, Scopes, StoredApiKey, TenantId, key_digest};

/// Who sent a request with a valid key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// The key's digest: scopes idempotency keys and rate limits per key.
    pub digest: [u8; 32],
    pub tenant: TenantId,
    pub scopes: Scopes,
}

impl Caller {
    pub fn may(&self, scope: Scope) -> bool {
        self.scopes.contains(scope)
    }
}

#[derive(Clone, Copy)]
struct Entry {
    digest: [u8; 32],
    tenant: u16,
    scopes: u8,
}

/// The accepted API keys.
pub struct ApiKeys {
    bootstrap: Vec<Entry>,
    /// Valid stored keys, replaced whole on each refresh.
    stored: RwLock<Arc<Vec<Entry>>>,
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKeys({} bootstrap, {} stored, redacted)", self.bootstrap.len(), self.stored_snapshot().len())
    }
}

impl ApiKeys {
    /// Bootstrap keys: every scope, default tenant.
    pub fn new<'a>(keys: impl IntoIterator<Item = &'a str>) -> ApiKeys {
        let bootstrap = keys
            .into_iter()
            .map(|k| Entry { digest: key_digest(k.trim()), tenant: TenantId::DEFAULT.0, scopes: Scopes::ALL.bits() })
            .collect();
        ApiKeys { bootstrap, stored: RwLock::new(Arc::new(Vec::new())) }
    }

    /// Replace the stored keys with `keys` (revoked ones are dropped here).
    pub fn set_stored(&self, keys: &[StoredApiKey]) {
        let entries: Vec<Entry> = keys
            .iter()
            .filter(|k| k.revoked_at.is_none())
            .map(|k| Entry { digest: k.digest, tenant: k.tenant.0, scopes: k.scopes.bits() })
            .collect();
        *self.stored.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(entries);
    }

    fn stored_snapshot(&self) -> Arc<Vec<Entry>> {
        self.stored.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    pub fn is_empty(&self) -> bool {
        self.bootstrap.is_empty() && self.stored_snapshot().is_empty()
    }

    /// Check an `Authorization` header value: the caller its key names.
    pub fn verify(&self, authorization: Option<&[u8]>) -> Option<Caller> {
        let value = authorization?;
        // The scheme is case-insensitive (RFC 9110 §11.1): `Bearer`, `bearer`, `BEARER`.
        let (scheme, key) = value.split_at_checked(7)?;
        if !scheme.eq_ignore_ascii_case(b"bearer ") {
            return None;
        }
        let key = std::str::from_utf8(key).ok()?.trim();
        if key.is_empty() {
            return None;
        }
        let presented = key_digest(key);
        let stored = self.stored_snapshot();
        let mut found = subtle::Choice::from(0);
        let mut matched = Entry { digest: [0; 32], tenant: 0, scopes: 0 };
        // Every entry is compared, matched or not, so timing says nothing about which one matched.
        for e in self.bootstrap.iter().chain(stored.iter()) {
            let eq = e.digest.ct_eq(&presented);
            found |= eq;
            for (m, b) in matched.digest.iter_mut().zip(&e.digest) {
                *m = u8::conditional_select(m, b, eq);
            }
            matched.tenant = u16::conditional_select(&matched.tenant, &e.tenant, eq);
            matched.scopes = u8::conditional_select(&matched.scopes, &e.scopes, eq);
        }
        if !bool::from(found) {
            return None;
        }
        Some(Caller { digest: matched.digest, tenant: TenantId(matched.tenant), scopes: Scopes::from_bits(matched.scopes)? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(key: &str, tenant: u16, scopes: &str, revoked: bool) -> StoredApiKey {
        StoredApiKey {
            id: 1,
            tenant: TenantId(tenant),
            tenant_name: "t".into(),
            scopes: scopes.parse().unwrap(),
            digest: key_digest(key),
            prefix: key[..4].to_owned(),
            label: String::new(),
            created_at: 0,
            revoked_at: revoked.then_some(1),
        }
    }

    #[test]
    fn accepts_only_configured_keys() {
        let keys = ApiKeys::new(["alpha", "beta"]);
        assert!(keys.verify(Some(b"Bearer alpha")).is_some());
        let beta = keys.verify(Some(b"Bearer beta")).unwrap();
        assert_eq!((beta.digest, beta.tenant, beta.scopes), (key_digest("beta"), TenantId::DEFAULT, Scopes::ALL));
        assert!(keys.verify(Some(b"Bearer gamma")).is_none());
        assert_eq!(keys.verify(Some(b"BEARER beta")), Some(beta), "the scheme is case-insensitive");
        assert_eq!(keys.verify(Some(b"bEaReR beta")), Some(beta));
        assert!(keys.verify(Some(b"Basic beta")).is_none());
        assert!(keys.verify(Some(b"Bearerbeta")).is_none());
        assert!(keys.verify(Some(b"Basic alpha")).is_none());
        assert!(keys.verify(Some(b"Bearer ")).is_none());
        assert!(keys.verify(None).is_none());
        assert!(ApiKeys::new([]).verify(Some(b"Bearer alpha")).is_none());
        assert!(!format!("{keys:?}").contains("alpha"));
    }

    #[test]
    fn stored_keys_carry_their_tenant_and_scopes_and_revocation_removes_them() {
        let keys = ApiKeys::new(["bootstrap-key-0001"]);
        keys.set_stored(&[stored("ltk_reader", 7, "read", false), stored("ltk_gone", 7, "mint", true)]);
        let reader = keys.verify(Some(b"Bearer ltk_reader")).unwrap();
        assert_eq!((reader.tenant, reader.may(Scope::Read), reader.may(Scope::Mint)), (TenantId(7), true, false));
        assert!(keys.verify(Some(b"Bearer ltk_gone")).is_none(), "a revoked key is refused");
        assert_eq!(keys.verify(Some(b"Bearer bootstrap-key-0001")).unwrap().tenant, TenantId::DEFAULT);
        keys.set_stored(&[]);
        assert!(keys.verify(Some(b"Bearer ltk_reader")).is_none(), "a refresh without the key drops it");
    }
}
