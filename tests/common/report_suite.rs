//! The report page in a real browser: headless Chromium (Debian's
//! `chromium`) loads `/report/<mailing>` of a mailing with known traffic,
//! with the key in the URL fragment. The rendered per-link table must match
//! the stats API, the page must log nothing to the console (a failed or
//! refused request logs there: every host but loopback is unresolvable for
//! this browser and the page's CSP allows only its own origin), and a
//! screenshot is taken (copied to `$LINKTRACK_REPORT_SCREENSHOT` when set,
//! which is how `scripts/report-screenshot` refreshes `docs/report.png`).

use std::time::Duration;

use bytes::Bytes;
use http::Method;
use serde_json::{Value, json};

use super::client::{Client, path_of};
use super::conformance::{Fixture, ready, serve};
use super::server::API_KEY;

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";
const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
const GOOGLEBOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

fn chromium() -> &'static str {
    ["chromium", "chromium-browser"]
        .into_iter()
        .find(|b| std::process::Command::new(b).arg("--version").output().is_ok_and(|o| o.status.success()))
        .unwrap_or_else(|| panic!("headless Chromium is needed: run scripts/install-test-deps (Debian package `chromium`)"))
}

/// Run headless Chromium on `url` with `args`; its stdout and stderr.
async fn run_chromium(url: &str, args: &[&str], profile: &std::path::Path) -> (String, String) {
    let out = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::process::Command::new(chromium())
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions", "--disable-sync"])
            .args(["--virtual-time-budget=15000", "--enable-logging=stderr", "--v=0"])
            // Every name but loopback fails to resolve: a request to another origin would fail, and say so on the console.
            .arg("--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1")
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(args)
            .arg(url)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("chromium finished within 90 s")
    .expect("run chromium");
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The text of each cell of each row of `<tbody id="{id}">` in `dom`.
fn table(dom: &str, id: &str) -> Vec<Vec<String>> {
    let start = dom.find(&format!("<tbody id=\"{id}\">")).unwrap_or_else(|| panic!("no tbody #{id} in the page:\n{dom}"));
    let body = &dom[start..start + dom[start..].find("</tbody>").expect("tbody end")];
    body.split("<tr>")
        .skip(1)
        .map(|row| {
            row.split("<td")
                .skip(1)
                .map(|c| {
                    let text = &c[c.find('>').expect("td") + 1..c.find("</td>").expect("td end")];
                    text.replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"")
                })
                .collect()
        })
        .collect()
}

async fn hit(c: &mut Client, path: &str, ua: &str, ip: &str) {
    let r = c.send(Method::GET, path, &[("user-agent", ua), ("x-forwarded-for", ip)], Bytes::new()).await;
    assert!(r.status == 302 || r.status == 200, "{path}: {}", r.status);
}

async fn api(c: &mut Client, path: &str) -> Value {
    let auth = format!("Bearer {API_KEY}");
    let r = c.send(Method::GET, path, &[("authorization", &auth)], Bytes::new()).await;
    assert_eq!(r.status, 200, "{path}: {:?}", r.body);
    r.json()
}

