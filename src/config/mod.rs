//! Configuration: the TOML file (or the embedded default), command-line overrides, then one
//! validated [`Config`] that the rest of the daemon reads.
//!
//! Raw then validated: [`raw::RawConfig`] mirrors the file (unknown keys refused); [`Config`]
//! holds checked, typed values with every default applied. Errors name the key that is wrong.

mod access;
mod logs;
mod paths;
pub mod raw;
mod responses;
mod sections;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use access::AccessConfig;
pub use logs::{
    RawSpool, RawUpstream, SpoolConfig, UpstreamConfig, MAX_RECORD_BYTES, MIN_RECORD_BYTES,
};
pub use paths::{default_prompts_dir, default_socket, default_state_dir, user_config_home};
use raw::{RawConfig, RawProvider};
pub use responses::{RawResponses, ResponsesConfig};
pub use sections::{CacheConfig, KeySource, Price, ProviderConfig, ProviderKind};

/// The embedded default config (`promptd default-config` prints it).
pub const DEFAULT_CONFIG_TOML: &str = include_str!("default.toml");

/// Socket permissions: owner and group may connect, others not.
const DEFAULT_SOCKET_MODE: u32 = 0o660;
/// Large enough for long chat histories with function schemas, small enough to refuse abuse.
const DEFAULT_MAX_BODY: u64 = 4 * 1024 * 1024;
/// Connections served at once; more wait in the kernel's listen backlog. Far above what local
/// apps open; the daemon raises its file descriptor limit to the hard one at start, and lowers
/// this to fit when the limit is smaller.
const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// Largest answer the cache stores: far above any chat answer, small enough that one huge
/// answer (a runaway stream, a giant embedding batch) cannot push the rest of the cache out.
const DEFAULT_CACHE_MAX_ENTRY_BYTES: u64 = 8 * 1024 * 1024;
/// sled's page cache: small, so the idle daemon stays small whatever the cache holds (sled's
/// own default is 1 GiB); hits read from the OS page cache beyond it.
const DEFAULT_CACHE_PAGE_CACHE: u64 = 16 * 1024 * 1024;
/// Default `max_embedding_inputs`: OpenAI's own limit of inputs per embeddings request.
const DEFAULT_MAX_EMBEDDING_INPUTS: usize = 2048;
/// Default `max_rendered`, as a multiple of `max_body`: a request whose inputs fill its
/// templates may grow this much, no more (placeholders multiply: a few KB of input used 100,000
/// times would be hundreds of MB).
const DEFAULT_MAX_RENDERED_PER_BODY: u64 = 4;
/// Default `max_request_memory`: what requests may make the daemon hold at once (bodies being
/// read, rendered messages). Sixty-four full default bodies, or a dozen requests rendering the
/// default `max_rendered`: far above what local apps send together, while a flood of clients
/// holding unfinished bodies (1.26 GiB at 300 of them before this bound) or amplifying templates
/// cannot take the machine's memory; past it a request is 503 `server_busy`, `Retry-After: 1`.
const DEFAULT_MAX_REQUEST_MEMORY: u64 = 256 * 1024 * 1024;
/// A connection whose next request headers have not fully arrived this long after it opened (or
/// after the previous response) is closed: both the header and the keep-alive idle timeout.
const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(60);
/// How long SIGTERM waits for in-flight requests (streams too) before exiting.
const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// Whole answer (non-stream) or first event (stream); reasoning models can be slow.
const DEFAULT_PROVIDER_TIMEOUT: Duration = Duration::from_secs(300);
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest silence between two events of a stream before it is treated as failed.
const DEFAULT_STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest a stream may run, first event to last: far above any real answer (a long answer at
/// a slow model's speed is minutes), short enough that a stream that never ends is cut.
const DEFAULT_MAX_STREAM_DURATION: Duration = Duration::from_secs(30 * 60);
/// Calls in flight to one provider: far above what local apps need, low enough that a burst
/// cannot open thousands of upstream connections (and hit the provider's rate limit at once).
const DEFAULT_MAX_CONCURRENT: usize = 256;
/// A whole answer held at once, and what a stream holds of its answer: 32 MiB is hundreds of
/// thousands of tokens, beyond any model's output, and bounds what a provider makes promptd
/// hold per call.
const DEFAULT_MAX_RESPONSE_BYTES: u64 = 32 * 1024 * 1024;
/// One stream event (or line): 4 MiB passes a large tool call's arguments in one event, and
/// is what a provider can make one stream's parser hold.
const DEFAULT_MAX_EVENT_BYTES: u64 = 4 * 1024 * 1024;
/// How long a call waits for a free slot before it is a 503 with `Retry-After`.
const DEFAULT_QUEUE_TIMEOUT: Duration = Duration::from_secs(10);
/// Retries of 429/5xx/connection errors before the first byte of an answer.
const DEFAULT_MAX_RETRIES: u32 = 2;
/// Anthropic requires `max_tokens`; used when a request gives no `max_length`.
const DEFAULT_MAX_TOKENS: u32 = 4096;
/// A week: long enough to ride out outages, short enough that models' answers get refreshed.
const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// Completions are small (a few KiB each): a gigabyte holds hundreds of thousands.
const DEFAULT_CACHE_MAX_BYTES: u64 = 1024 * 1024 * 1024;

/// A config error: which key (or file) and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("config key `{key}`: {message}")]
    Invalid { key: String, message: String },
}

