//! `GET|HEAD /c/<token>` (302 to the minted URL) and `/o/<token>` (1x1 GIF).
//!
//! The order is the whole point: the token's MAC is verified first, so
//! forged, garbage and malformed tokens cost no cache or database work; the
//! token's day then rejects expired links (fallback or 404) with no query;
//! only then the cache, the negative cache, and finally one single-partition
//! store lookup.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;

use crate::Error;
use crate::cache::CachedLink;
use crate::http::AppState;
use crate::http::error::{ApiError, Body};
use crate::partitions::oldest_kept;
use crate::store::{LinkKind, Store};
use crate::token;

/// The 43-byte transparent 1x1 GIF.
pub const PIXEL_GIF: &[u8; 43] = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff\x21\xf9\x04\x01\x00\x00\x00\x00\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00\x3b";

const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");
const NO_REFERRER: HeaderValue = HeaderValue::from_static("no-referrer");

fn redirect(location: HeaderValue) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::FOUND;
    let h = resp.headers_mut();
    h.insert(LOCATION, location);
    h.insert(CACHE_CONTROL, NO_STORE);
    h.insert("referrer-policy", NO_REFERRER);
    resp
}

fn pixel() -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from_static(PIXEL_GIF)));
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("image/gif"));
    h.insert(CONTENT_LENGTH, HeaderValue::from_static("43"));
    h.insert(CACHE_CONTROL, NO_STORE);
    resp
}

/// Answer a click or open for `raw` (the path segment after `/c/` or `/o/`).
pub async fn follow<S: Store>(st: &AppState<S>, want: LinkKind, raw: &str) -> Response<Body> {
    let today = st.clock.today();
    let parsed = match token::parse(raw.as_bytes(), &st.keys, today) {
        Ok(p) => p,
        Err(e) => {
            tracing::trace!(token = %token::shorten(raw), error = %e, "rejected token");
            return ApiError::not_found().into_response();
        }
    };
    if parsed.day < oldest_kept(today, st.retention_days) {
        return match &st.fallback {
            Some(url) => redirect(url.clone()),
            None => ApiError::new(StatusCode::NOT_FOUND, "expired", "this link has expired").into_response(),
        };
    }
    let link = match lookup(st, parsed.day, parsed.random).await {
        Ok(Some(link)) => link,
        Ok(None) => return ApiError::not_found().into_response(),
        // The MAC proves we minted this pixel; an image must render even when the store is down.
        Err(_) if want == LinkKind::Open => return pixel(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    match (want, link.kind) {
        (LinkKind::Click, LinkKind::Click) => match HeaderValue::from_maybe_shared(link.location) {
            Ok(v) => redirect(v),
            Err(_) => ApiError::from(Error::Database("stored url is not a valid header".into())).into_response(),
        },
        (LinkKind::Open, LinkKind::Open) => pixel(),
        _ => ApiError::not_found().into_response(),
    }
}

/// Cache, then negative cache, then one store lookup that fills one of them.
async fn lookup<S: Store>(st: &AppState<S>, day: crate::day::Day, random: token::Random) -> crate::Result<Option<CachedLink>> {
    if let Some(hit) = st.cache.get(day, &random) {
        return Ok(Some(hit));
    }
    if st.negative.contains(day, &random) {
        return Ok(None);
    }
    let Some(r) = st.store.resolve(day, &random).await? else {
        st.negative.insert(day, random);
        return Ok(None);
    };
    let location = r.url.as_deref().map_or_else(Bytes::new, |u| Bytes::copy_from_slice(u.as_bytes()));
    let link = CachedLink { kind: r.kind, location };
    st.cache.insert(day, random, link.clone());
    Ok(Some(link))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixel_is_a_43_byte_gif() {
        assert_eq!(PIXEL_GIF.len(), 43);
        assert!(PIXEL_GIF.starts_with(b"GIF89a"));
        assert_eq!(PIXEL_GIF[42], 0x3b);
    }
}
