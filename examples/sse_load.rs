//! A load client for streamed (SSE) answers, which oha cannot time: N connections send the
//! same POST for D seconds, each reading every answer to its end, and it prints requests/s,
//! the time to the first `data:` event (TTFB) and the time to the answer's end, p50 and p99.
//!
//! `sse_load (--url http://HOST:PORT/PATH | --unix SOCKET --path /PATH) [-c N] [-z 5s]
//! [-d BODY] [-H 'name: value']... [--json]`
//!
//! One HTTP/1.1 keep-alive connection per client, a fresh one after an error. At the
//! deadline a request in flight is read to its end and counted (as `oha -w` does). TTFB runs
//! from just before the request is written to the arrival of the body bytes that hold the
//! first `data:` line. Runs on one thread: at a few connections the client's own cost stays
//! small next to the server's, and on a machine where the server is pinned to one core the
//! client stays on the other.
//!
//! Anthropic's event stream (`event: NAME` lines before the `data:` lines, as the Messages API
//! sends) is told by its first `event:` line: TTFB is timed the same way (its first `data:`
//! line is `message_start`'s), the stream is done at its `event: message_stop` (the total time
//! is taken when that event arrives; the body is still read to its end), and one that ends
//! without it (an `event: error`, a cut stream) counts as an error. OpenAI's Responses event
//! stream (its `event:` lines name `response.*` events) is done at its `event:
//! response.completed` the same way; one without it (`response.failed`, `response.incomplete`,
//! a cut stream) is an error. Other streams are done at the body's end, as before.
//!
//! `--json` prints one JSON object (the load script reads it): `requests`, `seconds`, `rps`,
//! `ttfb_p50_ms`, `ttfb_p99_ms`, `total_p50_ms`, `total_p99_ms`, `events_min`, `events_max`
//! (`data:` lines per answer), `errors` and `statuses` (count per HTTP status).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};

const USAGE: &str = "usage: sse_load (--url http://HOST:PORT/PATH | --unix SOCKET --path /PATH) \
                     [-c N] [-z DURATION] [-d BODY] [-H 'name: value']... [--json]";

/// Where the requests go.
#[derive(Clone)]
enum Target {
    Tcp { addr: String },
    Unix { socket: PathBuf },
}

struct Options {
    target: Target,
    host: String,
    path: String,
    connections: usize,
    duration: Duration,
    body: Bytes,
    headers: Vec<(HeaderName, HeaderValue)>,
    json: bool,
}

fn parse_args() -> Result<Options> {
    let mut url = None;
    let mut socket = None;
    let mut path = None;
    let mut connections = 8;
    let mut duration = Duration::from_secs(5);
    let mut body = Bytes::from_static(
        br#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}],"stream":true}"#,
    );
    let mut headers = Vec::new();
    let mut json = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--url" => url = Some(value()?),
            "--unix" => socket = Some(PathBuf::from(value()?)),
            "--path" => path = Some(value()?),
            "-c" => connections = value()?.parse().context("-c")?,
            "-z" => duration = humantime::parse_duration(&value()?).context("-z")?,
            "-d" => body = Bytes::from(value()?),
            "-H" => {
                let header = value()?;
                let (name, v) = header
                    .split_once(':')
                    .with_context(|| format!("-H {header:?}: not `name: value`"))?;
                headers.push((
                    HeaderName::from_bytes(name.trim().as_bytes()).context("-H name")?,
                    HeaderValue::from_str(v.trim()).context("-H value")?,
                ));
            }
            "--json" => json = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    if connections == 0 {
        bail!("-c 0: at least one connection");
    }
    let (target, host, path) = match (url, socket) {
        (Some(url), None) => {
            let rest = url
                .strip_prefix("http://")
                .with_context(|| format!("--url {url}: only http:// is spoken"))?;
            let (authority, rest) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let path = path.unwrap_or_else(|| rest.to_owned());
            let target = Target::Tcp {
                addr: authority.to_owned(),
            };
            (target, authority.to_owned(), path)
        }
        (None, Some(socket)) => {
            let path = path.context("--unix needs --path")?;
            (Target::Unix { socket }, "localhost".to_owned(), path)
        }
        _ => bail!("one of --url or --unix\n{USAGE}"),
    };
    if !path.starts_with('/') {
        bail!("path {path:?} does not start with /");
    }
    Ok(Options {
        target,
        host,
        path,
        connections,
        duration,
        body,
        headers,
        json,
    })
}

/// What one connection saw.
#[derive(Default)]
struct Tally {
    ttfb: Vec<Duration>,
    total: Vec<Duration>,
    events: Vec<usize>,
    errors: usize,
    statuses: BTreeMap<u16, usize>,
    first_error: Option<String>,
}

