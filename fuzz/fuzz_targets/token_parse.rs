//! Fuzz `token::parse` over both versions: it never panics, never allocates,
//! and accepts only canonical tokens (re-encoding the parts in the token's
//! own version, with the split found in the input, gives back the identical
//! bytes; for v2 that re-encrypts the decrypted block).

#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use libfuzzer_sys::fuzz_target;
use linktrack::day::Day;
use linktrack::token::{self, KeyRing};

/// Counts allocations, so the target can assert that `parse` makes none.
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Secrets of the seed tokens in `corpus/token_parse/`.
const KEY_7: &str = "7:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const KEY_3: &str = "3:ffeeddccbbaa99887766554433221100";

/// Key 7 mints, key 3 verifies (a ring mid-rotation).
static KEYS: LazyLock<KeyRing> = LazyLock::new(|| KeyRing::parse(&format!("{KEY_7},{KEY_3}")).expect("fixed key spec"));
/// Rings in which the key with that id mints, to re-encode what it signed.
static MINTING_7: LazyLock<KeyRing> = LazyLock::new(|| KeyRing::parse(KEY_7).expect("fixed key spec"));
static MINTING_3: LazyLock<KeyRing> = LazyLock::new(|| KeyRing::parse(KEY_3).expect("fixed key spec"));

/// The day of the example token (2026-11-22); tokens up to day 2518 pass.
const TODAY: Day = Day(2517);

fuzz_target!(|data: &[u8]| {
    let keys = &*KEYS;
    let minting = [&*MINTING_7, &*MINTING_3];

    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let result = token::parse(data, keys, TODAY);
    assert_eq!(ALLOCATIONS.load(Ordering::Relaxed), before, "parse allocated");

    if let Ok(parsed) = result {
        let split = data.iter().position(|&b| b == b'-').expect("a valid token has a dash");
        let ring = minting.into_iter().find(|r| r.minting().id() == parsed.key_id).expect("key id is in the ring");
        let split = u8::try_from(split).expect("split < 35");
        let again = if parsed.version == token::VERSION_2 {
            token::encode_v2(ring, parsed.day, token::Sealed::from_block(&parsed.random), split)
        } else {
            token::encode(ring, parsed.day, parsed.random, split)
        };
        assert_eq!(again.as_str().as_bytes(), data, "accepted a non-canonical token");
        assert!(parsed.day.0 <= TODAY.0 + 1);
    }
});
