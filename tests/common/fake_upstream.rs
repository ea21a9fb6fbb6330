//! Fake model-provider HTTP servers for integration tests.
//!
//! [`FakeUpstream`] is a tiny HTTP/1.1 server on `127.0.0.1:<random port>` that
//! stands in for OpenAI / Anthropic. Point a provider's `base_url` at
//! [`FakeUpstream::base_url`] (`http://127.0.0.1:PORT/v1`); every request it
//! receives is recorded ([`RecordedRequest`]) and answered according to a
//! script returning a [`Behavior`]: a whole JSON answer, an SSE stream (one
//! body frame per element, optional delay between frames), an SSE stream whose
//! connection is cut before the terminating chunk, or any of those after a
//! delay.
//!
//! [`fixtures`] holds responses recorded from the real APIs (files under
//! `tests/fixtures/`), including their awkward parts: pretty-printed OpenAI
//! bodies, `obfuscation` padding fields in OpenAI chunks, `usage: null` on
//! non-final chunks, Anthropic's `{"type": "ping"}` (with a space), empty
//! first `partial_json`, CRLF line ends and events straddling body frames.
//!
//! [`refused_base_url`] gives a `base_url` where nothing listens.
//!
//! Dropping a [`FakeUpstream`] stops it: the accept loop and every open
//! connection (including a stream in progress) are aborted.

#![allow(dead_code)]

#[path = "repeat_body.rs"]
mod repeat_body;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use hyper::{HeaderMap, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// One request as the fake upstream received it.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: String,
    /// Path only (no query string), e.g. `/v1/chat/completions`.
    pub path: String,
    /// The query string, if any (`beta=true`).
    pub query: Option<String>,
    pub headers: HeaderMap,
    /// The body parsed as JSON; `Value::Null` if it is empty or not JSON.
    pub body: serde_json::Value,
    /// The body's bytes as they arrived.
    pub raw: Bytes,
}

impl RecordedRequest {
    /// A header's value as text (first one if repeated), `None` if absent or not UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// How the fake upstream answers one request.
#[derive(Clone, Debug)]
pub enum Behavior {
    /// A whole response: status, extra headers, body (Content-Type application/json unless a header overrides it).
    Json {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// An SSE answer (200, content-type text/event-stream, chunked): each element of `frames` is written as its own body frame, with `delay` between frames; then the body ends cleanly.
    Sse {
        frames: Vec<String>,
        delay: Duration,
    },
    /// Like Sse, but after writing the frames the connection is aborted WITHOUT the terminating zero-length chunk
    /// (the client sees an error / unexpected EOF, not a clean end).
    SseCut {
        frames: Vec<String>,
        delay: Duration,
    },
    /// A generated answer ([`repeat_body`]): `head`, `piece` `times` times, `tail`.
    Repeat {
        status: u16,
        content_type: &'static str,
        head: Bytes,
        piece: Bytes,
        times: u64,
        tail: Bytes,
    },
    /// Wait `delay` before answering with `then`.
    Slow {
        delay: Duration,
        then: Box<Behavior>,
    },
    /// Hold the answer until the test opens `gate` ([`Gate::open`]), then answer with `then`:
    /// a test can see several requests in flight at once without racing a clock.
    Held { gate: Gate, then: Box<Behavior> },
    /// An SSE answer that sends its first `sent` frames, then holds the rest until `gate` opens:
    /// a test sees what the client got from the start of a stream without racing a clock.
    SseHeldAfter {
        frames: Vec<String>,
        sent: usize,
        gate: Gate,
    },
}

/// A gate that holds [`Behavior::Held`] answers until it is opened (once, for good).
#[derive(Clone, Debug)]
pub struct Gate(Arc<tokio::sync::Semaphore>);

impl Gate {
    /// A closed gate.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Gate {
        Gate(Arc::new(tokio::sync::Semaphore::new(0)))
    }

    /// Let every held answer (and every later one) through.
    pub fn open(&self) {
        self.0.close();
    }

