//! Telemetry: logging (here) and Prometheus metrics ([`metrics`]).
//!
//! Logging: `tracing` to stderr (journald picks it up under systemd), without colours when
//! stderr is not a terminal. The level comes from `RUST_LOG` when set, else the config's
//! `log_level`.

pub mod metrics;

use std::io::IsTerminal;

use std::sync::OnceLock;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

/// Changes the filter of the installed subscriber (config reload).
static FILTER: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

fn filter_for(level: &str) -> EnvFilter {
    EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Install the global subscriber. Calling it twice is harmless (the second call is ignored).
pub fn init(default_level: &str) {
    let (filter, handle) = reload::Layer::new(filter_for(default_level));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .try_init()
        .is_ok()
    {
        let _ = FILTER.set(handle);
    }
}

/// Apply the config's `log_level` (`RUST_LOG`, when set, still wins).
pub fn set_level(level: &str) {
    if let Some(handle) = FILTER.get() {
        if let Err(e) = handle.reload(filter_for(level)) {
            tracing::warn!(error = %e, "cannot change the log level");
        }
    }
}