async fn connect(target: &Target) -> Result<SendRequest<Full<Bytes>>> {
    match target {
        Target::Tcp { addr } => {
            let stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            handshake(stream).await
        }
        Target::Unix { socket } => handshake(UnixStream::connect(socket).await?).await,
    }
}

async fn handshake<S>(stream: S) -> Result<SendRequest<Full<Bytes>>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// Whether `buf` holds a line that starts with `data:`.
fn has_data_line(buf: &[u8]) -> bool {
    buf.starts_with(b"data:") || buf.windows(6).any(|w| w == b"\ndata:")
}

/// The line that ends an Anthropic event stream.
const MESSAGE_STOP: &[u8] = b"event: message_stop";
/// The start of every event line of a Responses stream, and the line that ends one.
const RESPONSES_EVENT: &[u8] = b"event: response.";
const RESPONSE_COMPLETED: &[u8] = b"event: response.completed";

/// Whether a line starting with `prefix` ends at or after `from` in `buf` (the bytes before
/// `from` were looked at already).
fn has_line_since(buf: &[u8], from: usize, prefix: &[u8]) -> bool {
    let start = from.saturating_sub(prefix.len());
    (start == 0 && buf.starts_with(prefix))
        || buf[start..]
            .windows(prefix.len() + 1)
            .any(|w| w[0] == b'\n' && &w[1..] == prefix)
}

/// One request, read to its end; its TTFB, total time and `data:` lines go into `tally`.
async fn one(
    sender: &mut SendRequest<Full<Bytes>>,
    opts: &Options,
    tally: &mut Tally,
) -> Result<()> {
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(&opts.path)
        .header(HOST, &opts.host)
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(opts.body.clone()))?;
    for (name, value) in &opts.headers {
        req.headers_mut().insert(name.clone(), value.clone());
    }
    sender.ready().await?;
    let started = Instant::now();
    let response = sender.send_request(req).await?;
    let status = response.status().as_u16();
    *tally.statuses.entry(status).or_default() += 1;
    let mut body = response.into_body();
    let mut seen = Vec::new();
    let mut ttfb = None;
    let mut stopped = None;
    let mut completed = None;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            let from = seen.len();
            seen.extend_from_slice(&data);
            if ttfb.is_none() && has_data_line(&seen) {
                ttfb = Some(started.elapsed());
            }
            if stopped.is_none() && has_line_since(&seen, from, MESSAGE_STOP) {
                stopped = Some(started.elapsed());
            }
            if completed.is_none() && has_line_since(&seen, from, RESPONSE_COMPLETED) {
                completed = Some(started.elapsed());
            }
        }
    }
    let mut total = started.elapsed();
    if status != 200 {
        bail!("HTTP {status}: {}", String::from_utf8_lossy(&seen));
    }
    let Some(ttfb) = ttfb else {
        bail!(
            "answer without a data: line: {}",
            String::from_utf8_lossy(&seen)
        );
    };
    if has_line_since(&seen, 0, RESPONSES_EVENT) {
        let Some(completed) = completed else {
            bail!(
                "Responses event stream without response.completed: {}",
                String::from_utf8_lossy(&seen)
            );
        };
        total = completed;
    } else if has_line_since(&seen, 0, b"event:") {
        let Some(stopped) = stopped else {
            bail!(
                "Anthropic event stream without message_stop: {}",
                String::from_utf8_lossy(&seen)
            );
        };
        total = stopped;
    }
    let events = usize::from(seen.starts_with(b"data:"))
        + seen.windows(6).filter(|w| w == b"\ndata:").count();
    tally.ttfb.push(ttfb);
    tally.total.push(total);
    tally.events.push(events);
    Ok(())
}