    async fn passed(&self) {
        // A closed semaphore fails every acquire at once: that is the open gate.
        let _ = self.0.acquire().await;
    }
}

impl Behavior {
    /// `Json` with no extra headers.
    pub fn json(status: u16, body: impl Into<String>) -> Behavior {
        Behavior::Json {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// `Sse` with one frame per event of `text` (see [`sse_frames`]) and no delay.
    pub fn sse(text: &str) -> Behavior {
        Behavior::Sse {
            frames: sse_frames(text),
            delay: Duration::ZERO,
        }
    }

    /// This behavior, answered only once `gate` is open.
    pub fn held(self, gate: &Gate) -> Behavior {
        Behavior::Held {
            gate: gate.clone(),
            then: Box::new(self),
        }
    }

    /// For `Sse`: its first `sent` frames at once, the rest once `gate` is open.
    pub fn held_after(self, sent: usize, gate: &Gate) -> Behavior {
        match self {
            Behavior::Sse { frames, .. } => Behavior::SseHeldAfter {
                frames,
                sent,
                gate: gate.clone(),
            },
            other => panic!("held_after is for Sse answers, not {other:?}"),
        }
    }

    /// This behavior, answered only after `delay`.
    pub fn after(self, delay: Duration) -> Behavior {
        Behavior::Slow {
            delay,
            then: Box::new(self),
        }
    }

    /// For `Sse`/`SseCut` (also inside `Slow`): the same with `delay` between frames.
    pub fn with_frame_delay(self, delay: Duration) -> Behavior {
        match self {
            Behavior::Sse { frames, .. } => Behavior::Sse { frames, delay },
            Behavior::SseCut { frames, .. } => Behavior::SseCut { frames, delay },
            Behavior::Slow { delay: d, then } => Behavior::Slow {
                delay: d,
                then: Box::new(then.with_frame_delay(delay)),
            },
            other => other,
        }
    }
}

type Script = dyn Fn(&RecordedRequest, usize) -> Behavior + Send + Sync;
type RespBody = BoxBody<Bytes, io::Error>;

struct Shared {
    script: Box<Script>,
    requests: Mutex<Vec<RecordedRequest>>,
    /// SSE bodies dropped before their last frame (the client went away mid-stream).
    abandoned: Arc<AtomicUsize>,
}

impl Shared {
    fn requests(&self) -> MutexGuard<'_, Vec<RecordedRequest>> {
        // A panicking script must not make every later assertion panic too.
        self.requests.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A scripted fake provider listening on 127.0.0.1. Stops when dropped.
pub struct FakeUpstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept_task: JoinHandle<()>,
}

impl FakeUpstream {
    /// Bind 127.0.0.1:0 and serve HTTP/1.1 (keep-alive) in a tokio task. Each request is
    /// recorded, then `script(&req, call_index)` (call_index counts from 0 across all
    /// requests) decides the answer.
    pub async fn start(
        script: impl Fn(&RecordedRequest, usize) -> Behavior + Send + Sync + 'static,
    ) -> FakeUpstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("fake upstream: bind 127.0.0.1:0");
        let addr = listener
            .local_addr()
            .expect("fake upstream: local_addr of bound listener");
        let shared = Arc::new(Shared {
            script: Box::new(script),
            requests: Mutex::new(Vec::new()),
            abandoned: Arc::new(AtomicUsize::new(0)),
        });
        let accept_task = tokio::spawn(accept_loop(listener, shared.clone()));
        FakeUpstream {
            addr,
            shared,
            accept_task,
        }
    }

    /// Always answer with the same behavior.
    pub async fn always(b: Behavior) -> FakeUpstream {
        FakeUpstream::start(move |_, _| b.clone()).await
    }

    /// Answer the first request with `first`, every later one with `then`.
    pub async fn first_then(first: Behavior, then: Behavior) -> FakeUpstream {
        FakeUpstream::start(move |_, i| if i == 0 { first.clone() } else { then.clone() }).await
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Number of requests received so far.
    pub fn calls(&self) -> usize {
        self.shared.requests().len()
    }

    /// All recorded requests, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests().clone()
    }

    pub fn last_request(&self) -> Option<RecordedRequest> {
        self.shared.requests().last().cloned()
    }

    /// SSE answers whose reader hung up before the last frame: a cancelled upstream call.
    pub fn abandoned_streams(&self) -> usize {
        self.shared.abandoned.load(Ordering::SeqCst)
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        // Dropping the accept task drops its JoinSet, which aborts every connection task.
        self.accept_task.abort();
    }
}

/// A base_url on 127.0.0.1 where nothing listens: connecting is refused.
pub fn refused_base_url() -> String {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").expect("refused_base_url: bind 127.0.0.1:0");
    let port = listener
        .local_addr()
        .expect("refused_base_url: local_addr")
        .port();
    drop(listener);
    format!("http://127.0.0.1:{port}/v1")
}

/// Split SSE text into frames, one per event (events end with a blank line), keeping each
/// event's terminating blank line inside its frame. Works for `\n` and `\r\n` line ends.
/// Concatenating the frames gives back `text` exactly; trailing text without a final blank
/// line becomes the last frame.
pub fn sse_frames(text: &str) -> Vec<String> {
    let mut frames: Vec<String> = Vec::new();
    let mut current = String::new();
    for line in text.split_inclusive('\n') {
        let blank = line == "\n" || line == "\r\n";
        if blank && current.is_empty() {
            // Extra blank line between events: keep it with the previous frame.
            match frames.last_mut() {
                Some(prev) => prev.push_str(line),
                None => frames.push(line.to_string()),
            }
            continue;
        }
        current.push_str(line);
        if blank {
            frames.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        frames.push(current);
    }
    frames
}

/// Split `text` into pieces of `size` bytes (the last may be shorter), ignoring event
/// boundaries, so that events (and even `\r\n` pairs) straddle frames.
pub fn fixed_size_frames(text: &str, size: usize) -> Vec<String> {
    assert!(size > 0, "fixed_size_frames: size must be > 0");
    let mut frames = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut end = size.min(rest.len());
        while !rest.is_char_boundary(end) {
            end += 1;
        }
        let (head, tail) = rest.split_at(end);
        frames.push(head.to_string());
        rest = tail;
    }
    frames
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // e.g. too many open files: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        // Frames written with a delay between them should leave as separate packets.
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(handle(&shared, req).await) }
            });
            // Errors here are expected: SseCut aborts, clients hang up.
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(shared: &Shared, req: Request<Incoming>) -> Response<RespBody> {
    let (parts, body) = req.into_parts();
    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            return plain_response(
                StatusCode::BAD_REQUEST,
                format!("fake upstream: could not read request body: {e}"),
            )
        }
    };
    let recorded = RecordedRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        body: serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        raw: bytes,
    };
    let index = {
        let mut requests = shared.requests();
        requests.push(recorded.clone());
        requests.len() - 1
    };
    let mut behavior = (shared.script)(&recorded, index);
    loop {
        match behavior {
            Behavior::Slow { delay, then } => {
                tokio::time::sleep(delay).await;
                behavior = *then;
            }
            Behavior::Held { gate, then } => {
                gate.passed().await;
                behavior = *then;
            }
            Behavior::Json {
                status,
                headers,
                body,
            } => return json_response(status, &headers, body),
            Behavior::Sse { frames, delay } => {
                return sse_response(frames, delay, false, None, &shared.abandoned)
            }
            Behavior::SseHeldAfter { frames, sent, gate } => {
                let hold: GateWait = Box::pin(async move { gate.passed().await });
                let hold = Some((sent, Mutex::new(hold)));
                return sse_response(frames, Duration::ZERO, false, hold, &shared.abandoned);
            }
            Behavior::SseCut { frames, delay } => {
                return sse_response(frames, delay, true, None, &shared.abandoned)
            }
            Behavior::Repeat {
                status,
                content_type,
                head,
                piece,
                times,
                tail,
            } => {
                let body = repeat_body::RepeatBody::new(head, piece, times, tail);
                let mut resp =
                    Response::new(body.map_err(|never: Infallible| match never {}).boxed());
                *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
                resp.headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
                return resp;
            }
        }
    }
}

