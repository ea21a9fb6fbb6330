//! Nothing answered is lost when the daemon is killed: the real binary under concurrent load
//! (Parea whole answers, Parea streams, OpenAI answers) with the log collector down, SIGKILLed
//! at a random moment, several rounds on the same state directory. Then the collector comes up
//! and every completion a client received in full must arrive there (resends allowed, with the
//! same idempotency key). Before records were written ahead of the answer, every round lost
//! those answered in the last group-commit window (~100 ms).

mod common;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::fake_upstream::{fixtures, refused_base_url, Behavior, FakeUpstream};
use common::process::{Setup, EXIT_TIMEOUT};
use common::{header_in, providers_toml, status_in, PREFIX};
use nix::sys::signal::Signal;
use rand::Rng;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ROUNDS: usize = 4;
const CLIENTS: usize = 48;
/// Generous: the answers a round waits for take well under a second on an idle machine; this
/// bound only turns a daemon that stopped answering into a failure instead of a hang.
const KILL_WAIT: Duration = Duration::from_secs(120);

/// What one exchange gave the client.
enum Exchange {
    /// The whole answer arrived: the completion's trace id.
    Answered(String),
    /// An answer that is not a completion (an error status): nothing to count.
    Other,
    /// The connection failed or was cut: the daemon is gone.
    Gone,
}

/// One request over a fresh connection, read to its end.
async fn exchange(socket: &Path, path: &str, body: &Value) -> Option<(String, Vec<u8>)> {
    let body = serde_json::to_vec(body).ok()?;
    let mut stream = tokio::net::UnixStream::connect(socket).await.ok()?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.ok()?;
    stream.write_all(&body).await.ok()?;
    let mut bytes = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut bytes))
        .await
        .ok()?
        .ok()?;
    let split = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&bytes[..split]).into_owned();
    Some((head, bytes[split + 4..].to_vec()))
}

/// The body of a complete response: all `Content-Length` bytes, or every chunk up to the last.
fn complete_body(head: &str, body: &[u8]) -> Option<Vec<u8>> {
    if let Some(len) = header_in(head, "content-length") {
        let len: usize = len.parse().ok()?;
        return (body.len() == len).then(|| body.to_vec());
    }
    let mut rest = body;
    let mut out = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
        let size = usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).ok()?, 16).ok()?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}

/// Request `n` of a client: a Parea answer, a Parea stream or an OpenAI answer, in turn.
async fn ask(socket: &Path, trace: &str, n: usize) -> Exchange {
    let messages = json!([{"role": "user", "content": format!("say hello ({trace})")}]);
    let parea = json!({
        "trace_id": trace,
        "llm_configuration": {"model": "gpt-4o-mini", "provider": "openai", "messages": messages}
    });
    let (path, body) = match n % 3 {
        0 => (format!("{PREFIX}/completion"), parea),
        1 => (format!("{PREFIX}/completion/stream"), parea),
        _ => (
            "/v1/chat/completions".to_owned(),
            json!({"model": "openai/gpt-4o-mini", "messages": messages}),
        ),
    };
    let Some((head, raw)) = exchange(socket, &path, &body).await else {
        return Exchange::Gone;
    };
    let Some(body) = complete_body(&head, &raw) else {
        return Exchange::Gone;
    };
    if status_in(&head) != 200 {
        return Exchange::Other;
    }
    let text = String::from_utf8_lossy(&body);
    match n % 3 {
        0 => {
            let value: Value = serde_json::from_slice(&body).expect("a complete JSON answer");
            assert_eq!(value["content"], fixtures::HELLO, "{text}");
            Exchange::Answered(value["inference_id"].as_str().expect("inference_id").into())
        }
        1 => {
            let id = text
                .strip_prefix("data: ID_START")
                .and_then(|t| t.split_once("ID_END"))
                .map(|(id, _)| id.to_owned())
                .unwrap_or_else(|| panic!("a Parea stream starts with its id: {text}"));
            assert!(!text.contains("\"error\""), "{text}");
            Exchange::Answered(id)
        }
        _ => {
            let value: Value = serde_json::from_slice(&body).expect("a complete JSON answer");
            assert_eq!(
                value["choices"][0]["message"]["content"],
                fixtures::HELLO,
                "{text}"
            );
            let id = header_in(&head, "x-promptd-trace-id").expect("x-promptd-trace-id");
            Exchange::Answered(id.to_owned())
        }
    }
}

