//! Fuzz the spool's record decoder: the bytes of a segment file as
//! `Spool::open` scans them (`events::spool::decode_segment`), and each
//! record's payload as the replay decodes it (`EventBatch::decode`). Neither
//! panics on any input; every payload found lies inside the input; and a
//! batch that decodes re-encodes to bytes that decode to the same batch.
//!
//! The CRC32 framing is hard to forge by mutation, so the first byte also
//! picks a mode in which the rest is framed as one valid record first and
//! the batch decoder sees fuzzed payloads directly.

#![no_main]

use libfuzzer_sys::fuzz_target;
use linktrack::events::EventBatch;
use linktrack::events::spool::decode_segment;

/// Check a payload: decode never panics, and a decoded batch round-trips.
fn check_batch(payload: &[u8]) {
    if let Ok(batch) = EventBatch::decode(payload) {
        let again = EventBatch::decode(&batch.encode()).expect("re-encoded batch decodes");
        assert_eq!(again, batch, "re-encoding changed the batch");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode & 1 == 0 {
        let (payloads, _corrupt) = decode_segment(rest);
        let range = rest.as_ptr_range();
        for p in payloads {
            assert!(range.start <= p.as_ptr() && p.as_ptr_range().end <= range.end, "payload outside the segment");
            check_batch(p);
        }
    } else {
        check_batch(rest);
    }
});
