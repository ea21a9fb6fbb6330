//! A reload: the one path a new config takes into the running daemon (SIGHUP, or a config sent
//! on the daemon's `reloads`). The engine checks it first (providers must build); then every
//! part takes its share, the log level and peer list change, and the prompts directory is read
//! again. A config that cannot be applied changes nothing.

use std::sync::Arc;

use crate::config::Config;
use crate::logs::{Flusher, UpstreamConfig};
use crate::server::{systemd, PeerPolicy, PeerRate, State};
use crate::tasks::Tasks;

/// Apply `new` to the running daemon; `shipping` is the flusher's group, replaced when
/// `[upstream]` changed.
pub(super) async fn apply(
    state: &Arc<State>,
    new: Config,
    background: &Tasks,
    shipping: &mut Tasks,
) {
    let old = state.config.load_full();
    if let Err(e) = state.engine.reconfigure(&new, &state.metrics) {
        tracing::error!(error = %e, "config reload failed; keeping the running config");
        systemd::ready("reload failed; running with the previous config");
        return;
    }
    state.cache.set_config(new.cache.clone());
    state.deployments.set_providers(new.provider_names());
    state.spool.set_max_bytes(new.spool.max_bytes);
    state.peers.store(Arc::new(PeerPolicy::new(
        &new.allowed_uids,
        &new.access.admin_uids,
    )));
    if (old.rate_limit, old.rate_limit_burst) != (new.rate_limit, new.rate_limit_burst) {
        state
            .rate
            .store(PeerRate::new(new.rate_limit, new.rate_limit_burst).map(Arc::new));
    }
    crate::telemetry::set_level(&new.log_level);
    let restart_needed = keys_needing_a_restart(&old, &new);
    if !restart_needed.is_empty() {
        tracing::warn!(keys = %restart_needed.join(", "), "changed keys take effect after a restart");
    }
    let upstream_changed = !same_upstream(&old.upstream, &new.upstream);
    let upstream = new.upstream.clone();
    state.config.store(Arc::new(new));
    if upstream_changed {
        restart_shipping(state, upstream, background, shipping).await;
    }
    // Re-reading the prompts directory is file I/O: off the daemon's loop. READY=1 follows it.
    let deployments = Arc::clone(&state.deployments);
    background.spawn_to_end(async move {
        let reloaded = tokio::task::spawn_blocking(move || deployments.reload_all()).await;
        if let Ok(report) = reloaded {
            tracing::info!(?report, "config and prompts reloaded");
        }
        systemd::ready("config and prompts reloaded");
    });
}

/// Ship with the new `[upstream]`: the old flusher stops (entries in flight are sent again by
/// the next), the new one starts. If the new one cannot be built, the old one keeps shipping.
async fn restart_shipping(
    state: &State,
    upstream: UpstreamConfig,
    background: &Tasks,
    shipping: &mut Tasks,
) {
    match Flusher::new(state.spool.clone(), upstream) {
        Ok(next) => {
            shipping.stop().await;
            state.flusher.store(Arc::new(next.handle()));
            *shipping = background.child();
            shipping.spawn_graceful(|stop| next.run(stop));
            tracing::info!("log shipping restarted with the new [upstream]");
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot restart log shipping; the previous [upstream] keeps shipping")
        }
    }
}

/// Whether two `[upstream]` configs ship the same way (same place, key and limits).
fn same_upstream(a: &UpstreamConfig, b: &UpstreamConfig) -> bool {
    a.base_url == b.base_url
        && a.api_key == b.api_key
        && a.batch_size == b.batch_size
        && a.max_in_flight == b.max_in_flight
        && a.timeout == b.timeout
}

/// Keys whose change a reload cannot apply.
fn keys_needing_a_restart(old: &Config, new: &Config) -> Vec<&'static str> {
    [
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
    .collect()
}
