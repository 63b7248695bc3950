//! How much of the public bot lists the capture-time classifier flags, and
//! that it flags none of the most common browsers. The lists are vendored in
//! `tests/fixtures/bots/` (refreshed by `scripts/refresh-bot-lists`, each
//! with its licence beside it); the figures go in `docs/bots.md`. Run with
//! `--nocapture` to see them and every miss:
//! `cargo test --release --test bot_coverage -- --nocapture`.

use linktrack::events::Method;
use linktrack::events::classify::{Classifier, Verdict};
use linktrack::link::LinkKind;

/// The share of a crawler list that must be flagged as bots.
const MIN_RECALL: f64 = 0.95;

/// A vendored list: its `# ` header line, then one user agent a line.
struct List {
    header: String,
    uas: Vec<String>,
}

fn list(name: &str) -> List {
    let path = format!("{}/tests/fixtures/bots/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}; run scripts/refresh-bot-lists"));
    let mut lines = text.lines();
    let header = lines.next().and_then(|h| h.strip_prefix("# ")).unwrap_or_else(|| panic!("{path}: no `# ` header line")).to_owned();
    let uas: Vec<String> = lines.filter(|l| !l.trim().is_empty()).map(str::to_owned).collect();
    List { header, uas }
}

/// Whether a click with this user agent is counted as a bot (a GET: the
/// method must not be what decides).
fn flagged_bot(c: &Classifier, ua: &str) -> bool {
    c.at_capture(LinkKind::Click, Method::Get, ua.as_bytes()).verdict() == Verdict::Bot
}

fn recall(name: &str, min_size: usize) {
    let list = list(name);
    assert!(list.uas.len() >= min_size, "{name}: only {} user agents; the list is truncated", list.uas.len());
    let c = Classifier::new();
    let missed: Vec<&String> = list.uas.iter().filter(|ua| !flagged_bot(&c, ua)).collect();
    let hit = list.uas.len() - missed.len();
    #[allow(clippy::cast_precision_loss, reason = "a few thousand user agents")]
    let share = hit as f64 / list.uas.len() as f64;
    println!("{}\n  flagged {hit} of {} = {:.2} %; missed {}:", list.header, list.uas.len(), share * 100.0, missed.len());
    for ua in &missed {
        println!("    {ua}");
    }
    assert!(share >= MIN_RECALL, "{name}: {hit} of {} flagged ({:.2} %), below {:.0} %", list.uas.len(), share * 100.0, MIN_RECALL * 100.0);
}

#[test]
fn flags_at_least_95_percent_of_crawler_user_agents_instances() {
    recall("crawler-user-agents.txt", 2000);
}

#[test]
fn flags_at_least_95_percent_of_crawlerdetect_crawlers() {
    recall("crawlerdetect.txt", 3500);
}

#[test]
fn flags_none_of_the_100_most_common_browsers() {
    let list = list("top-user-agents.txt");
    assert_eq!(list.uas.len(), 100, "top-user-agents.txt must hold the top 100");
    let c = Classifier::new();
    let mut flagged = Vec::new();
    for ua in &list.uas {
        for kind in [LinkKind::Click, LinkKind::Open] {
            let reason = c.at_capture(kind, Method::Get, ua.as_bytes());
            if reason.verdict() != Verdict::Human {
                flagged.push(format!("{kind:?} {reason:?}: {ua}"));
            }
        }
    }
    println!("{}\n  flagged {} of {}", list.header, flagged.len(), list.uas.len());
    assert!(flagged.is_empty(), "browsers flagged:\n{}", flagged.join("\n"));
}
