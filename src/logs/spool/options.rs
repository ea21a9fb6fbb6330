//! [`SpoolOptions`]: where a spool lives and how it batches, as [`super::Spool::open`] takes them.

use std::path::PathBuf;
use std::time::Duration;

/// Where the spool lives and how it batches. See the spool's header ([`super`]) for what each
/// bound does.
#[derive(Debug, Clone)]
pub struct SpoolOptions {
    /// The spool's own directory (created if missing, mode 0700).
    pub dir: PathBuf,
    /// Bound on segment bytes on disk plus bytes queued for disk.
    pub max_bytes: u64,
    /// A segment is rotated before it would grow past this.
    pub segment_bytes: u64,
    /// Longest time a queued record waits for its group commit.
    pub flush_interval: Duration,
    /// A group commit starts as soon as this many records are queued.
    pub max_batch: usize,
}
