//! Prompt files in each format: any bytes load or are refused with an error naming the file,
//! quickly (the nesting bound runs before any parser).
//! The check itself is [`checks::prompt_file`] (shared with `tests/fuzz_regressions.rs`).
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::prompt_file(data));
