//! `POST /v1/rewrite`: a whole letter in, the tracked letter out.
//!
//! The finding, classifying and splicing is `crate::rewrite` (pure, no
//! I/O); this file checks the request, runs the scan off the request
//! threads, mints the letter's links through the one mint path
//! (`mint::mint_letter`: one batch, one transaction, idempotent with the
//! key, durable before the answer) and renders the result. A refused letter
//! (`422` naming the link and its position) mints nothing.

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};

use crate::http::AppState;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::mint::{LetterIn, idempotency, mint_letter, validate_letter};
use crate::rewrite::{self, Rules};
use crate::store::Store;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RewriteRequest {
    pub mailing_id: String,
    pub recipient: String,
    #[serde(default)]
    pub meta: Option<serde_json::Value>,
    /// The letter's HTML body, already decoded from quoted-printable or base64.
    pub html: String,
    #[serde(default)]
    pub pixel: bool,
    /// Hosts (and their subdomains) whose links stay untracked.
    #[serde(default)]
    pub exclude_domains: Vec<String>,
    /// Track unsubscribe links too (default: leave them untouched).
    #[serde(default)]
    pub track_unsubscribe: bool,
}

#[derive(Debug, Serialize)]
struct LinkOut<'a> {
    url: &'a str,
    token: &'a str,
    tracking_url: String,
    position: usize,
}

#[derive(Debug, Serialize)]
struct PixelOut<'a> {
    token: &'a str,
    tracking_url: String,
}

#[derive(Debug, Serialize)]
struct RewriteResponse<'a> {
    html: String,
    links: Vec<LinkOut<'a>>,
    pixel: Option<PixelOut<'a>>,
}

/// Most hosts in `exclude_domains`.
const MAX_EXCLUDE_DOMAINS: usize = 100;

/// Handle an authenticated rewrite whose body has been read.
#[tracing::instrument(skip_all, fields(links, html_bytes))]
pub async fn rewrite<S: Store>(
    st: &AppState<S>,
    headers: &HeaderMap,
    caller: &Caller,
    body: &Bytes,
) -> Result<(StatusCode, String), ApiError> {
    let req: RewriteRequest = serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    tracing::Span::current().record("html_bytes", req.html.len());
    if req.html.len() > st.limits.max_html_bytes {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("html is {} bytes; the limit is {}", req.html.len(), st.limits.max_html_bytes),
        ));
    }
    let meta = validate_letter(&req.mailing_id, &req.recipient, req.meta.as_ref())?;
    if req.exclude_domains.len() > MAX_EXCLUDE_DOMAINS {
        return Err(ApiError::invalid(format!("exclude_domains has {} hosts; at most {MAX_EXCLUDE_DOMAINS}", req.exclude_domains.len())));
    }
    let idem = idempotency(headers, &caller.digest, body)?;
    let rules = Rules { exclude_domains: req.exclude_domains, track_unsubscribe: req.track_unsubscribe, max_links: st.limits.max_links };

    // A megabyte letter takes milliseconds to scan: not on a request thread.
    let html = req.html;
    let (html, scan) = tokio::task::spawn_blocking(move || {
        let scan = rewrite::scan(&html, &rules);
        (html, scan)
    })
    .await
    .map_err(|source| crate::Error::Task { what: "rewrite scan", source })?;
    let scan = scan.map_err(|e| {
        let err = ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_link", e.to_string());
        match e.position() {
            Some(p) => err.at(p),
            None => err,
        }
    })?;
    tracing::Span::current().record("links", scan.links.len());

    let tokens = if scan.links.is_empty() && !req.pixel {
        Vec::new()
    } else {
        let urls: Vec<(String, usize)> = scan.links.iter().map(|l| (l.stored.clone(), l.position)).collect();
        let letter = LetterIn { tenant: caller.tenant, mailing_id: &req.mailing_id, recipient: &req.recipient, meta };
        mint_letter(st, letter, &urls, req.pixel, idem).await?
    };
    let base = &st.public_url;
    let tracking: Vec<String> = tokens.iter().take(scan.links.len()).map(|t| format!("{base}/c/{t}")).collect();
    let pixel = req.pixel.then(|| {
        let t = tokens.last().map_or("", String::as_str);
        PixelOut { token: t, tracking_url: format!("{base}/o/{t}") }
    });
    let out = rewrite::render(&html, &scan, &tracking, pixel.as_ref().map(|p| p.tracking_url.as_str()));
    let links = scan
        .links
        .iter()
        .zip(&tokens)
        .zip(tracking)
        .map(|((l, t), tracking_url)| LinkOut { url: &l.url, token: t, tracking_url, position: l.position })
        .collect();
    let json = serde_json::to_string(&RewriteResponse { html: out, links, pixel }).map_err(crate::Error::Json)?;
    Ok((StatusCode::OK, json))
}
