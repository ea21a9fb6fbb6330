//! A spool for tests: small, and quick to commit (2 ms group commits), in a directory of the
//! test's. Tests that are about a bound override that field:
//! `SpoolOptions { segment_bytes: 400, ..spool_options(dir) }`.
//!
//! Shared by the spool and flusher tests in `tests/` and, included with `#[path]`, by the
//! crate's own flusher tests (the crate names itself `promptd` in test builds for this).

#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use promptd::logs::SpoolOptions;

/// Options for a test spool in `dir`.
pub fn spool_options(dir: &Path) -> SpoolOptions {
    SpoolOptions {
        dir: dir.to_owned(),
        max_bytes: 16 * 1024 * 1024,
        segment_bytes: 1024 * 1024,
        flush_interval: Duration::from_millis(2),
        max_batch: 64,
    }
}
