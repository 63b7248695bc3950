//! Tenants and scoped API keys: who a caller is and what it may do.
//!
//! Every API key belongs to one tenant and carries scopes: `mint` (mint and
//! rewrite), `read` (stats and export) and `admin` (recipient erasure, key
//! management). Letters carry their tenant as a narrow integer, and every
//! read filters by the caller's tenant, so another tenant's mailing is
//! indistinguishable from one that does not exist.
//!
//! Keys created with `linktrack keys create` are random, shown once, and
//! stored only as SHA-256 digests; the keys of `LINKTRACK_API_KEYS` (and the
//! generated `data/api-key`) are bootstrap keys with every scope in
//! [`TenantId::DEFAULT`]. A key is high-entropy, so an unsalted digest is
//! enough: recovering a key from its digest means guessing 192 random bits.
//!
//! This module sits at the domain floor beside `link`: it imports nothing
//! from the crate (`scripts/check-layers`).

use std::fmt;

use sha2::{Digest, Sha256};

/// A tenant, stored as `SMALLINT UNSIGNED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(pub u16);

impl TenantId {
    /// The tenant of bootstrap keys and of every row stored before tenants existed.
    pub const DEFAULT: TenantId = TenantId(1);
    /// The name of [`TenantId::DEFAULT`].
    pub const DEFAULT_NAME: &'static str = "default";
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Longest tenant name, in bytes.
pub const MAX_TENANT_NAME_BYTES: usize = 64;

/// Check a tenant name: 1 to 64 characters of `[A-Za-z0-9._-]`.
pub fn check_tenant_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_TENANT_NAME_BYTES {
        return Err(format!("a tenant name is 1 to {MAX_TENANT_NAME_BYTES} characters"));
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) {
        return Err(format!("tenant name {name:?} may hold only letters, digits, '.', '_' and '-'"));
    }
    Ok(())
}

/// One permission of a key. The bit values are stored; never renumber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Scope {
    /// `POST /v1/links`, `POST /v1/rewrite`.
    Mint = 1,
    /// Stats and the event export.
    Read = 2,
    /// `DELETE /v1/recipients` and key management.
    Admin = 4,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::Mint, Scope::Read, Scope::Admin];

    pub fn name(self) -> &'static str {
        match self {
            Scope::Mint => "mint",
            Scope::Read => "read",
            Scope::Admin => "admin",
        }
    }
}

/// A set of scopes, stored as a `TINYINT UNSIGNED` bit set.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Scopes(u8);

impl Scopes {
    pub const ALL: Scopes = Scopes(Scope::Mint as u8 | Scope::Read as u8 | Scope::Admin as u8);

    pub fn contains(self, s: Scope) -> bool {
        self.0 & s as u8 != 0
    }

    pub fn bits(self) -> u8 {
        self.0
    }

    /// The scopes of stored bits; `None` for bits no scope has.
    pub fn from_bits(bits: u8) -> Option<Scopes> {
        (bits & !Scopes::ALL.0 == 0 && bits != 0).then_some(Scopes(bits))
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Scopes({self})")
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = Scope::ALL.iter().filter(|s| self.contains(**s)).map(|s| s.name()).collect();
        f.write_str(&names.join(","))
    }
}

impl std::str::FromStr for Scopes {
    type Err = String;

    /// `mint,read`, `read`, `mint,read,admin`, `all`.
    fn from_str(s: &str) -> Result<Scopes, String> {
        if s.trim() == "all" {
            return Ok(Scopes::ALL);
        }
        let mut bits = 0u8;
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let scope = Scope::ALL
                .into_iter()
                .find(|sc| sc.name() == part)
                .ok_or_else(|| format!("unknown scope {part:?}; scopes are mint, read and admin (or all)"))?;
            bits |= scope as u8;
        }
        Scopes::from_bits(bits).ok_or_else(|| "give at least one scope: mint, read, admin".to_owned())
    }
}

