//! The accept loops (Unix socket with its peer check, optional TCP) and the connections they
//! serve, HTTP/1.1 with keep-alive, until the stop signal; then the drain.
//!
//! Limits: at most `max_connections` are served at once (lowered to fit the file descriptor
//! limit); the next connection is accepted only when one closes, so the rest wait in the
//! kernel's backlog and a flood of idle connections never makes `accept` fail. A peer whose uid
//! is not allowed gets one 403 and the connection is closed; it is logged once per uid and
//! minute. A failing `accept` is logged once per minute.
//!
//! Drain: the listeners close (no new connections) and the socket file is removed; every open
//! connection finishes its in-flight request (streams too) and closes; after `shutdown_grace`
//! the rest are closed. [`serve`] returns once every connection task has ended.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

use super::guard::{self, Peer};
use super::{body, peer, rate, router, Listeners, State};
use crate::call::ApiError;
use crate::engine::RequestCtx;
use crate::tasks::Tasks;

/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);
/// A repeated log line (a refused uid, a failing accept) is written once per this period.
const REPEAT_LOG_EVERY: Duration = Duration::from_secs(60);
/// File descriptors kept free of connections: the store, the spool, the prompts watcher,
/// provider and collector connections.
const RESERVED_FDS: u64 = 128;

/// `configured`, lowered so that connections leave [`RESERVED_FDS`] of the process's file
/// descriptor limit free.
fn connection_limit(configured: usize) -> usize {
    use nix::sys::resource::{getrlimit, Resource};
    let Ok((soft, _)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return configured;
    };
    let fits = usize::try_from(soft.saturating_sub(RESERVED_FDS).max(1)).unwrap_or(usize::MAX);
    if fits < configured {
        tracing::warn!(max_connections = configured, serving = fits, fd_limit = soft, "max_connections lowered to fit the file descriptor limit (raise ulimit -n / LimitNOFILE= for more)");
        fits
    } else {
        configured
    }
}

/// Whether a line about `what` is due: true the first time and once per [`REPEAT_LOG_EVERY`].
struct Repeats<K> {
    last: std::collections::HashMap<K, Instant>,
}

impl<K: std::hash::Hash + Eq> Repeats<K> {
    fn new() -> Self {
        Repeats {
            last: std::collections::HashMap::new(),
        }
    }

    fn due(&mut self, what: K) -> bool {
        let now = Instant::now();
        // Bounded: entries older than the period are forgotten when the map grows.
        if self.last.len() > 1024 {
            self.last
                .retain(|_, t| now.duration_since(*t) < REPEAT_LOG_EVERY);
        }
        match self.last.get(&what) {
            Some(t) if now.duration_since(*t) < REPEAT_LOG_EVERY => false,
            _ => {
                self.last.insert(what, now);
                true
            }
        }
    }
}

/// Whether the peer of a connection may use the daemon.
#[derive(Debug, Clone)]
enum Access {
    /// Who the peer is; each of its requests still passes [`guard::check`].
    Allowed(Peer),
    Denied(String),
}

