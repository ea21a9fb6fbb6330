//! Delivery of one entry to the collector: the request (endpoint by entry kind, `x-api-key`,
//! `idempotency-key`), the classification of the answer, and the retry waits.
//!
//! 2xx is sent; transport errors and what [`retry::retryable`] calls worth another try for the
//! backlog ([`Caller::Backlog`]: 408, 429, 5xx, and the redirects, 401, 403 and 404 of a wrong
//! config) are retried without limit, after `Retry-After` when the collector gives one (capped),
//! else after a capped exponential backoff with jitter, cut short by `flush_now`; any other
//! status is a rejection, final.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use reqwest::Method;

use super::status::Shared;
use crate::config::{Secret, UpstreamConfig};
use crate::logs::record::entry::{EntryKind, StoredEntry};
use crate::retry::{self, Backoff, Caller};

/// A `Retry-After` longer than this is cut to it: the collector is asked again by then.
const RETRY_AFTER_CAP: Duration = Duration::from_secs(600);

/// What a send task needs.
pub(super) struct Ctx {
    pub http: reqwest::Client,
    pub base_url: String,
    pub key: Secret,
    pub config: UpstreamConfig,
    pub shared: Arc<Shared>,
    /// Runs first in every send task; tests make it panic.
    #[cfg(test)]
    pub before_send: Option<BeforeSend>,
}

/// A test's hook into the start of a send task.
#[cfg(test)]
pub(super) type BeforeSend = Arc<dyn Fn(&Outgoing) + Send + Sync>;

/// An entry ready to send. Cheap to clone (the body is shared), so the flusher keeps a copy of
/// what each task sends and can send it again if the task panics.
#[derive(Clone)]
pub(super) struct Outgoing {
    pub id: u64,
    pub kind: EntryKind,
    pub trace_id: String,
    /// The request body, JSON.
    pub body: Bytes,
    /// Send tasks that panicked on this entry so far (in this run of the flusher).
    pub panics: u32,
}

impl Outgoing {
    pub fn new(id: u64, entry: StoredEntry) -> Outgoing {
        Outgoing {
            id,
            kind: entry.kind,
            trace_id: entry.trace_id,
            body: Bytes::from(entry.body),
            panics: 0,
        }
    }
}

pub(super) enum Outcome {
    Sent,
    Rejected,
}

/// Send one entry until the collector takes it or refuses it for good.
pub(super) async fn deliver(ctx: Arc<Ctx>, out: Outgoing) -> Outcome {
    #[cfg(test)]
    if let Some(hook) = &ctx.before_send {
        hook(&out);
    }
    let (method, path) = endpoint(out.kind);
    let url = format!("{}/{path}", ctx.base_url);
    // What messages show of it: without credentials a base_url may carry.
    let shown = crate::redact::urls(&url).into_owned();
    let headers = headers(&ctx.key, &idempotency_key(&out.trace_id, out.id));
    let mut attempt: u32 = 0;
    loop {
        let result = ctx
            .http
            .request(method.clone(), &url)
            .headers(headers.clone())
            .body(out.body.clone())
            .send()
            .await;
        let (message, retry_after) = match result {
            Ok(response) if response.status().is_success() => {
                ctx.shared.upstream_answered(true);
                return Outcome::Sent;
            }
            Ok(response) => {
                let status = response.status();
                let retry_after = retry::retry_after(response.headers());
                // A collector may quote the key it got: it is never shown or logged.
                let reason = ctx.key.mask_in(&reason(response).await).into_owned();
                if !retry::retryable(status, Caller::Backlog) {
                    ctx.shared.upstream_answered(false);
                    let text = format!("{method} {shown}: {status}: {reason}");
                    tracing::warn!(spool_id = out.id, trace_id = %out.trace_id, rejection = %text, "log collector rejected an entry; dropping it");
                    ctx.shared.lock().last_rejection = Some(text);
                    return Outcome::Rejected;
                }
                (format!("{method} {shown}: {status}: {reason}"), retry_after)
            }
            Err(e) => {
                let text = format!("{method} {shown}: {}", crate::error_chain(&e));
                (ctx.key.mask_in(&text).into_owned(), None)
            }
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

/// The collector's method and path (under `base_url`) for an entry of `kind`: the route the
/// client (or promptd, for a completion's record) sent it to.
fn endpoint(kind: EntryKind) -> (Method, &'static str) {
    match kind {
        EntryKind::TraceLog => (Method::POST, "trace_log"),
        EntryKind::TraceLogUpdate => (Method::PUT, "trace_log"),
        EntryKind::Feedback => (Method::POST, "feedback"),
        EntryKind::IntegrationLog(integration) => (Method::POST, integration.upstream_path()),
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

/// The collector's reason: an excerpt of its error body.
async fn reason(response: reqwest::Response) -> String {
    crate::error_body_excerpt(&response.bytes().await.unwrap_or_default())
}

/// The wait before retry number `attempt + 1`: the collector's `Retry-After` if it gave one
/// (at most [`RETRY_AFTER_CAP`]), else the backoff from `retry_initial` up to `retry_max`.
pub(super) fn backoff(
    config: &UpstreamConfig,
    attempt: u32,
    retry_after: Option<Duration>,
) -> Duration {
    match retry_after {
        Some(asked) => asked.min(RETRY_AFTER_CAP),
        None => Backoff {
            first: config.retry_initial,
            cap: config.retry_max,
        }
        .wait(attempt),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_follows_the_config_and_honours_retry_after_up_to_a_cap() {
        let config = UpstreamConfig::from_raw_with_env(None, |_| None).expect("defaults");
        for attempt in 0..30 {
            let wait = backoff(&config, attempt, None);
            assert!(wait <= config.retry_max, "{attempt}: {wait:?}");
            assert!(wait >= config.retry_initial / 2, "{attempt}: {wait:?}");
        }
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
    fn idempotency_keys() {
        assert_eq!(idempotency_key("t-1", 42), "t-1-42");
        assert_eq!(idempotency_key("", 42), "42");
    }
}
