//! The completion cache: entries in sled keyed by [`key::cache_key`], TTL and a byte bound,
//! statistics, and the coalescing of identical in-flight requests ([`coalesce`]).
//!
//! Reads are one sled `get` and a bincode decode. Hits are counted in memory and written back
//! to the entries by the background [`Cache::maintain`] pass, which also evicts: expired entries
//! first, then the least recently used, until the stored bytes are under `max_bytes`, walking
//! the indexes of [`stored`] (no entry is decoded to evict it). The entry count and byte total
//! are kept with the entries ([`stored`]), so opening reads two numbers, not the tree. Expired
//! entries stay until evicted so they can answer while the provider is down
//! (`serve_stale_on_error`). A value that does not decode is a miss and is overwritten.
//! The cache knows nothing of HTTP.

pub mod coalesce;
pub mod embed_key;
pub mod entry;
pub mod key;
mod model_key;
pub mod stored;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};
use parking_lot::Mutex;
use serde::Serialize;

pub use crate::config::CacheConfig;
pub use coalesce::Flights;
pub use entry::CacheEntry;
pub use key::{cache_key, CacheKey, KeyMap};
pub use model_key::model_key;
pub use stored::CacheTrees;

/// What a request did with the cache; sent as `x-promptd-cache`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// Answered from a stored entry (or from an identical request's call in flight).
    Hit,
    /// Asked the provider, stored the answer.
    Miss,
    /// The provider failed; answered from an expired entry.
    Stale,
    /// `cache: false` or the cache is disabled.
    Bypass,
}

impl CacheStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Hit => "hit",
            CacheStatus::Miss => "miss",
            CacheStatus::Stale => "stale",
            CacheStatus::Bypass => "bypass",
        }
    }
}

/// A lookup's result.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    /// Decoded once and shared while its bytes are the tree's ([`Cache::lookup`]).
    Fresh(Arc<CacheEntry>),
    /// Past its TTL: only for answering while the provider fails.
    Expired(Box<CacheEntry>),
    Miss,
}

/// Counters for `GET /cache/stats`.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct CacheStats {
    pub enabled: bool,
    pub entries: u64,
    pub bytes: u64,
    pub max_bytes: u64,
    pub hits: u64,
    pub misses: u64,
    pub stale: u64,
    pub bypass: u64,
    pub coalesced: u64,
    pub evictions: u64,
    pub corrupt: u64,
    pub write_errors: u64,
    /// Lookups sled could not answer (answered as misses).
    pub read_errors: u64,
    /// Answers not stored because they were over `cache.max_entry_bytes`.
    pub too_large: u64,
    /// Damaged databases moved aside at this start (0 or 1; see [`crate::store`]).
    pub db_damaged: u64,
    /// Where the damaged database was moved, if it was.
    pub db_damaged_path: Option<String>,
    /// No room on disk at start: the cache runs in a temporary database until a restart.
    pub db_in_memory: bool,
}

#[derive(Debug, Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    stale: AtomicU64,
    bypass: AtomicU64,
    coalesced: AtomicU64,
    evictions: AtomicU64,
    corrupt: AtomicU64,
    write_errors: AtomicU64,
    read_errors: AtomicU64,
    too_large: AtomicU64,
}

#[derive(Debug, Clone, Copy)]
struct Access {
    hits: u64,
    last_used_ms: u64,
}

/// The cache over one sled tree.
#[derive(Debug)]
pub struct Cache {
    trees: CacheTrees,
    /// Swapped whole on a config reload.
    config: ArcSwap<CacheConfig>,
    entries: AtomicU64,
    bytes: AtomicU64,
    counters: Counters,
    /// Hits since the last maintenance pass, written back to the entries by it.
    access: Mutex<KeyMap<Access>>,
    write_error_logged: AtomicBool,
    read_error_logged: AtomicBool,
    /// What opening the database had to do.
    opened: Mutex<crate::store::OpenReport>,
    /// Entries hit lately, decoded, with the bytes they were decoded from (see [`Decoded`]).
    decoded: Mutex<Decoded>,
}

