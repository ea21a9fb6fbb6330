//! The kept responses (see the parent's header for what a record is): written to append-only
//! files ([`super::log`], `state_dir/responses/`), found through an index in memory.
//!
//! **The index** ([`Index`]): every record's id, owner, time, size and place, and the ids in
//! age order, rebuilt at open by replaying the files. It answers everything but a record's
//! bytes (the count, the bytes, the oldest, whether an id is held and whose), so a write is one
//! `pwrite` of the batch's records and of the removals their bounds call for, and a cache hit's
//! answer kept again is known held without a read. (The records were in sled before, with an
//! age index tree beside them: four sled operations per kept answer, about 30 µs of CPU in
//! promptd's writer and sled's threads; a database of that version is moved into the files at
//! open and its trees dropped.) The index takes about 150 bytes per record plus its id (ids are
//! at most [`MAX_ID_BYTES`]): about 2 MB at the default 10,000 records.
//!
//! **Bounds** (`[responses]`, read at each write so a reload applies at the next): after each
//! write the oldest records go until the count is at most `max_stored` and the bytes at most
//! `max_stored_bytes`, and every record older than `max_age`; a single record larger than
//! `max_stored_bytes` is not kept. A lookup treats a record past `max_age` as gone (and
//! removes it), so an expired response is never served even when no write came since. The
//! files hold the live records and what was removed since the oldest of them was written; they
//! take at most twice `max_stored_bytes` (a file is deleted when none of its records is live,
//! oldest first; past that bound the oldest file's records are evicted to free it).
//!
//! One lock over the index and the files is taken by every read and write (a write is one
//! `pwrite`, a read one `pread`; no await).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::log::{Entry, Found, Loc, Log, PUT};
use super::{Owner, Stored};
use crate::config::ResponsesConfig;

/// The sled trees of the version before the files, moved into them at open.
const OLD_RECORDS: &str = "responses";
const OLD_AGES: &str = "responses_age";

/// The longest response id kept: promptd's own are 37 bytes, providers' about 50. A longer one
/// (a provider's, a client's trace id) is answered, not kept, so the index's memory stays
/// bounded by `max_stored`.
pub const MAX_ID_BYTES: usize = 512;

/// A write or read that failed; the answer was served, the caller logs it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("response store: {0}")]
    Io(#[from] std::io::Error),
    #[error("response store: cannot encode {id}: {message}")]
    Encode { id: String, message: String },
    #[error(
        "response store: {id} is {size} bytes, more than responses.max_stored_bytes ({limit}): \
         answered, not kept"
    )]
    TooLarge { id: String, size: u64, limit: u64 },
    #[error(
        "response store: a response id of {len} bytes is longer than {MAX_ID_BYTES}: answered, \
         not kept"
    )]
    IdTooLong { len: usize },
}

/// Opening the store failed.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot open the kept responses in {path}: {source}")]
    Files {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot move the kept responses out of the database: {0}")]
    Move(#[from] sled::Error),
    #[error("cannot move the kept responses out of the database: {0}")]
    MoveWrite(String),
}

/// What the store holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Totals {
    pub count: u64,
    /// Id and record bytes of every record.
    pub bytes: u64,
}

/// The kept responses.
#[derive(Debug)]
pub struct ResponseStore {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    log: Log,
    index: Index,
}

/// What the files hold, in memory (see the module's header).
#[derive(Debug, Default)]
struct Index {
    totals: Totals,
    by_id: HashMap<Arc<str>, Held>,
    /// `(created ms, id)` of every record: the first is the oldest.
    by_age: BTreeSet<(u64, Arc<str>)>,
}

/// One record.
#[derive(Debug, Clone, Copy)]
struct Held {
    owner: Owner,
    created_ms: u64,
    /// Id and record bytes.
    size: u64,
    loc: Loc,
}

impl Index {
    /// Point `id` at `held`; the record it pointed at before, if any.
    fn insert(&mut self, id: &str, held: Held) -> Option<Held> {
        let before = self.remove(id);
        let id: Arc<str> = id.into();
        self.by_age.insert((held.created_ms, Arc::clone(&id)));
        self.by_id.insert(id, held);
        self.totals.count += 1;
        self.totals.bytes = self.totals.bytes.saturating_add(held.size);
        before
    }

    fn remove(&mut self, id: &str) -> Option<Held> {
        let (id, held) = self.by_id.remove_entry(id)?;
        self.by_age.remove(&(held.created_ms, id));
        self.totals.count = self.totals.count.saturating_sub(1);
        self.totals.bytes = self.totals.bytes.saturating_sub(held.size);
        Some(held)
    }
}

impl Inner {
    /// Index a record written at `loc`, releasing the one it replaces.
    fn index(&mut self, id: &str, held: Held) {
        self.log.hold(held.loc.segment);
        if let Some(before) = self.index.insert(id, held) {
            self.log.release(before.loc.segment);
        }
    }

    /// Forget record `id` (its removal written or not needed), releasing its segment.
    fn unindex(&mut self, id: &str) {
        if let Some(before) = self.index.remove(id) {
            self.log.release(before.loc.segment);
        }
    }