/// A `ConfigError::Invalid` for `key`.
pub(crate) fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

/// `log_level`: a level, or a `tracing` filter (`promptd=debug,info`). A lone word that is not
/// a level would be read as a target name and silence nearly everything, so it is refused.
fn log_level(raw: Option<String>) -> Result<String, ConfigError> {
    const LEVELS: [&str; 6] = ["error", "warn", "info", "debug", "trace", "off"];
    let level = raw.unwrap_or_else(|| "info".to_owned());
    let lone_word = !level.contains(['=', ',']);
    if lone_word && !LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
        return Err(invalid(
            "log_level",
            format!(
                "`{level}` is not a level ({}) nor a filter like `promptd=debug,info`",
                LEVELS.join(", ")
            ),
        ));
    }
    tracing_subscriber::EnvFilter::try_new(&level)
        .map_err(|e| invalid("log_level", format!("`{level}` is not a filter: {e}")))?;
    Ok(level)
}

/// A secret that never shows up in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `text` with every occurrence of this key replaced by [`MASK`]: for any text that leaves
    /// the daemon and may quote the key (an upstream that echoes the key it got in its error).
    /// Keys shorter than [`MIN_MASKED_KEY`] are left alone (they would mask ordinary words).
    pub fn mask_in<'a>(&self, text: &'a str) -> std::borrow::Cow<'a, str> {
        if self.0.len() < MIN_MASKED_KEY || !text.contains(self.0.as_str()) {
            return std::borrow::Cow::Borrowed(text);
        }
        std::borrow::Cow::Owned(text.replace(self.0.as_str(), MASK))
    }
}

/// What a key quoted in a message becomes.
pub const MASK: &str = "[redacted key]";
/// Shortest key [`Secret::mask_in`] masks: real API keys are far longer; a shorter one (a test
/// value, `x`) would turn common words into the mask.
const MIN_MASKED_KEY: usize = 6;

