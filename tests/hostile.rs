//! Hostile input against the real daemon: requests within `max_body` that would make it build
//! far more than they weigh are refused, naming the limit, before anything large is built; the
//! daemon keeps serving.

mod common;

use common::fake_upstream::{fixtures, FakeUpstream};
use common::{openai_hello, providers_toml, TestDaemon};
use serde_json::{json, Value};

/// The amplification the hardening issue found: a 505 KB body with `{{x}}` 100,000 times and a
/// 5,000-character input renders 500 MB.
fn amplifying_request() -> Value {
    json!({
        "llm_configuration": {
            "model": "gpt-4o-mini",
            "provider": "openai",
            "messages": [{"role": "user", "content": "{{x}}".repeat(100_000)}]
        },
        "llm_inputs": {"x": "a".repeat(5_000)}
    })
}

/// The config of a daemon in front of `openai` (as both providers): `top` (top-level keys and
/// sections) first, `provider` (keys) added to each provider.
fn config(openai: &FakeUpstream, top: &str, provider: &str) -> String {
    let providers = providers_toml(&openai.base_url(), &openai.base_url());
    let providers = if provider.is_empty() {
        providers
    } else {
        providers.replace("timeout = \"5s\"", &format!("timeout = \"5s\"\n{provider}"))
    };
    format!("{top}\n{providers}")
}

/// The OpenAI hello request, cached or not.
fn hello(cache: bool) -> Value {
    let mut request = openai_hello();
    request["cache"] = cache.into();
    request
}

/// A third connection, beyond `max_connections = 2`: it sends a `/health` request (and
/// `Connection: close`) that waits in the kernel's backlog until a slot frees.
async fn health_from_the_backlog(daemon: &TestDaemon) -> tokio::net::UnixStream {
    use tokio::io::AsyncWriteExt;
    let mut third = tokio::net::UnixStream::connect(&daemon.socket)
        .await
        .expect("the kernel takes it into the backlog");
    third
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    third
}

/// The answer to [`health_from_the_backlog`]'s request, read to its end within 5 s: a 200.
async fn served(third: &mut tokio::net::UnixStream, answer: &mut Vec<u8>, why: &str) {
    use tokio::io::AsyncReadExt;
    tokio::time::timeout(std::time::Duration::from_secs(5), third.read_to_end(answer))
        .await
        .unwrap_or_else(|_| panic!("not {why}"))
        .expect("read");
    let text = String::from_utf8_lossy(answer);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
}

#[tokio::test]
async fn a_rendering_over_max_rendered_is_refused_before_it_is_built() {
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let daemon = TestDaemon::start(&config(&openai, "", "")).await;

    let reply = daemon.post("/completion", &amplifying_request()).await;
    assert_eq!(reply.status, 413, "{}", reply.json());
    assert_eq!(reply.error_type(), "rendered_too_large");
    let message = reply.error_message();
    assert!(
        message.contains("500000000 bytes") && message.contains("16777216 bytes"),
        "names the size and the limit: {message}"
    );
    assert!(message.contains("max_rendered"), "names the key: {message}");
    assert_eq!(openai.calls(), 0, "the provider is never asked");

    let stream = daemon.stream(&amplifying_request()).await;
    assert_eq!(stream.status(), 413, "streams are bounded too");

    // Still serving.
    let reply = daemon.post("/completion", &openai_hello()).await;
    assert_eq!(reply.status, 200, "{}", reply.json());
    daemon.stop().await;
}

