//! `POST /v1/links`: validate a batch, mint tokens, store durably, answer 201.
//!
//! Validation is all-or-nothing: the first bad item rejects the batch with a
//! `422` naming its index, before anything is generated or stored. The store
//! writes the batch in one transaction (one multi-row INSERT for the links),
//! so the `201` means durable. Minted links go straight into the cache,
//! because the burst after a send hits links that were just minted.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};

use crate::cache::CachedLink;
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::store::{Idempotency, Letter, LinkKind, MintBatch, MintOutcome, NewLink, Store, hash16};
use crate::token;

pub const MAX_URL_BYTES: usize = 2048;
pub const MAX_MAILING_ID_BYTES: usize = 255;
const MAX_RECIPIENT_BYTES: usize = 320;
const MAX_META_BYTES: usize = 8192;
const MAX_IDEMPOTENCY_KEY_BYTES: usize = 255;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MintRequest {
    pub mailing_id: String,
    pub recipient: String,
    #[serde(default)]
    pub meta: Option<serde_json::Value>,
    #[serde(default)]
    pub links: Vec<LinkIn>,
    #[serde(default)]
    pub pixel: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkIn {
    pub url: String,
}

#[derive(Debug, Serialize)]
struct LinkOut<'a> {
    url: &'a str,
    token: &'a str,
    tracking_url: String,
}

#[derive(Debug, Serialize)]
struct PixelOut<'a> {
    token: &'a str,
    tracking_url: String,
}

#[derive(Debug, Serialize)]
struct MintResponse<'a> {
    links: Vec<LinkOut<'a>>,
    pixel: Option<PixelOut<'a>>,
}

/// Why a destination URL is refused, or `Ok`.
pub fn validate_url(url: &str) -> Result<(), String> {
    if url.is_empty() {
        return Err("url is empty".into());
    }
    if url.len() > MAX_URL_BYTES {
        return Err(format!("url is {} bytes; the limit is {MAX_URL_BYTES}", url.len()));
    }
    if let Some(b) = url.bytes().find(|b| *b <= b' ' || *b == 0x7f) {
        return Err(format!("url contains a control or whitespace character (0x{b:02x})"));
    }
    if url.contains('\\') {
        return Err("url contains a backslash".into());
    }
    // The raw text must carry an authority: parsers "repair" `https:///host` and
    // `https:host` into `https://host/`, but only the repaired form is a real URL.
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    let rest = if lower.starts_with("https://") {
        &url[8..]
    } else if lower.starts_with("http://") {
        &url[7..]
    } else {
        return Err("url must start with http:// or https://".into());
    };
    if rest.is_empty() || rest.starts_with('/') {
        return Err("url has no host".into());
    }
    let parsed = url::Url::parse(url).map_err(|e| format!("url is not absolute: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("url scheme must be http or https, not {:?}", parsed.scheme()));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("url has no host".into());
    }
    Ok(())
}

fn check_len(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.is_empty() {
        return Err(ApiError::invalid(format!("{field} must not be empty")));
    }
    if value.len() > max {
        return Err(ApiError::invalid(format!("{field} is {} bytes; the limit is {max}", value.len())));
    }
    Ok(())
}

fn validate(req: &MintRequest, max_links: usize) -> Result<Option<String>, ApiError> {
    check_len("mailing_id", &req.mailing_id, MAX_MAILING_ID_BYTES)?;
    check_len("recipient", &req.recipient, MAX_RECIPIENT_BYTES)?;
    if req.links.len() > max_links {
        return Err(ApiError::invalid(format!("{} links; at most {max_links} per request", req.links.len())));
    }
    if req.links.is_empty() && !req.pixel {
        return Err(ApiError::invalid("nothing to mint: send links, or pixel: true"));
    }
    for (i, link) in req.links.iter().enumerate() {
        validate_url(&link.url).map_err(|m| ApiError::invalid(format!("links[{i}].url: {m}")).at(i))?;
    }
    match &req.meta {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v @ serde_json::Value::Object(_)) => {
            let text = v.to_string();
            if text.len() > MAX_META_BYTES {
                return Err(ApiError::invalid(format!("meta is {} bytes; the limit is {MAX_META_BYTES}", text.len())));
            }
            Ok(Some(text))
        }
        Some(_) => Err(ApiError::invalid("meta must be a JSON object")),
    }
}

fn idempotency(headers: &HeaderMap, api_key: &[u8; 32], body: &[u8]) -> Result<Option<Idempotency>, ApiError> {
    let Some(v) = headers.get("idempotency-key") else { return Ok(None) };
    let key = v.as_bytes();
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_BYTES || !key.iter().all(u8::is_ascii_graphic) {
        return Err(ApiError::bad_request(format!("Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_BYTES} visible ASCII characters")));
    }
    Ok(Some(Idempotency { key_hash: hash16(&[api_key, key]), body_hash: hash16(&[body]) }))
}