    /// Delete record `id`: a removal written (a replay must not bring it back), the record
    /// forgotten.
    fn delete(&mut self, id: &str) -> Result<(), StoreError> {
        if self.index.by_id.contains_key(id) {
            self.log
                .append(&[Entry::Remove { id }], DELETE_SEGMENT_BYTES)?;
            self.forget(id);
        }
        Ok(())
    }

    /// Forget record `id` without writing (an expired or damaged one: a replay finds it as
    /// such again), deleting the files it leaves spent.
    fn forget(&mut self, id: &str) {
        self.unindex(id);
        self.log.drop_dead_head();
    }
}

impl crate::store::Store {
    /// The response store in `dir`; the kept responses of an earlier version, in this
    /// database, are moved into it. Never fails the start: a directory that cannot be opened
    /// leaves a store that keeps nothing (said once), a move that fails leaves the old records
    /// where they are for the next start (said too).
    pub fn response_store(&self, dir: &Path) -> ResponseStore {
        let store = match ResponseStore::open(dir) {
            Ok(store) => store,
            Err(e) => {
                tracing::error!(error = %e, "the Responses door's answers are served, not kept, until a restart that can open this directory");
                return ResponseStore::unavailable(dir, e.to_string());
            }
        };
        let moved = self
            .open_trees(|db| Ok(store.take_from(db)))
            .map_err(|e| OpenError::MoveWrite(e.to_string()))
            .and_then(|moved| moved);
        if let Err(e) = moved {
            tracing::warn!(error = %e, "kept responses of an earlier version stay in the database until the next start");
        }
        store
    }
}

/// Milliseconds since the Unix epoch of `t`.
pub fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A record made at `created_ms` is past `max_age` at `now_ms`.
pub(super) fn expired(created_ms: u64, max_age: Duration, now_ms: u64) -> bool {
    let age = u64::try_from(max_age.as_millis()).unwrap_or(u64::MAX);
    now_ms.saturating_sub(created_ms) > age
}

/// The size of a segment under `limits`: a sixteenth of the bytes bound, between 256 KiB and
/// 16 MiB (a record larger than that has a segment of its own).
fn segment_bytes(limits: &ResponsesConfig) -> u64 {
    (limits.max_stored_bytes / 16).clamp(256 << 10, 16 << 20)
}

/// A deletion's segment size (no write's limits are at hand).
const DELETE_SEGMENT_BYTES: u64 = 16 << 20;

/// The most bytes the files may take under `limits` (see the module's header).
fn disk_bound(limits: &ResponsesConfig) -> u64 {
    limits
        .max_stored_bytes
        .saturating_mul(2)
        .max(4 * segment_bytes(limits))
}

