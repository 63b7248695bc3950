//! `GET /openapi.json`: the API contract. `docs/openapi.yaml` is compiled
//! into the binary and converted to JSON once, on first use, so the file in
//! the repository and the document served are the same thing.
//! [`ROUTES`] lists what the router answers; the unit test below holds it
//! equal to the document's paths and methods, and `tests/openapi.rs` sends
//! every one of them to a live server.

use std::sync::LazyLock;

/// The document as kept in the repository.
pub const YAML: &str = include_str!("../../docs/openapi.yaml");

/// Every path the router serves (in the document's templated form) and its
/// methods, lower case. `HEAD` is listed where it is part of the contract
/// (redirects and pixels); the probes also answer it, as HTTP allows.
pub const ROUTES: &[(&str, &[&str])] = &[
    ("/v1/links", &["post"]),
    ("/v1/rewrite", &["post"]),
    ("/c/{token}", &["get", "head"]),
    ("/o/{token}", &["get", "head"]),
    ("/v1/mailings/{mailing_id}/stats", &["get"]),
    ("/v1/mailings/{mailing_id}/series", &["get"]),
    ("/report/{mailing_id}", &["get"]),
    ("/assets/{name}", &["get"]),
    ("/v1/events", &["get"]),
    ("/v1/recipients", &["delete"]),
    ("/v1/webhooks", &["get", "post"]),
    ("/v1/webhooks/{id}", &["delete", "get"]),
    ("/v1/webhooks/{id}/pause", &["post"]),
    ("/v1/webhooks/{id}/resume", &["post"]),
    ("/v1/webhooks/{id}/rotate", &["post"]),
    ("/healthz", &["get"]),
    ("/readyz", &["get"]),
    ("/metrics", &["get"]),
    ("/openapi.json", &["get"]),
];

static JSON: LazyLock<Result<String, String>> = LazyLock::new(|| {
    yaml_serde::from_str::<serde_json::Value>(YAML).map(|v| v.to_string()).map_err(|e| format!("docs/openapi.yaml does not parse: {e}"))
});

/// The document as JSON.
pub fn json() -> Result<&'static str, &'static str> {
    JSON.as_ref().map(String::as_str).map_err(String::as_str)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn document_parses_as_openapi_3_1() {
        let doc: serde_json::Value = serde_json::from_str(json().expect("parses")).expect("json");
        assert_eq!(doc["openapi"], "3.1.0");
        assert!(doc["paths"].as_object().is_some_and(|p| !p.is_empty()));
    }

    #[test]
    fn every_route_is_documented_and_every_documented_path_is_routed() {
        let doc: serde_json::Value = serde_json::from_str(json().expect("parses")).expect("json");
        let methods = ["get", "head", "post", "put", "delete", "patch", "options"];
        let documented: BTreeSet<(String, String)> = doc["paths"]
            .as_object()
            .expect("paths")
            .iter()
            .flat_map(|(path, item)| methods.iter().filter(|m| item.get(**m).is_some()).map(move |m| (path.clone(), (*m).to_owned())))
            .collect();
        let routed: BTreeSet<(String, String)> =
            ROUTES.iter().flat_map(|(path, ms)| ms.iter().map(move |m| ((*path).to_owned(), (*m).to_owned()))).collect();
        assert_eq!(routed.difference(&documented).collect::<Vec<_>>(), Vec::<&(String, String)>::new(), "routed but not documented");
        assert_eq!(documented.difference(&routed).collect::<Vec<_>>(), Vec::<&(String, String)>::new(), "documented but not routed");
    }
}
