//! A small, fast stand-in for OpenAI's chat completions and Responses endpoints and
//! Anthropic's Messages endpoint, for load tests.
//!
//! `cargo run --release --example fake_provider -- --addr 127.0.0.1:0 [--delay-ms N]
//! [--unix PATH] [--stream-chunks N] [--chunk-gap-ms N]` (`--port N` is short for
//! `--addr 127.0.0.1:N`). The first stdout line is `listening on 127.0.0.1:PORT`, so a script
//! can read the bound port. With `--unix PATH` it also serves the same routes on a Unix socket
//! at PATH: the load test's floor for "a hyper server answering static bytes over a Unix
//! socket", beside promptd on the same transport.
//!
//! `POST /v1/chat/completions` (any path ending in `/chat/completions`) reads the request body
//! fully and answers a fixed `chat.completion` ("Hello! How can I help you today?", usage
//! 12/9/21, model `gpt-4o-mini-2024-07-18`). With `"stream": true` in the body it answers an SSE
//! stream instead: `--stream-chunks` (default 21) `chat.completion.chunk` events — a role
//! chunk, content deltas, a finish chunk and a usage chunk with `choices: []` — then
//! `data: [DONE]`. Each event is its own body frame, `--chunk-gap-ms` apart (default 0: all
//! at once, which hyper usually writes in one go); a gap makes each event its own write, as
//! a real provider's tokens are.
//!
//! `POST /v1/messages` (any path ending in `/messages`) is the Anthropic-kind provider: the
//! recorded whole `message` of `tests/fixtures/anthropic_message.json`, or with `"stream": true`
//! Anthropic's events in the shapes of `tests/fixtures/anthropic_stream.sse`, paced like the
//! OpenAI stream (the same number of body frames, `--chunk-gap-ms` apart, the first at once):
//! `message_start` with `content_block_start` and `ping` (the role chunk's place), `chunks - 3`
//! `content_block_delta` `text_delta`s (the content deltas'), `content_block_stop` (the finish
//! chunk's), `message_delta` with `stop_reason` and `usage` (the usage chunk's) and
//! `message_stop` (`[DONE]`'s). promptd's OpenAI route translates that into what it passes on
//! of the OpenAI stream: a role chunk, the content deltas, a finish chunk (on `message_delta`;
//! the usage chunk only with `stream_options.include_usage`), `[DONE]`.
//!
//! `POST /v1/responses` (any path ending in `/responses`) is OpenAI's Responses API, for the
//! floor of the Responses door (and a provider that serves it): a whole `response` object
//! (one `message` item saying the text above, usage 12/9/21), or with `"stream": true` its typed
//! events with `sequence_number`s, paced like the chat stream (`chunks + 1` body frames):
//! `response.created`, `response.in_progress`, `response.output_item.added` and
//! `response.content_part.added` together (the role chunk's place), `chunks - 3`
//! `response.output_text.delta`s, `response.output_text.done` with `response.content_part.done`
//! (the finish chunk's), `response.output_item.done` (the usage chunk's) and
//! `response.completed` with the whole response and its usage (`[DONE]`'s). Every answer's
//! response id is its own (`resp_` and 16 hex digits of a counter), as a real upstream's are:
//! a client (or promptd) keeping answers by id keeps one record per answer, not one replaced.
//!
//! Anything else is a 404. The bodies are built once at start, keep-alive is on and the runtime
//! is multi-threaded, so the fake costs as little as possible next to what it measures. It only ever binds where `--addr` says (loopback by default).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::time::Sleep;

const USAGE: &str = "usage: fake_provider [--addr HOST:PORT | --port PORT] [--delay-ms N] \
                     [--unix PATH] [--stream-chunks N] [--chunk-gap-ms N]";

/// `chat.completion.chunk` events of a streamed answer unless `--stream-chunks` says otherwise:
/// role, 18 content deltas, finish, usage.
const DEFAULT_STREAM_CHUNKS: usize = 21;

