//! Bearer API keys, compared in constant time.
//!
//! Keys are kept only as SHA-256 digests; a presented key is hashed once and
//! compared against every configured digest with `subtle`, so neither a key's
//! contents nor which key matched leaks through timing.

use std::fmt;

use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

/// The accepted API keys.
#[derive(Clone)]
pub struct ApiKeys {
    digests: Vec<[u8; 32]>,
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKeys({} keys, redacted)", self.digests.len())
    }
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

impl ApiKeys {
    pub fn new<'a>(keys: impl IntoIterator<Item = &'a str>) -> ApiKeys {
        ApiKeys { digests: keys.into_iter().map(digest).collect() }
    }

    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    /// Check an `Authorization` header value. On success returns the matched
    /// key's digest, which scopes idempotency keys per API key.
    pub fn verify(&self, authorization: Option<&[u8]>) -> Option<[u8; 32]> {
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
        let presented = digest(key);
        let mut found = subtle::Choice::from(0);
        let mut matched = [0u8; 32];
        for d in &self.digests {
            let eq = d.ct_eq(&presented);
            found |= eq;
            for (m, b) in matched.iter_mut().zip(d) {
                *m = u8::conditional_select(m, b, eq);
            }
        }
        bool::from(found).then_some(matched)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_configured_keys() {
        let keys = ApiKeys::new(["alpha", "beta"]);
        assert!(keys.verify(Some(b"Bearer alpha")).is_some());
        assert_eq!(keys.verify(Some(b"Bearer beta")), Some(digest("beta")));
        assert!(keys.verify(Some(b"Bearer gamma")).is_none());
        assert_eq!(keys.verify(Some(b"BEARER beta")), Some(digest("beta")), "the scheme is case-insensitive");
        assert_eq!(keys.verify(Some(b"bEaReR beta")), Some(digest("beta")));
        assert!(keys.verify(Some(b"Basic beta")).is_none());
        assert!(keys.verify(Some(b"Bearerbeta")).is_none());
        assert!(keys.verify(Some(b"Basic alpha")).is_none());
        assert!(keys.verify(Some(b"Bearer ")).is_none());
        assert!(keys.verify(None).is_none());
        assert!(ApiKeys::new([]).verify(Some(b"Bearer alpha")).is_none());
        assert!(!format!("{keys:?}").contains("alpha"));
    }
}
