//! State shared by the spool's handles, its writer thread and its reader: the write side,
//! the segment table, the acknowledgement window and the counters.
//!
//! Two locks: `appender` (appenders writing a record, the writer taking a batch; see
//! [`super::appender`]) and `state` (the segment table and what the writer publishes after a
//! commit, which the reader and `ack` read). When both are held, `appender` is taken first.
//! The byte bound is an atomic reservation so `append` never waits for the writer.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{oneshot, watch};

use super::fs::{FileLock, SpoolFs};
use super::options::SpoolOptions;
use super::stats::SpoolStats;
use super::write_state::{Appender, Batch};

/// Entries of the age index are at least this far apart: `oldest_waiting_age` is exact to it.
const AGE_RESOLUTION_MS: u64 = 1000;

/// What recovery ([`super::recovery`]) found and repaired: what the spool starts from.
pub struct Recovered {
    pub lock: FileLock,
    pub acked_through: u64,
    /// Id for the next record written.
    pub next_id: u64,
    pub segments: BTreeMap<u64, SegmentMeta>,
    /// Valid records above `acked_through`.
    pub waiting: u64,
    pub ages: VecDeque<(u64, u64)>,
    pub corrupt_skipped: u64,
    pub torn_bytes: u64,
}

/// What the writer takes in one go: a batch to make durable, whether to stop after it, and
/// who waits for it and for the ledger ([`super::Spool::sync`]).
pub struct Work {
    pub batch: Option<Batch>,
    pub shutdown: bool,
    pub sync_waiters: Vec<oneshot::Sender<()>>,
}

/// One segment file as the writer last published it.
#[derive(Debug, Clone)]
pub struct SegmentMeta {
    pub path: PathBuf,
    /// Bytes the reader may read: whole, fsynced frames.
    pub durable_len: u64,
    /// Bytes of the file counted against `max_bytes` as on disk: `durable_len`, or more after
    /// a failed write could not be truncated away. Frames written and not yet fsynced are
    /// counted by their records' reservations until their commit.
    pub file_bytes: u64,
    /// Id of the last record in it, 0 if none.
    pub last_id: u64,
}

/// Records handed out, in order, with whether each was acknowledged. Only the front matters for
/// the prefix; the window is as long as the flusher's backlog of unacknowledged records.
#[derive(Debug, Default)]
pub struct AckWindow {
    pub acked_through: u64,
    handed: VecDeque<(u64, Slot)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Waiting,
    Acked,
    /// Ids passed over as corrupt: nothing to acknowledge, already out of `waiting`.
    Skipped,
}

impl AckWindow {
    /// Record that `id` (greater than every id before) was handed out.
    pub fn hand_out(&mut self, id: u64) {
        self.handed.push_back((id, Slot::Waiting));
    }

    /// Record that ids up to `id` were skipped as corrupt: they need no acknowledgement.
    pub fn skip_through(&mut self, id: u64) {
        self.handed.push_back((id, Slot::Skipped));
    }

    /// Forget what was handed out (a rewind): only the prefix stays.
    pub fn clear_window(&mut self) {
        self.handed.clear();
    }

    /// Mark `id` acknowledged; returns how many records the prefix advanced over, or `None` if
    /// `id` was not waiting.
    pub fn ack(&mut self, id: u64) -> Option<u64> {
        let at = self.handed.binary_search_by_key(&id, |(i, _)| *i).ok()?;
        let entry = &mut self.handed[at];
        if entry.1 != Slot::Waiting {
            return None;
        }
        entry.1 = Slot::Acked;
        Some(self.advance())
    }

    /// Move `acked_through` over the done front of the window; returns the records passed.
    pub fn advance(&mut self) -> u64 {
        let mut records = 0;
        while let Some(&(id, slot)) = self.handed.front() {
            match slot {
                Slot::Waiting => break,
                Slot::Acked => records += 1,
                Slot::Skipped => {}
            }
            self.handed.pop_front();
            self.acked_through = id;
        }
        records
    }
}

