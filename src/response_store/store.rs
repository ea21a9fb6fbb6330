//! The kept responses in the store's database (see the parent's header for what a record is):
//!
//! - `responses`: response id (`resp_...`) -> record;
//! - `responses_age`: `created ms (BE) ++ id` -> the record's size (LE u64: id + record bytes),
//!   so the oldest is the index's first key.
//!
//! Both change together in one sled transaction, so they agree after any crash. The count and
//! bytes are summed from the index at open (a few bytes per record) and kept in memory under
//! one lock, which every write takes: a write is a few sled operations, no await.
//!
//! **Bounds** (`[responses]`, read at each write so a reload applies at the next): after each
//! write the oldest records go until the count is at most `max_stored` and the bytes at most
//! `max_stored_bytes`, and every record older than `max_age`; a single record larger than
//! `max_stored_bytes` is not kept. A lookup treats a record past `max_age` as gone (and
//! removes it), so an expired response is never served even when no write came since.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use super::{Owner, Stored};
use crate::config::ResponsesConfig;

const RECORDS: &str = "responses";
const AGES: &str = "responses_age";

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
    ages: sled::Tree,
    totals: Mutex<Totals>,
    /// Records this process wrote or found there, by id, with their owner and time: a cache
    /// hit's answer kept again is known held from here, without a read of the tree or a
    /// record built to be written. Emptied at [`KNOWN_MAX`] ids (forgetting costs only that).
    known: Mutex<HashMap<Box<str>, (Owner, u64)>>,
}

/// The most ids [`ResponseStore::knows`] remembers.
const KNOWN_MAX: usize = 16_384;
/// The longest id it remembers: promptd's own are 37 bytes, providers' about as long; a longer
/// one (a client's own trace id, a provider's) is looked up in the tree, not copied here.
const KNOWN_MAX_ID_BYTES: usize = 128;

impl crate::store::Store {
    /// The response store's trees in this database.
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

fn age_key(created_ms: u64, id: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(8 + id.len());
    key.extend_from_slice(&created_ms.to_be_bytes());
    key.extend_from_slice(id);
    key
}

fn size_of(value: &[u8]) -> u64 {
    <[u8; 8]>::try_from(value).map_or(0, u64::from_le_bytes)
}

/// A record made at `created_ms` is past `max_age` at `now_ms`.
pub(super) fn expired(created_ms: u64, max_age: Duration, now_ms: u64) -> bool {
    let age = u64::try_from(max_age.as_millis()).unwrap_or(u64::MAX);
    now_ms.saturating_sub(created_ms) > age
}

fn flatten(e: TransactionError<sled::Error>) -> sled::Error {
    match e {
        TransactionError::Abort(e) | TransactionError::Storage(e) => e,
    }
}

impl ResponseStore {
    /// Open (or create) the trees in `db` and sum what they hold.
    pub fn open(db: &sled::Db) -> sled::Result<ResponseStore> {
        let records = db.open_tree(RECORDS)?;
        let ages = db.open_tree(AGES)?;
        let mut totals = Totals::default();
        for entry in ages.iter() {
            let (_, size) = entry?;
            totals.count += 1;
            totals.bytes = totals.bytes.saturating_add(size_of(&size));
        }
        Ok(ResponseStore {
            records,
            ages,
            totals: Mutex::new(totals),
            known: Mutex::new(HashMap::new()),
        })
    }

    /// Whether record `id` of `owner`, not past `max_age`, is known to be held (written or
    /// found by this process, and not removed since). `false` says only "not known".
    pub fn knows(&self, id: &str, owner: Owner, max_age: Duration, now_ms: u64) -> bool {
        let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        known
            .get(id)
            .is_some_and(|&(o, created)| o == owner && !expired(created, max_age, now_ms))
    }

    fn learn(&self, id: &str, owner: Owner, created_ms: u64) {
        if id.len() > KNOWN_MAX_ID_BYTES {
            return;
        }
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        if known.len() >= KNOWN_MAX {
            known.clear();
        }
        known.insert(id.into(), (owner, created_ms));
    }

    fn forget(&self, id: &[u8]) {
        if let Ok(id) = std::str::from_utf8(id) {
            self.known
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(id);
        }
    }

