//! The daemon's one sled database under `state_dir/db`, with its trees: `cache` (completion
//! entries) and `deployments` (deployed prompts, local and fetched).
//!
//! sled writes to its log in memory and flushes it every [`FLUSH_EVERY_MS`]: that is the window
//! of writes a crash (SIGKILL, power loss) may lose. A clean shutdown flushes explicitly. sled's
//! own lock file keeps a second daemon off the same database.

use std::path::{Path, PathBuf};

/// How often sled flushes its log to disk: the crash-loss window of cache writes.
pub const FLUSH_EVERY_MS: u64 = 500;

/// Opening the database failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot open the database {path}: {source} (is another promptd using this state_dir?)")]
pub struct StoreError {
    pub path: PathBuf,
    pub source: sled::Error,
}

/// The open database.
#[derive(Debug, Clone)]
pub struct Store {
    db: sled::Db,
    path: PathBuf,
}

impl Store {
    /// Open (or create) `state_dir/db`.
    pub fn open(state_dir: &Path) -> Result<Store, StoreError> {
        let path = state_dir.join("db");
        let db = sled::Config::new()
            .path(&path)
            .flush_every_ms(Some(FLUSH_EVERY_MS))
            .open()
            .map_err(|source| StoreError {
                path: path.clone(),
                source,
            })?;
        Ok(Store { db, path })
    }

    fn tree(&self, name: &str) -> Result<sled::Tree, StoreError> {
        self.db.open_tree(name).map_err(|source| StoreError {
            path: self.path.clone(),
            source,
        })
    }

    pub fn cache_tree(&self) -> Result<sled::Tree, StoreError> {
        self.tree("cache")
    }

    pub fn deployments_tree(&self) -> Result<sled::Tree, StoreError> {
        self.tree("deployments")
    }

    /// Write everything to disk (clean shutdown).
    pub fn flush(&self) {
        if let Err(e) = self.db.flush() {
            tracing::error!(path = %self.path.display(), error = %e, "flushing the database failed");
        }
    }
}
