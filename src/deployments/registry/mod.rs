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

mod report;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime};

use arc_swap::ArcSwap;

pub use report::{DeploymentCounts, DeploymentStatus, RegistryStatus, ReloadReport, Status};

use super::deployment::{ContentHash, Deployment, Source};
use super::loader::{self, LoadError, Parsed, Problem};
use super::scan;
use super::store::{Store, StoreBatch};
use super::validate::refuse_duplicate_ids;

/// An immutable view of the live set.
struct Snapshot {
    deployments: HashMap<String, Arc<Deployment>>,
    status: RegistryStatus,
}

/// A file's parse result: the validated content and its hash, shared between reloads.
type ParseResult = Result<Arc<(Parsed, ContentHash)>, LoadError>;

/// A parsed file, kept to skip re-parsing unchanged bytes.
struct CachedParse {
    bytes_hash: blake3::Hash,
    result: ParseResult,
}

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
            live: ArcSwap::from_pointee(Snapshot {
                deployments: HashMap::new(),
                status: RegistryStatus {
                    prompts_dir: prompts_dir.clone(),
                    dir_error: None,
                    folder_errors: Vec::new(),
                    deployments: Vec::new(),
                },
            }),
            prompts_dir,
            providers: ArcSwap::from_pointee(providers),
            reload: Mutex::new(ReloadState::default()),
            store: Store::new(tree),
            upstream: Mutex::new(HashMap::new()),
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

    fn dir_unreadable(
        &self,
        state: &mut ReloadState,
        previous: &Snapshot,
        error: std::io::Error,
    ) -> ReloadReport {
        let message = format!(
            "cannot read the prompts directory {}: {error}",
            self.prompts_dir.display()
        );
        let mut report = ReloadReport {
            dir_error: Some(message.clone()),
            ..ReloadReport::default()
        };
        if state.loaded_once {
            // Keep serving what we have; the directory may be being replaced.
            if state.logged_dir_error.as_deref() != Some(&message) {
                tracing::warn!("{message}; the loaded deployments keep serving");
            }
            let mut status = previous.status.clone();
            status.dir_error = Some(message.clone());
            self.live.store(Arc::new(Snapshot {
                deployments: previous.deployments.clone(),
                status,
            }));
        } else {
            let stored = self.store.load_files();
            tracing::warn!(
                "{message}; serving {} deployments from the store",
                stored.len()
            );
            let mut deployments = HashMap::new();
            let mut rows = Vec::new();
            for d in stored {
                rows.push(DeploymentStatus {
                    id: d.id.clone(),
                    version: Some(d.version),
                    source: source_path(&d),
                    status: Status::FromStore,
                    serving: true,
                    last_error: None,
                });
                report.changed.push(d.id.clone());
                deployments.insert(d.id.clone(), Arc::new(d));
            }
            rows.sort_by(|a, b| (&a.id, &a.source).cmp(&(&b.id, &b.source)));
            self.live.store(Arc::new(Snapshot {
                deployments,
                status: RegistryStatus {
                    prompts_dir: self.prompts_dir.clone(),
                    dir_error: Some(message.clone()),
                    folder_errors: Vec::new(),
                    deployments: rows,
                },
            }));
        }
        state.logged_dir_error = Some(message);
        report
    }

    fn apply(
        &self,
        state: &mut ReloadState,
        previous: &Snapshot,
        found: scan::Scan,
    ) -> ReloadReport {
        let mut report = ReloadReport::default();
        if state.logged_dir_error.take().is_some() {
            tracing::info!(
                "prompts directory {} readable again",
                self.prompts_dir.display()
            );
        }

        // 1. Parse what changed; reuse what did not.
        let (mut results, seen) = self.parse_files(state, found.files);

        // What served before this reload, by source file: the live set, or at the first load
        // the store's copies (nothing is live yet).
        let last_good: Vec<Arc<Deployment>> = if state.loaded_once {
            previous.deployments.values().cloned().collect()
        } else {
            self.store.load_files().into_iter().map(Arc::new).collect()
        };
        let last_good_of = by_source(&last_good);

        // 2. Files not seen because their folder cannot be read are broken, not deleted.
        let unseen = keep_unreadable_folders(
            state,
            &found.unreadable_folders,
            &last_good_of,
            &seen,
            &mut results,
        );
        report
            .errors
            .extend(found.unreadable_folders.iter().map(|f| f.to_load_error()));

        // 3. An id declared by more than one file: every one of them is refused.
        refuse_duplicate_ids(&mut results, |parsed| &parsed.0.content.id);

        // 4. Good files first, so a broken file's fallback never shadows a good file's id.
        let mut next: HashMap<String, Arc<Deployment>> = HashMap::new();
        let mut rows = Vec::with_capacity(results.len());
        let mut changed: Vec<Arc<Deployment>> = Vec::new();
        let mut batch = StoreBatch::default();
        for (path, result) in &results {
            let Ok(parsed) = result else { continue };
            let (parsed, hash) = &**parsed;
            let id = parsed.content.id.clone();
            let source = Source::File(path.clone());
            // What this file served last (live, or at the first load its stored copy): kept as
            // it is when unchanged, so a restart does not rewrite the store file by file.
            let kept = last_good_of.get(path.as_path()).copied().filter(|d| {
                d.id == id
                    && d.content_hash == *hash
                    && parsed.version.is_none_or(|v| v == d.version)
            });
            let deployment = match kept {
                Some(d) => d.clone(),
                None => {
                    let version = self.assign_version(
                        &mut batch,
                        &id,
                        *hash,
                        parsed.version,
                        previous.deployments.get(&id),
                    );
                    let d = Arc::new(parsed.content.clone().into_deployment(version, source));
                    changed.push(d.clone());
                    d
                }
            };
            if state.logged.remove(path).is_some() {
                tracing::info!("{}: loads again (id `{id}`)", path.display());
            }
            rows.push(DeploymentStatus {
                id: id.clone(),
                version: Some(deployment.version),
                source: path.clone(),
                status: Status::Ok,
                serving: true,
                last_error: None,
            });
            next.insert(id, deployment);
        }

        // 5. Broken files: keep their last good version serving where there is one.
        for (path, result) in &results {
            let Err(error) = result else { continue };
            let last = last_good_of.get(path.as_path()).copied();
            let id = match &error.problem {
                Problem::DuplicateId { id, .. } => id.clone(),
                _ => last
                    .map(|d| d.id.clone())
                    .unwrap_or_else(|| loader::default_id(path)),
            };
            let fallback = last
                .filter(|d| d.id == id && !next.contains_key(&id))
                .cloned();
            let message = error.to_string();
            // Files in an unreadable folder: the folder's own line says it.
            if !unseen.contains(path) && state.logged.get(path) != Some(&message) {
                match &fallback {
                    Some(d) => tracing::warn!(
                        "{message} (deployment `{id}` keeps serving version {})",
                        d.version
                    ),
                    None => tracing::warn!("{message} (deployment `{id}` is not served)"),
                }
                state.logged.insert(path.clone(), message.clone());
            }
            rows.push(DeploymentStatus {
                id: id.clone(),
                version: fallback.as_ref().map(|d| d.version),
                source: path.clone(),
                status: Status::Error,
                serving: fallback.is_some(),
                last_error: Some(message),
            });
            if let Some(d) = fallback {
                next.insert(id, d);
            }
            report.errors.push(error.clone());
        }

        // 6. Persist, then swap. What served before and serves no more is dropped from the
        // store; at the first load that is the stored copies of files deleted meanwhile.
        let mut removed: Vec<String> = last_good
            .iter()
            .map(|d| d.id.clone())
            .filter(|id| !next.contains_key(id))
            .collect();
        removed.sort();
        removed.dedup();
        if !state.loaded_once && !removed.is_empty() {
            tracing::info!(
                "stored deployments dropped, their files being gone (or declaring another \
                 id now): {}",
                removed.join(", ")
            );
        }
        for d in &changed {
            if let Err(e) = batch.put_file(d) {
                tracing::warn!("{e}; deployment `{}` serves but is not persisted", d.id);
            }
        }
        for id in &removed {
            batch.remove_file(id);
        }
        if let Err(e) = self.store.apply(batch) {
            tracing::warn!("{e}; the deployments serve but this reload is not persisted");
        }
        rows.sort_by(|a, b| (&a.id, &a.source).cmp(&(&b.id, &b.source)));
        self.live.store(Arc::new(Snapshot {
            deployments: next,
            status: RegistryStatus {
                prompts_dir: self.prompts_dir.clone(),
                dir_error: None,
                folder_errors: found
                    .unreadable_folders
                    .iter()
                    .map(|f| f.to_load_error().to_string())
                    .collect(),
                deployments: rows,
            },
        }));
        report.changed = changed.iter().map(|d| d.id.clone()).collect();
        report.removed = removed;
        report
    }

    /// Parse every scanned file whose bytes changed since the last reload, reuse the result of
    /// the others, and forget files that are gone. Returns the results and the paths seen.
    fn parse_files(
        &self,
        state: &mut ReloadState,
        files: Vec<scan::ScannedFile>,
    ) -> (Vec<(PathBuf, ParseResult)>, HashSet<PathBuf>) {
        let providers = self.providers.load_full();
        let mut results: Vec<(PathBuf, ParseResult)> = Vec::with_capacity(files.len());
        let mut seen = HashSet::new();
        for file in files {
            seen.insert(file.path.clone());
            let result = match file.bytes {
                Err(e) => {
                    state.files.remove(&file.path);
                    Err(e)
                }
                Ok(bytes) => {
                    let bytes_hash = blake3::hash(&bytes);
                    match state.files.get(&file.path) {
                        Some(cached) if cached.bytes_hash == bytes_hash => cached.result.clone(),
                        _ => {
                            let result = loader::parse(&file.path, &bytes, &providers).map(|p| {
                                let hash = p.content.content_hash();
                                Arc::new((p, hash))
                            });
                            state.files.insert(
                                file.path.clone(),
                                CachedParse {
                                    bytes_hash,
                                    result: result.clone(),
                                },
                            );
                            result
                        }
                    }
                }
            };
            results.push((file.path, result));
        }
        state.files.retain(|path, _| seen.contains(path));
        state.logged.retain(|path, _| seen.contains(path));
        (results, seen)
    }

    /// The version of `id` with content `hash`: the file's own `version` if it sets one, else
    /// the stored counter (same content, same version; new content, previous + 1; new id, 1).
    fn assign_version(
        &self,
        batch: &mut StoreBatch,
        id: &str,
        hash: ContentHash,
        explicit: Option<u64>,
        live: Option<&Arc<Deployment>>,
    ) -> u64 {
        let previous = match self.store.counter(id) {
            Ok(counter) => counter,
            Err(e) => {
                tracing::warn!("{e}; version of `{id}` counted from memory");
                None
            }
        }
        .or_else(|| live.map(|d| (d.content_hash, d.version)));
        let version = explicit.unwrap_or(match previous {
            Some((h, v)) if h == hash => v,
            Some((_, v)) => v.saturating_add(1),
            None => 1,
        });
        if previous != Some((hash, version)) {
            if let Err(e) = batch.set_counter(id, hash, version) {
                tracing::warn!("{e}; version counter of `{id}` not persisted");
            }
        }
        version
    }
}