    /// What the store holds now.
    pub fn totals(&self) -> Totals {
        *self.totals.lock().unwrap_or_else(|e| e.into_inner())
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

    /// Keep each `(id, stored)` as [`ResponseStore::put`] does, all in one sled transaction and
    /// one eviction (a writer with many answers waiting pays for one commit, not one each); a
    /// later one of the same id wins. Each's outcome, in order.
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
        let mut writes = Vec::with_capacity(items.len());
        for (i, (id, stored)) in items.iter().enumerate() {
            outcomes.push(self.encoded(id, stored, limits).map(|(bytes, size)| {
                writes.push((i, bytes, size));
            }));
        }
        if writes.is_empty() {
            return outcomes;
        }
        let mut totals = self.totals.lock().unwrap_or_else(|e| e.into_inner());
        // An id answered twice (a client's own trace id, a provider's cached answer) keeps
        // the last answer: the one it replaces leaves with its index entry, in the same
        // transaction.
        let written = (&self.records, &self.ages).transaction(|(records, ages)| {
            let mut replaced = Vec::with_capacity(writes.len());
            for (i, bytes, size) in &writes {
                let (id, stored) = items[*i];
                let old = records.insert(id.as_bytes(), bytes.as_slice())?;
                replaced.push(match old.as_deref().and_then(Stored::created_ms_of) {
                    Some(created) => ages
                        .remove(age_key(created, id.as_bytes()))?
                        .map(|v| size_of(&v)),
                    None => None,
                });
                let key = age_key(stored.created_ms, id.as_bytes());
                ages.insert(key.as_slice(), &size.to_le_bytes())?;
            }
            Ok::<_, ConflictableTransactionError<sled::Error>>(replaced)
        });
        let replaced = match written.map_err(flatten) {
            Ok(replaced) => replaced,
            Err(e) => {
                for (i, _, _) in &writes {
                    outcomes[*i] = Err(StoreError::from(e.clone()));
                }
                return outcomes;
            }
        };
        for ((i, _, size), old) in writes.iter().zip(replaced) {
            if let Some(old) = old {
                totals.count = totals.count.saturating_sub(1);
                totals.bytes = totals.bytes.saturating_sub(old);
            }
            totals.count += 1;
            totals.bytes = totals.bytes.saturating_add(*size);
            let (id, stored) = items[*i];
            self.learn(id, stored.owner, stored.created_ms);
        }
        if let Err(e) = self.evict_locked(limits, now_ms, &mut totals) {
            if let Some(last) = outcomes.last_mut() {
                *last = Err(e);
            }
        }
        outcomes
    }

    /// The bytes of `stored` and the size it counts for (id and bytes); too large a record is
    /// an error.
    fn encoded(
        &self,
        id: &str,
        stored: &Stored,
        limits: &ResponsesConfig,
    ) -> Result<(Vec<u8>, u64), StoreError> {
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
            Ok(stored) => Ok((stored.owner == owner).then_some(stored)),
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
        // id known.
        let _totals = self.totals.lock().unwrap_or_else(|e| e.into_inner());
        let Ok(Some(bytes)) = self.records.get(id.as_bytes()) else {
            return false;
        };
        match Stored::decode(&bytes) {
            Ok(s) if s.readable_by(owner, max_age, now_ms) => {
                self.learn(id, s.owner, s.created_ms);
                true
            }
            _ => false,
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

    fn remove(&self, id: &str) -> Result<(), StoreError> {
        let mut totals = self.totals.lock().unwrap_or_else(|e| e.into_inner());
        self.remove_locked(id.as_bytes(), &mut totals)
    }

    /// Remove record `id` and its index entry, if there.
    fn remove_locked(&self, id: &[u8], totals: &mut Totals) -> Result<(), StoreError> {
        self.forget(id);
        // The index entry is found by the record's time; a record of another format has none
        // we can find (it was never counted as this version writes).
        let size = (&self.records, &self.ages)
            .transaction(|(records, ages)| {
                let size = match records
                    .remove(id)?
                    .as_deref()
                    .and_then(Stored::created_ms_of)
                {
                    Some(created) => ages
                        .remove(age_key(created, id))?
                        .map_or(0, |v| size_of(&v)),
                    None => 0,
                };
                Ok::<_, ConflictableTransactionError<sled::Error>>(size)
            })
            .map_err(flatten)?;
        if size > 0 {
            totals.count = totals.count.saturating_sub(1);
            totals.bytes = totals.bytes.saturating_sub(size);
        }
        Ok(())
    }

    /// Remove the oldest records until the bounds hold and none is past `max_age`: found
    /// from the age index first, then removed in one transaction.
    fn evict_locked(
        &self,
        limits: &ResponsesConfig,
        now_ms: u64,
        totals: &mut Totals,
    ) -> Result<(), StoreError> {
        let (mut count, mut bytes) = (totals.count, totals.bytes);
        let mut gone = Vec::new();
        for entry in self.ages.iter() {
            let (key, size) = entry?;
            let created_ms = key
                .get(..8)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map_or(0, u64::from_be_bytes);
            let over = count > limits.max_stored || bytes > limits.max_stored_bytes;
            if !over && !expired(created_ms, limits.max_age, now_ms) {
                break;
            }
            count = count.saturating_sub(1);
            bytes = bytes.saturating_sub(size_of(&size));
            gone.push(key);
        }
        if gone.is_empty() {
            return Ok(());
        }
        for key in &gone {
            self.forget(key.get(8..).unwrap_or_default());
        }
        (&self.records, &self.ages)
            .transaction(|(records, ages)| {
                for key in &gone {
                    records.remove(key.get(8..).unwrap_or_default())?;
                    ages.remove(key)?;
                }
                Ok::<_, ConflictableTransactionError<sled::Error>>(())
            })
            .map_err(flatten)?;
        (totals.count, totals.bytes) = (count, bytes);
        Ok(())
    }
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
        // An id longer than any promptd makes is kept, but not remembered.
        let long = format!("resp_{}", "a".repeat(KNOWN_MAX_ID_BYTES));
        reopened
            .put(&long, &record(ME, HOUR_MS + 4, "x"), &limits, HOUR_MS + 4)
            .expect("put");
        assert!(!reopened.knows(&long, ME, DAY, HOUR_MS + 4));
        assert!(reopened.holds(&long, ME, DAY, HOUR_MS + 4));
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
