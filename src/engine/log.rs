//! One log record per answered completion — fresh, cached, stale or failed — appended to the
//! spool. The request path only enqueues what the record is made of on a bounded queue; a
//! background task builds and encodes the record and appends it to the spool, whose writer
//! commits the batch. A full queue or spool drops (and counts) the record rather than waiting.
//! At shutdown the queue is drained into the spool before the spool's last commit.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

use super::{Engine, Prepared};
use crate::api::{ApiError, CompletionResponse};
use crate::logs::{encode_trace_log, CallConfiguration, CompletionLog, Dropped, LogRecord, Spool};
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

/// Completions whose records wait to be built: beyond this, records are dropped and counted.
const LOG_QUEUE: usize = 16 * 1024;

/// What a record is made of.
#[derive(Debug)]
pub(super) struct PendingLog {
    log: CompletionLog,
    /// What the provider was asked: the record's configuration.
    chat: Arc<ChatRequest>,
    provider: String,
    response: CompletionResponse,
    ttft: Option<f64>,
}

#[derive(Debug)]
pub(super) enum LogMsg {
    Record(Box<PendingLog>),
    /// Everything queued before this is in the spool once it is answered.
    Drain(oneshot::Sender<()>),
}

/// The request side of the log queue.
#[derive(Debug)]
pub struct LogQueue {
    tx: mpsc::Sender<LogMsg>,
    dropped: AtomicU64,
    full_logged: AtomicBool,
}

impl LogQueue {
    /// The queue, and its consumer (for the caller to run) which appends to `spool` and ends
    /// when the queue is dropped, after the records queued before.
    pub fn new(spool: Spool) -> (LogQueue, impl std::future::Future<Output = ()> + Send) {
        let (tx, rx) = mpsc::channel(LOG_QUEUE);
        let queue = LogQueue {
            tx,
            dropped: AtomicU64::new(0),
            full_logged: AtomicBool::new(false),
        };
        (queue, write_records(spool, rx))
    }

    /// Records dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Wait until everything queued so far is appended to the spool.
    pub async fn drain(&self) {
        let (done, drained) = oneshot::channel();
        if self.tx.send(LogMsg::Drain(done)).await.is_ok() {
            let _ = drained.await;
        }
    }
}

/// How long records gather before they are built and appended: waking the writer task once per
/// batch instead of once per record keeps requests from paying a context switch each. It adds
/// at most this much to the crash-loss window of completion records.
const DRAIN_EVERY: Duration = Duration::from_millis(10);

/// Records built between yields to the runtime: a batch (hundreds of records under load) must
/// not hold a worker thread, and the requests queued on it, for milliseconds.
const RECORDS_PER_YIELD: usize = 32;

/// Build and append records in batches. An idle daemon does not wake for this at all: the task
/// waits for a first record, lets more gather for [`DRAIN_EVERY`], then takes all of them.
async fn write_records(spool: Spool, mut rx: mpsc::Receiver<LogMsg>) {
    while let Some(first) = rx.recv().await {
        if matches!(first, LogMsg::Record(_)) {
            tokio::time::sleep(DRAIN_EVERY).await;
        }
        write_record(&spool, first);
        let mut built = 1;
        loop {
            match rx.try_recv() {
                Ok(msg) => write_record(&spool, msg),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => return,
            }
            built += 1;
            if built % RECORDS_PER_YIELD == 0 {
                tokio::task::yield_now().await;
            }
        }
    }
}

fn write_record(spool: &Spool, msg: LogMsg) {
    match msg {
        LogMsg::Record(p) => {
            let PendingLog {
                log,
                chat,
                provider,
                response,
                ttft,
            } = *p;
            let mut record =
                LogRecord::from_completion(log, configuration(&chat, &provider), response);
            record.time_to_first_token = ttft;
            match encode_trace_log(&record) {
                // A full or closed spool counts the drop itself; an oversized record is also
                // worth a line, naming its trace (it is the request's doing, not the disk's).
                Ok(bytes) => {
                    let size = bytes.len();
                    if let Err(Dropped::TooLarge) = spool.append(bytes) {
                        tracing::warn!(trace_id = ?record.trace_id, bytes = size, "log record over the spool's record limit; dropped (counted in dropped)");
                    }
                }
                Err(e) => {
                    tracing::warn!(trace_id = ?record.trace_id, error = %e, "log record not spooled")
                }
            }
        }
        LogMsg::Drain(done) => {
            let _ = done.send(());
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
    /// Queue the record of an answered completion (`time_to_first_token` for streams).
    pub(super) fn log_answer(
        &self,
        prepared: &Prepared,
        response: &CompletionResponse,
        ttft: Option<f64>,
    ) {
        if !prepared.log.sampled_in() {
            return;
        }
        let pending = PendingLog {
            log: prepared.log.clone(),
            chat: Arc::clone(&prepared.chat),
            provider: prepared.provider.name().to_owned(),
            response: response.clone(),
            ttft,
        };
        if self
            .logs
            .tx
            .try_send(LogMsg::Record(Box::new(pending)))
            .is_err()
        {
            self.logs.dropped.fetch_add(1, Ordering::Relaxed);
            if !self.logs.full_logged.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "log queue full: dropping completion records (counted in /logs/status)"
                );
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