/// What the reader passed to its caller, in id order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handed {
    Record(u64),
    /// A corrupt run ending at id `through`, holding `records` records.
    Skipped {
        through: u64,
        records: u64,
    },
}

/// What the writer publishes and the reader and `ack` read.
pub struct State {
    pub segments: BTreeMap<u64, SegmentMeta>,
    pub acks: AckWindow,
    /// Highest id made durable (or spent by a failed commit).
    pub committed_id: u64,
    pub closed: bool,
    /// Durable records above `acked_through`.
    pub waiting: u64,
    /// `(first id, unix ms)`: records from that id on were appended at or after that time.
    pub ages: VecDeque<(u64, u64)>,
    pub last_write_error: Option<String>,
}

impl State {
    /// Note the append time of a run of records starting at `id`.
    pub fn note_age(&mut self, id: u64, at_ms: u64) {
        note_age(&mut self.ages, id, at_ms);
    }

    fn prune_ages(&mut self) {
        let first_waiting = self.acks.acked_through + 1;
        while self.ages.len() > 1 && self.ages[1].0 <= first_waiting {
            self.ages.pop_front();
        }
    }
}

/// Push `(id, at_ms)` unless the last entry is less than the resolution older.
pub fn note_age(ages: &mut VecDeque<(u64, u64)>, id: u64, at_ms: u64) {
    match ages.back() {
        Some(&(_, last)) if at_ms < last.saturating_add(AGE_RESOLUTION_MS) => {}
        _ => ages.push_back((id, at_ms)),
    }
}

/// Monotonic counters for [`SpoolStats`].
#[derive(Default)]
pub struct Counters {
    pub appended: AtomicU64,
    pub committed: AtomicU64,
    pub dropped_full: AtomicU64,
    pub dropped_too_large: AtomicU64,
    pub corrupt_skipped: AtomicU64,
    pub torn_bytes: AtomicU64,
    pub write_errors: AtomicU64,
}

/// A copy of what the reader needs, taken under the state lock.
pub struct Snapshot {
    pub committed_id: u64,
    pub segments: Vec<(u64, SegmentMeta)>,
}

