//! The one HTTP path to an upstream: build the request for the provider's kind, send it with a
//! pooled client, retry connection errors and the statuses that say "not now" (the policy of
//! [`crate::retry`] for a waiting client: 408, 429, 500, 502, 503, 504, 529) with capped backoff,
//! honouring `Retry-After` in seconds or as a date, while no byte has reached the client,
//! enforce timeouts, and hand back either a whole [`Completion`] or an [`UpstreamStream`] of
//! text deltas.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{
    HeaderMap, HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, USER_AGENT,
};
use hyper::{Method, Request, Response, Uri};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::metrics::ProviderMetrics;
use super::{
    anthropic, openai, responses, ChatRequest, Completion, ProviderError, ProviderKind,
    StreamDecoder,
};
use crate::config::{ProviderConfig, Secret};
use crate::model::Wire;
use crate::retry::Backoff;

mod body;
mod count_tokens;
mod embeddings;
mod models;
mod proxy;
mod stream;

use body::{read_body, status_error};
pub use proxy::ProxyEnv;
pub use stream::UpstreamStream;
use stream::{StreamClocks, StreamLimits};

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
/// TCP keepalive on upstream connections: the first probe after 15 s idle, then every 15 s, 3
/// unanswered probes drop it; unacknowledged data drops it after 30 s (reqwest's defaults, kept
/// when the provider path moved off reqwest).
const TCP_KEEPALIVE: Duration = Duration::from_secs(15);
const TCP_KEEPALIVE_RETRIES: u32 = 3;
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(30);

/// The pooled client of a provider's calls: hyper-util's, over TCP or rustls (HTTP/1.1, or
/// HTTP/2 where the server offers it through ALPN). Lighter per call than reqwest's, which wraps
/// this same client in layers (redirects, URL parsing) a provider call does not use.
type HttpClient = hyper_util::client::legacy::Client<HttpsConnector<HttpConnector>, Full<Bytes>>;
/// The pooled client of a provider whose calls go through a proxy (see [`proxy`]).
type ProxiedClient = hyper_util::client::legacy::Client<proxy::ProxyConnector, Full<Bytes>>;

/// A provider's client: direct, or through the proxy the environment named when it was built.
#[derive(Debug, Clone)]
#[allow(
    clippy::large_enum_variant,
    reason = "one per provider, built once; neither variant boxed, no indirection per call"
)]
enum Http {
    Direct(HttpClient),
    Proxied(Proxied),
}

#[derive(Debug, Clone)]
struct Proxied {
    client: ProxiedClient,
    /// The `Proxy-Authorization` of each request (requests in absolute-form to the proxy).
    auth: Option<HeaderValue>,
}

/// The user agent of provider calls (and of a proxy's `CONNECT`).
const USER_AGENT_VALUE: &str = concat!("promptd/", env!("CARGO_PKG_VERSION"));

/// A provider that cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum ProviderSetupError {
    #[error("cannot build its HTTP client: {0}")]
    Client(String),
    #[error("its endpoint is not a URL: {0}")]
    Endpoint(String),
}

/// A configured upstream with its own connection pool.
#[derive(Debug, Clone)]
pub struct Provider {
    name: String,
    config: ProviderConfig,
    http: Http,
    /// Parsed once.
    endpoint: Uri,
    /// `{base_url}/responses`, for a provider that serves the Responses API
    /// ([`ProviderConfig::responses`]).
    responses_endpoint: Option<Uri>,
    /// The headers of a request with the configured key, built once.
    headers: HeaderMap,
    metrics: ProviderMetrics,
    /// One permit per call in flight (`max_concurrent`).
    slots: Arc<tokio::sync::Semaphore>,
}

