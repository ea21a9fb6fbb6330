//! Telemetry: logging (here) and Prometheus metrics ([`metrics`]).
//!
//! Logging: `tracing` to stderr (journald picks it up under systemd), without colours when
//! stderr is not a terminal. The level comes from `RUST_LOG` when set, else the config's
//! `log_level`.

pub mod metrics;

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Install the global subscriber. Calling it twice is harmless (the second call is ignored).
pub fn init(default_level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(default_level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