#[tokio::test]
async fn a_deployments_rendering_is_bounded_by_the_configured_limit() {
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("prompts")).expect("prompts dir");
    let content = "{{x}}".repeat(1_000);
    std::fs::write(
        dir.path().join("prompts/echo.json"),
        json!({"provider": "openai", "model": "gpt-4o-mini",
               "messages": [{"role": "user", "content": content}]})
        .to_string(),
    )
    .expect("prompt file");
    let toml = config(&openai, "max_rendered = \"64KiB\"", "");
    let daemon = TestDaemon::start_in(dir, &toml).await;

    // 1,000 uses of 100 bytes: 100,000 bytes, over 64 KiB.
    let big = json!({"deployment_id": "echo", "llm_inputs": {"x": "b".repeat(100)}});
    let reply = daemon.post("/completion", &big).await;
    assert_eq!(reply.status, 413, "{}", reply.json());
    assert!(
        reply
            .error_message()
            .contains("100000 bytes, over the limit of 65536 bytes"),
        "{}",
        reply.error_message()
    );
    let reply = daemon.post("/deployed-prompt", &big).await;
    assert_eq!(reply.status, 413, "{}", reply.json());
    assert_eq!(openai.calls(), 0);

    // Within the limit it renders and is answered.
    let small = json!({"deployment_id": "echo", "llm_inputs": {"x": "c"}});
    let reply = daemon.post("/completion", &small).await;
    assert_eq!(reply.status, 200, "{}", reply.json());
    let sent = openai.last_request().expect("provider request");
    assert_eq!(sent.body["messages"][0]["content"], "c".repeat(1_000));
    daemon.stop().await;
}

#[tokio::test]
async fn a_provider_api_key_that_is_no_header_value_is_refused_by_name() {
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let daemon = TestDaemon::start(&config(&openai, "", "")).await;
    let mut request = openai_hello();
    request["provider_api_key"] = json!("sk-one\r\nx-injected: yes");
    let reply = daemon.post("/completion", &request).await;
    assert_eq!(reply.status, 422, "{}", reply.json());
    assert_eq!(reply.json()["error"]["field"], "provider_api_key");
    assert!(
        !reply.json().to_string().contains("sk-one"),
        "the key is not echoed: {}",
        reply.json()
    );
    assert_eq!(openai.calls(), 0);
    daemon.stop().await;
}

/// A client's trace id with a line break and an ANSI escape, logged when its stream fails:
/// the daemon's log shows it escaped, on the one line of its event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_text_cannot_forge_a_log_line() {
    use common::process::{Setup, POLL};
    let openai = FakeUpstream::always(fixtures::openai_stream_cut()).await;
    let setup = Setup::new("", &config(&openai, "", ""));
    let daemon = tokio::task::block_in_place(|| setup.serve("forge"));
    let forged = "t1\n2026-12-01T00:00:00.000000Z ERROR promptd: forged \u{1b}[31mred\u{0}";
    let mut request = hello(false);
    request["trace_id"] = json!(forged);
    let client = promptd::client::DaemonClient::new(&setup.socket);
    let body = bytes::Bytes::from(request.to_string());
    let _ = client
        .call(
            hyper::Method::POST,
            "/api/parea/v1/completion/stream",
            Some(body),
        )
        .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let log = loop {
        let log = daemon.stderr();
        if log.contains("stream failed after it started") {
            break log;
        }
        assert!(std::time::Instant::now() < deadline, "no log line: {log}");
        tokio::time::sleep(POLL).await;
    };
    assert!(
        !log.lines()
            .any(|l| l.starts_with("2026-12-01T00:00:00.000000Z ERROR")),
        "a forged line: {log}"
    );
    assert!(
        !log.contains('\u{1b}') && !log.contains('\u{0}'),
        "raw controls: {log:?}"
    );
    assert!(log.contains("t1\\n2026-12-01"), "escaped in place: {log}");
}

