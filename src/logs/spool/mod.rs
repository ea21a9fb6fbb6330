//! The log spool: a durable, bounded, on-disk FIFO between the request path and the flusher.
//!
//! # Design
//!
//! Modelled on vector's `disk_v2` buffer, cut down to one writer thread and one reader.
//!
//! **Files.** The spool owns one directory:
//!
//! ```text
//! spool/
//!   LOCK                        flock(2)ed exclusively while a Spool is open; holds the pid
//!   ledger                      acked_through (u64) + CRC; replaced atomically (tmp + rename)
//!   00000000000000000001.seg    segment files, named by the id of their first record
//!   00000000000000004213.seg
//! ```
//!
//! **Framing.** A segment is a plain concatenation of frames, no file header:
//!
//! ```text
//! len: u32 LE | crc: u32 LE | id: u64 LE | appended_at_ms: u64 LE | payload (len bytes)
//! ```
//!
//! `crc` is CRC-32 (IEEE, `crc32fast`) over `id`, `appended_at_ms` and the payload, so a flipped
//! bit anywhere but in `len` fails the check, and a bad `len` makes the check fail too. Ids start
//! at 1 and grow by one per written record across all segments and restarts (a record that was
//! dropped never got an id; a batch whose write failed leaves a gap, and so does a segment file
//! left behind with no record: its name stays taken). The payload is opaque here (the caller
//! encodes it, see [`super::entry`]); it is at most `MAX_PAYLOAD` bytes. The append time is in
//! the frame so that the age of the oldest waiting record survives a restart.
//!
//! **Write, then group commit.** [`Spool::append`] frames the record and writes it to the
//! active segment itself, under the append lock ([`appender`]; a copy into a map of the file
//! where the file system allocates ahead, else one `write(2)`): when it returns, the record is
//! in the page cache and survives a SIGKILL, an OOM kill or a panic, whatever the disk does
//! next. It never waits for the disk. One dedicated writer thread makes written records
//! durable: every `flush_interval` (default 100 ms, counted from the first record written
//! since the last commit) or as soon as `max_batch` records are waiting, it calls `fdatasync`
//! once per segment touched (and fsyncs the directory after a new segment), and only then
//! resolves the batch's [`Durable`]s and lets the reader see the records. It is a thread and not
//! a tokio task: it blocks in `fsync` for milliseconds at a time and lives as long as the spool,
//! which is what a dedicated thread is for (a `spawn_blocking` task would pin a blocking-pool
//! thread forever); it also works under any runtime flavour. Appenders create and write
//! segments; the writer thread alone truncates (after a failed commit) or deletes them.
//!
//! **Loss window.** A record appended before an answer is sent survives the end of the
//! process: the completion path appends before the answer's last byte. Only what a power loss
//! or a kernel crash takes, the page cache, can lose records appended since the last group
//! commit, at most `flush_interval` (or `max_batch` records) worth: callers that must not lose
//! a record even then (`POST /trace_log`) await the [`Durable`] before answering.
//! Acknowledgements are persisted on the same cadence, so a crash can at worst make the
//! flusher send records again (at-least-once), never skip one.
//!
//! **Rotation and the byte bound.** A new segment starts when the next frame would take the
//! current one past `segment_bytes` (a single record larger than that gets a segment of its
//! own). Every byte written is reserved against `max_bytes` at append time; when
//! the reservation would pass the bound the record is dropped on the spot, counted in
//! [`SpoolStats::dropped_full`], and the caller gets [`Dropped::Full`]: no unbounded disk, no
//! blocked request. Space comes back when a whole segment is deleted. The zeros a mapped
//! active segment has allocated ahead of its records (at most `appender::WINDOW`, a megabyte, within the
//! segment's size) are not reserved: the disk holds at most `max_bytes` plus that.
//!
//! **Reading and acknowledgement.** [`Spool::read_batch`] hands out durable records in id order,
//! each once (until a restart or a [`Spool::rewind`]), and waits when there is nothing new.
//! [`Spool::ack`] may be called in any order; the acknowledged position (`acked_through`: every
//! record up to it is done) advances only over a contiguous prefix of what was handed out. The writer persists it
//! in the ledger and deletes a segment only when every record in it is at or below
//! `acked_through`. After a restart, reading starts again right after `acked_through`, so every
//! record not acknowledged before the crash is delivered again.
//!
//! **Reading back.** [`Spool::find_trace`] (for `GET /logs/trace/{trace_id}`) scans the durable
//! part of every segment still on disk for one trace's entries, and [`Spool::find_trace_tree`]
//! (for `GET /trace_log/{trace_id}`) for a trace's and then, a pass per level, its children's,
//! like the reader (a snapshot of
//! the segment table, `pread` up to each durable length, on the blocking pool). It is
//! read-only: it moves no position, acknowledges nothing and never touches a file's contents
//! or existence.
//!
//! **Recovery** ([`Spool::open`]) never refuses to start because of damaged data; every repair
//! is logged with `tracing::warn!`:
//! - a missing or corrupt ledger counts as `acked_through = 0`: everything still on disk is
//!   delivered again rather than lost;
//! - each segment is scanned frame by frame. A frame that fails its CRC (or whose id does not
//!   grow) starts a corrupt region; the scan resynchronises on the next valid frame. Records in
//!   such a region are skipped and counted ([`SpoolStats::corrupt_skipped`], by the id gap);
//! - a corrupt or incomplete region at the end of the *last* segment is a torn tail from a crash
//!   mid-write: the file is truncated to its last valid frame ([`SpoolStats::torn_bytes`]); a
//!   tail of zeros is the room a mapped segment had allocated ahead, cut off without a count;
//! - segments fully at or below `acked_through`, and segments with no valid frame, are deleted;
//!   one that cannot be deleted keeps its name, so the next id starts past it (segments are
//!   named by their first id: the next segment would otherwise collide with it).
//! - what recovery reads is made durable first: the directory is fsynced before the ledger and
//!   the segments are read, and every segment kept is fsynced. After a restart without a power
//!   loss (a SIGKILL, say) what the last life wrote may be in the page cache only (records, a
//!   new segment's entry, the ledger's rename), and it is handed out or acted on from now on.
//!
//! **Lock.** `LOCK` is held with an exclusive, non-blocking `flock` for the life of the writer
//! thread, so a second daemon (or a second [`Spool::open`] in the same process) on the same
//! directory fails with [`SpoolError::Locked`] naming the directory and the holder's pid.
//!
//! **File system seam and fault tests.** Every file operation goes through [`fs::SpoolFs`]
//! ([`fs::RealFs`] for [`Spool::open`]; [`Spool::open_with`] takes another).
//! `tests/logs_spool_faults.rs` runs the spool on an in-memory one that loses power
//! (`tests/common/fault_fs.rs`: torn writes at 512 B and 4 KiB, garbage tails, lost directory
//! entries, a SIGKILL, I/O errors) and checks it against a model after every recovery: every
//! record whose [`Durable`] said `Ok` and that is not known acknowledged comes back, once, in
//! order, byte for byte.

