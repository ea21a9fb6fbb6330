//! Overload at a scale CI affords, against the real binary (`benches/overload.sh` is the
//! measurement at 2,000 connections): idle keep-alive connections and streams from a slow
//! provider held open at once. `/health` still answers on a fresh connection; once the clients
//! have gone, the daemon's open file descriptors come back to their baseline and every
//! upstream stream has been cancelled, none left running.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::fake_upstream::{fixtures, FakeUpstream};
use common::process::Setup;
use common::{providers_toml, PREFIX};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

const IDLE: usize = 200;
const STREAMS: usize = 200;
/// Between the fake's stream events: a stream of `openai_stream` lasts about 6 s, far longer
/// than the clients stay.
const FRAME_DELAY: Duration = Duration::from_millis(500);
/// Files the daemon may open lazily after its first completion (none are known; a leak of one
/// descriptor per connection is hundreds).
const FD_SLACK: usize = 4;
/// How long the daemon gets to let go of everything once the clients have gone.
const SETTLE: Duration = Duration::from_secs(5);
/// Generous: a health check under this load that takes this long has failed.
const HEALTH_BOUND: Duration = Duration::from_secs(5);

fn open_fds(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read the daemon's /proc/PID/fd")
        .count()
}

/// The test process holds every client socket and the fake provider's side of each stream.
fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).expect("setrlimit");
    }
    let (soft, _) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    let needed = (IDLE + 2 * STREAMS + 256) as u64;
    assert!(
        soft >= needed,
        "the test needs {needed} fds, the limit is {soft}"
    );
}

/// A connection that has had one `GET /health` answered (so the daemon accepted and served
/// it) and then says nothing: a keep-alive connection at rest.
async fn idle_connection(socket: &Path) -> UnixStream {
    let mut s = UnixStream::connect(socket).await.expect("connect idle");
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    // The health answer is small: its head and JSON body end with the object's brace.
    while !answer.ends_with(b"}") {
        let n = s.read(&mut buf).await.expect("read health");
        assert!(n > 0, "closed before the answer");
        answer.extend_from_slice(&buf[..n]);
    }
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    s
}

/// A streaming request whose answer has begun (head and first event read); nothing more is
/// read, and the client leaves when the stream is dropped.
async fn started_stream(socket: &Path) -> UnixStream {
    let body = json!({
        "llm_configuration": {
            "model": "gpt-4o-mini",
            "provider": "openai",
            "messages": [{"role": "user", "content": "Hello"}]
        },
        "cache": false
    })
    .to_string();
    let mut s = UnixStream::connect(socket).await.expect("connect stream");
    let head = format!(
        "POST {PREFIX}/completion/stream HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(head.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.windows(5).any(|w| w == b"data:") {
        let n = s.read(&mut buf).await.expect("read stream");
        assert!(n > 0, "closed before the first event");
        answer.extend_from_slice(&buf[..n]);
    }
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    s
}

/// `n` connections opened by `open`, 50 at a time (the listen backlog is not the subject).
async fn open_many<F, Fut>(socket: &Path, n: usize, open: F) -> Vec<UnixStream>
where
    F: Fn(std::path::PathBuf) -> Fut,
    Fut: std::future::Future<Output = UnixStream> + Send + 'static,
{
    let mut all = Vec::with_capacity(n);
    while all.len() < n {
        let batch: Vec<_> = (all.len()..n.min(all.len() + 50))
            .map(|_| tokio::spawn(open(socket.to_path_buf())))
            .collect();
        for task in batch {
            all.push(task.await.expect("open task"));
        }
    }
    all
}

async fn health_answers(socket: &Path) {
    let started = Instant::now();
    let answer = tokio::time::timeout(HEALTH_BOUND, common::raw_get(socket, "/health"))
        .await
        .unwrap_or_else(|_| panic!("/health did not answer within {HEALTH_BOUND:?} under load"));
    assert_eq!(answer.status(), 200, "{}", answer.head);
    assert!(started.elapsed() < HEALTH_BOUND);
}