/// An upstream that quotes the key it got in its error (as OpenAI-compatible servers do):
/// neither the configured key nor a request's own reaches the client, the log record or the
/// log status; nor does the collector's key when the collector does the same.
#[tokio::test]
async fn no_api_key_leaves_through_an_error() {
    use common::fake_upstream::Behavior;
    let echo = |req: &common::fake_upstream::RecordedRequest, _: usize| {
        let got = req
            .header("authorization")
            .or_else(|| req.header("x-api-key"))
            .unwrap_or("")
            .to_owned();
        Behavior::json(
            401,
            json!({"error": {"message": format!("Incorrect API key provided: {got}."),
                             "type": "invalid_request_error", "code": "invalid_api_key",
                             "param": got}})
            .to_string(),
        )
    };
    let openai = FakeUpstream::start(echo).await;
    let collector = FakeUpstream::start(echo).await;
    let toml = format!(
        "[spool]\nflush_interval = \"20ms\"\n[upstream]\nbase_url = \"{}\"\napi_key = \"pk-collector-key-1\"\n{}",
        collector.base_url(),
        providers_toml(&openai.base_url(), &openai.base_url())
    );
    let daemon = TestDaemon::start(&toml).await;

    let reply = daemon.post("/completion", &openai_hello()).await;
    assert_eq!(reply.status, 401, "{}", reply.json());
    let text = reply.json().to_string();
    assert!(!text.contains("sk-test-openai"), "configured key: {text}");
    assert!(text.contains("[redacted key]"), "{text}");

    // The OpenAI route renders the provider's code and param too: masked as the message.
    let chat =
        json!({"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]});
    let bytes = bytes::Bytes::from(chat.to_string());
    let reply = daemon
        .request(hyper::Method::POST, "/v1/chat/completions", Some(bytes))
        .await;
    assert_eq!(reply.status, 401, "{}", reply.json());
    let error = &reply.json()["error"];
    assert_eq!(error["code"], "invalid_api_key");
    assert!(!error.to_string().contains("sk-test-openai"), "{error}");
    assert!(
        error["param"]
            .as_str()
            .is_some_and(|p| p.contains("[redacted key]")),
        "{error}"
    );

    let mut own_key = openai_hello();
    own_key["provider_api_key"] = json!("sk-request-key-42");
    let reply = daemon.post("/completion", &own_key).await;
    assert_eq!(reply.status, 401);
    assert!(
        !reply.json().to_string().contains("sk-request-key-42"),
        "{}",
        reply.json()
    );

    // The log records of both failures, as shipped (the collector refuses them, echoing its
    // own key), and the log status showing that refusal.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while collector.calls() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "records never shipped"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    for sent in collector.requests() {
        let record = String::from_utf8_lossy(&sent.raw).into_owned();
        assert!(
            !record.contains("sk-test-openai") && !record.contains("sk-request-key-42"),
            "{record}"
        );
    }
    let status = daemon.get("/logs/status").await.json().to_string();
    assert!(status.contains("redacted key"), "{status}");
    assert!(!status.contains("pk-collector-key-1"), "{status}");
    daemon.stop().await;
}

/// A client that leaves mid-stream still gets its log record: status `cancelled`, the text so
/// far, its time to first token; with the cache on (the shared call goes on and is cached)
/// and off (the upstream call is cancelled).
#[tokio::test]
async fn a_client_leaving_mid_stream_is_logged_as_cancelled() {
    use common::fake_upstream::Behavior;
    use std::time::Duration;
    let slow = fixtures::openai_stream().with_frame_delay(Duration::from_millis(80));
    let openai = FakeUpstream::always(slow).await;
    let collector = FakeUpstream::always(Behavior::json(200, "{}")).await;
    let toml = common::shipping_to(
        &collector,
        &providers_toml(&openai.base_url(), &openai.base_url()),
    );
    let daemon = TestDaemon::start(&toml).await;
    for (n, cache) in [(1, false), (2, true)] {
        let mut request = hello(cache);
        request["trace_id"] = json!(format!("leaver-{cache}"));
        common::leave_after_first_bytes(
            &daemon.socket,
            "/api/parea/v1/completion/stream",
            &request,
        )
        .await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while collector.calls() < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no record (cache {cache})"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let record = collector.requests()[n - 1].body.clone();
        assert_eq!(record["trace_id"], format!("leaver-{cache}"), "{record}");
        assert_eq!(record["status"], "cancelled", "cache {cache}: {record}");
        let output = record["output"].as_str().unwrap_or_default();
        assert!(
            fixtures::HELLO.starts_with(output) && output.len() < fixtures::HELLO.len(),
            "the text so far, not the whole answer (cache {cache}): {record}"
        );
        assert!(record["time_to_first_token"].as_f64().is_some(), "{record}");
    }
    daemon.stop().await;
}

/// Beyond `max_connections`, a connection waits in the kernel's backlog (not refused, not an
/// error) until one closes; then it is served.
#[tokio::test]
async fn connections_beyond_the_limit_wait_until_one_closes() {
    use std::time::Duration;
    use tokio::io::AsyncReadExt;
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let daemon = TestDaemon::start(&config(&openai, "max_connections = 2", "")).await;
    let idle_a = tokio::net::UnixStream::connect(&daemon.socket)
        .await
        .expect("a");
    let idle_b = tokio::net::UnixStream::connect(&daemon.socket)
        .await
        .expect("b");
    // Let the daemon accept both.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut third = health_from_the_backlog(&daemon).await;
    let mut answer = Vec::new();
    let waited =
        tokio::time::timeout(Duration::from_millis(300), third.read_to_end(&mut answer)).await;
    assert!(
        waited.is_err(),
        "served beyond the limit: {}",
        String::from_utf8_lossy(&answer)
    );
    drop(idle_a);
    served(&mut third, &mut answer, "served once a slot is free").await;
    drop(idle_b);
    daemon.stop().await;
}

/// A connection at rest, after an answer or before its first request, is closed once
/// `header_timeout` passes without a request head, so idle clients cannot hold every slot:
/// the connection waiting beyond `max_connections` is then served.
#[tokio::test]
async fn idle_connections_are_closed_after_header_timeout_freeing_their_slots() {
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let top = "max_connections = 2\nheader_timeout = \"300ms\"";
    let daemon = TestDaemon::start(&config(&openai, top, "")).await;
    // One answered, then silent (keep-alive); one that never sends a byte.
    let mut answered = tokio::net::UnixStream::connect(&daemon.socket)
        .await
        .expect("a");
    answered
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut buf = [0u8; 1024];
    let n = answered.read(&mut buf).await.expect("read");
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    let mut silent = tokio::net::UnixStream::connect(&daemon.socket)
        .await
        .expect("b");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    let mut third = health_from_the_backlog(&daemon).await;
    let mut answer = Vec::new();
    served(
        &mut third,
        &mut answer,
        "served once the idle connections timed out",
    )
    .await;
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "it waited for a slot: {:?}",
        started.elapsed()
    );
    for (name, idle) in [("answered", &mut answered), ("silent", &mut silent)] {
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(1), idle.read_to_end(&mut rest))
            .await
            .unwrap_or_else(|_| panic!("the {name} connection is still open"));
        // A connection that never sent a request may get a 408 before the close.
        assert!(
            read.is_err() || rest.is_empty() || rest.starts_with(b"HTTP/1.1 408"),
            "{name}: {}",
            String::from_utf8_lossy(&rest)
        );
    }
    daemon.stop().await;
}

