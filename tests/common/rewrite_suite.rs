//! `POST /v1/rewrite` against the real server, run for every backend by
//! `conformance_suite!`. Each letter of `tests/fixtures/email/` (generated
//! with MJML and Inky, plus hand-written edge cases) and a 1 MB letter is
//! rewritten and checked three ways: an independent parser (Python's
//! `html.parser`, `tests/fixtures/email/links.py`) finds the same trackable
//! links before and only tracking URLs in their place after; every tracking
//! URL redirects to its original destination, entities decoded; and taking
//! the tracking URLs (and the pixel) back out gives the input byte for byte.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::client::{Client, Reply, path_of};
use super::conformance::{Fixture, ready, serve};
use super::server::API_KEY;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/email");

pub async fn post_rewrite(c: &mut Client, key: Option<&str>, body: &Value, idempotency_key: Option<&str>) -> Reply {
    c.post_json("/v1/rewrite", key, body, idempotency_key).await
}

/// One destination as `links.py` sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub href: String,
    pub trackable: bool,
}

/// The destinations of `html` according to Python's `html.parser`.
pub fn python_links(html: &str) -> Vec<Destination> {
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), html).expect("write letter");
    let out = std::process::Command::new("python3")
        .arg(Path::new(FIXTURES).join("links.py"))
        .arg(file.path())
        .output()
        .unwrap_or_else(|e| panic!("running python3 (the independent HTML parser; install python3): {e}"));
    assert!(out.status.success(), "links.py failed: {}", String::from_utf8_lossy(&out.stderr));
    let list: Vec<Value> = serde_json::from_slice(&out.stdout).expect("links.py prints JSON");
    list.into_iter()
        .map(|v| Destination { href: v["href"].as_str().expect("href").to_owned(), trackable: v["trackable"].as_bool().expect("flag") })
        .collect()
}

/// The corpus: every `*.html` in the fixtures directory, sorted.
pub fn corpus() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(FIXTURES)
        .expect("fixtures dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "html"))
        .collect();
    files.sort();
    files
}

/// The input with every `data-linktrack` attribute removed (whitespace before it included), found without `lol_html`.
fn without_markers(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(i) = rest.find("data-linktrack=") {
        let mut start = i;
        while start > 0 && rest.as_bytes()[start - 1].is_ascii_whitespace() {
            start -= 1;
        }
        out.push_str(&rest[..start]);
        let value = &rest[i + "data-linktrack=".len()..];
        let len = match value.as_bytes().first() {
            Some(q @ (b'"' | b'\'')) => 2 + value[1..].find(char::from(*q)).expect("closing quote"),
            _ => value.find(|c: char| c.is_ascii_whitespace() || c == '>').unwrap_or(value.len()),
        };
        rest = &value[len..];
    }
    out.push_str(rest);
    out
}

