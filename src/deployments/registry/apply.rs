//! A reload whose scan read the prompts directory, in the order [`Registry::apply`] runs its
//! steps: parse what changed; keep the files of unreadable sub-folders as broken, not deleted;
//! refuse every file of a duplicated id; serve the good files (unchanged ones as they were,
//! others with a new version); keep the last good version of each broken file; drop what is
//! gone; persist the reload in one store batch; swap the new set in.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::report::{DeploymentStatus, ReloadReport, Status};
use super::snapshot::Snapshot;
use super::{Registry, ReloadState};
use crate::deployments::deployment::{ContentHash, Deployment, Source};
use crate::deployments::loader::{self, LoadError, Parsed, Problem};
use crate::deployments::scan;
use crate::deployments::store::StoreBatch;
use crate::deployments::validate::refuse_duplicate_ids;

/// A file's parse result: the validated content and its hash, shared between reloads.
pub(super) type ParseResult = Result<Arc<(Parsed, ContentHash)>, LoadError>;

/// A parsed file, kept to skip re-parsing unchanged bytes.
pub(super) struct CachedParse {
    bytes_hash: blake3::Hash,
    result: ParseResult,
}

/// What a reload builds before it swaps: the deployments that will serve, one status row per
/// file, the deployments that are new or changed, and the store writes.
struct Next {
    deployments: HashMap<String, Arc<Deployment>>,
    rows: Vec<DeploymentStatus>,
    changed: Vec<Arc<Deployment>>,
    batch: StoreBatch,
}

impl Registry {
    /// Swap in what the scan `found`; `previous` is the live set before this reload.
    pub(super) fn apply(
        &self,
        state: &mut ReloadState,
        previous: &Snapshot,
        found: scan::Scan,
    ) -> ReloadReport {
        self.note_dir_readable_again(state);

        // 1. Parse what changed; reuse what did not.
        let (mut results, seen) = self.parse_files(state, found.files);
        let last_good = self.last_good(state, previous);
        let last_good_of = by_source(&last_good);

        // 2. Files not seen because their folder cannot be read are broken, not deleted.
        let unseen = keep_unreadable_folders(
            state,
            &found.unreadable_folders,
            &last_good_of,
            &seen,
            &mut results,
        );
        let mut errors: Vec<LoadError> = found
            .unreadable_folders
            .iter()
            .map(|f| f.to_load_error())
            .collect();

        // 3. An id declared by more than one file: every one of them is refused.
        refuse_duplicate_ids(&mut results, |parsed| &parsed.0.content.id);

        // 4. Good files first, so a broken file's fallback never shadows a good file's id.
        let mut next = Next {
            deployments: HashMap::new(),
            rows: Vec::with_capacity(results.len()),
            changed: Vec::new(),
            batch: StoreBatch::default(),
        };
        self.serve_good_files(state, &results, &last_good_of, previous, &mut next);

        // 5. Broken files: keep their last good version serving where there is one.
        errors.extend(keep_last_good_of_broken_files(
            state,
            &results,
            &last_good_of,
            &unseen,
            &mut next,
        ));

        // 6. Drop what is gone, persist, then swap.
        let removed = removed_ids(state, &last_good, &next.deployments);
        self.persist(next.batch, &next.changed, &removed);
        self.swap_in(next.deployments, next.rows, &found.unreadable_folders);
        ReloadReport {
            changed: next.changed.iter().map(|d| d.id.clone()).collect(),
            removed,
            errors,
            ..ReloadReport::default()
        }
    }

    /// The directory could not be read at the last reload and can now: say so, once.
    fn note_dir_readable_again(&self, state: &mut ReloadState) {
        if state.logged_dir_error.take().is_some() {
            tracing::info!(
                "prompts directory {} readable again",
                self.prompts_dir.display()
            );
        }
    }

    /// What served before this reload: the live set, or at the first load the store's copies
    /// (nothing is live yet).
    fn last_good(&self, state: &ReloadState, previous: &Snapshot) -> Vec<Arc<Deployment>> {
        if state.loaded_once {
            previous.deployments.values().cloned().collect()
        } else {
            self.store.load_files().into_iter().map(Arc::new).collect()
        }
    }

