//! The live set of deployments: lock-free reads on the request path, whole-directory reloads
//! that swap in only what parsed and validated.
//!
//! Invariants:
//! - Readers ([`Registry::get`], [`Registry::status`]) never block: the live set is one
//!   immutable `Snapshot` behind an `ArcSwap`, replaced whole by a reload.
//! - Reloads are serialized by one mutex and always re-read the whole directory (the watcher,
//!   SIGHUP and `promptd validate` share [`Registry::reload_all`]); unchanged files are not
//!   re-parsed (their bytes hash the same).
//! - A file that fails to load never removes a working deployment: the last good version of
//!   that file keeps serving, and the error shows in the status (and one `warn!` line, once
//!   per distinct error).
//! - A file's last good version is found by the file's path, not by an id guessed from a
//!   broken file (which may declare any `id`): it is the deployment whose source is that file,
//!   in the live set, or at the first load (when nothing is live yet) among the store's copies.
//!   Every stored value carries its source path, so the store needs no second index.
//! - The directory is the truth while it can be read: a deleted file's deployment is gone, also
//!   from the store. At the first load the same holds against the store: copies of files
//!   deleted while the daemon was down are dropped.
//! - A sub-folder that cannot be read is not a deleted one: the deployments last loaded from
//!   it keep serving (each a broken file whose error names the folder; one `warn!` line for
//!   the folder), and the rest of the directory loads as usual.
//! - When the directory itself cannot be read (missing, not mounted, no permission), nothing
//!   is dropped: the last good set keeps serving; at start-up that set comes from the sled
//!   store (status `from_store`).
//!
//! Files: `report.rs` holds the public status and report types; `snapshot.rs` the immutable
//! live set and the ways one is built; `apply.rs` a reload that read the directory, in named
//! steps (with the parse cache and version assignment); `unreadable.rs` a reload that could not.

mod apply;
mod report;
mod snapshot;
mod unreadable;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime};

use arc_swap::ArcSwap;

pub use report::{DeploymentCounts, DeploymentStatus, RegistryStatus, ReloadReport, Status};

use super::deployment::Deployment;
use super::scan;
use super::store::Store;
use apply::CachedParse;
use snapshot::Snapshot;

/// State only reloads touch.
#[derive(Default)]
struct ReloadState {
    loaded_once: bool,
    files: HashMap<PathBuf, CachedParse>,
    /// The last error logged per file, to log each distinct error once.
    logged: HashMap<PathBuf, String>,
    /// The same for sub-folders that cannot be read.
    logged_folders: HashMap<PathBuf, String>,
    logged_dir_error: Option<String>,
}

/// The deployment registry. Share it as `Arc<Registry>`.
pub struct Registry {
    prompts_dir: PathBuf,
    providers: ArcSwap<Vec<String>>,
    live: ArcSwap<Snapshot>,
    reload: Mutex<ReloadState>,
    pub(super) store: Store,
    /// Upstream deployments in memory, mirroring the store's `upstream/` entries.
    pub(super) upstream: Mutex<HashMap<String, (Arc<Deployment>, SystemTime)>>,
    /// Ids upstream answered 404 for, until when: a request for an unknown id is one upstream
    /// call per [`super::upstream::UNKNOWN_TTL`], not one per request.
    pub(super) unknown_upstream: Mutex<HashMap<String, SystemTime>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("prompts_dir", &self.prompts_dir)
            .field("deployments", &self.live.load().deployments.len())
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// A registry for `prompts_dir`, validating providers against `providers` and persisting
    /// into `tree` (the `deployments` tree of the daemon's sled database). Loads the directory
    /// (or, if it cannot be read, the stored deployments) before returning; this does blocking
    /// file I/O, so async callers use `spawn_blocking`.
    pub fn open(prompts_dir: impl Into<PathBuf>, providers: Vec<String>, tree: sled::Tree) -> Self {
        let prompts_dir = prompts_dir.into();
        let registry = Registry {
            live: ArcSwap::from_pointee(Snapshot::empty(prompts_dir.clone())),
            prompts_dir,
            providers: ArcSwap::from_pointee(providers),
            reload: Mutex::new(ReloadState::default()),
            store: Store::new(tree),
            upstream: Mutex::new(HashMap::new()),
            unknown_upstream: Mutex::new(HashMap::new()),
        };
        registry.reload_all();
        registry
    }

    pub fn prompts_dir(&self) -> &Path {
        &self.prompts_dir
    }

    /// The live deployment `id` (from the prompts directory or, after a start without it, from
    /// the store). Lock-free.
    pub fn get(&self, id: &str) -> Option<Arc<Deployment>> {
        self.live.load().deployments.get(id).cloned()
    }

    /// Every prompt file's state.
    pub fn status(&self) -> RegistryStatus {
        self.live.load().status.clone()
    }

    /// How many deployments serve, failed or come from the store, without copying the status
    /// (`/status`, `/metrics` and systemd's STATUS ask often).
    pub fn counts(&self) -> DeploymentCounts {
        self.live.load().status.counts()
    }

    /// Replace the configured provider names (after SIGHUP re-read the config); takes effect
    /// at the next reload, which re-validates every file.
    pub fn set_providers(&self, providers: Vec<String>) {
        // Unchanged (most reloads): every parsed file is still valid, nothing to re-parse.
        if **self.providers.load() == providers {
            return;
        }
        self.providers.store(Arc::new(providers));
        self.lock_reload().files.clear();
    }

    fn lock_reload(&self) -> MutexGuard<'_, ReloadState> {
        // A panic inside a reload leaves the state consistent enough: the worst is a re-parse.
        self.reload.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Re-read the whole prompts directory and swap in what changed. Blocking file I/O: async
    /// callers use `spawn_blocking`. The watcher and SIGHUP both come here.
    pub fn reload_all(&self) -> ReloadReport {
        let started = Instant::now();
        let mut state = self.lock_reload();
        let previous = self.live.load_full();
        let first_load = !state.loaded_once;
        let mut report = match scan::scan(&self.prompts_dir) {
            Ok(found) => self.apply(&mut state, &previous, found),
            Err(e) => self.dir_unreadable(&mut state, &previous, e),
        };
        state.loaded_once = true;
        report.serving = self.live.load().deployments.len();
        report.elapsed = started.elapsed();
        if first_load || !report.changed.is_empty() || !report.removed.is_empty() {
            tracing::info!(
                "deployments reloaded from {} in {:?}: {} serving, {} changed, {} removed, {} \
                 broken",
                self.prompts_dir.display(),
                report.elapsed,
                report.serving,
                report.changed.len(),
                report.removed.len(),
                report.errors.len()
            );
        }
        report
    }
}
