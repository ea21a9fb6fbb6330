//! `[spool]` and `[upstream]`: the raw TOML tables and their validated forms, which the log
//! spool (`logs::SpoolOptions::from_config`), the flusher and the deployments' upstream fetch
//! take.
//!
//! Raw then validated, like [`crate::config`]: the `Raw*` structs refuse unknown keys, the
//! validated structs have every default applied, and every error names its key
//! (`spool.max_bytes`, `upstream.base_url`, ...).

use std::time::Duration;

use serde::Deserialize;

use super::{duration_or, invalid, size_or, ConfigError, Secret};

/// Enough for days of logs at a busy sidecar's rate, small next to a model cache.
pub const DEFAULT_MAX_BYTES: u64 = 256 * 1024 * 1024;
/// Largest completion record: thousands of times a normal one (a few KB), so only records with
/// huge prompts or answers are cut; small enough that one client's huge requests take 1/256 of
/// the default spool each, not all of it (records over it keep a head of each long text, marked).
pub const DEFAULT_MAX_RECORD_BYTES: u64 = 1024 * 1024;
/// The smallest `spool.max_record_bytes`: room for a record's fixed fields and a `truncated`
/// mark for each of its fields.
pub const MIN_RECORD_BYTES: u64 = 16 * 1024;
/// The largest `spool.max_record_bytes`: the spool's frame limit (`logs::entry::MAX_PAYLOAD`,
/// which config cannot name: logs builds on config; a test in `logs::record::cap` ties them).
pub const MAX_RECORD_BYTES: u64 = 64 * 1024 * 1024;
/// Small enough that acknowledged records free disk soon, large enough for few files.
pub const DEFAULT_SEGMENT_BYTES: u64 = 8 * 1024 * 1024;
/// The fsync interval: what a power loss can take of records, and the wait of `POST /trace_log`.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_millis(100);
/// Commit early when this many records queue up: bounds the work of one fsync.
pub const DEFAULT_MAX_BATCH: usize = 4096;
/// Parea's hosted API.
pub const DEFAULT_BASE_URL: &str = "https://api.parea.ai/api/parea/v1";
pub const DEFAULT_API_KEY_ENV: &str = "PAREA_API_KEY";
/// Records read from the spool per round.
pub const DEFAULT_BATCH_SIZE: usize = 100;
/// Concurrent requests to the collector.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 8;
/// One request to the collector, connect to last byte.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// First retry wait; doubles per attempt.
pub const DEFAULT_RETRY_INITIAL: Duration = Duration::from_millis(500);
/// Longest wait between two attempts (also caps `Retry-After`); logs wait, they are not lost.
pub const DEFAULT_RETRY_MAX: Duration = Duration::from_secs(60);

const MIN_SEGMENT_BYTES: u64 = 64 * 1024;
const MAX_SEGMENT_BYTES: u64 = 1024 * 1024 * 1024;

/// The `[spool]` table as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSpool {
    pub max_bytes: Option<String>,
    pub segment_bytes: Option<String>,
    pub flush_interval: Option<String>,
    pub max_batch: Option<usize>,
    pub max_record_bytes: Option<String>,
}

/// The `[upstream]` table as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    /// `""` turns shipping off: records stay in the spool.
    pub base_url: Option<String>,
    pub api_key_env: Option<String>,
    pub api_key: Option<String>,
    pub batch_size: Option<usize>,
    pub max_in_flight: Option<usize>,
    pub timeout: Option<String>,
}

/// Validated `[spool]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolConfig {
    pub max_bytes: u64,
    pub segment_bytes: u64,
    pub flush_interval: Duration,
    pub max_batch: usize,
    /// Largest completion record (`spool.max_record_bytes`); longer texts are cut to a head.
    pub max_record_bytes: u64,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig {
            max_bytes: DEFAULT_MAX_BYTES,
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            flush_interval: DEFAULT_FLUSH_INTERVAL,
            max_batch: DEFAULT_MAX_BATCH,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
        }
    }
}

