//! The spool's recovery and reader over arbitrary segment bytes: a spool directory holding one
//! segment file of the input opens (a torn or damaged tail repaired, damaged records skipped)
//! or is refused with an error, and reading it ends: never a panic, never a loop.
//! The check itself is [`checks::spool_segment`] (shared with `tests/fuzz_regressions.rs`).
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::spool_segment(data));
