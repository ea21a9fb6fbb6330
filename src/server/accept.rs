//! The accept loops (Unix socket with its peer check, optional TCP) and the connections they
//! serve, HTTP/1.1 with keep-alive, until the stop signal; then the drain.
//!
//! Drain: the listeners close (no new connections) and the socket file is removed; every open
//! connection finishes its in-flight request (streams too) and closes; after `shutdown_grace`
//! the rest are closed. [`serve`] returns once every connection task has ended.

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

use super::{body, peer, router, Listeners, State};
use crate::api::ApiError;
use crate::tasks::Tasks;

/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Whether the peer of a connection may use the daemon.
#[derive(Debug, Clone)]
enum Access {
    Allowed,
    Denied(String),
}

/// Serve `listeners` until `stop` resolves, then drain (see the module header).
pub async fn serve(listeners: Listeners, state: Arc<State>, stop: impl Future<Output = ()>) {
    let config = state.config.load_full();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout)
        .keep_alive(true);
    let graceful = GracefulShutdown::new();
    // Connection tasks: the stop signal of this group closes those still open after the grace.
    let connections = Tasks::new();
    let Listeners {
        unix,
        unix_path,
        tcp,
    } = listeners;
    tokio::pin!(stop);
    loop {
        tokio::select! {
            accepted = unix.accept() => match accepted {
                Ok((stream, _)) => {
                    let access = match peer::peer_uid(&stream) {
                        Some(uid) if state.peers.load().allows(uid) => Access::Allowed,
                        Some(uid) => Access::Denied(format!("uid {uid} is not allowed on this socket (see allowed_uids)")),
                        None => Access::Denied("cannot read the peer's credentials".to_owned()),
                    };
                    if let Access::Denied(why) = &access {
                        tracing::warn!(reason = %why, "refusing a peer on the unix socket");
                    }
                    serve_connection(stream, access, &state, &http, &graceful, &connections);
                }
                Err(e) => accept_failed(e).await,
            },
            accepted = accept_tcp(tcp.as_ref()) => match accepted {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    serve_connection(stream, Access::Allowed, &state, &http, &graceful, &connections);
                }
                Err(e) => accept_failed(e).await,
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
    connections.spawn(async move {
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
