//! Criterion benches for the hot path (token parse, cache lookup, redirect response).
fn main() {}
