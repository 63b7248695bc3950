//! `/v1/webhooks`: a tenant's webhook endpoints. Creating, deleting,
//! pausing, resuming and rotating need the `admin` scope (an endpoint sends
//! the tenant's data out); listing and reading state need `read`.
//!
//! - `POST /v1/webhooks` `{"url", "filters"?, "start"?}` → `201` with the
//!   endpoint and its `secret`, shown only in this answer. `start` is `"now"`
//!   (default: events not yet settled, i.e. from the rollup watermark on),
//!   `"beginning"`, or an export `cursor` to replay from.
//! - `GET /v1/webhooks`, `GET /v1/webhooks/<id>`: state (cursor, lag, last
//!   success and error, paused).
//! - `DELETE /v1/webhooks/<id>`.
//! - `POST /v1/webhooks/<id>/pause`, `.../resume`, `.../rotate`
//!   (`{"overlap_secs"?}`, default 86400: both secrets sign meanwhile).

use bytes::Bytes;
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::events::Cursor;
use crate::events::export::rfc3339_ms;
use crate::http::AppState;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::store::Store;
use crate::tenant::Scope;
use crate::webhooks::deliver::check_url;
use crate::webhooks::{Change, Filters, Webhook, WebhookSecret};

/// Endpoints one tenant may have.
pub const MAX_ENDPOINTS_PER_TENANT: usize = 20;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRequest {
    url: String,
    #[serde(default)]
    filters: Filters,
    #[serde(default)]
    start: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RotateRequest {
    #[serde(default)]
    overlap_secs: Option<u32>,
}

fn state(w: &Webhook) -> Value {
    json!({
        "id": w.id,
        "url": w.url,
        "filters": w.filters,
        "cursor": w.cursor.encode(),
        "paused": w.paused,
        "lag_events": w.lag_events,
        "lag_seconds": crate::webhooks::deliver::secs(w.lag_ms),
        "last_success": w.last_success_ms.map(rfc3339_ms),
        "last_error": w.last_error,
        "failing_since": w.failing_since_ms.map(rfc3339_ms),
    })
}

fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no webhook endpoint with this id")
}

fn need(caller: &Caller, scope: Scope) -> Result<(), ApiError> {
    if caller.may(scope) { Ok(()) } else { Err(ApiError::forbidden(scope)) }
}

/// Route one `/v1/webhooks...` request; `rest` is the path after `/v1/webhooks`.
pub async fn handle<S: Store>(
    st: &AppState<S>,
    caller: &Caller,
    method: &http::Method,
    rest: &str,
    body: Option<Bytes>,
) -> Result<(StatusCode, String), ApiError> {
    let parts: Vec<&str> = rest.trim_start_matches('/').split('/').filter(|p| !p.is_empty()).collect();
    let allow = match parts.as_slice() {
        [] => "GET, POST",
        [_] => "GET, DELETE",
        [_, "pause" | "resume" | "rotate"] => "POST",
        _ => return Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")),
    };
    if !allow.split(", ").any(|m| m == method.as_str()) {
        return Err(ApiError::method_not_allowed(allow));
    }
    let id = |p: &str| p.parse::<u32>().map_err(|_| not_found());
    match (method, parts.as_slice()) {
        (&http::Method::POST, []) => {
            need(caller, Scope::Admin)?;
            create(st, caller, &body.unwrap_or_default()).await
        }
        (&http::Method::GET, []) => {
            need(caller, Scope::Read)?;
            let list: Vec<Value> = st.store.webhooks(Some(caller.tenant)).await?.iter().map(state).collect();
            Ok((StatusCode::OK, json!({ "webhooks": list }).to_string()))
        }
        (&http::Method::GET, [raw]) => {
            need(caller, Scope::Read)?;
            let w = find(st, caller, id(raw)?).await?;
            Ok((StatusCode::OK, state(&w).to_string()))
        }
        (&http::Method::DELETE, [raw]) => {
            need(caller, Scope::Admin)?;
            let id = id(raw)?;
            if !st.store.delete_webhook(caller.tenant, id).await? {
                return Err(not_found());
            }
            Ok((StatusCode::OK, json!({ "id": id, "deleted": true }).to_string()))
        }
        (&http::Method::POST, [raw, action @ ("pause" | "resume" | "rotate")]) => {
            need(caller, Scope::Admin)?;
            let id = id(raw)?;
            let (change, secret) = match *action {
                "pause" => (Change::Pause, None),
                "resume" => (Change::Resume, None),
                _ => {
                    let body = body.unwrap_or_default();
                    let req: RotateRequest = if body.is_empty() {
                        RotateRequest::default()
                    } else {
                        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?
                    };
                    let overlap = i64::from(req.overlap_secs.unwrap_or(86_400).min(7 * 86_400));
                    let new = WebhookSecret::generate();
                    (Change::RotateSecret { new: new.clone(), old_until_ms: st.clock.now_ms() + overlap * 1000 }, Some(new))
                }
            };
            if !st.store.change_webhook(caller.tenant, id, &change).await? {
                return Err(not_found());
            }
            let w = find(st, caller, id).await?;
            let mut body = state(&w);
            if let Some(secret) = secret {
                body["secret"] = json!(secret.0);
                body["old_secret_valid_until"] = json!(rfc3339_ms(w.old_secret_until_ms));
            }
            Ok((StatusCode::OK, body.to_string()))
        }
        _ => Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")),
    }
}

async fn find<S: Store>(st: &AppState<S>, caller: &Caller, id: u32) -> Result<Webhook, ApiError> {
    st.store.webhooks(Some(caller.tenant)).await?.into_iter().find(|w| w.id == id).ok_or_else(not_found)
}

async fn create<S: Store>(st: &AppState<S>, caller: &Caller, body: &Bytes) -> Result<(StatusCode, String), ApiError> {
    let req: CreateRequest = serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    if req.url.len() > crate::link::MAX_URL_BYTES {
        return Err(ApiError::invalid(format!("url is longer than {} bytes", crate::link::MAX_URL_BYTES)));
    }
    let url = check_url(&req.url, st.webhook_allow_private).await.map_err(|m| ApiError::invalid(format!("url: {m}")))?;
    req.filters.validate().map_err(ApiError::invalid)?;
    let cursor = match req.start.as_deref() {
        None | Some("now") => st.store.rollup_state().await?.watermark,
        Some("beginning") => Cursor::START,
        Some(c) => Cursor::decode(c).ok_or_else(|| ApiError::invalid("start must be \"now\", \"beginning\" or an export cursor"))?,
    };
    if st.store.webhooks(Some(caller.tenant)).await?.len() >= MAX_ENDPOINTS_PER_TENANT {
        return Err(ApiError::invalid(format!("a tenant has at most {MAX_ENDPOINTS_PER_TENANT} webhook endpoints")));
    }
    let secret = WebhookSecret::generate();
    let mut w = Webhook::new(caller.tenant, url.to_string(), secret.clone(), req.filters, cursor, st.clock.now_unix());
    w.id = st.store.create_webhook(&w).await?;
    let mut body = state(&w);
    body["secret"] = json!(secret.0);
    Ok((StatusCode::CREATED, body.to_string()))
}