/// Rewrite `input` and check it the three ways; returns how many links were tracked.
pub async fn check_letter(c: &mut Client, name: &str, input: &str) -> usize {
    let before = python_links(input);
    let body = json!({"mailing_id": "corpus", "recipient": "reader@example.com", "html": input, "pixel": true});
    let reply = post_rewrite(c, Some(API_KEY), &body, None).await;
    assert_eq!(reply.status, 200, "{name}: {:?}", reply.body);
    let resp = reply.json();
    let out = resp["html"].as_str().expect("html").to_owned();
    let links = resp["links"].as_array().expect("links").clone();

    // 1. The independent parser: the same trackable links before, tracking URLs in their place after.
    let trackable: Vec<(usize, &Destination)> = before.iter().enumerate().filter(|(_, d)| d.trackable).collect();
    assert_eq!(links.len(), trackable.len(), "{name}: tracked {links:?}, python found {trackable:?}");
    for ((position, d), l) in trackable.iter().zip(&links) {
        assert_eq!(l["url"], d.href.as_str(), "{name}: url of link {position}");
        assert_eq!(l["position"], *position, "{name}: position of {}", d.href);
    }
    let after = python_links(&out);
    assert_eq!(after.len(), before.len(), "{name}: destinations after the rewrite");
    let mut tracked = links.iter();
    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
        if b.trackable {
            let l = tracked.next().expect("a link per trackable destination");
            assert_eq!(a.href, l["tracking_url"].as_str().expect("tracking_url"), "{name}: destination {i} after");
            assert!(a.href.contains("/c/"), "{name}: {a:?}");
        } else {
            assert_eq!(a.href, b.href, "{name}: untouched destination {i} changed");
        }
    }

    // 2. Every tracking URL redirects to the original destination, entities decoded.
    for l in &links {
        let url = l["url"].as_str().expect("url");
        let hit = c.get(&path_of(l["tracking_url"].as_str().expect("tracking_url"))).await;
        assert!(hit.status == 302 || hit.status == 307, "{name}: {url}: {}", hit.status);
        let want = linktrack::link::normalize_url(url).expect("a minted url is valid");
        assert_eq!(hit.header("location"), want, "{name}");
    }

    // 3. Byte-exact: the pixel out, the tracking URLs back to the raw values, gives the input.
    let pixel_url = resp["pixel"]["tracking_url"].as_str().expect("pixel tracking_url");
    let tag_start = out.find(&format!("<img src=\"{pixel_url}\"")).unwrap_or_else(|| panic!("{name}: no pixel"));
    let tag_len = out[tag_start..].find("/>").expect("pixel tag end") + 2;
    assert_eq!(out.matches(pixel_url).count(), 1, "{name}: one pixel");
    let after_pixel = &out[tag_start + tag_len..];
    if input.to_ascii_lowercase().contains("</body>") {
        assert!(after_pixel.get(..7).is_some_and(|t| t.eq_ignore_ascii_case("</body>")), "{name}: pixel not at the end of <body>");
    } else {
        assert!(after_pixel.is_empty(), "{name}: pixel not at the end");
    }
    let out = format!("{}{after_pixel}", &out[..tag_start]);
    let input = without_markers(input);
    let (mut at_out, mut at_in) = (0usize, 0usize);
    for l in &links {
        let t = l["tracking_url"].as_str().expect("tracking_url");
        let at = at_out + out[at_out..].find(t).unwrap_or_else(|| panic!("{name}: {t} not in the output"));
        let kept = &out[at_out..at];
        assert!(input[at_in..].starts_with(kept), "{name}: bytes before {t} differ from the input at {at_in}");
        at_in += kept.len();
        let i = at_in;
        // The raw value runs to its closing quote, or to whitespace or `>` when unquoted.
        let quote = input.as_bytes()[i - 1];
        let raw_len = if matches!(quote, b'"' | b'\'') {
            input[i..].find(char::from(quote)).expect("closing quote")
        } else {
            input[i..].find(|c: char| c.is_ascii_whitespace() || c == '>').expect("end of unquoted value")
        };
        let raw = &input[i..i + raw_len];
        let decoded = htmlize::unescape_attribute(raw);
        assert_eq!(decoded.trim_matches(|c: char| c <= ' '), l["url"].as_str().expect("url"), "{name}: raw value {raw:?}");
        at_in += raw_len;
        at_out = at + t.len();
    }
    assert_eq!(&out[at_out..], &input[at_in..], "{name}: the tail differs");
    links.len()
}

pub async fn http_rewrite_corpus<F: Fixture>() {
    let f = ready::<F>("rewrite-corpus").await;
    let srv = serve(&f, &[]).await;
    let mut c = srv.client();
    let files = corpus();
    let generated = files.iter().filter(|p| !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("edge-"))).count();
    assert!(generated >= 12, "{generated} generated letters; run scripts/gen-email-fixtures");
    let mut total = 0;
    for path in &files {
        let html = std::fs::read_to_string(path).expect("read letter");
        let name = path.file_name().expect("name").to_string_lossy();
        let n = check_letter(&mut c, &name, &html).await;
        assert!(n > 0, "{name}: nothing tracked");
        total += n;
    }
    // A 1 MB letter: the newsletter's body repeated.
    let news = std::fs::read_to_string(Path::new(FIXTURES).join("mjml-newsletter.html")).expect("newsletter");
    let body_start = news.find("<body").expect("body");
    let (head, body) = news.split_at(body_start + news[body_start..].find('>').expect("body tag end") + 1);
    let (body, tail) = body.split_at(body.rfind("</body>").expect("end of body"));
    let mut big = head.to_owned();
    while big.len() + tail.len() < 1 << 20 {
        big.push_str(body);
    }
    big.push_str(tail);
    assert!(big.len() >= 1 << 20);
    total += check_letter(&mut c, "1 MB letter", &big).await;
    assert!(total > 900, "{total} links over the corpus");
    srv.stop().await;
}

