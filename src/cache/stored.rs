//! The cache's trees and the one way they change: sled transactions over the entries, two
//! indexes and the counters, so that they agree after any crash (sled recovers a prefix of
//! its log, and a transaction is in it whole or not at all).
//!
//! - `cache`: key (32 bytes) -> entry ([`super::entry`]: format byte, fixed header, body);
//! - `cache_used`: `last used ms (BE) ++ key` -> nothing: least recently used first;
//! - `cache_expiry`: `expires ms (BE) ++ key` -> nothing: earliest expiry first;
//! - `meta`: `cache.layout` (this layout's version, the entry format's and the key layout's),
//!   `cache.entries` and `cache.bytes` (LE u64, key + value bytes of every entry).
//!
//! So a start reads two counters instead of the whole tree, and eviction walks the indexes
//! instead of decoding every entry. A database of an older layout (or an entry format the
//! indexes do not know, or keys laid out otherwise, which no request could find) is emptied
//! once at open: the cache is a cache.
//!
//! A value written behind the cache's back (no header) is not counted and has no index
//! entries: it is never evicted, but the lookup that finds it drops it as corrupt.

use sled::transaction::{ConflictableTransactionResult, TransactionResult, TransactionalTree};
use sled::Transactional;

use super::entry::{Header, ENTRY_FORMAT};
use super::key::KEY_LAYOUT;

/// Bump when the trees' layout changes (or the entry format, which the indexes read).
const LAYOUT: u8 = 1;
const LAYOUT_KEY: &[u8] = b"cache.layout";
/// What `cache.layout` holds for this release.
const MARK: [u8; 3] = [LAYOUT, ENTRY_FORMAT, KEY_LAYOUT];
const ENTRIES_KEY: &[u8] = b"cache.entries";
const BYTES_KEY: &[u8] = b"cache.bytes";

/// What one change did to the counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delta {
    pub entries: i64,
    pub bytes: i64,
}

/// The cache's trees in the store's database.
#[derive(Debug, Clone)]
pub struct CacheTrees {
    pub(super) entries: sled::Tree,
    used: sled::Tree,
    expiry: sled::Tree,
    meta: sled::Tree,
}

impl crate::store::Store {
    /// The cache's trees (entries, indexes, counters) in this database.
    pub fn cache_trees(&self) -> Result<CacheTrees, crate::store::StoreError> {
        self.open_trees(CacheTrees::open)
    }
}

/// `time (BE) ++ key`: index keys sort by time.
fn index_key(time_ms: u64, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + key.len());
    out.extend_from_slice(&time_ms.to_be_bytes());
    out.extend_from_slice(key);
    out
}

fn read_u64(value: Option<sled::IVec>) -> u64 {
    value
        .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
        .map(u64::from_le_bytes)
        .unwrap_or(0)
}

fn add(counter: u64, delta: i64) -> u64 {
    if delta >= 0 {
        counter.saturating_add(delta as u64)
    } else {
        counter.saturating_sub(delta.unsigned_abs())
    }
}

type Tx<'a> = (
    &'a TransactionalTree,
    &'a TransactionalTree,
    &'a TransactionalTree,
    &'a TransactionalTree,
);

impl CacheTrees {
    /// Open the trees in `db`; an older layout is emptied (see the module's header).
    pub fn open(db: &sled::Db) -> sled::Result<CacheTrees> {
        CacheTrees {
            entries: db.open_tree("cache")?,
            used: db.open_tree("cache_used")?,
            expiry: db.open_tree("cache_expiry")?,
            meta: db.open_tree("meta")?,
        }
        .checked()
    }

    #[cfg(test)]
    pub(crate) fn clear_layout_for_test(&self) {
        let _ = self.meta.remove(LAYOUT_KEY);
    }

    /// Mark the trees as an older release left them (`mark`: its `cache.layout`).
    #[cfg(test)]
    pub(crate) fn mark_layout_for_test(&self, mark: &[u8]) {
        let _ = self.meta.insert(LAYOUT_KEY, mark);
    }

    #[cfg(test)]
    pub(crate) fn reopen_for_test(&self) -> sled::Result<CacheTrees> {
        self.clone().checked()
    }

    fn checked(self) -> sled::Result<CacheTrees> {
        let trees = self;
        let layout = trees.meta.get(LAYOUT_KEY)?;
        if layout.as_deref() != Some(&MARK[..]) {
            if !trees.entries.is_empty() {
                tracing::info!(
                    "the cache is of an older layout: emptied once (answers are cached again)"
                );
            }
            for tree in [&trees.entries, &trees.used, &trees.expiry] {
                tree.clear()?;
            }
            trees.meta.insert(ENTRIES_KEY, &0u64.to_le_bytes())?;
            trees.meta.insert(BYTES_KEY, &0u64.to_le_bytes())?;
            trees.meta.insert(LAYOUT_KEY, &MARK)?;
        }
        Ok(trees)
    }

    /// The entries' tree (for tests that write behind the cache's back).
    pub fn entries(&self) -> &sled::Tree {
        &self.entries
    }

    /// The counters as stored: (entries, bytes).
    pub fn counters(&self) -> sled::Result<(u64, u64)> {
        Ok((
            read_u64(self.meta.get(ENTRIES_KEY)?),
            read_u64(self.meta.get(BYTES_KEY)?),
        ))
    }