/// Handle an authenticated mint whose body has been read.
#[tracing::instrument(skip_all, fields(links))]
pub async fn mint<S: Store>(
    st: &AppState<S>,
    headers: &HeaderMap,
    api_key: &[u8; 32],
    body: &Bytes,
) -> Result<(StatusCode, String), ApiError> {
    let req: MintRequest = serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    let meta = validate(&req, st.limits.max_links)?;
    tracing::Span::current().record("links", req.links.len());
    let idem = idempotency(headers, api_key, body)?;

    let now = st.clock.now_unix();
    let day = st.clock.today();
    let total = req.links.len() + usize::from(req.pixel);
    let mut minted = Vec::with_capacity(total);
    token::generate(&st.keys, day, total, &mut minted);

    // One shared allocation per distinct URL in the batch.
    let mut shared: HashMap<&str, Arc<str>> = HashMap::new();
    let mut links = Vec::with_capacity(total);
    for (i, (tok, random)) in minted.iter().enumerate() {
        let url = req.links.get(i).map(|l| shared.entry(l.url.as_str()).or_insert_with(|| Arc::from(l.url.as_str())).clone());
        let kind = if url.is_some() { LinkKind::Click } else { LinkKind::Open };
        links.push(NewLink { kind, random: *random, token: *tok, url });
    }
    let batch = MintBatch {
        day,
        letter: Letter {
            mailing_id: req.mailing_id.clone(),
            recipient: req.recipient.clone(),
            meta,
            minted_at: now,
            click_links: req.links.len() as u32,
        },
        links,
        idempotency: idem,
    };
    let tokens: Vec<String> = match st.store.mint(&batch).await? {
        MintOutcome::Stored => {
            let mut locations: HashMap<&str, Bytes> = HashMap::new();
            for link in &batch.links {
                let location = match link.url.as_deref() {
                    Some(u) => locations.entry(u).or_insert_with(|| Bytes::copy_from_slice(u.as_bytes())).clone(),
                    None => Bytes::new(),
                };
                st.negative.remove(day, &link.random);
                st.cache.insert(day, link.random, CachedLink { kind: link.kind, location });
            }
            batch.links.iter().map(|l| l.token.as_str().to_owned()).collect()
        }
        MintOutcome::Replayed(tokens) => {
            if tokens.len() != total {
                return Err(ApiError::from(crate::Error::IdempotencyMismatch));
            }
            tokens
        }
    };
    let base = &st.public_url;
    let links =
        req.links.iter().zip(&tokens).map(|(l, t)| LinkOut { url: &l.url, token: t, tracking_url: format!("{base}/c/{t}") }).collect();
    let pixel = req.pixel.then(|| {
        let t = tokens.last().map_or("", String::as_str);
        PixelOut { token: t, tracking_url: format!("{base}/o/{t}") }
    });
    let json = serde_json::to_string(&MintResponse { links, pixel }).map_err(|e| ApiError::from(crate::Error::Database(e.to_string())))?;
    Ok((StatusCode::CREATED, json))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_validation() {
        assert!(validate_url("https://example.com/a?b=c#d").is_ok());
        assert!(validate_url("http://example.com").is_ok());
        assert!(validate_url("HTTPS://Example.com/Path").is_ok());
        for bad in [
            "javascript:alert(1)",
            "/relative/path",
            "example.com/no-scheme",
            "https://example.com/\r\nSet-Cookie: x",
            "https://exa mple.com/",
            "ftp://example.com/file",
            "https:///nohost",
            "https:nohost.example/",
            "https:\\\\evil.example/",
            "HTTPS://",
            "",
        ] {
            assert!(validate_url(bad).is_err(), "{bad:?} accepted");
        }
        let long = format!("https://example.com/{}", "a".repeat(3000));
        assert!(validate_url(&long).unwrap_err().contains("limit"));
    }

    #[test]
    fn batch_validation_names_the_index() {
        let req: MintRequest =
            serde_json::from_str(r#"{"mailing_id":"m","recipient":"r","links":[{"url":"https://ok.example/"},{"url":"javascript:x"}]}"#)
                .unwrap();
        let err = validate(&req, 1000).unwrap_err();
        assert_eq!(err.index, Some(1));
        assert_eq!(err.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(err.message.starts_with("links[1].url"));
    }

    #[test]
    fn unknown_fields_are_rejected() {
        assert!(serde_json::from_str::<MintRequest>(r#"{"mailing_id":"m","recipient":"r","pixle":true}"#).is_err());
    }
}
