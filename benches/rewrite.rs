//! Criterion bench of the whole-letter rewrite without the database: scan
//! a 100 KB letter with 50 links (finding, classifying, decoding and
//! normalising each) and render it with tracking URLs and the pixel. This
//! is the CPU `POST /v1/rewrite` spends per letter besides the mint.
//!
//! Run: `cargo bench --bench rewrite`. The figure is written down in
//! `loadtests/RESULTS.md`; nothing here asserts a speed.

use std::fmt::Write;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use linktrack::rewrite::{Rules, render, scan};

/// A table-soup letter of about 100 KB with 50 links: inline styles,
/// entities, an Outlook conditional block with a VML button every tenth row,
/// and a footer of untracked links.
fn letter() -> String {
    let mut html = String::from(
        "<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Transitional//EN\" \"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd\">\n<html xmlns=\"http://www.w3.org/1999/xhtml\"><head><meta http-equiv=\"Content-Type\" content=\"text/html; charset=UTF-8\"><title>Weekly</title><style>td{font-family:Helvetica,Arial,sans-serif}</style></head>\n<body style=\"margin:0;padding:0;background:#f4f4f4\"><table role=\"presentation\" width=\"100%\" cellpadding=\"0\" cellspacing=\"0\" border=\"0\">\n",
    );
    let mut links = 0;
    let mut row = 0;
    while links < 50 {
        if row % 10 == 9 {
            let _ = writeln!(
                html,
                "<tr><td align=\"center\"><!--[if mso]><v:roundrect xmlns:v=\"urn:schemas-microsoft-com:vml\" href=\"https://shop.example/sale/{row}?utm_source=newsletter&amp;utm_medium=email\" style=\"height:40px;width:200px\" arcsize=\"10%\" fillcolor=\"#d62828\"><center>Shop</center></v:roundrect><![endif]--></td></tr>"
            );
            links += 1;
        } else {
            let _ = writeln!(
                html,
                "<tr><td style=\"padding:16px 24px;color:#333333;font-size:15px;line-height:22px\"><h3 style=\"margin:0 0 8px 0\">Story {row} &ndash; a headline</h3>{}<a href=\"https://news.example/story/{row}?utm_source=newsletter&amp;utm_medium=email&amp;utm_campaign=weekly\" style=\"color:#1a73e8;text-decoration:underline\">Read more &rarr;</a></td></tr>",
                "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua &amp; more. ".repeat(14)
            );
            links += 1;
        }
        row += 1;
    }
    while html.len() < 100_000 {
        html.push_str("<tr><td style=\"padding:0 24px;color:#888888;font-size:11px\">Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat.</td></tr>\n");
    }
    html.push_str("<tr><td><a href=\"mailto:help@news.example\">help</a> <a href=\"https://news.example/unsubscribe?u=1\">Unsubscribe</a></td></tr></table></body></html>\n");
    html
}

fn rewrite(c: &mut Criterion) {
    let html = letter();
    let rules = Rules { max_links: 1000, ..Rules::default() };
    let found = scan(&html, &rules).expect("the bench letter is valid");
    assert_eq!(found.links.len(), 50, "the bench letter has 50 tracked links");
    let tracking: Vec<String> = (0..50).map(|i| format!("https://t.example/c/0aB3xYz9Kq2LmN4pQr6StU8v-1b-Wx{i:02}yZ")).collect();
    let mut g = c.benchmark_group("rewrite");
    g.throughput(Throughput::Bytes(html.len() as u64));
    g.bench_function("scan_100kb_50_links", |b| b.iter(|| scan(black_box(&html), &rules)));
    g.bench_function("scan_and_render_100kb_50_links", |b| {
        b.iter(|| {
            let found = scan(black_box(&html), &rules).expect("valid");
            render(&html, &found, &tracking, Some("https://t.example/o/pixel"))
        });
    });
    g.finish();
}

criterion_group!(benches, rewrite);
criterion_main!(benches);
