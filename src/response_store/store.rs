//! The kept responses in the store's database (see the parent's header for what a record is):
//! one tree, `responses`: response id (`resp_...`) -> record.
//!
//! **The index, in memory** ([`Index`]): every record's id, time, size and (once known) owner,
//! and the ids in age order, built at open from the records' headers (format byte and time, no
//! decoding). It answers what the bounds need (the count, the bytes, the oldest) and whether an
//! id is held, so a write is one sled batch — the records put and the ones they evict removed,
//! atomically — and no index tree is written beside the records (a transaction over two trees
//! cost four sled operations per kept answer, about 28 µs of the writer's CPU). It takes about
//! 100 bytes per record plus the id (ids are at most [`MAX_ID_BYTES`]): about 1.5 MB at the
//! default 10,000 records. A database of an earlier version has an age index tree as well
//! (`responses_age`): dropped at open, rebuilt here.
//!
//! **Bounds** (`[responses]`, read at each write so a reload applies at the next): after each
//! write the oldest records go until the count is at most `max_stored` and the bytes at most
//! `max_stored_bytes`, and every record older than `max_age`; a single record larger than
//! `max_stored_bytes` is not kept. A lookup treats a record past `max_age` as gone (and
//! removes it), so an expired response is never served even when no write came since.
//!
//! One lock over the index is taken by every write and removal (a write is a sled batch, no
//! await); a read of the tree takes it only to note the owner it found.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{Owner, Stored};
use crate::config::ResponsesConfig;

const RECORDS: &str = "responses";
/// The age index tree of earlier versions, dropped at open.
const OLD_AGES: &str = "responses_age";

/// The longest response id kept: promptd's own are 37 bytes, providers' about 50. A longer one
/// (a provider's, a client's trace id) is answered, not kept, so the index's memory stays
/// bounded by `max_stored`.
pub const MAX_ID_BYTES: usize = 512;

/// A write that failed; the answer was served, the caller logs it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("response store: {0}")]
    Sled(#[from] sled::Error),
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
    records: sled::Tree,
    index: Mutex<Index>,
}

/// What the tree holds, in memory (see the module's header).
#[derive(Debug, Default)]
struct Index {
    totals: Totals,
    by_id: HashMap<Arc<str>, Held>,
    /// `(created ms, id)` of every record: the first is the oldest.
    by_age: BTreeSet<(u64, Arc<str>)>,
}

/// One record of the tree.
#[derive(Debug, Clone, Copy)]
struct Held {
    created_ms: u64,
    /// Id and record bytes.
    size: u64,
    /// Its owner, once this process wrote or read it (found at open: not yet known).
    owner: Option<Owner>,
}

impl Index {
    fn insert(&mut self, id: &str, held: Held) {
        self.remove(id);
        let id: Arc<str> = id.into();
        self.by_age.insert((held.created_ms, Arc::clone(&id)));
        self.by_id.insert(id, held);
        self.totals.count += 1;
        self.totals.bytes = self.totals.bytes.saturating_add(held.size);
    }

    fn remove(&mut self, id: &str) -> Option<Held> {
        let (id, held) = self.by_id.remove_entry(id)?;
        self.by_age.remove(&(held.created_ms, id));
        self.totals.count = self.totals.count.saturating_sub(1);
        self.totals.bytes = self.totals.bytes.saturating_sub(held.size);
        Some(held)
    }
}

impl crate::store::Store {
    /// The response store's tree in this database.
    pub fn response_store(&self) -> Result<ResponseStore, crate::store::StoreError> {
        self.open_trees(ResponseStore::open)
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

fn lock(index: &Mutex<Index>) -> MutexGuard<'_, Index> {
    index.lock().unwrap_or_else(|e| e.into_inner())
}

impl ResponseStore {
    /// Open (or create) the tree in `db` and index what it holds; a record that cannot be
    /// indexed (another format, a damaged header, an id that is not text) is unusable and
    /// removed, and an earlier version's age index tree is dropped.
    pub fn open(db: &sled::Db) -> sled::Result<ResponseStore> {
        if db.tree_names().iter().any(|n| n == OLD_AGES.as_bytes()) {
            db.drop_tree(OLD_AGES)?;
        }
        let records = db.open_tree(RECORDS)?;
        let mut index = Index::default();
        let mut unusable = Vec::new();
        for entry in records.iter() {
            let (key, value) = entry?;
            match (std::str::from_utf8(&key), Stored::created_ms_of(&value)) {
                (Ok(id), Some(created_ms)) => {
                    let size = (id.len() + value.len()) as u64;
                    let held = Held {
                        created_ms,
                        size,
                        owner: None,
                    };
                    index.insert(id, held);
                }
                _ => unusable.push(key),
            }
        }
        if !unusable.is_empty() {
            tracing::warn!(
                count = unusable.len(),
                "unusable kept responses were removed"
            );
            let mut batch = sled::Batch::default();
            for key in unusable {
                batch.remove(key);
            }
            records.apply_batch(batch)?;
        }
        Ok(ResponseStore {
            records,
            index: Mutex::new(index),
        })
    }

