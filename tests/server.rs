//! The server around the routes: peer credentials, socket file handling, the TCP listener,
//! body limits, bad input, and graceful shutdown with a stream in flight.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::fake_upstream::{fixtures, FakeUpstream};
use common::{hello_request, openai_hello, providers_toml, raw_post, TestDaemon, PREFIX};
use hyper::Method;
use promptd::config::{Config, Overrides};
use promptd::server::bind_unix;
use promptd::StartupError;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn openai_daemon(extra: &str) -> (TestDaemon, FakeUpstream) {
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let toml = format!(
        "{extra}\n{}",
        providers_toml(&openai.base_url(), &openai.base_url())
    );
    (TestDaemon::start(&toml).await, openai)
}

#[tokio::test]
async fn a_uid_not_in_allowed_uids_gets_403_on_every_route() {
    let me = nix::unistd::geteuid().as_raw();
    let (daemon, openai) =
        openai_daemon(&format!("allowed_uids = [{}]", me.wrapping_add(4242))).await;
    for reply in [
        daemon.get("/health").await,
        daemon.post("/completion", &openai_hello()).await,
    ] {
        assert_eq!(reply.status, 403);
        assert_eq!(reply.error_type(), "forbidden");
        assert_eq!(
            reply.headers.get("connection").map(|v| v.as_bytes()),
            Some(&b"close"[..]),
            "a refused peer's connection is closed after its 403"
        );
        assert!(
            reply.error_message().contains(&format!("uid {me}")),
            "{}",
            reply.error_message()
        );
    }
    assert_eq!(openai.calls(), 0);
    daemon.stop().await;

    let (daemon, _openai) = openai_daemon(&format!("allowed_uids = [{me}]")).await;
    assert_eq!(daemon.get("/health").await.status, 200);
    daemon.stop().await;
}

#[tokio::test]
async fn socket_file_gets_socket_mode() {
    let (daemon, _o) = openai_daemon("socket_mode = \"0600\"").await;
    let mode = std::fs::metadata(&daemon.socket)
        .expect("socket exists")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    daemon.stop().await;
}

#[tokio::test]
async fn stale_socket_is_replaced_live_one_refused_and_files_are_not_clobbered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.sock");
    // A socket file left by a dead daemon: bound, then its listener dropped.
    drop(std::os::unix::net::UnixListener::bind(&path).expect("bind"));
    assert!(path.exists());
    let live = bind_unix(&path, 0o660).expect("stale socket replaced");
    match bind_unix(&path, 0o660) {
        Err(StartupError::AlreadyRunning(p)) => assert_eq!(p, path),
        other => panic!("expected AlreadyRunning, got {other:?}"),
    }
    let err = bind_unix(&path, 0o660).unwrap_err().to_string();
    assert!(err.contains("another promptd is listening on"), "{err}");
    drop(live);

    let file = dir.path().join("regular");
    std::fs::write(&file, b"data").expect("write");
    assert!(matches!(
        bind_unix(&file, 0o660),
        Err(StartupError::NotASocket(_))
    ));
    assert_eq!(std::fs::read(&file).expect("still there"), b"data");

    let nested = dir.path().join("a/b/c.sock");
    bind_unix(&nested, 0o660).expect("parent directories created");
}

#[tokio::test]
async fn tcp_listener_serves_the_same_routes() {
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let overrides = Overrides {
        socket: Some(dir.path().join("p.sock")),
        tcp: Some(format!("127.0.0.1:{port}")),
        state_dir: Some(dir.path().join("state")),
        prompts_dir: None,
    };
    let config = Config::from_toml(
        &providers_toml(&openai.base_url(), &openai.base_url()),
        "t",
        &overrides,
    )
    .expect("config");
    let daemon = TestDaemon::start_with(dir, config).await;
    let client = reqwest::Client::new();
    let r = client
        .post(format!("http://127.0.0.1:{port}{PREFIX}/completion"))
        .json(&openai_hello())
        .send()
        .await
        .expect("tcp request");
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["content"], fixtures::HELLO);
    daemon.stop().await;
}

