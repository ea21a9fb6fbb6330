//! The server: accept loops on the Unix socket (with a peer-credential check) and the optional
//! loopback TCP listener, HTTP/1.1 with keep-alive per connection, the router and its handlers,
//! and the drain at shutdown ([`accept`]). What it serves comes from the daemon ([`State`]);
//! it owns nothing of the daemon's life but its listeners and connections.

mod accept;
mod anthropic;
mod anthropic_models;
mod body;
mod client_key;
mod guard;
mod handlers;
mod listener;
mod openai;
mod openai_embeddings;
mod peer;
mod rate;
mod responses;
mod router;
pub mod socket_dir;
mod state;
pub mod systemd;

use std::path::PathBuf;

pub use accept::serve;
pub use listener::{bind_unix, Listeners};
pub use peer::PeerPolicy;
pub use rate::PeerRate;
pub use router::PAREA_PREFIX;
pub use state::State;

use crate::engine::EngineError;
use crate::logs::SpoolError;
use crate::store::StoreError;

/// Why the daemon could not start. Each names the path or address involved.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("another promptd is listening on {0}; stop it or choose another `socket`")]
    AlreadyRunning(PathBuf),
    #[error(transparent)]
    SocketDir(#[from] socket_dir::UnsafeSocketDir),
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
    Store(#[from] StoreError),
    #[error(transparent)]
    Spool(#[from] SpoolError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("cannot start the log flusher: {0}")]
    Flusher(String),
    #[error("cannot start the kept responses' writer: {0}")]
    ResponsesWriter(std::io::Error),
}
