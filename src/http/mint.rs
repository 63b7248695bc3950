//! `POST /v1/links`: validate a batch, mint tokens, store durably, answer 201.
//!
//! The rules a URL and the letter fields must pass live in `crate::link`;
//! this file applies them to the request and names the offending field.
//! Validation is all-or-nothing: the first bad item rejects the batch with a
//! `422` naming its index, before anything is generated or stored. The store
//! writes the batch in one transaction (one multi-row INSERT for the links),
//! so the `201` means durable. Minted links go straight into the cache,
//! because the burst after a send hits links that were just minted; with
//! them the letter and URL ids the store gave them, so their events name
//! their letter and URL without a lookup.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};

use crate::cache::CachedLink;
use crate::http::AppState;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::link::{
    Idempotency, Letter, LinkKind, MAX_MAILING_ID_BYTES, MAX_META_BYTES, MAX_RECIPIENT_BYTES, MintBatch, MintOutcome, NO_POSITION, NewLink,
    hash16, normalize_url, stored_position,
};
use crate::store::Store;
use crate::tenant::TenantId;
use crate::token::{self, Version};

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

fn check_len(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.is_empty() {
        return Err(ApiError::invalid(format!("{field} must not be empty")));
    }
    if value.len() > max {
        return Err(ApiError::invalid(format!("{field} is {} bytes; the limit is {max}", value.len())));
    }
    Ok(())
}

