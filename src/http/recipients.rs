//! `DELETE /v1/recipients`: erase one recipient from the caller's tenant
//! (GDPR Art. 17). Needs the `admin` scope: erasure destroys data, and the
//! `read` keys of analytics jobs should not be able to.
//!
//! The recipient's address and the letter's meta are blanked in every letter
//! of the tenant in every day still kept; the letters' links keep
//! redirecting (an old email must still work), and their events, which name
//! the letter rather than the person, export with an empty recipient. The
//! answer is the number of letters changed; repeating the call changes
//! nothing and answers 0.

use bytes::Bytes;
use http::StatusCode;
use serde::Deserialize;

use crate::http::AppState;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::link::MAX_RECIPIENT_BYTES;
use crate::store::Store;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EraseRequest {
    recipient: String,
}

/// Erase the recipient named by `body` from `caller`'s tenant.
pub async fn erase<S: Store>(st: &AppState<S>, caller: &Caller, body: &Bytes) -> Result<(StatusCode, String), ApiError> {
    let req: EraseRequest = serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    if req.recipient.is_empty() || req.recipient.len() > MAX_RECIPIENT_BYTES {
        return Err(ApiError::invalid(format!("recipient must be 1 to {MAX_RECIPIENT_BYTES} bytes")));
    }
    let letters = st.store.erase_recipient(caller.tenant, &req.recipient).await?;
    tracing::info!(tenant = caller.tenant.0, letters, "recipient erased");
    Ok((StatusCode::OK, serde_json::json!({ "letters": letters }).to_string()))
}
