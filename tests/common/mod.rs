//! Test harness: the real daemon (`promptd::daemon::run`) on a socket in a temp dir, with a real state
//! directory, driven over real HTTP; fake providers from [`fake_upstream`].

#![allow(dead_code)]

pub mod external;
pub mod fake_upstream;
pub mod forward_proxy;
pub mod process;
pub mod spool;
pub mod wait;

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::{HeaderMap, Method, StatusCode};
use promptd::client::DaemonClient;
use promptd::config::{Config, Overrides};
use promptd::{Listeners, StartupError};
use serde_json::Value;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const PREFIX: &str = "/api/parea/v1";

/// Provider tables pointing at fake upstreams (no retries, short timeouts, fixed test keys).
pub fn providers_toml(openai_url: &str, anthropic_url: &str) -> String {
    format!(
        r#"
[providers.openai]
kind = "openai"
base_url = "{openai_url}"
api_key = "sk-test-openai"
max_retries = 0
timeout = "5s"

[providers.anthropic]
kind = "anthropic"
base_url = "{anthropic_url}"
api_key = "sk-ant-test"
max_retries = 0
timeout = "5s"
"#
    )
}

/// A running in-process daemon.
pub struct TestDaemon {
    pub dir: TempDir,
    pub socket: PathBuf,
    pub client: DaemonClient,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<Result<(), StartupError>>>,
}

