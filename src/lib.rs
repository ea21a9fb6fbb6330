//! promptd: a local LLM gateway daemon speaking Parea's completion API over a Unix socket.
//!
//! Module map (see `DESIGN.md`):
//!
//! - [`daemon`] — the running daemon, the one owner of its parts: builds them in order, reloads
//!   them on SIGHUP through one path, stops them in reverse on one signal; [`daemon::run`] is
//!   the entry point (tests give it a bound listener), [`daemon::serve`] the process around it.
//! - [`tasks`] — task groups with one stop signal and drop guards: how the daemon stops.
//! - [`config`] — TOML file and flags to one validated [`config::Config`], and the settings types
//!   of every section, which the components import (config imports none of them).
//! - [`server`] — listeners (Unix socket with peer credentials, loopback TCP), the accept loop
//!   and connections, HTTP routing and handlers, the drain at shutdown.
//! - [`frontends`] — the front doors, one room each (Parea, OpenAI chat/embeddings/models,
//!   Anthropic Messages, OpenAI Responses): a client's wire to the engine's call and back.
//! - [`call`] — what a door asks the engine ([`call::Call`]: the request as the model, with
//!   what to lay it over and log it with), how it fails ([`call::ApiError`]), what a completion
//!   came to; and the configuration in Parea's words that the Parea door and deployed prompts
//!   are written in, and its mapping into the model.
//! - [`engine`] — the completion pipeline; the one place that knows the order of the steps. It
//!   holds what a completion needs and hands nothing out.
//! - [`model`] — the internal model every front door and provider kind maps to: requests of
//!   typed content blocks, responses with a finish reason and usage, stream events and their
//!   assembler, errors with a kind. No HTTP, no wire serde.
//! - [`providers`] — OpenAI and Anthropic upstreams, SSE parsing, prices.
//! - [`wire`] — each wire (Anthropic Messages, ...) to and from the model, in all four
//!   directions: requests and answers, whole and streamed. Pure; imports only the model.
//! - [`redact`] — credentials out of URLs in any text that leaves the daemon.
//! - [`memory`] — the daemon-wide budget of bytes held for requests (`max_request_memory`):
//!   bodies being read and rendered prompts reserve it first; over it, 503 `server_busy`.
//! - [`retry`] — when to ask an upstream again and how long to wait: shared by provider calls
//!   and log shipping.
//! - [`cache`] — completion cache in sled: canonical keys, entries, coalescing of identical calls
//!   (generic over the caller's error: the cache knows nothing of HTTP).
//! - [`store`] — the sled database under the state directory.
//! - [`response_store`] — what the Responses door keeps of its answers (`previous_response_id`,
//!   `GET /v1/responses/{id}`): bounded, per owner, in the store's database.
//! - [`deployments`] — deployed prompts and the `{{placeholder}}` template engine.
//! - [`logs`] — three rooms: `record` (the format), `spool` (the durable on-disk queue),
//!   `flusher` (ships it upstream).
//! - [`projects`] — `POST /project` create-or-get, remembered in the state directory.
//! - [`client`] — the CLI's HTTP client for a running daemon.
//! - [`telemetry`] — logging setup and Prometheus metrics.
//! - [`timestamp`] — timestamps as promptd writes them (RFC 3339, UTC, microseconds).
//! - [`install`] — `promptd install-units`: systemd units and a default config.

pub mod cache;
pub mod call;
pub mod client;
pub mod config;
pub mod daemon;
pub mod deployments;
pub mod engine;
pub mod frontends;
pub mod install;
pub mod logs;
pub mod memory;
pub mod model;
pub mod projects;
pub mod providers;
pub mod redact;
pub mod response_store;
pub mod retry;
pub mod server;
pub mod store;
pub mod tasks;
pub mod telemetry;
pub mod timestamp;
pub mod wire;

pub use config::Config;
// Test helpers shared with tests/ (tests/common/*.rs, included with #[path] by unit tests) name
// the crate as the integration tests do.
#[cfg(test)]
extern crate self as promptd;
pub use server::{Listeners, StartupError};

/// Longest excerpt of an upstream's error body kept in a message, in characters: enough to
/// recognise a JSON error or an error page, short enough for a log line.
const ERROR_BODY_MAX_CHARS: usize = 300;

/// An upstream's error body quoted in a message: as text (invalid UTF-8 replaced), trimmed, cut
/// to [`ERROR_BODY_MAX_CHARS`] characters with `...` marking the cut, and `(empty body)` when
/// there is nothing to quote.
pub fn error_body_excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "(empty body)".to_owned();
    }
    match text.char_indices().nth(ERROR_BODY_MAX_CHARS) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

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
    // Causes may quote a URL with its credentials (reqwest's do).
    match redact::urls(&text) {
        std::borrow::Cow::Borrowed(_) => text,
        std::borrow::Cow::Owned(masked) => masked,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_body_is_quoted_trimmed_and_cut_with_a_mark() {
        assert_eq!(error_body_excerpt(b"  bad gateway\n"), "bad gateway");
        assert_eq!(error_body_excerpt(b" \n "), "(empty body)");
        assert_eq!(error_body_excerpt(b"\xff!"), "\u{fffd}!");
        let exact = "é".repeat(ERROR_BODY_MAX_CHARS);
        assert_eq!(error_body_excerpt(exact.as_bytes()), exact, "not cut");
        let long = format!("{exact}é");
        assert_eq!(error_body_excerpt(long.as_bytes()), format!("{exact}..."));
    }
}
