//! The daemon's one sled database under `state_dir/db`, with its trees: `cache` (completion
//! entries, with their indexes and counters, see [`crate::cache`]) and `deployments`
//! (deployed prompts, local and fetched).
//!
//! sled writes to its log in memory and flushes it every [`FLUSH_EVERY_MS`]: that is the window
//! of writes a crash (SIGKILL, power loss) may lose. A clean shutdown flushes explicitly. sled's
//! own lock file keeps a second daemon off the same database.
//!
//! **Bad conditions never stop the start** ([`Store::open`]); the database is a cache (prompt
//! files are the source of deployments), so each of these starts the daemon, logs one line,
//! and shows in `/cache/stats` (`db_damaged`, `db_in_memory`):
//! - **another process holds the database** (sled's `flock` on `db/db`): the one refusal, with
//!   an error that says so. It is checked before anything is called damaged, because sled reads
//!   its `conf` before it takes its lock;
//! - **damaged** (sled reports corruption or an unsupported format, or panics on the bytes):
//!   the directory is moved aside to `db.damaged-<UTC time>` (kept for a post-mortem; delete it
//!   at will) and an empty database is created;
//! - **no space** (a restart on a full disk): sled writes at open (it zeroes the rest of its
//!   last segment), so the store keeps a reserve file (`state_dir/db.reserve`, [`RESERVE_BYTES`]
//!   of zeroes, CockroachDB's "ballast" idea): on ENOSPC it is deleted and the open retried;
//!   without a reserve (or if that is not enough) the cache runs in a temporary database, empty,
//!   until the next restart. The reserve is made again at the next start with room.

use std::io;
use std::path::{Path, PathBuf};

/// How often sled flushes its log to disk: the crash-loss window of cache writes.
pub const FLUSH_EVERY_MS: u64 = 500;

/// Room kept back for sled's writes at open on a full disk: a few of its 512 KiB segments.
pub const RESERVE_BYTES: u64 = 2 * 1024 * 1024;

/// Opening the database failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the database {path} is in use by another process (another promptd owns this \
         state_dir; stop it, or give this one its own state_dir)"
    )]
    Owned { path: PathBuf },
    #[error("cannot open the database {path}: {source}")]
    Open { path: PathBuf, source: sled::Error },
    #[error("cannot move the damaged database {path} aside: {source}")]
    MoveAside { path: PathBuf, source: io::Error },
}

/// How to open the database.
#[derive(Debug, Clone, Copy)]
pub struct StoreOptions {
    /// sled's page cache, in bytes (`cache.page_cache`).
    pub page_cache: u64,
}

/// What happened at open, for the cache's statistics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// Where a damaged database was moved.
    pub damaged: Option<PathBuf>,
    /// No room on disk: the cache lives in a temporary database until the restart.
    pub in_memory: bool,
}

/// The open database.
#[derive(Debug, Clone)]
pub struct Store {
    db: sled::Db,
    path: PathBuf,
    report: OpenReport,
}

impl Store {
    /// Open (or create) `state_dir/db`; see the module's header for what is done when that
    /// fails.
    pub fn open(state_dir: &Path, options: StoreOptions) -> Result<Store, StoreError> {
        let path = state_dir.join("db");
        let reserve = state_dir.join("db.reserve");
        let mut report = OpenReport::default();
        // sled starts afresh, silently, from a db file it finds nothing in (garbage,
        // truncated): one that had bytes and was not recovered is damaged too.
        let had_data = std::fs::metadata(path.join("db")).is_ok_and(|m| m.len() > 0);
        let db = match open_at(&path, options) {
            Ok(db) if had_data && !db.was_recovered() => {
                drop(db);
                let e = sled::Error::Unsupported("nothing recoverable in its db file".into());
                reopen_damaged(&path, options, &e, &mut report)?
            }
            Ok(db) => db,
            Err(e) if is_locked(&path) => {
                tracing::debug!(error = %e, "database open failed while another process holds it");
                return Err(StoreError::Owned { path });
            }
            Err(sled::Error::Io(e)) if is_out_of_space(&e) => {
                let (db, in_memory) = open_on_full_disk(&path, &reserve, options)?;
                report.in_memory = in_memory;
                db
            }
            Err(e) if is_damage(&e) => reopen_damaged(&path, options, &e, &mut report)?,
            Err(source) => return Err(StoreError::Open { path, source }),
        };
        if !report.in_memory {
            make_reserve(&reserve);
        }
        Ok(Store { db, path, report })
    }

    fn tree(&self, name: &str) -> Result<sled::Tree, StoreError> {
        self.db.open_tree(name).map_err(|source| StoreError::Open {
            path: self.path.clone(),
            source,
        })
    }

    /// Trees a component opens itself (the cache's: `Store::cache_trees`, in the cache, which
    /// knows its layout; the store knows none of its users).
    pub fn open_trees<T>(
        &self,
        open: impl FnOnce(&sled::Db) -> sled::Result<T>,
    ) -> Result<T, StoreError> {
        open(&self.db).map_err(|source| StoreError::Open {
            path: self.path.clone(),
            source,
        })
    }

    pub fn deployments_tree(&self) -> Result<sled::Tree, StoreError> {
        self.tree("deployments")
    }

