//! The validated settings of `[cache]`, `[providers.NAME]` and `[prices]`, in the form the
//! components take them ([`super::Config`] checks and builds them). They live here, not with
//! their components, so that `config` imports no component: the cache and the providers import
//! their settings from `config`, never the other way round.

use std::time::Duration;

use super::Secret;

/// `[cache]` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheConfig {
    pub enabled: bool,
    pub ttl: Duration,
    pub max_bytes: u64,
    pub serve_stale_on_error: bool,
    /// Largest answer stored (its encoded entry); a larger one is served, not stored.
    pub max_entry_bytes: u64,
    /// sled's page cache (memory for the database's pages), read at start only.
    pub page_cache: u64,
}

/// The kinds of upstream API promptd speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    /// OpenAI chat completions, and every OpenAI-compatible server (vLLM, Ollama, ...).
    OpenAi,
    /// Anthropic messages API.
    Anthropic,
}

impl ProviderKind {
    pub fn default_base_url(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "https://api.openai.com/v1",
            ProviderKind::Anthropic => "https://api.anthropic.com/v1",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "openai",
            ProviderKind::Anthropic => "anthropic",
        }
    }
}

/// Where a provider's key comes from, as its table declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `api_key = "..."`.
    Config,
    /// `api_key_env = "VAR"`, read when the config is loaded.
    Env(String),
    /// `api_key_env = ""`: a server that takes no key (llama.cpp, vLLM, Ollama).
    Keyless,
    /// Neither key given: calls without a request key are refused, so that a provider is
    /// keyless only on purpose.
    Undeclared,
}

/// One configured model provider.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    pub kind: ProviderKind,
    /// Without a trailing slash, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    /// The key, when its source gave one.
    pub api_key: Option<Secret>,
    pub api_key_source: KeySource,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub stream_idle_timeout: Duration,
    /// Longest a stream may run before it is cut (ends with an error, not stored).
    pub max_stream_duration: Duration,
    /// Calls in flight to this provider at once; more wait up to `queue_timeout`.
    pub max_concurrent: usize,
    pub queue_timeout: Duration,
    pub max_retries: u32,
    /// Largest whole answer read (over it: a 502 naming the provider); also what a stream
    /// holds of its answer (past it the stream is forwarded but not cached).
    pub max_response_bytes: usize,
    /// Largest stream event or line (over it the stream fails).
    pub max_event_bytes: usize,
    pub default_max_tokens: u32,
    /// `responses = true`: an OpenAI-kind provider that serves OpenAI's Responses API
    /// (`POST {base_url}/responses`): the Responses door forwards its clients' calls there as
    /// they came. On by default for OpenAI's own URL only.
    pub responses: bool,
    /// `models = [...]`: what `GET /v1/models` lists for it; a bare model name among them is
    /// routed here.
    pub models: Vec<String>,
}

/// USD per million tokens. A cache rate left unset is the provider kind's ratio of the input
/// rate ([`crate::providers::pricing`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
    /// Prompt tokens read from the provider's prompt cache.
    pub cache_read_per_mtok: Option<f64>,
    /// Prompt tokens written to the provider's prompt cache.
    pub cache_write_per_mtok: Option<f64>,
}