/// Hit entries kept decoded: a hit reads its entry's bytes from the tree as always, and when
/// they are the bytes an entry here was decoded from (the same allocation, or equal), takes
/// that entry instead of decoding them again. Whatever changed the tree (a new answer, a
/// removal, the hit counts written back) changed the bytes, so nothing here can answer for
/// what is not there: it needs no invalidation. Bounded by [`DECODED_MAX_BYTES`] of entries
/// (their bodies unpacked: a compressed entry counts what it decodes to) and
/// [`DECODED_MAX_ENTRIES`], emptied when either is reached.
#[derive(Debug, Default)]
struct Decoded {
    entries: KeyMap<(sled::IVec, Arc<CacheEntry>)>,
    /// The unpacked size of the entries held.
    bytes: usize,
}

/// The unpacked entry bytes [`Decoded`] holds at most.
const DECODED_MAX_BYTES: usize = 2 * 1024 * 1024;
/// The entries [`Decoded`] holds at most.
const DECODED_MAX_ENTRIES: usize = 1024;

impl Decoded {
    /// The entry decoded from `bytes` for `key`, if it is here.
    fn get(&self, key: &CacheKey, bytes: &sled::IVec) -> Option<Arc<CacheEntry>> {
        let (held, entry) = self.entries.get(key)?;
        let same = held.as_ptr() == bytes.as_ptr() && held.len() == bytes.len();
        (same || held[..] == bytes[..]).then(|| Arc::clone(entry))
    }

    fn put(&mut self, key: CacheKey, bytes: sled::IVec, entry: Arc<CacheEntry>) {
        let size = CacheEntry::unpacked_len(&bytes);
        if size > DECODED_MAX_BYTES / 8 {
            return;
        }
        if self.entries.len() >= DECODED_MAX_ENTRIES || self.bytes + size > DECODED_MAX_BYTES {
            self.entries.clear();
            self.bytes = 0;
        }
        self.bytes += size;
        if let Some((old, _)) = self.entries.insert(key, (bytes, entry)) {
            self.bytes -= CacheEntry::unpacked_len(&old);
        }
    }
}

