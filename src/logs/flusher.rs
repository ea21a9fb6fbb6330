//! The flusher: ships spooled entries to the collector and acknowledges them.
//!
//! Reads batches from the spool in order and sends each entry to its endpoint under
//! `[upstream] base_url` (`POST /trace_log`, `PUT /trace_log`, `POST /feedback`) with
//! `x-api-key` and an `idempotency-key: {trace_id}-{spool id}` header, stable across resends and
//! restarts. Up to `max_in_flight` requests run at once, but two entries of the same trace never
//! do: an entry waits until the earlier one of its trace is done, so an update never overtakes
//! the record it updates (the entries behind it wait too: order is kept, throughput is not the
//! point when that happens).
//!
//! Outcomes: 2xx is sent; 408, 429, 5xx and transport errors are retried without limit, with
//! capped exponential backoff and jitter, or after `Retry-After` when the collector gives one
//! (logs wait, they are never dropped for being slow); any other status is a rejection,
//! counted, logged with the collector's reason, and acknowledged so it does not block the
//! entries after it. The spool acknowledges only over a contiguous prefix, so a crash while an
//! entry is in flight or retrying means it is sent again (same idempotency key).
//!
//! With no base URL or no API key the flusher does not read the spool at all: records stay on
//! disk (bounded by `[spool] max_bytes`) and [`FlusherStats::state`] says why.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use rand::Rng;
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use tokio::sync::Notify;
use tokio::task::{Id as TaskId, JoinSet};

use super::config::UpstreamConfig;
use super::entry::{EntryKind, StoredEntry};
use super::spool::{Spool, SpoolError, SpoolRecord};
use crate::config::Secret;

/// A `Retry-After` longer than this is cut to it: the collector is asked again by then.
const RETRY_AFTER_CAP: Duration = Duration::from_secs(600);
/// Wait after a failed spool read before trying again.
const READ_ERROR_PAUSE: Duration = Duration::from_secs(1);
/// Longest reason text kept from a collector's error body.
const REASON_MAX: usize = 300;

/// Whether the flusher ships anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlusherState {
    /// Not started yet.
    Idle,
    Running,
    /// Not shipping; records stay in the spool. The reason says what to configure.
    Disabled {
        reason: String,
    },
    Stopped,
}

/// The last failed attempt to reach the collector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamError {
    pub message: String,
    pub at: SystemTime,
}

/// Counters since the flusher started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlusherStats {
    pub state: FlusherState,
    /// Entries the collector accepted (2xx).
    pub sent: u64,
    /// Entries the collector refused for good (4xx other than 408/429), acknowledged anyway.
    pub rejected: u64,
    /// Attempts that failed in a retryable way and were tried again.
    pub retries: u64,
    /// Payloads that did not decode (unknown format version, damage), skipped and acknowledged.
    pub undecodable: u64,
    pub in_flight: u64,
    pub last_error: Option<UpstreamError>,
    /// The last rejection: status and the collector's reason.
    pub last_rejection: Option<String>,
}

/// A cheap handle for status and `promptd logs flush`.
#[derive(Clone)]
pub struct FlusherHandle {
    shared: Arc<Shared>,
    spool: Spool,
}

impl FlusherHandle {
    pub fn stats(&self) -> FlusherStats {
        let s = &self.shared;
        let guarded = s.lock();
        FlusherStats {
            state: guarded.state.clone(),
            sent: s.sent.load(Ordering::Relaxed),
            rejected: s.rejected.load(Ordering::Relaxed),
            retries: s.retries.load(Ordering::Relaxed),
            undecodable: s.undecodable.load(Ordering::Relaxed),
            in_flight: s.in_flight.load(Ordering::Relaxed),
            last_error: guarded.last_error.clone(),
            last_rejection: guarded.last_rejection.clone(),
        }
    }

    /// Commit the spool's queue now and cut every retry wait short.
    pub fn flush_now(&self) {
        self.spool.flush_now();
        self.shared.wake.notify_waiters();
    }
}

#[derive(Default)]
struct Shared {
    sent: AtomicU64,
    rejected: AtomicU64,
    retries: AtomicU64,
    undecodable: AtomicU64,
    in_flight: AtomicU64,
    /// The collector is failing: log the next success, and failures only at debug.
    failing: AtomicBool,
    wake: Notify,
    guarded: Mutex<Guarded>,
}

