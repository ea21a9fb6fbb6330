//! The one HTTP path to an upstream: build the request for the provider's kind, send it with a
//! pooled client, retry connection errors and the statuses that say "not now" (the policy of
//! [`crate::retry`] for a waiting client: 408, 429, 500, 502, 503, 504, 529) with capped backoff,
//! honouring `Retry-After` in seconds or as a date, while no byte has reached the client,
//! enforce timeouts, and hand back either a whole [`Completion`] or an [`UpstreamStream`] of
//! text deltas.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE};

use super::metrics::ProviderMetrics;
use super::sse::{SseEvent, SseParser};
use super::{
    anthropic, openai, translated, upstream_error_message, ChatRequest, Completion, Piece,
    ProviderError, ProviderKind, StreamDecoder,
};
use crate::config::{ProviderConfig, Secret};
use crate::retry::{self, Backoff};

mod embeddings;
mod models;

/// The first retry waits about 250 ms, each further one twice as long, none more than 4 s: a
/// client is waiting.
const BACKOFF: Backoff = Backoff {
    first: Duration::from_millis(250),
    cap: Duration::from_secs(4),
};
/// A `Retry-After` longer than this is not waited for: the error goes back to the client.
const RETRY_AFTER_MAX: Duration = Duration::from_secs(10);
/// How long an idle pooled connection to an upstream is kept.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// A provider that cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum ProviderSetupError {
    #[error("cannot build its HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    #[error("its endpoint is not a URL: {0}")]
    Endpoint(String),
}

/// A configured upstream with its own connection pool.
#[derive(Debug, Clone)]
pub struct Provider {
    name: String,
    config: ProviderConfig,
    http: reqwest::Client,
    /// Parsed once: reqwest would parse a string again on every request.
    endpoint: reqwest::Url,
    /// The headers of a request with the configured key, built once.
    headers: HeaderMap,
    metrics: ProviderMetrics,
    /// One permit per call in flight (`max_concurrent`).
    slots: Arc<tokio::sync::Semaphore>,
}

