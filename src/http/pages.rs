//! The pages a recipient's browser sees when a tracking link cannot take it
//! anywhere: not found, expired, temporarily unavailable. Small,
//! self-contained HTML (no scripts, styles from elsewhere, images or fonts),
//! with no recipient data. An operator can replace each one with a file in
//! `--error-pages-dir` (`not_found.html`, `expired.html`, `unavailable.html`),
//! read once at start-up.

use std::path::Path;

use bytes::Bytes;

use crate::{Error, Result};

/// The three pages, ready to send.
#[derive(Debug, Clone)]
pub struct ErrorPages {
    pub not_found: Bytes,
    pub expired: Bytes,
    pub unavailable: Bytes,
}

fn page(title: &str, text: &str) -> Bytes {
    Bytes::from(format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\"><title>{title}</title>\
         <style>body{{font:16px/1.5 system-ui,sans-serif;max-width:32em;margin:15vh auto;padding:0 1em;color:#222}}\
         h1{{font-size:1.4em}}</style></head>\n<body><h1>{title}</h1><p>{text}</p></body></html>\n"
    ))
}

impl Default for ErrorPages {
    fn default() -> ErrorPages {
        ErrorPages {
            not_found: page("Link not found", "This link is not valid. Check that it was copied completely from the email."),
            expired: page("Link expired", "This link has expired and no longer leads anywhere."),
            unavailable: page("Please try again", "This link cannot be followed right now. Please try again in a moment."),
        }
    }
}

impl ErrorPages {
    /// The built-in pages, each replaced by its file in `dir` when there is one.
    pub fn load(dir: Option<&Path>) -> Result<ErrorPages> {
        let mut pages = ErrorPages::default();
        let Some(dir) = dir else { return Ok(pages) };
        for (name, slot) in
            [("not_found.html", &mut pages.not_found), ("expired.html", &mut pages.expired), ("unavailable.html", &mut pages.unavailable)]
        {
            let path = dir.join(name);
            match std::fs::read(&path) {
                Ok(bytes) => *slot = Bytes::from(bytes),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::Config(format!("--error-pages-dir: reading {}: {e}", path.display()))),
            }
        }
        Ok(pages)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_pages_load_nothing_and_a_file_replaces_one() {
        let pages = ErrorPages::default();
        for page in [&pages.not_found, &pages.expired, &pages.unavailable] {
            let text = std::str::from_utf8(page).unwrap();
            assert!(text.starts_with("<!doctype html>"));
            for external in ["<script", "src=", "href=", "url("] {
                assert!(!text.contains(external), "{external} in {text}");
            }
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("expired.html"), "<p>ours</p>").unwrap();
        let loaded = ErrorPages::load(Some(dir.path())).unwrap();
        assert_eq!(&loaded.expired[..], b"<p>ours</p>");
        assert_eq!(loaded.not_found, pages.not_found);
    }
}
