//! [`SpoolStats`]: a snapshot of the spool's state and counters, for status and metrics.

use std::time::Duration;

/// A snapshot of the spool's state and counters (counters since this process opened it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpoolStats {
    /// Durable records not yet acknowledged (handed out or not).
    pub waiting_records: u64,
    /// Bytes of segment files on disk.
    pub bytes_on_disk: u64,
    /// Bytes written but not yet fsynced (waiting for their group commit).
    pub bytes_queued: u64,
    /// Age of the oldest waiting record (1 s resolution), `None` when nothing waits.
    pub oldest_waiting_age: Option<Duration>,
    /// Every record up to this id is acknowledged.
    pub acked_through: u64,
    pub segments: u64,
    /// Records accepted by `append`.
    pub appended: u64,
    /// Records made durable.
    pub committed: u64,
    /// Records refused because the spool was at `max_bytes`.
    pub dropped_full: u64,
    /// Records refused because they were larger than the frame limit.
    pub dropped_too_large: u64,
    /// Complete records skipped because their checksum failed (at start-up or when read).
    pub corrupt_skipped: u64,
    /// Bytes of torn tail truncated at start-up.
    pub torn_bytes: u64,
    /// Group commits that failed (the records' `Durable` resolved to an error).
    pub write_errors: u64,
    pub last_write_error: Option<String>,
}