/// `text` with each of `keys` masked ([`Secret::mask_in`]).
pub fn mask_keys<'a>(text: String, keys: impl IntoIterator<Item = &'a Secret>) -> String {
    keys.into_iter()
        .fold(text, |text, key| match key.mask_in(&text) {
            std::borrow::Cow::Borrowed(_) => text,
            std::borrow::Cow::Owned(masked) => masked,
        })
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The validated configuration of a daemon.
#[derive(Debug, Clone)]
pub struct Config {
    pub socket: PathBuf,
    pub socket_mode: u32,
    pub tcp: Option<SocketAddr>,
    pub allow_remote: bool,
    pub state_dir: PathBuf,
    pub prompts_dir: PathBuf,
    pub allowed_uids: Vec<u32>,
    /// Admin uids and the TCP listener's guards (`admin_uids`, `tcp_hosts`, `tcp_key_env`).
    pub access: AccessConfig,
    pub max_body: u64,
    /// Largest request after its `{{placeholders}}` are filled (all messages), in bytes.
    pub max_rendered: u64,
    /// Bytes all requests together may make the daemon hold (`max_request_memory`).
    pub max_request_memory: u64,
    /// Connections served at once (both listeners); more wait in the kernel's backlog.
    pub max_connections: usize,
    /// Requests per second per peer uid (0: not limited), and the bucket's burst.
    pub rate_limit: u32,
    pub rate_limit_burst: u32,
    /// Most `input` items of one `POST /v1/embeddings` (`max_embedding_inputs`).
    pub max_embedding_inputs: usize,
    pub header_timeout: Duration,
    pub shutdown_grace: Duration,
    pub log_level: String,
    pub providers: BTreeMap<String, ProviderConfig>,
    /// `[models]`: a bare model name of the OpenAI-compatible routes -> its provider.
    pub models: BTreeMap<String, String>,
    /// `default_provider`: where a bare model name goes when no other rule places it.
    pub default_provider: Option<String>,
    /// `anthropic_default_provider`: the same for the Messages door (`/v1/messages`: Claude
    /// Code, the Anthropic SDKs); unset, `default_provider`.
    pub anthropic_default_provider: Option<String>,
    /// Price overrides by model name (prefix match), USD per million tokens.
    pub prices: BTreeMap<String, Price>,
    pub cache: CacheConfig,
    /// `[spool]`: the on-disk log spool under `state_dir/spool`.
    pub spool: SpoolConfig,
    /// `[upstream]`: the Parea API that receives logs and serves deployments promptd lacks.
    pub upstream: UpstreamConfig,
    /// `[responses]`: what the Responses door keeps for `previous_response_id`.
    pub responses: ResponsesConfig,
    /// Which listener keys were given rather than defaulted (`tcp` says so itself).
    pub listen_keys_set: ListenKeysSet,
}

/// Whether `socket` and `socket_mode` came from the file or a flag: under socket activation
/// only a key somebody set is worth a warning when the unit's socket overrides it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListenKeysSet {
    pub socket: bool,
    pub socket_mode: bool,
}

/// Command-line flags that beat the file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub socket: Option<PathBuf>,
    pub tcp: Option<String>,
    pub state_dir: Option<PathBuf>,
    pub prompts_dir: Option<PathBuf>,
}

impl ProviderConfig {
    /// Where the key comes from, for status output: `config`, `env VAR`, `env VAR (not set)`,
    /// `none (keyless)`, `none (not declared)`.
    pub fn key_status(&self) -> String {
        match (&self.api_key_source, &self.api_key) {
            (KeySource::Config, _) => "config".to_owned(),
            (KeySource::Env(var), Some(_)) => format!("env {var}"),
            (KeySource::Env(var), None) => format!("env {var} (not set)"),
            (KeySource::Keyless, _) => "none (keyless)".to_owned(),
            (KeySource::Undeclared, _) => "none (not declared)".to_owned(),
        }
    }

    /// What to do, when a call to provider `name` without a request key would go out with no
    /// key; `None` when it has one or takes none.
    pub fn missing_key_remedy(&self, name: &str) -> Option<String> {
        if self.api_key.is_some() {
            return None;
        }
        match &self.api_key_source {
            KeySource::Config | KeySource::Keyless => None,
            KeySource::Env(var) => Some(format!(
                "set {var} in promptd's environment and restart it, or pass provider_api_key \
                 in the request"
            )),
            KeySource::Undeclared => Some(format!(
                "give api_key_env or api_key in [providers.{name}] (api_key_env = \"\" for a \
                 server that takes no key), or pass provider_api_key in the request"
            )),
        }
    }
}

