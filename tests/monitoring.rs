//! The monitoring files name only what the server exports: every metric in
//! an alert rule (`k8s/monitoring/linktrack.rules.yaml`) or a dashboard query
//! (`k8s/monitoring/linktrack-dashboard.json`) must appear on `/metrics` of
//! the real binary, parsed as Prometheus text (histogram `_bucket`, `_sum`
//! and `_count` count as their family), on the embedded store or on MariaDB
//! (the pool series exist only with a pool, on MySQL). Every alert must link a runbook
//! whose anchor is a heading of `docs/operations.md`. Metric names come out
//! of the Prometheus queries with a small tokenizer (tested here too): string literals,
//! label matchers and ranges removed, then every identifier that is not a
//! function, a keyword or a `by (...)` label list is a metric name.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::process::Service;

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo_file(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

const RULES: &str = "k8s/monitoring/linktrack.rules.yaml";
const DASHBOARD: &str = "k8s/monitoring/linktrack-dashboard.json";
const RUNBOOKS: &str = "docs/operations.md";

/// Identifiers that are query syntax, not metrics.
const KEYWORDS: &[&str] =
    &["by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset", "atan2", "inf", "nan"];
/// Keywords followed by a parenthesised list of label names.
const LABEL_LISTS: &[&str] = &["by", "without", "on", "ignoring", "group_left", "group_right"];

/// The metric names a Prometheus expression (or a Grafana `label_values(...)` query) reads.
fn metric_names(expr: &str) -> BTreeSet<String> {
    // Drop string literals, label matchers `{...}` and ranges `[...]`.
    let mut cleaned = String::new();
    let (mut quote, mut braces, mut brackets) = (None::<char>, 0u32, 0u32);
    let mut escaped = false;
    for c in expr.chars() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' | '`' => quote = Some(c),
            '{' => braces += 1,
            '}' => braces = braces.saturating_sub(1),
            '[' => brackets += 1,
            ']' => brackets = brackets.saturating_sub(1),
            _ if braces == 0 && brackets == 0 => cleaned.push(c),
            _ => {}
        }
        if matches!(c, '{' | '[') {
            cleaned.push(' ');
        }
    }
    // Tokens: identifiers, numbers (with units or exponents), `$variables`, single punctuation.
    let chars: Vec<char> = cleaned.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' || c == ':' || c == '$' || c.is_ascii_digit() || c == '.' {
            i += 1;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '_' | ':' | '.')) {
                i += 1;
            }
        } else {
            i += 1;
        }
        tokens.push(chars[start..i].iter().collect::<String>());
    }
    let mut names = BTreeSet::new();
    let mut t = 0;
    while t < tokens.len() {
        let tok = &tokens[t];
        // A function call, or an aggregation written `sum by (le) (...)`.
        let next_is_paren = tokens.get(t + 1).is_some_and(|n| n == "(" || n == "by" || n == "without");
        let first = tok.chars().next().unwrap_or(' ');
        let ident = first.is_ascii_alphabetic() || first == '_' || first == ':';
        if !ident {
            t += 1;
            continue;
        }
        let lower = tok.to_ascii_lowercase();
        if LABEL_LISTS.contains(&lower.as_str()) && tokens.get(t + 1).is_some_and(|n| n == "(") {
            // Skip `by (a, b)`.
            t += 2;
            while t < tokens.len() && tokens[t] != ")" {
                t += 1;
            }
            t += 1;
            continue;
        }
        if tok == "label_values" && next_is_paren {
            // label_values(metric, label): only the first argument is a metric.
            if let Some(m) = tokens.get(t + 2).filter(|m| m.as_str() != ")" && m.as_str() != ",") {
                names.insert(m.clone());
            }
            while t < tokens.len() && tokens[t] != ")" {
                t += 1;
            }
            t += 1;
            continue;
        }
        if !next_is_paren && !KEYWORDS.contains(&lower.as_str()) {
            names.insert(tok.clone());
        }
        t += 1;
    }
    names
}

/// The value of every `key:` in a YAML file, block scalars (`|`, `>`) joined.
fn yaml_values(text: &str, key: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let Some(rest) = trimmed.strip_prefix(key).and_then(|r| r.strip_prefix(':')) else { continue };
        let value = rest.trim();
        if value.starts_with('|') || value.starts_with('>') {
            let indent = line.len() - trimmed.len();
            let block: Vec<&str> = lines[n + 1..]
                .iter()
                .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent)
                .map(|l| l.trim())
                .collect();
            out.push(block.join("\n"));
        } else {
            out.push(value.trim_matches(|c| c == '"' || c == '\'').to_owned());
        }
    }
    out
}

/// Every Prometheus query of the Grafana dashboard: panel targets and query variables.
fn dashboard_queries(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, child) in map {
                match (k.as_str(), child) {
                    ("expr", serde_json::Value::String(s)) => out.push(s.clone()),
                    ("query", serde_json::Value::Object(q)) => {
                        if let Some(serde_json::Value::String(s)) = q.get("query") {
                            out.push(s.clone());
                        }
                    }
                    _ => dashboard_queries(child, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|i| dashboard_queries(i, out)),
        _ => {}
    }
}

/// GitHub's anchor for a Markdown heading.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// Metric names a scrape exports, histogram families under their base name too.
fn exported(text: &str) -> BTreeSet<String> {
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("Prometheus text format");
    let mut names: BTreeSet<String> = scrape.samples.iter().map(|s| s.metric.clone()).collect();
    names.extend(scrape.docs.keys().cloned());
    names
}

fn is_exported(name: &str, exported: &BTreeSet<String>) -> bool {
    exported.contains(name)
        || ["_bucket", "_sum", "_count"].iter().any(|suffix| name.strip_suffix(suffix).is_some_and(|base| exported.contains(base)))
}

#[tokio::test]
async fn every_metric_in_the_alerts_and_the_dashboard_is_exported() {
    let rules = read(RULES);
    let exprs = yaml_values(&rules, "expr");
    assert!(exprs.len() >= 7, "{RULES}: expected an expression per alert, found {}", exprs.len());
    let dashboard: serde_json::Value = serde_json::from_str(&read(DASHBOARD)).expect("dashboard is JSON");
    let mut queries = Vec::new();
    dashboard_queries(&dashboard, &mut queries);
    assert!(queries.len() >= 10, "{DASHBOARD}: expected panel queries, found {}", queries.len());

    let mut wanted: Vec<(String, &str)> = Vec::new();
    for e in &exprs {
        wanted.extend(metric_names(e).into_iter().map(|n| (n, RULES)));
    }
    for q in &queries {
        wanted.extend(metric_names(q).into_iter().map(|n| (n, DASHBOARD)));
    }
    for must in ["linktrack_events_dropped_total", "linktrack_spool_bytes", "linktrack_http_request_duration_seconds_bucket"] {
        assert!(wanted.iter().any(|(n, _)| n == must), "the extractor found no {must}: {wanted:?}");
    }

    let data = tempfile::tempdir().expect("temp dir");
    let sqlite = format!("sqlite://{}", data.path().join("linktrack.db").display());
    let mysql = common::mariadb::fresh_database("monitoring").await;
    let mut have = BTreeSet::new();
    for (db, dir) in [(sqlite, data.path().join("embedded")), (mysql, data.path().join("mysql"))] {
        let svc = Service::spawn(&db, &dir, &[]);
        let mut client = common::client::Client::new(svc.addr);
        let reply = client.get("/metrics").await;
        assert_eq!(reply.status, 200, "GET /metrics");
        let text = String::from_utf8(reply.body.to_vec()).expect("utf-8 metrics");
        let (status, log) = svc.terminate().await;
        assert!(status.success(), "linktrack exited with {status}:\n{log}");
        have.extend(exported(&text));
    }
    for pool in
        ["linktrack_db_pool_in_use", "linktrack_db_pool_acquire_seconds", "linktrack_db_statements_total", "linktrack_rollup_lag_seconds"]
    {
        assert!(have.contains(pool), "{pool} is not exported by either store: {have:?}");
    }
    let missing: BTreeSet<String> =
        wanted.iter().filter(|(n, _)| !is_exported(n, &have)).map(|(n, file)| format!("{n} (in {file})")).collect();
    assert!(missing.is_empty(), "named by the monitoring files but not exported on /metrics: {missing:?}\n/metrics exports: {have:?}");
}

#[test]
fn every_alert_links_a_runbook_heading_in_the_operations_doc() {
    let rules = read(RULES);
    let alerts = yaml_values(&rules, "- alert");
    let runbooks = yaml_values(&rules, "runbook_url");
    assert!(alerts.len() >= 7, "alerts found: {alerts:?}");
    assert_eq!(alerts.len(), runbooks.len(), "one runbook_url per alert: {alerts:?} / {runbooks:?}");
    let doc = read(RUNBOOKS);
    let anchors: BTreeSet<String> = doc.lines().filter_map(|l| l.strip_prefix('#')).map(|h| slug(h.trim_start_matches('#'))).collect();
    for url in &runbooks {
        let (page, anchor) = url.split_once('#').unwrap_or_else(|| panic!("runbook_url without an anchor: {url}"));
        assert!(page.ends_with(RUNBOOKS), "runbook_url {url} does not point at {RUNBOOKS}");
        assert!(anchors.contains(anchor), "{RUNBOOKS} has no heading for #{anchor} (from {url})");
    }
}

#[test]
fn the_promql_tokenizer_finds_metrics_and_nothing_else() {
    let names = |e: &str| metric_names(e).into_iter().collect::<Vec<_>>();
    assert_eq!(names(r#"histogram_quantile(0.99, sum by (le) (rate(x_bucket{route="redirect",le=~"0.1|+Inf"}[5m])))"#), ["x_bucket"]);
    assert_eq!(names("a > 0 and delta(b[10m]) > 0 or on (instance) c offset 5m"), ["a", "b", "c"]);
    assert_eq!(names(r#"sum without (job) (rate(a{job=~"$job"}[$__rate_interval])) / ignoring (x) group_left (y) b"#), ["a", "b"]);
    assert_eq!(names("label_values(linktrack_build_info, job)"), ["linktrack_build_info"]);
    assert_eq!(names(r#"absent(up{x="}"} >= 0) * 1e3"#), ["up"]);
    assert_eq!(names("max(m) < bool 2"), ["m"]);
    assert_eq!(names("count by (version) (a) + topk without (x) (3, b)"), ["a", "b"]);
}

#[test]
fn histogram_suffixes_count_as_their_family() {
    let have: BTreeSet<String> = ["h".to_owned(), "g".to_owned()].into();
    assert!(is_exported("h_bucket", &have) && is_exported("h_sum", &have) && is_exported("h_count", &have));
    assert!(is_exported("g", &have));
    assert!(!is_exported("h_total", &have) && !is_exported("missing", &have));
    assert_eq!(slug(" LinktrackSpoolGrowing"), "linktrackspoolgrowing");
    assert_eq!(slug("Readiness and the trade-off"), "readiness-and-the-trade-off");
}
