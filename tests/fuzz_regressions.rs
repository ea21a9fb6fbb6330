//! The fuzz targets' checks (`fuzz/checks.rs`) over every input kept in
//! `fuzz/regressions/TARGET/`: crashes fuzzing found (fixed since) and a minimised sample of
//! each target's corpus, so what the fuzzers learnt keeps being tested on stable, in CI, without
//! a nightly toolchain. Add an input by copying it there (`fuzz/run.sh` says how).

#[path = "../fuzz/checks.rs"]
mod checks;

use std::path::PathBuf;

/// Every kept input of `target`, with its file name; the directory must not be empty.
fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(target);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("directory entry").path();
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path.display().to_string(), bytes)
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no inputs kept in {}", dir.display());
    out
}

fn run(target: &str, check: fn(&[u8])) {
    for (name, bytes) in inputs(target) {
        let outcome = std::panic::catch_unwind(|| check(&bytes));
        assert!(outcome.is_ok(), "{target}: input {name} fails its check");
    }
}

#[test]
fn decode_requests() {
    run("decode_requests", checks::decode_requests);
}

#[test]
fn sse_parser() {
    run("sse_parser", checks::sse_parser);
}

#[test]
fn template() {
    run("template", checks::template);
}

#[test]
fn prompt_file() {
    run("prompt_file", checks::prompt_file);
}

#[test]
fn spool_segment() {
    run("spool_segment", checks::spool_segment);
}

#[test]
fn provider_stream() {
    run("provider_stream", checks::provider_stream);
}
