//! `GET /v1/mailings/<mailing_id>/stats`: rolled-up click and open counts
//! of one mailing, per URL, split by verdict. Served from the running
//! totals; never counts raw events.

use http::StatusCode;
use percent_encoding::percent_decode_str;

use crate::events::Counts;
use crate::events::export::rfc3339_ms;
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::link::MAX_MAILING_ID_BYTES as MAX_MAILING_ID;
use crate::store::Store;
use crate::tenant::TenantId;

fn counts(c: &Counts) -> serde_json::Value {
    serde_json::json!({ "total": c.total(), "unique": c.unique, "human": c.human, "bot": c.bot, "suspect": c.suspect })
}

/// `raw_id` is the percent-encoded path segment.
/// Another tenant's mailing is a `404`, exactly like one that does not exist.
pub async fn mailing_stats<S: Store>(st: &AppState<S>, tenant: TenantId, raw_id: &str) -> Result<(StatusCode, String), ApiError> {
    let id = percent_decode_str(raw_id).decode_utf8().map_err(|_| ApiError::bad_request("mailing id is not valid UTF-8"))?;
    if id.is_empty() || id.len() > MAX_MAILING_ID {
        return Err(ApiError::bad_request(format!("mailing id must be 1 to {MAX_MAILING_ID} bytes")));
    }
    let stats = st
        .store
        .mailing_stats(tenant, &id)
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", "no mailing with this id"))?;
    let links: Vec<serde_json::Value> = stats.links.iter().map(|(url, c)| serde_json::json!({ "url": url, "clicks": counts(c) })).collect();
    let body = serde_json::json!({
        "mailing_id": id,
        "links": links,
        "opens": counts(&stats.opens),
        "as_of": rfc3339_ms(stats.as_of_ms),
    });
    Ok((StatusCode::OK, body.to_string()))
}