fn source_path(d: &Deployment) -> PathBuf {
    match &d.source {
        Source::File(path) => path.clone(),
        Source::Upstream { base_url, .. } => PathBuf::from(base_url),
    }
}

/// The deployments of `deployments` that came from a file, by that file.
fn by_source(deployments: &[Arc<Deployment>]) -> HashMap<&Path, &Arc<Deployment>> {
    let mut of_file = HashMap::new();
    for d in deployments {
        if let Source::File(path) = &d.source {
            // Two copies from one file are only in a store written before start-up dropped
            // stale copies (the file's id changed while the daemon was down): keep the same
            // one every time.
            of_file
                .entry(path.as_path())
                .and_modify(|kept: &mut &Arc<Deployment>| {
                    if d.id < kept.id {
                        *kept = d;
                    }
                })
                .or_insert(d);
        }
    }
    of_file
}

/// Files in an unreadable folder are missing from the scan although they may still exist:
/// each that served before this reload gets a result of its own, an error naming the folder,
/// so that it keeps its last good version like any broken file. Logs each folder once (per
/// distinct error) and each folder that can be read again. Returns the files added.
fn keep_unreadable_folders(
    state: &mut ReloadState,
    folders: &[scan::UnreadableFolder],
    last_good_of: &HashMap<&Path, &Arc<Deployment>>,
    seen: &HashSet<PathBuf>,
    results: &mut Vec<(PathBuf, ParseResult)>,
) -> HashSet<PathBuf> {
    let mut unseen = HashSet::new();
    let mut logged = HashMap::new();
    for folder in folders {
        let mut files: Vec<&Path> = last_good_of
            .keys()
            .copied()
            .filter(|path| folder.contains(path) && !seen.contains(*path))
            .collect();
        files.sort();
        let message = folder.to_load_error().to_string();
        if state.logged_folders.get(&folder.path) != Some(&message) {
            tracing::warn!(
                "{message}; the {} deployment(s) last loaded from it are kept until it can be \
                 read again",
                files.len()
            );
        }
        logged.insert(folder.path.clone(), message);
        for path in files {
            // Once per file, also when it lies in two unreadable folders (one nested in the
            // other): one status row, one error.
            if unseen.insert(path.to_owned()) {
                results.push((path.to_owned(), Err(folder.error_of(path))));
            }
        }
    }
    for folder in state.logged_folders.keys() {
        if !logged.contains_key(folder) {
            tracing::info!("{}: the folder can be read again", folder.display());
        }
    }
    state.logged_folders = logged;
    unseen
}