impl Config {
    /// Load `path` (or the embedded default when `None`), apply `overrides`, validate.
    pub fn load(path: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        let raw = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                parse_toml(&text, &path.display().to_string())?
            }
            None => parse_toml(DEFAULT_CONFIG_TOML, "<embedded default>")?,
        };
        Config::from_raw(raw, overrides)
    }

    /// Parse a config from TOML text (`origin` names it in errors).
    pub fn from_toml(
        text: &str,
        origin: &str,
        overrides: &Overrides,
    ) -> Result<Config, ConfigError> {
        Config::from_raw(parse_toml(text, origin)?, overrides)
    }

    /// Apply defaults and overrides to a raw config and check every value.
    pub fn from_raw(mut raw: RawConfig, overrides: &Overrides) -> Result<Config, ConfigError> {
        if let Some(socket) = &overrides.socket {
            raw.socket = Some(socket.clone());
        }
        if let Some(tcp) = &overrides.tcp {
            raw.tcp = Some(tcp.clone());
        }
        if let Some(dir) = &overrides.state_dir {
            raw.state_dir = Some(dir.clone());
        }
        if let Some(dir) = &overrides.prompts_dir {
            raw.prompts_dir = Some(dir.clone());
        }
        let providers = match raw.providers {
            Some(providers) => providers,
            None => parse_toml(DEFAULT_CONFIG_TOML, "<embedded default>")?
                .providers
                .unwrap_or_default(),
        };
        let allow_remote = raw.allow_remote.unwrap_or(false);
        let tcp = raw
            .tcp
            .filter(|t| !t.is_empty())
            .map(|t| parse_tcp(&t, allow_remote))
            .transpose()?;
        let listen_keys_set = ListenKeysSet {
            socket: raw.socket.is_some(),
            socket_mode: raw.socket_mode.is_some(),
        };
        let max_body = size_or("max_body", raw.max_body, DEFAULT_MAX_BODY)?;
        let config = Config {
            listen_keys_set,
            socket: raw.socket.unwrap_or_else(default_socket),
            socket_mode: match raw.socket_mode {
                Some(mode) => parse_mode(&mode)?,
                None => DEFAULT_SOCKET_MODE,
            },
            tcp,
            allow_remote,
            state_dir: raw.state_dir.unwrap_or_else(default_state_dir),
            prompts_dir: raw.prompts_dir.unwrap_or_else(default_prompts_dir),
            allowed_uids: raw.allowed_uids.unwrap_or_default(),
            access: AccessConfig::from_raw(
                raw.admin_uids,
                raw.tcp_hosts,
                raw.tcp_key_env,
                |var| std::env::var(var).ok().filter(|v| !v.is_empty()),
            )?,
            max_body,
            max_connections: raw.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS),
            rate_limit: raw.rate_limit.unwrap_or(0),
            rate_limit_burst: raw
                .rate_limit_burst
                .unwrap_or_else(|| raw.rate_limit.unwrap_or(0).saturating_mul(2)),
            max_rendered: size_or(
                "max_rendered",
                raw.max_rendered,
                max_body.saturating_mul(DEFAULT_MAX_RENDERED_PER_BODY),
            )?,
            max_request_memory: size_or(
                "max_request_memory",
                raw.max_request_memory,
                DEFAULT_MAX_REQUEST_MEMORY,
            )?,
            max_embedding_inputs: raw
                .max_embedding_inputs
                .map_or(Ok(DEFAULT_MAX_EMBEDDING_INPUTS), usize::try_from)
                .map_err(|_| invalid("max_embedding_inputs", "is too large"))?,
            header_timeout: duration_or(
                "header_timeout",
                raw.header_timeout,
                DEFAULT_HEADER_TIMEOUT,
            )?,
            shutdown_grace: duration_or(
                "shutdown_grace",
                raw.shutdown_grace,
                DEFAULT_SHUTDOWN_GRACE,
            )?,
            log_level: log_level(raw.log_level)?,
            providers: providers
                .into_iter()
                .map(|(name, p)| provider_config(&name, p).map(|p| (name, p)))
                .collect::<Result<_, _>>()?,
            models: raw.models.unwrap_or_default(),
            default_provider: raw.default_provider,
            anthropic_default_provider: raw.anthropic_default_provider,
            prices: raw
                .prices
                .unwrap_or_default()
                .into_iter()
                .map(|(model, p)| check_price(&model, p).map(|p| (model, p)))
                .collect::<Result<_, _>>()?,
            cache: cache_config(raw.cache.unwrap_or_default())?,
            spool: SpoolConfig::from_raw(raw.spool)?,
            upstream: UpstreamConfig::from_raw(raw.upstream)?,
            responses: ResponsesConfig::from_raw(raw.responses)?,
        };
        if config.socket.as_os_str().is_empty() {
            return Err(invalid("socket", "must not be empty"));
        }
        if config.max_body == 0 {
            return Err(invalid("max_body", "must be more than 0 bytes"));
        }
        if config.max_connections == 0 {
            return Err(invalid("max_connections", "must be at least 1"));
        }
        if config.max_rendered == 0 {
            return Err(invalid("max_rendered", "must be more than 0 bytes"));
        }
        let one_request = config.max_body.saturating_add(config.max_rendered);
        if config.max_request_memory < one_request {
            return Err(invalid(
                "max_request_memory",
                format!(
                    "must be at least max_body + max_rendered ({one_request} bytes): one request \
                     of each largest size must fit"
                ),
            ));
        }
        if config.max_embedding_inputs == 0 {
            return Err(invalid("max_embedding_inputs", "must be at least 1"));
        }
        check_model_routing(&config)?;
        Ok(config)
    }

    /// The configured provider names, for error messages.
    pub fn provider_names(&self) -> Vec<String> {
        self.providers.keys().cloned().collect()
    }
}