/// The SHA-256 digest of an API key: what is stored and compared.
pub fn key_digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// A key as stored: its digest, never the key.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredApiKey {
    pub id: u32,
    pub tenant: TenantId,
    /// The tenant's name (joined in when listing).
    pub tenant_name: String,
    pub scopes: Scopes,
    pub digest: [u8; 32],
    /// The key's first characters, to recognise it in a list.
    pub prefix: String,
    pub label: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds; `None` while the key is valid.
    pub revoked_at: Option<i64>,
}

impl fmt::Debug for StoredApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredApiKey")
            .field("id", &self.id)
            .field("tenant", &self.tenant)
            .field("scopes", &self.scopes)
            .field("prefix", &self.prefix)
            .field("revoked_at", &self.revoked_at)
            .finish_non_exhaustive()
    }
}

/// A key to store.
#[derive(Clone)]
pub struct NewApiKey {
    pub tenant: TenantId,
    pub scopes: Scopes,
    pub digest: [u8; 32],
    pub prefix: String,
    pub label: String,
    pub created_at: i64,
}

impl fmt::Debug for NewApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewApiKey").field("tenant", &self.tenant).field("scopes", &self.scopes).finish_non_exhaustive()
    }
}

/// Characters of a new key shown in listings (`ltk_` plus 6 random ones).
pub const KEY_PREFIX_CHARS: usize = 10;

/// A new random API key (`ltk_` and 48 hex digits: 192 bits from the OS
/// CSPRNG) and what to store for it.
pub fn generate_key(tenant: TenantId, scopes: Scopes, label: &str, now: i64) -> (String, NewApiKey) {
    let bytes: [u8; 24] = rand::random();
    let key = format!("ltk_{}", hex::encode(bytes));
    let stored = NewApiKey {
        tenant,
        scopes,
        digest: key_digest(&key),
        prefix: key[..KEY_PREFIX_CHARS].to_owned(),
        label: label.to_owned(),
        created_at: now,
    };
    (key, stored)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_print_and_store_as_bits() {
        let s: Scopes = "mint,read".parse().unwrap();
        assert!(s.contains(Scope::Mint) && s.contains(Scope::Read) && !s.contains(Scope::Admin));
        assert_eq!((s.to_string(), s.bits()), ("mint,read".to_owned(), 3));
        assert_eq!("all".parse::<Scopes>().unwrap(), Scopes::ALL);
        assert_eq!(Scopes::ALL.to_string(), "mint,read,admin");
        assert_eq!(Scopes::from_bits(4).unwrap().to_string(), "admin");
        for bad in ["", "mint,wrte", ",", "MINT"] {
            assert!(bad.parse::<Scopes>().is_err(), "{bad:?}");
        }
        assert_eq!(Scopes::from_bits(0), None);
        assert_eq!(Scopes::from_bits(8), None);
    }

    #[test]
    fn generated_keys_are_random_and_stored_as_digests() {
        let (a, stored) = generate_key(TenantId(3), Scopes::ALL, "ci", 5);
        let (b, _) = generate_key(TenantId(3), Scopes::ALL, "ci", 5);
        assert_ne!(a, b);
        assert_eq!(a.len(), 52);
        assert!(a.starts_with("ltk_") && a[4..].bytes().all(|c| c.is_ascii_hexdigit()));
        assert_eq!((stored.digest, stored.prefix.as_str()), (key_digest(&a), &a[..KEY_PREFIX_CHARS]));
        assert!(!format!("{stored:?}").contains(&a[4..]), "Debug shows no key material");
    }

    #[test]
    fn tenant_names_are_plain() {
        assert!(check_tenant_name("acme-eu.1_b").is_ok());
        for bad in ["", "a b", "x/y", "ü", &"a".repeat(65)] {
            assert!(check_tenant_name(bad).is_err(), "{bad:?}");
        }
    }
}