impl ResponseStore {
    /// Open (or create) the files in `dir` and index what they hold. A record that does not
    /// decode is unusable: left out (and its id's earlier record with it).
    pub fn open(dir: &Path) -> Result<ResponseStore, OpenError> {
        let mut index = Index::default();
        let mut unusable = 0u64;
        let mut found = |f: Found<'_>| {
            if f.kind != PUT {
                index.remove(f.id);
                return;
            }
            match Stored::decode(f.record) {
                Ok(stored) => {
                    let held = Held {
                        owner: stored.owner,
                        created_ms: stored.created_ms,
                        size: (f.id.len() + f.record.len()) as u64,
                        loc: f.loc,
                    };
                    index.insert(f.id, held);
                }
                Err(_) => {
                    unusable += 1;
                    index.remove(f.id);
                }
            }
        };
        let mut log = Log::open(dir, &mut found).map_err(|source| OpenError::Files {
            path: dir.to_owned(),
            source,
        })?;
        if unusable > 0 {
            tracing::warn!(count = unusable, "unusable kept responses were left out");
        }
        for held in index.by_id.values() {
            log.hold(held.loc.segment);
        }
        log.drop_dead_head();
        Ok(ResponseStore {
            inner: Mutex::new(Inner { log, index }),
        })
    }

    /// A store that holds nothing and keeps nothing, saying `why` at every write.
    fn unavailable(dir: &Path, why: String) -> ResponseStore {
        ResponseStore {
            inner: Mutex::new(Inner {
                log: Log::unavailable(dir, why),
                index: Index::default(),
            }),
        }
    }

    /// Move the records of an earlier version's sled trees in `db` into the files, oldest
    /// first, then drop the trees (a crash in between moves them again: the same ids, kept
    /// once).
    fn take_from(&self, db: &sled::Db) -> Result<(), OpenError> {
        let names = db.tree_names();
        if !names.iter().any(|n| n == OLD_RECORDS.as_bytes()) {
            return Ok(());
        }
        let tree = db.open_tree(OLD_RECORDS)?;
        let mut records = Vec::new();
        for entry in tree.iter() {
            let (key, value) = entry?;
            if let (Ok(id), Ok(stored)) = (std::str::from_utf8(&key), Stored::decode(&value)) {
                records.push((stored.created_ms, id.to_owned(), stored));
            }
        }
        records.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        let unbounded = ResponsesConfig {
            max_stored: u64::MAX,
            max_stored_bytes: u64::MAX,
            max_age: Duration::MAX,
            ..ResponsesConfig::default()
        };
        for chunk in records.chunks(256) {
            let items: Vec<(&str, &Stored)> =
                chunk.iter().map(|(_, id, s)| (id.as_str(), s)).collect();
            for outcome in self.put_many(&items, &unbounded, 0) {
                match outcome {
                    Ok(()) | Err(StoreError::IdTooLong { .. }) => {}
                    Err(e) => return Err(OpenError::MoveWrite(e.to_string())),
                }
            }
        }
        if !records.is_empty() {
            tracing::info!(
                count = records.len(),
                "kept responses moved out of the database into their files"
            );
        }
        self.lock().log.sync();
        db.drop_tree(OLD_RECORDS)?;
        if names.iter().any(|n| n == OLD_AGES.as_bytes()) {
            db.drop_tree(OLD_AGES)?;
        }
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What the store holds now.
    pub fn totals(&self) -> Totals {
        self.lock().index.totals
    }

    /// Whether it can keep anything (its directory opened).
    pub fn available(&self) -> bool {
        self.lock().log.available()
    }

    /// Make what was written durable if it is time to ([`super::log::SYNC_EVERY`]), outside
    /// the lock; whether something written is still not.
    pub fn sync_if_due(&self) -> bool {
        let due = self.lock().log.due();
        due.sync();
        self.lock().log.unsynced()
    }

    /// Keep `stored` as response `id`, then evict past the bounds (see the header). Nothing is
    /// kept when `limits` say not to.
    pub fn put(
        &self,
        id: &str,
        stored: &Stored,
        limits: &ResponsesConfig,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        self.put_many(&[(id, stored)], limits, now_ms)
            .pop()
            .unwrap_or(Ok(()))
    }

    /// Keep each `(id, stored)` as [`ResponseStore::put`] does, all in one write with the
    /// removals of what they evict (a writer with many answers waiting pays for one write, not
    /// one each); a later one of the same id wins. Each's outcome, in order.
    pub fn put_many(
        &self,
        items: &[(&str, &Stored)],
        limits: &ResponsesConfig,
        now_ms: u64,
    ) -> Vec<Result<(), StoreError>> {
        if !limits.enabled {
            return items.iter().map(|_| Ok(())).collect();
        }
        let mut outcomes = Vec::with_capacity(items.len());
        // The last write of each id, in item order.
        let mut writes: Vec<Write> = Vec::with_capacity(items.len());
        let mut at: HashMap<&str, usize> = HashMap::with_capacity(items.len());
        for (i, (id, stored)) in items.iter().enumerate() {
            let encoded = encoded(id, stored, limits);
            outcomes.push(encoded.map(|(bytes, size)| {
                let write = Write {
                    item: i,
                    bytes,
                    created_ms: stored.created_ms,
                    size,
                };
                match at.insert(id, writes.len()) {
                    Some(earlier) => writes[earlier] = write,
                    None => writes.push(write),
                }
            }));
        }
        // An id written twice in the batch was given the later one's place; keep item order.
        writes.sort_by_key(|w| w.item);
        if writes.is_empty() {
            return outcomes;
        }
        let mut inner = self.lock();
        let evicted = evictions(&inner.index, &writes, items, limits, now_ms);
        let entries: Vec<Entry<'_>> = writes
            .iter()
            .map(|w| {
                let id = items[w.item].0;
                if evicted.new.contains(&w.item) {
                    // Evicted at once (a batch over the bounds by itself): what it would
                    // replace goes with it.
                    Entry::Remove { id }
                } else {
                    Entry::Put {
                        id,
                        record: &w.bytes,
                    }
                }
            })
            .chain(evicted.old.iter().map(|id| Entry::Remove { id }))
            .collect();
        let locs = match inner.log.append(&entries, segment_bytes(limits)) {
            Ok(locs) => locs,
            Err(e) => {
                let message = e.to_string();
                for w in &writes {
                    outcomes[w.item] = Err(StoreError::Io(std::io::Error::new(
                        e.kind(),
                        message.clone(),
                    )));
                }
                return outcomes;
            }
        };
        for id in &evicted.old {
            inner.unindex(id);
        }
        for (w, loc) in writes.iter().zip(locs) {
            let (id, stored) = items[w.item];
            match loc {
                Some(loc) => inner.index(
                    id,
                    Held {
                        owner: stored.owner,
                        created_ms: w.created_ms,
                        size: w.size,
                        loc,
                    },
                ),
                None => inner.unindex(id),
            }
        }
        inner.log.drop_dead_head();
        if let Err(e) = inner.keep_disk_bound(limits) {
            if let Some(last) = outcomes.last_mut() {
                *last = Err(e);
            }
        }
        outcomes
    }

    /// The record `id` when `owner` made it and it is not past `max_age`; else `None` (another
    /// owner's record is as unknown as a missing one). An unusable record is removed.
    pub fn get(
        &self,
        id: &str,
        owner: Owner,
        max_age: Duration,
        now_ms: u64,
    ) -> Result<Option<Stored>, StoreError> {
        let mut inner = self.lock();
        let Some(held) = inner.index.by_id.get(id).copied() else {
            return Ok(None);
        };
        if expired(held.created_ms, max_age, now_ms) {
            // Forgotten, nothing written: it is as expired at the next replay (and evicted by
            // the next write's bounds).
            inner.forget(id);
            return Ok(None);
        }
        if held.owner != owner {
            return Ok(None);
        }
        let stored = match inner.log.read(held.loc) {
            Ok(bytes) => Stored::decode(&bytes),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Err(e.to_string()),
            // A read that failed (not a damaged record) says so; the record stays.
            Err(e) => return Err(e.into()),
        };
        match stored {
            Ok(stored) => Ok(Some(stored)),
            Err(why) => {
                // Damaged on disk (its frame or its body): as unusable at the next replay.
                tracing::warn!(id, %why, "an unusable kept response was removed");
                inner.forget(id);
                Ok(None)
            }
        }
    }

    /// Whether record `id` is there, `owner`'s and not past `max_age` (the index knows every
    /// record and its owner: nothing is read or changed).
    pub fn holds(&self, id: &str, owner: Owner, max_age: Duration, now_ms: u64) -> bool {
        self.lock()
            .index
            .by_id
            .get(id)
            .is_some_and(|h| h.owner == owner && !expired(h.created_ms, max_age, now_ms))
    }

    /// Delete record `id` if `owner` made it; whether it did (and was there).
    pub fn delete(&self, id: &str, owner: Owner, _now_ms: u64) -> Result<bool, StoreError> {
        // Any age: an expired record of the owner's is deleted too (and said gone).
        let mut inner = self.lock();
        let mine = inner.index.by_id.get(id).is_some_and(|h| h.owner == owner);
        if mine {
            inner.delete(id)?;
        }
        Ok(mine)
    }
}