#[test]
fn remote_tcp_address_needs_allow_remote() {
    let err = Config::from_toml("tcp = \"0.0.0.0:8787\"", "t", &Overrides::default()).unwrap_err();
    assert!(err.to_string().contains("allow_remote"), "{err}");
}

#[tokio::test]
async fn bodies_over_the_limit_are_413_and_the_daemon_keeps_serving() {
    let (daemon, openai) = openai_daemon("max_body = \"1KiB\"").await;
    let mut big = openai_hello();
    big["llm_configuration"]["messages"][0]["content"] = json!("x".repeat(4096));
    let reply = daemon.post("/completion", &big).await;
    assert_eq!(reply.status, 413);
    assert_eq!(reply.error_type(), "payload_too_large");

    // Chunked, without Content-Length: the limit is found while reading.
    let mut stream = tokio::net::UnixStream::connect(&daemon.socket)
        .await
        .expect("connect");
    let head = format!("POST {PREFIX}/completion HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await.expect("write");
    for _ in 0..4 {
        let chunk = "y".repeat(512);
        let _ = stream
            .write_all(format!("{:x}\r\n{chunk}\r\n", chunk.len()).as_bytes())
            .await;
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response)).await;
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");

    assert_eq!(
        daemon.post("/completion", &openai_hello()).await.status,
        200
    );
    assert_eq!(openai.calls(), 1);
    daemon.stop().await;
}