    /// Every file that parsed serves, with a status row: what it served last if unchanged,
    /// else its content under a newly assigned version (added to `next.changed`).
    fn serve_good_files(
        &self,
        state: &mut ReloadState,
        results: &[(PathBuf, ParseResult)],
        last_good_of: &HashMap<&Path, &Arc<Deployment>>,
        previous: &Snapshot,
        next: &mut Next,
    ) {
        for (path, result) in results {
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
                        &mut next.batch,
                        &id,
                        *hash,
                        parsed.version,
                        previous.deployments.get(&id),
                    );
                    let d = Arc::new(parsed.content.clone().into_deployment(version, source));
                    next.changed.push(d.clone());
                    d
                }
            };
            if state.logged.remove(path).is_some() {
                tracing::info!("{}: loads again (id `{id}`)", path.display());
            }
            next.rows.push(DeploymentStatus {
                id: id.clone(),
                version: Some(deployment.version),
                source: path.clone(),
                status: Status::Ok,
                serving: true,
                last_error: None,
            });
            next.deployments.insert(id, deployment);
        }
    }

    /// One store batch for the reload: the new and changed deployments written, the removed
    /// ones deleted, with the version counters already in `batch`. A failure is logged; the
    /// deployments serve anyway.
    fn persist(&self, mut batch: StoreBatch, changed: &[Arc<Deployment>], removed: &[String]) {
        for d in changed {
            if let Err(e) = batch.put_file(d) {
                tracing::warn!("{e}; deployment `{}` serves but is not persisted", d.id);
            }
        }
        for id in removed {
            batch.remove_file(id);
        }
        if let Err(e) = self.store.apply(batch) {
            tracing::warn!("{e}; the deployments serve but this reload is not persisted");
        }
    }

    /// The new set goes live in one swap (readers see the old set or the new one), with the
    /// unreadable sub-folders' errors in its status.
    fn swap_in(
        &self,
        deployments: HashMap<String, Arc<Deployment>>,
        rows: Vec<DeploymentStatus>,
        unreadable_folders: &[scan::UnreadableFolder],
    ) {
        self.live.store(Arc::new(Snapshot::new(
            self.prompts_dir.clone(),
            None,
            unreadable_folders
                .iter()
                .map(|f| f.to_load_error().to_string())
                .collect(),
            deployments,
            rows,
        )));
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

/// Every file that failed to load gets a status row, and keeps serving its last good version
/// if it has one whose id no good file took. Logs each file's error once (per distinct error),
/// except for files in an unreadable folder, whose folder's own line says it. Returns the
/// files' errors, in order.
fn keep_last_good_of_broken_files(
    state: &mut ReloadState,
    results: &[(PathBuf, ParseResult)],
    last_good_of: &HashMap<&Path, &Arc<Deployment>>,
    unseen: &HashSet<PathBuf>,
    next: &mut Next,
) -> Vec<LoadError> {
    let mut errors = Vec::new();
    for (path, result) in results {
        let Err(error) = result else { continue };
        let last = last_good_of.get(path.as_path()).copied();
        let id = broken_file_id(path, error, last);
        let fallback = last
            .filter(|d| d.id == id && !next.deployments.contains_key(&id))
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
        next.rows.push(DeploymentStatus {
            id: id.clone(),
            version: fallback.as_ref().map(|d| d.version),
            source: path.clone(),
            status: Status::Error,
            serving: fallback.is_some(),
            last_error: Some(message),
        });
        if let Some(d) = fallback {
            next.deployments.insert(id, d);
        }
        errors.push(error.clone());
    }
    errors
}

/// The id a broken file's row is about: the id it shares with another file, else the id of
/// what it served last, else the one its file name gives.
fn broken_file_id(path: &Path, error: &LoadError, last: Option<&Arc<Deployment>>) -> String {
    match &error.problem {
        Problem::DuplicateId { id, .. } => id.clone(),
        _ => last
            .map(|d| d.id.clone())
            .unwrap_or_else(|| loader::default_id(path)),
    }
}

/// The ids that served before this reload and serve no more, sorted. What served before is
/// dropped from the store too; at the first load that is the stored copies of files deleted
/// meanwhile, said in one line.
fn removed_ids(
    state: &ReloadState,
    last_good: &[Arc<Deployment>],
    next: &HashMap<String, Arc<Deployment>>,
) -> Vec<String> {
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
    removed
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
