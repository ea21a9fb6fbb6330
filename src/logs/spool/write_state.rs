//! The write side's data: the segments being written, the records written and waiting for
//! their fsync, and the writer thread's signals, all under the spool's append lock
//! ([`super::state::Shared::appender`]). What is done with them is [`super::appender`].

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::oneshot;

use super::error::NotDurable;
use super::fs::SpoolFile;

/// What [`super::state::Shared`]'s append lock guards: the segments being written, the records written and
/// not yet fsynced, and the writer thread's signals.
pub struct Appender {
    pub(super) next_id: u64,
    /// The segment new records go to.
    pub(super) active: Option<Segment>,
    /// Segments rotated away from (or given up after a failed write) with records not fsynced.
    pub(super) sealed: Vec<Segment>,
    /// A segment file was created since the directory was last fsynced.
    pub(super) dir_dirty: bool,
    /// Written, not yet fsynced, in id order.
    pub(super) unsynced: Vec<Unsynced>,
    pub(super) unsynced_bytes: u64,
    /// When the oldest unsynced record was written: the group commit is due `flush_interval`
    /// later.
    pub(super) first_at: Option<Instant>,
    /// Commit now ([`super::Spool::flush_now`]).
    pub(super) flush: bool,
    /// Refuse new records; the writer commits what is written and stops.
    pub(super) shutdown: bool,
    /// Waiting for the next commit and ledger write ([`super::Spool::sync`]).
    pub(super) sync_waiters: Vec<oneshot::Sender<()>>,
    /// Acknowledgements moved `acked_through` since the writer last looked: the ledger may be
    /// behind. Set by [`super::state::Shared::ack`] (which wakes the writer), cleared when the writer takes
    /// work.
    pub(super) acks: bool,
    pub(super) buf: Vec<u8>,
    /// Writes or fsyncs failing in a row (a full disk, say): logged when it starts and when it
    /// ends, counted in between.
    pub(super) failing: Option<FailureRun>,
}

/// A segment file with records not yet fsynced (or the active one).
pub struct Segment {
    pub(super) first_id: u64,
    pub(super) file: Arc<dyn SpoolFile>,
    /// Whole frames written.
    pub(super) written: u64,
    /// Of which fsynced.
    pub(super) synced: u64,
    /// Last id written to it, 0 if none.
    pub(super) last_id: u64,
    /// How its records reach the file.
    pub(super) writes: Writes,
}

/// How a segment's records reach its file ([`super::appender`]).
pub enum Writes {
    /// Nothing written yet: the first record tries to map the file.
    Undecided,
    /// Copied into a map of the file (`None` between maps). The file may be longer than
    /// `written`: zeros allocated ahead, cut off when the segment is sealed or the spool closes.
    Mapped(Option<Window>),
    /// `write(2)` at the file's end: its file system does not map (no `fallocate`).
    Appended,
}

/// The part of a segment file mapped for records: bytes `start..start + map.len()`.
pub struct Window {
    pub(super) start: u64,
    pub(super) map: memmap2::MmapMut,
}

/// A record written and waiting for its group commit.
pub struct Unsynced {
    pub(super) id: u64,
    pub(super) at_ms: u64,
    pub(super) size: u64,
    /// Who learns when it is durable; `None` for a record nobody waits for.
    pub(super) done: Option<oneshot::Sender<Result<u64, NotDurable>>>,
}

impl Unsynced {
    /// Tell who waits that the record is durable.
    pub(super) fn durable(self) {
        if let Some(done) = self.done {
            let _ = done.send(Ok(self.id));
        }
    }

    /// Tell who waits why the record is not durable.
    pub(super) fn failed(self, message: &str) {
        if let Some(done) = self.done {
            let _ = done.send(Err(NotDurable(message.to_owned())));
        }
    }
}

/// Consecutive failed writes or group commits.
pub struct FailureRun {
    pub(super) since: Instant,
    pub(super) failures: u64,
    pub(super) records: u64,
}

/// What one group commit makes durable: taken under the lock, fsynced outside it.
pub struct Batch {
    pub(super) files: Vec<BatchFile>,
    pub(super) dir: bool,
    pub(super) records: Vec<Unsynced>,
}

/// A file of a [`Batch`], as it was when the batch was taken.
pub struct BatchFile {
    pub(super) first_id: u64,
    pub(super) file: Arc<dyn SpoolFile>,
    pub(super) written: u64,
    pub(super) synced: u64,
    pub(super) last_id: u64,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.records.is_empty() && self.files.is_empty() && !self.dir
    }
}
