//! The running daemon: the one owner of its parts and of their life.
//!
//! ```text
//! start    state dir -> store -> cache -> spool -> flusher -> registry + watcher
//!          -> engine -> listeners served                                      (parts.rs)
//! reload   SIGHUP (or a config on `reloads`) -> one path: config checked, then each part
//!          takes its share; the running config stays when the new one is refused (reload.rs)
//! stop     one signal, in reverse: listeners closed and connections drained (within
//!          shutdown_grace) -> the pipeline's tasks -> watcher, maintenance, flusher ->
//!          the spool's last commit (every record is written when answered) -> cache hit counts and the
//!          database flushed -> every task has let go (drop guards, no polling)
//! ```
//!
//! Every long-lived task is spawned through a [`Tasks`] group, so stopping is a signal and a
//! wait, and nothing holds the database or the spool lock once [`run`] returns (a restart in
//! the same process, as the tests do, can open them again). [`serve`] is the process around
//! it: listeners from systemd or bound here, SIGTERM/SIGINT, SIGHUP.

mod background;
mod parts;
mod reload;
mod signals;

use std::future::Future;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use tokio::sync::mpsc;

pub use parts::prepare_state_dir;
pub use signals::{reload_on_sighup, shutdown_signal, ConfigSource};

use crate::config::Config;
use crate::server::systemd::{self, ActivatedSockets};
use crate::server::{Listeners, PeerPolicy, PeerRate, StartupError, State};
use crate::tasks::Tasks;
use crate::telemetry::metrics::Metrics;
use parts::Parts;

/// Serve `config` as the process's daemon: on the sockets systemd passed (`activated`), else
/// on the listeners the config names; reload on SIGHUP (reading `reload_from` again); stop on
/// SIGTERM or SIGINT.
pub async fn serve(
    config: Config,
    activated: Option<ActivatedSockets>,
    reload_from: ConfigSource,
) -> Result<(), StartupError> {
    // Everything the daemon creates (the cache, projects, the spool) is its user's alone,
    // whatever umask it was started with (the unit sets UMask=0077 too).
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    prepare_state_dir(&config.state_dir)?;
    raise_fd_limit();
    let listeners = match activated {
        Some(sockets) => {
            let listeners = Listeners::from_activated(sockets)?;
            listeners.warn_unused_config(&config);
            listeners
        }
        None => Listeners::bind(&config).await?,
    };
    // Before anything is served: a SIGTERM from now on is a clean stop.
    let shutdown = shutdown_signal();
    let (reload_tx, reloads) = mpsc::channel(1);
    let sighup = tokio::spawn(reload_on_sighup(reload_from, reload_tx));
    let served = run(config, listeners, shutdown, reloads).await;
    sighup.abort();
    served
}

/// Raise the soft file descriptor limit to the hard one, as daemons do (the soft default of
/// 1024 would cap connections far below what the hard limit allows); connections are then
/// bounded by `max_connections`.
fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                tracing::debug!(error = %e, soft, hard, "cannot raise the file descriptor limit");
            }
        }
    }
}

/// Serve on `listeners` until `shutdown` resolves, then stop in reverse order and return;
/// meanwhile apply every config received on `reloads` (see [`reload`]).
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
    mut reloads: mpsc::Receiver<Config>,
) -> Result<(), StartupError> {
    let mut metrics = Metrics::new();
    // The pipeline's tasks: shared provider calls, streams being read.
    let pipeline = Tasks::new();
    let parts = match Parts::build(&config, &metrics, &pipeline) {
        Ok(parts) => parts,
        Err(e) => {
            // Leave no socket file behind for a daemon that never served.
            if let Some(path) = &listeners.unix_path {
                let _ = std::fs::remove_file(path);
            }
            return Err(e);
        }
    };
    let Parts {
        store,
        cache,
        spool,
        deployments,
        projects,
        responses,
        flusher,
        engine,
    } = parts;
    let flusher_handle = Arc::new(ArcSwap::from_pointee(flusher.handle()));
    metrics.register_source(Arc::new(background::PartsStats {
        engine: Arc::clone(&engine),
        cache: Arc::clone(&cache),
        deployments: Arc::clone(&deployments),
        spool: spool.clone(),
        flusher: Arc::clone(&flusher_handle),
        responses: Arc::clone(&responses),
    }));
    let where_ = listeners.describe();
    let state = Arc::new(State {
        engine,
        cache,
        spool,
        deployments,
        projects,
        responses,
        peers: ArcSwap::from_pointee(PeerPolicy::new(
            &config.allowed_uids,
            &config.access.admin_uids,
        )),
        rate: arc_swap::ArcSwapOption::from(
            PeerRate::new(config.rate_limit, config.rate_limit_burst).map(Arc::new),
        ),
        config: ArcSwap::from_pointee(config),
        started: Instant::now(),
        started_at: crate::timestamp::now_iso(),
        requests: AtomicU64::new(0),
        metrics,
        listeners: where_.clone(),
        flusher: flusher_handle,
    });

    let background = Tasks::new();
    let mut shipping = background.child();
    shipping.spawn_graceful(|stop| flusher.run(stop));
    background::start(&state, &background);
    let server = Tasks::new();
    server.spawn_graceful(|stop| crate::server::serve(listeners, Arc::clone(&state), stop));
    tracing::info!(listeners = %where_, "promptd serving");
    systemd::ready(&format!("serving on {where_}"));

    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            Some(new) = reloads.recv() => {
                reload::apply(&state, new, &background, &mut shipping).await;
            }
            () = &mut shutdown => break,
        }
    }

    systemd::stopping();
    server.stop().await;
    pipeline.stop().await;
    background.stop().await;
    shipping.wait().await;
    state.spool.close().await;
    let cache = Arc::clone(&state.cache);
    let _ = tokio::task::spawn_blocking(move || {
        cache.maintain();
        store.flush();
    })
    .await;
    drop(state);
    Ok(())
}