/// One client: requests one after another until the daemon is gone. Each answer is counted
/// in `count`, which the test watches to pick its moment to kill.
async fn client(
    socket: PathBuf,
    round: usize,
    c: usize,
    answered: Arc<Mutex<Vec<String>>>,
    count: Arc<tokio::sync::watch::Sender<usize>>,
) {
    for n in 0.. {
        match ask(&socket, &format!("kill-{round}-{c}-{n}"), n + c).await {
            Exchange::Answered(trace) => {
                answered.lock().expect("lock").push(trace);
                count.send_modify(|n| *n += 1);
            }
            Exchange::Other => {}
            Exchange::Gone => return,
        }
    }
}

/// The trace ids the collector got, each with the idempotency keys it came with.
fn delivered(collector: &FakeUpstream) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for request in collector.requests() {
        let Some(trace) = request.body["trace_id"].as_str() else {
            continue;
        };
        let key = request.header("idempotency-key").unwrap_or("").to_owned();
        out.entry(trace.to_owned()).or_default().push(key);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answered_completions_survive_sigkill_under_load() {
    let chat = FakeUpstream::start(|request, _| {
        let answer = if request.body["stream"] == true {
            fixtures::openai_stream()
        } else {
            fixtures::openai_chat()
        };
        answer.after(Duration::from_millis(15))
    })
    .await;
    let collector = FakeUpstream::always(Behavior::json(200, "{}")).await;
    let providers = providers_toml(&chat.base_url(), &refused_base_url());
    let upstream = |base_url: &str| {
        format!(
            "[spool]\nflush_interval = \"100ms\"\n[upstream]\nbase_url = \"{base_url}\"\napi_key = \"pk-test\"\n"
        )
    };
    let down = refused_base_url();
    let setup = Setup::new(&upstream(&down), &providers);

    let mut answered: Vec<String> = Vec::new();
    let mut per_round = Vec::new();
    for round in 0..ROUNDS {
        let mut daemon = tokio::task::block_in_place(|| setup.serve(&format!("round-{round}")));
        let got = Arc::new(Mutex::new(Vec::new()));
        let count = Arc::new(tokio::sync::watch::Sender::new(0usize));
        let mut answers = count.subscribe();
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let (got, count) = (Arc::clone(&got), Arc::clone(&count));
                tokio::spawn(client(setup.socket.clone(), round, c, got, count))
            })
            .collect();
        // Mid-load: after a random number of answers (several group commits in), so the kill
        // lands at a moment no commit is aligned with, however fast the machine is.
        let target = rand::rng().random_range(CLIENTS..4 * CLIENTS);
        // The borrow `wait_for` returns is a read lock on the count: let go of it at once, or
        // the clients' next `send_modify` blocks their worker threads.
        let reached = tokio::time::timeout(KILL_WAIT, async {
            answers.wait_for(|n| *n >= target).await.map(|_| ())
        })
        .await;
        assert!(
            matches!(reached, Ok(Ok(()))),
            "round {round}: fewer than {target} answers in {KILL_WAIT:?}; stderr:\n{}",
            daemon.stderr()
        );
        daemon.signal(Signal::SIGKILL);
        tokio::task::block_in_place(|| daemon.wait_exit(EXIT_TIMEOUT));
        for c in clients {
            c.await.expect("client task");
        }
        let got = std::mem::take(&mut *got.lock().expect("lock"));
        assert!(
            got.len() >= target,
            "round {round}: only {} answers before the kill; stderr:\n{}",
            got.len(),
            daemon.stderr()
        );
        per_round.push(got.len());
        answered.extend(got);
    }

    // The collector comes up: everything answered in every round is shipped.
    let config = std::fs::read_to_string(&setup.config).expect("read config");
    std::fs::write(&setup.config, config.replace(&down, &collector.base_url()))
        .expect("write config");
    let _daemon = tokio::task::block_in_place(|| setup.serve("shipping"));
    let expected: HashSet<&String> = answered.iter().collect();
    assert_eq!(expected.len(), answered.len(), "trace ids are unique");
    let deadline = Instant::now() + Duration::from_secs(60);
    let got = loop {
        let got = delivered(&collector);
        let missing = expected.iter().filter(|t| !got.contains_key(**t)).count();
        if missing == 0 {
            break got;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} of {} answered completions never reached the collector \
             (answered per round: {per_round:?}, delivered: {})",
            expected.len(),
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut resent = 0;
    for (trace, keys) in &got {
        if keys.len() > 1 {
            resent += keys.len() - 1;
            assert!(
                keys.iter().all(|k| k == &keys[0]),
                "{trace} was sent again under another idempotency key: {keys:?}"
            );
        }
    }
    eprintln!(
        "SIGKILL rounds: {ROUNDS}, answered per round {per_round:?}, answered {}, lost 0, \
         delivered {} traces ({resent} resends, same key)",
        answered.len(),
        got.len()
    );
}