    /// Whether record `id` of `owner`, not past `max_age`, is known to be held (written or
    /// read by this process, and not removed since). `false` says only "not known".
    pub fn knows(&self, id: &str, owner: Owner, max_age: Duration, now_ms: u64) -> bool {
        lock(&self.index)
            .by_id
            .get(id)
            .is_some_and(|h| h.owner == Some(owner) && !expired(h.created_ms, max_age, now_ms))
    }

    /// Note the owner of record `id` (read from the tree), if it is still the one indexed.
    fn learn(&self, id: &str, owner: Owner, created_ms: u64) {
        if let Some(held) = lock(&self.index).by_id.get_mut(id) {
            if held.created_ms == created_ms {
                held.owner = Some(owner);
            }
        }
    }

    /// What the store holds now.
    pub fn totals(&self) -> Totals {
        lock(&self.index).totals
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

    /// Keep each `(id, stored)` as [`ResponseStore::put`] does, all in one sled batch with the
    /// records they evict (a writer with many answers waiting pays for one write, not one
    /// each); a later one of the same id wins. Each's outcome, in order.
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
        // The last write of each id, in order: (item, bytes, held).
        let mut writes: Vec<(usize, Vec<u8>, Held)> = Vec::with_capacity(items.len());
        let mut at: HashMap<&str, usize> = HashMap::with_capacity(items.len());
        for (i, (id, stored)) in items.iter().enumerate() {
            let encoded = self.encoded(id, stored, limits);
            outcomes.push(encoded.map(|(bytes, size)| {
                let held = Held {
                    created_ms: stored.created_ms,
                    size,
                    owner: Some(stored.owner),
                };
                match at.insert(id, writes.len()) {
                    Some(earlier) => writes[earlier] = (i, bytes, held),
                    None => writes.push((i, bytes, held)),
                }
            }));
        }
        // An id written twice in the batch was given the later one's place; keep time order.
        writes.sort_by_key(|(i, _, _)| *i);
        if writes.is_empty() {
            return outcomes;
        }
        let mut index = lock(&self.index);
        let evicted = evictions(&index, &writes, items, limits, now_ms);
        let mut batch = sled::Batch::default();
        for (i, bytes, _) in &writes {
            let id = items[*i].0.as_bytes();
            if evicted.new.contains(i) {
                // What it would have replaced goes with it.
                batch.remove(id);
            } else {
                batch.insert(id, bytes.as_slice());
            }
        }
        for id in &evicted.old {
            batch.remove(id.as_bytes());
        }
        if let Err(e) = self.records.apply_batch(batch) {
            for (i, _, _) in &writes {
                outcomes[*i] = Err(StoreError::from(e.clone()));
            }
            return outcomes;
        }
        for id in &evicted.old {
            index.remove(id);
        }
        for (i, _, held) in &writes {
            if evicted.new.contains(i) {
                // Written and evicted in the same breath (a batch over the bounds by itself):
                // what it replaced is gone too.
                index.remove(items[*i].0);
            } else {
                index.insert(items[*i].0, *held);
            }
        }
        outcomes
    }

