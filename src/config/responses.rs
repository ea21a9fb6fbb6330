//! `[responses]`: what promptd keeps of the answers of its Responses door
//! (`POST /v1/responses`) for `previous_response_id` and `GET /v1/responses/{id}`, and its
//! bounds. The raw table and its validated form; errors name the key (`responses.max_age`).

use std::time::Duration;

use serde::Deserialize;

use super::{duration_or, invalid, size_or, ConfigError};

/// Enough for weeks of an agent's conversations; each a few KB to a few hundred.
pub const DEFAULT_MAX_STORED: u64 = 10_000;
/// Beside the cache's 1 GiB: conversations are re-sent whole each turn, so long chains weigh.
pub const DEFAULT_MAX_STORED_BYTES: u64 = 256 * 1024 * 1024;
/// OpenAI keeps a stored response 30 days.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(30 * 24 * 3600);

/// The `[responses]` table as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawResponses {
    pub enabled: Option<bool>,
    pub max_stored: Option<u64>,
    pub max_stored_bytes: Option<String>,
    pub max_age: Option<String>,
}

/// `[responses]` settings: read at each store, so a reload applies at the next answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponsesConfig {
    /// Keep answers at all (`false`: nothing new is kept; what was kept before ages out).
    pub enabled: bool,
    /// Most responses kept; past it the oldest go first.
    pub max_stored: u64,
    /// Most bytes kept (encoded records); past it the oldest go first. A single response
    /// larger than this is answered, not kept.
    pub max_stored_bytes: u64,
    /// A response older than this is gone (unknown to `previous_response_id` and `GET`).
    pub max_age: Duration,
}

impl Default for ResponsesConfig {
    fn default() -> Self {
        ResponsesConfig {
            enabled: true,
            max_stored: DEFAULT_MAX_STORED,
            max_stored_bytes: DEFAULT_MAX_STORED_BYTES,
            max_age: DEFAULT_MAX_AGE,
        }
    }
}

impl ResponsesConfig {
    pub fn from_raw(raw: Option<RawResponses>) -> Result<ResponsesConfig, ConfigError> {
        let raw = raw.unwrap_or_default();
        let config = ResponsesConfig {
            enabled: raw.enabled.unwrap_or(true),
            max_stored: raw.max_stored.unwrap_or(DEFAULT_MAX_STORED),
            max_stored_bytes: size_or(
                "responses.max_stored_bytes",
                raw.max_stored_bytes,
                DEFAULT_MAX_STORED_BYTES,
            )?,
            max_age: duration_or("responses.max_age", raw.max_age, DEFAULT_MAX_AGE)?,
        };
        if config.max_stored == 0 {
            return Err(invalid(
                "responses.max_stored",
                "must be at least 1 (use enabled = false to keep nothing)",
            ));
        }
        if config.max_stored_bytes == 0 {
            return Err(invalid(
                "responses.max_stored_bytes",
                "must be more than 0 bytes (use enabled = false to keep nothing)",
            ));
        }
        if config.max_age.is_zero() {
            return Err(invalid(
                "responses.max_age",
                "must be more than 0s (use enabled = false to keep nothing)",
            ));
        }
        Ok(config)
    }
}