impl Provider {
    /// Build the provider and its HTTP client (connection pool, HTTP/2 where the server offers
    /// it through ALPN).
    pub fn new(
        name: &str,
        config: ProviderConfig,
        metrics: ProviderMetrics,
    ) -> Result<Self, ProviderSetupError> {
        let config_slots = config.max_concurrent;
        let http = reqwest::Client::builder()
            .user_agent(concat!("promptd/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(config.connect_timeout)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .tcp_nodelay(true)
            // A provider API does not redirect. Following one would send the request, and
            // Anthropic's `x-api-key` (which reqwest does not treat as a credential), to
            // wherever `Location` points; a 3xx is answered as an upstream error instead.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let endpoint = match config.kind {
            ProviderKind::OpenAi => format!("{}/chat/completions", config.base_url),
            ProviderKind::Anthropic => format!("{}/messages", config.base_url),
        };
        let endpoint = reqwest::Url::parse(&endpoint)
            .map_err(|e| ProviderSetupError::Endpoint(format!("{endpoint}: {e}")))?;
        let headers = headers(config.kind, config.api_key.as_ref());
        Ok(Provider {
            name: name.to_owned(),
            config,
            http,
            endpoint,
            headers,
            metrics,
            slots: Arc::new(tokio::sync::Semaphore::new(config_slots)),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The kind of API the provider speaks.
    pub fn kind(&self) -> ProviderKind {
        self.config.kind
    }

    /// The configured base URL, e.g. `http://127.0.0.1:11434/v1`.
    pub fn base_url(&self) -> &str {
        &self.config.base_url
    }

    /// The `max_tokens` of an Anthropic request that sets none.
    pub fn default_max_tokens(&self) -> u32 {
        self.config.default_max_tokens
    }

    /// The configured key, when there is one (to mask it in text that leaves the daemon).
    pub fn api_key(&self) -> Option<&Secret> {
        self.config.api_key.as_ref()
    }

    /// A call slot: at once while fewer than `max_concurrent` calls are in flight, else the
    /// first to free within `queue_timeout`, else [`ProviderError::Busy`].
    async fn slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit, ProviderError> {
        let busy = || ProviderError::Busy {
            limit: self.config.max_concurrent,
            waited: self.config.queue_timeout,
        };
        if let Ok(slot) = Arc::clone(&self.slots).try_acquire_owned() {
            return Ok(slot);
        }
        match tokio::time::timeout(
            self.config.queue_timeout,
            Arc::clone(&self.slots).acquire_owned(),
        )
        .await
        {
            Ok(Ok(slot)) => Ok(slot),
            Ok(Err(_)) | Err(_) => {
                self.metrics.error("busy");
                Err(busy())
            }
        }
    }

    /// What to do when a call without a request key would go out with no key (see
    /// [`ProviderConfig::missing_key_remedy`]); `None` when the provider has one or takes none.
    pub fn missing_key_remedy(&self) -> Option<String> {
        self.config.missing_key_remedy(&self.name)
    }

    /// Ask for a whole answer.
    pub async fn complete(
        &self,
        req: &ChatRequest,
        key: Option<&Secret>,
    ) -> Result<Completion, ProviderError> {
        self.metrics.calls.inc();
        let _slot = self.slot().await?;
        let timeout = self.config.timeout;
        let work = async {
            let response = self.send(req, false, key).await?;
            let body = response
                .bytes()
                .await
                .map_err(|e| ProviderError::Unreachable(format!("reading the answer: {e}")))?;
            match (self.config.kind, &req.translated) {
                (ProviderKind::OpenAi, _) => openai::parse_response(&body),
                (ProviderKind::Anthropic, None) => anthropic::parse_response(&body),
                (ProviderKind::Anthropic, Some(_)) => translated::parse_response(&body, &req.model),
            }
        };
        let result = tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| ProviderError::Timeout(timeout))
            .and_then(|r| r);
        if let Err(e) = &result {
            self.metrics.error(e.kind());
        }
        result
    }

    /// Open a stream: returns once the upstream accepted the request (2xx headers). The caller
    /// reads the first delta before committing its own response.
    pub async fn open_stream(
        &self,
        req: &ChatRequest,
        key: Option<&Secret>,
    ) -> Result<UpstreamStream, ProviderError> {
        self.metrics.calls.inc();
        let slot = self.slot().await?;
        let timeout = self.config.timeout;
        let response = tokio::time::timeout(timeout, self.send(req, true, key))
            .await
            .map_err(|_| ProviderError::Timeout(timeout))
            .and_then(|r| r)
            .inspect_err(|e| self.metrics.error(e.kind()))?;
        Ok(UpstreamStream {
            response,
            parser: SseParser::new(),
            pending: VecDeque::new(),
            ready: VecDeque::new(),
            decoder: StreamDecoder::for_request(self.config.kind, req),
            idle_timeout: self.config.stream_idle_timeout,
            first_timeout: Some(timeout),
            cut_at: tokio::time::Instant::now() + self.config.max_stream_duration,
            _slot: slot,
            max_duration: self.config.max_stream_duration,
            finished: false,
            metrics: self.metrics.clone(),
        })
    }

    /// Send with retries; `Ok` only for a 2xx answer.
    async fn send(
        &self,
        req: &ChatRequest,
        stream: bool,
        key: Option<&Secret>,
    ) -> Result<reqwest::Response, ProviderError> {
        let body = match (self.config.kind, &req.translated) {
            (ProviderKind::OpenAi, _) => serde_json::to_vec(&openai::request_body(req, stream)),
            (ProviderKind::Anthropic, Some(translated)) => {
                let mut body = translated.clone();
                if stream {
                    body["stream"] = serde_json::Value::Bool(true);
                }
                serde_json::to_vec(&body)
            }
            (ProviderKind::Anthropic, None) => serde_json::to_vec(&anthropic::request_body(
                req,
                stream,
                self.config.default_max_tokens,
            )),
        };
        let body = Bytes::from(body.map_err(|e| ProviderError::Protocol(e.to_string()))?);
        self.post_with_retries(&self.endpoint, body, key).await
    }

    /// POST `body` to `url` with the provider's headers (or `key`'s), retrying what
    /// [`ProviderError::is_retryable`] allows up to `max_retries` times; `Ok` only for a 2xx
    /// answer.
    async fn post_with_retries(
        &self,
        url: &reqwest::Url,
        body: Bytes,
        key: Option<&Secret>,
    ) -> Result<reqwest::Response, ProviderError> {
        let headers = match key {
            Some(key) => headers(self.config.kind, Some(key)),
            None => self.headers.clone(),
        };
        let mut attempt = 0;
        loop {
            let result = self.post_once(url, body.clone(), headers.clone()).await;
            match result {
                Err(err) if err.is_retryable() && attempt < self.config.max_retries => {
                    let Some(wait) = backoff(attempt, &err) else {
                        return Err(err);
                    };
                    tracing::debug!(provider = %self.name, attempt, ?wait, error = %err, "retrying upstream call");
                    self.metrics.retries.inc();
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn post_once(
        &self,
        url: &reqwest::Url,
        body: Bytes,
        headers: HeaderMap,
    ) -> Result<reqwest::Response, ProviderError> {
        let response = self
            .http
            .post(url.clone())
            .headers(headers)
            .body(body)
            .send()
            .await
            .map_err(|e| {
                if is_refused(&e) {
                    ProviderError::Refused
                } else {
                    ProviderError::Unreachable(crate::error_chain(&e))
                }
            })?;
        if response.status().is_success() {
            return Ok(response);
        }
        Err(status_error(response).await)
    }
}

/// Whether `err` (or one of its causes) is a refused connection: nothing listens there.
fn is_refused(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(err);
    while let Some(e) = cause {
        if e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
        {
            return true;
        }
        cause = e.source();
    }
    false
}

/// The error of a non-2xx answer: its status, the upstream's message, its `Retry-After`.
async fn status_error(response: reqwest::Response) -> ProviderError {
    let status = response.status().as_u16();
    let retry_after = retry::retry_after(response.headers());
    let body = response.bytes().await.unwrap_or_default();
    ProviderError::Status {
        status,
        message: upstream_error_message(&body),
        retry_after,
    }
}

/// The headers of a call to a provider of `kind` with `key`.
fn headers(kind: ProviderKind, key: Option<&Secret>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    match kind {
        ProviderKind::OpenAi => {
            if let Some(v) =
                key.and_then(|k| HeaderValue::from_str(&format!("Bearer {}", k.expose())).ok())
            {
                headers.insert(AUTHORIZATION, sensitive(v));
            }
        }
        ProviderKind::Anthropic => {
            headers.insert(
                "anthropic-version",
                HeaderValue::from_static(anthropic::API_VERSION),
            );
            if let Some(v) = key.and_then(|k| HeaderValue::from_str(k.expose()).ok()) {
                headers.insert("x-api-key", sensitive(v));
            }
        }
    }
    headers
}

fn sensitive(mut value: HeaderValue) -> HeaderValue {
    value.set_sensitive(true);
    value
}

/// The wait before retry number `attempt + 1`, or `None` when the upstream asks for a wait
/// longer than promptd is willing to hold a client.
fn backoff(attempt: u32, err: &ProviderError) -> Option<Duration> {
    if let ProviderError::Status {
        retry_after: Some(wait),
        ..
    } = err
    {
        return (*wait <= RETRY_AFTER_MAX).then_some(*wait);
    }
    Some(BACKOFF.wait(attempt))
}

/// An open upstream stream: yields [`Piece`]s, then the accumulated [`Completion`].
#[derive(Debug)]
pub struct UpstreamStream {
    response: reqwest::Response,
    parser: SseParser,
    pending: VecDeque<SseEvent>,
    /// Pieces decoded and not yet handed on (a translated event can give several).
    ready: VecDeque<Piece>,
    decoder: StreamDecoder,
    idle_timeout: Duration,
    /// Timeout for the first read (the whole provider timeout), then `idle_timeout`.
    first_timeout: Option<Duration>,
    /// When the stream is cut, however lively (`max_stream_duration` after it opened).
    cut_at: tokio::time::Instant,
    max_duration: Duration,
    /// The provider's call slot, held until the stream is dropped.
    _slot: tokio::sync::OwnedSemaphorePermit,
    finished: bool,
    metrics: ProviderMetrics,
}

impl UpstreamStream {
    /// The next piece (an event with text, or an OpenAI chunk); `Ok(None)` once the answer
    /// ended cleanly. A failure after the start (error event, cut connection, idle timeout, a
    /// body that ends too early) is an error.
    pub async fn next_piece(&mut self) -> Result<Option<Piece>, ProviderError> {
        let result = self.read_piece().await;
        if let Err(e) = &result {
            self.metrics.error(e.kind());
        }
        result
    }

    async fn read_piece(&mut self) -> Result<Option<Piece>, ProviderError> {
        loop {
            if let Some(piece) = self.ready.pop_front() {
                return Ok(Some(piece));
            }
            if let Some(event) = self.pending.pop_front() {
                for decoded in self.decoder.on_event(&event)? {
                    if decoded.done {
                        self.finished = true;
                        self.pending.clear();
                    }
                    if decoded.delta.is_some() || decoded.chunk.is_some() {
                        self.ready.push_back(Piece {
                            text: decoded.delta,
                            chunk: decoded.chunk,
                        });
                    }
                }
                continue;
            }
            if self.finished {
                return Ok(None);
            }
            let timeout = self.first_timeout.take().unwrap_or(self.idle_timeout);
            let left = self
                .cut_at
                .saturating_duration_since(tokio::time::Instant::now());
            let mut events = Vec::new();
            match tokio::time::timeout(timeout.min(left), self.response.chunk()).await {
                Err(_) if left <= timeout => {
                    return Err(ProviderError::Stream(format!(
                        "the stream ran over max_stream_duration ({:?}) and was cut",
                        self.max_duration
                    )))
                }
                Err(_) => {
                    return Err(ProviderError::Stream(format!(
                        "no stream event within {timeout:?}"
                    )))
                }
                Ok(Err(e)) => {
                    return Err(ProviderError::Stream(format!(
                        "stream cut: {}",
                        crate::error_chain(&e)
                    )))
                }
                Ok(Ok(Some(bytes))) => self.parser.feed(&bytes, &mut events),
                Ok(Ok(None)) => {
                    self.parser.finish(&mut events);
                    if events.is_empty() {
                        if self.decoder.ended_cleanly() {
                            self.finished = true;
                            return Ok(None);
                        }
                        return Err(ProviderError::Stream(
                            "stream ended before the answer was complete".into(),
                        ));
                    }
                }
            }
            self.pending.extend(events);
        }
    }

    /// The whole answer as accumulated from the stream.
    pub fn into_completion(self) -> Completion {
        self.decoder.into_completion()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A non-2xx answer with `Retry-After: {retry_after}`, as the error `send` retries on.
    async fn error_of(status: u16, retry_after: &str) -> ProviderError {
        let response = hyper::Response::builder()
            .status(status)
            .header("retry-after", retry_after)
            .body(r#"{"error": {"message": "slow down"}}"#)
            .expect("response");
        status_error(reqwest::Response::from(response)).await
    }

    /// An HTTP date `secs` from now.
    fn http_date_in(secs: i64) -> String {
        (chrono::Utc::now() + chrono::Duration::seconds(secs))
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string()
    }

    #[test]
    fn backoff_without_retry_after_grows_to_its_cap() {
        let unreachable = ProviderError::Unreachable("x".into());
        for attempt in 0..20 {
            let wait = backoff(attempt, &unreachable).expect("retry");
            assert!(wait <= BACKOFF.cap, "{attempt}: {wait:?}");
            assert!(wait >= BACKOFF.first / 2, "{attempt}: {wait:?}");
        }
    }

    #[tokio::test]
    async fn retry_after_in_seconds_is_waited_for_unless_too_long_for_a_client() {
        let asked = error_of(429, "2").await;
        assert!(asked.is_retryable());
        assert_eq!(backoff(0, &asked), Some(Duration::from_secs(2)));
        let too_long = error_of(503, "60").await;
        assert_eq!(backoff(0, &too_long), None, "the error goes back at once");
    }

    #[tokio::test]
    async fn retry_after_as_an_http_date_is_waited_for_unless_too_long_for_a_client() {
        let asked = error_of(429, &http_date_in(5)).await;
        let ProviderError::Status {
            message,
            retry_after,
            ..
        } = &asked
        else {
            panic!("a status error: {asked:?}");
        };
        assert_eq!(message, "slow down");
        // The date has whole seconds, and a moment passed since it was written.
        let wait = retry_after.expect("the date is read");
        assert!(
            wait > Duration::from_secs(3) && wait <= Duration::from_secs(5),
            "{wait:?}"
        );
        assert_eq!(backoff(0, &asked), Some(wait));

        let too_long = error_of(503, &http_date_in(60)).await;
        assert_eq!(backoff(0, &too_long), None, "the error goes back at once");
        let past = error_of(503, &http_date_in(-60)).await;
        assert_eq!(backoff(0, &past), Some(Duration::ZERO));
    }
}
