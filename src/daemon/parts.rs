//! The daemon's parts, built once in order: each takes what the ones before it made.

use std::os::unix::fs::DirBuilderExt;
use std::sync::Arc;

use crate::cache::Cache;
use crate::config::Config;
use crate::deployments::Registry;
use crate::engine::{CompletionRecords, Engine, EngineParts};
use crate::logs::{Flusher, Spool, SpoolOptions};
use crate::projects::ProjectStore;
use crate::response_store::Kept;
use crate::server::StartupError;
use crate::store::{Store, StoreOptions};
use crate::tasks::Tasks;
use crate::telemetry::metrics::Metrics;

/// Everything the daemon owns while it runs.
pub(super) struct Parts {
    pub store: Store,
    pub cache: Arc<Cache>,
    pub spool: Spool,
    pub deployments: Arc<Registry>,
    pub projects: ProjectStore,
    /// The Responses door's kept answers, in the store's database.
    pub responses: Arc<Kept>,
    /// Not yet shipping: the daemon starts it in its task group.
    pub flusher: Flusher,
    pub engine: Arc<Engine>,
}

impl Parts {
    /// Build the parts in order: the state directory, the store and the cache in it, the kept
    /// responses (`state_dir/responses`), the spool (where the engine writes completion records),
    /// the flusher, the deployments (first load of the prompts directory), the projects, the
    /// engine (its tasks in `pipeline`). Must run inside a Tokio runtime.
    pub fn build(
        config: &Config,
        metrics: &Metrics,
        pipeline: &Tasks,
    ) -> Result<Parts, StartupError> {
        prepare_state_dir(&config.state_dir)?;
        let store = Store::open(
            &config.state_dir,
            StoreOptions {
                page_cache: config.cache.page_cache,
            },
        )?;
        let cache = Arc::new(Cache::open(store.cache_trees()?, config.cache.clone()));
        cache.note_open(store.report());
        let kept = store.response_store(&config.state_dir.join("responses"));
        let responses = Arc::new(Kept::new(kept).map_err(StartupError::ResponsesWriter)?);
        let spool = Spool::open(SpoolOptions::from_config(
            &config.spool,
            config.state_dir.join("spool"),
        ))?;
        let logs = CompletionRecords::new(spool.clone(), config.spool.max_record_bytes);
        let flusher = Flusher::new(spool.clone(), config.upstream.clone())
            .map_err(|e| StartupError::Flusher(e.to_string()))?;
        let deployments = Arc::new(Registry::open(
            &config.prompts_dir,
            config.provider_names(),
            store.deployments_tree()?,
        ));
        let projects = ProjectStore::open(&config.state_dir);
        let engine = Arc::new(Engine::new(
            config,
            metrics,
            EngineParts {
                cache: Arc::clone(&cache),
                deployments: Arc::clone(&deployments),
                logs,
                tasks: pipeline.clone(),
            },
        )?);
        Ok(Parts {
            store,
            cache,
            spool,
            deployments,
            projects,
            responses,
            flusher,
            engine,
        })
    }
}

/// Create `state_dir` if needed, private to the daemon's user ([`make_private`]), and check that
/// promptd can write there (also run before binding, so a bad state directory leaves no socket
/// file behind).
///
/// A full disk (or quota) is not a reason to refuse: the directory is writable, the daemon
/// serves from its cache and the provider, and counts the records it cannot write until
/// there is room again, as it does when the disk fills while it runs. It is logged.
pub fn prepare_state_dir(path: &std::path::Path) -> Result<(), StartupError> {
    let err = |source| StartupError::StateDir {
        path: path.to_owned(),
        source,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(err)?;
    if let Err(e) = make_private(path) {
        // Not a reason to stop serving: said, so the operator can fix the modes.
        tracing::warn!(state_dir = %path.display(), error = %e, "cannot make the state directory private (mode 0700, files 0600)");
    }
    let probe = path.join(".promptd-write-check");
    let written = std::fs::write(&probe, b"ok");
    // The probe may exist (empty) even if writing to it failed.
    let removed = std::fs::remove_file(&probe);
    match written {
        Ok(()) => removed.map_err(err),
        Err(e) if crate::store::is_out_of_space(&e) => {
            // prepare_state_dir runs twice at a start (before binding, and in build).
            static WARNED: std::sync::atomic::AtomicBool =
                std::sync::atomic::AtomicBool::new(false);
            if !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
                tracing::warn!(
                    state_dir = %path.display(),
                    error = %e,
                    "state_dir has no space left: starting anyway; cache writes and log records \
                     fail (counted) until there is room"
                );
            }
            Ok(())
        }
        Err(e) => Err(err(e)),
    }
}

/// The state directory holds cached prompts and answers: mode 0700 whatever the umask or an
/// older promptd left, and the files promptd keeps directly in it and in `db/` (sled's) 0600.
/// (New files are 0600 by the daemon's umask, see `daemon::serve`.)
fn make_private(state_dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let restrict = |path: &std::path::Path, mode: u32| -> std::io::Result<()> {
        let meta = std::fs::symlink_metadata(path)?;
        let current = meta.permissions().mode() & 0o7777;
        if !meta.file_type().is_symlink() && current & 0o077 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(current & mode))?;
        }
        Ok(())
    };
    restrict(state_dir, 0o700)?;
    for dir in [state_dir.to_owned(), state_dir.join("db")] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            restrict(&path, if is_dir { 0o700 } else { 0o600 })?;
        }
    }
    Ok(())
}