/// `default_provider`, `anthropic_default_provider` and every `[models]` value name a
/// configured provider; model names are
/// not empty and have no surrounding spaces.
fn check_model_routing(config: &Config) -> Result<(), ConfigError> {
    let known = |name: &str| config.providers.contains_key(name);
    let names = || config.provider_names().join(", ");
    let defaults = [
        ("default_provider", &config.default_provider),
        (
            "anthropic_default_provider",
            &config.anthropic_default_provider,
        ),
    ];
    for (key, default) in defaults {
        if let Some(p) = default {
            if !known(p) {
                return Err(invalid(
                    key,
                    format!(
                        "`{p}` is not a configured provider; configured: {}",
                        names()
                    ),
                ));
            }
        }
    }
    for (model, provider) in &config.models {
        let key = format!("models.\"{model}\"");
        if model.is_empty() || model.trim() != model {
            return Err(invalid(
                key,
                "a model name must be non-empty, without spaces around",
            ));
        }
        if !known(provider) {
            return Err(invalid(
                key,
                format!(
                    "`{provider}` is not a configured provider; configured: {}",
                    names()
                ),
            ));
        }
    }
    for (name, p) in &config.providers {
        if let Some(bad) = p
            .models
            .iter()
            .find(|m| m.is_empty() || m.trim() != m.as_str())
        {
            return Err(invalid(
                format!("providers.{name}.models"),
                format!("`{bad}` is not a model name (non-empty, without spaces around)"),
            ));
        }
    }
    Ok(())
}

fn parse_toml(text: &str, origin: &str) -> Result<RawConfig, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: origin.to_owned(),
        message: e.to_string(),
    })
}

fn parse_mode(mode: &str) -> Result<u32, ConfigError> {
    let digits = mode.trim_start_matches("0o");
    u32::from_str_radix(digits, 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| {
            invalid(
                "socket_mode",
                format!("`{mode}` is not an octal mode like \"0660\""),
            )
        })
}