mod appender;
mod error;
pub mod fs;
pub mod held_trace;
mod ledger;
mod lookup;
mod options;
mod reader;
mod recovery;
mod segment;
mod state;
mod stats;
pub mod trace_tree;
mod write_state;
mod writer;

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex as StdMutex};
use std::task::{Context, Poll};
use std::thread::JoinHandle;

use tokio::sync::oneshot;

pub use error::{Dropped, NotDurable, SpoolError};
use fs::{RealFs, SpoolFs};
use held_trace::HeldTrace;
pub use options::SpoolOptions;
use reader::Reader;
pub use reader::SpoolRecord;
use segment::{FRAME_HEADER, MAX_PAYLOAD};
use state::Shared;
pub use stats::SpoolStats;
use trace_tree::TraceTree;
use writer::WriterState;

/// Resolves once the appended record's batch is fsynced, to the record's spool id.
///
/// Dropping it does not cancel anything: the record is written either way.
#[derive(Debug)]
pub struct Durable(oneshot::Receiver<Result<u64, NotDurable>>);

impl std::future::Future for Durable {
    type Output = Result<u64, NotDurable>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.unwrap_or_else(|_| Err(NotDurable("the spool writer stopped first".into()))))
    }
}

/// A handle to an open spool; clones share it. The writer thread stops when the last handle is
/// dropped (after committing what is written) or at [`Spool::close`].
#[derive(Clone)]
pub struct Spool {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    reader: Arc<tokio::sync::Mutex<Reader>>,
    writer: StdMutex<Option<JoinHandle<()>>>,
    /// One trace lookup at a time: each reads the whole spool a segment at a time, and many at
    /// once would only compete for the disk and hold a segment's memory each.
    lookups: tokio::sync::Semaphore,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shared.request_shutdown();
    }
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool")
            .field("dir", &self.inner.shared.opts.dir)
            .finish_non_exhaustive()
    }
}