impl SpoolConfig {
    /// Check `[spool]` (absent table: all defaults).
    pub fn from_raw(raw: Option<RawSpool>) -> Result<SpoolConfig, ConfigError> {
        let raw = raw.unwrap_or_default();
        let config = SpoolConfig {
            max_bytes: size_or("spool.max_bytes", raw.max_bytes, DEFAULT_MAX_BYTES)?,
            segment_bytes: size_or(
                "spool.segment_bytes",
                raw.segment_bytes,
                DEFAULT_SEGMENT_BYTES,
            )?,
            flush_interval: duration_or(
                "spool.flush_interval",
                raw.flush_interval,
                DEFAULT_FLUSH_INTERVAL,
            )?,
            max_batch: raw.max_batch.unwrap_or(DEFAULT_MAX_BATCH),
            max_record_bytes: size_or(
                "spool.max_record_bytes",
                raw.max_record_bytes,
                DEFAULT_MAX_RECORD_BYTES,
            )?,
        };
        if !(MIN_SEGMENT_BYTES..=MAX_SEGMENT_BYTES).contains(&config.segment_bytes) {
            return Err(invalid(
                "spool.segment_bytes",
                "must be between 64KiB and 1GiB",
            ));
        }
        if config.max_bytes < config.segment_bytes {
            return Err(invalid(
                "spool.max_bytes",
                "must be at least spool.segment_bytes (space is freed a segment at a time)",
            ));
        }
        if config.flush_interval.is_zero() || config.flush_interval > Duration::from_secs(10) {
            return Err(invalid(
                "spool.flush_interval",
                "must be between 1ms and 10s (it is how long POST /trace_log waits for disk)",
            ));
        }
        if config.max_batch == 0 {
            return Err(invalid("spool.max_batch", "must be at least 1"));
        }
        let min_record = MIN_RECORD_BYTES;
        let max_record = MAX_RECORD_BYTES.min(config.max_bytes);
        if !(min_record..=max_record).contains(&config.max_record_bytes) {
            return Err(invalid(
                "spool.max_record_bytes",
                format!(
                    "must be between {min_record} bytes and {max_record} (the smaller of 64MiB, \
                     the spool's frame limit, and spool.max_bytes)"
                ),
            ));
        }
        Ok(config)
    }
}

/// Validated `[upstream]`.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// Without a trailing slash; `None` when shipping is off.
    pub base_url: Option<String>,
    pub api_key: Option<Secret>,
    /// Where the key comes from, for status output (`env PAREA_API_KEY (not set)`, `config`).
    pub api_key_source: String,
    pub batch_size: usize,
    pub max_in_flight: usize,
    pub timeout: Duration,
    /// Backoff bounds; not in the file (tests shorten them).
    pub retry_initial: Duration,
    pub retry_max: Duration,
}

impl UpstreamConfig {
    /// Check `[upstream]` (absent table: all defaults), reading the key's variable from the
    /// process environment.
    pub fn from_raw(raw: Option<RawUpstream>) -> Result<UpstreamConfig, ConfigError> {
        Self::from_raw_with_env(raw, |var| std::env::var(var).ok())
    }