/// 200 idle and 200 streaming connections at once: health answers, and once they have gone
/// the daemon holds no more descriptors than before and the provider saw every stream
/// abandoned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_streaming_connections_leave_nothing_behind() {
    raise_fd_limit();
    let slow = fixtures::openai_stream().with_frame_delay(FRAME_DELAY);
    let openai = FakeUpstream::start(move |req, _| {
        if req.body["stream"] == json!(true) {
            slow.clone()
        } else {
            fixtures::openai_chat()
        }
    })
    .await;
    let setup = Setup::new("", &providers_toml(&openai.base_url(), &openai.base_url()));
    let mut daemon = tokio::task::block_in_place(|| setup.serve("overload"));
    let pid = daemon.pid().as_raw();
    let socket = setup.socket.clone();

    // A first completion, so that what the daemon opens on its first one counts in the
    // baseline (its first pooled upstream connection among them).
    let warmup = json!({
        "llm_configuration": {"model": "gpt-4o-mini", "provider": "openai",
                              "messages": [{"role": "user", "content": "Hello"}]},
        "cache": false
    });
    let reply = common::raw_post(&socket, &format!("{PREFIX}/completion"), &warmup).await;
    assert_eq!(reply.status(), 200, "{}", reply.head);
    health_answers(&socket).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let baseline = open_fds(pid);

    let idle = open_many(&socket, IDLE, |p| async move { idle_connection(&p).await }).await;
    let streams = open_many(
        &socket,
        STREAMS,
        |p| async move { started_stream(&p).await },
    )
    .await;
    let held = open_fds(pid);
    assert!(
        held >= baseline + IDLE + STREAMS,
        "the daemon holds every connection: {held} fds, baseline {baseline}"
    );
    for _ in 0..3 {
        health_answers(&socket).await;
    }
    assert_eq!(openai.calls(), 1 + STREAMS, "one provider call per stream");
    assert_eq!(openai.abandoned_streams(), 0, "every stream still runs");

    drop(idle);
    drop(streams);
    let deadline = Instant::now() + SETTLE;
    loop {
        let (fds, abandoned) = (open_fds(pid), openai.abandoned_streams());
        if fds <= baseline + FD_SLACK && abandoned == STREAMS {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{SETTLE:?} after the clients left: {fds} fds open (baseline {baseline}, {held} \
             while held), {abandoned} of {STREAMS} upstream streams cancelled; stderr:\n{}",
            daemon.stderr()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    health_answers(&socket).await;
}

fn peak_rss_bytes(pid: i32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    let kb: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmHWM in /proc/PID/status");
    kb * 1024
}

/// An OpenAI stream of `events` one-letter deltas, each event padded (as OpenAI's
/// `obfuscation` field pads them) to about `pad` bytes.
fn padded_stream(events: usize, pad: usize) -> Vec<String> {
    let chunk = |delta: &str, finish: &str| {
        format!(
            r#"data: {{"id":"chatcmpl-big","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{{"index":0,"delta":{delta},"finish_reason":{finish}}}],"obfuscation":"{}"}}"#,
            "p".repeat(pad)
        ) + "\n\n"
    };
    let mut frames = vec![chunk(r#"{"role":"assistant","content":""}"#, "null")];
    frames.extend((0..events).map(|_| chunk(r#"{"content":"x"}"#, "null")));
    frames.push(chunk("{}", r#""stop""#));
    frames.push("data: [DONE]\n\n".to_owned());
    frames
}

/// A stream that is not cached keeps no copy of the events it has forwarded (the answer's
/// text is all its record needs), so its memory does not grow with its length: four
/// concurrent streams of 8.5 MB of upstream events each raise the daemon's peak RSS by less
/// than one of them weighs (about 3 MB here; 30 MB when every event was kept).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uncached_stream_keeps_no_copy_of_its_events() {
    use common::fake_upstream::Behavior;
    const EVENTS: usize = 4_000;
    const STREAMS: usize = 4;
    let frames = padded_stream(EVENTS, 2_000);
    let one_stream: usize = frames.iter().map(String::len).sum();
    let big = Behavior::Sse {
        frames,
        delay: Duration::ZERO,
    };
    // The first call is a small stream, so that what the daemon builds on its first one counts
    // in the baseline.
    let openai = FakeUpstream::start(move |_, i| {
        if i == 0 {
            fixtures::openai_stream()
        } else {
            big.clone()
        }
    })
    .await;
    let setup = Setup::new("", &providers_toml(&openai.base_url(), &openai.base_url()));
    let mut daemon = tokio::task::block_in_place(|| setup.serve("big-streams"));
    let pid = daemon.pid().as_raw();
    let request = json!({
        "llm_configuration": {"model": "gpt-4o-mini", "provider": "openai",
                              "messages": [{"role": "user", "content": "Hello"}]},
        "cache": false
    });
    let path = format!("{PREFIX}/completion/stream");
    let first = common::raw_post(&setup.socket, &path, &request).await;
    assert_eq!(first.status(), 200, "{}", first.head);
    let baseline = peak_rss_bytes(pid);

    let streams: Vec<_> = (0..STREAMS)
        .map(|_| {
            let (socket, path, request) = (setup.socket.clone(), path.clone(), request.clone());
            tokio::spawn(async move { common::raw_post(&socket, &path, &request).await })
        })
        .collect();
    for stream in streams {
        let answer = stream.await.expect("stream task");
        assert_eq!(answer.status(), 200, "{}", answer.head);
        let xs = answer
            .chunk_strings()
            .iter()
            .filter(|c| c.contains(r#"{"chunk": "x"}"#))
            .count();
        assert_eq!(xs, EVENTS, "every delta forwarded");
    }
    let grew = peak_rss_bytes(pid).saturating_sub(baseline);
    assert!(
        grew < one_stream,
        "the daemon's peak RSS grew by {} KiB over {STREAMS} streams of {} KiB each",
        grew / 1024,
        one_stream / 1024
    );
}

const HOLDERS: usize = 64;
/// Each holder's declared body: just under `max_body`.
const HELD_BODY: usize = 1_000_000;
/// What a holder sends of it before it waits.
const HELD_SENT: usize = 900_000;
/// `max_request_memory` below: room for 16 declared bodies (977 KiB each), not 17.
const BUDGET_MIB: usize = 16;
const ADMITTED: usize = BUDGET_MIB * 1024 / HELD_BODY.div_ceil(1024);
/// Generous: the debug daemon idles near 50 MiB; the holders' bodies (61 MB) and more would
/// pass it, the budget's 16 MiB do not.
const HELD_PEAK_BOUND: usize = 100 * 1024 * 1024;

/// A client that sends a request head declaring `HELD_BODY` bytes and `HELD_SENT` of them, then
/// waits; sends the answer's head on `answers` if one comes (a refusal). The connection stays
/// open until the returned task is aborted.
fn holder(
    socket: &Path,
    answers: tokio::sync::mpsc::UnboundedSender<String>,
) -> tokio::task::JoinHandle<()> {
    let socket = socket.to_path_buf();
    tokio::spawn(async move {
        let stream = UnixStream::connect(&socket).await.expect("connect holder");
        let (mut read, mut write) = stream.into_split();
        let head = format!(
            "POST {PREFIX}/completion HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {HELD_BODY}\r\n\r\n"
        );
        // The daemon may refuse before reading the body: a failed write is not the test's.
        // The body is held open (not shut down) until the task is aborted.
        let send = async {
            if write.write_all(head.as_bytes()).await.is_ok() {
                let _ = write.write_all(&vec![b' '; HELD_SENT]).await;
            }
            std::future::pending::<()>().await
        };
        let answer = async {
            let mut answer = Vec::new();
            let mut buf = [0u8; 4096];
            while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
                match read.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => answer.extend_from_slice(&buf[..n]),
                }
            }
            String::from_utf8_lossy(&answer).into_owned()
        };
        // A refused client has its answer and leaves (both halves dropped); a held one waits.
        tokio::select! {
            () = send => {}
            answer = answer => { let _ = answers.send(answer); }
        }
    })
}

/// `request_memory.held_bytes` of `/status`.
async fn request_memory_held(socket: &Path) -> u64 {
    let status = common::raw_get(socket, "/status").await;
    let body: serde_json::Value =
        serde_json::from_slice(&status.chunks.concat()).expect("status json");
    body["request_memory"]["held_bytes"]
        .as_u64()
        .expect("held_bytes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_holding_bodies_past_the_memory_budget_are_refused_and_the_rest_served() {
    raise_fd_limit();
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let setup = Setup::new(
        &format!("max_body = \"1MiB\"\nmax_rendered = \"1MiB\"\nmax_request_memory = \"{BUDGET_MIB}MiB\""),
        &providers_toml(&openai.base_url(), &openai.base_url()),
    );
    let mut daemon = tokio::task::block_in_place(|| setup.serve("memory-budget"));
    let pid = daemon.pid().as_raw();
    let socket = setup.socket.clone();
    health_answers(&socket).await;

    let (answers_tx, mut answers) = tokio::sync::mpsc::unbounded_channel();
    let holders: Vec<_> = (0..HOLDERS)
        .map(|_| holder(&socket, answers_tx.clone()))
        .collect();
    // Every client past the budget is refused at once, with a way to come back.
    for _ in 0..HOLDERS - ADMITTED {
        let head = answers.recv().await.expect("an answer");
        assert!(head.starts_with("HTTP/1.1 503"), "{head}");
        assert!(
            common::header_in(&head, "retry-after") == Some("1"),
            "{head}"
        );
    }
    // The admitted ones hold their share; the daemon serves others beside them.
    let share = (ADMITTED * HELD_BODY.div_ceil(1024) * 1024) as u64;
    let deadline = Instant::now() + common::wait::DEADLINE;
    while request_memory_held(&socket).await < share {
        assert!(
            Instant::now() < deadline,
            "the admitted bodies were never reserved"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    health_answers(&socket).await;
    let small = json!({
        "llm_configuration": {"model": "gpt-4o-mini", "provider": "openai",
                              "messages": [{"role": "user", "content": "Hello"}]},
        "cache": false
    });
    let reply = common::raw_post(&socket, &format!("{PREFIX}/completion"), &small).await;
    assert_eq!(reply.status(), 200, "{}", reply.head);
    assert!(
        answers.try_recv().is_err(),
        "an admitted holder was answered"
    );
    assert_eq!(
        request_memory_held(&socket).await,
        share,
        "no more than the budget"
    );
    let peak = peak_rss_bytes(pid);
    assert!(
        peak < HELD_PEAK_BOUND,
        "peak RSS {} MiB with {HOLDERS} clients holding {HELD_SENT} bytes each",
        peak / (1024 * 1024)
    );

    // They leave; their bytes come back, and full-size requests are served again.
    for h in &holders {
        h.abort();
    }
    for h in holders {
        let _ = h.await;
    }
    let deadline = Instant::now() + common::wait::DEADLINE;
    while request_memory_held(&socket).await > 0 {
        assert!(
            Instant::now() < deadline,
            "the holders' bytes never came back"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut full = small.clone();
    full["metadata"] = json!({"pad": "p".repeat(HELD_BODY - 300)});
    let path = format!("{PREFIX}/completion");
    let replies = futures_util::future::join_all(
        (0..ADMITTED).map(|_| common::raw_post(&socket, &path, &full)),
    )
    .await;
    for reply in replies {
        assert_eq!(reply.status(), 200, "{}", reply.head);
    }
    drop(daemon);
}
