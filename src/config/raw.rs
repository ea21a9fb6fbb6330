//! The config file as written: serde structs that mirror the TOML one to one.
//!
//! Every key is optional here; [`super::Config::from_raw`] applies the defaults and checks the
//! values. Unknown keys are refused (`deny_unknown_fields`) so a typo never silently falls back
//! to a default.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

/// The top level of `promptd.toml`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub socket: Option<PathBuf>,
    pub socket_mode: Option<String>,
    pub tcp: Option<String>,
    pub allow_remote: Option<bool>,
    pub state_dir: Option<PathBuf>,
    pub prompts_dir: Option<PathBuf>,
    pub allowed_uids: Option<Vec<u32>>,
    /// Uids that may use the admin routes (empty: the daemon's own uid and root).
    pub admin_uids: Option<Vec<u32>>,
    /// Extra `Host` names the TCP listener accepts besides the loopback ones.
    pub tcp_hosts: Option<Vec<String>>,
    /// The variable holding the key TCP clients must send.
    pub tcp_key_env: Option<String>,
    pub max_body: Option<String>,
    pub max_connections: Option<usize>,
    pub rate_limit: Option<u32>,
    pub rate_limit_burst: Option<u32>,
    pub max_rendered: Option<String>,
    /// Daemon-wide budget of bytes held for requests (bodies, rendered messages).
    pub max_request_memory: Option<String>,
    /// Most `input` items of one `POST /v1/embeddings`.
    pub max_embedding_inputs: Option<u64>,
    pub header_timeout: Option<String>,
    pub shutdown_grace: Option<String>,
    pub log_level: Option<String>,
    /// The provider of an OpenAI-route model that no other rule places.
    pub default_provider: Option<String>,
    /// The provider of a Messages-door model that no other rule places.
    pub anthropic_default_provider: Option<String>,
    /// `[models]`: bare model name -> provider name, for the OpenAI-compatible routes.
    pub models: Option<BTreeMap<String, String>>,
    pub providers: Option<BTreeMap<String, RawProvider>>,
    pub prices: Option<BTreeMap<String, RawPrice>>,
    pub cache: Option<RawCache>,
    pub spool: Option<super::RawSpool>,
    pub upstream: Option<super::RawUpstream>,
    pub responses: Option<super::RawResponses>,
}

/// The `[cache]` table.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCache {
    pub enabled: Option<bool>,
    pub ttl: Option<String>,
    pub max_bytes: Option<String>,
    pub serve_stale_on_error: Option<bool>,
    pub max_entry_bytes: Option<String>,
    pub page_cache: Option<String>,
}

/// One `[providers.NAME]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    pub kind: String,
    pub base_url: Option<String>,
    pub api_key_env: Option<String>,
    pub api_key: Option<String>,
    pub timeout: Option<String>,
    pub connect_timeout: Option<String>,
    pub stream_idle_timeout: Option<String>,
    pub max_stream_duration: Option<String>,
    pub max_concurrent: Option<usize>,
    pub queue_timeout: Option<String>,
    pub max_retries: Option<u32>,
    pub max_response_bytes: Option<String>,
    pub max_event_bytes: Option<String>,
    pub default_max_tokens: Option<u32>,
    /// An OpenAI-kind provider serves OpenAI's Responses API (`POST {base_url}/responses`).
    pub responses: Option<bool>,
    /// Models this provider serves: listed by `GET /v1/models`, and a bare model name among
    /// them is sent here.
    pub models: Option<Vec<String>>,
}

/// One `[prices."MODEL"]` table: USD per million tokens.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrice {
    pub input: f64,
    pub output: f64,
    pub cache_read: Option<f64>,
    pub cache_write: Option<f64>,
}