/// The words the content deltas cycle through.
const WORDS: &[&str] = &["Hello!", " How", " can", " I", " help", " you", " today?"];

static COMPLETION: &[u8] = br#"{"id":"chatcmpl-fake123","object":"chat.completion","created":1741569952,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I help you today?","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":9,"total_tokens":21,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},"service_tier":"default","system_fingerprint":"fp_b8bc95a0ac"}"#;

/// The SSE events of a streamed answer, one `Bytes` per event: `chunks` JSON chunks (role,
/// `chunks - 3` content deltas, finish, usage), then `data: [DONE]`.
fn stream_events(chunks: usize) -> Vec<Bytes> {
    const HEAD: &str = r#"{"id":"chatcmpl-fake123","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_b8bc95a0ac","choices":"#;
    let deltas = chunks.saturating_sub(3);
    let event = |choices: &str, usage: &str| {
        Bytes::from(format!("data: {HEAD}{choices},\"usage\":{usage}}}\n\n"))
    };
    let mut events = Vec::with_capacity(chunks + 1);
    events.push(event(
        r#"[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}]"#,
        "null",
    ));
    for i in 0..deltas {
        let word = WORDS[i % WORDS.len()];
        events.push(event(
            &format!(
                r#"[{{"index":0,"delta":{{"content":"{word}"}},"logprobs":null,"finish_reason":null}}]"#
            ),
            "null",
        ));
    }
    events.push(event(
        r#"[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]"#,
        "null",
    ));
    events.push(event(
        "[]",
        &format!(
            r#"{{"prompt_tokens":12,"completion_tokens":{deltas},"total_tokens":{},"prompt_tokens_details":{{"cached_tokens":0,"audio_tokens":0}},"completion_tokens_details":{{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}}"#,
            12 + deltas
        ),
    ));
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    events
}

/// Anthropic's whole answer to `POST /v1/messages`: the recorded `tests/fixtures/anthropic_message.json`.
static ANTHROPIC_MESSAGE: &[u8] = br#"{"id":"msg_01XFDUDYJgAACzvnptvVoYEL","type":"message","role":"assistant","model":"claude-3-5-sonnet-20241022","content":[{"type":"text","text":"Hello! How can I help you today?"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":14,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":0},"output_tokens":12,"service_tier":"standard"}}"#;

