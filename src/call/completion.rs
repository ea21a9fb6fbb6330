//! The completion response body (`CompletionResponse` of Parea's API).

use serde::{Deserialize, Serialize};

/// What `POST /completion` answers. `latency` is in seconds, timestamps are ISO-8601 (UTC),
/// `cost` in USD, `status` `"success"` or `"error"`.
///
/// Parea's wire has no word for why the model stopped: the Parea route renders no finish
/// reason, for a fresh answer or a cached one, whichever provider kind or door made it (nor do
/// `/completion/stream` events). The entry keeps the model's reason for the doors that do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompletionResponse {
    pub inference_id: String,
    pub content: String,
    pub latency: f64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub total_tokens: u64,
    pub cost: f64,
    pub model: String,
    pub provider: String,
    pub cache_hit: bool,
    pub status: String,
    pub start_timestamp: String,
    pub end_timestamp: String,
    pub error: Option<String>,
}
