//! A small, fast stand-in for OpenAI's chat completions endpoint, for load tests.
//!
//! `cargo run --release --example fake_provider -- --addr 127.0.0.1:0 [--delay-ms N]
//! [--unix PATH]` (`--port N` is short for `--addr 127.0.0.1:N`). The first stdout line is
//! `listening on 127.0.0.1:PORT`, so a script can read the bound port. With `--unix PATH` it
//! also serves the same routes on a Unix socket at PATH: the load test's floor for "a hyper
//! server answering static bytes over a Unix socket", beside promptd on the same transport.
//!
//! `POST /v1/chat/completions` (any path ending in `/chat/completions`) reads the request body
//! fully and answers a fixed `chat.completion` ("Hello! How can I help you today?", usage
//! 12/9/21, model `gpt-4o-mini-2024-07-18`). With `"stream": true` in the body it answers an SSE
//! stream instead: role chunk, content deltas, finish chunk, usage chunk with `choices: []`,
//! `data: [DONE]`. Anything else is a 404. The bodies are static bytes, keep-alive is on and the
//! runtime is multi-threaded, so the fake costs as little as possible next to what it measures.
//! It only ever binds where `--addr` says (loopback by default).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};

const USAGE: &str =
    "usage: fake_provider [--addr HOST:PORT | --port PORT] [--delay-ms N] [--unix PATH]";

static COMPLETION: &[u8] = br#"{"id":"chatcmpl-fake123","object":"chat.completion","created":1741569952,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I help you today?","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":9,"total_tokens":21,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},"service_tier":"default","system_fingerprint":"fp_b8bc95a0ac"}"#;

static STREAM: &[u8] = concat!(
    r#"data: {"id":"chatcmpl-fake123","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_b8bc95a0ac","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}"#,
    "\n\n",
    r#"data: {"id":"chatcmpl-fake123","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_b8bc95a0ac","choices":[{"index":0,"delta":{"content":"Hello!"},"logprobs":null,"finish_reason":null}],"usage":null}"#,
    "\n\n",
    r#"data: {"id":"chatcmpl-fake123","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_b8bc95a0ac","choices":[{"index":0,"delta":{"content":" How can"},"logprobs":null,"finish_reason":null}],"usage":null}"#,
    "\n\n",
    r#"data: {"id":"chatcmpl-fake123","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_b8bc95a0ac","choices":[{"index":0,"delta":{"content":" I help you"},"logprobs":null,"finish_reason":null}],"usage":null}"#,
    "\n\n",
    r#"data: {"id":"chatcmpl-fake123","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_b8bc95a0ac","choices":[{"index":0,"delta":{"content":" today?"},"logprobs":null,"finish_reason":null}],"usage":null}"#,
    "\n\n",
    r#"data: {"id":"chatcmpl-fake123","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_b8bc95a0ac","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}"#,
    "\n\n",
    r#"data: {"id":"chatcmpl-fake123","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_b8bc95a0ac","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":9,"total_tokens":21,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}"#,
    "\n\n",
    "data: [DONE]\n\n",
)
.as_bytes();

static NOT_FOUND: &[u8] =
    br#"{"error":{"message":"fake_provider: unknown route","type":"invalid_request_error","param":null,"code":null}}"#;

/// Command-line options, parsed by hand.
struct Options {
    addr: SocketAddr,
    delay: Option<Duration>,
    unix: Option<PathBuf>,
}

fn parse_args() -> Result<Options, String> {
    let mut addr: SocketAddr = ([127, 0, 0, 1], 0).into();
    let mut delay = None;
    let mut unix = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--addr" => {
                let v = value("--addr")?;
                addr = v.parse().map_err(|e| format!("--addr {v}: {e}"))?;
            }
            "--port" => {
                let v = value("--port")?;
                let port: u16 = v.parse().map_err(|e| format!("--port {v}: {e}"))?;
                addr.set_port(port);
            }
            "--delay-ms" => {
                let v = value("--delay-ms")?;
                let ms: u64 = v.parse().map_err(|e| format!("--delay-ms {v}: {e}"))?;
                delay = (ms > 0).then(|| Duration::from_millis(ms));
            }
            "--unix" => unix = Some(PathBuf::from(value("--unix")?)),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Options { addr, delay, unix })
}

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
) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from_static(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

async fn handle(
    req: Request<Incoming>,
    delay: Option<Duration>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let is_chat = req.method() == Method::POST && req.uri().path().ends_with("/chat/completions");
    // Always drain the body, so the connection stays reusable.
    let body = match req.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    };
    if !is_chat {
        return Ok(respond(
            StatusCode::NOT_FOUND,
            "application/json",
            NOT_FOUND,
        ));
    }
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    Ok(if wants_stream(&body) {
        let mut resp = respond(StatusCode::OK, "text/event-stream", STREAM);
        resp.headers_mut()
            .insert("cache-control", HeaderValue::from_static("no-cache"));
        resp
    } else {
        respond(StatusCode::OK, "application/json", COMPLETION)
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

    let delay = opts.delay;
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
                    Ok((stream, _)) => serve(stream, delay),
                    Err(e) => accept_failed(e).await,
                }
            }
        });
    }
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                serve(stream, delay);
            }
            Err(e) => accept_failed(e).await,
        }
    }
}

/// Serve one connection on its own task.
fn serve<S>(stream: S, delay: Option<Duration>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let service = service_fn(move |req| handle(req, delay));
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
    use super::wants_stream;

    #[test]
    fn detects_stream_flag() {
        assert!(wants_stream(br#"{"model":"x","stream":true}"#));
        assert!(wants_stream(br#"{"stream" : true,"model":"x"}"#));
        assert!(!wants_stream(br#"{"model":"x","stream":false}"#));
        assert!(!wants_stream(br#"{"model":"x"}"#));
    }
}