#[tokio::test]
async fn bad_input_gets_clear_errors_and_the_daemon_keeps_serving() {
    let (daemon, openai) = openai_daemon("").await;
    let cases: Vec<(&'static [u8], u16, &str, Option<&str>)> = vec![
        (b"{not json", 400, "invalid_json", None),
        (b"", 400, "invalid_json", None),
        (b"[1, 2]", 422, "invalid_request", None),
        (br#"{"cache": "yes"}"#, 422, "invalid_request", Some("cache")),
        (br#"{"llm_configuration": {"messages": "hi"}}"#, 422, "invalid_request", Some("llm_configuration.messages")),
        (br#"{"llm_configuration": {"model_params": {"temp": "hot"}}}"#, 422, "invalid_request", Some("llm_configuration.model_params.temp")),
        (br#"{"llm_configuration": {"model": "m", "provider": "openai", "messages": [{"role": "robot", "content": "x"}]}}"#, 422, "invalid_request", Some("llm_configuration.messages[0].role")),
        (br#"{"llm_configuration": {"provider": "openai", "messages": [{"role": "user", "content": "x"}]}}"#, 422, "invalid_request", Some("llm_configuration.model")),
        (br#"{"llm_configuration": {"model": "m", "messages": [{"role": "user", "content": "x"}]}}"#, 422, "invalid_request", Some("llm_configuration.provider")),
        (br#"{"llm_configuration": {"model": "m", "provider": "openai", "messages": []}}"#, 422, "invalid_request", Some("llm_configuration.messages")),
        (br#"{"llm_configuration": {"model": "m", "provider": "openai", "messages": [{"role": "user", "content": "x"}]}, "log_sample_rate": 2}"#, 422, "invalid_request", Some("log_sample_rate")),
        (br#"{"llm_configuration": {"model": "m", "provider": "openai", "messages": [{"role": "user", "content": "{{x"}]}, "llm_inputs": {}}"#, 422, "invalid_request", Some("llm_configuration.messages[0].content")),
        (br#"{"deployment_id": "nope"}"#, 404, "unknown_deployment", None),
    ];
    for (body, status, kind, field) in cases {
        for route in ["/completion", "/completion/stream"] {
            let reply = daemon.post_raw(route, body).await;
            let shown = String::from_utf8_lossy(body);
            assert_eq!(
                reply.status.as_u16(),
                status,
                "{route} {shown}: {:?}",
                reply.body
            );
            assert_eq!(reply.error_type(), kind, "{route} {shown}");
            assert!(!reply.error_message().is_empty());
            if let Some(field) = field {
                assert_eq!(reply.json()["error"]["field"], field, "{route} {shown}");
            }
        }
    }
    let reply = daemon
        .post("/completion", &hello_request("bard", "m"))
        .await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.error_type(), "unknown_provider");
    assert!(
        reply.error_message().contains("anthropic, openai"),
        "{}",
        reply.error_message()
    );
    assert_eq!(openai.calls(), 0, "no bad request reached the provider");
    assert_eq!(
        daemon.post("/completion", &openai_hello()).await.status,
        200
    );
    daemon.stop().await;
}

#[tokio::test]
async fn keep_alive_serves_many_requests_on_one_connection() {
    let (daemon, _o) = openai_daemon("").await;
    let mut stream = tokio::net::UnixStream::connect(&daemon.socket)
        .await
        .expect("connect");
    for _ in 0..3 {
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        let mut buf = vec![0u8; 1024];
        let n = stream.read(&mut buf).await.expect("read");
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    }
    daemon.stop().await;
}

#[tokio::test]
async fn shutdown_finishes_an_in_flight_stream_and_refuses_new_connections() {
    let slow = fixtures::openai_stream().with_frame_delay(Duration::from_millis(100));
    let openai = FakeUpstream::always(slow).await;
    let mut daemon =
        TestDaemon::start(&providers_toml(&openai.base_url(), &openai.base_url())).await;
    let socket = daemon.socket.clone();
    let in_flight = tokio::spawn({
        let socket = socket.clone();
        async move {
            raw_post(
                &socket,
                &format!("{PREFIX}/completion/stream"),
                &openai_hello(),
            )
            .await
        }
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while openai.calls() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "stream never reached the provider"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    let done = daemon.begin_shutdown();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        tokio::net::UnixStream::connect(&socket).await.is_err(),
        "no new connections while draining"
    );
    let raw = in_flight.await.expect("task");
    assert_eq!(raw.status(), 200);
    let text: String = raw
        .chunk_strings()
        .iter()
        .skip(1)
        .map(|c| {
            let v: Value =
                serde_json::from_str(c.trim_start_matches("data: ").trim()).expect("json");
            assert!(v.get("error").is_none(), "{c}");
            v["chunk"].as_str().unwrap_or_default().to_owned()
        })
        .collect();
    assert_eq!(text, fixtures::HELLO);
    tokio::time::timeout(Duration::from_secs(10), done)
        .await
        .expect("run returns after draining")
        .expect("no panic")
        .expect("clean exit");
    assert!(!socket.exists(), "socket file removed at shutdown");
    drop(daemon);
}

#[tokio::test]
async fn shutdown_grace_bounds_the_wait() {
    // A stream that would take an hour: only the grace period can end the run in time.
    let stuck = fixtures::openai_stream().with_frame_delay(Duration::from_secs(3600));
    let openai = FakeUpstream::always(stuck).await;
    let toml = format!(
        "shutdown_grace = \"300ms\"\n{}",
        providers_toml(&openai.base_url(), &openai.base_url())
    );
    let mut daemon = TestDaemon::start(&toml).await;
    let socket = daemon.socket.clone();
    let _in_flight = tokio::spawn(async move {
        raw_post(
            &socket,
            &format!("{PREFIX}/completion/stream"),
            &openai_hello(),
        )
        .await
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while openai.calls() == 0 {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let done = daemon.begin_shutdown();
    tokio::time::timeout(Duration::from_secs(60), done)
        .await
        .expect("run returns: grace period honoured")
        .expect("no panic")
        .expect("clean exit");
    let _ = daemon.client.call(Method::GET, "/health", None).await;
}
