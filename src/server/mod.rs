//! The server: accept loops on the Unix socket (with a peer-credential check) and the optional
//! loopback TCP listener, HTTP/1.1 with keep-alive per connection, and graceful shutdown.
//!
//! Shutdown: when the `shutdown` future resolves, the listeners are closed (no new
//! connections), every open connection is told to finish its in-flight request (streams too)
//! and then close, and `run` returns once all are done or `shutdown_grace` has passed.

mod body;
mod handlers;
mod listener;
mod peer;
mod router;
pub mod systemd;

use std::convert::Infallible;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

pub use listener::{bind_unix, Listeners};
pub use peer::PeerPolicy;
pub use router::PAREA_PREFIX;

use crate::api::ApiError;
use crate::config::{Config, UpstreamConfig};
use crate::engine::{Engine, EngineError, EngineStats};
use crate::logs::{Flusher, FlusherHandle, FlusherTask};
use crate::telemetry::metrics::Metrics;

/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Why the daemon could not start. Each names the path or address involved.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("another promptd is listening on {0}; stop it or choose another `socket`")]
    AlreadyRunning(PathBuf),
    #[error("{0} exists and is not a socket; remove it or choose another `socket`")]
    NotASocket(PathBuf),
    #[error("cannot bind {what}: {source}")]
    Bind {
        what: String,
        source: std::io::Error,
    },
    #[error("state_dir {path} is not usable (it must be a writable directory): {source}")]
    StateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("cannot start the log flusher: {0}")]
    Flusher(String),
}

/// What every request handler can reach.
#[derive(Debug)]
pub struct State {
    pub engine: Arc<Engine>,
    /// The running config; replaced whole by a reload.
    pub config: ArcSwap<Config>,
    pub started: Instant,
    pub started_at: String,
    /// Requests received (for the systemd status line).
    pub requests: AtomicU64,
    pub metrics: Metrics,
    /// Where the daemon listens, for `/status`.
    pub listeners: String,
    /// The log flusher's stats and its flush trigger (replaced when `[upstream]` is reloaded).
    pub flusher: Arc<ArcSwap<FlusherHandle>>,
}

/// Whether two `[upstream]` configs ship the same way (same place, key and limits).
fn same_upstream(a: &UpstreamConfig, b: &UpstreamConfig) -> bool {
    a.base_url == b.base_url
        && a.api_key == b.api_key
        && a.batch_size == b.batch_size
        && a.max_in_flight == b.max_in_flight
        && a.timeout == b.timeout
}

/// Apply a reloaded config (whether it was applied); the old one keeps serving if the new
/// one cannot be applied.
fn apply_reload(state: &State, new: Config) -> bool {
    let old = state.config.load_full();
    if let Err(e) = state.engine.reconfigure(&new, &state.metrics) {
        tracing::error!(error = %e, "config reload failed; keeping the running config");
        systemd::ready("reload failed; running with the previous config");
        return false;
    }
    let restart_needed: Vec<&str> = [
        ("socket", old.socket != new.socket),
        ("socket_mode", old.socket_mode != new.socket_mode),
        ("tcp", old.tcp != new.tcp),
        ("state_dir", old.state_dir != new.state_dir),
        ("prompts_dir", old.prompts_dir != new.prompts_dir),
        (
            "spool.flush_interval",
            old.spool.flush_interval != new.spool.flush_interval,
        ),
        (
            "spool.segment_bytes",
            old.spool.segment_bytes != new.spool.segment_bytes,
        ),
        (
            "spool.max_batch",
            old.spool.max_batch != new.spool.max_batch,
        ),
        ("header_timeout", old.header_timeout != new.header_timeout),
    ]
    .into_iter()
    .filter_map(|(key, changed)| changed.then_some(key))
    .collect();
    if !restart_needed.is_empty() {
        tracing::warn!(keys = %restart_needed.join(", "), "changed keys take effect after a restart");
    }
    crate::telemetry::set_level(&new.log_level);
    state.config.store(Arc::new(new));
    // Re-reading the prompts directory is file I/O: off the accept loop. READY=1 follows it.
    let registry = Arc::clone(state.engine.deployments());
    tokio::task::spawn_blocking(move || {
        let report = registry.reload_all();
        tracing::info!(?report, "config and prompts reloaded");
        systemd::ready("config and prompts reloaded");
    });
    true
}

/// How often the `STATUS=` line is refreshed.
const STATUS_EVERY: Duration = Duration::from_secs(10);

