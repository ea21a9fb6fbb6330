//! [`SpoolOptions`]: where a spool lives and how it batches, as [`super::Spool::open`] takes
//! them (from the `[spool]` settings, or set by hand in tests and tools).

use std::path::PathBuf;
use std::time::Duration;

use crate::config::SpoolConfig;

/// Where the spool lives and how it batches. See the spool's header ([`super`]) for what each
/// bound does.
#[derive(Debug, Clone)]
pub struct SpoolOptions {
    /// The spool's own directory (created if missing, mode 0700).
    pub dir: PathBuf,
    /// Bound on the bytes of segment files, fsynced or not.
    pub max_bytes: u64,
    /// A segment is rotated before it would grow past this.
    pub segment_bytes: u64,
    /// Longest time a written record waits for its group commit (fsync).
    pub flush_interval: Duration,
    /// A group commit starts as soon as this many records wait for it.
    pub max_batch: usize,
}

impl SpoolOptions {
    /// The options of a spool in `dir` (normally `{state_dir}/spool`) with the `[spool]`
    /// settings.
    pub fn from_config(config: &SpoolConfig, dir: PathBuf) -> SpoolOptions {
        SpoolOptions {
            dir,
            max_bytes: config.max_bytes,
            segment_bytes: config.segment_bytes,
            flush_interval: config.flush_interval,
            max_batch: config.max_batch,
        }
    }
}