fn parse_tcp(text: &str, allow_remote: bool) -> Result<SocketAddr, ConfigError> {
    let addr: SocketAddr = text.parse().map_err(|_| {
        invalid(
            "tcp",
            format!("`{text}` is not an address like \"127.0.0.1:8787\""),
        )
    })?;
    if !addr.ip().is_loopback() && !allow_remote {
        return Err(invalid(
            "tcp",
            format!(
                "`{addr}` is not a loopback address; promptd has no authentication on TCP, \
                 set allow_remote = true to listen there anyway"
            ),
        ));
    }
    Ok(addr)
}

/// A size like "4MiB" at `key`, or `default` when absent.
pub(crate) fn size_or(key: &str, value: Option<String>, default: u64) -> Result<u64, ConfigError> {
    match value {
        None => Ok(default),
        Some(text) => text
            .parse::<bytesize::ByteSize>()
            .map(|b| b.as_u64())
            .map_err(|e| invalid(key, format!("`{text}` is not a size like \"256MiB\": {e}"))),
    }
}

/// A size at `key` (at least one byte, at most what an address holds), or `default`.
fn positive_size(key: &str, value: Option<String>, default: u64) -> Result<usize, ConfigError> {
    match usize::try_from(size_or(key, value, default)?) {
        Ok(0) => Err(invalid(key, "must be at least 1 byte")),
        Ok(n) => Ok(n),
        Err(_) => Err(invalid(key, "is larger than this machine can address")),
    }
}

/// A duration like "30s" at `key`, or `default` when absent.
pub(crate) fn duration_or(
    key: &str,
    value: Option<String>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match value {
        None => Ok(default),
        Some(text) => humantime::parse_duration(&text)
            .map_err(|e| invalid(key, format!("`{text}` is not a duration like \"30s\": {e}"))),
    }
}

fn check_price(model: &str, p: raw::RawPrice) -> Result<Price, ConfigError> {
    let rates = [Some(p.input), Some(p.output), p.cache_read, p.cache_write];
    if !rates
        .into_iter()
        .flatten()
        .all(|r| r.is_finite() && r >= 0.0)
    {
        return Err(invalid(
            format!("prices.\"{model}\""),
            "input, output, cache_read and cache_write must be non-negative USD per million tokens",
        ));
    }
    Ok(Price {
        input_per_mtok: p.input,
        output_per_mtok: p.output,
        cache_read_per_mtok: p.cache_read,
        cache_write_per_mtok: p.cache_write,
    })
}

fn cache_config(raw: raw::RawCache) -> Result<CacheConfig, ConfigError> {
    let ttl = duration_or("cache.ttl", raw.ttl, DEFAULT_CACHE_TTL)?;
    let max_bytes = size_or("cache.max_bytes", raw.max_bytes, DEFAULT_CACHE_MAX_BYTES)?;
    if max_bytes == 0 {
        return Err(invalid(
            "cache.max_bytes",
            "must be more than 0 bytes (use enabled = false to turn the cache off)",
        ));
    }
    let max_entry_bytes = size_or(
        "cache.max_entry_bytes",
        raw.max_entry_bytes,
        DEFAULT_CACHE_MAX_ENTRY_BYTES,
    )?;
    let page_cache = size_or("cache.page_cache", raw.page_cache, DEFAULT_CACHE_PAGE_CACHE)?;
    if page_cache < 1024 * 1024 {
        return Err(invalid("cache.page_cache", "must be at least 1MiB"));
    }
    Ok(CacheConfig {
        enabled: raw.enabled.unwrap_or(true),
        ttl,
        max_bytes,
        serve_stale_on_error: raw.serve_stale_on_error.unwrap_or(true),
        max_entry_bytes,
        page_cache,
    })
}

