//! Webhook endpoints: settled click and open events pushed to a tenant's
//! URL, signed as the Standard Webhooks spec says
//! (<https://www.standardwebhooks.com/>): headers `webhook-id`,
//! `webhook-timestamp` and `webhook-signature: v1,<base64 HMAC-SHA256 of
//! "id.timestamp.body">`, keyed by the base64 part of a `whsec_` secret.
//!
//! This file holds the data (an endpoint, its filters and delivery state)
//! and the signature, below the store, which keeps endpoints as rows; the
//! delivery service that drives them is [`deliver`], above the store.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::events::{Cursor, EventRow, Verdict};
use crate::link::LinkKind;
use crate::tenant::TenantId;

pub mod deliver;

/// Which events an endpoint receives; an empty list means every value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filters {
    #[serde(default)]
    pub mailings: Vec<String>,
    /// `click`, `open`.
    #[serde(default)]
    pub kinds: Vec<String>,
    /// `human`, `bot`, `suspect`.
    #[serde(default)]
    pub verdicts: Vec<String>,
}

impl Filters {
    /// Check the names; the message says which one is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(k) = self.kinds.iter().find(|k| !matches!(k.as_str(), "click" | "open")) {
            return Err(format!("filters.kinds: unknown kind {k:?} (click, open)"));
        }
        if let Some(v) = self.verdicts.iter().find(|v| !matches!(v.as_str(), "human" | "bot" | "suspect")) {
            return Err(format!("filters.verdicts: unknown verdict {v:?} (human, bot, suspect)"));
        }
        if self.mailings.len() > 100 || self.mailings.iter().any(|m| m.is_empty() || m.len() > crate::link::MAX_MAILING_ID_BYTES) {
            return Err("filters.mailings: at most 100 mailing ids of 1 to 255 bytes".into());
        }
        Ok(())
    }

    /// Does `row` (of the endpoint's tenant) pass?
    pub fn pass(&self, row: &EventRow) -> bool {
        let kind = match row.kind {
            LinkKind::Click => "click",
            LinkKind::Open => "open",
        };
        let verdict = match row.verdict {
            Verdict::Human => "human",
            Verdict::Bot => "bot",
            Verdict::Suspect => "suspect",
        };
        (self.kinds.is_empty() || self.kinds.iter().any(|k| k == kind))
            && (self.verdicts.is_empty() || self.verdicts.iter().any(|v| v == verdict))
            && (self.mailings.is_empty() || row.link.as_ref().is_some_and(|l| self.mailings.contains(&l.mailing_id)))
    }
}

/// A signing secret, `whsec_` and base64; redacted in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(pub String);

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(redacted)")
    }
}

impl WebhookSecret {
    /// 32 random bytes from the OS CSPRNG.
    pub fn generate() -> WebhookSecret {
        let bytes: [u8; 32] = rand::random();
        WebhookSecret(format!("whsec_{}", B64.encode(bytes)))
    }

    fn key(&self) -> Option<Vec<u8>> {
        B64.decode(self.0.strip_prefix("whsec_").unwrap_or(&self.0)).ok()
    }

    /// `v1,<signature>` of one message.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key()?).ok()?;
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        Some(format!("v1,{}", B64.encode(mac.finalize().into_bytes())))
    }
}

/// One endpoint and where its delivery stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub id: u32,
    pub tenant: TenantId,
    pub url: String,
    pub secret: WebhookSecret,
    /// The secret before the last rotation, still signing until `old_secret_until_ms`.
    pub old_secret: Option<WebhookSecret>,
    pub old_secret_until_ms: i64,
    pub filters: Filters,
    /// Events up to here were delivered (acknowledged with a 2xx).
    pub cursor: Cursor,
    pub paused: bool,
    pub failing_since_ms: Option<i64>,
    pub last_success_ms: Option<i64>,
    pub last_error: Option<String>,
    /// Settled matching events past the cursor when the deliverer last looked (capped at one read).
    pub lag_events: u64,
    /// Age of the oldest undelivered matching event then, in ms (0 when caught up).
    pub lag_ms: i64,
    /// Unix seconds.
    pub created_at: i64,
}

impl Webhook {
    /// A new endpoint (id 0 until stored) delivering from `cursor`, never delivered to yet.
    pub fn new(tenant: TenantId, url: String, secret: WebhookSecret, filters: Filters, cursor: Cursor, created_at: i64) -> Webhook {
        Webhook {
            id: 0,
            tenant,
            url,
            secret,
            old_secret: None,
            old_secret_until_ms: 0,
            filters,
            cursor,
            paused: false,
            failing_since_ms: None,
            last_success_ms: None,
            last_error: None,
            lag_events: 0,
            lag_ms: 0,
            created_at,
        }
    }

    /// The `webhook-signature` header: the current secret's signature, and
    /// the previous one's while the rotation overlap lasts (space-separated).
    pub fn signatures(&self, msg_id: &str, timestamp: i64, body: &[u8], now_ms: i64) -> Option<String> {
        let mut sig = self.secret.sign(msg_id, timestamp, body)?;
        if let Some(old) = self.old_secret.as_ref().filter(|_| now_ms < self.old_secret_until_ms)
            && let Some(s) = old.sign(msg_id, timestamp, body)
        {
            sig.push(' ');
            sig.push_str(&s);
        }
        Some(sig)
    }
}

/// What a delivery pass records (only while it holds the lease).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub cursor: Cursor,
    pub paused: bool,
    pub failing_since_ms: Option<i64>,
    pub last_success_ms: Option<i64>,
    pub last_error: Option<String>,
    pub lag_events: u64,
    pub lag_ms: i64,
}

/// An operator's change to an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Stop delivering; the cursor stays.
    Pause,
    /// Deliver again from the cursor, failures forgotten.
    Resume,
    /// Sign with `new` from now on, and with the current secret too until `old_until_ms`.
    RotateSecret { new: WebhookSecret, old_until_ms: i64 },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_standard_webhooks_example() {
        // The example of the Standard Webhooks spec and its reference libraries.
        let secret = WebhookSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into());
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, body).as_deref(),
            Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        );
        assert!(!format!("{secret:?}").contains("MfKQ"));
    }

    #[test]
    fn rotation_signs_with_both_secrets_during_the_overlap() {
        let mut w =
            Webhook::new(TenantId::DEFAULT, "http://127.0.0.1:9/".into(), WebhookSecret::generate(), Filters::default(), Cursor::START, 0);
        assert_eq!(w.signatures("m", 1, b"x", 0).unwrap().split(' ').count(), 1);
        w.old_secret = Some(WebhookSecret::generate());
        w.old_secret_until_ms = 100;
        let both = w.signatures("m", 1, b"x", 99).unwrap();
        assert_eq!(
            both.split(' ').collect::<Vec<_>>(),
            [w.secret.sign("m", 1, b"x").unwrap(), w.old_secret.as_ref().unwrap().sign("m", 1, b"x").unwrap()]
        );
        assert_eq!(w.signatures("m", 1, b"x", 100).unwrap().split(' ').count(), 1, "the overlap ends");
    }

    #[test]
    fn filters_are_checked_by_name() {
        assert!(Filters { kinds: vec!["click".into()], verdicts: vec!["human".into()], ..Filters::default() }.validate().is_ok());
        assert!(Filters { kinds: vec!["clicks".into()], ..Filters::default() }.validate().is_err());
        assert!(Filters { verdicts: vec!["robot".into()], ..Filters::default() }.validate().is_err());
    }
}
