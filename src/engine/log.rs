//! One log record per answered completion — fresh, cached, stale, failed or cancelled — built
//! on the request path and written to the spool before the answer's last byte is sent (the
//! spool's append is one `write(2)`; its writer thread fsyncs on the group-commit cadence). So
//! an answer a client received always has its record in the spool file, whatever kills the
//! daemon after. A record is at most `spool.max_record_bytes`: longer texts in it are cut to a
//! head and marked (`logs::record::cap`), never dropped for their size. A full spool drops (and
//! counts) the record rather than waiting.

use std::time::Instant;

use chrono::{DateTime, Utc};

use super::{Engine, Prepared};
use crate::api::{ApiError, CompletionResponse};
use crate::logs::{encode_trace_log_capped, CallConfiguration, Dropped, LogRecord, Spool};
use crate::providers::ChatRequest;
use crate::timestamp::{iso, now_iso};

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

/// Where completion records go: the spool, written before the answer is.
#[derive(Debug)]
pub struct CompletionRecords {
    spool: Spool,
    /// `spool.max_record_bytes`.
    max_record_bytes: usize,
}

impl CompletionRecords {
    pub fn new(spool: Spool, max_record_bytes: u64) -> CompletionRecords {
        CompletionRecords {
            spool,
            max_record_bytes: usize::try_from(max_record_bytes).unwrap_or(usize::MAX),
        }
    }

    /// Encode `record` under the record cap and write it to the spool. A full or closed spool
    /// counts the drop itself; a record cut to fit is worth a line, naming its trace and what
    /// was cut (it is the request's doing, not the disk's).
    fn append<C: serde::Serialize>(&self, record: LogRecord<C>) {
        let trace_id = record.trace_id.clone();
        match encode_trace_log_capped(record, self.max_record_bytes) {
            Ok(entry) => {
                if !entry.truncated.is_empty() {
                    tracing::info!(?trace_id, fields = ?entry.truncated, limit = self.max_record_bytes, "log record over spool.max_record_bytes; long fields cut to a head (marked in `truncated`)");
                }
                if let Err(Dropped::TooLarge) = self.spool.append_detached(&entry.payload) {
                    tracing::warn!(
                        ?trace_id,
                        bytes = entry.payload.len(),
                        "log record over the spool's frame limit; dropped (counted in dropped)"
                    );
                }
            }
            Err(e) => {
                tracing::warn!(?trace_id, error = %e, "log record not spooled")
            }
        }
    }
}

/// The record's `configuration`: the call as the provider got it.
fn configuration<'a>(chat: &'a ChatRequest, provider: &'a str) -> CallConfiguration<'a> {
    CallConfiguration {
        model: &chat.model,
        provider,
        model_params: Some(&chat.params),
        messages: Some(&chat.messages),
        functions: (!chat.functions.is_empty()).then_some(&chat.functions[..]),
        function_call: chat.function_call.as_ref(),
    }
}

impl Engine {
    /// Write the record of an answered completion (`time_to_first_token` for streams) to the
    /// spool. Called before the answer's last byte is sent: once a client has its answer, the
    /// record is in the spool file and outlives a crash of the daemon.
    pub(super) fn log_answer(
        &self,
        prepared: &Prepared,
        response: &CompletionResponse,
        ttft: Option<f64>,
    ) {
        if !prepared.log.sampled_in() {
            return;
        }
        let mut record = LogRecord::from_completion(
            prepared.log.clone(),
            configuration(&prepared.chat, prepared.provider.name()),
            response.clone(),
        );
        record.time_to_first_token = ttft;
        prepared
            .ctx
            .note_in(record.metadata.get_or_insert_with(Default::default));
        self.logs.append(record);
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

    /// Spool the record of a stream whose client went away before its end: what it had been
    /// sent (`content`), the tokens the upstream had reported so far, status `cancelled`.
    pub(super) fn log_cancelled(
        &self,
        prepared: &Prepared,
        content: String,
        (input_tokens, output_tokens): (u64, u64),
        timing: &Timing,
        ttft: f64,
    ) {
        let response = CompletionResponse {
            inference_id: prepared.trace_id.clone(),
            content,
            latency: timing.elapsed(),
            input_tokens,
            output_tokens,
            total_tokens: input_tokens + output_tokens,
            cost: 0.0,
            model: prepared.chat.model.clone(),
            provider: prepared.provider.name().to_owned(),
            cache_hit: false,
            status: "cancelled".to_owned(),
            start_timestamp: iso(timing.start_ts),
            end_timestamp: now_iso(),
            error: Some("the client closed the stream before its end".to_owned()),
        };
        self.log_answer(prepared, &response, Some(ttft));
    }
}