    /// [`UpstreamConfig::from_raw`] with the environment given as a function.
    pub fn from_raw_with_env(
        raw: Option<RawUpstream>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<UpstreamConfig, ConfigError> {
        let raw = raw.unwrap_or_default();
        let base_url = match raw.base_url.as_deref().map(str::trim) {
            None => Some(DEFAULT_BASE_URL.to_owned()),
            Some("") => None,
            Some(url) => {
                let url = url.trim_end_matches('/').to_owned();
                match reqwest::Url::parse(&url) {
                    Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => Some(url),
                    _ => {
                        return Err(invalid(
                            "upstream.base_url",
                            format!("`{url}` is not an http(s) URL (\"\" turns shipping off)"),
                        ))
                    }
                }
            }
        };
        if raw.api_key.is_some() && raw.api_key_env.is_some() {
            return Err(invalid(
                "upstream.api_key",
                "give either api_key or api_key_env, not both",
            ));
        }
        let (api_key, api_key_source) = match raw.api_key {
            Some(key) if !key.is_empty() => (Some(Secret::new(key)), "config".to_owned()),
            Some(_) => return Err(invalid("upstream.api_key", "must not be empty")),
            None => {
                let var = raw
                    .api_key_env
                    .unwrap_or_else(|| DEFAULT_API_KEY_ENV.to_owned());
                match env(&var).filter(|v| !v.is_empty()) {
                    Some(v) => (Some(Secret::new(v)), format!("env {var}")),
                    None => (None, format!("env {var} (not set)")),
                }
            }
        };
        let batch_size = raw.batch_size.unwrap_or(DEFAULT_BATCH_SIZE);
        if !(1..=10_000).contains(&batch_size) {
            return Err(invalid(
                "upstream.batch_size",
                "must be between 1 and 10000",
            ));
        }
        let max_in_flight = raw.max_in_flight.unwrap_or(DEFAULT_MAX_IN_FLIGHT);
        if !(1..=1024).contains(&max_in_flight) {
            return Err(invalid(
                "upstream.max_in_flight",
                "must be between 1 and 1024",
            ));
        }
        let timeout = duration_or("upstream.timeout", raw.timeout, DEFAULT_TIMEOUT)?;
        if timeout.is_zero() {
            return Err(invalid("upstream.timeout", "must be more than 0"));
        }
        Ok(UpstreamConfig {
            base_url,
            api_key,
            api_key_source,
            batch_size,
            max_in_flight,
            timeout,
            retry_initial: DEFAULT_RETRY_INITIAL,
            retry_max: DEFAULT_RETRY_MAX,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spool(text: &str) -> Result<SpoolConfig, ConfigError> {
        let raw: RawSpool = toml::from_str(text).map_err(|e| invalid("toml", e.to_string()))?;
        SpoolConfig::from_raw(Some(raw))
    }

    fn upstream(text: &str, env: &[(&str, &str)]) -> Result<UpstreamConfig, ConfigError> {
        let raw: RawUpstream = toml::from_str(text).map_err(|e| invalid("toml", e.to_string()))?;
        UpstreamConfig::from_raw_with_env(Some(raw), |var| {
            env.iter()
                .find(|(k, _)| *k == var)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn defaults() {
        assert_eq!(
            SpoolConfig::from_raw(None).expect("valid"),
            SpoolConfig::default()
        );
        let spool =
            spool("max_bytes = \"256MiB\"\nsegment_bytes = \"8MiB\"\nflush_interval = \"100ms\"")
                .expect("valid");
        assert_eq!(spool, SpoolConfig::default());
        let up = upstream("", &[("PAREA_API_KEY", "pk-1")]).expect("valid");
        assert_eq!(up.base_url.as_deref(), Some(DEFAULT_BASE_URL));
        assert_eq!(up.api_key.as_ref().map(Secret::expose), Some("pk-1"));
        assert_eq!(up.api_key_source, "env PAREA_API_KEY");
        assert_eq!((up.batch_size, up.max_in_flight), (100, 8));
        let none = upstream("base_url = \"\"", &[]).expect("valid");
        assert!(none.base_url.is_none() && none.api_key.is_none());
        assert_eq!(none.api_key_source, "env PAREA_API_KEY (not set)");
    }

    #[test]
    fn errors_name_the_key() {
        let unknown = toml::from_str::<RawSpool>("max_byte = \"1MiB\"").expect_err("unknown key");
        assert!(unknown.to_string().contains("max_byte"), "{unknown}");
        let cases = [
            spool("max_bytes = \"lots\"").map(|_| ()),
            spool("segment_bytes = \"1KiB\"").map(|_| ()),
            spool("max_bytes = \"1MiB\"\nsegment_bytes = \"2MiB\"").map(|_| ()),
            spool("flush_interval = \"0s\"").map(|_| ()),
            spool("max_batch = 0").map(|_| ()),
            spool("max_record_bytes = \"1KiB\"").map(|_| ()),
            upstream("base_url = \"ftp://x\"", &[]).map(|_| ()),
            upstream("api_key = \"a\"\napi_key_env = \"B\"", &[]).map(|_| ()),
            upstream("max_in_flight = 0", &[]).map(|_| ()),
            upstream("timeout = \"soon\"", &[]).map(|_| ()),
        ];
        let keys = [
            "spool.max_bytes",
            "spool.segment_bytes",
            "spool.max_bytes",
            "spool.flush_interval",
            "spool.max_batch",
            "spool.max_record_bytes",
            "upstream.base_url",
            "upstream.api_key",
            "upstream.max_in_flight",
            "upstream.timeout",
        ];
        for (result, key) in cases.into_iter().zip(keys) {
            let err = result.expect_err(key).to_string();
            assert!(err.contains(key), "{key}: {err}");
        }
    }

    #[test]
    fn key_stays_secret() {
        let up = upstream(
            "api_key = \"pk-secret\"\nbase_url = \"http://127.0.0.1:9/x/\"",
            &[],
        )
        .expect("valid");
        assert_eq!(up.base_url.as_deref(), Some("http://127.0.0.1:9/x"));
        assert!(!format!("{up:?}").contains("pk-secret"));
    }
}
