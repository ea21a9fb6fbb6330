//! What a hostile provider can stream, decoded into the model by each provider kind's wire,
//! assembled within a bound and rendered for the other door: never a panic, never more held
//! than the bound. The check itself is [`checks::provider_stream`] (shared with
//! `tests/fuzz_regressions.rs`).
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::provider_stream(data));
