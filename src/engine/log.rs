//! One log record per prepared completion — fresh, cached, stale, failed or cancelled — by
//! construction ([`Record`]), built on the request path and written to the spool before the answer's last byte is sent (the
//! spool's append is a copy into the page cache; its writer thread fsyncs on the group-commit cadence). So
//! an answer a client received always has its record in the spool file, whatever kills the
//! daemon after. A record is at most `spool.max_record_bytes`: longer texts in it are cut to a
//! head and marked (`logs::record::cap`), never dropped for their size. A full spool drops (and
//! counts) the record rather than waiting.

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};

use super::{Engine, Prepared};
use crate::call::{ApiError, CompletionResponse};
use crate::logs::{CallConfiguration, CompletionRecord, Dropped, NoteValue, Spool};
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
    fn append(&self, record: &CompletionRecord<'_>) {
        let trace_id = &record.log.trace_id;
        match record.encode_capped(self.max_record_bytes) {
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
        model: chat.model(),
        provider,
        request: Some(&chat.call.request),
    }
}

/// The record phase of one prepared completion: its one log record, written by whichever of
/// [`answered`](Record::answered), [`failed`](Record::failed) or
/// [`cancelled`](Record::cancelled) ends the request — each takes the `Record` by value — or,
/// when the request is dropped before any of them (its client went away while it waited), by
/// `Drop`, as `cancelled` with nothing sent. So every request that got past its preparation
/// writes exactly one record, by construction.
pub(super) struct Record {
    engine: Arc<Engine>,
    prepared: Prepared,
    timing: Timing,
    /// Seconds to the first piece, for streams.
    ttft: Option<f64>,
    written: bool,
}

impl Record {
    pub(super) fn new(engine: &Arc<Engine>, prepared: Prepared, timing: Timing) -> Record {
        Record {
            engine: Arc::clone(engine),
            prepared,
            timing,
            ttft: None,
            written: false,
        }
    }

    /// The request the record is of.
    pub(super) fn prepared(&self) -> &Prepared {
        &self.prepared
    }

    /// When the request started.
    pub(super) fn timing(&self) -> &Timing {
        &self.timing
    }

    /// The stream's first piece arrived now: its time to first token.
    pub(super) fn first_piece(&mut self) -> f64 {
        let ttft = self.timing.elapsed();
        self.ttft = Some(ttft);
        ttft
    }

    /// The request was answered (a fresh, cached or stale answer). Written before the answer's
    /// last byte is sent: once a client has its answer, the record is in the spool file and
    /// outlives a crash of the daemon.
    pub(super) fn answered(mut self, response: &CompletionResponse) {
        self.write(response);
    }

    /// The request failed at the provider (before or after its stream started).
    pub(super) fn failed(mut self, err: &ApiError) {
        let response = self.response(String::new(), (0, 0), "error", err.to_string());
        self.write(&response);
    }

    /// The client went away before the end: what it had been sent (`content`) and the tokens
    /// the upstream had reported so far.
    pub(super) fn cancelled(mut self, content: String, tokens: (u64, u64)) {
        let why = "the client closed the stream before its end".to_owned();
        let response = self.response(content, tokens, "cancelled", why);
        self.write(&response);
    }

    fn response(
        &self,
        content: String,
        (input_tokens, output_tokens): (u64, u64),
        status: &str,
        error: String,
    ) -> CompletionResponse {
        let prepared = &self.prepared;
        CompletionResponse {
            inference_id: prepared.trace_id.clone(),
            content,
            latency: self.timing.elapsed(),
            input_tokens,
            output_tokens,
            total_tokens: input_tokens + output_tokens,
            cost: 0.0,
            model: prepared.chat.model().to_owned(),
            provider: prepared.provider.name().to_owned(),
            cache_hit: false,
            status: status.to_owned(),
            start_timestamp: iso(self.timing.start_ts),
            end_timestamp: now_iso(),
            error: Some(error),
        }
    }

    fn write(&mut self, response: &CompletionResponse) {
        self.written = true;
        let prepared = &self.prepared;
        if !prepared.log.sampled_in() {
            return;
        }
        let mut notes = prepared.ctx.notes();
        if !prepared.dropped.is_empty() {
            notes.add("promptd_dropped", NoteValue::List(&prepared.dropped));
        }
        self.engine.logs.append(&CompletionRecord {
            log: &prepared.log,
            configuration: configuration(&prepared.chat, prepared.provider.name()),
            response,
            time_to_first_token: self.ttft,
            notes: &notes,
        });
    }
}

/// A request dropped before its end: its client went away while it waited (or the daemon's
/// drain closed the connection).
impl Drop for Record {
    fn drop(&mut self) {
        if !self.written {
            let why = "the request ended before its answer: the client went away, or the \
                       daemon stopped"
                .to_owned();
            let response = self.response(String::new(), (0, 0), "cancelled", why);
            self.write(&response);
        }
    }
}

impl std::fmt::Debug for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Record")
            .field("trace_id", &self.prepared.trace_id)
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}
