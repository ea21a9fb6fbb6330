//! The spool's writer thread: group commit, rotation, ledger persistence, segment deletion.
//!
//! The only code that changes files in the spool directory (recovery aside, which runs before
//! it starts). One loop: wait for a due batch (or for acknowledgements the ledger does not hold
//! yet; with neither, the thread sleeps until woken), write it with one `write` per segment
//! touched and one `fdatasync` each, resolve its [`super::Durable`]s, then persist the
//! acknowledged position and delete segments that are fully acknowledged.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use nix::fcntl::Flock;

use super::error::{NotDurable, SpoolError};
use super::ledger;
use super::segment::{encode_frame, segment_path, FRAME_HEADER};
use super::state::{now_ms, Pending, SegmentMeta, Shared};

/// The writer's private state.
pub struct WriterState {
    /// Held (and so the directory locked) until the thread ends.
    _lock: Flock<File>,
    next_id: u64,
    active: Option<Active>,
    persisted_acked: u64,
    /// When the ledger was last written: at most once per `flush_interval` (and at shutdown).
    ledger_written: Option<Instant>,
    /// Reused frame buffer.
    buf: Vec<u8>,
    /// Group commits failing in a row (a full disk, say): logged when it starts and when it
    /// ends, counted in between.
    failing: Option<FailureRun>,
}

/// Consecutive failed group commits.
struct FailureRun {
    since: Instant,
    commits: u64,
    records: u64,
}

/// The segment being appended to.
struct Active {
    first_id: u64,
    file: File,
    /// Durable length: everything before it is fsynced whole frames.
    len: u64,
}

impl WriterState {
    pub fn new(lock: Flock<File>, next_id: u64, acked_through: u64) -> WriterState {
        WriterState {
            _lock: lock,
            next_id,
            active: None,
            persisted_acked: acked_through,
            ledger_written: None,
            buf: Vec::new(),
            failing: None,
        }
    }
}

/// Start the writer thread.
pub fn spawn(shared: Arc<Shared>, state: WriterState) -> Result<JoinHandle<()>, SpoolError> {
    let dir = shared.opts.dir.clone();
    std::thread::Builder::new()
        .name("promptd-spool".into())
        .spawn(move || run(shared, state))
        .map_err(|e| SpoolError::io(&dir, "starting the writer thread", e))
}

/// Whatever way the thread ends (even a panic), refuse new appends, fail what is still queued
/// and wake the reader, so nobody waits for a writer that is gone.
struct ExitGuard(Arc<Shared>);

impl Drop for ExitGuard {
    fn drop(&mut self) {
        self.0.request_shutdown();
        drop(self.0.take_queue());
        self.0.publish_closed();
    }
}

fn run(shared: Arc<Shared>, mut w: WriterState) {
    let _guard = ExitGuard(shared.clone());
    loop {
        let work = shared.wait_for_work(shared.acked_through() > w.persisted_acked);
        if !work.items.is_empty() {
            w.commit(&shared, work.items);
        }
        w.apply_acks(&shared, work.shutdown);
        if work.shutdown {
            break;
        }
    }
    if let Some(active) = w.active.take() {
        let _ = active.file.sync_all();
    }
}

impl WriterState {
    /// Write `items` in id order, rotating segments as needed. Each segment's part is fsynced
    /// before its records are resolved; after a failure the rest of the batch fails too.
    fn commit(&mut self, shared: &Shared, items: Vec<Pending>) {
        let segment_bytes = shared.opts.segment_bytes;
        let mut rest = items.into_iter().peekable();
        while let Some(first) = rest.peek() {
            let first_size = (FRAME_HEADER + first.payload.len()) as u64;
            if let Some(active) = &self.active {
                if active.len > 0 && active.len + first_size > segment_bytes {
                    self.active = None; // sealed: already fsynced whole
                }
            }
            let used = self.active.as_ref().map_or(0, |a| a.len);
            let mut chunk = Vec::new();
            let mut size = used;
            while let Some(item) = rest.peek() {
                let frame = (FRAME_HEADER + item.payload.len()) as u64;
                if !chunk.is_empty() && size + frame > segment_bytes {
                    break;
                }
                size += frame;
                if let Some(item) = rest.next() {
                    chunk.push(item);
                }
            }
            let first_id = self.next_id;
            self.next_id += chunk.len() as u64;
            if let Err(message) = self.write_chunk(shared, first_id, &chunk) {
                let failed: Vec<Pending> = chunk.into_iter().chain(rest).collect();
                self.fail(shared, failed, message);
                return;
            }
            if let Some(run) = self.failing.take() {
                tracing::warn!(
                    failed_commits = run.commits,
                    records_lost = run.records,
                    after = ?run.since.elapsed(),
                    "log spool writes again"
                );
            }
            let last_id = first_id + chunk.len() as u64 - 1;
            for (i, item) in chunk.into_iter().enumerate() {
                let _ = item.done.send(Ok(first_id + i as u64));
            }
            shared.notify_commit(last_id);
        }
    }