fn full(body: impl Into<Bytes>) -> RespBody {
    Full::new(body.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}

fn plain_response(status: StatusCode, text: String) -> Response<RespBody> {
    let mut resp = Response::new(full(text));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

fn json_response(status: u16, headers: &[(String, String)], body: String) -> Response<RespBody> {
    let Ok(status) = StatusCode::from_u16(status) else {
        return plain_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("fake upstream: scripted invalid status {status}"),
        );
    };
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    for (name, value) in headers {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) else {
            return plain_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("fake upstream: scripted invalid header {name:?}: {value:?}"),
            );
        };
        resp.headers_mut().append(name, value);
    }
    if !resp.headers().contains_key(CONTENT_TYPE) {
        resp.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    resp
}

/// A gate's opening, awaited by a held SSE body (in a `Mutex` only so the body is `Sync`).
type GateWait = Pin<Box<dyn Future<Output = ()> + Send>>;

fn sse_response(
    frames: Vec<String>,
    delay: Duration,
    cut: bool,
    hold: Option<(usize, Mutex<GateWait>)>,
    abandoned: &Arc<AtomicUsize>,
) -> Response<RespBody> {
    let body = ScriptedBody {
        hold,
        sent: 0,
        abandoned: Arc::clone(abandoned),
        frames: frames.into_iter().map(Bytes::from).collect(),
        delay,
        pause: None,
        cut,
        done: false,
    };
    let mut resp = Response::new(body.boxed());
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert("cache-control", HeaderValue::from_static("no-cache"));
    resp
}