/// Watchdog pings (from the serving runtime, so a stuck runtime misses them) and a periodic
/// one-line status for `systemctl status`.
async fn report_to_systemd(state: Arc<State>) {
    let watchdog = systemd::watchdog_interval();
    let mut ping = tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3600)));
    let mut status = tokio::time::interval(STATUS_EVERY);
    loop {
        tokio::select! {
            _ = ping.tick(), if watchdog.is_some() => systemd::watchdog(),
            _ = status.tick() => {
                let cache = state.engine.cache().stats();
                let spool = state.engine.spool().stats();
                systemd::status(&format!(
                    "{} requests, cache {} hits / {} misses, {} entries, spool backlog {} records",
                    state.requests.load(Ordering::Relaxed),
                    cache.hits,
                    cache.misses,
                    cache.entries,
                    spool.waiting_records
                ));
            }
        }
    }
}

/// Whether the peer of a connection may use the daemon.
#[derive(Debug, Clone)]
enum Access {
    Allowed,
    Denied(String),
}

/// Serve on `listeners` until `shutdown` resolves, then drain and return; meanwhile apply
/// every config received on `reloads` (SIGHUP): providers, keys,
/// prices, cache settings, allowed uids, body limit, log level. Listener addresses, the state
/// directory and timeouts of the HTTP server need a restart; a change to them is logged.
pub async fn run_with_reload(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
    mut reloads: mpsc::Receiver<Config>,
) -> Result<(), StartupError> {
    let mut metrics = Metrics::new();
    let started = prepare_state_dir(&config.state_dir)
        .and_then(|()| Ok(Arc::new(Engine::new(&config, &metrics)?)))
        .and_then(|engine| {
            Flusher::new(engine.spool().clone(), config.upstream.clone())
                .map(|flusher| (engine, flusher))
                .map_err(|e| StartupError::Flusher(e.to_string()))
        });
    let (engine, flusher) = match started {
        Ok(started) => started,
        Err(e) => {
            // Leave no socket file behind for a daemon that never served.
            if let Some(path) = &listeners.unix_path {
                let _ = std::fs::remove_file(path);
            }
            return Err(e);
        }
    };
    let flusher_handle = Arc::new(ArcSwap::from_pointee(flusher.handle()));
    metrics.register_source(Arc::new(EngineStats {
        engine: Arc::downgrade(&engine),
        flusher: Arc::clone(&flusher_handle),
    }));
    let state = Arc::new(State {
        engine,
        config: ArcSwap::from_pointee(config),
        started: Instant::now(),
        started_at: crate::timestamp::now_iso(),
        requests: AtomicU64::new(0),
        metrics,
        listeners: listeners.describe(),
        flusher: flusher_handle,
    });
    let config = state.config.load_full();
    let mut policy = PeerPolicy::new(&config.allowed_uids);
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout)
        .keep_alive(true);
    let graceful = GracefulShutdown::new();
    let where_ = listeners.describe();
    let Listeners {
        unix,
        unix_path,
        tcp,
    } = listeners;
    let mut flusher = FlusherTask::start(flusher);
    let (stop_maintenance, maintenance_stopped) = tokio::sync::oneshot::channel::<()>();
    let maintenance = tokio::spawn(Arc::clone(&state.engine).maintain(async move {
        let _ = maintenance_stopped.await;
    }));
    let watcher = match crate::deployments::spawn_watcher(Arc::clone(state.engine.deployments())) {
        Ok(watcher) => Some(watcher),
        Err(e) => {
            tracing::warn!(error = %e, prompts_dir = %config.prompts_dir.display(), "not watching the prompts directory; SIGHUP reloads it");
            None
        }
    };
    tracing::info!(listeners = %where_, "promptd serving");
    let background = tokio::spawn(report_to_systemd(Arc::clone(&state)));
    systemd::ready(&format!("serving on {where_}"));

    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = unix.accept() => match accepted {
                Ok((stream, _)) => {
                    let access = match peer::peer_uid(&stream) {
                        Some(uid) if policy.allows(uid) => Access::Allowed,
                        Some(uid) => Access::Denied(format!("uid {uid} is not allowed on this socket (see allowed_uids)")),
                        None => Access::Denied("cannot read the peer's credentials".to_owned()),
                    };
                    if let Access::Denied(why) = &access {
                        tracing::warn!(reason = %why, "refusing a peer on the unix socket");
                    }
                    serve_connection(stream, access, &state, &http, &graceful);
                }
                Err(e) => accept_failed(e).await,
            },
            accepted = accept_tcp(tcp.as_ref()) => match accepted {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    serve_connection(stream, Access::Allowed, &state, &http, &graceful);
                }
                Err(e) => accept_failed(e).await,
            },
            Some(new) = reloads.recv() => {
                // Nothing of a refused config takes effect, the peer allow-list included.
                let new_policy = PeerPolicy::new(&new.allowed_uids);
                let upstream = new.upstream.clone();
                let changed = !same_upstream(&state.config.load().upstream, &upstream);
                let applied = apply_reload(&state, new);
                if applied {
                    policy = new_policy;
                }
                if applied && changed {
                    match Flusher::new(state.engine.spool().clone(), upstream) {
                        Ok(next) => {
                            let _ = flusher.stop().await;
                            state.flusher.store(Arc::new(next.handle()));
                            flusher = FlusherTask::start(next);
                            tracing::info!("log shipping restarted with the new [upstream]");
                        }
                        Err(e) => tracing::error!(error = %e, "cannot restart log shipping; the previous [upstream] keeps shipping"),
                    }
                }
            }
            () = &mut shutdown => break,
        }
    }
    let config = state.config.load_full();

    systemd::stopping();
    background.abort();
    if let Some(watcher) = watcher {
        watcher.stop().await;
    }
    drop(unix);
    drop(tcp);
    if let Some(path) = &unix_path {
        if let Err(e) = std::fs::remove_file(path) {
            tracing::debug!(path = %path.display(), error = %e, "could not remove the socket file");
        }
    }
    tracing::info!(grace = ?config.shutdown_grace, "shutting down: finishing in-flight requests");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections finished"),
        () = tokio::time::sleep(config.shutdown_grace) => {
            tracing::warn!(grace = ?config.shutdown_grace, "grace period over; closing the remaining connections");
        }
    }
    let _ = stop_maintenance.send(());
    let _ = maintenance.await;
    let _ = flusher.stop().await;
    state.engine.close().await;
    release(state).await;
    Ok(())
}