    /// Append `chunk` (ids from `first_id`) to the active segment (opening one if needed),
    /// fsync, and publish the new durable length.
    fn write_chunk(
        &mut self,
        shared: &Shared,
        first_id: u64,
        chunk: &[Pending],
    ) -> Result<(), String> {
        let at_ms = now_ms();
        self.buf.clear();
        for (i, item) in chunk.iter().enumerate() {
            encode_frame(&mut self.buf, first_id + i as u64, at_ms, &item.payload);
        }
        if self.active.is_none() {
            self.active = Some(open_segment(shared, first_id)?);
        }
        let Some(active) = self.active.as_mut() else {
            return Err("no active segment".into());
        };
        let written = active
            .file
            .write_all(&self.buf)
            .and_then(|()| active.file.sync_data());
        if let Err(e) = written {
            let message = format!(
                "writing {}: {e}",
                segment_path(&shared.opts.dir, active.first_id).display()
            );
            self.seal_after_failure(shared);
            return Err(message);
        }
        active.len += self.buf.len() as u64;
        let (seg_first, len) = (active.first_id, active.len);
        let last_id = first_id + chunk.len() as u64 - 1;
        shared.with_state(|s| {
            if let Some(meta) = s.segments.get_mut(&seg_first) {
                meta.durable_len = len;
                meta.file_bytes = len;
                meta.last_id = last_id;
            }
            s.committed_id = last_id;
            s.waiting += chunk.len() as u64;
            s.note_age(first_id, at_ms);
        });
        shared
            .counters
            .committed
            .fetch_add(chunk.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// A write or fsync failed: the active segment's tail beyond its durable length is unknown.
    /// Cut it off if possible and stop appending to that file.
    fn seal_after_failure(&mut self, shared: &Shared) {
        let Some(active) = self.active.take() else {
            return;
        };
        let truncated = active
            .file
            .set_len(active.len)
            .and_then(|()| active.file.sync_all());
        let file_bytes = match truncated {
            Ok(()) => active.len,
            Err(_) => active
                .file
                .metadata()
                .map(|m| m.len())
                .unwrap_or(active.len),
        };
        let extra = file_bytes.saturating_sub(active.len);
        let empty = shared.with_state(|s| {
            let meta = s.segments.get_mut(&active.first_id);
            let empty = meta.as_ref().is_some_and(|m| m.last_id == 0);
            if let Some(meta) = meta {
                meta.file_bytes = file_bytes;
            }
            if empty {
                s.segments.remove(&active.first_id);
            }
            empty
        });
        // Bytes left behind by the failed write count against the bound like any other.
        shared.add_reserved(extra);
        if empty {
            let path = segment_path(&shared.opts.dir, active.first_id);
            if std::fs::remove_file(&path).is_ok() {
                shared.release(file_bytes);
            }
        }
    }

    /// Resolve `items` as not durable and give back their reservations.
    fn fail(&mut self, shared: &Shared, items: Vec<Pending>, message: String) {
        match &mut self.failing {
            Some(run) => {
                run.commits += 1;
                run.records += items.len() as u64;
                tracing::debug!(error = %message, records = items.len(), "log spool group commit failed");
            }
            None => {
                tracing::error!(
                    error = %message,
                    records = items.len(),
                    "log spool group commit failed: records are not stored until it can write \
                     again (further failures are counted in /logs/status)"
                );
                self.failing = Some(FailureRun {
                    since: Instant::now(),
                    commits: 1,
                    records: items.len() as u64,
                });
            }
        }
        shared.counters.write_errors.fetch_add(1, Ordering::Relaxed);
        let committed = self.next_id - 1;
        shared.with_state(|s| {
            s.last_write_error = Some(message.clone());
            // Ids of the failed records are spent (never reused): let the reader pass them.
            s.committed_id = committed;
        });
        let mut bytes = 0;
        for item in items {
            bytes += (FRAME_HEADER + item.payload.len()) as u64;
            let _ = item.done.send(Err(NotDurable(message.clone())));
        }
        shared.release(bytes);
        shared.notify_commit(committed);
    }

    /// Persist a new acknowledged position, then delete the segments it covers. The ledger
    /// goes first: a crash in between leaves spent segments, which recovery deletes. Under load
    /// this runs after every commit; the ledger (two fsyncs) is written at most once per
    /// `flush_interval` unless `now`.
    fn apply_acks(&mut self, shared: &Shared, now: bool) {
        let interval = shared.opts.flush_interval;
        if !now
            && self
                .ledger_written
                .is_some_and(|at| at.elapsed() < interval)
        {
            return;
        }
        let (acked, spent) = shared.with_state(|s| {
            let acked = s.acks.acked_through;
            let spent: Vec<(u64, SegmentMeta)> = s
                .segments
                .iter()
                .filter(|(_, m)| m.last_id <= acked)
                .map(|(k, m)| (*k, m.clone()))
                .collect();
            (acked, spent)
        });
        if acked == self.persisted_acked {
            return;
        }
        if let Err(e) = ledger::write(&shared.opts.dir, acked) {
            tracing::warn!(dir = %shared.opts.dir.display(), error = %e, "cannot persist the log spool ledger; will retry");
            return;
        }
        self.persisted_acked = acked;
        self.ledger_written = Some(Instant::now());
        for (first_id, meta) in spent {
            if self.active.as_ref().is_some_and(|a| a.first_id == first_id) {
                self.active = None;
            }
            match std::fs::remove_file(&meta.path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(path = %meta.path.display(), error = %e, "cannot delete a spent log spool segment");
                    continue;
                }
            }
            shared.with_state(|s| s.segments.remove(&first_id));
            shared.release(meta.file_bytes);
        }
    }
}

/// Create the segment file for records from `first_id` and make its directory entry durable.
fn open_segment(shared: &Shared, first_id: u64) -> Result<Active, String> {
    let dir = &shared.opts.dir;
    let path = segment_path(dir, first_id);
    let file = OpenOptions::new()
        .append(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| format!("creating {}: {e}", path.display()))?;
    ledger::sync_dir(dir).map_err(|e| format!("syncing {}: {e}", dir.display()))?;
    shared.with_state(|s| {
        s.segments.insert(
            first_id,
            SegmentMeta {
                path,
                durable_len: 0,
                file_bytes: 0,
                last_id: 0,
            },
        )
    });
    Ok(Active {
        first_id,
        file,
        len: 0,
    })
}
