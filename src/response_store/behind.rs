//! Keeping off the request path: an answer to keep is put in memory (`pending`) and written to
//! the files by one writer thread, so no request waits on a write or an `fdatasync`. A pending answer is read like a
//! written one: `previous_response_id` right after the answer finds it.
//!
//! - The writer, rung, waits [`LINGER`] (2 ms) for more, then takes what is pending, writes it
//!   (one append for the lot and the removals of what it evicts, [`ResponseStore::put_many`], with the
//!   bounds applied as [`ResponseStore::put`] does; nothing for an answer whose owner's record of that id is there already: a cache
//!   hit's answer is its entry's, kept again) and then drops each from
//!   `pending`, unless it was replaced or deleted meanwhile (compared by identity). Writes and deletes take one lock,
//!   so a delete never races a write of the same id.
//! - At most [`MAX_PENDING`] answers wait; past that a keep writes in the caller (back
//!   pressure instead of unbounded memory).
//! - Dropping the last handle writes what is pending before it returns (a clean stop keeps
//!   everything); a SIGKILL loses what was still pending (answers of the last milliseconds:
//!   [`LINGER`] and the write).

use std::collections::HashMap;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::log::SYNC_EVERY;
use super::store::{ResponseStore, StoreError, Totals};
use super::{Owner, Stored};
use crate::config::ResponsesConfig;

/// Answers waiting for the writer, at most.
pub const MAX_PENDING: usize = 1024;

/// An answer waiting for the writer, with the bounds of when it was kept.
#[derive(Debug)]
struct Pending {
    stored: Stored,
    limits: ResponsesConfig,
    now_ms: u64,
}

