//! The spool's writer thread: group commit (fsync), ledger persistence, segment deletion.
//!
//! Records are written by the threads that append them ([`super::appender`]); this thread
//! makes them durable. One loop: wait for a due batch (or for acknowledgements the ledger does
//! not hold yet; with neither, the thread sleeps until woken), fsync the files it touched (and
//! the directory, for a new segment), resolve its [`super::Durable`]s, then persist the
//! acknowledged position and delete segments that are fully acknowledged.
//! [`super::Spool::sync`] asks for one turn of that loop now, with the ledger written whatever
//! the interval, and is answered at its end.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use super::appender;
use super::error::SpoolError;
use super::fs::FileLock;
use super::ledger;
use super::state::{SegmentMeta, Shared};

/// The writer's private state.
pub struct WriterState {
    /// Held (and so the directory locked) until the thread ends.
    _lock: FileLock,
    persisted_acked: u64,
    /// When the ledger was last written: at most once per `flush_interval` (and at shutdown).
    ledger_written: Option<Instant>,
}

impl WriterState {
    pub fn new(lock: FileLock, acked_through: u64) -> WriterState {
        WriterState {
            _lock: lock,
            persisted_acked: acked_through,
            ledger_written: None,
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

/// Whatever way the thread ends (even a panic), refuse new appends, fail what is not durable
/// (it is written, and a restart finds it), cut the active segment's unused room off and wake
/// the reader, so nobody waits for a writer that is gone.
struct ExitGuard(Arc<Shared>);

impl Drop for ExitGuard {
    fn drop(&mut self) {
        self.0.request_shutdown();
        let mut appender = self.0.appender();
        appender.fail_unsynced("the spool writer stopped first");
        appender.close();
        drop(appender);
        self.0.publish_closed();
    }
}

fn run(shared: Arc<Shared>, mut w: WriterState) {
    let _guard = ExitGuard(shared.clone());
    loop {
        let work = shared.wait_for_work(shared.acked_through() > w.persisted_acked);
        if let Some(batch) = work.batch {
            appender::commit(&shared, batch);
        }
        w.apply_acks(&shared, work.shutdown || !work.sync_waiters.is_empty());
        for done in work.sync_waiters {
            let _ = done.send(());
        }
        if work.shutdown {
            break;
        }
    }
}

impl WriterState {
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
        let acked = shared.acked_through();
        if acked == self.persisted_acked {
            return;
        }
        if let Err(e) = ledger::write(&*shared.fs, &shared.opts.dir, acked) {
            tracing::warn!(dir = %shared.opts.dir.display(), error = %e, "cannot persist the log spool ledger; will retry");
            return;
        }
        self.persisted_acked = acked;
        self.ledger_written = Some(Instant::now());
        // Segments whose every record is acknowledged, and that appenders are done with.
        let spent: Vec<(u64, SegmentMeta)> = {
            let mut ap = shared.appender();
            let candidates: Vec<(u64, SegmentMeta)> = shared.with_state(|s| {
                s.segments
                    .iter()
                    .filter(|(_, m)| m.last_id != 0 && m.last_id <= acked)
                    .map(|(k, m)| (*k, m.clone()))
                    .collect()
            });
            candidates
                .into_iter()
                .filter(|(first_id, _)| ap.release_if_spent(*first_id, acked))
                .collect()
        };
        for (first_id, meta) in spent {
            match shared.fs.remove_file(&meta.path) {
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
