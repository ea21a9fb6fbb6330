//! One log record per answered completion — fresh, cached, stale or failed — appended to the
//! spool. The request path only enqueues: the spool's writer commits the batch in the
//! background, and a full spool drops (and counts) the record rather than waiting.

use std::time::Instant;

use chrono::{DateTime, Utc};

use super::{iso, now_iso, Engine, Prepared};
use crate::api::{ApiError, CompletionResponse};
use crate::logs::{LogRecord, SpoolEntry};

/// When a request started, for latency and timestamps.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub started: Instant,
    pub start_ts: DateTime<Utc>,
}

impl Timing {
    pub fn now() -> Timing {
        Timing {
            started: Instant::now(),
            start_ts: Utc::now(),
        }
    }

    /// Seconds since the start.
    pub fn elapsed(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }
}

impl Engine {
    /// Spool the record of an answered completion (`time_to_first_token` for streams).
    pub(super) fn log_answer(
        &self,
        prepared: &Prepared,
        response: &CompletionResponse,
        ttft: Option<f64>,
    ) {
        if !prepared.log.sampled_in() {
            return;
        }
        let mut record = LogRecord::from_completion(&prepared.log, response);
        record.time_to_first_token = ttft;
        match SpoolEntry::TraceLog(Box::new(record)).encode() {
            Ok(bytes) => {
                // A full or closed spool counts the drop itself; the answer does not wait.
                let _ = self.spool.append(bytes);
            }
            Err(e) => {
                tracing::warn!(trace_id = %prepared.trace_id, error = %e, "log record not spooled")
            }
        }
    }

    /// Spool the record of a completion that failed at the provider.
    pub(super) fn log_failure(
        &self,
        prepared: &Prepared,
        err: &ApiError,
        timing: &Timing,
        ttft: Option<f64>,
    ) {
        let response = CompletionResponse {
            inference_id: prepared.trace_id.clone(),
            content: String::new(),
            latency: timing.elapsed(),
            input_tokens: 0,
            output_tokens: 0,
            total_tokens: 0,
            cost: 0.0,
            model: prepared.chat.model.clone(),
            provider: prepared.provider.name().to_owned(),
            cache_hit: false,
            status: "error".to_owned(),
            start_timestamp: iso(timing.start_ts),
            end_timestamp: now_iso(),
            error: Some(err.to_string()),
        };
        self.log_answer(prepared, &response, ttft);
    }
}