fn provider_config(name: &str, raw: RawProvider) -> Result<ProviderConfig, ConfigError> {
    let key = |k: &str| format!("providers.{name}.{k}");
    let kind = match raw.kind.as_str() {
        "openai" => ProviderKind::OpenAi,
        "anthropic" => ProviderKind::Anthropic,
        other => {
            return Err(invalid(
                key("kind"),
                format!("unknown kind `{other}`; expected \"openai\" or \"anthropic\""),
            ))
        }
    };
    let base_url = raw
        .base_url
        .unwrap_or_else(|| kind.default_base_url().to_owned())
        .trim_end_matches('/')
        .to_owned();
    match reqwest::Url::parse(&base_url) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => {}
        _ => {
            return Err(invalid(
                key("base_url"),
                format!("`{base_url}` is not an http(s) URL"),
            ))
        }
    }
    let responses = match (kind, raw.responses) {
        (ProviderKind::Anthropic, Some(true)) => {
            return Err(invalid(
                key("responses"),
                "only an OpenAI-kind provider serves the Responses API",
            ))
        }
        (_, Some(on)) => on,
        // OpenAI's own API serves it; a compatible server says so itself.
        (ProviderKind::OpenAi, None) => {
            reqwest::Url::parse(&base_url).is_ok_and(|url| url.host_str() == Some("api.openai.com"))
        }
        (ProviderKind::Anthropic, None) => false,
    };
    if raw.api_key.is_some() && raw.api_key_env.is_some() {
        return Err(invalid(
            key("api_key"),
            "give either api_key or api_key_env, not both",
        ));
    }
    let (api_key, api_key_source) = match (raw.api_key, raw.api_key_env) {
        (Some(k), _) if k.is_empty() => {
            return Err(invalid(
                key("api_key"),
                "is empty; for a server that takes no key write api_key_env = \"\" instead",
            ))
        }
        (Some(k), _) => (Some(Secret::new(k)), KeySource::Config),
        (None, Some(var)) if var.is_empty() => (None, KeySource::Keyless),
        (None, Some(var)) => {
            let value = std::env::var(&var).ok().filter(|v| !v.is_empty());
            (value.map(Secret::new), KeySource::Env(var))
        }
        (None, None) => (None, KeySource::Undeclared),
    };
    Ok(ProviderConfig {
        kind,
        base_url,
        api_key,
        api_key_source,
        timeout: duration_or(&key("timeout"), raw.timeout, DEFAULT_PROVIDER_TIMEOUT)?,
        connect_timeout: duration_or(
            &key("connect_timeout"),
            raw.connect_timeout,
            DEFAULT_CONNECT_TIMEOUT,
        )?,
        stream_idle_timeout: duration_or(
            &key("stream_idle_timeout"),
            raw.stream_idle_timeout,
            DEFAULT_STREAM_IDLE_TIMEOUT,
        )?,
        max_stream_duration: duration_or(
            &key("max_stream_duration"),
            raw.max_stream_duration,
            DEFAULT_MAX_STREAM_DURATION,
        )?,
        max_concurrent: match raw.max_concurrent {
            Some(0) => return Err(invalid(key("max_concurrent"), "must be at least 1")),
            Some(n) => n,
            None => DEFAULT_MAX_CONCURRENT,
        },
        queue_timeout: duration_or(
            &key("queue_timeout"),
            raw.queue_timeout,
            DEFAULT_QUEUE_TIMEOUT,
        )?,
        max_response_bytes: positive_size(
            &key("max_response_bytes"),
            raw.max_response_bytes,
            DEFAULT_MAX_RESPONSE_BYTES,
        )?,
        max_event_bytes: positive_size(
            &key("max_event_bytes"),
            raw.max_event_bytes,
            DEFAULT_MAX_EVENT_BYTES,
        )?,
        max_retries: raw.max_retries.unwrap_or(DEFAULT_MAX_RETRIES),
        default_max_tokens: raw.default_max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
        responses,
        models: raw.models.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests;
