//! What every request handler can reach: the pipeline, and the parts the admin routes read or
//! change directly (cache, spool, deployments, projects, kept responses, the flusher). The daemon builds it and
//! swaps what a reload replaces.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;

use super::{PeerPolicy, PeerRate};
use crate::cache::Cache;
use crate::config::Config;
use crate::deployments::Registry;
use crate::engine::Engine;
use crate::logs::{FlusherHandle, Spool};
use crate::projects::ProjectStore;
use crate::response_store::Kept;
use crate::telemetry::metrics::Metrics;

#[derive(Debug)]
pub struct State {
    /// The completion pipeline.
    pub engine: Arc<Engine>,
    pub cache: Arc<Cache>,
    pub spool: Spool,
    pub deployments: Arc<Registry>,
    pub projects: ProjectStore,
    /// What the Responses door keeps of its answers (`previous_response_id`).
    pub responses: Arc<Kept>,
    /// The running config; replaced whole by a reload.
    pub config: ArcSwap<Config>,
    /// Who may use the Unix socket; replaced by a reload.
    pub peers: ArcSwap<PeerPolicy>,
    /// Requests per second per peer uid, when limited; replaced by a reload.
    pub rate: arc_swap::ArcSwapOption<PeerRate>,
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

impl State {
    /// When the daemon started, in Unix seconds (the `created` of listed models).
    pub fn started_unix(&self) -> i64 {
        let since = chrono::Duration::from_std(self.started.elapsed()).unwrap_or_default();
        (chrono::Utc::now() - since).timestamp()
    }
}