impl Spool {
    /// Open (or create) the spool in `opts.dir`: take the lock, recover, start the writer
    /// thread. Blocking (it scans every segment): call it at start-up or from `spawn_blocking`.
    /// Fails only when the directory cannot be used at all or is locked by another process.
    pub fn open(opts: SpoolOptions) -> Result<Spool, SpoolError> {
        Spool::open_with(opts, Arc::new(RealFs))
    }

    /// [`Spool::open`] on another file system than the machine's ([`fs`]): for tests that
    /// simulate what a power loss does to it.
    pub fn open_with(opts: SpoolOptions, fs: Arc<dyn SpoolFs>) -> Result<Spool, SpoolError> {
        let recovered = recovery::recover(&*fs, &opts)?;
        let reader = Reader::new(recovered.acked_through);
        let acked_through = recovered.acked_through;
        let (shared, file_lock) = Shared::new(opts, fs, recovered);
        let shared = Arc::new(shared);
        let writer_state = WriterState::new(file_lock, acked_through);
        let handle = writer::spawn(shared.clone(), writer_state)?;
        Ok(Spool {
            inner: Arc::new(Inner {
                shared,
                reader: Arc::new(tokio::sync::Mutex::new(reader)),
                writer: StdMutex::new(Some(handle)),
                lookups: tokio::sync::Semaphore::new(1),
            }),
        })
    }

    /// Write `payload` as the next record: when this returns `Ok`, the record is in the
    /// segment file (the page cache), so it outlives the process whatever kills it. Never
    /// waits for the disk (a copy into the mapped segment, or one `write(2)`: microseconds). The returned [`Durable`] resolves
    /// once the record is fsynced by the next group commit, or with why it could not be
    /// written; drop it if you don't need to know.
    pub fn append(&self, payload: impl AsRef<[u8]>) -> Result<Durable, Dropped> {
        let (tx, rx) = oneshot::channel();
        self.write(payload.as_ref(), Some(tx))?;
        Ok(Durable(rx))
    }

    /// [`Spool::append`] for a caller that never waits for the fsync: the same write, no
    /// [`Durable`] to make and resolve (the completion path's records).
    pub fn append_detached(&self, payload: impl AsRef<[u8]>) -> Result<(), Dropped> {
        self.write(payload.as_ref(), None)
    }