/// Check a letter's fields (shared with `POST /v1/rewrite`); its meta as compact JSON text.
pub(crate) fn validate_letter(mailing_id: &str, recipient: &str, meta: Option<&serde_json::Value>) -> Result<Option<String>, ApiError> {
    check_len("mailing_id", mailing_id, MAX_MAILING_ID_BYTES)?;
    if mailing_id.trim().is_empty() || mailing_id.chars().any(char::is_control) {
        return Err(ApiError::invalid("mailing_id must not be blank or contain control characters"));
    }
    check_len("recipient", recipient, MAX_RECIPIENT_BYTES)?;
    match meta {
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

/// Check a mint request; its meta as compact JSON text and each link's URL in the form stored ([`normalize_url`]).
fn validate(req: &MintRequest, max_links: usize) -> Result<(Option<String>, Vec<String>), ApiError> {
    let meta = validate_letter(&req.mailing_id, &req.recipient, req.meta.as_ref())?;
    if req.links.len() > max_links {
        return Err(ApiError::invalid(format!("{} links; at most {max_links} per request", req.links.len())));
    }
    if req.links.is_empty() && !req.pixel {
        return Err(ApiError::invalid("nothing to mint: send links, or pixel: true"));
    }
    let urls = req
        .links
        .iter()
        .enumerate()
        .map(|(i, link)| normalize_url(&link.url).map_err(|m| ApiError::invalid(format!("links[{i}].url: {m}")).at(i)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((meta, urls))
}

/// A mint body that passed [`parse`]: the request, its meta as compact JSON
/// text, and each link's URL in the form stored.
#[derive(Debug)]
pub struct Parsed {
    pub req: MintRequest,
    pub meta: Option<String>,
    pub urls: Vec<String>,
}

/// Parse and validate a mint body, as `POST /v1/links` does before anything
/// is generated or stored (the fuzz target `mint_body` drives it too).
pub fn parse(body: &[u8], max_links: usize) -> Result<Parsed, ApiError> {
    let req: MintRequest = serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    let (meta, urls) = validate(&req, max_links)?;
    Ok(Parsed { req, meta, urls })
}

pub(crate) fn idempotency(headers: &HeaderMap, api_key: &[u8; 32], body: &[u8]) -> Result<Option<Idempotency>, ApiError> {
    let Some(v) = headers.get("idempotency-key") else { return Ok(None) };
    let key = v.as_bytes();
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_BYTES || !key.iter().all(u8::is_ascii_graphic) {
        return Err(ApiError::bad_request(format!("Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_BYTES} visible ASCII characters")));
    }
    Ok(Some(Idempotency { key_hash: hash16(&[api_key, key]), body_hash: hash16(&[body]) }))
}

/// A checked letter, ready to mint.
#[derive(Debug)]
pub(crate) struct LetterIn<'a> {
    /// The tenant of the key that mints it.
    pub tenant: TenantId,
    pub mailing_id: &'a str,
    pub recipient: &'a str,
    /// Compact JSON text of the meta ([`validate_letter`]).
    pub meta: Option<String>,
}

/// The mint path both `POST /v1/links` and `POST /v1/rewrite` take: ids,
/// tokens, one batch stored in one transaction (durable when this returns),
/// the cache filled; or, for a replayed idempotency key, the tokens minted
/// then. `urls` are in stored form, each with its position in the letter.
/// Returns the tokens in order, pixel last.
pub(crate) async fn mint_letter<S: Store>(
    st: &AppState<S>,
    letter: LetterIn<'_>,
    urls: &[(String, usize)],
    pixel: bool,
    idem: Option<Idempotency>,
) -> Result<Vec<String>, ApiError> {
    let now = st.clock.now_unix();
    let day = st.clock.today();
    let total = urls.len() + usize::from(pixel);
    let mut minted = Vec::with_capacity(total);
    let first_id = st.ids.take(total as u64).await?;
    token::generate_v2(&st.keys.load(), day, first_id, total, &mut minted);

    // One shared allocation per distinct URL in the batch.
    let mut shared: HashMap<&str, Arc<str>> = HashMap::new();
    let mut links = Vec::with_capacity(total);
    for (i, (tok, random)) in minted.iter().enumerate() {
        let url = urls.get(i).map(|(u, _)| shared.entry(u.as_str()).or_insert_with(|| Arc::from(u.as_str())).clone());
        let kind = if url.is_some() { LinkKind::Click } else { LinkKind::Open };
        let position = urls.get(i).map_or(NO_POSITION, |(_, p)| stored_position(*p));
        links.push(NewLink { kind, random: *random, token: *tok, url, position });
    }
    let batch = MintBatch {
        day,
        version: Version::V2,
        letter: Letter {
            tenant: letter.tenant,
            mailing_id: letter.mailing_id.to_owned(),
            recipient: letter.recipient.to_owned(),
            meta: letter.meta,
            minted_at: now,
            click_links: urls.len() as u32,
        },
        links,
        idempotency: idem,
    };
    let tokens = match st.store.mint(&batch).await? {
        MintOutcome::Stored(ids) => {
            let mut locations: HashMap<&str, Bytes> = HashMap::new();
            for (link, ids) in batch.links.iter().zip(ids) {
                let location = match link.url.as_deref() {
                    Some(u) => locations.entry(u).or_insert_with(|| Bytes::copy_from_slice(u.as_bytes())).clone(),
                    None => Bytes::new(),
                };
                st.negative.remove(day, &link.random);
                st.cache.insert(day, link.random, CachedLink { kind: link.kind, location, ids });
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
    Ok(tokens)
}

/// Handle an authenticated mint whose body has been read.
#[tracing::instrument(skip_all, fields(links))]
pub async fn mint<S: Store>(
    st: &AppState<S>,
    headers: &HeaderMap,
    caller: &Caller,
    body: &Bytes,
) -> Result<(StatusCode, String), ApiError> {
    let Parsed { req, meta, urls } = parse(body, st.limits.max_links)?;
    tracing::Span::current().record("links", req.links.len());
    let idem = idempotency(headers, &caller.digest, body)?;

    let letter = LetterIn { tenant: caller.tenant, mailing_id: &req.mailing_id, recipient: &req.recipient, meta };
    let urls: Vec<(String, usize)> = urls.into_iter().enumerate().map(|(i, u)| (u, i)).collect();
    let tokens = mint_letter(st, letter, &urls, req.pixel, idem).await?;
    let base = &st.public_url;
    let links =
        req.links.iter().zip(&tokens).map(|(l, t)| LinkOut { url: &l.url, token: t, tracking_url: format!("{base}/c/{t}") }).collect();
    let pixel = req.pixel.then(|| {
        let t = tokens.last().map_or("", String::as_str);
        PixelOut { token: t, tracking_url: format!("{base}/o/{t}") }
    });
    let json = serde_json::to_string(&MintResponse { links, pixel }).map_err(crate::Error::Json)?;
    Ok((StatusCode::CREATED, json))
}

#[cfg(test)]
mod tests {
    use super::*;

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
