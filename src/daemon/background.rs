//! The daemon's background upkeep: the prompts watcher, cache maintenance, the systemd
//! watchdog and status line; and what the metrics registry reads at scrape time.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::cache::{Cache, CacheStats};
use crate::deployments::{DeploymentCounts, Registry};
use crate::engine::Engine;
use crate::logs::{FlusherHandle, FlusherStats, Spool, SpoolStats};
use crate::server::{systemd, State};
use crate::tasks::Tasks;
use crate::telemetry::metrics::StatsSource;

/// How often hit counts are written back and the cache is trimmed to `max_bytes`.
const CACHE_MAINTENANCE_EVERY: Duration = Duration::from_secs(10);
/// How often the `STATUS=` line is refreshed.
const STATUS_EVERY: Duration = Duration::from_secs(10);

/// Start the watcher, cache maintenance and the systemd reports in `tasks`.
pub(super) fn start(state: &Arc<State>, tasks: &Tasks) {
    match crate::deployments::watch(Arc::clone(&state.deployments)) {
        Ok(watch) => tasks.spawn_graceful(|stop| watch.run(stop)),
        Err(e) => {
            let prompts_dir = state.config.load().prompts_dir.clone();
            tracing::warn!(error = %e, prompts_dir = %prompts_dir.display(), "not watching the prompts directory; SIGHUP reloads it");
        }
    }
    tasks.spawn(maintain_cache(Arc::clone(&state.cache)));
    tasks.spawn(report_to_systemd(Arc::clone(state)));
}

/// Hit write-back and eviction, on the blocking pool.
async fn maintain_cache(cache: Arc<Cache>) {
    let mut tick = tokio::time::interval(CACHE_MAINTENANCE_EVERY);
    tick.tick().await;
    loop {
        tick.tick().await;
        let cache = Arc::clone(&cache);
        let _ = tokio::task::spawn_blocking(move || cache.maintain()).await;
    }
}

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
                let cache = state.cache.stats();
                let spool = state.spool.stats();
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

/// The parts as the metrics registry reads them at scrape time.
#[derive(Debug)]
pub(super) struct PartsStats {
    pub engine: Arc<Engine>,
    pub cache: Arc<Cache>,
    pub deployments: Arc<Registry>,
    pub spool: Spool,
    pub flusher: Arc<ArcSwap<FlusherHandle>>,
    pub responses: Arc<crate::response_store::Kept>,
}

impl StatsSource for PartsStats {
    fn cache_stats(&self) -> CacheStats {
        self.cache.stats()
    }

    fn flights_in_progress(&self) -> u64 {
        self.engine.flights_in_progress()
    }

    fn deployments(&self) -> DeploymentCounts {
        self.deployments.counts()
    }

    fn spool(&self) -> Option<SpoolStats> {
        Some(self.spool.stats())
    }

    fn flusher(&self) -> Option<FlusherStats> {
        Some(self.flusher.load().stats())
    }

    fn kept_responses(&self) -> Option<crate::response_store::Totals> {
        Some(self.responses.totals())
    }
}
