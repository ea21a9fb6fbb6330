//! The SSE frame parser, fed the input cut at every byte the input itself chooses (its first
//! byte is the chunk size), then finished: never a panic, never a loop.
//! The check itself is [`checks::sse_parser`] (shared with `tests/fuzz_regressions.rs`).
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::sse_parser(data));
