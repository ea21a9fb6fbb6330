//! What can go wrong in the spool: [`SpoolError`] (it cannot be opened or read), [`Dropped`]
//! (an append it refused) and [`NotDurable`] (a record it took but could not write).

use std::path::{Path, PathBuf};

use super::segment::MAX_PAYLOAD;
use crate::logs::record::entry::EntryError;

/// A spool that cannot be opened or read.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error(
        "log spool {dir} is in use by another promptd{}; each daemon needs its own state_dir",
        holder.map(|pid| format!(" (pid {pid})")).unwrap_or_default()
    )]
    Locked { dir: PathBuf, holder: Option<u32> },
    #[error("log spool {path}: {action}: {source}")]
    Io {
        path: PathBuf,
        action: &'static str,
        source: std::io::Error,
    },
    #[error("the log spool is closed")]
    Closed,
    /// A durable entry found by [`super::Spool::find_trace`] whose JSON body does not parse (it
    /// was checked on the way in: the disk changed under it).
    #[error("log spool: a stored entry of trace `{trace_id}` cannot be read back: {source}")]
    BadEntry {
        trace_id: String,
        source: EntryError,
    },
    /// The lookup's blocking task panicked (a bug, not the disk).
    #[error("log spool: the trace lookup failed: {0}")]
    LookupTask(String),
}

impl SpoolError {
    pub(crate) fn io(path: &Path, action: &'static str, source: std::io::Error) -> SpoolError {
        SpoolError::Io {
            path: path.to_owned(),
            action,
            source,
        }
    }
}

/// Why [`super::Spool::append`] did not take a record. The record is gone; it was counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Dropped {
    #[error("log spool is full (max_bytes reached); record dropped")]
    Full,
    #[error("log record larger than {MAX_PAYLOAD} bytes; record dropped")]
    TooLarge,
    #[error("log spool is closed; record dropped")]
    Closed,
}

/// A record that was taken but could not be made durable (disk error, spool shut down early).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("log record not written to the spool: {0}")]
pub struct NotDurable(pub String);