/// Streams `frames` one body frame each (no size hint, so hyper uses chunked encoding),
/// sleeping `delay` between them; ends cleanly, or with an error if `cut` (hyper then drops
/// the connection without the terminating zero-length chunk).
struct ScriptedBody {
    /// After this many frames, wait for the gate before the rest.
    hold: Option<(usize, Mutex<GateWait>)>,
    sent: usize,
    abandoned: Arc<AtomicUsize>,
    frames: VecDeque<Bytes>,
    delay: Duration,
    pause: Option<Pin<Box<tokio::time::Sleep>>>,
    cut: bool,
    done: bool,
}

impl Body for ScriptedBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        if let Some(pause) = this.pause.as_mut() {
            if pause.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.pause = None;
        }
        if let Some((at, wait)) = this.hold.as_mut() {
            if this.sent == *at {
                let wait = wait.get_mut().unwrap_or_else(|e| e.into_inner());
                if wait.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.hold = None;
            }
        }
        // hyper drops an empty data frame silently; skip them so delays stay meaningful.
        while this.frames.front().is_some_and(|f| f.is_empty()) {
            this.frames.pop_front();
        }
        if let Some(frame) = this.frames.pop_front() {
            this.sent += 1;
            if !this.frames.is_empty() && !this.delay.is_zero() {
                this.pause = Some(Box::pin(tokio::time::sleep(this.delay)));
            } else if this.frames.is_empty() && this.cut {
                // Return Pending once before the error so hyper flushes the frames written so
                // far; otherwise the error could discard them together with the connection.
                let pause = this.delay.max(Duration::from_millis(5));
                this.pause = Some(Box::pin(tokio::time::sleep(pause)));
            }
            return Poll::Ready(Some(Ok(Frame::data(frame))));
        }
        this.done = true;
        if this.cut {
            Poll::Ready(Some(Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "fake upstream: connection cut mid-stream (SseCut)",
            ))))
        } else {
            Poll::Ready(None)
        }
    }
}

