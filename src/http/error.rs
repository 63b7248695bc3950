//! HTTP errors: the one place a crate [`Error`] becomes a status code, and
//! every error body is the small JSON `{"error", "message"}`.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{Either, Full};

use crate::Error;
use crate::tenant::Scope;

/// Every response body: a whole buffer, or a stream (the event export).
pub type Body = Either<Full<Bytes>, UnsyncBoxBody<Bytes, std::io::Error>>;

/// A body of one buffer.
pub fn full(b: impl Into<Bytes>) -> Body {
    Either::Left(Full::new(b.into()))
}

/// An error answer: status, a stable machine code and a human message.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// For batch validation errors: the offending item's index.
    pub index: Option<usize>,
    /// For `405`: the `Allow` header.
    pub allow: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), index: None, allow: None }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message)
    }

    pub fn not_found() -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", "unknown or invalid token")
    }

    /// A valid key without the scope the request needs.
    pub fn forbidden(scope: Scope) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", format!("this API key lacks the `{}` scope", scope.name()))
    }

    /// `405` with `Allow`.
    pub fn method_not_allowed(allow: &'static str) -> ApiError {
        ApiError { allow: Some(allow), ..ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", format!("allowed: {allow}")) }
    }

    pub fn unauthorized() -> ApiError {
        // Which key was tried is never logged: a wrong key is often a real one with a typo.
        crate::log_limited!(warn, "API request without a valid API key");
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "a valid `Authorization: Bearer <key>` header is required")
    }

    #[must_use]
    pub fn at(mut self, index: usize) -> ApiError {
        self.index = Some(index);
        self
    }

    pub fn into_response(self) -> Response<Body> {
        let mut body = serde_json::json!({ "error": self.code, "message": self.message });
        if let Some(i) = self.index {
            body["index"] = i.into();
        }
        let mut resp = Response::new(full(body.to_string()));
        *resp.status_mut() = self.status;
        let h = resp.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        h.insert(http::header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        match self.status {
            StatusCode::SERVICE_UNAVAILABLE => {
                h.insert(RETRY_AFTER, HeaderValue::from_static("1"));
            }
            StatusCode::UNAUTHORIZED => {
                h.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            StatusCode::METHOD_NOT_ALLOWED => {
                if let Some(allow) = self.allow {
                    h.insert(http::header::ALLOW, HeaderValue::from_static(allow));
                }
            }
            _ => {}
        }
        resp
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        match e {
            Error::Unavailable(msg) => {
                crate::log_limited!(warn, error = %msg, "store unavailable");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the database is unavailable; retry shortly")
            }
            Error::NoPartition(day) => {
                crate::log_limited!(error, %day, "insert for a day with no partition: is partition maintenance running?");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "storage for today is not ready; retry shortly")
            }
            Error::IdempotencyMismatch => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_mismatch",
                "this Idempotency-Key was used with a different request body",
            ),
            other => {
                crate::log_limited!(error, error = %other, "internal error");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::day::ClockOutOfRange;

    #[test]
    fn faults_of_the_service_are_internal_errors() {
        let json = serde_json::from_str::<serde_json::Value>("{").unwrap_err();
        let faults = [
            Error::Json(json),
            Error::MalformedBatch("id"),
            Error::Database("bad row".into()),
            Error::Clock(ClockOutOfRange { unix_secs: 0 }),
        ];
        for e in faults {
            let shown = e.to_string();
            let api = ApiError::from(e);
            assert_eq!((api.status, api.code), (StatusCode::INTERNAL_SERVER_ERROR, "internal"), "{shown}");
        }
        assert_eq!(ApiError::from(Error::Unavailable("slow".into())).status, StatusCode::SERVICE_UNAVAILABLE);
    }
}