    /// The bytes of `stored` and the size it counts for (id and bytes); too large a record, or
    /// too long an id, is an error.
    fn encoded(
        &self,
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

    /// The record `id` when `owner` made it and it is not past `max_age`; else `None` (another
    /// owner's record is as unknown as a missing one). An unusable record is removed.
    pub fn get(
        &self,
        id: &str,
        owner: Owner,
        max_age: Duration,
        now_ms: u64,
    ) -> Result<Option<Stored>, StoreError> {
        let Some(bytes) = self.records.get(id.as_bytes())? else {
            return Ok(None);
        };
        match Stored::decode(&bytes) {
            Ok(stored) if expired(stored.created_ms, max_age, now_ms) => {
                self.remove(id)?;
                Ok(None)
            }
            Ok(stored) => {
                self.learn(id, stored.owner, stored.created_ms);
                Ok((stored.owner == owner).then_some(stored))
            }
            Err(why) => {
                tracing::warn!(id, %why, "an unusable kept response was removed");
                self.remove(id)?;
                Ok(None)
            }
        }
    }

    /// Whether record `id` is there, `owner`'s and not past `max_age` (read, not changed).
    pub fn holds(&self, id: &str, owner: Owner, max_age: Duration, now_ms: u64) -> bool {
        // Read and learnt under the lock removals take: a removal in between cannot leave the
        // id known. Every record is indexed: an id the index lacks is not there.
        let mut index = lock(&self.index);
        match index.by_id.get(id) {
            None => return false,
            Some(h) if expired(h.created_ms, max_age, now_ms) => return false,
            Some(h) if h.owner.is_some() => return h.owner == Some(owner),
            Some(_) => {}
        }
        let Ok(Some(bytes)) = self.records.get(id.as_bytes()) else {
            return false;
        };
        match Stored::decode(&bytes) {
            Ok(s) => {
                if let Some(held) = index.by_id.get_mut(id) {
                    held.owner = Some(s.owner);
                }
                s.readable_by(owner, max_age, now_ms)
            }
            Err(_) => false,
        }
    }

    /// Delete record `id` if `owner` made it; whether it did (and was there).
    pub fn delete(&self, id: &str, owner: Owner, now_ms: u64) -> Result<bool, StoreError> {
        // Any age: an expired record of the owner's is deleted too (and said gone).
        let mine = self.get(id, owner, Duration::MAX, now_ms)?.is_some();
        if mine {
            self.remove(id)?;
        }
        Ok(mine)
    }

    /// Remove record `id`, if there.
    fn remove(&self, id: &str) -> Result<(), StoreError> {
        let mut index = lock(&self.index);
        self.records.remove(id.as_bytes())?;
        index.remove(id);
        Ok(())
    }
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
    writes: &[(usize, Vec<u8>, Held)],
    items: &[(&str, &Stored)],
    limits: &ResponsesConfig,
    now_ms: u64,
) -> Evicted {
    let (mut count, mut bytes) = (index.totals.count, index.totals.bytes);
    for (i, _, held) in writes {
        if let Some(old) = index.by_id.get(items[*i].0) {
            count = count.saturating_sub(1);
            bytes = bytes.saturating_sub(old.size);
        }
        count += 1;
        bytes = bytes.saturating_add(held.size);
    }
    let over = |count: u64, bytes: u64, created_ms: u64| {
        count > limits.max_stored
            || bytes > limits.max_stored_bytes
            || expired(created_ms, limits.max_age, now_ms)
    };
    let replaced: HashSet<&str> = writes.iter().map(|(i, _, _)| items[*i].0).collect();
    let mut new: Vec<&(usize, Vec<u8>, Held)> = writes.iter().collect();
    new.sort_by_key(|(i, _, held)| (held.created_ms, *i));
    let mut new = new.into_iter().peekable();
    let mut old = index
        .by_age
        .iter()
        .filter(|(_, id)| !replaced.contains(&**id))
        .peekable();
    let mut evicted = Evicted::default();
    loop {
        let oldest_is_there = match (old.peek(), new.peek()) {
            (Some((there, _)), Some((_, _, written))) => *there <= written.created_ms,
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
            let Some((i, _, held)) = new.next_if(|(_, _, h)| over(count, bytes, h.created_ms))
            else {
                break;
            };
            evicted.new.push(*i);
            held.size
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

    fn db() -> sled::Db {
        sled::Config::new()
            .temporary(true)
            .open()
            .expect("a temporary db")
    }

    fn record(owner: Owner, created_ms: u64, text: &str) -> Stored {
        Stored {
            owner,
            created_ms,
            input: format!(r#"[{{"role":"user","content":"{text}"}}]"#),
            response: r#"{"id":"resp_x","object":"response","output":[]}"#.to_owned(),
        }
    }

    fn limits() -> ResponsesConfig {
        ResponsesConfig::default()
    }

    const ME: Owner = Owner::Uid(1000);
    const DAY: Duration = Duration::from_secs(24 * 3600);

    #[test]
    fn an_id_kept_again_holds_the_last_answer_once() {
        let db = db();
        let store = ResponseStore::open(&db).expect("open");
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
            ResponseStore::open(&db).expect("reopen").totals(),
            totals,
            "one index entry"
        );
    }

    #[test]
    fn a_record_is_read_back_by_its_owner_only() {
        let store = ResponseStore::open(&db()).expect("open");
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
        let store = ResponseStore::open(&db).expect("open");
        let limits = ResponsesConfig {
            max_stored: 2,
            ..limits()
        };
        let knows = |id: &str, owner: Owner, now: u64| store.knows(id, owner, DAY, now);
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
        // A reopened store knows nothing until it finds a record there.
        drop(store);
        let reopened = ResponseStore::open(&db).expect("reopen");
        assert!(!reopened.knows("resp_2", ME, DAY, HOUR_MS + 3));
        assert!(reopened.holds("resp_2", ME, DAY, HOUR_MS + 3));
        assert!(reopened.knows("resp_2", ME, DAY, HOUR_MS + 3));
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
        let store = ResponseStore::open(&db).expect("open");
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
        let reopened = ResponseStore::open(&db).expect("reopen");
        assert_eq!(reopened.totals(), totals);
        assert!(reopened.holds("resp_3", ME, DAY, 2000), "read and learnt");
        assert!(!reopened.holds("resp_3", Owner::Tcp, DAY, 2000));
        let two = ResponsesConfig {
            max_stored: 2,
            ..limits()
        };
        reopened
            .put("resp_4", &record(ME, 1004, "x"), &two, 2000)
            .expect("put");
        let held: Vec<bool> = (0..5)
            .map(|n| {
                reopened
                    .get(&format!("resp_{n}"), ME, DAY, 2000)
                    .expect("get")
                    .is_some()
            })
            .collect();
        assert_eq!(held, [false, false, false, true, true]);
    }

    #[test]
    fn an_earlier_versions_age_tree_is_dropped_and_its_records_kept() {
        let db = db();
        let r = record(ME, 1000, "x");
        db.open_tree(RECORDS)
            .expect("tree")
            .insert("resp_a", r.encode().expect("encodes"))
            .expect("insert");
        db.open_tree(RECORDS)
            .expect("tree")
            .insert("resp_other_format", &[1u8, 0, 0][..])
            .expect("insert");
        let mut age = 1000u64.to_be_bytes().to_vec();
        age.extend_from_slice(b"resp_a");
        db.open_tree(OLD_AGES)
            .expect("tree")
            .insert(age, &7u64.to_le_bytes())
            .expect("insert");
        let store = ResponseStore::open(&db).expect("open");
        assert!(!db.tree_names().iter().any(|n| n == OLD_AGES.as_bytes()));
        assert_eq!(
            store.totals().count,
            1,
            "the record of another format is gone"
        );
        assert_eq!(store.get("resp_a", ME, DAY, 2000).expect("get"), Some(r));
        assert!(db
            .open_tree(RECORDS)
            .expect("tree")
            .get("resp_other_format")
            .expect("get")
            .is_none());
    }

    #[test]
    fn a_batch_over_the_bounds_by_itself_keeps_its_newest() {
        let store = ResponseStore::open(&db()).expect("open");
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
        let store = ResponseStore::open(&db()).expect("open");
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
        let held: Vec<bool> = (0..5)
            .map(|n| {
                store
                    .get(&format!("resp_{n}"), ME, DAY, 2000)
                    .expect("get")
                    .is_some()
            })
            .collect();
        assert_eq!(held, [false, false, true, true, true]);
    }

    #[test]
    fn many_kept_at_once_are_kept_as_one_by_one_and_the_counts_agree_with_a_reopen() {
        let db = db();
        let store = ResponseStore::open(&db).expect("open");
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
        let reopened = ResponseStore::open(&db).expect("reopen");
        assert_eq!(
            reopened.totals(),
            totals,
            "the index agrees with what was counted"
        );
    }

    #[test]
    fn past_max_stored_bytes_the_oldest_go_and_a_record_too_large_is_not_kept() {
        let store = ResponseStore::open(&db()).expect("open");
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
        let store = ResponseStore::open(&db()).expect("open");
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
        assert!(store
            .get("resp_old", ME, limits.max_age, later)
            .expect("get")
            .is_none());
        assert_eq!(store.totals().count, 1, "removed when found expired");
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
        let store = ResponseStore::open(&db).expect("open");
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
        let reopened = ResponseStore::open(&db).expect("reopen");
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
    fn an_unusable_record_is_unknown_and_removed() {
        let db = db();
        let store = ResponseStore::open(&db).expect("open");
        db.open_tree(RECORDS)
            .expect("tree")
            .insert("resp_bad", &[7u8, 1, 2][..])
            .expect("insert");
        assert!(store.get("resp_bad", ME, DAY, 1).expect("get").is_none());
        assert!(db
            .open_tree(RECORDS)
            .expect("tree")
            .get("resp_bad")
            .expect("get")
            .is_none());
    }
}