#[derive(Debug, Default)]
struct Shared {
    pending: Mutex<HashMap<String, Arc<Pending>>>,
    /// Held by the writer while it writes and by a delete.
    write: Mutex<()>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The kept responses, written behind the requests.
#[derive(Debug)]
pub struct Kept {
    store: Arc<ResponseStore>,
    /// The store can keep (its directory opened at start): else nothing is queued.
    available: bool,
    shared: Arc<Shared>,
    bell: Option<SyncSender<()>>,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl Kept {
    /// The store, with its writer thread started.
    pub fn new(store: ResponseStore) -> std::io::Result<Kept> {
        let available = store.available();
        let store = Arc::new(store);
        let shared = Arc::new(Shared::default());
        let (bell, rung) = sync_channel(1);
        let writer = {
            let (store, shared) = (Arc::clone(&store), Arc::clone(&shared));
            std::thread::Builder::new()
                .name("promptd-responses".into())
                .spawn(move || write_behind(&store, &shared, &rung))?
        };
        Ok(Kept {
            store,
            available,
            shared,
            bell: Some(bell),
            writer: Some(writer),
        })
    }

    /// What the store holds (what is pending not yet counted).
    pub fn totals(&self) -> Totals {
        self.store.totals()
    }

    /// Keep `stored` as response `id` (see the header); nothing when `limits` say not to.
    pub fn keep(&self, id: &str, stored: Stored, limits: ResponsesConfig, now_ms: u64) {
        if !limits.enabled || !self.available {
            return;
        }
        let mut pending = lock(&self.shared.pending);
        if pending.len() >= MAX_PENDING && !pending.contains_key(id) {
            drop(pending);
            if let Err(e) = self.store.put(id, &stored, &limits, now_ms) {
                warn(id, &e);
            }
            return;
        }
        let entry = Pending {
            stored,
            limits,
            now_ms,
        };
        pending.insert(id.to_owned(), Arc::new(entry));
        drop(pending);
        if let Some(bell) = &self.bell {
            // Full: the writer is already called.
            if let Err(TrySendError::Disconnected(())) = bell.try_send(()) {
                tracing::warn!(id, "the kept responses' writer is gone: not kept");
            }
        }
    }

    /// Whether the record `id` of `owner`, not past `max_age`, is kept already (pending, or
    /// known written): a cache hit's answer, named by its entry and owner, need not be built
    /// into a record and queued again. `false` says only "not known".
    pub fn holds(&self, id: &str, owner: Owner, max_age: Duration, now_ms: u64) -> bool {
        match self.pending(id) {
            Some(p) => p.stored.readable_by(owner, max_age, now_ms),
            None => self.store.holds(id, owner, max_age, now_ms),
        }
    }

    /// The keep of `id` waiting for the writer, if one is.
    fn pending(&self, id: &str) -> Option<Arc<Pending>> {
        lock(&self.shared.pending).get(id).map(Arc::clone)
    }

    /// The record `id` when `owner` made it and it is not past `max_age`, pending or written.
    pub fn get(
        &self,
        id: &str,
        owner: Owner,
        max_age: Duration,
        now_ms: u64,
    ) -> Result<Option<Stored>, StoreError> {
        match self.pending(id) {
            Some(p) => Ok(p
                .stored
                .readable_by(owner, max_age, now_ms)
                .then(|| p.stored.clone())),
            None => self.store.get(id, owner, max_age, now_ms),
        }
    }

    /// Delete record `id` if `owner` made it, pending or written; whether it did.
    pub fn delete(&self, id: &str, owner: Owner, now_ms: u64) -> Result<bool, StoreError> {
        let _writing = lock(&self.shared.write);
        let pending_mine = {
            let mut pending = lock(&self.shared.pending);
            let mine = pending.get(id).is_some_and(|p| p.stored.owner == owner);
            if mine {
                pending.remove(id);
            }
            mine
        };
        let written_mine = self.store.delete(id, owner, now_ms)?;
        Ok(pending_mine || written_mine)
    }

    /// Write everything pending now (the writer does it on its own).
    #[cfg(test)]
    fn flush(&self) {
        write_pending(&self.store, &self.shared);
    }
}

impl Drop for Kept {
    /// Stop the writer after it has written what is pending.
    fn drop(&mut self) {
        drop(self.bell.take());
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

fn warn(id: &str, e: &StoreError) {
    tracing::warn!(id, error = %e, "the answer was not kept for previous_response_id");
}

/// How long the writer lets answers gather after the bell before it takes them. Without it,
/// under load every keep found the writer asleep on the bell and woke it for a batch of one or
/// two: a futex wake and two context switches per answer (on one core, about a third of a
/// kept call's CPU). Sleeping, the writer is not waiting on the bell, so a keep only fills it.
const LINGER: Duration = Duration::from_millis(2);

/// The writer: when the bell rings, let answers gather for [`LINGER`], then write what is
/// pending; make what it wrote durable at most every [`SYNC_EVERY`]; once every handle is
/// gone, write what is left and stop (the store syncs when dropped).
fn write_behind(store: &ResponseStore, shared: &Shared, rung: &Receiver<()>) {
    let mut unsynced = false;
    loop {
        // Asleep for good when everything written is durable (no wake-ups on an idle daemon);
        // else until it is time to make it so.
        let rang = if unsynced {
            rung.recv_timeout(SYNC_EVERY)
        } else {
            rung.recv().map_err(|_| RecvTimeoutError::Disconnected)
        };
        match rang {
            Ok(()) => {
                std::thread::sleep(LINGER);
                write_pending(store, shared);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        unsynced = store.sync_if_due();
    }
    write_pending(store, shared);
}

/// Write what is pending, batch after batch, until nothing is.
fn write_pending(store: &ResponseStore, shared: &Shared) {
    loop {
        let batch: Vec<(String, Arc<Pending>)> = lock(&shared.pending)
            .iter()
            .map(|(id, p)| (id.clone(), Arc::clone(p)))
            .collect();
        if batch.is_empty() {
            return;
        }
        let _writing = lock(&shared.write);
        let current = |id: &str, p: &Arc<Pending>| {
            lock(&shared.pending)
                .get(id)
                .is_some_and(|q| Arc::ptr_eq(q, p))
        };
        // Replaced (the new one is in the next batch) or deleted meanwhile: not written. The
        // same answer kept again (a cache hit's id is its entry's and its owner's): the record
        // there is the one this would write.
        let writes: Vec<&(String, Arc<Pending>)> = batch
            .iter()
            .filter(|(id, p)| current(id, p))
            .filter(|(id, p)| !store.holds(id, p.stored.owner, p.limits.max_age, p.now_ms))
            .collect();
        // One write for the answers kept under the same bounds (a reload between them
        // starts another).
        for group in writes.chunk_by(|a, b| a.1.limits == b.1.limits) {
            let items: Vec<(&str, &Stored)> = group
                .iter()
                .map(|(id, p)| (id.as_str(), &p.stored))
                .collect();
            let last = &group[group.len() - 1].1;
            let outcomes = store.put_many(&items, &last.limits, last.now_ms);
            for ((id, _), outcome) in group.iter().zip(outcomes) {
                if let Err(e) = outcome {
                    warn(id, &e);
                }
            }
        }
        let mut pending = lock(&shared.pending);
        for (id, p) in &batch {
            if pending.get(id).is_some_and(|q| Arc::ptr_eq(q, p)) {
                pending.remove(id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept() -> (tempfile::TempDir, Kept) {
        let dir = tempfile::tempdir().expect("a directory");
        let kept = Kept::new(ResponseStore::open(dir.path()).expect("open")).expect("writer");
        (dir, kept)
    }

    fn record(owner: Owner, text: &str) -> Stored {
        Stored {
            owner,
            created_ms: 1_000,
            input: format!(r#"[{{"role":"user","content":"{text}"}}]"#),
            response: r#"{"id":"resp_x","object":"response","output":[]}"#.to_owned(),
        }
    }

    const ME: Owner = Owner::Uid(1000);
    const DAY: Duration = Duration::from_secs(24 * 3600);

    #[test]
    fn a_kept_answer_is_read_at_once_and_written_by_the_writer() {
        let (db, kept) = kept();
        let r = record(ME, "hi");
        kept.keep("resp_a", r.clone(), ResponsesConfig::default(), 1_000);
        assert_eq!(
            kept.get("resp_a", ME, DAY, 2_000).expect("get"),
            Some(r.clone())
        );
        assert_eq!(
            kept.get("resp_a", Owner::Tcp, DAY, 2_000).expect("get"),
            None
        );
        kept.flush();
        assert_eq!(kept.totals().count, 1);
        drop(kept);
        let store = ResponseStore::open(db.path()).expect("reopen");
        assert_eq!(store.get("resp_a", ME, DAY, 2_000).expect("get"), Some(r));
    }

    #[test]
    fn a_delete_wins_over_a_pending_write_and_dropping_writes_the_rest() {
        let (db, kept) = kept();
        kept.keep("resp_a", record(ME, "a"), ResponsesConfig::default(), 1_000);
        assert!(!kept.delete("resp_a", Owner::Tcp, 2_000).expect("delete"));
        assert!(kept.delete("resp_a", ME, 2_000).expect("delete"));
        assert_eq!(kept.get("resp_a", ME, DAY, 2_000).expect("get"), None);
        kept.keep("resp_b", record(ME, "b"), ResponsesConfig::default(), 1_000);
        drop(kept);
        let store = ResponseStore::open(db.path()).expect("reopen");
        assert_eq!(store.get("resp_a", ME, DAY, 2_000).expect("get"), None);
        assert!(store.get("resp_b", ME, DAY, 2_000).expect("get").is_some());
        assert_eq!(store.totals().count, 1);
    }

    #[test]
    fn past_max_pending_a_keep_writes_in_the_caller() {
        let (_db, kept) = kept();
        // Hold the writer back: it cannot take the write lock.
        let writing = lock(&kept.shared.write);
        for n in 0..=MAX_PENDING {
            kept.keep(
                &format!("resp_{n}"),
                record(ME, "x"),
                ResponsesConfig::default(),
                1_000,
            );
        }
        assert!(lock(&kept.shared.pending).len() <= MAX_PENDING);
        assert!(kept.totals().count >= 1, "the last one was written at once");
        drop(writing);
        kept.flush();
        assert_eq!(kept.totals().count, MAX_PENDING as u64 + 1);
    }
}
