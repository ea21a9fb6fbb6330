//! Who may use the daemon, and for what: the TCP listener refuses what a web page can send
//! (a foreign `Host` through DNS rebinding, a foreign `Origin`, a body that is not JSON) and,
//! with `tcp_key_env`, anyone without the key; admin routes are for `admin_uids` only.

mod common;

use common::fake_upstream::{fixtures, FakeUpstream};
use common::process::{toml_string, Setup};
use common::*;
use hyper::Method;
use promptd::config::{Config, Overrides};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A free loopback port.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// A daemon with a TCP listener on `port` and `extra` top-level keys.
async fn tcp_daemon(openai: &FakeUpstream, port: u16, extra: &str) -> TestDaemon {
    let dir = tempfile::tempdir().expect("tempdir");
    let overrides = Overrides {
        socket: Some(dir.path().join("p.sock")),
        tcp: Some(format!("127.0.0.1:{port}")),
        state_dir: Some(dir.path().join("state")),
        prompts_dir: None,
    };
    let toml = format!(
        "{extra}\n{}",
        providers_toml(&openai.base_url(), &openai.base_url())
    );
    let config = Config::from_toml(&toml, "t", &overrides).expect("config");
    TestDaemon::start_with(dir, config).await
}

/// One request over TCP with exactly `headers` (each `Name: value`), `Connection: close`; the
/// status and the body.
async fn tcp_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[&str],
    body: &str,
) -> (u16, Value) {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let mut head = format!("{method} {path} HTTP/1.1\r\n");
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    stream.write_all(head.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await.expect("read");
    let raw = parse_raw_response(&out);
    let body: Value = serde_json::from_slice(&raw.chunks.concat()).unwrap_or(Value::Null);
    (raw.status(), body)
}

fn hello_body() -> String {
    openai_hello().to_string()
}

const COMPLETION: &str = "/api/parea/v1/completion";
const LOCAL_HOST: &str = "Host: 127.0.0.1";
const JSON: &str = "Content-Type: application/json";

#[tokio::test]
async fn tcp_refuses_what_a_web_page_can_send() {
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let port = free_port();
    let daemon = tcp_daemon(&openai, port, "tcp_hosts = [\"promptd.lan\"]").await;
    let body = hello_body();

    // DNS rebinding: the page's own name in Host, for every kind of route.
    for (method, path, b) in [
        ("POST", COMPLETION, body.as_str()),
        ("GET", "/deployments", ""),
        ("DELETE", "/cache", ""),
        ("GET", "/api/parea/v1/trace_log/t1", ""),
        ("POST", "/v1/chat/completions", body.as_str()),
    ] {
        let (status, reply) =
            tcp_request(port, method, path, &["Host: evil.example:8787", JSON], b).await;
        assert_eq!(status, 421, "{method} {path}: {reply}");
        let message = reply["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("evil.example"), "{reply}");
    }
    // A foreign page's fetch (text/plain needs no preflight, but it carries the Origin).
    let (status, reply) = tcp_request(
        port,
        "POST",
        COMPLETION,
        &[
            LOCAL_HOST,
            "Origin: https://evil.example",
            "Content-Type: text/plain",
        ],
        &body,
    )
    .await;
    assert_eq!(status, 403, "{reply}");
    assert_eq!(reply["error"]["type"], "forbidden");
    let (status, _) = tcp_request(
        port,
        "POST",
        COMPLETION,
        &[LOCAL_HOST, "Origin: null", JSON],
        &body,
    )
    .await;
    assert_eq!(status, 403, "a sandboxed page's null origin is foreign");
    // Without an Origin, a body that is not declared JSON is still refused.
    for content_type in [
        "Content-Type: text/plain",
        "Content-Type: application/x-www-form-urlencoded",
    ] {
        let (status, reply) =
            tcp_request(port, "POST", COMPLETION, &[LOCAL_HOST, content_type], &body).await;
        assert_eq!(status, 415, "{content_type}: {reply}");
        assert_eq!(reply["error"]["type"], "unsupported_media_type");
    }
    let (status, _) = tcp_request(port, "POST", COMPLETION, &[LOCAL_HOST], &body).await;
    assert_eq!(status, 415, "an undeclared body");
    assert_eq!(openai.calls(), 0, "no refused request reached the provider");

    // What the SDKs send is served: loopback names, a configured name, a local origin.
    for headers in [
        &[LOCAL_HOST, JSON][..],
        &[
            "Host: localhost:8787",
            "Content-Type: application/json; charset=utf-8",
        ],
        &["Host: promptd.lan", JSON],
        &["Host: [::1]:8787", JSON, "Origin: http://localhost:3000"],
    ] {
        let (status, reply) = tcp_request(port, "POST", COMPLETION, headers, &body).await;
        assert_eq!(status, 200, "{headers:?}: {reply}");
    }
    // Health needs nothing.
    let (status, _) = tcp_request(port, "GET", "/health", &["Host: anything"], "").await;
    assert_eq!(status, 200);
    daemon.stop().await;
}

#[tokio::test]
async fn admin_routes_are_not_served_over_tcp_without_a_key() {
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let port = free_port();
    let daemon = tcp_daemon(&openai, port, "").await;
    for (method, path) in [
        ("DELETE", "/cache"),
        ("GET", "/deployments"),
        ("POST", "/logs/flush"),
        ("GET", "/logs/status"),
        ("GET", "/api/parea/v1/trace_log/t1"),
    ] {
        let (status, reply) = tcp_request(port, method, path, &[LOCAL_HOST], "").await;
        assert_eq!(status, 403, "{method} {path}: {reply}");
        let message = reply["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("tcp_key_env"), "{reply}");
    }
    // The same routes over the Unix socket, as the daemon's own user.
    assert_eq!(daemon.get("/deployments").await.status, 200);
    assert_eq!(
        daemon.request(Method::DELETE, "/cache", None).await.status,
        200
    );
    daemon.stop().await;
}

#[tokio::test]
async fn admin_routes_are_for_admin_uids_only() {
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let me = nix::unistd::geteuid().as_raw();
    let other = me.wrapping_add(4242);
    // This uid may use the daemon but is not an admin.
    let daemon = TestDaemon::start(&format!(
        "allowed_uids = [{me}]\nadmin_uids = [{other}]\n{}",
        providers_toml(&openai.base_url(), &openai.base_url())
    ))
    .await;
    let answer = daemon.post("/completion", &openai_hello()).await;
    assert_eq!(answer.status, 200, "a completion is not an admin route");
    for (method, path) in [
        (Method::DELETE, "/cache"),
        (Method::DELETE, "/cache/00ab"),
        (Method::GET, "/deployments"),
        (Method::POST, "/logs/flush"),
        (Method::GET, "/logs/status"),
        (Method::GET, "/logs/trace/t1"),
        (Method::GET, "/api/parea/v1/trace_log/t1"),
    ] {
        let reply = daemon.request(method.clone(), path, None).await;
        assert_eq!(reply.status, 403, "{method} {path}: {:?}", reply.body);
        assert!(
            reply.error_message().contains("admin_uids"),
            "{:?}",
            reply.body
        );
    }
    // Reads of aggregate state stay open.
    assert_eq!(daemon.get("/cache/stats").await.status, 200);
    assert_eq!(daemon.get("/status").await.status, 200);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tcp_key_admits_its_holders_only() {
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let port = free_port();
    let setup = Setup::new(
        &format!(
            "tcp = {}\ntcp_key_env = \"PROMPTD_TEST_TCP_KEY\"",
            toml_string(&format!("127.0.0.1:{port}"))
        ),
        &providers_toml(&openai.base_url(), &openai.base_url()),
    );
    let key = "k-0123456789abcdef0123456789";
    let _daemon = tokio::task::block_in_place(|| {
        setup.serve_with_env("key", &[("PROMPTD_TEST_TCP_KEY", key)])
    });
    let body = hello_body();
    {
        let bearer = format!("Authorization: Bearer {key}");
        let x_api_key = format!("x-api-key: {key}");
        for (headers, expected) in [
            (vec![LOCAL_HOST, JSON], 401),
            (
                vec![
                    LOCAL_HOST,
                    JSON,
                    "Authorization: Bearer wrong-key-0123456789",
                ],
                401,
            ),
            (vec![LOCAL_HOST, JSON, &bearer], 200),
            (vec![LOCAL_HOST, JSON, &x_api_key], 200),
        ] {
            let (status, reply) = tcp_request(port, "POST", COMPLETION, &headers, &body).await;
            assert_eq!(status, expected, "{headers:?}: {reply}");
            if expected == 401 {
                assert!(
                    reply["error"]["message"]
                        .as_str()
                        .unwrap_or_default()
                        .contains("PROMPTD_TEST_TCP_KEY"),
                    "{reply}"
                );
            }
        }
        // A key holder acts for the daemon's owner: the admin routes are served.
        let (status, reply) =
            tcp_request(port, "GET", "/deployments", &[LOCAL_HOST, &bearer], "").await;
        assert_eq!(status, 200, "{reply}");
    }
    // An unset key variable is a start-up error, never an open listener.
    let out = tokio::task::block_in_place(|| {
        common::process::run({
            let mut cmd = common::process::promptd();
            cmd.arg("validate").arg("--config").arg(&setup.config);
            cmd
        })
    });
    assert!(!out.status.success(), "validate without the key variable");
    let err = common::process::stderr(&out);
    assert!(
        err.contains("tcp_key_env") && err.contains("PROMPTD_TEST_TCP_KEY"),
        "{err}"
    );
}

/// A socket directory another local user made (or can write) is refused by the daemon and the
/// CLI, with what to do about it.
#[test]
fn a_squatted_socket_directory_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().expect("tempdir");
    // Like /tmp: anyone may make a directory here.
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o1777)).expect("chmod");
    let squat = tmp.path().join("promptd-squat");
    std::fs::create_dir(&squat).expect("mkdir");
    std::fs::set_permissions(&squat, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let mut expected = vec!["mode 0777", "chmod go-w"];
    if nix::unistd::geteuid().is_root() {
        // As the squatter would have it: their own directory.
        nix::unistd::chown(&squat, Some(nix::unistd::Uid::from_raw(65534)), None).expect("chown");
        expected = vec!["uid 65534", "rm -r"];
    }
    let socket = squat.join("promptd.sock");
    let config = tmp.path().join("promptd.toml");
    std::fs::write(
        &config,
        format!(
            "socket = {}\nstate_dir = {}\n",
            common::process::toml_path(&socket),
            common::process::toml_path(&tmp.path().join("state"))
        ),
    )
    .expect("config");
    // The daemon does not bind there, the CLI does not connect; both say why and what to do.
    let socket_arg = socket.display().to_string();
    let config_arg = config.display().to_string();
    for args in [
        ["serve", "--config", &config_arg],
        ["health", "--socket", &socket_arg],
    ] {
        let out = common::process::run({
            let mut cmd = common::process::promptd();
            cmd.args(args);
            cmd
        });
        let err = common::process::stderr(&out);
        assert!(
            !out.status.success(),
            "{args:?} in a squatted directory: {err}"
        );
        for text in expected.iter().chain(&["cannot be trusted"]) {
            assert!(err.contains(text), "{args:?} says {text}: {err}");
        }
    }
    assert!(!socket.exists(), "no socket was made there");
}

/// The state directory holds cached prompts and answers: 0700, its files 0600, whatever the
/// umask the daemon was started with, and also when an older promptd left it open.
#[tokio::test(flavor = "multi_thread")]
async fn the_state_is_private_whatever_the_umask() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::os::unix::process::CommandExt;
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let setup = Setup::new("", &providers_toml(&openai.base_url(), &openai.base_url()));
    let state = setup.path().join("state");
    // Left open by an older promptd.
    std::fs::create_dir_all(state.join("db")).expect("state");
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::write(state.join("projects.json"), "{}").expect("projects");
    std::fs::set_permissions(
        state.join("projects.json"),
        std::fs::Permissions::from_mode(0o644),
    )
    .expect("chmod");
    let mut cmd = common::process::promptd();
    cmd.arg("serve")
        .arg("--config")
        .arg(&setup.config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // SAFETY: umask is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
            Ok(())
        });
    }
    let mut daemon = common::process::Daemon {
        child: common::process::ChildGuard(Some(cmd.spawn().expect("spawn"))),
        socket: setup.socket.clone(),
        stderr_path: setup.path().join("none"),
    };
    tokio::task::block_in_place(|| daemon.wait_ready());
    let out = tokio::task::block_in_place(|| setup.ask("complete", "openai", &[], "Hello"));
    assert!(out.status.success(), "{out:?}");
    // The record is on disk once the spool has it: wait for the flush.
    let flushed = tokio::task::block_in_place(|| setup.client("logs").arg("flush").output());
    assert!(flushed.is_ok());
    let mut open = Vec::new();
    let mut todo = vec![state.clone()];
    while let Some(path) = todo.pop() {
        let meta = std::fs::symlink_metadata(&path).expect("stat");
        if meta.mode() & 0o077 != 0 {
            open.push(format!("{} {:o}", path.display(), meta.mode() & 0o7777));
        }
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).expect("read_dir") {
                todo.push(entry.expect("entry").path());
            }
        }
    }
    assert!(open.is_empty(), "readable by others: {open:?}");
}
