//! `GET /report/<mailing_id>`: the report page, and the two assets it
//! loads from `/assets/`. All three are compiled into the binary (no CDN, no
//! build step) and hold no data: the page asks for a `read` key and fetches
//! the mailing's stats and series from the API with it, so serving it needs
//! no authentication. A strict Content-Security-Policy keeps every request
//! the page can make on this origin and forbids inline script.

use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderName, HeaderValue};
use http::{Response, StatusCode};

use crate::http::error::{ApiError, Body, full};

/// The page shell.
pub const HTML: &str = include_str!("report/report.html");
/// Its script.
pub const JS: &str = include_str!("report/report.js");
/// Its style sheet.
pub const CSS: &str = include_str!("report/report.css");

/// Everything the page may load or call: this origin only, no inline script,
/// no framing, no forms posted elsewhere.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn page(content_type: &'static str, body: &'static str) -> Response<Body> {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = StatusCode::OK;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(HeaderName::from_static("content-security-policy"), HeaderValue::from_static(CSP));
    h.insert(HeaderName::from_static("x-content-type-options"), HeaderValue::from_static("nosniff"));
    h.insert(HeaderName::from_static("referrer-policy"), HeaderValue::from_static("no-referrer"));
    h.insert(HeaderName::from_static("x-frame-options"), HeaderValue::from_static("DENY"));
    resp
}

/// The answer for `path` if it is the page (any mailing id: the page reads
/// it from its own path) or an asset; `None` for every other path.
/// `read` is whether the method is `GET` or `HEAD`.
pub fn route(path: &str, read: bool) -> Option<Response<Body>> {
    let found = if path.strip_prefix("/report/").is_some_and(|r| !r.is_empty() && !r.contains('/')) {
        Some(("text/html; charset=utf-8", HTML))
    } else if let Some(name) = path.strip_prefix("/assets/") {
        match name {
            "report.js" => Some(("text/javascript; charset=utf-8", JS)),
            "report.css" => Some(("text/css; charset=utf-8", CSS)),
            _ => return Some(ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint").into_response()),
        }
    } else {
        None
    };
    found
        .map(|(content_type, body)| if read { page(content_type, body) } else { ApiError::method_not_allowed("GET, HEAD").into_response() })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The page loads nothing from elsewhere: no absolute URL but the SVG
    /// namespace name (an identifier, never fetched), no inline script or style.
    #[test]
    fn the_page_names_no_other_origin_and_inlines_no_script() {
        for (name, text) in [("html", HTML), ("js", JS), ("css", CSS)] {
            let absolute = text.matches("http://").count() + text.matches("https://").count();
            assert_eq!(absolute, text.matches("http://www.w3.org/2000/svg").count(), "{name} names another origin");
            for relative in ["\"//", "'//", "(//", "@import"] {
                assert!(!text.contains(relative), "{name} has {relative}");
            }
        }
        assert!(!HTML.contains("<script>") && !HTML.contains("style="), "inline script or style would need 'unsafe-inline'");
        assert!(HTML.contains(r#"<script src="/assets/report.js" defer></script>"#));
    }
}