impl Provider {
    /// Build the provider and its HTTP client (connection pool, HTTP/2 where the server offers
    /// it through ALPN), through the proxy the process's environment names for its base URL,
    /// if any.
    pub fn new(
        name: &str,
        config: ProviderConfig,
        metrics: ProviderMetrics,
    ) -> Result<Self, ProviderSetupError> {
        Self::with_proxy_env(name, config, metrics, &ProxyEnv::from_env())
    }

    /// [`Provider::new`] with the proxy variables of `env`.
    pub fn with_proxy_env(
        name: &str,
        config: ProviderConfig,
        metrics: ProviderMetrics,
        env: &ProxyEnv,
    ) -> Result<Self, ProviderSetupError> {
        let config_slots = config.max_concurrent;
        let endpoint = match config.kind {
            ProviderKind::OpenAi => format!("{}/chat/completions", config.base_url),
            ProviderKind::Anthropic => format!("{}/messages", config.base_url),
        };
        let endpoint = parse_uri(&endpoint).map_err(ProviderSetupError::Endpoint)?;
        let responses_endpoint = (config.responses && config.kind == ProviderKind::OpenAi)
            .then(|| parse_uri(&format!("{}/responses", config.base_url)))
            .transpose()
            .map_err(ProviderSetupError::Endpoint)?;
        let http = match env.intercept(&endpoint) {
            None => Http::Direct(http_client(config.connect_timeout)?),
            Some(via) => {
                tracing::info!(provider = %name, proxy = %via.uri(), "provider calls go through a proxy");
                let (connector, auth) = proxy::connector(
                    &endpoint,
                    &via,
                    tcp_connector(config.connect_timeout),
                    tls_builder,
                    &HeaderValue::from_static(USER_AGENT_VALUE),
                )
                .map_err(ProviderSetupError::Client)?;
                Http::Proxied(Proxied {
                    client: pool_builder().build(connector),
                    auth,
                })
            }
        };
        let headers = headers(config.kind, config.api_key.as_ref());
        Ok(Provider {
            name: name.to_owned(),
            config,
            http,
            endpoint,
            responses_endpoint,
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

    /// The wire `req` is sent in: the provider kind's, or the Responses API's for a call the
    /// Responses door decoded when the provider serves it (forwarded as it came).
    pub fn call_wire(&self, req: &ChatRequest) -> Wire {
        match self.config.kind {
            ProviderKind::Anthropic => Wire::AnthropicMessages,
            ProviderKind::OpenAi
                if self.responses_endpoint.is_some()
                    && req.call.request.wire == Wire::OpenAiResponses
                    && req.call.sent.is_some() =>
            {
                Wire::OpenAiResponses
            }
            ProviderKind::OpenAi => Wire::OpenAiChat,
        }
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
            let body = read_body(response, self.config.max_response_bytes).await?;
            match self.call_wire(req) {
                Wire::AnthropicMessages => anthropic::parse_response(&body),
                Wire::OpenAiResponses => responses::parse_response(&body),
                Wire::OpenAiChat | Wire::Parea => openai::parse_response(&body),
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
        let clocks = StreamClocks {
            first: timeout,
            idle: self.config.stream_idle_timeout,
            max: self.config.max_stream_duration,
        };
        Ok(UpstreamStream::new(
            response.into_body(),
            StreamDecoder::new(
                self.call_wire(req),
                self.config.max_response_bytes,
                req.call.request.wire.sent_as() != Wire::OpenAiChat,
            ),
            clocks,
            StreamLimits {
                event: self.config.max_event_bytes,
            },
            slot,
            self.metrics.clone(),
        ))
    }

    /// Send with retries; `Ok` only for a 2xx answer.
    async fn send(
        &self,
        req: &ChatRequest,
        stream: bool,
        key: Option<&Secret>,
    ) -> Result<Response<Incoming>, ProviderError> {
        let wire = self.call_wire(req);
        let body = super::call_body(req, wire, stream)?;
        let url = match (wire, &self.responses_endpoint) {
            (Wire::OpenAiResponses, Some(url)) => url,
            _ => &self.endpoint,
        };
        self.post_with_retries(url, body, key, &req.forward).await
    }

    /// POST `body` to `url` with the provider's headers (or `key`'s), retrying what
    /// [`ProviderError::is_retryable`] allows up to `max_retries` times; `Ok` only for a 2xx
    /// answer.
    async fn post_with_retries(
        &self,
        url: &Uri,
        body: Bytes,
        key: Option<&Secret>,
        forward: &[(HeaderName, HeaderValue)],
    ) -> Result<Response<Incoming>, ProviderError> {
        let mut headers = match key {
            Some(key) => headers(self.config.kind, Some(key)),
            None => self.headers.clone(),
        };
        for (name, value) in forward {
            headers.insert(name.clone(), value.clone());
        }
        let mut attempt = 0;
        loop {
            let result = self.post_once(url, body.clone(), headers.clone()).await;
            match result {
                Err(err) if err.is_retryable() && attempt < self.config.max_retries => {
                    let Some(wait) = backoff(attempt, &err) else {
                        return Err(err);
                    };
                    if tracing::enabled!(tracing::Level::DEBUG) {
                        // Masked as for anyone: the upstream may quote the key it got.
                        let keys = key.into_iter().chain(self.api_key());
                        let text = crate::config::mask_keys(err.to_string(), keys);
                        let text = crate::redact::urls(&text);
                        tracing::debug!(provider = %self.name, attempt, ?wait, error = %text, "retrying upstream call");
                    }
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
        url: &Uri,
        body: Bytes,
        headers: HeaderMap,
    ) -> Result<Response<Incoming>, ProviderError> {
        let response = self
            .request(Method::POST, url, headers, Full::new(body))
            .await?;
        if response.status().is_success() {
            return Ok(response);
        }
        Err(status_error(self.config.kind, response).await)
    }

    /// One request, no retries; any status is `Ok`. A provider API does not redirect, and a
    /// 3xx is not followed: following one would send the request and its key to wherever
    /// `Location` points; it is answered as an upstream error instead.
    async fn request(
        &self,
        method: Method,
        url: &Uri,
        headers: HeaderMap,
        body: Full<Bytes>,
    ) -> Result<Response<Incoming>, ProviderError> {
        let mut request = Request::new(body);
        *request.method_mut() = method;
        *request.uri_mut() = url.clone();
        *request.headers_mut() = headers;
        let response = match &self.http {
            Http::Direct(client) => client.request(request).await,
            Http::Proxied(proxied) => {
                if let Some(auth) = &proxied.auth {
                    request
                        .headers_mut()
                        .insert(hyper::header::PROXY_AUTHORIZATION, auth.clone());
                }
                proxied.client.request(request).await
            }
        };
        response.map_err(|e| {
            if is_refused(&e) {
                ProviderError::Refused
            } else {
                ProviderError::Unreachable(format!(
                    "error sending request for url ({url}): {}",
                    crate::error_chain(&e)
                ))
            }
        })
    }
}

/// The pooled client of one provider: connect timeout `connect_timeout`, `TCP_NODELAY`, idle
/// connections kept `POOL_IDLE_TIMEOUT`, https checked against the platform's roots.
fn http_client(connect_timeout: Duration) -> Result<HttpClient, ProviderSetupError> {
    let connector = tls_builder()
        .map_err(ProviderSetupError::Client)?
        .enable_all_versions()
        .wrap_connector(tcp_connector(connect_timeout));
    Ok(pool_builder().build(connector))
}

/// The TCP side of a provider's connections.
fn tcp_connector(connect_timeout: Duration) -> HttpConnector {
    let mut tcp = HttpConnector::new();
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    tcp.set_connect_timeout(Some(connect_timeout));
    tcp.set_keepalive(Some(TCP_KEEPALIVE));
    tcp.set_keepalive_interval(Some(TCP_KEEPALIVE));
    tcp.set_keepalive_retries(Some(TCP_KEEPALIVE_RETRIES));
    tcp.set_tcp_user_timeout(Some(TCP_USER_TIMEOUT));
    tcp
}

/// The TLS side: the platform's roots, aws-lc-rs, https or plain http.
fn tls_builder() -> Result<proxy::TlsBuilder, String> {
    Ok(HttpsConnectorBuilder::new()
        .with_provider_and_platform_verifier(rustls::crypto::aws_lc_rs::default_provider())
        .map_err(|e| format!("TLS: {e}"))?
        .https_or_http())
}

/// The pool: idle connections kept `POOL_IDLE_TIMEOUT`.
fn pool_builder() -> hyper_util::client::legacy::Builder {
    let mut builder = hyper_util::client::legacy::Client::builder(TokioExecutor::new());
    builder
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new());
    builder
}

/// `url` as a request target: checked and normalised as a URL (as the config checks a
/// `base_url`), then an http or https URI with a host.
fn parse_uri(url: &str) -> Result<Uri, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("{url}: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") || !parsed.has_host() {
        return Err(format!("{url}: not an http or https URL"));
    }
    parsed
        .as_str()
        .parse::<Uri>()
        .map_err(|e| format!("{url}: {e}"))
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

/// The headers of a call to a provider of `kind` with `key`.
fn headers(kind: ProviderKind, key: Option<&Secret>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
    headers.insert(ACCEPT, HeaderValue::from_static("*/*"));
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A non-2xx answer with `Retry-After: {retry_after}`, as the error `send` retries on.
    async fn error_of(status: u16, retry_after: &str) -> ProviderError {
        let response = hyper::Response::builder()
            .status(status)
            .header("retry-after", retry_after)
            .body(Full::new(Bytes::from_static(
                br#"{"error": {"message": "slow down"}}"#,
            )))
            .expect("response");
        status_error(ProviderKind::OpenAi, response).await
    }

    /// An HTTP date `secs` from now.
    fn http_date_in(secs: i64) -> String {
        (chrono::Utc::now() + chrono::Duration::seconds(secs))
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string()
    }

    /// A provider `p` of OpenAI kind at `base_url` with key `sk-test`, no retries.
    fn provider(base_url: &str) -> Provider {
        let config = crate::config::Config::from_toml(
            &format!(
                "[providers.p]\nkind = \"openai\"\nbase_url = \"{base_url}\"\n\
                 api_key = \"sk-test\"\nmax_retries = 0\n"
            ),
            "t",
            &crate::config::Overrides::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let metrics = crate::telemetry::metrics::Metrics::new().provider("p");
        Provider::new("p", config.providers["p"].clone(), metrics).expect("provider")
    }

    /// A local port nothing listens on.
    fn closed_port() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    }

    #[tokio::test]
    async fn a_refused_connection_is_told_apart() {
        let p = provider(&format!("http://127.0.0.1:{}/v1", closed_port()));
        let err = p
            .post_with_retries(&p.endpoint, Bytes::from_static(b"{}"), None, &[])
            .await
            .expect_err("nothing listens");
        assert!(matches!(err, ProviderError::Refused), "{err:?}");
    }

    /// A server that reads one request head, answers `answer` and closes; the head it read.
    async fn one_shot(answer: &'static [u8]) -> (u16, tokio::task::JoinHandle<String>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.expect("accept");
            let mut head = Vec::new();
            let mut buf = [0; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf).await.expect("read") {
                    0 => break,
                    n => head.extend_from_slice(&buf[..n]),
                }
            }
            conn.write_all(answer).await.expect("write");
            String::from_utf8_lossy(&head).into_owned()
        });
        (port, server)
    }

    #[tokio::test]
    async fn a_call_carries_the_agent_the_key_and_the_body_length() {
        let (port, server) = one_shot(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}",
        )
        .await;
        let p = provider(&format!("http://127.0.0.1:{port}/v1"));
        let response = p
            .post_with_retries(&p.endpoint, Bytes::from_static(b"{\"a\":1}"), None, &[])
            .await
            .expect("a 200");
        assert_eq!(read_body(response, 2).await.expect("body"), "{}");
        let head = server.await.expect("server").to_ascii_lowercase();
        assert!(
            head.starts_with("post /v1/chat/completions http/1.1\r\n"),
            "{head}"
        );
        for line in [
            concat!("user-agent: promptd/", env!("CARGO_PKG_VERSION")),
            "authorization: bearer sk-test",
            "content-type: application/json",
            "content-length: 7",
            &format!("host: 127.0.0.1:{port}"),
        ] {
            assert!(
                head.contains(&format!("\r\n{line}\r\n")),
                "{line} in {head}"
            );
        }
    }

    #[tokio::test]
    async fn a_redirect_is_not_followed() {
        let (port, _server) = one_shot(
            b"HTTP/1.1 307 Temporary Redirect\r\nlocation: http://127.0.0.1:9/\r\n\
              content-length: 0\r\n\r\n",
        )
        .await;
        let p = provider(&format!("http://127.0.0.1:{port}/v1"));
        let err = p
            .post_with_retries(&p.endpoint, Bytes::from_static(b"{}"), None, &[])
            .await
            .expect_err("a 3xx is an error");
        assert!(
            matches!(err, ProviderError::Status { status: 307, .. }),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn https_to_a_plain_tcp_port_fails_with_a_tls_error() {
        use tokio::io::AsyncWriteExt;
        // A plain HTTP server, answering what it takes for a request as soon as it connects.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let _server = tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.expect("accept");
            let answer = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n";
            conn.write_all(answer).await.expect("write");
        });
        let p = provider(&format!("https://127.0.0.1:{port}/v1"));
        let err = p
            .post_with_retries(&p.endpoint, Bytes::from_static(b"{}"), None, &[])
            .await
            .expect_err("no TLS there");
        let ProviderError::Unreachable(message) = &err else {
            panic!("unreachable: {err:?}");
        };
        // "...: client error (Connect): received corrupt message of type InvalidContentType"
        assert!(
            message.starts_with(&format!(
                "error sending request for url (https://127.0.0.1:{port}/v1/chat/completions): \
                 client error (Connect): "
            )),
            "{message}"
        );
    }

    #[tokio::test]
    async fn an_https_provider_behind_a_proxy_opens_a_connect_tunnel_with_the_credentials() {
        let (port, proxy) =
            one_shot(b"HTTP/1.1 407 Proxy Authentication Required\r\ncontent-length: 0\r\n\r\n")
                .await;
        let config = provider("https://api.example.test/v1").config;
        let env = ProxyEnv::from_vars([("HTTPS_PROXY", format!("http://u:pw@127.0.0.1:{port}"))]);
        let metrics = crate::telemetry::metrics::Metrics::new().provider("p");
        let p = Provider::with_proxy_env("p", config, metrics, &env).expect("provider");
        let err = p
            .post_with_retries(&p.endpoint, Bytes::from_static(b"{}"), None, &[])
            .await
            .expect_err("the proxy refuses");
        assert!(matches!(err, ProviderError::Unreachable(_)), "{err:?}");
        let head = proxy.await.expect("proxy").to_ascii_lowercase();
        assert!(
            head.starts_with("connect api.example.test:443 http/1.1\r\n"),
            "{head}"
        );
        assert!(
            head.contains("\r\nproxy-authorization: basic dtpwdw==\r\n"),
            "{head}"
        );
        assert!(
            head.contains(concat!(
                "\r\nuser-agent: promptd/",
                env!("CARGO_PKG_VERSION")
            )),
            "{head}"
        );
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
            error, retry_after, ..
        } = &asked
        else {
            panic!("a status error: {asked:?}");
        };
        assert_eq!(error.message, "slow down");
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