/// The body frames of a streamed Anthropic answer, in the event shapes of
/// `tests/fixtures/anthropic_stream.sse`, as many frames as the OpenAI stream of `chunks` has
/// (`chunks + 1`), so both are paced alike: `message_start`, `content_block_start` and `ping`
/// together (sent at once, as the role chunk is), `chunks - 3` text deltas, `content_block_stop`,
/// `message_delta` (stop reason and usage), `message_stop`.
fn anthropic_stream_frames(chunks: usize) -> Vec<Bytes> {
    let deltas = chunks.saturating_sub(3);
    let event = |name: &str, data: &str| format!("event: {name}\ndata: {data}\n\n");
    let mut frames = Vec::with_capacity(chunks + 1);
    frames.push(Bytes::from(
        event(
            "message_start",
            r#"{"type":"message_start","message":{"id":"msg_01XFDUDYJgAACzvnptvVoYEL","type":"message","role":"assistant","model":"claude-3-5-sonnet-20241022","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":14,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":0},"output_tokens":1,"service_tier":"standard"}}}"#,
        ) + &event(
            "content_block_start",
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        ) + &event("ping", r#"{"type": "ping"}"#),
    ));
    for i in 0..deltas {
        let word = WORDS[i % WORDS.len()];
        frames.push(Bytes::from(event(
            "content_block_delta",
            &format!(
                r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":"{word}"}}}}"#
            ),
        )));
    }
    frames.push(Bytes::from(event(
        "content_block_stop",
        r#"{"type":"content_block_stop","index":0}"#,
    )));
    frames.push(Bytes::from(event(
        "message_delta",
        &format!(
            r#"{{"type":"message_delta","delta":{{"stop_reason":"end_turn","stop_sequence":null}},"usage":{{"output_tokens":{deltas}}}}}"#
        ),
    )));
    frames.push(Bytes::from(event(
        "message_stop",
        r#"{"type":"message_stop"}"#,
    )));
    frames
}

/// The response id every Responses answer is built with; each answer gets its own
/// ([`with_own_id`]).
const RESPONSE_ID: &str = "resp_0000000000000000";

/// The number in the next Responses answer's id.
static NEXT_RESPONSE: AtomicU64 = AtomicU64::new(1);

/// `bytes` with every [`RESPONSE_ID`] (at `at`, found once at start) made `number`'s.
fn with_own_id(bytes: &[u8], at: &[usize], number: u64) -> Bytes {
    let mut out = bytes.to_vec();
    let digits = format!("{number:016x}");
    for &i in at {
        out[i + 5..i + RESPONSE_ID.len()].copy_from_slice(digits.as_bytes());
    }
    Bytes::from(out)
}

/// Where [`RESPONSE_ID`] is in `bytes`.
fn id_offsets(bytes: &[u8]) -> Vec<usize> {
    let id = RESPONSE_ID.as_bytes();
    bytes
        .windows(id.len())
        .enumerate()
        .filter(|(_, w)| *w == id)
        .map(|(i, _)| i)
        .collect()
}

/// The Responses API's usage object for `input` and `output` tokens.
fn responses_usage(input: usize, output: usize) -> serde_json::Value {
    serde_json::json!({"input_tokens": input, "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output, "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input + output})
}

/// A Responses `response` object of `status` with `output` and `usage`.
fn responses_object(
    status: &str,
    output: serde_json::Value,
    usage: serde_json::Value,
) -> serde_json::Value {
    serde_json::json!({
        "id": RESPONSE_ID, "object": "response", "created_at": 1741569952,
        "status": status, "background": false, "error": null, "incomplete_details": null,
        "instructions": null, "max_output_tokens": null, "model": "gpt-4o-mini-2024-07-18",
        "output": output, "parallel_tool_calls": true, "previous_response_id": null,
        "reasoning": {"effort": null, "summary": null}, "service_tier": "default",
        "store": false, "temperature": 1.0, "text": {"format": {"type": "text"}},
        "tool_choice": "auto", "tools": [], "top_p": 1.0, "truncation": "disabled",
        "usage": usage, "user": null, "metadata": {}
    })
}

/// The assistant's `message` output item saying `text`, `status`.
fn responses_message(text: Option<&str>, status: &str) -> serde_json::Value {
    let content = match text {
        Some(text) => serde_json::json!([{"type": "output_text", "text": text,
            "annotations": [], "logprobs": []}]),
        None => serde_json::json!([]),
    };
    serde_json::json!({"id": "msg_fake123", "type": "message", "status": status,
        "role": "assistant", "content": content})
}

/// The whole answer to `POST /v1/responses`.
fn responses_whole() -> Vec<u8> {
    let text = WORDS.concat();
    let output = serde_json::json!([responses_message(Some(&text), "completed")]);
    responses_object("completed", output, responses_usage(12, 9))
        .to_string()
        .into_bytes()
}

/// The body frames of a streamed Responses answer (see the module's header): as many as the
/// OpenAI stream of `chunks` has (`chunks + 1`), each event with its `event:` line and the next
/// `sequence_number`.
fn responses_stream_frames(chunks: usize) -> Vec<Bytes> {
    use serde_json::json;
    let deltas = chunks.saturating_sub(3);
    let text: String = (0..deltas).map(|i| WORDS[i % WORDS.len()]).collect();
    let mut sequence = 0;
    let mut event = |name: &str, mut data: serde_json::Value| {
        data["type"] = json!(name);
        data["sequence_number"] = json!(sequence);
        sequence += 1;
        format!("event: {name}\ndata: {data}\n\n")
    };
    let at = json!({"item_id": "msg_fake123", "output_index": 0, "content_index": 0});
    let with = |extra: serde_json::Value| {
        let mut v = at.clone();
        if let (Some(v), serde_json::Value::Object(extra)) = (v.as_object_mut(), extra) {
            v.extend(extra);
        }
        v
    };
    let part = |text: &str| json!({"type": "output_text", "text": text, "annotations": []});
    let started = responses_object("in_progress", json!([]), serde_json::Value::Null);
    let mut frames = Vec::with_capacity(chunks + 1);
    frames.push(Bytes::from(
        event("response.created", json!({"response": started.clone()}))
            + &event("response.in_progress", json!({"response": started}))
            + &event(
                "response.output_item.added",
                json!({"output_index": 0, "item": responses_message(None, "in_progress")}),
            )
            + &event(
                "response.content_part.added",
                with(json!({"part": part("")})),
            ),
    ));
    for i in 0..deltas {
        let word = WORDS[i % WORDS.len()];
        frames.push(Bytes::from(event(
            "response.output_text.delta",
            with(json!({"delta": word, "logprobs": []})),
        )));
    }
    frames.push(Bytes::from(
        event(
            "response.output_text.done",
            with(json!({"text": text, "logprobs": []})),
        ) + &event(
            "response.content_part.done",
            with(json!({"part": part(&text)})),
        ),
    ));
    let done = responses_message(Some(&text), "completed");
    frames.push(Bytes::from(event(
        "response.output_item.done",
        json!({"output_index": 0, "item": done.clone()}),
    )));
    let completed = responses_object("completed", json!([done]), responses_usage(12, deltas));
    frames.push(Bytes::from(event(
        "response.completed",
        json!({"response": completed}),
    )));
    frames
}

/// A streamed answer's body: one frame per SSE event, `gap` apart.
struct Events {
    events: &'static [Bytes],
    /// Where each event holds [`RESPONSE_ID`], and this answer's number for it (Responses).
    ids: Option<(&'static [Vec<usize>], u64)>,
    next: usize,
    gap: Option<Duration>,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl Body for Events {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = &mut *self;
        let Some(event) = this.events.get(this.next) else {
            return Poll::Ready(None);
        };
        if let (Some(gap), true) = (this.gap, this.next > 0) {
            let sleep = this
                .sleep
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(gap)));
            ready!(sleep.as_mut().poll(cx));
            this.sleep = None;
        }
        let frame = match this.ids {
            Some((at, number)) if !at[this.next].is_empty() => {
                with_own_id(event, &at[this.next], number)
            }
            _ => event.clone(),
        };
        this.next += 1;
        Poll::Ready(Some(Ok(Frame::data(frame))))
    }

    fn is_end_stream(&self) -> bool {
        self.next >= self.events.len()
    }
}