async fn client(opts: &'static Options, deadline: Instant) -> Tally {
    let mut tally = Tally::default();
    let mut sender = None;
    while Instant::now() < deadline {
        let s = match sender.as_mut() {
            Some(s) => s,
            None => match connect(&opts.target).await {
                Ok(s) => sender.insert(s),
                Err(e) => {
                    tally.errors += 1;
                    tally.first_error.get_or_insert(format!("connect: {e:#}"));
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        if let Err(e) = one(s, opts, &mut tally).await {
            tally.errors += 1;
            tally.first_error.get_or_insert(format!("{e:#}"));
            sender = None;
        }
    }
    tally
}

/// The nearest-rank percentile `q` of sorted `values`, in milliseconds.
fn percentile_ms(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1000.0
}

fn main() -> Result<()> {
    let opts: &'static Options = Box::leak(Box::new(parse_args()?));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (tally, seconds) = runtime.block_on(async {
        let started = Instant::now();
        let deadline = started + opts.duration;
        let clients: Vec<_> = (0..opts.connections)
            .map(|_| tokio::spawn(client(opts, deadline)))
            .collect();
        let mut all = Tally::default();
        for c in clients {
            let t = c.await?;
            all.ttfb.extend(t.ttfb);
            all.total.extend(t.total);
            all.events.extend(t.events);
            all.errors += t.errors;
            for (status, n) in t.statuses {
                *all.statuses.entry(status).or_default() += n;
            }
            if all.first_error.is_none() {
                all.first_error = t.first_error;
            }
        }
        anyhow::Ok((all, started.elapsed().as_secs_f64()))
    })?;
    let mut tally = tally;
    tally.ttfb.sort_unstable();
    tally.total.sort_unstable();
    let requests = tally.total.len();
    let rps = requests as f64 / seconds;
    let (ttfb50, ttfb99) = (
        percentile_ms(&tally.ttfb, 0.5),
        percentile_ms(&tally.ttfb, 0.99),
    );
    let (total50, total99) = (
        percentile_ms(&tally.total, 0.5),
        percentile_ms(&tally.total, 0.99),
    );
    let events_min = tally.events.iter().min().copied().unwrap_or(0);
    let events_max = tally.events.iter().max().copied().unwrap_or(0);
    if opts.json {
        let statuses: BTreeMap<String, usize> = tally
            .statuses
            .iter()
            .map(|(s, n)| (s.to_string(), *n))
            .collect();
        let out = serde_json::json!({
            "requests": requests,
            "seconds": seconds,
            "rps": rps,
            "ttfb_p50_ms": ttfb50,
            "ttfb_p99_ms": ttfb99,
            "total_p50_ms": total50,
            "total_p99_ms": total99,
            "events_min": events_min,
            "events_max": events_max,
            "errors": tally.errors,
            "first_error": tally.first_error,
            "statuses": statuses,
        });
        println!("{out}");
    } else {
        println!(
            "{requests} streams in {seconds:.2} s: {rps:.0}/s, {} connections",
            opts.connections
        );
        println!("TTFB  p50 {ttfb50:.3} ms  p99 {ttfb99:.3} ms");
        println!("total p50 {total50:.3} ms  p99 {total99:.3} ms");
        println!("data: lines per answer {events_min}..{events_max}");
        println!("statuses {:?}, errors {}", tally.statuses, tally.errors);
        if let Some(e) = &tally.first_error {
            println!("first error: {e}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{
        has_data_line, has_line_since, percentile_ms, MESSAGE_STOP, RESPONSES_EVENT,
        RESPONSE_COMPLETED,
    };
    use std::time::Duration;

    #[test]
    fn finds_a_data_line() {
        assert!(has_data_line(b"data: {}\n\n"));
        assert!(has_data_line(b": comment\ndata: {}"));
        assert!(!has_data_line(b": comment\n"));
        assert!(!has_data_line(b"event: x\nmetadata: y"));
    }

    #[test]
    fn finds_message_stop_across_frames() {
        let stream = b"event: ping\ndata: {}\n\nevent: message_stop\ndata: {}\n\n";
        assert!(has_line_since(stream, 0, MESSAGE_STOP));
        // The line split over two frames: the second starts mid-line.
        for from in 1..stream.len() - 20 {
            assert!(has_line_since(stream, from, MESSAGE_STOP), "from {from}");
        }
        assert!(!has_line_since(stream, stream.len(), MESSAGE_STOP));
        assert!(has_line_since(b"event: message_stop\n", 0, MESSAGE_STOP));
        assert!(!has_line_since(b"data: {}\n\n", 0, b"event:"));
        assert!(!has_line_since(
            b"data: {\"x\":\"event: message_stop\"}",
            0,
            MESSAGE_STOP
        ));
    }

    #[test]
    fn tells_a_responses_stream_and_its_end() {
        let stream = b"event: response.created\ndata: {}\n\nevent: response.output_text.delta\n\
                       data: {}\n\nevent: response.completed\ndata: {}\n\n";
        assert!(has_line_since(stream, 0, RESPONSES_EVENT));
        assert!(has_line_since(stream, 0, RESPONSE_COMPLETED));
        for from in 1..stream.len() - 30 {
            assert!(
                has_line_since(stream, from, RESPONSE_COMPLETED),
                "from {from}"
            );
        }
        let failed = b"event: response.created\ndata: {}\n\nevent: response.failed\ndata: {}\n\n";
        assert!(has_line_since(failed, 0, RESPONSES_EVENT));
        assert!(!has_line_since(failed, 0, RESPONSE_COMPLETED));
        let anthropic = b"event: message_start\ndata: {}\n\nevent: message_stop\ndata: {}\n\n";
        assert!(!has_line_since(anthropic, 0, RESPONSES_EVENT));
    }

    #[test]
    fn nearest_rank() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile_ms(&v, 0.5), 50.0);
        assert_eq!(percentile_ms(&v, 0.99), 99.0);
        assert_eq!(percentile_ms(&v[..1], 0.99), 1.0);
    }
}