/// An answer over `cache.max_entry_bytes` is served but not stored (counted), so one huge
/// answer cannot push the rest of the cache out.
#[tokio::test]
async fn an_answer_over_the_entry_limit_is_served_not_cached() {
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let toml = config(&openai, "[cache]\nmax_entry_bytes = \"100B\"", "");
    let daemon = TestDaemon::start(&toml).await;
    for _ in 0..2 {
        let reply = daemon.post("/completion", &openai_hello()).await;
        assert_eq!(reply.status, 200, "{}", reply.json());
        assert_eq!(reply.json()["cache_hit"], false);
    }
    assert_eq!(openai.calls(), 2, "nothing was stored");
    let stats = daemon.get("/cache/stats").await.json();
    assert_eq!(stats["too_large"], 2, "{stats}");
    assert_eq!(stats["entries"], 0, "{stats}");
    daemon.stop().await;
}

/// A stream that runs over its provider's `max_stream_duration` is cut with an error event
/// (and not stored), however lively it is: shared and cached, or private (`cache: false`).
#[tokio::test]
async fn a_stream_over_max_stream_duration_is_cut() {
    use std::time::Duration;
    let slow = fixtures::openai_stream().with_frame_delay(Duration::from_millis(150));
    let openai = FakeUpstream::always(slow).await;
    let toml = config(&openai, "", "max_stream_duration = \"350ms\"");
    let daemon = TestDaemon::start(&toml).await;
    for cache in [true, false] {
        // The error event names the limit: the cut came from it (no clock window to race).
        let raw = daemon.stream(&hello(cache)).await;
        let text = raw.chunk_strings().concat();
        assert!(
            text.contains("max_stream_duration"),
            "cache {cache}: ends with an error naming the limit: {text}"
        );
    }
    let stats = daemon.get("/cache/stats").await.json();
    assert_eq!(stats["entries"], 0, "a cut stream is not stored: {stats}");
    daemon.stop().await;
}