impl Inner {
    /// Past the files' bound, evict the oldest file's records and delete it, until under.
    fn keep_disk_bound(&mut self, limits: &ResponsesConfig) -> Result<(), StoreError> {
        while self.log.disk_bytes() > disk_bound(limits) {
            let Some(oldest) = self.log.oldest_sealed() else {
                return Ok(());
            };
            let ids: Vec<Arc<str>> = self
                .index
                .by_id
                .iter()
                .filter(|(_, h)| h.loc.segment == oldest)
                .map(|(id, _)| Arc::clone(id))
                .collect();
            // The file goes whole: its records need no removal written.
            for id in &ids {
                self.unindex(id);
            }
            self.log.drop_dead_head();
            if self.log.oldest_sealed() == Some(oldest) {
                return Err(StoreError::Io(std::io::Error::other(
                    "a spent kept responses' file could not be deleted",
                )));
            }
        }
        Ok(())
    }
}

/// One record to write.
#[derive(Debug)]
struct Write {
    item: usize,
    bytes: Vec<u8>,
    created_ms: u64,
    size: u64,
}

/// The bytes of `stored` and the size it counts for (id and bytes); too large a record, or
/// too long an id, is an error.
fn encoded(
    id: &str,
    stored: &Stored,
    limits: &ResponsesConfig,
) -> Result<(Vec<u8>, u64), StoreError> {
    if id.len() > MAX_ID_BYTES {
        return Err(StoreError::IdTooLong { len: id.len() });
    }
    let bytes = stored.encode().map_err(|message| StoreError::Encode {
        id: id.to_owned(),
        message,
    })?;
    let size = (id.len() + bytes.len()) as u64;
    if size > limits.max_stored_bytes {
        return Err(StoreError::TooLarge {
            id: id.to_owned(),
            size,
            limit: limits.max_stored_bytes,
        });
    }
    Ok((bytes, size))
}

/// What a write evicts: ids of records there now, and writes of the batch (their item numbers)
/// that go at once.
#[derive(Debug, Default)]
struct Evicted {
    old: Vec<Arc<str>>,
    new: Vec<usize>,
}