impl Drop for ScriptedBody {
    fn drop(&mut self) {
        if !self.done {
            self.abandoned.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Responses recorded from the real provider APIs (2025 shapes), served from
/// `tests/fixtures/`.
pub mod fixtures {
    use super::{fixed_size_frames, sse_frames, Behavior};
    use serde_json::{json, Value};
    use std::time::Duration;

    /// The assistant text of every "hello" fixture.
    pub const HELLO: &str = "Hello! How can I help you today?";
    /// Content deltas of `openai_stream.sse`, in order (concatenate to [`HELLO`]).
    pub const OPENAI_DELTAS: &[&str] = &[
        "Hello", "!", " How", " can", " I", " help", " you", " today", "?",
    ];
    /// Text deltas of `anthropic_stream.sse`, in order (concatenate to [`HELLO`]).
    pub const ANTHROPIC_DELTAS: &[&str] = &["Hello", "! How", " can I help", " you today?"];

    pub const OPENAI_MODEL: &str = "gpt-4o-mini-2024-07-18";
    pub const OPENAI_ID: &str = "chatcmpl-abc123";
    /// usage of the OpenAI hello fixtures: prompt, completion, total.
    pub const OPENAI_USAGE: (u64, u64, u64) = (12, 9, 21);
    pub const ANTHROPIC_MODEL: &str = "claude-3-5-sonnet-20241022";
    pub const ANTHROPIC_ID: &str = "msg_01XFDUDYJgAACzvnptvVoYEL";
    /// usage of the Anthropic hello fixtures: input, output.
    pub const ANTHROPIC_USAGE: (u64, u64) = (14, 12);

    pub const TOOL_NAME: &str = "get_weather";
    pub const OPENAI_TOOL_CALL_ID: &str = "call_weather_1";
    /// `function.arguments` of the OpenAI tool call (a JSON string, compact).
    pub const OPENAI_TOOL_ARGS: &str = r#"{"city":"Paris","unit":"c"}"#;
    /// Argument fragments of `openai_tool_call_stream.sse` after the first (empty) one.
    pub const OPENAI_TOOL_ARG_FRAGMENTS: &[&str] = &[
        r#"{""#, "city", r#"":""#, "Paris", r#"",""#, "unit", r#"":""#, "c", r#""}"#,
    ];
    /// usage of the OpenAI tool-call fixtures: prompt, completion, total.
    pub const OPENAI_TOOL_USAGE: (u64, u64, u64) = (50, 18, 68);
    pub const ANTHROPIC_TOOL_USE_ID: &str = "toolu_01A09q90qw90lq917835lq9";
    pub const ANTHROPIC_TOOL_TEXT: &str = "I'll check the weather.";
    /// Concatenated `partial_json` of `anthropic_tool_use_stream.sse` (note the spaces).
    pub const ANTHROPIC_TOOL_INPUT_JSON: &str = r#"{"city": "Paris", "unit": "c"}"#;
    /// usage of the Anthropic tool-use fixtures: input, output.
    pub const ANTHROPIC_TOOL_USAGE: (u64, u64) = (60, 40);

    pub const OPENAI_CHAT_JSON: &str = include_str!("../fixtures/openai_chat.json");
    pub const OPENAI_RESPONSES_JSON: &str = include_str!("../fixtures/openai_responses.json");
    pub const OPENAI_RESPONSES_STREAM_SSE: &str =
        include_str!("../fixtures/openai_responses_stream.sse");
    pub const OPENAI_STREAM_SSE: &str = include_str!("../fixtures/openai_stream.sse");
    pub const OPENAI_STREAM_ERROR_EVENT_SSE: &str =
        include_str!("../fixtures/openai_stream_error_event.sse");
    pub const OPENAI_TOOL_CALL_JSON: &str = include_str!("../fixtures/openai_tool_call.json");
    pub const OPENAI_TOOL_CALL_STREAM_SSE: &str =
        include_str!("../fixtures/openai_tool_call_stream.sse");
    pub const OPENAI_ERROR_400_JSON: &str = include_str!("../fixtures/openai_error_400.json");
    pub const OPENAI_ERROR_429_JSON: &str = include_str!("../fixtures/openai_error_429.json");
    pub const OPENAI_ERROR_500_JSON: &str = include_str!("../fixtures/openai_error_500.json");
    pub const ANTHROPIC_MESSAGE_JSON: &str = include_str!("../fixtures/anthropic_message.json");
    pub const ANTHROPIC_STREAM_SSE: &str = include_str!("../fixtures/anthropic_stream.sse");
    pub const ANTHROPIC_STREAM_OVERLOADED_SSE: &str =
        include_str!("../fixtures/anthropic_stream_overloaded.sse");
    pub const ANTHROPIC_TOOL_USE_JSON: &str = include_str!("../fixtures/anthropic_tool_use.json");
    pub const ANTHROPIC_TOOL_USE_STREAM_SSE: &str =
        include_str!("../fixtures/anthropic_tool_use_stream.sse");
    pub const ANTHROPIC_ERROR_400_JSON: &str = include_str!("../fixtures/anthropic_error_400.json");
    pub const ANTHROPIC_ERROR_529_JSON: &str = include_str!("../fixtures/anthropic_error_529.json");

    /// Frame size used by [`openai_stream_crlf`]: chosen so events, `data:` prefixes and
    /// `\r\n` pairs straddle frames.
    pub const CRLF_FRAME_BYTES: usize = 37;

    fn ok(body: &str) -> Behavior {
        Behavior::json(200, body)
    }

    fn sse(text: &str) -> Behavior {
        Behavior::sse(text)
    }

    // ---- OpenAI: POST /v1/chat/completions ----

    /// 200 chat.completion, content [`HELLO`].
    pub fn openai_chat() -> Behavior {
        ok(OPENAI_CHAT_JSON)
    }

    /// The [`HELLO`] answer streamed, one event per frame, ending with `data: [DONE]`.
    pub fn openai_stream() -> Behavior {
        sse(OPENAI_STREAM_SSE)
    }

    /// `openai_stream.sse` with `\r\n` line ends and a `: keep-alive` comment event after the
    /// second event (derived at run time, so no CRLF file can be normalised by git).
    pub fn openai_stream_crlf_text() -> String {
        let frames = sse_frames(OPENAI_STREAM_SSE);
        let mut text = String::new();
        for (i, frame) in frames.iter().enumerate() {
            text.push_str(frame);
            if i == 1 {
                text.push_str(": keep-alive\n\n");
            }
        }
        text.replace('\n', "\r\n")
    }

    /// [`openai_stream_crlf_text`] cut every [`CRLF_FRAME_BYTES`] bytes regardless of event
    /// boundaries: events straddle body frames, one frame even ends between `\r` and `\n`.
    pub fn openai_stream_crlf() -> Behavior {
        Behavior::Sse {
            frames: fixed_size_frames(&openai_stream_crlf_text(), CRLF_FRAME_BYTES),
            delay: Duration::ZERO,
        }
    }

    /// 200 with `message.content: null` and one `get_weather` tool call, finish_reason `tool_calls`.
    pub fn openai_tool_call() -> Behavior {
        ok(OPENAI_TOOL_CALL_JSON)
    }

    /// The tool call streamed: arguments arrive as [`OPENAI_TOOL_ARG_FRAGMENTS`].
    pub fn openai_tool_call_stream() -> Behavior {
        sse(OPENAI_TOOL_CALL_STREAM_SSE)
    }

    /// 400 invalid_request_error about `temperature`.
    pub fn openai_400() -> Behavior {
        Behavior::json(400, OPENAI_ERROR_400_JSON)
    }

    /// 429 rate_limit_exceeded with `retry-after: 0`.
    pub fn openai_429() -> Behavior {
        Behavior::Json {
            status: 429,
            headers: vec![("retry-after".to_string(), "0".to_string())],
            body: OPENAI_ERROR_429_JSON.to_string(),
        }
    }

    /// 500 server_error.
    pub fn openai_500() -> Behavior {
        Behavior::json(500, OPENAI_ERROR_500_JSON)
    }

    /// Role chunk + "Hello", "!", " How", then the connection is cut (no terminating chunk).
    pub fn openai_stream_cut() -> Behavior {
        Behavior::SseCut {
            frames: sse_frames(OPENAI_STREAM_SSE).into_iter().take(4).collect(),
            delay: Duration::ZERO,
        }
    }

    /// Role chunk + "Hello", "!", then `data: {"error":{...server_error...}}`, then a clean end
    /// (no `[DONE]`).
    pub fn openai_stream_error_event() -> Behavior {
        sse(OPENAI_STREAM_ERROR_EVENT_SSE)
    }

    // ---- OpenAI: POST /v1/responses ----

    /// 200 `response` object: an encrypted reasoning item, then a message with [`HELLO`].
    pub fn openai_responses() -> Behavior {
        ok(OPENAI_RESPONSES_JSON)
    }

    /// The same answer streamed as the Responses API's typed events (text in 4 deltas), one
    /// event per frame, ending with `response.completed`.
    pub fn openai_responses_stream() -> Behavior {
        sse(OPENAI_RESPONSES_STREAM_SSE)
    }

    /// [`openai_responses_stream`]'s first `n` events, then the connection is cut.
    pub fn openai_responses_stream_cut(n: usize) -> Behavior {
        Behavior::SseCut {
            frames: sse_frames(OPENAI_RESPONSES_STREAM_SSE)
                .into_iter()
                .take(n)
                .collect(),
            delay: Duration::ZERO,
        }
    }

    // ---- Anthropic: POST /v1/messages ----

    /// 200 message, one text block [`HELLO`], stop_reason `end_turn`.
    pub fn anthropic_message() -> Behavior {
        ok(ANTHROPIC_MESSAGE_JSON)
    }

    /// The [`HELLO`] answer with real Anthropic event framing (`event:` + `data:`), incl. `ping`.
    pub fn anthropic_stream() -> Behavior {
        sse(ANTHROPIC_STREAM_SSE)
    }

    /// 200 message: text block [`ANTHROPIC_TOOL_TEXT`] then a `tool_use` block, stop_reason `tool_use`.
    pub fn anthropic_tool_use() -> Behavior {
        ok(ANTHROPIC_TOOL_USE_JSON)
    }

    /// The tool use streamed: text in two deltas, then `input_json_delta` fragments
    /// concatenating to [`ANTHROPIC_TOOL_INPUT_JSON`] (the first fragment is empty).
    pub fn anthropic_tool_use_stream() -> Behavior {
        sse(ANTHROPIC_TOOL_USE_STREAM_SSE)
    }

    /// message_start, content_block_start, one text delta "Hello", then an `event: error`
    /// (overloaded_error), then a clean end without message_stop.
    pub fn anthropic_overloaded_midstream() -> Behavior {
        sse(ANTHROPIC_STREAM_OVERLOADED_SSE)
    }

    /// 529 overloaded_error.
    pub fn anthropic_529() -> Behavior {
        Behavior::json(529, ANTHROPIC_ERROR_529_JSON)
    }

    /// 400 invalid_request_error "max_tokens: Field required".
    pub fn anthropic_400() -> Behavior {
        Behavior::json(400, ANTHROPIC_ERROR_400_JSON)
    }

    /// `{"input_tokens": n}`: Anthropic's `POST /v1/messages/count_tokens` answer.
    pub fn anthropic_count_tokens(n: u64) -> Behavior {
        ok(&serde_json::json!({ "input_tokens": n }).to_string())
    }

    // ---- Generated answers (any tool, any arguments) ----

    /// Whether a request body's conversation already holds a tool's result: an Anthropic
    /// `tool_result` block or an OpenAI `tool` message. A fake that answers a tool call first
    /// answers the text once it has one.
    pub fn has_tool_result(body: &Value) -> bool {
        body["messages"].as_array().into_iter().flatten().any(|m| {
            m["role"] == "tool"
                || m["content"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|b| b["type"] == "tool_result")
        })
    }

    /// `text` cut in two near its middle (on a char boundary).
    fn halves(text: &str) -> (&str, &str) {
        let mut at = text.len() / 2;
        while !text.is_char_boundary(at) {
            at += 1;
        }
        text.split_at(at)
    }

    /// SSE text from `(event name, data)` pairs, with `event:` lines when `named` (Anthropic)
    /// and without (OpenAI).
    fn sse_text(events: &[(&str, Value)], named: bool) -> String {
        let mut text = String::new();
        for (name, data) in events {
            if named {
                text.push_str(&format!("event: {name}\n"));
            }
            text.push_str(&format!("data: {data}\n\n"));
        }
        text
    }

    /// A Responses request's input carries a `function_call_output` item.
    pub fn has_function_call_output(body: &Value) -> bool {
        body["input"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|item| item["type"] == "function_call_output")
    }

    /// A Responses stream calling function `name` (call id `call_id`) with `arguments` in two
    /// deltas: created, in_progress, the `function_call` item added, its argument deltas and
    /// `.done`, the item done, `response.completed` with the item and usage; numbered from 0, as
    /// OpenAI streams it.
    pub fn openai_responses_call_stream_of(call_id: &str, name: &str, arguments: &str) -> Behavior {
        let (head, tail) = halves(arguments);
        let id = "resp_fake_call";
        let response = |status: &str, output: Value, usage: Value| {
            json!({"id": id, "object": "response", "created_at": 1756315696, "status": status,
                   "model": "gpt-5-2025-08-07", "output": output, "usage": usage,
                   "parallel_tool_calls": true, "tool_choice": "auto", "tools": []})
        };
        let item = |status: &str, args: &str| {
            json!({"id": "fc_fake_1", "type": "function_call", "status": status,
                   "call_id": call_id, "name": name, "arguments": args})
        };
        let usage = json!({"input_tokens": 40, "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 12, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 52});
        let mut events = vec![
            (
                "response.created",
                json!({"response": response("in_progress", json!([]), Value::Null)}),
            ),
            (
                "response.in_progress",
                json!({"response": response("in_progress", json!([]), Value::Null)}),
            ),
            (
                "response.output_item.added",
                json!({"output_index": 0, "item": item("in_progress", "")}),
            ),
            (
                "response.function_call_arguments.delta",
                json!({"item_id": "fc_fake_1", "output_index": 0, "delta": head}),
            ),
            (
                "response.function_call_arguments.delta",
                json!({"item_id": "fc_fake_1", "output_index": 0, "delta": tail}),
            ),
            (
                "response.function_call_arguments.done",
                json!({"item_id": "fc_fake_1", "output_index": 0, "arguments": arguments}),
            ),
            (
                "response.output_item.done",
                json!({"output_index": 0, "item": item("completed", arguments)}),
            ),
            (
                "response.completed",
                json!({"response": response("completed", json!([item("completed", arguments)]), usage)}),
            ),
        ];
        for (i, (name, data)) in events.iter_mut().enumerate() {
            data["type"] = json!(name);
            data["sequence_number"] = json!(i);
        }
        sse(&sse_text(&events, true))
    }

    /// An Anthropic stream calling tool `name` (id `id`) with `input`: message_start,
    /// content_block_start `tool_use` with `input: {}`, ping, an empty `input_json_delta` then
    /// the input's JSON in two pieces, content_block_stop, message_delta (`stop_reason:
    /// tool_use`), message_stop: the shape the real API streams.
    pub fn anthropic_tool_use_stream_of(id: &str, name: &str, input: &Value) -> Behavior {
        let args = input.to_string();
        let (head, tail) = halves(&args);
        let delta = |piece: &str| {
            json!({"type": "content_block_delta", "index": 0,
                   "delta": {"type": "input_json_delta", "partial_json": piece}})
        };
        let events = [
            (
                "message_start",
                json!({"type": "message_start", "message": {
                "id": "msg_fake_tool_use", "type": "message", "role": "assistant",
                "model": ANTHROPIC_MODEL, "content": [], "stop_reason": null,
                "stop_sequence": null, "usage": {"input_tokens": 60, "output_tokens": 1}}}),
            ),
            (
                "content_block_start",
                json!({"type": "content_block_start", "index": 0,
                "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}}),
            ),
            ("ping", json!({"type": "ping"})),
            ("content_block_delta", delta("")),
            ("content_block_delta", delta(head)),
            ("content_block_delta", delta(tail)),
            (
                "content_block_stop",
                json!({"type": "content_block_stop", "index": 0}),
            ),
            (
                "message_delta",
                json!({"type": "message_delta",
                "delta": {"stop_reason": "tool_use", "stop_sequence": null},
                "usage": {"output_tokens": 20}}),
            ),
            ("message_stop", json!({"type": "message_stop"})),
        ];
        sse(&sse_text(&events, true))
    }

    /// An OpenAI chat stream calling function `name` (id `id`) with `arguments` (a JSON
    /// text): the role chunk with the call's id, name and empty arguments, the arguments in
    /// two pieces, `finish_reason: tool_calls`, a usage chunk, `[DONE]`.
    pub fn openai_tool_call_stream_of(id: &str, name: &str, arguments: &str) -> Behavior {
        let chunk = |delta: Value, finish: Value| {
            json!({"id": "chatcmpl-fake-tool", "object": "chat.completion.chunk",
                   "created": 1741569952, "model": OPENAI_MODEL,
                   "choices": [{"index": 0, "delta": delta, "logprobs": null,
                                "finish_reason": finish}],
                   "usage": null})
        };
        let args =
            |piece: &str| json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]});
        let (head, tail) = halves(arguments);
        let (prompt, completion, total) = OPENAI_TOOL_USAGE;
        let events = [
            (
                "",
                chunk(
                    json!({"role": "assistant", "content": null, "tool_calls": [
                {"index": 0, "id": id, "type": "function",
                 "function": {"name": name, "arguments": ""}}]}),
                    Value::Null,
                ),
            ),
            ("", chunk(args(head), Value::Null)),
            ("", chunk(args(tail), Value::Null)),
            ("", chunk(json!({}), json!("tool_calls"))),
            (
                "",
                json!({"id": "chatcmpl-fake-tool", "object": "chat.completion.chunk",
                        "created": 1741569952, "model": OPENAI_MODEL, "choices": [],
                        "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                                  "total_tokens": total}}),
            ),
        ];
        sse(&(sse_text(&events, false) + "data: [DONE]\n\n"))
    }
}