/// A whole response.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// `error.type` of a JSON error body.
    pub fn error_type(&self) -> String {
        self.json()["error"]["type"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub fn error_message(&self) -> String {
        self.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

/// The status code of a response head (`HTTP/1.1 200 OK`), 0 if it has none.
pub fn status_in(head: &str) -> u16 {
    head.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// The value of header `name` (any case) in a response head.
pub fn header_in<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

/// A response read off a raw connection, with its chunked body kept chunk by chunk.
#[derive(Debug)]
pub struct RawResponse {
    pub head: String,
    pub chunks: Vec<Vec<u8>>,
}

impl RawResponse {
    pub fn status(&self) -> u16 {
        status_in(&self.head)
    }

    /// The value of header `name` (any case), if the head has it.
    pub fn header(&self, name: &str) -> Option<&str> {
        header_in(&self.head, name)
    }

    pub fn chunk_strings(&self) -> Vec<String> {
        self.chunks
            .iter()
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect()
    }
}

impl TestDaemon {
    /// Start a daemon whose config is `toml` plus a socket and state dir in a fresh temp dir.
    pub async fn start(toml: &str) -> TestDaemon {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_in(dir, toml).await
    }

    /// Start a daemon in `dir` (reused across restarts).
    pub async fn start_in(dir: TempDir, toml: &str) -> TestDaemon {
        let socket = dir.path().join("promptd.sock");
        let overrides = Overrides {
            socket: Some(socket.clone()),
            state_dir: Some(dir.path().join("state")),
            prompts_dir: Some(dir.path().join("prompts")),
            tcp: None,
        };
        let config =
            Config::from_toml(toml, "test config", &overrides).expect("test config is valid");
        Self::start_with(dir, config).await
    }

    /// Start a daemon from `toml` that also listens on loopback TCP and asks its clients there
    /// for `tcp_key` (`Authorization: Bearer KEY` or `x-api-key: KEY`); with the listener's URL,
    /// `http://127.0.0.1:PORT`.
    pub async fn start_tcp(toml: &str, tcp_key: &str) -> (TestDaemon, String) {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let overrides = Overrides {
            socket: Some(dir.path().join("promptd.sock")),
            tcp: Some(format!("127.0.0.1:{port}")),
            state_dir: Some(dir.path().join("state")),
            prompts_dir: Some(dir.path().join("prompts")),
        };
        let mut config =
            Config::from_toml(toml, "test config", &overrides).expect("test config is valid");
        config.access.tcp_key = Some(promptd::config::Secret::new(tcp_key));
        config.access.tcp_key_env = Some("PROMPTD_TCP_KEY".to_owned());
        let url = format!("http://127.0.0.1:{port}");
        (Self::start_with(dir, config).await, url)
    }

    /// Start a daemon with an already validated config.
    pub async fn start_with(dir: TempDir, config: Config) -> TestDaemon {
        let (_reload, reloads) = tokio::sync::mpsc::channel(1);
        Self::start_reloadable(dir, config, reloads).await
    }

    /// The config for a daemon in `dir` from `toml` (as [`Self::start_in`] builds it).
    pub fn config_in(dir: &Path, toml: &str) -> Config {
        let overrides = Overrides {
            socket: Some(dir.join("promptd.sock")),
            state_dir: Some(dir.join("state")),
            prompts_dir: Some(dir.join("prompts")),
            tcp: None,
        };
        Config::from_toml(toml, "test config", &overrides).expect("test config is valid")
    }

    /// Start a daemon that applies every config sent on `reloads` (what SIGHUP does).
    pub async fn start_reloadable(
        dir: TempDir,
        config: Config,
        reloads: tokio::sync::mpsc::Receiver<Config>,
    ) -> TestDaemon {
        let socket = config.socket.clone();
        let listeners = Listeners::bind(&config).await.expect("bind listeners");
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(promptd::daemon::run(
            config,
            listeners,
            async move {
                let _ = rx.await;
            },
            reloads,
        ));
        TestDaemon {
            client: DaemonClient::new(&socket),
            dir,
            socket,
            shutdown: Some(tx),
            handle: Some(handle),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub async fn request(&self, method: Method, path: &str, body: Option<Bytes>) -> Reply {
        let response = self
            .client
            .send(method, path, body)
            .await
            .expect("daemon reachable");
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("read body")
            .to_bytes();
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        let bytes = Bytes::from(serde_json::to_vec(body).expect("encode"));
        self.request(Method::POST, &format!("{PREFIX}{path}"), Some(bytes))
            .await
    }

    pub async fn post_raw(&self, path: &str, body: &'static [u8]) -> Reply {
        self.request(
            Method::POST,
            &format!("{PREFIX}{path}"),
            Some(Bytes::from_static(body)),
        )
        .await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.request(Method::GET, path, None).await
    }

    /// POST over a fresh raw connection (`Connection: close`) and keep the body's chunks apart.
    /// `POST /completion/stream` with `body`, every chunk as received.
    pub async fn stream(&self, body: &Value) -> RawResponse {
        self.post_chunks("/completion/stream", body).await
    }

    pub async fn post_chunks(&self, path: &str, body: &Value) -> RawResponse {
        raw_post(&self.socket, &format!("{PREFIX}{path}"), body).await
    }

    /// Ask the daemon to shut down and wait (bounded) until `run` returns.
    pub async fn stop(mut self) {
        self.stop_in_place().await;
    }

    /// Stop, keeping the temp dir (state, socket path) for a restart with [`Self::start_in`].
    pub async fn stop_keep_dir(mut self) -> TempDir {
        self.stop_in_place().await;
        self.dir
    }

    async fn stop_in_place(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(handle) = self.handle.take() {
            let result = tokio::time::timeout(Duration::from_secs(30), handle)
                .await
                .expect("daemon stops within 30 s")
                .expect("daemon task did not panic");
            result.expect("daemon ran without error");
        }
    }

    /// Begin shutdown without waiting; returns the handle to await.
    pub fn begin_shutdown(&mut self) -> JoinHandle<Result<(), StartupError>> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.handle.take().expect("daemon running")
    }
}

/// A raw HTTP/1.1 POST over a Unix socket, body chunks kept apart.
pub async fn raw_post(socket: &Path, path: &str, body: &Value) -> RawResponse {
    raw_post_with(socket, path, body, &[]).await
}

/// A raw HTTP/1.1 POST over a Unix socket with extra headers, body chunks kept apart.
pub async fn raw_post_with(
    socket: &Path,
    path: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> RawResponse {
    let body = serde_json::to_vec(body).expect("encode");
    raw_post_bytes(socket, path, &body, headers).await
}

/// A raw HTTP/1.1 POST of `body` as given over a Unix socket with extra headers, body chunks
/// kept apart.
pub async fn raw_post_bytes(
    socket: &Path,
    path: &str,
    body: &[u8],
    headers: &[(&str, &str)],
) -> RawResponse {
    read_answer(send_post(socket, path, body, headers).await).await
}

/// Send a raw HTTP/1.1 POST of `body` with extra headers over a fresh Unix-socket connection
/// (`Connection: close`): the connection, to read the answer from.
pub async fn send_post(
    socket: &Path,
    path: &str,
    body: &[u8],
    headers: &[(&str, &str)],
) -> tokio::net::UnixStream {
    let mut stream = tokio::net::UnixStream::connect(socket)
        .await
        .expect("connect");
    let extra: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("write head");
    stream.write_all(body).await.expect("write body");
    stream
}

/// A stream read until a marker (see [`read_until`]).
pub struct Opened {
    conn: tokio::net::UnixStream,
    /// What was read until the marker was seen (or the connection closed, or the bound).
    bytes: Vec<u8>,
    /// The marker was seen.
    started: bool,
}

impl Opened {
    /// What was read until the marker, as text.
    fn seen(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    /// What was read, once checked to be a 200 answer that reached the marker while the
    /// provider held the rest.
    pub fn started_ok(&self) -> String {
        let seen = self.seen();
        assert!(
            self.started,
            "the stream did not start while the provider held its text: {seen:?}"
        );
        assert!(seen.starts_with("HTTP/1.1 200"), "{seen}");
        seen
    }

    /// Read the rest of the answer: the whole response, chunk by chunk.
    pub async fn rest(mut self) -> RawResponse {
        self.conn
            .read_to_end(&mut self.bytes)
            .await
            .expect("read the rest");
        parse_raw_response(&self.bytes)
    }
}

/// POST `body` and read the answer until `marker` appears in it. The 60 s bound only stops a
/// hang when it never does: nothing here measures time, a test waits for the event.
pub async fn read_until(
    socket: &Path,
    path: &str,
    body: &Value,
    headers: &[(&str, &str)],
    marker: &str,
) -> Opened {
    let body = serde_json::to_vec(body).expect("encode");
    let mut conn = send_post(socket, path, &body, headers).await;
    let mut seen = Vec::new();
    let started = tokio::time::timeout(Duration::from_secs(60), async {
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&seen).contains(marker) {
            let n = conn.read(&mut buf).await.expect("read");
            if n == 0 {
                return false;
            }
            seen.extend_from_slice(&buf[..n]);
        }
        true
    })
    .await
    .unwrap_or(false);
    Opened {
        conn,
        bytes: seen,
        started,
    }
}

/// A raw HTTP/1.1 GET over a Unix socket.
pub async fn raw_get(socket: &Path, path: &str) -> RawResponse {
    raw_get_with(socket, path, &[]).await
}

/// A raw HTTP/1.1 GET over a Unix socket with extra headers.
pub async fn raw_get_with(socket: &Path, path: &str, headers: &[(&str, &str)]) -> RawResponse {
    let mut stream = tokio::net::UnixStream::connect(socket)
        .await
        .expect("connect");
    let extra: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    let head =
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{extra}Connection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await.expect("write head");
    read_answer(stream).await
}

/// The whole answer on `stream`, read to its end (within 20 s: a hang bound).
async fn read_answer(mut stream: tokio::net::UnixStream) -> RawResponse {
    let mut bytes = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut bytes))
        .await
        .expect("response within 20 s")
        .expect("read response");
    parse_raw_response(&bytes)
}

/// Split an HTTP/1.1 response into its head and (de-chunked) body chunks.
pub fn parse_raw_response(bytes: &[u8]) -> RawResponse {
    let split = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("response has a head");
    let head = String::from_utf8_lossy(&bytes[..split]).into_owned();
    let mut rest = &bytes[split + 4..];
    let mut chunks = Vec::new();
    if !head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        if !rest.is_empty() {
            chunks.push(rest.to_vec());
        }
        return RawResponse { head, chunks };
    }
    loop {
        let line_end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size line");
        let size_text = String::from_utf8_lossy(&rest[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .expect("hex size");
        rest = &rest[line_end + 2..];
        if size == 0 {
            break;
        }
        chunks.push(rest[..size].to_vec());
        assert_eq!(&rest[size..size + 2], b"\r\n", "chunk ends with CRLF");
        rest = &rest[size + 2..];
    }
    RawResponse { head, chunks }
}

/// A minimal user message request for `provider`/`model`.
/// [`hello_request`] to the fake OpenAI's model.
pub fn openai_hello() -> Value {
    hello_request("openai", "gpt-4o-mini")
}

/// [`hello_request`] to the fake Anthropic's model.
pub fn anthropic_hello() -> Value {
    hello_request("anthropic", "claude-3-5-sonnet-20241022")
}

pub fn hello_request(provider: &str, model: &str) -> Value {
    serde_json::json!({
        "llm_configuration": {
            "model": model,
            "provider": provider,
            "messages": [{"role": "user", "content": "Hello"}]
        }
    })
}

/// The JSON of each `data:` event of an OpenAI-shaped stream, and whether it ended with
/// `[DONE]`. Events ready together may share a frame (promptd batches them): each frame holds
/// whole events.
pub fn openai_events(raw: &RawResponse) -> (Vec<Value>, bool) {
    let mut values = Vec::new();
    let mut done = false;
    for chunk in raw.chunk_strings() {
        let events = chunk
            .strip_suffix("\n\n")
            .unwrap_or_else(|| panic!("a frame holds whole events: {chunk:?}"));
        for event in events.split("\n\n") {
            let data = event
                .strip_prefix("data: ")
                .unwrap_or_else(|| panic!("one data line per event: {event:?}"));
            assert!(!done, "nothing after [DONE]");
            if data == "[DONE]" {
                done = true;
            } else {
                values.push(serde_json::from_str(data).expect("event is JSON"));
            }
        }
    }
    (values, done)
}

/// Config that ships logs to `collector` (key `pk-test`), committing every 20 ms, before
/// `rest` (providers, other keys).
pub fn shipping_to(collector: &fake_upstream::FakeUpstream, rest: &str) -> String {
    format!(
        "[spool]\nflush_interval = \"20ms\"\n[upstream]\nbase_url = \"{}\"\napi_key = \"pk-test\"\n{rest}",
        collector.base_url()
    )
}

/// POST `body` to `path` over a fresh connection, read the answer's first bytes, hang up: a
/// client that leaves mid-stream.
pub async fn leave_after_first_bytes(socket: &Path, path: &str, body: &Value) {
    let body = serde_json::to_vec(body).expect("encode");
    let mut stream = send_post(socket, path, &body, &[]).await;
    let mut buf = [0u8; 512];
    assert!(stream.read(&mut buf).await.expect("read") > 0);
}
