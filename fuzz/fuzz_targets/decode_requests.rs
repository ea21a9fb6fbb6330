//! Every request body promptd decodes: Parea's Completion, TraceLog, update and feedback, the
//! OpenAI chat and embeddings bodies. Any bytes: an error or a value, never a panic.
//! The check itself is [`checks::decode_requests`] (shared with `tests/fuzz_regressions.rs`).
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::decode_requests(data));