pub async fn browser_renders_the_report<F: Fixture>() {
    let f = ready::<F>("report-browser").await;
    let srv = serve(
        &f,
        &["--event-flush-ms", "20", "--rollup-interval-ms", "50", "--trusted-proxies", "127.0.0.1/32", "--ip-anonymisation", "none"],
    )
    .await;
    let clock = srv.clock.clone();
    let mut c = srv.client();
    // The same URL at positions 0 and 2 (a top button and a footer link), a second one at 1.
    let urls = ["https://shop.example/sale?utm=a&x=<1>", "https://shop.example/blog", "https://shop.example/sale?utm=a&x=<1>"];
    let mut letters = Vec::new();
    for i in 0..6 {
        let links: Vec<Value> = urls.iter().map(|u| json!({"url": u})).collect();
        let body = json!({"mailing_id": "winter/sale", "recipient": format!("r{i}@example.com"), "links": links, "pixel": true});
        let r = c.mint(Some(API_KEY), &body, None).await;
        assert_eq!(r.status, 201);
        letters.push(r.json());
    }
    clock.advance_ms(60_000);
    let link = |l: &Value, i: usize| path_of(l["links"][i]["tracking_url"].as_str().unwrap());
    let pixel = |l: &Value| path_of(l["pixel"]["tracking_url"].as_str().unwrap());
    for (i, l) in letters.iter().enumerate() {
        let ip = format!("198.51.100.{}", i + 1);
        hit(&mut c, &pixel(l), FIREFOX, &ip).await;
        if i < 4 {
            hit(&mut c, &link(l, i % 3), if i % 2 == 0 { FIREFOX } else { CHROME }, &ip).await;
        }
        clock.advance_ms(3_600_000); // an hour apart: the chart has several bars
    }
    hit(&mut c, &link(&letters[5], 2), GOOGLEBOT, "66.249.66.1").await;
    let last_hit_ms = clock.now_ms();
    // The rollup's as_of covers stored events only: wait until all 11 hits are stored.
    for _ in 0..400 {
        let auth = format!("Bearer {API_KEY}");
        let r = c.send(Method::GET, "/v1/events?limit=1000", &[("authorization", &auth)], Bytes::new()).await;
        if r.body.split(|b| *b == b'\n').count() > 11 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    clock.advance_ms(120_000);
    let mut stats = Value::Null;
    for _ in 0..400 {
        stats = api(&mut c, "/v1/mailings/winter%2Fsale/stats").await;
        let as_of = time::OffsetDateTime::parse(stats["as_of"].as_str().unwrap(), &time::format_description::well_known::Rfc3339).unwrap();
        if (as_of.unix_timestamp_nanos() / 1_000_000) as i64 >= last_hit_ms {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(stats["clicks"]["total"], 5, "{stats:#}");

    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("http://{}/report/winter%2Fsale#key={API_KEY}", srv.addr);
    let (dom, log) = run_chromium(&url, &["--dump-dom"], &dir.path().join("dom")).await;
    let console: Vec<&str> = log.lines().filter(|l| l.contains("CONSOLE")).collect();
    assert!(console.is_empty(), "the page logged to the console: {console:#?}");
    let want: Vec<Vec<String>> = stats["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let k = &l["clicks"];
            [l["position"].to_string(), l["url"].as_str().unwrap().to_owned()]
                .into_iter()
                .chain([&k["human"], &k["bot"], &k["suspect"], &k["unique_human"]].map(ToString::to_string))
                .collect()
        })
        .collect();
    assert_eq!(want.len(), 3, "three links, the same URL at two positions: {stats:#}");
    assert_eq!(table(&dom, "links"), want, "the page's link table is the API's");
    let o = &stats["opens"];
    assert_eq!(
        table(&dom, "opens"),
        vec![[&o["total"], &o["human"], &o["bot"], &o["suspect"], &o["unique_human"]].map(ToString::to_string).to_vec()]
    );
    assert!(dom.contains(&format!("<b id=\"t-recipients\">{}</b>", stats["recipients_human"])), "{dom}");
    assert!(dom.matches("class=\"human\"").count() >= 4, "the charts drew human bars");
    assert!(!dom.contains("@example.com"), "no recipient on the page");
    assert!(dom.contains("<form id=\"key-form\" hidden=\"\">"), "the key came from the fragment: no form");
    assert!(!dom.contains(API_KEY), "the key is not left in the page");

    let png = dir.path().join("report.png");
    let (_, log) = run_chromium(
        &url,
        &[&format!("--screenshot={}", png.display()), "--window-size=1280,1700", "--hide-scrollbars"],
        &dir.path().join("shot"),
    )
    .await;
    let console: Vec<&str> = log.lines().filter(|l| l.contains("CONSOLE")).collect();
    assert!(console.is_empty(), "the page logged to the console: {console:#?}");
    let bytes = std::fs::read(&png).expect("chromium wrote the screenshot");
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 20_000, "a PNG of the page ({} bytes)", bytes.len());
    if let Ok(to) = std::env::var("LINKTRACK_REPORT_SCREENSHOT") {
        std::fs::copy(&png, &to).expect("copy the screenshot");
    }
    srv.stop().await;
}
