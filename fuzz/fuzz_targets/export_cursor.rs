//! Fuzz the export's cursor and query parser (`http::export::parse_query`,
//! which calls `Cursor::decode` for `after=`). Neither panics; a refusal is
//! a `400` or `422`; an accepted limit is within bounds; and a cursor that
//! decodes encodes to a string that decodes to the same cursor.

#![no_main]

use libfuzzer_sys::fuzz_target;
use linktrack::events::Cursor;
use linktrack::http::export::parse_query;

const MAX_LIMIT: usize = 10_000;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Some(c) = Cursor::decode(text) {
        assert_eq!(Cursor::decode(&c.encode()), Some(c), "cursor does not round-trip");
    }
    match parse_query(Some(text), MAX_LIMIT) {
        Ok(q) => {
            assert!((1..=MAX_LIMIT as u64).contains(&q.limit));
            assert_eq!(Cursor::decode(&q.after.encode()), Some(q.after));
        }
        Err(e) => assert!(matches!(e.status.as_u16(), 400 | 422), "refused with {}: {}", e.status, e.message),
    }
});
