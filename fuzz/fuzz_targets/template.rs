//! `{{placeholder}}` templates: any text compiles or is an error; a compiled one renders with
//! inputs of every JSON kind, and its counted length is the rendering's.
//! The check itself is [`checks::template`] (shared with `tests/fuzz_regressions.rs`).
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::template(data));