static NOT_FOUND: &[u8] =
    br#"{"error":{"message":"fake_provider: unknown route","type":"invalid_request_error","param":null,"code":null}}"#;

/// Command-line options, parsed by hand.
struct Options {
    addr: SocketAddr,
    delay: Option<Duration>,
    unix: Option<PathBuf>,
    stream_chunks: usize,
    chunk_gap: Option<Duration>,
}

fn parse_args() -> Result<Options, String> {
    let mut opts = Options {
        addr: ([127, 0, 0, 1], 0).into(),
        delay: None,
        unix: None,
        stream_chunks: DEFAULT_STREAM_CHUNKS,
        chunk_gap: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        let millis = |name: &str, v: String| {
            let ms: u64 = v.parse().map_err(|e| format!("{name} {v}: {e}"))?;
            Ok::<_, String>((ms > 0).then(|| Duration::from_millis(ms)))
        };
        match arg.as_str() {
            "--addr" => {
                let v = value("--addr")?;
                opts.addr = v.parse().map_err(|e| format!("--addr {v}: {e}"))?;
            }
            "--port" => {
                let v = value("--port")?;
                let port: u16 = v.parse().map_err(|e| format!("--port {v}: {e}"))?;
                opts.addr.set_port(port);
            }
            "--delay-ms" => opts.delay = millis("--delay-ms", value("--delay-ms")?)?,
            "--chunk-gap-ms" => {
                opts.chunk_gap = millis("--chunk-gap-ms", value("--chunk-gap-ms")?)?
            }
            "--stream-chunks" => {
                let v = value("--stream-chunks")?;
                let n: usize = v.parse().map_err(|e| format!("--stream-chunks {v}: {e}"))?;
                if n < 3 {
                    return Err(format!(
                        "--stream-chunks {n}: a stream has at least 3 chunks (role, finish, usage)"
                    ));
                }
                opts.stream_chunks = n;
            }
            "--unix" => opts.unix = Some(PathBuf::from(value("--unix")?)),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(opts)
}

/// What every connection's handler reads: built once at start and never freed.
struct Shared {
    delay: Option<Duration>,
    chunk_gap: Option<Duration>,
    events: Vec<Bytes>,
    anthropic_frames: Vec<Bytes>,
    responses: &'static [u8],
    /// Where the whole Responses answer holds its id.
    responses_ids: Vec<usize>,
    responses_frames: Vec<Bytes>,
    /// Where each streamed Responses event holds its id.
    responses_frame_ids: Vec<Vec<usize>>,
}

type AnswerBody = Either<Full<Bytes>, Events>;

/// Whether a request body asks for streaming: a cheap byte scan for `"stream"` followed by
/// `true`, so the hot path never builds a JSON tree.
fn wants_stream(body: &[u8]) -> bool {
    const KEY: &[u8] = b"\"stream\"";
    let mut rest = body;
    while let Some(at) = rest.windows(KEY.len()).position(|w| w == KEY) {
        rest = &rest[at + KEY.len()..];
        let value = rest
            .iter()
            .position(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b':'))
            .map_or(&[][..], |i| &rest[i..]);
        if value.starts_with(b"true") {
            return true;
        }
    }
    false
}

fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: &'static [u8],
) -> Response<AnswerBody> {
    let mut resp = Response::new(Either::Left(Full::new(Bytes::from_static(body))));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// Which fake provider a request is for.
#[derive(Clone, Copy)]
enum Route {
    OpenAi,
    Anthropic,
    Responses,
}

async fn handle(
    req: Request<Incoming>,
    shared: &'static Shared,
) -> Result<Response<AnswerBody>, Infallible> {
    let path = req.uri().path();
    let route = if req.method() != Method::POST {
        None
    } else if path.ends_with("/chat/completions") {
        Some(Route::OpenAi)
    } else if path.ends_with("/messages") {
        Some(Route::Anthropic)
    } else if path.ends_with("/responses") {
        Some(Route::Responses)
    } else {
        None
    };
    // Always drain the body, so the connection stays reusable.
    let body = match req.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let Some(route) = route else {
        return Ok(respond(
            StatusCode::NOT_FOUND,
            "application/json",
            NOT_FOUND,
        ));
    };
    if let Some(d) = shared.delay {
        tokio::time::sleep(d).await;
    }
    Ok(if wants_stream(&body) {
        let events = match route {
            Route::OpenAi => &shared.events,
            Route::Anthropic => &shared.anthropic_frames,
            Route::Responses => &shared.responses_frames,
        };
        let ids = matches!(route, Route::Responses).then(|| {
            let number = NEXT_RESPONSE.fetch_add(1, Ordering::Relaxed);
            (shared.responses_frame_ids.as_slice(), number)
        });
        let mut resp = Response::new(Either::Right(Events {
            events,
            ids,
            next: 0,
            gap: shared.chunk_gap,
            sleep: None,
        }));
        let headers = resp.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        headers.insert("cache-control", HeaderValue::from_static("no-cache"));
        resp
    } else {
        match route {
            Route::OpenAi => respond(StatusCode::OK, "application/json", COMPLETION),
            Route::Anthropic => respond(StatusCode::OK, "application/json", ANTHROPIC_MESSAGE),
            Route::Responses => {
                let number = NEXT_RESPONSE.fetch_add(1, Ordering::Relaxed);
                let whole = with_own_id(shared.responses, &shared.responses_ids, number);
                let mut resp = Response::new(Either::Left(Full::new(whole)));
                resp.headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                resp
            }
        }
    })
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let opts = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("fake_provider: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let listener = match TcpListener::bind(opts.addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("fake_provider: bind {}: {e}", opts.addr);
            std::process::exit(1);
        }
    };
    let local = listener.local_addr().unwrap_or(opts.addr);
    println!("listening on {local}");
    // The reading script may close its end of the pipe; ignore a failed flush.
    let _ = std::io::Write::flush(&mut std::io::stdout());

    let responses: &'static [u8] = responses_whole().leak();
    let responses_frames = responses_stream_frames(opts.stream_chunks);
    let shared: &'static Shared = Box::leak(Box::new(Shared {
        delay: opts.delay,
        chunk_gap: opts.chunk_gap,
        events: stream_events(opts.stream_chunks),
        anthropic_frames: anthropic_stream_frames(opts.stream_chunks),
        responses,
        responses_ids: id_offsets(responses),
        responses_frame_ids: responses_frames.iter().map(|f| id_offsets(f)).collect(),
        responses_frames,
    }));
    if let Some(path) = opts.unix {
        let _ = std::fs::remove_file(&path);
        let unix = match UnixListener::bind(&path) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("fake_provider: bind {}: {e}", path.display());
                std::process::exit(1);
            }
        };
        tokio::spawn(async move {
            loop {
                match unix.accept().await {
                    Ok((stream, _)) => serve(stream, shared),
                    Err(e) => accept_failed(e).await,
                }
            }
        });
    }
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                serve(stream, shared);
            }
            Err(e) => accept_failed(e).await,
        }
    }
}