struct Guarded {
    state: FlusherState,
    last_error: Option<UpstreamError>,
    last_rejection: Option<String>,
}

impl Default for Guarded {
    fn default() -> Self {
        Guarded {
            state: FlusherState::Idle,
            last_error: None,
            last_rejection: None,
        }
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Guarded> {
        self.guarded.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set_state(&self, state: FlusherState) {
        self.lock().state = state;
    }

    fn upstream_failed(&self, message: String) {
        if !self.failing.swap(true, Ordering::Relaxed) {
            tracing::warn!(error = %message, "log collector failing; retrying with backoff");
        } else {
            tracing::debug!(error = %message, "log collector still failing");
        }
        self.lock().last_error = Some(UpstreamError {
            message,
            at: SystemTime::now(),
        });
    }

    fn upstream_ok(&self) {
        if self.failing.swap(false, Ordering::Relaxed) {
            tracing::info!("log collector reachable again");
        }
    }
}

/// A flusher could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTP client for the log collector: {0}")]
pub struct FlusherError(String);

/// Ships one spool's entries; run it with [`Flusher::run`].
pub struct Flusher {
    spool: Spool,
    config: UpstreamConfig,
    http: reqwest::Client,
    shared: Arc<Shared>,
}

/// What a send task needs.
struct Ctx {
    http: reqwest::Client,
    base_url: String,
    key: Secret,
    config: UpstreamConfig,
    shared: Arc<Shared>,
}

/// An entry ready to send.
struct Outgoing {
    id: u64,
    entry: StoredEntry,
}

enum Outcome {
    Sent,
    Rejected,
}

impl Flusher {
    /// A flusher for `spool` with `config`; nothing runs until [`Flusher::run`].
    pub fn new(spool: Spool, config: UpstreamConfig) -> Result<Flusher, FlusherError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("promptd/", env!("CARGO_PKG_VERSION")))
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .pool_idle_timeout(Duration::from_secs(90))
            .build()
            .map_err(|e| FlusherError(crate::error_chain(&e)))?;
        Ok(Flusher {
            spool,
            config,
            http,
            shared: Arc::new(Shared::default()),
        })
    }

    pub fn handle(&self) -> FlusherHandle {
        FlusherHandle {
            shared: self.shared.clone(),
            spool: self.spool.clone(),
        }
    }

    /// Ship until `shutdown` completes (or the spool closes). Entries in flight at shutdown are
    /// abandoned unacknowledged: they are sent again after the next start.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let shared = self.shared.clone();
        let (base_url, key) = match (&self.config.base_url, &self.config.api_key) {
            (Some(url), Some(key)) => (url.clone(), key.clone()),
            (None, _) => {
                let reason =
                    "shipping is off ([upstream] base_url = \"\"); records stay in the spool"
                        .to_owned();
                return disabled(&shared, reason, shutdown).await;
            }
            (Some(_), None) => {
                let reason = format!(
                    "no API key for the log collector ({}); records stay in the spool",
                    self.config.api_key_source
                );
                return disabled(&shared, reason, shutdown).await;
            }
        };
        shared.set_state(FlusherState::Running);
        // Whatever an earlier consumer was handed but did not acknowledge is ours to send.
        self.spool.rewind().await;
        let ctx = Arc::new(Ctx {
            http: self.http,
            base_url,
            key,
            config: self.config,
            shared: shared.clone(),
        });
        Dispatcher {
            spool: self.spool,
            ctx,
            queue: VecDeque::new(),
            tasks: JoinSet::new(),
            running: HashMap::new(),
            busy: HashSet::new(),
        }
        .run(shutdown)
        .await;
        shared.in_flight.store(0, Ordering::Relaxed);
        shared.set_state(FlusherState::Stopped);
    }
}

async fn disabled(shared: &Shared, reason: String, shutdown: impl Future<Output = ()>) {
    tracing::warn!(%reason, "log flusher not shipping");
    shared.set_state(FlusherState::Disabled { reason });
    shutdown.await;
    shared.set_state(FlusherState::Stopped);
}