/// The oldest records to remove so that, with `writes` in, the bounds hold and nothing is past
/// `max_age`: the index's records (but those the writes replace) and the writes, merged by
/// time, taken from the oldest while over.
fn evictions(
    index: &Index,
    writes: &[Write],
    items: &[(&str, &Stored)],
    limits: &ResponsesConfig,
    now_ms: u64,
) -> Evicted {
    let (mut count, mut bytes) = (index.totals.count, index.totals.bytes);
    for w in writes {
        if let Some(old) = index.by_id.get(items[w.item].0) {
            count = count.saturating_sub(1);
            bytes = bytes.saturating_sub(old.size);
        }
        count += 1;
        bytes = bytes.saturating_add(w.size);
    }
    let over = |count: u64, bytes: u64, created_ms: u64| {
        count > limits.max_stored
            || bytes > limits.max_stored_bytes
            || expired(created_ms, limits.max_age, now_ms)
    };
    let replaced: HashSet<&str> = writes.iter().map(|w| items[w.item].0).collect();
    let mut new: Vec<&Write> = writes.iter().collect();
    new.sort_by_key(|w| (w.created_ms, w.item));
    let mut new = new.into_iter().peekable();
    let mut old = index
        .by_age
        .iter()
        .filter(|(_, id)| !replaced.contains(&**id))
        .peekable();
    let mut evicted = Evicted::default();
    loop {
        let oldest_is_there = match (old.peek(), new.peek()) {
            (Some((there, _)), Some(written)) => *there <= written.created_ms,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        let size = if oldest_is_there {
            let Some((_, id)) = old.next_if(|(c, _)| over(count, bytes, *c)) else {
                break;
            };
            evicted.old.push(Arc::clone(id));
            index.by_id.get(id).map_or(0, |h| h.size)
        } else {
            let Some(w) = new.next_if(|w| over(count, bytes, w.created_ms)) else {
                break;
            };
            evicted.new.push(w.item);
            w.size
        };
        count = count.saturating_sub(1);
        bytes = bytes.saturating_sub(size);
    }
    evicted
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR_MS: u64 = 3_600_000;

    fn db() -> tempfile::TempDir {
        tempfile::tempdir().expect("a directory")
    }

    fn record(owner: Owner, created_ms: u64, text: &str) -> Stored {
        Stored {
            owner,
            created_ms,
            input: format!(r#"[{{"role":"user","content":"{text}"}}]"#),
            response: r#"{"id":"resp_x","object":"response","output":[]}"#.to_owned(),
        }
    }

    /// Whether `resp_0` .. `resp_{n-1}` are held for [`ME`] at `now`.
    fn held(store: &ResponseStore, n: u64, now: u64) -> Vec<bool> {
        (0..n)
            .map(|i| {
                store
                    .get(&format!("resp_{i}"), ME, DAY, now)
                    .expect("get")
                    .is_some()
            })
            .collect()
    }

    fn limits() -> ResponsesConfig {
        ResponsesConfig::default()
    }

    const ME: Owner = Owner::Uid(1000);
    const DAY: Duration = Duration::from_secs(24 * 3600);

    #[test]
    fn an_id_kept_again_holds_the_last_answer_once() {
        let db = db();
        let store = ResponseStore::open(db.path()).expect("open");
        let first = record(ME, HOUR_MS, "first");
        let last = record(ME, 2 * HOUR_MS, "the last one");
        store
            .put("resp_a", &first, &limits(), HOUR_MS)
            .expect("put");
        store
            .put("resp_a", &last, &limits(), 2 * HOUR_MS)
            .expect("put");
        let size = ("resp_a".len() + last.encode().expect("encodes").len()) as u64;
        let totals = Totals {
            count: 1,
            bytes: size,
        };
        assert_eq!(store.totals(), totals);
        assert_eq!(
            store.get("resp_a", ME, DAY, 3 * HOUR_MS).expect("get"),
            Some(last)
        );
        drop(store);
        assert_eq!(
            ResponseStore::open(db.path()).expect("reopen").totals(),
            totals,
            "one index entry"
        );
    }

    #[test]
    fn a_record_is_read_back_by_its_owner_only() {
        let db = db();
        let store = ResponseStore::open(db.path()).expect("open");
        let r = record(ME, 10 * HOUR_MS, "hi");
        store
            .put("resp_a", &r, &limits(), 10 * HOUR_MS)
            .expect("put");
        let now = 11 * HOUR_MS;
        assert_eq!(store.get("resp_a", ME, DAY, now).expect("get"), Some(r));
        assert_eq!(
            store
                .get("resp_a", Owner::Uid(1001), DAY, now)
                .expect("get"),
            None
        );
        assert_eq!(
            store.get("resp_a", Owner::Tcp, DAY, now).expect("get"),
            None
        );
        assert_eq!(store.get("resp_b", ME, DAY, now).expect("get"), None);
        assert!(!store
            .delete("resp_a", Owner::Uid(1001), now)
            .expect("delete"));
        assert!(
            store.get("resp_a", ME, DAY, now).expect("get").is_some(),
            "not another's to delete"
        );
        assert!(store.delete("resp_a", ME, now).expect("delete"));
        assert_eq!(store.get("resp_a", ME, DAY, now).expect("get"), None);
        assert!(!store.delete("resp_a", ME, now).expect("delete"), "gone");
        assert_eq!(store.totals(), Totals::default());
    }

    #[test]
    fn what_is_known_held_is_what_is_there() {
        let db = db();
        let store = ResponseStore::open(db.path()).expect("open");
        let limits = ResponsesConfig {
            max_stored: 2,
            ..limits()
        };
        let knows = |id: &str, owner: Owner, now: u64| store.holds(id, owner, DAY, now);
        assert!(
            !knows("resp_a", ME, HOUR_MS),
            "nothing is known before a write"
        );
        store
            .put("resp_a", &record(ME, HOUR_MS, "a"), &limits, HOUR_MS)
            .expect("put");
        assert!(knows("resp_a", ME, HOUR_MS));
        assert!(
            !knows("resp_a", Owner::Tcp, HOUR_MS),
            "another owner's is unknown"
        );
        assert!(!knows("resp_a", ME, 48 * HOUR_MS), "past max_age");
        // Deleted: forgotten.
        assert!(store.delete("resp_a", ME, HOUR_MS).expect("delete"));
        assert!(!knows("resp_a", ME, HOUR_MS));
        // Evicted past max_stored: forgotten.
        for n in 0..3u64 {
            let id = format!("resp_{n}");
            store
                .put(&id, &record(ME, HOUR_MS + n, "x"), &limits, HOUR_MS + n)
                .expect("put");
        }
        assert!(!knows("resp_0", ME, HOUR_MS + 3));
        assert!(knows("resp_2", ME, HOUR_MS + 3));
        // A reopened store knows what its files hold, and whose.
        drop(store);
        let reopened = ResponseStore::open(db.path()).expect("reopen");
        assert!(reopened.holds("resp_2", ME, DAY, HOUR_MS + 3));
        assert!(!reopened.holds("resp_2", Owner::Tcp, DAY, HOUR_MS + 3));
        assert!(
            !reopened.holds("resp_0", ME, DAY, HOUR_MS + 3),
            "evicted stays gone"
        );
        assert!(
            !reopened.holds("resp_a", ME, DAY, HOUR_MS + 3),
            "deleted stays gone"
        );
        // An id longer than any promptd or a provider makes is answered, not kept.
        let long = format!("resp_{}", "a".repeat(MAX_ID_BYTES));
        let err = reopened
            .put(&long, &record(ME, HOUR_MS + 4, "x"), &limits, HOUR_MS + 4)
            .unwrap_err();
        assert!(matches!(err, StoreError::IdTooLong { .. }), "{err}");
        assert!(!reopened.holds(&long, ME, DAY, HOUR_MS + 4));
    }

    #[test]
    fn a_reopened_store_indexes_what_is_there_and_evicts_the_oldest_of_it_first() {
        let db = db();
        let store = ResponseStore::open(db.path()).expect("open");
        for n in 0..4u64 {
            store
                .put(
                    &format!("resp_{n}"),
                    &record(ME, 1000 + n, "x"),
                    &limits(),
                    2000,
                )
                .expect("put");
        }
        let totals = store.totals();
        drop(store);
        let reopened = ResponseStore::open(db.path()).expect("reopen");
        assert_eq!(reopened.totals(), totals);
        assert!(reopened.holds("resp_3", ME, DAY, 2000));
        assert!(!reopened.holds("resp_3", Owner::Tcp, DAY, 2000));
        let two = ResponsesConfig {
            max_stored: 2,
            ..limits()
        };
        reopened
            .put("resp_4", &record(ME, 1004, "x"), &two, 2000)
            .expect("put");
        let held = held(&reopened, 5, 2000);
        assert_eq!(held, [false, false, false, true, true]);
    }

    #[test]
    fn an_earlier_versions_records_move_from_the_database_into_the_files() {
        let dir = db();
        let sled = sled::Config::new()
            .temporary(true)
            .open()
            .expect("a temporary db");
        let (older, newer) = (record(ME, 1000, "older"), record(Owner::Tcp, 1001, "newer"));
        let records = sled.open_tree(OLD_RECORDS).expect("tree");
        records
            .insert("resp_b", newer.encode().expect("encodes"))
            .expect("insert");
        records
            .insert("resp_a", older.encode().expect("encodes"))
            .expect("insert");
        records
            .insert("resp_other_format", &[1u8, 0, 0][..])
            .expect("insert");
        sled.open_tree(OLD_AGES)
            .expect("tree")
            .insert(b"age", &7u64.to_le_bytes())
            .expect("insert");
        let store = ResponseStore::open(dir.path()).expect("open");
        store.take_from(&sled).expect("moved");
        assert!(!sled
            .tree_names()
            .iter()
            .any(|n| n == OLD_AGES.as_bytes() || n == OLD_RECORDS.as_bytes()));
        assert_eq!(
            store.totals().count,
            2,
            "the record of another format is left"
        );
        assert_eq!(
            store.get("resp_a", ME, DAY, 2000).expect("get"),
            Some(older)
        );
        // Moved oldest first: a bound evicts the older one first.
        let one = ResponsesConfig {
            max_stored: 2,
            ..limits()
        };
        store
            .put("resp_c", &record(ME, 1002, "c"), &one, 2000)
            .expect("put");
        assert!(store.get("resp_a", ME, DAY, 2000).expect("get").is_none());
        drop(store);
        let reopened = ResponseStore::open(dir.path()).expect("reopen");
        assert_eq!(
            reopened.get("resp_b", Owner::Tcp, DAY, 2000).expect("get"),
            Some(newer)
        );
        assert_eq!(reopened.totals().count, 2);
        // Nothing left to move: a second start moves nothing.
        reopened.take_from(&sled).expect("nothing to move");
        assert_eq!(reopened.totals().count, 2);
    }

    #[test]
    fn a_batch_over_the_bounds_by_itself_keeps_its_newest() {
        let db = db();
        let store = ResponseStore::open(db.path()).expect("open");
        store
            .put("resp_there", &record(ME, 500, "x"), &limits(), 500)
            .expect("put");
        let two = ResponsesConfig {
            max_stored: 2,
            ..limits()
        };
        let records: Vec<Stored> = (0..3u64).map(|n| record(ME, 1000 + n, "y")).collect();
        let ids = ["resp_0", "resp_there", "resp_2"];
        let items: Vec<(&str, &Stored)> = ids.into_iter().zip(&records).collect();
        let outcomes = store.put_many(&items, &two, 2000);
        assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
        assert_eq!(store.totals().count, 2);
        let held: Vec<bool> = ids
            .iter()
            .map(|id| store.get(id, ME, DAY, 2000).expect("get").is_some())
            .collect();
        assert_eq!(held, [false, true, true], "the oldest written went at once");
        assert_eq!(
            store
                .get("resp_there", ME, DAY, 2000)
                .expect("get")
                .map(|s| s.created_ms),
            Some(1001),
            "replaced by the batch's"
        );
    }

    #[test]
    fn past_max_stored_the_oldest_go_first() {
        let db = db();
        let store = ResponseStore::open(db.path()).expect("open");
        let limits = ResponsesConfig {
            max_stored: 3,
            ..limits()
        };
        for n in 0..5u64 {
            let r = record(ME, 1000 + n, &format!("turn {n}"));
            store
                .put(&format!("resp_{n}"), &r, &limits, 2000)
                .expect("put");
        }
        assert_eq!(store.totals().count, 3);
        let held = held(&store, 5, 2000);
        assert_eq!(held, [false, false, true, true, true]);
    }

    #[test]
    fn many_kept_at_once_are_kept_as_one_by_one_and_the_counts_agree_with_a_reopen() {
        let db = db();
        let store = ResponseStore::open(db.path()).expect("open");
        let limits = ResponsesConfig {
            max_stored: 3,
            ..limits()
        };
        let records: Vec<Stored> = (0..5u64)
            .map(|n| record(ME, 1000 + n, &format!("turn {n}")))
            .collect();
        let again = record(ME, 1010, "resp_4 answered again");
        let huge = record(ME, 1011, &"x".repeat(400));
        let ids: Vec<String> = (0..5).map(|n| format!("resp_{n}")).collect();
        let mut items: Vec<(&str, &Stored)> =
            ids.iter().map(String::as_str).zip(&records).collect();
        items.push(("resp_4", &again));
        let small = ResponsesConfig {
            max_stored_bytes: 200,
            ..limits
        };
        let outcomes = store.put_many(&items, &limits, 2000);
        assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
        assert_eq!(outcomes.len(), 6);
        let held: Vec<bool> = ids
            .iter()
            .map(|id| store.get(id, ME, DAY, 2000).expect("get").is_some())
            .collect();
        assert_eq!(held, [false, false, true, true, true], "the oldest went");
        let kept = store
            .get("resp_4", ME, DAY, 2000)
            .expect("get")
            .expect("kept");
        assert_eq!(kept.input, again.input, "the later answer of an id wins");
        let totals = store.totals();
        assert_eq!(totals.count, 3);
        let outcomes = store.put_many(&[("resp_huge", &huge)], &small, 2000);
        assert!(matches!(outcomes[..], [Err(StoreError::TooLarge { .. })]));
        drop(store);
        let reopened = ResponseStore::open(db.path()).expect("reopen");
        assert_eq!(
            reopened.totals(),
            totals,
            "the index agrees with what was counted"
        );
    }

    #[test]
    fn past_max_stored_bytes_the_oldest_go_and_a_record_too_large_is_not_kept() {
        let db = db();
        let store = ResponseStore::open(db.path()).expect("open");
        let one = {
            let r = record(ME, 1, "x");
            ("resp_0".len() + r.encode().expect("bytes").len()) as u64
        };
        let limits = ResponsesConfig {
            max_stored_bytes: 2 * one + one / 2,
            ..limits()
        };
        for n in 0..4u64 {
            store
                .put(&format!("resp_{n}"), &record(ME, 1 + n, "x"), &limits, 10)
                .expect("put");
        }
        assert_eq!(
            store.totals(),
            Totals {
                count: 2,
                bytes: 2 * one
            }
        );
        assert!(store.get("resp_1", ME, DAY, 10).expect("get").is_none());
        assert!(store.get("resp_3", ME, DAY, 10).expect("get").is_some());
        let huge = record(ME, 20, &"y".repeat(3 * one as usize));
        let err = store.put("resp_huge", &huge, &limits, 20).unwrap_err();
        assert!(matches!(err, StoreError::TooLarge { .. }), "{err}");
        assert!(store.get("resp_huge", ME, DAY, 20).expect("get").is_none());
        assert_eq!(store.totals().count, 2, "nothing else evicted for it");
    }

    #[test]
    fn a_record_past_max_age_is_gone_on_read_and_evicted_by_the_next_write() {
        let db = db();
        let store = ResponseStore::open(db.path()).expect("open");
        let limits = ResponsesConfig {
            max_age: Duration::from_secs(3600),
            ..limits()
        };
        store
            .put("resp_old", &record(ME, 0, "a"), &limits, 0)
            .expect("put");
        store
            .put(
                "resp_mid",
                &record(ME, HOUR_MS / 2, "b"),
                &limits,
                HOUR_MS / 2,
            )
            .expect("put");
        assert!(store
            .get("resp_old", ME, limits.max_age, HOUR_MS)
            .expect("get")
            .is_some());
        let later = HOUR_MS + 1;
        let on_disk = || -> u64 {
            std::fs::read_dir(db.path())
                .expect("dir")
                .flatten()
                .map(|e| e.metadata().expect("meta").len())
                .sum()
        };
        let before = on_disk();
        assert!(store
            .get("resp_old", ME, limits.max_age, later)
            .expect("get")
            .is_none());
        assert_eq!(store.totals().count, 1, "removed when found expired");
        assert_eq!(
            on_disk(),
            before,
            "nothing written: a replay finds it expired too"
        );
        drop(store);
        let store = ResponseStore::open(db.path()).expect("reopen");
        assert!(store
            .get("resp_old", ME, limits.max_age, later)
            .expect("get")
            .is_none());
        let much_later = 2 * HOUR_MS;
        store
            .put(
                "resp_new",
                &record(ME, much_later, "c"),
                &limits,
                much_later,
            )
            .expect("put");
        assert_eq!(store.totals().count, 1, "the write evicted the expired one");
        assert!(store
            .get("resp_new", ME, limits.max_age, much_later)
            .expect("get")
            .is_some());
    }

    #[test]
    fn nothing_is_kept_when_disabled_and_totals_survive_a_reopen() {
        let db = db();
        let store = ResponseStore::open(db.path()).expect("open");
        let off = ResponsesConfig {
            enabled: false,
            ..limits()
        };
        store
            .put("resp_off", &record(ME, 1, "x"), &off, 1)
            .expect("put");
        assert!(store.get("resp_off", ME, DAY, 1).expect("get").is_none());
        store
            .put("resp_on", &record(ME, 1, "x"), &limits(), 1)
            .expect("put");
        store
            .put("resp_on", &record(ME, 2, "xy"), &limits(), 2)
            .expect("put again");
        let totals = store.totals();
        assert_eq!(totals.count, 1, "the same id once");
        drop(store);
        let reopened = ResponseStore::open(db.path()).expect("reopen");
        assert_eq!(reopened.totals(), totals);
        assert_eq!(
            reopened
                .get("resp_on", ME, DAY, 3)
                .expect("get")
                .map(|s| s.created_ms),
            Some(2)
        );
    }

    #[test]
    fn a_damaged_record_is_unknown_and_removed_and_the_files_stay_bounded() {
        let db = db();
        let store = ResponseStore::open(db.path()).expect("open");
        store
            .put("resp_good", &record(ME, 1, "good"), &limits(), 1)
            .expect("put");
        store
            .put("resp_bad", &record(ME, 2, "bad, soon"), &limits(), 2)
            .expect("put");
        // A bit flipped on disk in the second record's frame.
        let file = std::fs::read_dir(db.path())
            .expect("dir")
            .flatten()
            .next()
            .expect("a segment")
            .path();
        let mut bytes = std::fs::read(&file).expect("read");
        let at = bytes.len() - 3;
        bytes[at] ^= 0x40;
        std::fs::write(&file, &bytes).expect("write");
        assert!(store.get("resp_bad", ME, DAY, 3).expect("get").is_none());
        assert!(!store.holds("resp_bad", ME, DAY, 3), "removed");
        assert!(store.get("resp_good", ME, DAY, 3).expect("get").is_some());
        drop(store);
        // The damaged frame ends the replay of its segment (the removal written after it is
        // not read either): the damaged record is not there.
        let reopened = ResponseStore::open(db.path()).expect("reopen");
        assert!(reopened
            .get("resp_good", ME, DAY, 3)
            .expect("get")
            .is_some());
        assert!(reopened.get("resp_bad", ME, DAY, 3).expect("get").is_none());
        // Records replaced again and again: the files are bounded, not the history.
        let small = ResponsesConfig {
            max_stored_bytes: 64 << 10,
            ..limits()
        };
        for n in 0..2_000u64 {
            reopened
                .put(
                    "resp_same",
                    &record(ME, 10 + n, &"z".repeat(200)),
                    &small,
                    10 + n,
                )
                .expect("put");
        }
        let on_disk: u64 = std::fs::read_dir(db.path())
            .expect("dir")
            .flatten()
            .map(|e| e.metadata().expect("meta").len())
            .sum();
        assert!(on_disk <= disk_bound(&small), "{on_disk} bytes on disk");
        assert!(reopened
            .get("resp_same", ME, DAY, 3_000)
            .expect("get")
            .is_some());
    }

    #[test]
    fn a_directory_that_cannot_be_opened_leaves_a_store_that_keeps_nothing() {
        let dir = db();
        let options = crate::store::StoreOptions {
            page_cache: 1 << 20,
        };
        let db = crate::store::Store::open(dir.path(), options).expect("a database");
        let path = dir.path().join("responses");
        std::fs::write(&path, b"not a directory").expect("write");
        let store = db.response_store(&path);
        assert!(!store.available());
        let err = store
            .put("resp_a", &record(ME, 1, "x"), &limits(), 1)
            .unwrap_err();
        assert!(err.to_string().contains("response store"), "{err}");
        assert!(store.get("resp_a", ME, DAY, 1).expect("get").is_none());
        assert_eq!(store.totals(), Totals::default());
    }
}