/// Longest wait for the last tasks (connections, flights) to let go of the engine.
const RELEASE_WAIT: Duration = Duration::from_secs(2);

/// Wait (bounded) until nothing else holds the state and the engine, then drop them, so the
/// database and spool locks are free when `run` returns (a restart in the same process — as
/// tests do — can open them again).
async fn release(state: Arc<State>) {
    let deadline = tokio::time::Instant::now() + RELEASE_WAIT;
    while (Arc::strong_count(&state) > 1 || Arc::strong_count(&state.engine) > 1)
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop(state);
}

fn serve_connection<I>(
    io: I,
    access: Access,
    state: &Arc<State>,
    http: &http1::Builder,
    graceful: &GracefulShutdown,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let state = Arc::clone(state);
    let service = service_fn(move |req| {
        let state = Arc::clone(&state);
        let access = access.clone();
        async move {
            state.requests.fetch_add(1, Ordering::Relaxed);
            let started = Instant::now();
            // The path is resolved once: the router dispatches on it, metrics label by it. (A
            // clone of the URI is reference counts, and lets the request move to its handler.)
            let uri = req.uri().clone();
            let route = router::Route::resolve(uri.path());
            let label = route.map_or("other", router::Route::name);
            let response = match access {
                Access::Allowed => router::route(req, uri.path(), route, &state).await,
                Access::Denied(why) => body::error(&ApiError::Forbidden(why)),
            };
            state
                .metrics
                .request(label, response.status().as_u16(), started.elapsed());
            Ok::<_, Infallible>(response)
        }
    });
    let conn = graceful.watch(http.serve_connection(TokioIo::new(io), service));
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "connection ended with an error");
        }
    });
}

async fn accept_tcp(listener: Option<&TcpListener>) -> std::io::Result<tokio::net::TcpStream> {
    match listener {
        Some(l) => l.accept().await.map(|(s, _)| s),
        None => std::future::pending().await,
    }
}

async fn accept_failed(e: std::io::Error) {
    tracing::warn!(error = %e, "accept failed");
    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
}

/// Create `state_dir` if needed and check that promptd can write there (also run before binding,
/// so a bad state directory leaves no socket file behind).
pub fn prepare_state_dir(path: &std::path::Path) -> Result<(), StartupError> {
    let err = |source| StartupError::StateDir {
        path: path.to_owned(),
        source,
    };
    std::fs::create_dir_all(path).map_err(err)?;
    let probe = path.join(".promptd-write-check");
    std::fs::write(&probe, b"ok").map_err(err)?;
    std::fs::remove_file(&probe).map_err(err)
}