/// Serve one connection on its own task.
fn serve<S>(stream: S, shared: &'static Shared)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let service = service_fn(move |req| handle(req, shared));
        let _ = http1::Builder::new()
            .keep_alive(true)
            .serve_connection(TokioIo::new(stream), service)
            .await;
    });
}

/// EMFILE and friends: back off briefly rather than spin.
async fn accept_failed(e: std::io::Error) {
    eprintln!("fake_provider: accept: {e}");
    tokio::time::sleep(Duration::from_millis(10)).await;
}

#[cfg(test)]
mod tests {
    use super::{
        anthropic_stream_frames, id_offsets, responses_stream_frames, responses_whole,
        stream_events, wants_stream, with_own_id, ANTHROPIC_MESSAGE,
    };

    #[test]
    fn detects_stream_flag() {
        assert!(wants_stream(br#"{"model":"x","stream":true}"#));
        assert!(wants_stream(br#"{"stream" : true,"model":"x"}"#));
        assert!(!wants_stream(br#"{"model":"x","stream":false}"#));
        assert!(!wants_stream(br#"{"model":"x"}"#));
    }

    #[test]
    fn streams_the_asked_number_of_chunks() {
        let events = stream_events(21);
        assert_eq!(events.len(), 22, "21 chunks and [DONE]");
        for event in &events[..21] {
            let text = std::str::from_utf8(event).unwrap();
            let json = text
                .strip_prefix("data: ")
                .unwrap()
                .strip_suffix("\n\n")
                .unwrap();
            let value: serde_json::Value = serde_json::from_str(json).unwrap();
            assert_eq!(value["object"], "chat.completion.chunk");
        }
        assert_eq!(&events[21][..], b"data: [DONE]\n\n");
        let usage: serde_json::Value =
            serde_json::from_slice(&events[20][6..events[20].len() - 2]).unwrap();
        assert_eq!(usage["usage"]["completion_tokens"], 18);
    }

    #[test]
    fn anthropic_stream_is_paced_like_the_openai_one() {
        let frames = anthropic_stream_frames(21);
        assert_eq!(
            frames.len(),
            stream_events(21).len(),
            "the same number of body frames"
        );
        let text: String = frames
            .iter()
            .map(|f| std::str::from_utf8(f).unwrap())
            .collect();
        let mut names = Vec::new();
        let mut said = String::new();
        for event in text.split_terminator("\n\n") {
            let (name, data) = event.split_once('\n').unwrap();
            let name = name.strip_prefix("event: ").unwrap();
            let value: serde_json::Value =
                serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
            assert_eq!(value["type"], name);
            if name == "content_block_delta" {
                assert_eq!(value["delta"]["type"], "text_delta");
                said.push_str(value["delta"]["text"].as_str().unwrap());
            }
            if name == "message_delta" {
                assert_eq!(value["delta"]["stop_reason"], "end_turn");
                assert_eq!(value["usage"]["output_tokens"], 18);
            }
            names.push(name.to_owned());
        }
        assert_eq!(names.len(), 3 + 18 + 3);
        assert_eq!(names[..3], ["message_start", "content_block_start", "ping"]);
        assert_eq!(
            names[21..],
            ["content_block_stop", "message_delta", "message_stop"]
        );
        assert!(said.starts_with("Hello! How can I help you today?"));
        let whole: serde_json::Value = serde_json::from_slice(ANTHROPIC_MESSAGE).unwrap();
        assert_eq!(whole["type"], "message");
    }

    #[test]
    fn every_responses_answer_has_its_own_id() {
        let whole = responses_whole();
        let at = id_offsets(&whole);
        assert_eq!(at.len(), 1);
        let ids: Vec<String> = [1, 0xabc]
            .into_iter()
            .map(|n| {
                let v: serde_json::Value =
                    serde_json::from_slice(&with_own_id(&whole, &at, n)).unwrap();
                v["id"].as_str().unwrap().to_owned()
            })
            .collect();
        assert_eq!(ids, ["resp_0000000000000001", "resp_0000000000000abc"]);
        let frames = responses_stream_frames(21);
        let first = with_own_id(&frames[0], &id_offsets(&frames[0]), 7);
        let last = frames.last().unwrap();
        let last = with_own_id(last, &id_offsets(last), 7);
        for frame in [first, last] {
            let text = std::str::from_utf8(&frame).unwrap();
            assert!(text.contains("\"id\":\"resp_0000000000000007\""), "{text}");
        }
    }

    #[test]
    fn responses_stream_is_paced_like_the_openai_one() {
        let frames = responses_stream_frames(21);
        assert_eq!(frames.len(), stream_events(21).len());
        let text: String = frames
            .iter()
            .map(|f| std::str::from_utf8(f).unwrap())
            .collect();
        let mut names = Vec::new();
        let mut said = String::new();
        for (seq, event) in text.split_terminator("\n\n").enumerate() {
            let (name, data) = event.split_once('\n').unwrap();
            let name = name.strip_prefix("event: ").unwrap();
            let value: serde_json::Value =
                serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
            assert_eq!(value["type"], name);
            assert_eq!(value["sequence_number"], seq);
            if name == "response.output_text.delta" {
                said.push_str(value["delta"].as_str().unwrap());
            }
            if name == "response.completed" {
                let response = &value["response"];
                assert_eq!(response["status"], "completed");
                assert_eq!(response["usage"]["output_tokens"], 18);
                assert_eq!(response["output"][0]["content"][0]["text"], said.as_str());
            }
            names.push(name.to_owned());
        }
        assert_eq!(names.len(), 4 + 18 + 4);
        assert_eq!(names[0], "response.created");
        assert_eq!(names.last().unwrap(), "response.completed");
        assert!(said.starts_with("Hello! How can I help you today?"));
        let whole: serde_json::Value = serde_json::from_slice(&responses_whole()).unwrap();
        assert_eq!(whole["object"], "response");
        assert_eq!(
            whole["output"][0]["content"][0]["text"],
            "Hello! How can I help you today?"
        );
    }
}