/// The bound of a cache whose database had to be opened in memory (no room on disk at start):
/// `max_bytes` is a disk budget, far too much RAM; a small cache still answers repeats.
const IN_MEMORY_MAX_BYTES: u64 = 32 * 1024 * 1024;

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Cache {
    /// Open the cache over `trees`, with the counts they keep (the entries are not read).
    pub fn open(trees: CacheTrees, config: CacheConfig) -> Cache {
        let (entries, bytes) = trees.counters().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read the cache's counters; counting from zero");
            (0, 0)
        });
        Cache {
            trees,
            config: ArcSwap::from_pointee(config),
            entries: AtomicU64::new(entries),
            bytes: AtomicU64::new(bytes),
            counters: Counters::default(),
            access: Mutex::new(KeyMap::default()),
            write_error_logged: AtomicBool::new(false),
            read_error_logged: AtomicBool::new(false),
            opened: Mutex::new(crate::store::OpenReport::default()),
            decoded: Mutex::new(Decoded::default()),
        }
    }

    /// Remember what opening the database had to do (shown in the statistics).
    pub fn note_open(&self, report: &crate::store::OpenReport) {
        *self.opened.lock() = report.clone();
    }

    pub fn config(&self) -> Guard<Arc<CacheConfig>> {
        self.config.load()
    }

    /// Apply new settings (config reload): TTL of new entries, bound, stale answers, on/off.
    pub fn set_config(&self, config: CacheConfig) {
        self.config.store(Arc::new(config));
    }

    /// Look `key` up. A value that does not decode is removed, counted and reported as a miss.
    pub fn lookup(&self, key: &CacheKey) -> Lookup {
        let bytes = match self.trees.entries.get(key.0) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Lookup::Miss,
            // sled may write on a read (it finishes a node split or merge on the way), so
            // with a sticky I/O error (a full disk) some lookups fail until the restart:
            // counted, and logged once, not on every request.
            Err(e) => {
                self.counters.read_errors.fetch_add(1, Ordering::Relaxed);
                if !self.read_error_logged.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        error = %e,
                        "cache read failed; answered as a miss (further read errors are only \
                         counted: read_errors in /cache/stats)"
                    );
                }
                return Lookup::Miss;
            }
        };
        if let Some(entry) = self.decoded.lock().get(key, &bytes) {
            if !entry.is_expired(now_ms()) {
                return Lookup::Fresh(entry);
            }
        }
        match CacheEntry::decode(&bytes) {
            Ok(entry) if entry.is_expired(now_ms()) => Lookup::Expired(Box::new(entry)),
            Ok(entry) => {
                let entry = Arc::new(entry);
                self.decoded.lock().put(*key, bytes, Arc::clone(&entry));
                Lookup::Fresh(entry)
            }
            Err(e) => {
                self.counters.corrupt.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(key = %key.to_hex(), error = %e, "unusable cache entry dropped");
                self.remove(key);
                Lookup::Miss
            }
        }
    }

    /// Count a hit on `key` (written back to the entry by the next maintenance pass).
    pub fn record_hit(&self, key: &CacheKey) {
        self.counters.hits.fetch_add(1, Ordering::Relaxed);
        let mut access = self.access.lock();
        let slot = access.entry(*key).or_insert(Access {
            hits: 0,
            last_used_ms: 0,
        });
        slot.hits += 1;
        slot.last_used_ms = now_ms();
    }

    pub fn record(&self, status: CacheStatus) {
        let counter = match status {
            CacheStatus::Hit => &self.counters.hits,
            CacheStatus::Miss => &self.counters.misses,
            CacheStatus::Stale => &self.counters.stale,
            CacheStatus::Bypass => &self.counters.bypass,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_coalesced(&self) {
        self.counters.coalesced.fetch_add(1, Ordering::Relaxed);
    }

    /// A new entry for an answer created now, expiring after the TTL.
    pub fn new_entry_times(&self) -> (u64, u64) {
        let now = now_ms();
        (
            now,
            now.saturating_add(self.config.load().ttl.as_millis() as u64),
        )
    }

    /// Store `entry` under `key`. A failed write (full disk, ...) is counted and logged once;
    /// the answer still reaches the client.
    pub fn store(&self, key: &CacheKey, entry: &CacheEntry) {
        let Some(value) = entry.encode_within(self.config.load().max_entry_bytes) else {
            self.counters.too_large.fetch_add(1, Ordering::Relaxed);
            return;
        };
        match self.trees.insert(&key.0, &value) {
            Ok(delta) => self.apply(delta),
            Err(e) => {
                self.counters.write_errors.fetch_add(1, Ordering::Relaxed);
                if !self.write_error_logged.swap(true, Ordering::Relaxed) {
                    tracing::error!(
                        error = %e,
                        "cannot write to the cache: answers are still served, cached ones \
                         mostly included, but new ones are not stored (further write errors \
                         are only counted); sled keeps an I/O error such as a full disk until \
                         promptd restarts: free space, then restart"
                    );
                }
            }
        }
    }

    /// Remove `key`; whether it was there.
    pub fn remove(&self, key: &CacheKey) -> bool {
        self.remove_raw(&key.0)
    }

    /// Remove whatever is stored under `key` (a foreign one too), keeping the counters true.
    fn remove_raw(&self, key: &[u8]) -> bool {
        match self.trees.remove(key) {
            Ok(delta) => {
                self.apply(delta);
                delta.entries != 0
            }
            Err(e) => {
                tracing::warn!(error = %e, "cache remove failed");
                false
            }
        }
    }

    /// Apply a committed change to the in-memory counters.
    fn apply(&self, delta: stored::Delta) {
        for (counter, d) in [(&self.entries, delta.entries), (&self.bytes, delta.bytes)] {
            let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
                Some(if d >= 0 {
                    c.saturating_add(d as u64)
                } else {
                    c.saturating_sub(d.unsigned_abs())
                })
            });
        }
    }

    /// Remove every entry; how many there were.
    pub fn purge(&self) -> u64 {
        let keys: Vec<sled::IVec> = self.trees.entries.iter().keys().flatten().collect();
        let mut removed = 0;
        for k in keys {
            // A value the cache did not write is removed too, but was not counted.
            let counted = self.remove_raw(&k);
            if !counted {
                let _ = self.trees.entries.remove(&k);
            }
            removed += u64::from(counted);
        }
        self.access.lock().clear();
        removed
    }

    pub fn stats(&self) -> CacheStats {
        let c = &self.counters;
        let config = self.config.load();
        let opened = self.opened.lock();
        CacheStats {
            enabled: config.enabled,
            entries: self.entries.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            max_bytes: config.max_bytes,
            hits: c.hits.load(Ordering::Relaxed),
            misses: c.misses.load(Ordering::Relaxed),
            stale: c.stale.load(Ordering::Relaxed),
            bypass: c.bypass.load(Ordering::Relaxed),
            coalesced: c.coalesced.load(Ordering::Relaxed),
            evictions: c.evictions.load(Ordering::Relaxed),
            corrupt: c.corrupt.load(Ordering::Relaxed),
            write_errors: c.write_errors.load(Ordering::Relaxed),
            read_errors: c.read_errors.load(Ordering::Relaxed),
            too_large: c.too_large.load(Ordering::Relaxed),
            db_damaged: u64::from(opened.damaged.is_some()),
            db_damaged_path: opened.damaged.as_ref().map(|p| p.display().to_string()),
            db_in_memory: opened.in_memory,
        }
    }

    /// One maintenance pass: write hit counts back, then evict down to `max_bytes`.
    pub fn maintain(&self) {
        self.write_back_access();
        self.evict();
    }

    fn write_back_access(&self) {
        let access = std::mem::take(&mut *self.access.lock());
        for (key, a) in access {
            // An unreadable value stays as it is; the next lookup counts it as corrupt and
            // replaces it.
            let updated = self.trees.update(&key.0, |old| {
                let mut entry = CacheEntry::decode(old).ok()?;
                entry.hits += a.hits;
                entry.last_used_ms = entry.last_used_ms.max(a.last_used_ms);
                Some(entry.encode())
            });
            match updated {
                Ok(delta) => self.apply(delta),
                Err(e) => tracing::debug!(error = %e, "writing a hit count back failed"),
            }
        }
    }

    fn evict(&self) {
        let mut max = self.config.load().max_bytes;
        if self.opened.lock().in_memory {
            // The temporary database of a full disk lives in RAM (/dev/shm).
            max = max.min(IN_MEMORY_MAX_BYTES);
        }
        if self.bytes.load(Ordering::Relaxed) <= max {
            return;
        }
        // Go a little under the bound so eviction does not run on every write.
        let target = max - max / 10;
        let over = || self.bytes.load(Ordering::Relaxed) > target;
        let now = now_ms();
        // Expired entries first (earliest expiry first), then the least recently used.
        let expired = self
            .trees
            .by_expiry()
            .take_while(|k| stored::index_time(k) <= now);
        for index_key in expired.chain(self.trees.by_use()) {
            if !over() {
                break;
            }
            match self.trees.remove_indexed(&index_key) {
                Ok(delta) if delta.entries != 0 => {
                    self.apply(delta);
                    self.counters.evictions.fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "cache eviction failed");
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn cache(max_bytes: u64) -> (tempfile::TempDir, Cache) {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = sled::Config::new()
            .temporary(true)
            .path(dir.path().join("db"))
            .open()
            .expect("db");
        let trees = CacheTrees::open(&db).expect("trees");
        let config = CacheConfig {
            enabled: true,
            ttl: Duration::from_secs(60),
            max_bytes,
            serve_stale_on_error: true,
            max_entry_bytes: u64::MAX,
            page_cache: 1 << 20,
        };
        (dir, Cache::open(trees, config))
    }

    fn key(n: u8) -> CacheKey {
        CacheKey([n; 32])
    }

    fn entry(expires_ms: u64, last_used_ms: u64) -> CacheEntry {
        CacheEntry {
            expires_ms,
            last_used_ms,
            created_ms: 0,
            ..entry::tests::sample()
        }
    }

    #[test]
    fn fresh_expired_miss_and_corrupt() {
        let (_d, cache) = cache(1 << 20);
        let far = now_ms() + 60_000;
        cache.store(&key(1), &entry(far, 0));
        cache.store(&key(2), &entry(1, 0));
        assert!(matches!(cache.lookup(&key(1)), Lookup::Fresh(_)));
        assert!(matches!(cache.lookup(&key(2)), Lookup::Expired(_)));
        assert_eq!(cache.lookup(&key(3)), Lookup::Miss);
        cache
            .trees
            .entries
            .insert(key(4).0, &b"\x01garbage"[..])
            .expect("insert");
        cache
            .trees
            .entries
            .insert(key(5).0, &b"\x07future format"[..])
            .expect("insert");
        assert_eq!(cache.lookup(&key(4)), Lookup::Miss);
        assert_eq!(cache.lookup(&key(5)), Lookup::Miss);
        assert_eq!(cache.stats().corrupt, 2);
        assert!(
            cache.trees.entries.get(key(4).0).expect("get").is_none(),
            "corrupt value removed"
        );
        assert_eq!(
            Cache::open(cache.trees.clone(), (**cache.config()).clone())
                .stats()
                .entries,
            2
        );
    }

    #[test]
    fn a_hit_entry_is_decoded_once_while_its_bytes_are_the_trees() {
        let (_d, cache) = cache(1 << 20);
        let fresh = |l: Lookup| match l {
            Lookup::Fresh(e) => e,
            other => panic!("not fresh: {other:?}"),
        };
        cache.store(&key(1), &entry(u64::MAX, 0));
        let first = fresh(cache.lookup(&key(1)));
        let again = fresh(cache.lookup(&key(1)));
        assert!(Arc::ptr_eq(&first, &again), "decoded once");
        // A new answer under the key: its bytes, not the entry decoded before.
        let newer = CacheEntry {
            created_ms: 7,
            ..entry(u64::MAX, 0)
        };
        cache.store(&key(1), &newer);
        let replaced = fresh(cache.lookup(&key(1)));
        assert_eq!(replaced.created_ms, 7);
        // Removed: a miss, whatever was decoded.
        assert!(cache.remove(&key(1)));
        assert_eq!(cache.lookup(&key(1)), Lookup::Miss);
        // Expired since it was decoded: not answered as fresh.
        cache.store(&key(2), &entry(now_ms() + 60_000, 0));
        fresh(cache.lookup(&key(2)));
        cache.store(&key(2), &entry(1, 0));
        assert!(matches!(cache.lookup(&key(2)), Lookup::Expired(_)));
    }

    #[test]
    fn counts_survive_reopen_and_purge_empties() {
        let (dir, cache) = cache(1 << 20);
        cache.store(&key(1), &entry(u64::MAX, 0));
        cache.store(&key(1), &entry(u64::MAX, 0));
        cache.store(&key(2), &entry(u64::MAX, 0));
        let stats = cache.stats();
        assert_eq!(stats.entries, 2);
        let reopened = Cache::open(cache.trees.clone(), (**cache.config()).clone());
        assert_eq!(reopened.stats().entries, 2);
        assert_eq!(reopened.stats().bytes, stats.bytes);
        assert_eq!(reopened.purge(), 2);
        assert_eq!(reopened.stats().entries, 0);
        assert_eq!(reopened.stats().bytes, 0);
        drop(dir);
    }

    #[test]
    fn hits_are_written_back_and_eviction_takes_expired_then_least_recently_used() {
        let now = now_ms();
        let one = entry(u64::MAX, now).encode().len() as u64 + 32;
        let (_d, cache) = cache(one * 3);
        cache.store(&key(1), &entry(u64::MAX, now - 3000)); // oldest use
        cache.store(&key(2), &entry(1, now)); // expired
        cache.store(&key(3), &entry(u64::MAX, now - 1000));
        cache.record_hit(&key(1)); // now the most recently used
        cache.maintain();
        assert_eq!(cache.stats().evictions, 0, "at the bound, nothing to evict");
        cache.store(&key(4), &entry(u64::MAX, now));
        cache.maintain();
        let left: Vec<u8> = (1..=4)
            .filter(|n| cache.lookup(&key(*n)) != Lookup::Miss)
            .collect();
        assert_eq!(
            left,
            vec![1, 4],
            "expired 2 and least recently used 3 evicted"
        );
        assert_eq!(cache.stats().evictions, 2);
        match cache.lookup(&key(1)) {
            Lookup::Fresh(e) => assert_eq!(e.hits, 1),
            other => panic!("{other:?}"),
        }
        assert!(cache.stats().bytes <= one * 3);
    }

    #[test]
    fn write_back_keeps_the_counters_true() {
        let (_d, cache) = cache(1 << 20);
        cache.store(&key(1), &entry(u64::MAX, 0));
        cache
            .trees
            .entries
            .insert(key(2).0, &b"\x01garbage"[..])
            .expect("insert");
        let reopened = Cache::open(cache.trees.clone(), (**cache.config()).clone());
        let before = reopened.stats();
        for _ in 0..200 {
            reopened.record_hit(&key(1)); // 200 hits: a longer varint
        }
        reopened.record_hit(&key(2));
        reopened.maintain();
        let after = reopened.stats();
        assert_eq!(
            after.entries, 1,
            "a value the cache did not write is not counted"
        );
        assert!(
            reopened.trees.entries.contains_key(key(2).0).expect("get"),
            "nor deleted by the write-back"
        );
        assert_eq!((after.entries, after.bytes), recount(&reopened));
        assert!(after.bytes > before.bytes, "the hit count grew the entry");
    }

    /// Entries and bytes of what the cache wrote, read from the tree.
    fn recount(cache: &Cache) -> (u64, u64) {
        cache
            .trees
            .entries
            .iter()
            .flatten()
            .filter(|(_, v)| entry::Header::read(v).is_some())
            .fold((0, 0), |(n, b), (k, v)| {
                (n + 1, b + (k.len() + v.len()) as u64)
            })
    }

    #[test]
    fn the_counters_are_kept_with_the_entries_and_read_at_open() {
        // The entries were last used a minute ago, so the hit below (at the clock's now) is
        // the latest use however fast the test runs.
        let now = now_ms().saturating_sub(60_000);
        let one = entry(u64::MAX, now).encode().len() as u64 + 32;
        let (_d, cache) = cache(one * 20);
        for n in 0..30u8 {
            cache.store(&key(n), &entry(u64::MAX, now + u64::from(n)));
        }
        cache.store(&key(3), &entry(u64::MAX, now)); // replaced
        cache.remove(&key(4));
        cache.record_hit(&key(5));
        cache.maintain(); // write-back and eviction
        let stats = cache.stats();
        assert!(stats.evictions > 0 && stats.bytes <= one * 20, "{stats:?}");
        assert_eq!((stats.entries, stats.bytes), recount(&cache));
        let reopened = Cache::open(cache.trees.clone(), (**cache.config()).clone());
        assert_eq!(
            (reopened.stats().entries, reopened.stats().bytes),
            (stats.entries, stats.bytes)
        );
        assert!(
            matches!(reopened.lookup(&key(5)), Lookup::Fresh(_)),
            "the entry just used is not the one evicted"
        );
    }

    #[test]
    fn an_older_layout_is_emptied_once() {
        let (_d, cache) = cache(1 << 20);
        cache.store(&key(1), &entry(u64::MAX, 0));
        let db_meta = cache.trees.clone();
        // As a database of the release before: entries, no layout mark.
        db_meta.clear_layout_for_test();
        let reopened = Cache::open(
            CacheTrees::reopen_for_test(&db_meta).expect("trees"),
            (**cache.config()).clone(),
        );
        assert_eq!(reopened.stats().entries, 0);
        assert_eq!(reopened.lookup(&key(1)), Lookup::Miss);
        reopened.store(&key(2), &entry(u64::MAX, 0));
        let again = Cache::open(
            CacheTrees::reopen_for_test(&db_meta).expect("trees"),
            (**cache.config()).clone(),
        );
        assert_eq!(again.stats().entries, 1, "emptied once, not at every open");
    }

    #[test]
    fn a_database_of_entry_format_6_is_emptied() {
        let (_d, cache) = cache(1 << 20);
        cache.store(&key(1), &entry(u64::MAX, 0));
        let db_meta = cache.trees.clone();
        // As the release before this entry format left it: its entries, its mark.
        db_meta.mark_layout_for_test(&[1, 6, key::KEY_LAYOUT]);
        let reopened = Cache::open(
            CacheTrees::reopen_for_test(&db_meta).expect("trees"),
            (**cache.config()).clone(),
        );
        assert_eq!(reopened.stats().entries, 0);
        assert_eq!(reopened.lookup(&key(1)), Lookup::Miss);
    }

    #[test]
    fn a_database_of_another_key_layout_is_emptied() {
        let (_d, cache) = cache(1 << 20);
        cache.store(&key(1), &entry(u64::MAX, 0));
        let db_meta = cache.trees.clone();
        // As the release of key layout 3 left it: a mark of the trees' layout and entry format
        // only; none of its keys is one a request of this release makes.
        db_meta.mark_layout_for_test(&[1, entry::ENTRY_FORMAT]);
        let reopened = Cache::open(
            CacheTrees::reopen_for_test(&db_meta).expect("trees"),
            (**cache.config()).clone(),
        );
        assert_eq!(reopened.stats().entries, 0);
        assert_eq!(reopened.lookup(&key(1)), Lookup::Miss);
    }
}