/// The dispatch loop's state.
struct Dispatcher {
    spool: Spool,
    ctx: Arc<Ctx>,
    /// Read from the spool, not yet sent; in spool order.
    queue: VecDeque<Outgoing>,
    tasks: JoinSet<Outcome>,
    /// Task -> (spool id, trace id) of what it sends.
    running: HashMap<TaskId, (u64, String)>,
    /// Traces with an entry in flight.
    busy: HashSet<String>,
}

impl Dispatcher {
    async fn run(mut self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let batch_size = self.ctx.config.batch_size;
        loop {
            self.dispatch();
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                Some(done) = self.tasks.join_next_with_id(), if !self.tasks.is_empty() => {
                    self.finished(done);
                }
                read = self.spool.read_batch(batch_size), if self.queue.is_empty() => {
                    match read {
                        Ok(records) => self.enqueue(records),
                        Err(SpoolError::Closed) => break,
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot read the log spool; trying again");
                            tokio::time::sleep(READ_ERROR_PAUSE).await;
                        }
                    }
                }
            }
        }
        self.tasks.abort_all();
    }

    /// Start what may start: in order, while there is room and the front's trace is free.
    fn dispatch(&mut self) {
        while self.tasks.len() < self.ctx.config.max_in_flight {
            let Some(front) = self.queue.front() else {
                break;
            };
            let trace = &front.entry.trace_id;
            if !trace.is_empty() && self.busy.contains(trace) {
                break;
            }
            let Some(out) = self.queue.pop_front() else {
                break;
            };
            let trace = out.entry.trace_id.clone();
            if !trace.is_empty() {
                self.busy.insert(trace.clone());
            }
            let id = out.id;
            let handle = self.tasks.spawn(deliver(self.ctx.clone(), out));
            self.running.insert(handle.id(), (id, trace));
        }
        self.ctx
            .shared
            .in_flight
            .store(self.tasks.len() as u64, Ordering::Relaxed);
    }

    fn enqueue(&mut self, records: Vec<SpoolRecord>) {
        for SpoolRecord { id, payload } in records {
            match StoredEntry::decode(&payload) {
                Ok(entry) => self.queue.push_back(Outgoing { id, entry }),
                Err(e) => {
                    tracing::warn!(spool_id = id, error = %e, "skipping a log spool entry that does not decode");
                    self.ctx.shared.undecodable.fetch_add(1, Ordering::Relaxed);
                    self.spool.ack(id);
                }
            }
        }
    }

    fn finished(&mut self, done: Result<(TaskId, Outcome), tokio::task::JoinError>) {
        let task = match &done {
            Ok((task, _)) => *task,
            Err(e) => e.id(),
        };
        let Some((id, trace)) = self.running.remove(&task) else {
            return;
        };
        self.busy.remove(&trace);
        let shared = &self.ctx.shared;
        match done {
            Ok((_, Outcome::Sent)) => {
                shared.sent.fetch_add(1, Ordering::Relaxed);
                self.spool.ack(id);
            }
            Ok((_, Outcome::Rejected)) => {
                shared.rejected.fetch_add(1, Ordering::Relaxed);
                self.spool.ack(id);
            }
            Err(e) => {
                // Not acknowledged: the entry comes again after a restart.
                tracing::error!(spool_id = id, error = %e, "log send task failed");
            }
        }
    }
}