/// An upstream that goes silent mid-stream for longer than `stream_idle_timeout` is cut with
/// an error event naming the wait; a lively stream that lasts longer than the wait in all is
/// not (the clock starts again at every event). Shared and private streams alike.
#[tokio::test]
async fn a_stream_silent_past_stream_idle_timeout_is_cut() {
    use std::time::Duration;
    for (gap, cut) in [(400, true), (60, false)] {
        let frames = fixtures::openai_stream().with_frame_delay(Duration::from_millis(gap));
        let openai = FakeUpstream::always(frames).await;
        let toml = config(&openai, "", "stream_idle_timeout = \"200ms\"");
        let daemon = TestDaemon::start(&toml).await;
        for cache in [true, false] {
            let started = std::time::Instant::now();
            let text = daemon.stream(&hello(cache)).await.chunk_strings().concat();
            let elapsed = started.elapsed();
            if cut {
                assert!(
                    text.contains("no stream event within 200ms"),
                    "cache {cache}: cut with an error naming the wait: {text}"
                );
            } else {
                assert!(
                    !text.contains("error") && elapsed > Duration::from_millis(200),
                    "cache {cache}: whole after {elapsed:?}: {text}"
                );
            }
        }
        daemon.stop().await;
    }
}

/// Beyond a provider's `max_concurrent` calls in flight, a call waits `queue_timeout` for a
/// slot, then answers 503 `provider_busy` with `Retry-After`; the daemon keeps serving.
#[tokio::test]
async fn calls_beyond_max_concurrent_wait_then_get_503_with_retry_after() {
    // The first call holds the only slot until the gate opens.
    let gate = common::fake_upstream::Gate::new();
    let openai = FakeUpstream::always(fixtures::openai_chat().held(&gate)).await;
    let toml = config(&openai, "", "max_concurrent = 1\nqueue_timeout = \"100ms\"");
    let daemon = std::sync::Arc::new(TestDaemon::start(&toml).await);
    let first = hello(false);
    let holder = {
        let daemon = std::sync::Arc::clone(&daemon);
        let first = first.clone();
        tokio::spawn(async move { daemon.post("/completion", &first).await })
    };
    common::wait::wait_until("the first call at the provider", || openai.calls() == 1).await;
    let reply = daemon.post("/completion", &first).await;
    assert_eq!(reply.status, 503, "{}", reply.json());
    assert_eq!(reply.error_type(), "provider_busy");
    assert_eq!(
        reply.headers.get("retry-after").map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );
    assert!(
        reply.error_message().contains("max_concurrent"),
        "{}",
        reply.error_message()
    );
    gate.open();
    let held = holder.await.expect("first call");
    assert_eq!(held.status, 200, "the call holding the slot is answered");
    // A freed slot serves the next call.
    assert_eq!(daemon.post("/completion", &first).await.status, 200);
    assert_eq!(
        openai.calls(),
        2,
        "the refused call never reached the provider"
    );
}

/// Over `rate_limit` requests per second (bursts of `rate_limit_burst`), a peer gets 429 with
/// `Retry-After`; health checks are not counted.
#[tokio::test]
async fn a_peer_over_its_rate_gets_429_with_retry_after() {
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let toml = config(&openai, "rate_limit = 1\nrate_limit_burst = 2", "");
    let daemon = TestDaemon::start(&toml).await;
    assert_eq!(
        daemon.post("/completion", &openai_hello()).await.status,
        200
    );
    assert_eq!(
        daemon.post("/completion", &openai_hello()).await.status,
        200
    );
    let reply = daemon.post("/completion", &openai_hello()).await;
    assert_eq!(reply.status, 429, "{}", reply.json());
    assert_eq!(reply.error_type(), "rate_limited");
    assert_eq!(
        reply.headers.get("retry-after").map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );
    for _ in 0..5 {
        assert_eq!(
            daemon.get("/health").await.status,
            200,
            "health is not counted"
        );
    }
    assert_eq!(
        openai.calls(),
        1,
        "the second was a cache hit, the third never ran"
    );
    daemon.stop().await;
}
