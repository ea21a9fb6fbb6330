//! The real `promptd` binary as a child process: `validate`, `--help`, `default-config`, `serve`
//! with the CLI clients (`complete`, `stream`, `health`) against fake providers, graceful
//! shutdown on SIGTERM with a stream in flight, stale and live sockets, an unusable state_dir.
//!
//! Every child runs in its own temp dir, is bounded in time, and is killed by a guard's `Drop`
//! so that a failing test leaks no process.

mod common;

use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};

use common::fake_upstream::{fixtures, refused_base_url, FakeUpstream};
use common::process::*;
use common::{openai_hello, providers_toml, raw_post, PREFIX};
use nix::sys::signal::Signal;
use serde_json::Value;

#[test]
fn validate_accepts_good_configs_and_names_what_is_wrong() {
    let setup = Setup::offline();
    let out = run({
        let mut cmd = promptd();
        cmd.arg("validate").arg("--config").arg(&setup.config);
        cmd
    });
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains(&format!("{}: ok", setup.config.display())),
        "{text}"
    );
    assert!(text.contains("anthropic, openai"), "{text}");

    let cases = [
        ("sockett.toml", "sockett = \"x\"\n", "sockett"),
        ("mode.toml", "socket_mode = \"999\"\n", "socket_mode"),
    ];
    for (name, text, key) in cases {
        let path = setup.path().join(name);
        std::fs::write(&path, text).expect("write config");
        let out = run({
            let mut cmd = promptd();
            cmd.arg("validate").arg("--config").arg(&path);
            cmd
        });
        assert_ne!(out.status.code(), Some(0), "{name} must be refused");
        assert!(
            stderr(&out).contains(key),
            "{name}: stderr does not name `{key}`: {}",
            stderr(&out)
        );
        assert!(stdout(&out).is_empty(), "{name}: {}", stdout(&out));
    }

    let missing = setup.path().join("no-such-config.toml");
    let out = run({
        let mut cmd = promptd();
        cmd.arg("validate").arg("--config").arg(&missing);
        cmd
    });
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains(&missing.display().to_string()),
        "{}",
        stderr(&out)
    );

    let out = run({
        let mut cmd = promptd();
        cmd.arg("validate");
        cmd
    });
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert!(
        stdout(&out).contains("embedded default config: ok"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn help_works_everywhere_and_default_config_validates() {
    let cases: [(&[&str], &[&str]); 7] = [
        (
            &[],
            &[
                "serve",
                "validate",
                "default-config",
                "complete",
                "stream",
                "health",
            ],
        ),
        (
            &["serve"],
            &[
                "--config",
                "--socket",
                "--tcp",
                "--state-dir",
                "--prompts-dir",
            ],
        ),
        (&["validate"], &["--config"]),
        (&["default-config"], &["Usage: promptd default-config"]),
        (
            &["complete"],
            &[
                "--socket",
                "--model",
                "--provider",
                "--deployment",
                "--input",
                "--system",
                "--json",
            ],
        ),
        (&["stream"], &["--socket", "--model", "--provider"]),
        (&["health"], &["--socket", "--config"]),
    ];
    for (args, expected) in cases {
        let out = run({
            let mut cmd = promptd();
            cmd.args(args).arg("--help");
            cmd
        });
        assert_eq!(out.status.code(), Some(0), "{args:?} --help: {out:?}");
        let text = stdout(&out);
        for word in expected {
            assert!(
                text.contains(word),
                "{args:?} --help does not mention {word}:\n{text}"
            );
        }
    }

    let out = run({
        let mut cmd = promptd();
        cmd.arg("default-config");
        cmd
    });
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(stdout(&out).contains("[providers.openai]"));
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("default.toml");
    std::fs::write(&path, &out.stdout).expect("write default config");
    let out = run({
        let mut cmd = promptd();
        cmd.arg("validate").arg("--config").arg(&path);
        cmd
    });
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains(": ok"), "{text}");
    assert!(
        text.contains("3 providers: anthropic, ollama, openai"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_answers_the_cli_clients() {
    let chat = FakeUpstream::always(fixtures::openai_chat()).await;
    let stream = FakeUpstream::always(fixtures::openai_stream()).await;
    let providers = format!(
        "{}\n[providers.streamer]\nkind = \"openai\"\nbase_url = {}\napi_key = \"sk-test-stream\"\nmax_retries = 0\ntimeout = \"5s\"\n",
        providers_toml(&chat.base_url(), &refused_base_url()),
        toml_string(&stream.base_url()),
    );
    let setup = Setup::new("", &providers);
    let _daemon = tokio::task::block_in_place(|| setup.serve("serve"));

    let out = setup.ask("complete", "openai", &[], "Hello");
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert_eq!(stdout(&out), format!("{}\n", fixtures::HELLO));

    let out = setup.ask("complete", "openai", &["--json"], "Hello");
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let value: Value = serde_json::from_slice(&out.stdout).expect("complete --json prints JSON");
    assert_eq!(value["content"], fixtures::HELLO, "{value}");
    assert_eq!(value["provider"], "openai", "{value}");
    assert_eq!(
        value["cache_hit"], true,
        "the same request again is a cache hit: {value}"
    );
    assert_eq!(chat.calls(), 1);

    let out = setup.ask("complete", "openai", &["--no-cache"], "Hello");
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert_eq!(stdout(&out), format!("{}\n", fixtures::HELLO));
    assert_eq!(chat.calls(), 2, "--no-cache calls the provider");
    let sent = chat.last_request().expect("chat request");
    assert_eq!(sent.body["model"], "gpt-4o-mini");
    assert_eq!(sent.body["messages"][0]["content"], "Hello");

    let out = setup.ask("stream", "streamer", &[], "Hello");
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert_eq!(stdout(&out), format!("{}\n", fixtures::HELLO));
    assert_eq!(stream.calls(), 1);
    assert_eq!(
        stream.last_request().expect("stream request").body["stream"],
        true
    );

    let out = run_blocking(setup.client("health"));
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let value: Value = serde_json::from_slice(&out.stdout).expect("health prints JSON");
    assert_eq!(value["status"], "ok", "{value}");

    let out = setup.ask("complete", "nope", &[], "Hello");
    assert_eq!(out.status.code(), Some(1), "stdout: {}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains("nope"), "{err}");
    assert!(
        err.contains("configured providers: anthropic, openai, streamer"),
        "{err}"
    );
    assert_eq!(
        chat.calls() + stream.calls(),
        3,
        "no upstream call for `nope`"
    );

    // Nothing listens: a path with no file, and a stale socket file nobody accepts on.
    let stale = setup.path().join("stale.sock");
    drop(UnixListener::bind(&stale).expect("bind stale socket"));
    for socket in [setup.path().join("absent.sock"), stale] {
        let mut cmd = promptd();
        cmd.arg("health").arg("--socket").arg(&socket);
        let out = run_blocking(cmd);
        assert_ne!(out.status.code(), Some(0), "{}", socket.display());
        let err = stderr(&out);
        assert!(err.contains("cannot reach promptd"), "{err}");
        assert!(err.contains(&socket.display().to_string()), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_stream_in_flight_then_exits_cleanly() {
    let upstream = FakeUpstream::always(
        fixtures::openai_stream().with_frame_delay(Duration::from_millis(150)),
    )
    .await;
    let setup = Setup::new(
        "shutdown_grace = \"20s\"",
        &providers_toml(&upstream.base_url(), &refused_base_url()),
    );
    let mut daemon = tokio::task::block_in_place(|| setup.serve("serve"));

    let socket = setup.socket.clone();
    let request = tokio::spawn(async move {
        raw_post(
            &socket,
            &format!("{PREFIX}/completion/stream"),
            &openai_hello(),
        )
        .await
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while upstream.calls() == 0 {
        assert!(
            Instant::now() < deadline,
            "the stream request never reached the upstream"
        );
        tokio::time::sleep(POLL).await;
    }
    // Let the first events through so the response is committed and streaming.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !request.is_finished(),
        "the stream ended before SIGTERM; the test proves nothing"
    );
    daemon.signal(Signal::SIGTERM);

    // The listener closes at once: the socket file goes and new connections fail, while the
    // stream is still being answered.
    let deadline = Instant::now() + Duration::from_secs(5);
    while setup.socket.exists() {
        assert!(
            Instant::now() < deadline,
            "socket still there 5 s after SIGTERM"
        );
        tokio::time::sleep(POLL).await;
    }
    assert!(UnixStream::connect(&setup.socket).is_err());

    let response = tokio::time::timeout(Duration::from_secs(20), request)
        .await
        .expect("stream response within 20 s")
        .expect("request task");
    assert_eq!(response.status(), 200, "{}", response.head);
    let chunks = response.chunk_strings();
    assert!(
        chunks
            .first()
            .is_some_and(|c| c.starts_with("data: ID_START")),
        "{chunks:?}"
    );
    let mut text = String::new();
    for chunk in &chunks[1..] {
        let data = chunk
            .strip_prefix("data: ")
            .unwrap_or_else(|| panic!("not an event: {chunk:?}"));
        let value: Value =
            serde_json::from_str(data.trim_end()).unwrap_or_else(|e| panic!("{e}: {chunk:?}"));
        assert!(value.get("error").is_none(), "error event: {chunk:?}");
        text.push_str(value["chunk"].as_str().expect("chunk field"));
    }
    assert_eq!(text, fixtures::HELLO, "{chunks:?}");

    let status = tokio::task::block_in_place(|| daemon.wait_exit(EXIT_TIMEOUT));
    assert_eq!(status.code(), Some(0), "stderr:\n{}", daemon.stderr());
    assert!(!setup.socket.exists(), "socket file left behind");
    assert!(UnixStream::connect(&setup.socket).is_err());
    assert_eq!(upstream.calls(), 1);
}

#[test]
fn stale_socket_is_replaced_and_live_socket_refused() {
    let setup = Setup::offline();
    let mut first = setup.serve("first");
    first.signal(Signal::SIGKILL);
    first.wait_exit(EXIT_TIMEOUT);
    assert!(
        setup.socket.exists(),
        "SIGKILL should leave the socket file behind"
    );
    assert!(UnixStream::connect(&setup.socket).is_err());

    let mut second = setup.serve("second");
    let out = run(setup.client("health"));
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert!(
        stdout(&out).contains("\"status\":\"ok\""),
        "{}",
        stdout(&out)
    );

    // A second daemon on the same socket refuses to start and leaves the first one alone.
    let out = run({
        let mut cmd = promptd();
        cmd.arg("serve").arg("--config").arg(&setup.config);
        cmd
    });
    assert_ne!(out.status.code(), Some(0), "{out:?}");
    let err = stderr(&out);
    assert!(err.contains("another promptd is listening"), "{err}");
    assert!(err.contains(&setup.socket.display().to_string()), "{err}");
    let out = run(setup.client("health"));
    assert_eq!(
        out.status.code(),
        Some(0),
        "first daemon broken: {}",
        stderr(&out)
    );

    second.signal(Signal::SIGTERM);
    let status = second.wait_exit(EXIT_TIMEOUT);
    assert_eq!(status.code(), Some(0), "stderr:\n{}", second.stderr());
    assert!(!setup.socket.exists());
}

#[test]
fn unusable_state_dir_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("FILE");
    std::fs::write(&file, "not a directory").expect("write file");
    let state = file.join("state");
    let config = dir.path().join("promptd.toml");
    std::fs::write(
        &config,
        format!(
            "socket = {}\nstate_dir = {}\nprompts_dir = {}\n{}",
            toml_path(&dir.path().join("promptd.sock")),
            toml_path(&state),
            toml_path(&dir.path().join("prompts")),
            providers_toml(&refused_base_url(), &refused_base_url()),
        ),
    )
    .expect("write config");
    let out = run({
        let mut cmd = promptd();
        cmd.arg("serve").arg("--config").arg(&config);
        cmd
    });
    assert_ne!(out.status.code(), Some(0), "{out:?}");
    let err = stderr(&out);
    assert!(err.contains(&state.display().to_string()), "{err}");
    assert!(err.contains("state_dir"), "{err}");
}

/// A cache entry written more than one flush interval before a SIGKILL is there after the
/// restart, and the database opens and serves; a clean SIGTERM keeps entries too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_entries_survive_sigkill_and_sigterm() {
    let chat = FakeUpstream::always(fixtures::openai_chat()).await;
    let setup = Setup::new("", &providers_toml(&chat.base_url(), &refused_base_url()));
    let ask = |setup: &Setup, text: &str| {
        let out = setup.ask("complete", "openai", &["--json"], text);
        assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
        let value: Value = serde_json::from_slice(&out.stdout).expect("JSON");
        assert_eq!(value["content"], fixtures::HELLO);
        value["cache_hit"].as_bool().expect("cache_hit")
    };

    let mut daemon = tokio::task::block_in_place(|| setup.serve("first"));
    assert!(!ask(&setup, "one"));
    // Once sled has flushed the entry to its file, a hard kill.
    common::wait::sled_has_written(&setup.path().join("state"), fixtures::HELLO).await;
    daemon.signal(Signal::SIGKILL);
    daemon.wait_exit(EXIT_TIMEOUT);

    let mut daemon = tokio::task::block_in_place(|| setup.serve("second"));
    assert!(
        ask(&setup, "one"),
        "entry written before SIGKILL is a hit after restart"
    );
    assert!(!ask(&setup, "two"));
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait_exit(EXIT_TIMEOUT).code(), Some(0));

    let mut daemon = tokio::task::block_in_place(|| setup.serve("third"));
    assert!(
        ask(&setup, "two"),
        "entry written just before SIGTERM is kept"
    );
    assert_eq!(chat.calls(), 2);
    let mut cmd = promptd();
    cmd.args(["cache", "stats", "--socket"]).arg(&setup.socket);
    let out = run_blocking(cmd);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert!(
        stdout(&out).contains("entries        2"),
        "{}",
        stdout(&out)
    );
    let mut cmd = promptd();
    cmd.args(["cache", "purge", "--socket"]).arg(&setup.socket);
    let out = run_blocking(cmd);
    assert_eq!(
        stdout(&out),
        "deleted 2 entries\n",
        "stderr: {}",
        stderr(&out)
    );
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait_exit(EXIT_TIMEOUT).code(), Some(0));
}

/// SIGHUP re-reads the config: a provider's new base_url and key serve the next request; a
/// broken config is refused and the running one keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_config_and_keeps_the_old_one_when_broken() {
    let before = FakeUpstream::always(fixtures::openai_chat()).await;
    let after = FakeUpstream::always(fixtures::openai_chat()).await;
    let setup = Setup::new("", &providers_toml(&before.base_url(), &refused_base_url()));
    let mut daemon = tokio::task::block_in_place(|| setup.serve("serve"));
    let ask = |setup: &Setup| setup.ask("complete", "openai", &["--no-cache"], "Hello");
    assert_eq!(ask(&setup).status.code(), Some(0));
    assert_eq!(before.calls(), 1);

    let original = std::fs::read_to_string(&setup.config).expect("config");
    let changed = original
        .replace(&before.base_url(), &after.base_url())
        .replace("sk-test-openai", "sk-rotated");
    std::fs::write(&setup.config, &changed).expect("rewrite config");
    daemon.signal(Signal::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(10);
    while after.calls() == 0 {
        assert!(
            Instant::now() < deadline,
            "reload never applied; stderr:\n{}",
            daemon.stderr()
        );
        let out = ask(&setup);
        assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sent = after.last_request().expect("request");
    assert_eq!(sent.header("authorization"), Some("Bearer sk-rotated"));

    std::fs::write(&setup.config, format!("{changed}\nthis is not toml = = ="))
        .expect("break config");
    daemon.signal(Signal::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !daemon.stderr().contains("config reload failed") {
        assert!(
            Instant::now() < deadline,
            "no reload error logged; stderr:\n{}",
            daemon.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let calls = after.calls();
    let out = ask(&setup);
    assert_eq!(
        out.status.code(),
        Some(0),
        "still serving with the last good config: {}",
        stderr(&out)
    );
    assert_eq!(after.calls(), calls + 1);
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait_exit(EXIT_TIMEOUT).code(), Some(0));
}

/// `promptd deployments list|show|render` against a running daemon, and `validate` reporting
/// a refused prompt file (an error only with --strict).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployments_cli_and_validate_of_the_prompts_directory() {
    let setup = Setup::offline();
    let prompts = setup.path().join("prompts");
    std::fs::create_dir_all(&prompts).expect("prompts dir");
    std::fs::write(
        prompts.join("greet.toml"),
        "provider = \"openai\"\nmodel = \"gpt-4o-mini\"\n[[messages]]\nrole = \"user\"\ncontent = \"Say hi to {{name}}\"\n",
    )
    .expect("write prompt");
    std::fs::write(prompts.join("bad.yaml"), "model: [unclosed").expect("write prompt");

    let validate = |strict: bool| {
        let mut cmd = promptd();
        cmd.arg("validate").arg("--config").arg(&setup.config);
        if strict {
            cmd.arg("--strict");
        }
        run(cmd)
    };
    let out = validate(false);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("2 prompt files, 1 refused"),
        "{}",
        stdout(&out)
    );
    assert!(stderr(&out).contains("bad.yaml"), "{}", stderr(&out));
    assert_eq!(validate(true).status.code(), Some(1));

    let mut daemon = tokio::task::block_in_place(|| setup.serve("serve"));
    let deployments = |args: &[&str]| {
        let mut cmd = promptd();
        cmd.arg("deployments")
            .args(args)
            .arg("--socket")
            .arg(&setup.socket);
        run(cmd)
    };
    let out = deployments(&["list"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let list = stdout(&out);
    assert!(list.contains("greet") && list.contains("ok"), "{list}");
    assert!(list.contains("bad") && list.contains("error"), "{list}");
    let out = deployments(&["render", "greet", "--input", "name=Ada"]);
    assert_eq!(
        stdout(&out),
        "[user]\nSay hi to Ada\n\n",
        "{}",
        stderr(&out)
    );
    let out = deployments(&["show", "greet"]);
    let shown: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(
        shown["prompt"]["raw_messages"][0]["content"],
        "Say hi to {{name}}"
    );
    let out = deployments(&["render", "greet"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("name"), "{}", stderr(&out));
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait_exit(EXIT_TIMEOUT).code(), Some(0));
}

/// The crash test of the log spool: records acknowledged by a real daemon (completions and
/// `POST /trace_log`) while the collector is down survive a SIGKILL and all arrive once the
/// collector is back (resends carry the same idempotency key).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_records_survive_sigkill_and_arrive_later() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let up = Arc::new(AtomicBool::new(false));
    let collector = {
        let up = Arc::clone(&up);
        FakeUpstream::start(move |_, _| {
            if up.load(Ordering::SeqCst) {
                common::fake_upstream::Behavior::json(200, "{}")
            } else {
                common::fake_upstream::Behavior::json(503, "{\"error\": \"down\"}")
            }
        })
        .await
    };
    let chat = FakeUpstream::always(fixtures::openai_chat()).await;
    let upstream = format!(
        "[spool]\nflush_interval = \"50ms\"\n[upstream]\nbase_url = {}\napi_key = \"pk-crash\"\n",
        toml_string(&collector.base_url())
    );
    let setup = Setup::new(
        "",
        &format!(
            "{upstream}{}",
            providers_toml(&chat.base_url(), &refused_base_url())
        ),
    );
    let mut daemon = tokio::task::block_in_place(|| setup.serve("first"));

    let mut acknowledged = Vec::new();
    for i in 0..10 {
        let id = format!("completion-{i}");
        let mut body = openai_hello();
        body["trace_id"] = serde_json::json!(id);
        body["cache"] = serde_json::json!(false);
        let raw = raw_post(&setup.socket, &format!("{PREFIX}/completion"), &body).await;
        assert_eq!(raw.status(), 200, "{}", raw.head);
        acknowledged.push(id);
        let id = format!("client-{i}");
        let raw = raw_post(
            &setup.socket,
            &format!("{PREFIX}/trace_log"),
            &serde_json::json!({"trace_id": id}),
        )
        .await;
        assert_eq!(raw.status(), 200, "{}", raw.head);
        acknowledged.push(id);
    }
    // Completions' records are committed by the next group commit (the crash-loss window);
    // wait for it, then kill hard while the collector is still down.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let raw = common::raw_get(&setup.socket, "/logs/status").await;
        let status: Value = serde_json::from_slice(&raw.chunks.concat()).expect("status JSON");
        if status["committed"].as_u64() == Some(20) {
            assert_eq!(status["sent"], 0, "collector is down: {status}");
            break;
        }
        assert!(Instant::now() < deadline, "records not committed: {status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    daemon.signal(Signal::SIGKILL);
    daemon.wait_exit(EXIT_TIMEOUT);

    up.store(true, Ordering::SeqCst);
    let mut daemon = tokio::task::block_in_place(|| setup.serve("second"));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let delivered: Vec<RecordedDelivery> = collector
            .requests()
            .iter()
            .map(|r| RecordedDelivery {
                trace_id: r.body["trace_id"].as_str().unwrap_or("").to_owned(),
                key: r.header("idempotency-key").unwrap_or("").to_owned(),
            })
            .collect();
        let ok_ids: std::collections::HashSet<&str> =
            delivered.iter().map(|d| d.trace_id.as_str()).collect();
        if acknowledged.iter().all(|id| ok_ids.contains(id.as_str())) {
            // Every resend of one record carries one idempotency key.
            for id in &acknowledged {
                let keys: std::collections::HashSet<&str> = delivered
                    .iter()
                    .filter(|d| &d.trace_id == id)
                    .map(|d| d.key.as_str())
                    .collect();
                assert_eq!(keys.len(), 1, "{id}: {keys:?}");
            }
            break;
        }
        assert!(
            Instant::now() < deadline,
            "missing after restart: {:?}",
            acknowledged
                .iter()
                .filter(|id| !ok_ids.contains(id.as_str()))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait_exit(EXIT_TIMEOUT).code(), Some(0));
}

struct RecordedDelivery {
    trace_id: String,
    key: String,
}

/// Client input that cannot make a request is refused before anything is sent (or read).
#[test]
fn client_input_errors_are_named_before_any_request() {
    let setup = Setup::offline();
    let mut cmd = promptd();
    cmd.args(["cache", "purge", "not a key", "--socket"])
        .arg(&setup.socket);
    let out = run(cmd);
    assert_eq!(out.status.code(), Some(1), "stdout: {}", stdout(&out));
    assert!(
        stderr(&out).contains("`not a key` is not a cache key"),
        "{}",
        stderr(&out)
    );
    let out = run(setup.client("complete"));
    assert_eq!(out.status.code(), Some(1), "stdout: {}", stdout(&out));
    assert!(
        stderr(&out).contains("give --model and --provider, or --deployment"),
        "{}",
        stderr(&out)
    );
}

/// `echo text | promptd complete` sends `text`: one trailing line end of standard input (`\n`
/// or `\r\n`, as `echo` and editors add) is dropped, with `complete` and `stream`, with TEXT
/// absent or `-`; inner and leading whitespace and further blank lines stay, and a TEXT
/// argument is sent as given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdin_input_loses_one_trailing_line_end() {
    let chat = FakeUpstream::always(fixtures::openai_chat()).await;
    let stream = FakeUpstream::always(fixtures::openai_stream()).await;
    let providers = format!(
        "{}\n[providers.streamer]\nkind = \"openai\"\nbase_url = {}\napi_key = \"sk-test-stream\"\nmax_retries = 0\ntimeout = \"5s\"\n",
        providers_toml(&chat.base_url(), &refused_base_url()),
        toml_string(&stream.base_url()),
    );
    let setup = Setup::new("", &providers);
    let _daemon = tokio::task::block_in_place(|| setup.serve("serve"));
    let sent_content = |upstream: &FakeUpstream| {
        let request = upstream.last_request().expect("a provider request");
        request.body["messages"][0]["content"].clone()
    };
    let ask = |subcommand: &str, provider: &str, text: Option<&str>, input: &str| {
        let mut cmd = setup.client(subcommand);
        cmd.args([
            "--no-cache",
            "--model",
            "gpt-4o-mini",
            "--provider",
            provider,
        ]);
        cmd.args(text);
        let out = tokio::task::block_in_place(|| run_with_stdin(cmd, input.as_bytes()));
        assert_eq!(out.status.code(), Some(0), "{input:?}: {}", stderr(&out));
    };

    let cases = [
        ("Hello\n", "Hello"),
        ("Hello\r\n", "Hello"),
        ("no line end", "no line end"),
        ("  two\n\n lines \n\n", "  two\n\n lines \n"),
        ("\n", ""),
    ];
    for (input, expected) in cases {
        ask("complete", "openai", None, input);
        assert_eq!(sent_content(&chat), expected, "complete, stdin {input:?}");
    }
    ask("complete", "openai", Some("-"), "dash\n");
    assert_eq!(sent_content(&chat), "dash", "complete -");
    ask("stream", "streamer", None, "streamed\r\n");
    assert_eq!(sent_content(&stream), "streamed", "stream, stdin");
    ask("stream", "streamer", Some("-"), "streamed -\n");
    assert_eq!(sent_content(&stream), "streamed -", "stream -");
    ask("complete", "openai", Some("argument\n"), "");
    assert_eq!(sent_content(&chat), "argument\n", "TEXT is sent as given");
    assert_eq!((chat.calls(), stream.calls()), (7, 2));
}

/// Counts in CLI messages take the number they count: "deleted 1 entry", "deleted 0 entries",
/// "deleted 2 entries" (`cache purge`, with and without a key), and the same in `status` and
/// `validate`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_counts_agree_with_their_nouns() {
    let chat = FakeUpstream::always(fixtures::openai_chat()).await;
    let one_provider = format!(
        "[providers.openai]\nkind = \"openai\"\nbase_url = {}\napi_key = \"sk-test-openai\"\nmax_retries = 0\ntimeout = \"5s\"\n",
        toml_string(&chat.base_url())
    );
    let setup = Setup::new("", &one_provider);
    let prompts = setup.path().join("prompts");
    std::fs::create_dir_all(&prompts).expect("prompts dir");
    std::fs::write(
        prompts.join("greet.toml"),
        "provider = \"openai\"\nmodel = \"gpt-4o-mini\"\n[[messages]]\nrole = \"user\"\ncontent = \"hi\"\n",
    )
    .expect("write prompt");
    let out = run({
        let mut cmd = promptd();
        cmd.arg("validate").arg("--config").arg(&setup.config);
        cmd
    });
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("1 provider: openai"), "{text}");
    assert!(
        text.contains(": 1 prompt file, 0 refused, 0 unreadable folders"),
        "{text}"
    );

    let _daemon = tokio::task::block_in_place(|| setup.serve("serve"));
    let purge = |key: Option<&str>| {
        let mut cmd = promptd();
        cmd.args(["cache", "purge"])
            .args(key)
            .arg("--socket")
            .arg(&setup.socket);
        let out = run_blocking(cmd);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        stdout(&out)
    };
    assert_eq!(purge(None), "deleted 0 entries\n");

    let out = setup.ask("complete", "openai", &[], "one");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = run_blocking(setup.client("status"));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let status = stdout(&out);
    assert!(status.contains("  1 entry, "), "{status}");
    assert!(status.contains("; 0 hits, 1 miss, "), "{status}");
    assert!(status.contains(", 0 bypasses, "), "{status}");
    assert!(status.contains(", 0 evictions"), "{status}");
    assert!(status.contains("1 serving, 0 refused files, "), "{status}");
    assert_eq!(purge(None), "deleted 1 entry\n");

    for text in ["one", "two"] {
        let out = setup.ask("complete", "openai", &[], text);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    let out = run_blocking(setup.client("status"));
    let status = stdout(&out);
    assert!(status.contains("  2 entries, "), "{status}");
    assert!(status.contains("; 0 hits, 3 misses, "), "{status}");
    assert_eq!(purge(None), "deleted 2 entries\n");

    let mut body = openai_hello();
    body["messages"] = serde_json::json!([{"role": "user", "content": "keyed"}]);
    let raw = raw_post(&setup.socket, &format!("{PREFIX}/completion"), &body).await;
    assert_eq!(raw.status(), 200, "{}", raw.head);
    let key = raw
        .head
        .lines()
        .find_map(|line| line.strip_prefix("x-promptd-cache-key: "))
        .expect("cache key header")
        .trim()
        .to_owned();
    assert_eq!(purge(Some(&key)), "deleted 1 entry\n");
    assert_eq!(chat.calls(), 4);
}

/// `promptd deployments list` is a table whose columns line up whatever the length of ids and
/// paths (each column as wide as its longest cell, header included); a file that never loaded
/// shows version `-` and is not serving, one broken after loading keeps serving its last good
/// version; each error is on its own line under its row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployments_list_lines_up_and_shows_broken_files_readably() {
    let setup = Setup::offline();
    let prompts = setup.path().join("prompts");
    std::fs::create_dir_all(&prompts).expect("prompts dir");
    let good = "provider = \"openai\"\nmodel = \"gpt-4o-mini\"\n[[messages]]\nrole = \"user\"\ncontent = \"hi\"\n";
    for name in ["a", "a-rather-long-deployment-identifier", "later-broken"] {
        std::fs::write(prompts.join(format!("{name}.toml")), good).expect("write prompt");
    }
    std::fs::write(prompts.join("never-loaded.yaml"), "model: [unclosed").expect("write prompt");
    let mut daemon = tokio::task::block_in_place(|| setup.serve("serve"));
    let list = || {
        let mut cmd = promptd();
        cmd.args(["deployments", "list", "--socket"])
            .arg(&setup.socket);
        let out = run_blocking(cmd);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        stdout(&out)
    };
    // The socket accepts before the first load is done; break the file only after it, and
    // let the watcher see the change.
    let errors = |text: &str| text.lines().filter(|l| l.contains(" error ")).count();
    let text = list();
    assert_eq!(errors(&text), 1, "{text}");
    std::fs::write(prompts.join("later-broken.toml"), "model = ").expect("break prompt");
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let text = list();
        if errors(&text) == 2 {
            break text;
        }
        assert!(Instant::now() < deadline, "no reload seen:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(!text.contains("null"), "{text}");

    let rows: Vec<&str> = text.lines().filter(|l| !l.starts_with(' ')).collect();
    let spans = |line: &str| -> Vec<(usize, usize, String)> {
        let mut spans = Vec::new();
        let mut start = None;
        for (i, c) in line.char_indices().chain([(line.len(), ' ')]) {
            match (c == ' ', start) {
                (false, None) => start = Some(i),
                (true, Some(s)) => {
                    spans.push((s, i, line[s..i].to_owned()));
                    start = None;
                }
                _ => {}
            }
        }
        spans
    };
    let table: Vec<_> = rows.iter().map(|r| spans(r)).collect();
    let header: Vec<&str> = table[0].iter().map(|(_, _, t)| t.as_str()).collect();
    assert_eq!(
        header,
        ["id", "version", "status", "serving", "source"],
        "{text}"
    );
    assert_eq!(table.len(), 5, "a header and 4 rows:\n{text}");
    for (k, name) in header.iter().enumerate() {
        assert!(
            table.iter().all(|row| row.len() == header.len()),
            "every row has every cell:\n{text}"
        );
        let starts_agree = table.iter().all(|row| row[k].0 == table[0][k].0);
        let ends_agree = table.iter().all(|row| row[k].1 == table[0][k].1);
        assert!(
            starts_agree || ends_agree,
            "column {name} does not line up:\n{text}"
        );
    }
    let row = |id: &str| -> Vec<String> {
        let row = table
            .iter()
            .find(|row| row[0].2 == id)
            .unwrap_or_else(|| panic!("no row {id}:\n{text}"));
        row.iter()
            .skip(1)
            .take(3)
            .map(|(_, _, t)| t.clone())
            .collect()
    };
    assert_eq!(row("a"), ["1", "ok", "yes"], "{text}");
    assert_eq!(row("never-loaded"), ["-", "error", "no"], "{text}");
    assert_eq!(row("later-broken"), ["1", "error", "yes"], "{text}");

    let lines: Vec<&str> = text.lines().collect();
    for id in ["never-loaded", "later-broken"] {
        let at = lines
            .iter()
            .position(|l| l.starts_with(&format!("{id} ")))
            .expect("row");
        let next = lines.get(at + 1).copied().unwrap_or_default();
        assert!(
            next.starts_with("    error: ") && next.contains(id),
            "{id}: the error follows its row:\n{text}"
        );
    }
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait_exit(EXIT_TIMEOUT).code(), Some(0));
}

/// `/logs/status` and `promptd logs status` tell a collector that fails now from one that
/// failed earlier: while it fails, `healthy` is false and `failing_since` and `last_error_at`
/// say since when; once it takes the records, `healthy` is true and `last_success_at` follows
/// the error, which is kept (with its time) and shown as past.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_status_tells_a_recovered_collector_from_a_failing_one() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let up = Arc::new(AtomicBool::new(false));
    let collector = {
        let up = Arc::clone(&up);
        FakeUpstream::start(move |_, _| {
            if up.load(Ordering::SeqCst) {
                common::fake_upstream::Behavior::json(200, "{}")
            } else {
                common::fake_upstream::Behavior::json(503, "{\"error\": \"collector down\"}")
            }
        })
        .await
    };
    let upstream = format!(
        "[spool]\nflush_interval = \"20ms\"\n[upstream]\nbase_url = {}\napi_key = \"pk-status\"\n",
        toml_string(&collector.base_url())
    );
    let setup = Setup::new(
        "",
        &format!(
            "{upstream}{}",
            providers_toml(&refused_base_url(), &refused_base_url())
        ),
    );
    let mut daemon = tokio::task::block_in_place(|| setup.serve("serve"));
    let status_json = || async {
        let raw = common::raw_get(&setup.socket, "/logs/status").await;
        serde_json::from_slice::<Value>(&raw.chunks.concat()).expect("status JSON")
    };
    let status_text = || {
        let mut cmd = promptd();
        cmd.args(["logs", "status", "--socket"]).arg(&setup.socket);
        let out = run_blocking(cmd);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        stdout(&out)
    };
    let time = |v: &Value, field: &str| {
        let text = v[field]
            .as_str()
            .unwrap_or_else(|| panic!("{field} is a time: {v}"));
        chrono::DateTime::parse_from_rfc3339(text)
            .unwrap_or_else(|e| panic!("{field} is RFC 3339 ({e}): {v}"))
    };

    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        let status = status_json().await;
        if status["flusher"] == "running" {
            break status;
        }
        assert!(Instant::now() < deadline, "flusher not running: {status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(status["healthy"], true, "nothing failed yet: {status}");
    assert_eq!(status["last_success_at"], Value::Null, "{status}");
    let raw = raw_post(
        &setup.socket,
        &format!("{PREFIX}/trace_log"),
        &serde_json::json!({"trace_id": "t-status"}),
    )
    .await;
    assert_eq!(raw.status(), 200, "{}", raw.head);
    let deadline = Instant::now() + Duration::from_secs(10);
    let failing = loop {
        let status = status_json().await;
        if !status["last_upstream_error"].is_null() {
            break status;
        }
        assert!(Instant::now() < deadline, "no attempt seen: {status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(failing["healthy"], false, "{failing}");
    assert!(time(&failing, "failing_since") <= time(&failing, "last_error_at"));
    assert_eq!(failing["last_success_at"], Value::Null, "{failing}");
    let text = status_text();
    assert!(text.contains("shipping: failing since "), "{text}");
    assert!(text.contains("503"), "{text}");
    assert!(text.contains("nothing sent yet"), "{text}");
    assert!(!text.contains("healthy"), "{text}");

    up.store(true, Ordering::SeqCst);
    let out = run_blocking({
        let mut cmd = promptd();
        cmd.args(["logs", "flush", "--socket"]).arg(&setup.socket);
        cmd
    });
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let deadline = Instant::now() + Duration::from_secs(10);
    let recovered = loop {
        let status = status_json().await;
        if status["sent"] == 1 {
            break status;
        }
        assert!(Instant::now() < deadline, "not sent: {status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(recovered["healthy"], true, "{recovered}");
    assert_eq!(recovered["failing_since"], Value::Null, "{recovered}");
    assert!(
        recovered["last_upstream_error"]
            .as_str()
            .is_some_and(|e| e.contains("503")),
        "the last error is kept: {recovered}"
    );
    assert!(time(&recovered, "last_error_at") >= time(&failing, "last_error_at"));
    assert!(time(&recovered, "last_success_at") >= time(&recovered, "last_error_at"));
    assert_eq!(recovered["waiting_records"], 0, "{recovered}");
    let text = status_text();
    assert!(text.contains("shipping: healthy"), "{text}");
    assert!(text.contains("last sent "), "{text}");
    assert!(text.contains("last error "), "{text}");
    assert!(text.contains(" ago "), "{text}");
    assert!(text.contains("503"), "{text}");
    assert!(!text.contains("failing"), "{text}");
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait_exit(EXIT_TIMEOUT).code(), Some(0));
}