pub async fn http_rewrite_rejects_and_stores_nothing<F: Fixture>() {
    let f = ready::<F>("rewrite-reject").await;
    let srv = serve(&f, &["--max-html-bytes", "4096"]).await;
    let mut c = srv.client();
    let before = f.count_links().await;
    let letter = |links: &str| {
        json!({"mailing_id": "m", "recipient": "r@example.com", "pixel": true,
        "html": format!("<p><a href=\"https://ok.example/a\">a</a> <a href=\"mailto:x@example.com\">m</a> {links}</p>")})
    };
    for (bad, position) in [
        (r#"<a href="javascript:alert(document.cookie)">x</a>"#, 2),
        (r#"<a href="https://ok.example/u?id={{ subscriber.id }}">x</a>"#, 2),
        (r#"<a href="*|ARCHIVE|*">x</a>"#, 2),
        (r#"<a href="https://ok.example/b">b</a><area href="%%view_online%%">"#, 3),
        (r#"<a href="  DATA:text/html;base64,PHNjcmlwdD4=">x</a>"#, 2),
    ] {
        let r = post_rewrite(&mut c, Some(API_KEY), &letter(bad), None).await;
        assert_eq!(r.status, 422, "{bad}: {:?}", r.body);
        let e = r.json();
        assert_eq!(e["error"], "invalid_link");
        assert_eq!(e["index"], position, "{bad}: {e}");
        let href = bad.split('"').nth(if bad.contains("ok.example/b") { 3 } else { 1 }).expect("href");
        let message = e["message"].as_str().expect("message");
        assert!(message.contains(&format!("link {position}")) && message.contains(&format!("{href:?}")), "{message}");
    }
    // Over the HTML limit: 413, and nothing stored either.
    let big = json!({"mailing_id": "m", "recipient": "r", "html": format!("<a href=\"https://ok.example/\">x</a>{}", " ".repeat(5000))});
    let r = post_rewrite(&mut c, Some(API_KEY), &big, None).await;
    assert_eq!(r.status, 413, "{:?}", r.body);
    assert_eq!(r.json()["error"], "too_large");
    assert_eq!(post_rewrite(&mut c, None, &letter(""), None).await.status, 401);
    assert_eq!(f.count_links().await, before, "a refused letter stored links");
    // The same letter without the bad link goes through: three rows (two links and the pixel).
    let r = post_rewrite(&mut c, Some(API_KEY), &letter(r#"<a href="https://ok.example/c">c</a>"#), None).await;
    assert_eq!(r.status, 200);
    assert_eq!(f.count_links().await, before + 3);
    srv.stop().await;
}

pub async fn http_rewrite_is_idempotent<F: Fixture>() {
    let f = ready::<F>("rewrite-idem").await;
    let srv = serve(&f, &[]).await;
    let mut c = srv.client();
    let body = json!({"mailing_id": "m", "recipient": "r@example.com", "pixel": true, "exclude_domains": ["Internal.Example"],
        "html": "<a href='https://a.example/x'>1</a><a href='https://a.example/x'>2</a><a href='https://sub.internal.example/'>3</a><a href='https://a.example/unsubscribe'>u</a>"});
    let before = f.count_links().await;
    let first = post_rewrite(&mut c, Some(API_KEY), &body, Some("letter-1")).await;
    assert_eq!(first.status, 200);
    let again = post_rewrite(&mut c, Some(API_KEY), &body, Some("letter-1")).await;
    assert_eq!(again.status, 200);
    assert_eq!(first.json(), again.json(), "a replay returns the same letter");
    let j = first.json();
    // The same URL twice is two tokens; the excluded host and the unsubscribe link stay untouched.
    assert_eq!(j["links"].as_array().expect("links").len(), 2);
    assert_ne!(j["links"][0]["token"], j["links"][1]["token"]);
    assert_eq!((j["links"][0]["position"].as_u64(), j["links"][1]["position"].as_u64()), (Some(0), Some(1)));
    let html = j["html"].as_str().expect("html");
    assert!(html.contains("<a href='https://sub.internal.example/'>3</a><a href='https://a.example/unsubscribe'>u</a>"), "{html}");
    assert_eq!(f.count_links().await, before + 3, "the replay stored nothing");
    // Tracking the unsubscribe link when asked to.
    let mut tracked = body.clone();
    tracked["track_unsubscribe"] = true.into();
    let r = post_rewrite(&mut c, Some(API_KEY), &tracked, None).await.json();
    assert_eq!(r["links"].as_array().expect("links").len(), 3);
    assert_eq!(r["links"][2]["url"], "https://a.example/unsubscribe");
    srv.stop().await;
}

/// A local landing page: answers every request with a small page and sends
/// back each request line it received.
async fn landing_page() -> (std::net::SocketAddr, tokio::sync::mpsc::UnboundedReceiver<String>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind landing page");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let n = stream.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]);
                let _ = tx.send(head.lines().next().unwrap_or("").to_owned());
                let page = "<!doctype html><title>landed</title><p>landed</p>";
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{page}",
                    page.len()
                );
                let _ = stream.write_all(reply.as_bytes()).await;
            });
        }
    });
    (addr, rx)
}

/// Headless Chromium loads a rewritten letter from a file, follows (clicks)
/// its tracked link, and lands on a local page with the query string intact.
pub async fn browser_follows_a_rewritten_letter<F: Fixture>() {
    let chromium = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|b| std::process::Command::new(b).arg("--version").output().is_ok_and(|o| o.status.success()))
        .unwrap_or_else(|| panic!("headless Chromium is needed: run scripts/install-test-deps (Debian package `chromium`)"));
    let f = ready::<F>("rewrite-browser").await;
    let srv = serve(&f, &[]).await;
    let mut c = srv.client();
    let (landing, mut hits) = landing_page().await;
    let query = "utm_source=news&amp;utm_medium=email&amp;q=caf%C3%A9+cr%C3%A8me&amp;empty=&amp;x=1%262";
    let letter = format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Letter</title></head><body><table><tr><td>\
         <a id=\"cta\" href=\"http://{landing}/landing/page?{query}\">Open the offer</a></td></tr></table></body></html>"
    );
    let r = post_rewrite(
        &mut c,
        Some(API_KEY),
        &json!({"mailing_id": "browser", "recipient": "b@example.com", "html": letter, "pixel": true}),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let out = r.json()["html"].as_str().expect("html").to_owned();
    assert!(out.contains(&format!("href=\"http://{}/c/", srv.addr)), "{out}");
    // The letter as a mail client's web view would show it, plus the click the reader makes.
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("letter.html");
    std::fs::write(&file, format!("{out}<script>document.getElementById('cta').click()</script>")).expect("write letter");
    let mut child = tokio::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--virtual-time-budget=10000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", dir.path().join("profile").display()))
        .arg(format!("file://{}", file.display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start chromium");
    let landed = tokio::time::timeout(std::time::Duration::from_secs(60), hits.recv()).await;
    let _ = child.kill().await;
    let line = landed.expect("chromium never reached the landing page within 60 s").expect("landing page hit");
    let want = format!("GET /landing/page?{} HTTP/1.1", query.replace("&amp;", "&"));
    assert_eq!(line, want, "the landing page got another request");
    srv.stop().await;
}
