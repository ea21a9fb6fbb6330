//! promptd: a local LLM gateway daemon speaking Parea's completion API over a Unix socket.
//!
//! Module map (see `DESIGN.md`):
//!
//! - [`config`] — TOML file and flags to one validated [`config::Config`].
//! - [`server`] — listeners (Unix socket with peer credentials, loopback TCP), HTTP routing,
//!   graceful shutdown; [`server::run_with_reload`] is the one entry point.
//! - [`api`] — the wire format: Parea request/response bodies, stream framing, error body.
//! - [`engine`] — the completion pipeline; the one place that knows the order of the steps.
//! - [`providers`] — OpenAI and Anthropic upstreams, SSE parsing, prices.
//! - [`retry`] — when to ask an upstream again and how long to wait: shared by provider calls
//!   and log shipping.
//! - [`cache`] — completion cache in sled: canonical keys, entries, coalescing of identical calls.
//! - [`store`] — the sled database under the state directory.
//! - [`deployments`] — deployed prompts and the `{{placeholder}}` template engine.
//! - [`logs`] — log records, the durable on-disk spool, the flusher that ships them upstream.
//! - [`projects`] — `POST /project` create-or-get, remembered in the state directory.
//! - [`client`] — the CLI's HTTP client for a running daemon.
//! - [`telemetry`] — logging setup.
//! - [`install`] — `promptd install-units`: systemd units and a default config.

pub mod api;
pub mod cache;
pub mod client;
pub mod config;
pub mod deployments;
pub mod engine;
pub mod install;
pub mod logs;
pub mod projects;
pub mod providers;
pub mod retry;
pub mod server;
pub mod store;
pub mod telemetry;

pub use config::Config;
pub use server::{run_with_reload, Listeners, StartupError};

/// An error and its causes on one line, each cause once (`a: b: c`), skipping a cause whose
/// text the message already carries.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