/// Send one entry until the collector takes it or refuses it for good.
async fn deliver(ctx: Arc<Ctx>, out: Outgoing) -> Outcome {
    let (method, path) = match out.entry.kind {
        EntryKind::TraceLog => (Method::POST, "trace_log"),
        EntryKind::TraceLogUpdate => (Method::PUT, "trace_log"),
        EntryKind::Feedback => (Method::POST, "feedback"),
    };
    let url = format!("{}/{path}", ctx.base_url);
    let headers = headers(&ctx.key, &idempotency_key(&out.entry.trace_id, out.id));
    let body = Bytes::from(out.entry.body);
    let mut attempt: u32 = 0;
    loop {
        let result = ctx
            .http
            .request(method.clone(), &url)
            .headers(headers.clone())
            .body(body.clone())
            .send()
            .await;
        let (message, retry_after) = match result {
            Ok(response) if response.status().is_success() => {
                ctx.shared.upstream_ok();
                return Outcome::Sent;
            }
            Ok(response) => {
                let status = response.status();
                let retry_after = retry_after(response.headers());
                let reason = reason(response).await;
                if !retryable(status) {
                    ctx.shared.upstream_ok();
                    let text = format!("{method} {url}: {status}: {reason}");
                    tracing::warn!(spool_id = out.id, trace_id = %out.entry.trace_id, rejection = %text, "log collector rejected an entry; dropping it");
                    ctx.shared.lock().last_rejection = Some(text);
                    return Outcome::Rejected;
                }
                (format!("{method} {url}: {status}: {reason}"), retry_after)
            }
            Err(e) => (format!("{method} {url}: {}", crate::error_chain(&e)), None),
        };
        ctx.shared.upstream_failed(message);
        ctx.shared.retries.fetch_add(1, Ordering::Relaxed);
        let wait = backoff(&ctx.config, attempt, retry_after);
        attempt = attempt.saturating_add(1);
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = ctx.shared.wake.notified() => {}
        }
    }
}

/// `{trace_id}-{spool id}` (just the spool id for an entry without a trace).
pub fn idempotency_key(trace_id: &str, spool_id: u64) -> String {
    if trace_id.is_empty() {
        spool_id.to_string()
    } else {
        format!("{trace_id}-{spool_id}")
    }
}

fn headers(key: &Secret, idempotency: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(mut value) = HeaderValue::from_str(key.expose()) {
        value.set_sensitive(true);
        headers.insert("x-api-key", value);
    }
    if let Ok(value) = HeaderValue::from_str(idempotency) {
        headers.insert("idempotency-key", value);
    }
    headers
}

fn retryable(status: StatusCode) -> bool {
    status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
}

/// `Retry-After` as seconds or an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = text.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(text).ok()?;
    let wait = at.signed_duration_since(chrono::Utc::now());
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// The collector's reason: its error body, shortened.
async fn reason(response: reqwest::Response) -> String {
    let body = response.bytes().await.unwrap_or_default();
    let text = String::from_utf8_lossy(&body);
    let text = text.trim();
    if text.chars().count() > REASON_MAX {
        format!("{}...", text.chars().take(REASON_MAX).collect::<String>())
    } else if text.is_empty() {
        "(no body)".to_owned()
    } else {
        text.to_owned()
    }
}

/// The wait before retry number `attempt + 1`: the collector's `Retry-After` if it gave one,
/// else `retry_initial * 2^attempt` capped at `retry_max`, with jitter (half to all of it).
fn backoff(config: &UpstreamConfig, attempt: u32, retry_after: Option<Duration>) -> Duration {
    if let Some(wait) = retry_after {
        return wait.min(RETRY_AFTER_CAP);
    }
    let exp = config
        .retry_initial
        .saturating_mul(1 << attempt.min(20))
        .min(config.retry_max);
    exp.mul_f64(rand::rng().random_range(0.5..=1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_honours_retry_after() {
        let config = UpstreamConfig::from_raw_with_env(None, |_| None).expect("defaults");
        let mut last_cap = Duration::ZERO;
        for attempt in 0..30 {
            let wait = backoff(&config, attempt, None);
            assert!(wait <= config.retry_max, "{attempt}: {wait:?}");
            assert!(wait >= config.retry_initial / 2, "{attempt}: {wait:?}");
            last_cap = last_cap.max(wait);
        }
        assert!(last_cap > config.retry_max / 2);
        assert_eq!(
            backoff(&config, 0, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        assert_eq!(
            backoff(&config, 0, Some(Duration::from_secs(99_999))),
            RETRY_AFTER_CAP
        );
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("2"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(
            retry_after(&headers),
            Some(Duration::ZERO),
            "a date in the past"
        );
        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn which_statuses_are_retried() {
        for code in [408, 429, 500, 502, 503, 529] {
            assert!(
                retryable(StatusCode::from_u16(code).expect("status")),
                "{code}"
            );
        }
        for code in [400, 401, 403, 404, 409, 413, 422] {
            assert!(
                !retryable(StatusCode::from_u16(code).expect("status")),
                "{code}"
            );
        }
        assert_eq!(idempotency_key("t-1", 42), "t-1-42");
        assert_eq!(idempotency_key("", 42), "42");
    }
}