/// Everything the spool's parts share.
pub struct Shared {
    pub opts: SpoolOptions,
    /// Every file operation goes through it ([`super::fs`]).
    pub fs: Arc<dyn SpoolFs>,
    appender: Mutex<Appender>,
    /// Wakes the writer thread (waiting with the `appender` lock).
    wake: Condvar,
    state: Mutex<State>,
    /// Bumped after every commit (and at close) to wake a waiting reader.
    pub commits: watch::Sender<u64>,
    pub counters: Counters,
    /// Bytes on disk, fsynced or not: what `max_bytes` bounds.
    reserved: AtomicU64,
    /// The bound, changeable while running (config reload).
    pub max_bytes: AtomicU64,
    /// The last append found the spool full (log the change, not every drop).
    pub full: AtomicBool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing holding these locks leaves data half-updated on panic; keep going.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Shared {
    /// Build the shared state from what recovery found; the lock goes to the writer thread.
    pub fn new(
        opts: SpoolOptions,
        fs: Arc<dyn SpoolFs>,
        recovered: Recovered,
    ) -> (Shared, FileLock) {
        let Recovered {
            lock: file_lock,
            acked_through,
            next_id,
            segments,
            waiting,
            ages,
            corrupt_skipped,
            torn_bytes,
        } = recovered;
        let bytes: u64 = segments.values().map(|s| s.file_bytes).sum();
        let max_bytes = opts.max_bytes;
        let counters = Counters::default();
        counters
            .corrupt_skipped
            .store(corrupt_skipped, Ordering::Relaxed);
        counters.torn_bytes.store(torn_bytes, Ordering::Relaxed);
        let state = State {
            segments,
            acks: AckWindow {
                acked_through,
                handed: VecDeque::new(),
            },
            committed_id: next_id - 1,
            closed: false,
            waiting,
            ages,
            last_write_error: None,
        };
        let shared = Shared {
            opts,
            fs,
            appender: Mutex::new(Appender::new(next_id)),
            wake: Condvar::new(),
            state: Mutex::new(state),
            commits: watch::Sender::new(next_id - 1),
            counters,
            reserved: AtomicU64::new(bytes),
            max_bytes: AtomicU64::new(max_bytes),
            full: AtomicBool::new(false),
        };
        (shared, file_lock)
    }

    /// Reserve `size` bytes against `max_bytes`; `false` if they do not fit.
    pub fn reserve(&self, size: u64) -> bool {
        let max = self.max_bytes.load(Ordering::Relaxed);
        self.reserved
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                cur.checked_add(size).filter(|total| *total <= max)
            })
            .is_ok()
    }

    /// Count bytes that are on disk whether they fit or not.
    pub fn add_reserved(&self, size: u64) {
        self.reserved.fetch_add(size, Ordering::AcqRel);
    }

    /// Give back a reservation (a deleted segment, a record that was never written).
    pub fn release(&self, size: u64) {
        let _ = self
            .reserved
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                Some(cur.saturating_sub(size))
            });
    }

    /// The write side (see the lock order in the header).
    pub fn appender(&self) -> MutexGuard<'_, Appender> {
        lock(&self.appender)
    }

    /// Wake the writer thread (a batch's interval starts, or a batch is full).
    pub fn wake_writer(&self) {
        self.wake.notify_one();
    }

    pub fn request_flush(&self) {
        self.appender().flush = true;
        self.wake.notify_one();
    }

    /// Have the writer commit now and persist the ledger, then answer `done`; `false` (and
    /// nothing to wait for) once the spool is closing.
    pub fn request_sync(&self, done: oneshot::Sender<()>) -> bool {
        let mut ap = self.appender();
        if ap.shutdown {
            return false;
        }
        ap.sync_waiters.push(done);
        self.wake.notify_one();
        true
    }

    pub fn request_shutdown(&self) {
        self.appender().shutdown = true;
        self.wake.notify_one();
    }

    /// Writer side: block until the writer has something to do: a batch that is due, a flush,
    /// shutdown, or (within `flush_interval`) acknowledgements the ledger does not hold yet;
    /// `acks_outstanding` says the writer already knows of some. With none of these it sleeps
    /// until woken: an idle spool does not wake up.
    pub fn wait_for_work(&self, acks_outstanding: bool) -> Work {
        let interval = self.opts.flush_interval;
        let mut ap = self.appender();
        let idle_deadline = Instant::now() + interval;
        loop {
            let now = Instant::now();
            let due = ap.shutdown
                || ap.flush
                || !ap.sync_waiters.is_empty()
                || ap.unsynced_len() >= self.opts.max_batch
                || ap.first_at.is_some_and(|t| now >= t + interval);
            let acks = acks_outstanding || ap.acks;
            if due || (acks && ap.first_at.is_none() && now >= idle_deadline) {
                ap.flush = false;
                ap.acks = false;
                return Work {
                    batch: Some(ap.take_batch()),
                    shutdown: ap.shutdown,
                    sync_waiters: std::mem::take(&mut ap.sync_waiters),
                };
            }
            let deadline = match ap.first_at {
                Some(t) => t + interval,
                None if acks => idle_deadline,
                None => {
                    ap = self.wake.wait(ap).unwrap_or_else(PoisonError::into_inner);
                    continue;
                }
            };
            let timeout = deadline.saturating_duration_since(now);
            ap = self
                .wake
                .wait_timeout(ap, timeout.max(Duration::from_micros(100)))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// `acked_through` moved: make sure the writer will persist it (the state lock must not be
    /// held: it comes after the append lock).
    fn note_acks(&self) {
        let mut ap = self.appender();
        if !ap.acks {
            ap.acks = true;
            self.wake.notify_one();
        }
    }

    /// The acknowledged position in memory (the ledger may be behind it).
    pub fn acked_through(&self) -> u64 {
        lock(&self.state).acks.acked_through
    }

    /// Run `f` on the published state.
    pub fn with_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut lock(&self.state))
    }

    /// Publish a change that lets the reader make progress.
    pub fn notify_commit(&self, committed_id: u64) {
        self.commits.send_replace(committed_id);
    }

    /// The writer stopped: no more commits will come.
    pub fn publish_closed(&self) {
        let committed = self.with_state(|s| {
            s.closed = true;
            s.committed_id
        });
        self.notify_commit(committed);
    }

    /// What the reader needs, consistently.
    pub fn snapshot(&self) -> Snapshot {
        let state = lock(&self.state);
        Snapshot {
            committed_id: state.committed_id,
            segments: state
                .segments
                .iter()
                .map(|(k, v)| (*k, v.clone()))
                .collect(),
        }
    }

    /// Acknowledge a handed-out record.
    pub fn ack(&self, id: u64) -> bool {
        let mut state = lock(&self.state);
        let before = state.acks.acked_through;
        let Some(advanced) = state.acks.ack(id) else {
            return false;
        };
        state.waiting = state.waiting.saturating_sub(advanced);
        state.prune_ages();
        let moved = state.acks.acked_through != before;
        drop(state);
        if moved {
            self.note_acks();
        }
        true
    }

    /// Enter records handed out (and runs of ids skipped as corrupt) into the ack window.
    pub fn hand_out(&self, items: impl IntoIterator<Item = Handed>) {
        let mut state = lock(&self.state);
        let before = state.acks.acked_through;
        let mut skipped_any = false;
        for item in items {
            match item {
                Handed::Record(id) => state.acks.hand_out(id),
                Handed::Skipped { through, records } => {
                    state.acks.skip_through(through);
                    state.waiting = state.waiting.saturating_sub(records);
                    skipped_any = true;
                }
            }
        }
        if skipped_any {
            let advanced = state.acks.advance();
            state.waiting = state.waiting.saturating_sub(advanced);
            state.prune_ages();
        }
        let moved = state.acks.acked_through != before;
        drop(state);
        if moved {
            self.note_acks();
        }
    }

    pub fn stats(&self) -> SpoolStats {
        let bytes_queued = self.appender().unsynced_bytes;
        let state = lock(&self.state);
        let c = &self.counters;
        let now = now_ms();
        SpoolStats {
            waiting_records: state.waiting,
            bytes_on_disk: state.segments.values().map(|s| s.file_bytes).sum(),
            bytes_queued,
            oldest_waiting_age: (state.waiting > 0)
                .then(|| state.ages.front())
                .flatten()
                .map(|&(_, at)| Duration::from_millis(now.saturating_sub(at))),
            acked_through: state.acks.acked_through,
            segments: state.segments.len() as u64,
            appended: c.appended.load(Ordering::Relaxed),
            committed: c.committed.load(Ordering::Relaxed),
            dropped_full: c.dropped_full.load(Ordering::Relaxed),
            dropped_too_large: c.dropped_too_large.load(Ordering::Relaxed),
            corrupt_skipped: c.corrupt_skipped.load(Ordering::Relaxed),
            torn_bytes: c.torn_bytes.load(Ordering::Relaxed),
            write_errors: c.write_errors.load(Ordering::Relaxed),
            last_write_error: state.last_write_error.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_advances_only_when_contiguous() {
        let mut w = AckWindow::default();
        for id in 1..=5 {
            w.hand_out(id);
        }
        assert_eq!(w.ack(3), Some(0));
        assert_eq!(w.ack(2), Some(0));
        assert_eq!(w.acked_through, 0);
        assert_eq!(w.ack(1), Some(3));
        assert_eq!(w.acked_through, 3);
        assert_eq!(w.ack(3), None, "already acknowledged");
        assert_eq!(w.ack(9), None, "never handed out");
        assert_eq!(w.ack(5), Some(0));
        assert_eq!(w.ack(4), Some(2));
        assert_eq!(w.acked_through, 5);
    }

    #[test]
    fn skipped_ids_do_not_hold_the_prefix() {
        let mut w = AckWindow::default();
        w.hand_out(1);
        w.skip_through(2);
        w.hand_out(3);
        assert_eq!(w.ack(1), Some(1));
        assert_eq!(w.acked_through, 2);
        assert_eq!(w.ack(3), Some(1));
        assert_eq!(w.acked_through, 3);
    }
}