/// Serve `listeners` until `stop` resolves, then drain (see the module header).
pub async fn serve(listeners: Listeners, state: Arc<State>, stop: impl Future<Output = ()>) {
    let config = state.config.load_full();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout)
        .keep_alive(true);
    let mut refused_once = http1::Builder::new();
    refused_once.timer(TokioTimer::new()).keep_alive(false);
    let graceful = GracefulShutdown::new();
    // Connection tasks: the stop signal of this group closes those still open after the grace.
    let connections = Tasks::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(connection_limit(
        config.max_connections,
    )));
    let mut refused_uids = Repeats::new();
    let mut accept_errors = Repeats::new();
    let Listeners {
        unix,
        unix_path,
        tcp,
    } = listeners;
    tokio::pin!(stop);
    loop {
        // A slot first: beyond max_connections, nothing is accepted until one closes.
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut stop => break,
        };
        tokio::select! {
            accepted = unix.accept() => match accepted {
                Ok((stream, _)) => {
                    let access = match peer::peer_credentials(&stream) {
                        Some((uid, gid)) if state.peers.load().allows(uid) => Access::Allowed(Peer::Unix { uid, gid }),
                        Some((uid, _)) => {
                            if refused_uids.due(Some(uid)) {
                                tracing::warn!(uid, "refusing a peer on the unix socket: uid not in allowed_uids (logged once a minute per uid)");
                            }
                            Access::Denied(format!("uid {uid} is not allowed on this socket (see allowed_uids)"))
                        }
                        None => {
                            if refused_uids.due(None) {
                                tracing::warn!("refusing a peer on the unix socket: cannot read its credentials");
                            }
                            Access::Denied("cannot read the peer's credentials".to_owned())
                        }
                    };
                    // A refused peer gets its one 403, then the connection closes.
                    let http = match access {
                        Access::Allowed(_) => &http,
                        Access::Denied(_) => &refused_once,
                    };
                    serve_connection(stream, access, &state, http, &graceful, &connections, slot);
                }
                Err(e) => accept_failed(e, &mut accept_errors).await,
            },
            accepted = accept_tcp(tcp.as_ref()) => match accepted {
                Ok((stream, local, remote)) => {
                    let _ = stream.set_nodelay(true);
                    serve_connection(stream, Access::Allowed(Peer::Tcp { local, remote }), &state, &http, &graceful, &connections, slot);
                }
                Err(e) => accept_failed(e, &mut accept_errors).await,
            },
            () = &mut stop => break,
        }
    }
    drop(unix);
    drop(tcp);
    if let Some(path) = &unix_path {
        if let Err(e) = std::fs::remove_file(path) {
            tracing::debug!(path = %path.display(), error = %e, "could not remove the socket file");
        }
    }
    let grace = state.config.load().shutdown_grace;
    tracing::info!(?grace, "shutting down: finishing in-flight requests");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections finished"),
        () = tokio::time::sleep(grace) => {
            tracing::warn!(?grace, "grace period over; closing the remaining connections");
        }
    }
    connections.stop().await;
}

fn serve_connection<I>(
    io: I,
    access: Access,
    state: &Arc<State>,
    http: &http1::Builder,
    graceful: &GracefulShutdown,
    connections: &Tasks,
    slot: tokio::sync::OwnedSemaphorePermit,
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
                Access::Allowed(peer) => {
                    let refused = guard::check(peer, req.method(), req.headers(), route, &state)
                        .err()
                        .or_else(|| over_rate(&state, peer, route));
                    match refused {
                        Some(err) => {
                            let shape = router::ErrorShape::of(route, uri.path(), req.headers());
                            router::error(shape, &err)
                        }
                        None => {
                            let ctx = RequestCtx {
                                client: peer.client(),
                                route: label,
                            };
                            router::route(req, uri.path(), route, ctx, &state).await
                        }
                    }
                }
                Access::Denied(why) => body::error(&ApiError::Forbidden(why)),
            };
            let served = response.extensions().get::<body::Served>();
            state.metrics.request(
                label,
                response.status().as_u16(),
                started.elapsed(),
                served.map(|s| (s.cache.as_str(), s.provider_wait)),
            );
            Ok::<_, Infallible>(response)
        }
    });
    let conn = graceful.watch(http.serve_connection(TokioIo::new(io), service));
    connections.spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "connection ended with an error");
        }
        drop(slot);
    });
}

/// The 429 of a peer over its request rate; `None` when it may go on (or nothing is limited).
/// Health checks and metrics scrapes are not counted.
fn over_rate(state: &State, peer: Peer, route: Option<router::Route<'_>>) -> Option<ApiError> {
    if matches!(route, Some(router::Route::Health | router::Route::Metrics)) {
        return None;
    }
    let rate = state.rate.load();
    let uid = match peer {
        Peer::Unix { uid, .. } => uid,
        Peer::Tcp { .. } => rate::TCP_PEER,
    };
    let wait = rate.as_ref()?.check(uid).err()?;
    Some(ApiError::RateLimited {
        retry_after: wait.as_secs().max(1),
    })
}

/// The next TCP connection, with the listener's address it came in on and the client's.
async fn accept_tcp(
    listener: Option<&TcpListener>,
) -> std::io::Result<(tokio::net::TcpStream, SocketAddr, SocketAddr)> {
    match listener {
        Some(l) => {
            let (stream, remote) = l.accept().await?;
            let local = stream.local_addr()?;
            Ok((stream, local, remote))
        }
        None => std::future::pending().await,
    }
}

async fn accept_failed(e: std::io::Error, repeats: &mut Repeats<std::io::ErrorKind>) {
    if repeats.due(e.kind()) {
        tracing::warn!(error = %e, "accept failed (logged once a minute); retrying");
    }
    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
}