    fn write(
        &self,
        payload: &[u8],
        done: Option<oneshot::Sender<Result<u64, NotDurable>>>,
    ) -> Result<(), Dropped> {
        let shared = &self.inner.shared;
        if payload.len() > MAX_PAYLOAD {
            shared
                .counters
                .dropped_too_large
                .fetch_add(1, Ordering::Relaxed);
            return Err(Dropped::TooLarge);
        }
        let size = (FRAME_HEADER + payload.len()) as u64;
        if !shared.reserve(size) {
            shared.counters.dropped_full.fetch_add(1, Ordering::Relaxed);
            if !shared.full.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    dir = %shared.opts.dir.display(),
                    max_bytes = shared.max_bytes.load(Ordering::Relaxed),
                    "log spool full: dropping new records until the collector catches up"
                );
            }
            return Err(Dropped::Full);
        }
        if shared.full.swap(false, Ordering::Relaxed) {
            tracing::info!(dir = %shared.opts.dir.display(), "log spool has room again");
        }
        let mut appender = shared.appender();
        if appender.shutdown {
            drop(appender);
            shared.release(size);
            return Err(Dropped::Closed);
        }
        let wake = appender.write(shared, payload, size, done);
        drop(appender);
        if wake {
            shared.wake_writer();
        }
        shared.counters.appended.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Change the disk bound (config reload). Records already on disk stay; a lower bound only
    /// refuses new records until the backlog drains below it.
    pub fn set_max_bytes(&self, max_bytes: u64) {
        self.inner
            .shared
            .max_bytes
            .store(max_bytes, Ordering::Relaxed);
    }

    /// Start the group commit now instead of at the end of `flush_interval`.
    pub fn flush_now(&self) {
        self.inner.shared.request_flush();
    }

    /// Commit what is written and persist the acknowledged position now, and wait until both
    /// are done (either may have failed: see the [`Durable`]s and the log). Returns at once if
    /// the spool is closing. For tests and tools that need to know what is on disk; the
    /// request path uses [`Spool::flush_now`] and the [`Durable`]s.
    pub async fn sync(&self) {
        let (done, wait) = oneshot::channel();
        if self.inner.shared.request_sync(done) {
            // An error means the writer stopped first: nothing more will happen either way.
            let _ = wait.await;
        }
    }

    /// Up to `max` durable records after those already handed out, in id order; waits until
    /// there is at least one. Cancel-safe: records read by a cancelled call are handed out by
    /// the next one. Meant for one consumer (the flusher). Returns [`SpoolError::Closed`] once
    /// the spool is closed and nothing is left to hand out.
    pub async fn read_batch(&self, max: usize) -> Result<Vec<SpoolRecord>, SpoolError> {
        reader::read_batch(&self.inner.shared, &self.inner.reader, max.max(1)).await
    }

    /// Hand out again, from the acknowledged prefix on, every record not yet acknowledged, as a
    /// restart would. For a new consumer taking over (the flusher calls it when it starts);
    /// acknowledgements of records handed out before are then refused.
    pub async fn rewind(&self) {
        let mut reader = self.inner.reader.lock().await;
        let acked_through = self.inner.shared.with_state(|s| {
            s.acks.clear_window();
            s.acks.acked_through
        });
        *reader = Reader::new(acked_through);
    }

    /// Acknowledge a record handed out by [`Spool::read_batch`] (in any order). Returns `false`
    /// for an id that is not waiting for an acknowledgement (unknown or already acknowledged).
    pub fn ack(&self, id: u64) -> bool {
        self.inner.shared.ack(id)
    }

    /// The trace log record of `trace_id` still held on disk (its last durable `TraceLog`
    /// entry with later updates applied, see [`HeldTrace`]), or `None`: a record is held only
    /// until its segment is fully acknowledged and deleted. Read-only, O(bytes on disk): it
    /// runs on the blocking pool, one lookup at a time, and takes the state lock only to copy
    /// the segment table.
    /// Records not yet durable (written, waiting for their group commit) are not seen.
    pub async fn find_trace(&self, trace_id: &str) -> Result<Option<HeldTrace>, SpoolError> {
        // Never closed, so acquiring only waits.
        let _turn = self.inner.lookups.acquire().await;
        let shared = self.inner.shared.clone();
        let trace_id = trace_id.to_owned();
        tokio::task::spawn_blocking(move || {
            let found = lookup::find_trace(&shared, &trace_id)?;
            HeldTrace::from_entries(&trace_id, &found)
                .map_err(|source| SpoolError::BadEntry { trace_id, source })
        })
        .await
        .map_err(|e| SpoolError::LookupTask(e.to_string()))?
    }

    /// The trace of `trace_id` as [`Spool::find_trace`] finds it, with the children its record
    /// lists that are held too, and theirs ([`TraceTree`]; bounded in depth and size), or
    /// `None` if the trace itself is not held. One pass over the spool per level of the tree,
    /// all in one turn of the lookups.
    pub async fn find_trace_tree(&self, trace_id: &str) -> Result<Option<TraceTree>, SpoolError> {
        let _turn = self.inner.lookups.acquire().await;
        let shared = self.inner.shared.clone();
        let trace_id = trace_id.to_owned();
        tokio::task::spawn_blocking(move || trace_tree::gather(&shared, &trace_id))
            .await
            .map_err(|e| SpoolError::LookupTask(e.to_string()))?
    }

    /// Counters and sizes, cheap enough for every `/metrics` scrape.
    pub fn stats(&self) -> SpoolStats {
        self.inner.shared.stats()
    }

    /// Commit what is written, persist the acknowledged position, stop the writer thread and
    /// release the lock. Later appends return [`Dropped::Closed`]. Idempotent.
    pub async fn close(&self) {
        self.inner.shared.request_shutdown();
        let handle = match self.inner.writer.lock() {
            Ok(mut guard) => guard.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(handle) = handle {
            // Joining blocks until the last fsync is done: keep it off the async threads.
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
    }
}