    fn transaction<T>(
        &self,
        f: impl Fn(Tx<'_>) -> ConflictableTransactionResult<T, ()>,
    ) -> TransactionResult<T, ()> {
        (&self.entries, &self.used, &self.expiry, &self.meta)
            .transaction(|(entries, used, expiry, meta)| f((entries, used, expiry, meta)))
    }

    /// Put `value` under `key`, replacing what was there.
    pub fn insert(&self, key: &[u8], value: &[u8]) -> Result<Delta, sled::Error> {
        let header = Header::read(value);
        let delta = self.transaction(|(entries, used, expiry, meta)| {
            let old = entries.insert(key, value)?;
            let mut delta = Delta {
                entries: 1,
                bytes: (key.len() + value.len()) as i64,
            };
            // A value without a header was not written (nor counted) by the cache.
            if let Some(old) = old.filter(|old| Header::read(old).is_some()) {
                unindex(used, expiry, key, &old)?;
                delta.entries = 0;
                delta.bytes -= (key.len() + old.len()) as i64;
            }
            if let Some(h) = header {
                used.insert(index_key(h.used_ms(), key), &[])?;
                expiry.insert(index_key(h.expires_ms, key), &[])?;
            }
            count(meta, delta)?;
            Ok(delta)
        });
        flat(delta)
    }

    /// Remove `key`: the counters' change (zero if it was not there).
    pub fn remove(&self, key: &[u8]) -> Result<Delta, sled::Error> {
        let delta = self.transaction(|(entries, used, expiry, meta)| {
            let Some(old) = entries.remove(key)? else {
                return Ok(Delta::default());
            };
            if Header::read(&old).is_none() {
                // Not written (nor counted) by the cache.
                return Ok(Delta::default());
            }
            unindex(used, expiry, key, &old)?;
            let delta = Delta {
                entries: -1,
                bytes: -((key.len() + old.len()) as i64),
            };
            count(meta, delta)?;
            Ok(delta)
        });
        flat(delta)
    }

    /// Replace `key`'s value by `update(old)` if it is there and `update` gives one.
    pub fn update(
        &self,
        key: &[u8],
        update: impl Fn(&[u8]) -> Option<Vec<u8>>,
    ) -> Result<Delta, sled::Error> {
        let delta = self.transaction(|(entries, used, expiry, meta)| {
            let Some(old) = entries.get(key)?.filter(|old| Header::read(old).is_some()) else {
                return Ok(Delta::default());
            };
            let Some(new) = update(&old) else {
                return Ok(Delta::default());
            };
            entries.insert(key, new.as_slice())?;
            unindex(used, expiry, key, &old)?;
            if let Some(h) = Header::read(&new) {
                used.insert(index_key(h.used_ms(), key), &[])?;
                expiry.insert(index_key(h.expires_ms, key), &[])?;
            }
            let delta = Delta {
                entries: 0,
                bytes: new.len() as i64 - old.len() as i64,
            };
            count(meta, delta)?;
            Ok(delta)
        });
        flat(delta)
    }

    /// Index keys (`time ++ key`) in least-recently-used order.
    pub fn by_use(&self) -> impl Iterator<Item = sled::IVec> {
        self.used.iter().keys().flatten()
    }

    /// Index keys (`time ++ key`) by expiry, earliest first.
    pub fn by_expiry(&self) -> impl Iterator<Item = sled::IVec> {
        self.expiry.iter().keys().flatten()
    }

    /// Remove the entry an index key names; an index key whose entry is gone (nothing the
    /// cache does leaves one; kept for safety) is removed itself.
    pub fn remove_indexed(&self, index_key: &[u8]) -> Result<Delta, sled::Error> {
        let Some(key) = index_key.get(8..) else {
            return Ok(Delta::default());
        };
        let delta = self.remove(key)?;
        if delta == Delta::default() {
            self.used.remove(index_key)?;
            self.expiry.remove(index_key)?;
        }
        Ok(delta)
    }
}

/// The time an index key sorts by.
pub fn index_time(index_key: &[u8]) -> u64 {
    index_key
        .get(..8)
        .and_then(|t| <[u8; 8]>::try_from(t).ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0)
}

fn unindex(
    used: &TransactionalTree,
    expiry: &TransactionalTree,
    key: &[u8],
    old: &[u8],
) -> ConflictableTransactionResult<(), ()> {
    if let Some(h) = Header::read(old) {
        used.remove(index_key(h.used_ms(), key))?;
        expiry.remove(index_key(h.expires_ms, key))?;
    }
    Ok(())
}

fn count(meta: &TransactionalTree, delta: Delta) -> ConflictableTransactionResult<(), ()> {
    if delta == Delta::default() {
        return Ok(());
    }
    let entries = add(read_u64(meta.get(ENTRIES_KEY)?), delta.entries);
    let bytes = add(read_u64(meta.get(BYTES_KEY)?), delta.bytes);
    meta.insert(ENTRIES_KEY, &entries.to_le_bytes())?;
    meta.insert(BYTES_KEY, &bytes.to_le_bytes())?;
    Ok(())
}

fn flat<T>(result: TransactionResult<T, ()>) -> Result<T, sled::Error> {
    use sled::transaction::TransactionError;
    match result {
        Ok(t) => Ok(t),
        Err(TransactionError::Storage(e)) => Err(e),
        // Nothing here aborts.
        Err(TransactionError::Abort(())) => Err(sled::Error::ReportableBug(
            "a cache transaction aborted".into(),
        )),
    }
}