    /// What the open had to do.
    pub fn report(&self) -> &OpenReport {
        &self.report
    }

    /// Write everything to disk (clean shutdown).
    pub fn flush(&self) {
        if let Err(e) = self.db.flush() {
            tracing::error!(path = %self.path.display(), error = %e, "flushing the database failed");
        }
    }
}

/// Move the damaged database at `path` aside (logged, reported) and open an empty one.
fn reopen_damaged(
    path: &Path,
    options: StoreOptions,
    error: &sled::Error,
    report: &mut OpenReport,
) -> Result<sled::Db, StoreError> {
    let aside = move_aside(path)?;
    tracing::error!(
        damaged = %aside.display(),
        error = %error,
        "the cache database is damaged: moved aside, starting with an empty cache \
         (deployments come from the prompts directory)"
    );
    report.damaged = Some(aside);
    open_at(path, options).map_err(|source| StoreError::Open {
        path: path.to_owned(),
        source,
    })
}

fn config(path: &Path, options: StoreOptions) -> sled::Config {
    sled::Config::new()
        .path(path)
        .cache_capacity(options.page_cache)
        .mode(sled::Mode::LowSpace)
        .flush_every_ms(Some(FLUSH_EVERY_MS))
}

/// sled's open; a panic on damaged bytes is a damaged database too.
fn open_at(path: &Path, options: StoreOptions) -> sled::Result<sled::Db> {
    let config = config(path, options);
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| config.open())) {
        Ok(opened) => opened,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".to_owned());
            Err(sled::Error::Unsupported(format!(
                "sled panicked opening it: {what}"
            )))
        }
    }
}

/// Whether another process holds sled's lock on `db/db` (an `flock`, as sled takes it).
fn is_locked(path: &Path) -> bool {
    use nix::fcntl::{Flock, FlockArg};
    let Ok(file) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path.join("db"))
    else {
        return false;
    };
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(locked) => {
            drop(locked);
            false
        }
        Err((_, errno)) => errno == nix::errno::Errno::EWOULDBLOCK,
    }
}

/// What sled says of bytes it cannot use: corruption, a format it does not support, a bug it
/// tripped over, or I/O errors that are about the data (short or invalid).
fn is_damage(e: &sled::Error) -> bool {
    match e {
        sled::Error::Corruption { .. }
        | sled::Error::Unsupported(_)
        | sled::Error::ReportableBug(_) => true,
        sled::Error::Io(io) => matches!(
            io.kind(),
            io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidInput
        ),
        sled::Error::CollectionNotFound(_) => false,
    }
}

/// ENOSPC or EDQUOT: the disk (or the user's quota) is full.
pub fn is_out_of_space(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(nix::libc::ENOSPC) | Some(nix::libc::EDQUOT)
    ) || e.kind() == io::ErrorKind::StorageFull
}

/// Free the reserve and try again; else a temporary database (empty, not on this disk):
/// the database, and whether it is the temporary one.
fn open_on_full_disk(
    path: &Path,
    reserve: &Path,
    options: StoreOptions,
) -> Result<(sled::Db, bool), StoreError> {
    if std::fs::remove_file(reserve).is_ok() {
        match open_at(path, options) {
            Ok(db) => {
                tracing::warn!(
                    reserve = %reserve.display(),
                    "no space left for the database: used its reserve; cache writes fail \
                     (counted) until there is room"
                );
                return Ok((db, false));
            }
            Err(e) => tracing::debug!(error = %e, "open with the reserve freed failed"),
        }
    }
    tracing::error!(
        path = %path.display(),
        "no space left to open the database: the cache runs empty in memory until the next \
         restart (free space, then restart)"
    );
    sled::Config::new()
        .temporary(true)
        .cache_capacity(options.page_cache)
        .open()
        .map(|db| (db, true))
        .map_err(|source| StoreError::Open {
            path: path.to_owned(),
            source,
        })
}

/// Rename `db` to `db.damaged-<UTC time>` (with a number if that exists).
fn move_aside(path: &Path) -> Result<PathBuf, StoreError> {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let name = |n: u32| {
        let suffix = if n == 0 {
            String::new()
        } else {
            format!("-{n}")
        };
        path.with_file_name(format!("db.damaged-{stamp}{suffix}"))
    };
    let aside = (0..100)
        .map(name)
        .find(|p| !p.exists())
        .unwrap_or_else(|| name(100));
    std::fs::rename(path, &aside).map_err(|source| StoreError::MoveAside {
        path: path.to_owned(),
        source,
    })?;
    Ok(aside)
}

/// Make the reserve file if it is missing; no room is no error (it is made at a later start).
fn make_reserve(reserve: &Path) {
    if reserve.exists() {
        return;
    }
    let write = || -> io::Result<()> {
        use std::io::Write;
        let mut file = std::fs::File::create(reserve)?;
        let chunk = vec![0u8; 64 * 1024];
        let mut left = RESERVE_BYTES;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            file.write_all(&chunk[..n])?;
            left -= n as u64;
        }
        file.sync_all()
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(reserve);
        tracing::debug!(error = %e, "no room for the database's reserve yet");
    }
}
