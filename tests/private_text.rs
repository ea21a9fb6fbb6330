//! Keys and credentials never leave in text: a key a provider echoes in its error is masked in
//! the daemon's own log on every path (a stream that fails after it started, an answer from an
//! expired entry), and a `base_url` with credentials (`http://user:PASS@host/v1`) shows neither
//! in client errors, `/status`, `promptd status` nor the daemon's log.

mod common;

use std::time::Duration;

use common::fake_upstream::{fixtures, refused_base_url, Behavior, FakeUpstream};
use common::process::{run_blocking, stdout, toml_string, Setup};
use serde_json::json;

const KEY: &str = "sk-echoed-secret-0123456789";
const PASS: &str = "url-pass-secret-0123";

fn provider(name: &str, base_url: &str) -> String {
    format!(
        "[providers.{name}]\nkind = \"openai\"\nbase_url = {}\napi_key = \"{KEY}\"\nmax_retries = 0\ntimeout = \"5s\"\n",
        toml_string(base_url)
    )
}

/// Wait (bounded) until the daemon's log holds `line`.
async fn wait_for_log(daemon: &common::process::Daemon, line: &str) -> String {
    common::wait::wait_for(&format!("`{line}` in the daemon's log"), || {
        let log = daemon.stderr();
        log.contains(line).then_some(log)
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_the_provider_echoes_is_masked_in_the_daemons_log() {
    let echo = format!("Incorrect API key provided: {KEY}");
    let stream = format!(
        "data: {}\n\ndata: {}\n\n",
        json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
               "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"}, "finish_reason": null}]}),
        json!({"error": {"message": echo, "type": "server_error"}})
    );
    let failing = FakeUpstream::always(Behavior::sse(&stream)).await;
    let stale = FakeUpstream::first_then(
        fixtures::openai_chat(),
        Behavior::json(500, json!({"error": {"message": echo}}).to_string()),
    )
    .await;
    let setup = Setup::new(
        "[cache]\nttl = \"1ms\"\nserve_stale_on_error = true",
        &format!(
            "{}{}",
            provider("failing", &failing.base_url()),
            provider("stale", &stale.base_url())
        ),
    );
    let daemon = tokio::task::block_in_place(|| setup.serve("echo"));
    // A cached (shared) stream that fails after its first delta.
    let out = tokio::task::block_in_place(|| setup.ask("stream", "failing", &[], "Hi"));
    assert!(!String::from_utf8_lossy(&out.stdout).contains(KEY));
    let log = wait_for_log(&daemon, "stream failed after it started").await;
    assert!(!log.contains(KEY), "the key in the daemon's log:\n{log}");
    // An answer, expired at once, then the provider's 500 quoting the key: the stale answer.
    for _ in 0..2 {
        let out = tokio::task::block_in_place(|| setup.ask("complete", "stale", &[], "Hi"));
        assert!(out.status.success(), "{out:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let log = wait_for_log(&daemon, "answering from an expired cache entry").await;
    assert!(log.contains("redacted key"), "{log}");
    assert!(!log.contains(KEY), "the key in the daemon's log:\n{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_in_a_base_url_are_never_shown() {
    let refused = refused_base_url().replace("http://", &format!("http://user:{PASS}@"));
    let setup = Setup::new("", &provider("locked", &refused));
    let daemon = tokio::task::block_in_place(|| setup.serve("creds"));
    let out = tokio::task::block_in_place(|| setup.ask("complete", "locked", &[], "Hi"));
    let said = format!("{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success());
    assert!(
        said.contains("not reachable") && said.contains("***@127.0.0.1"),
        "{said}"
    );
    assert!(!said.contains(PASS), "{said}");
    let status = tokio::task::block_in_place(|| run_blocking(setup.client("status")));
    let shown = stdout(&status);
    assert!(shown.contains("***@127.0.0.1"), "{shown}");
    assert!(!shown.contains(PASS), "{shown}");
    let json_status = tokio::task::block_in_place(|| {
        let mut cmd = setup.client("status");
        cmd.arg("--json");
        run_blocking(cmd)
    });
    assert!(!stdout(&json_status).contains(PASS));
    assert!(!daemon.stderr().contains(PASS), "{}", daemon.stderr());
}
