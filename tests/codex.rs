//! Codex CLI itself (`@openai/codex`, the version `tests/fixtures/agents` was captured with),
//! `codex exec`, against promptd's Responses door on the loopback TCP listener, as
//! `tests/agents/run_codex.sh` runs it: a temp `CODEX_HOME` whose `config.toml` names a
//! provider with `wire_api = "responses"` and `base_url` = the listener, its `env_key` holding
//! the listener's key. Behind promptd a fake chat-completions provider: the call is translated
//! through the internal model, and the answer streamed back as the Responses API's typed
//! events; once a plain answer, once an `exec_command` call that Codex runs and answers. Then
//! the same two runs against a fake provider that serves the Responses API (`responses =
//! true`): Codex's call goes on as it sent it, the provider's events come back as they came.
//!
//! What Codex needs of the door (tests/agents/README.md): `response.output_item.done` for each
//! item (else it prints nothing and still exits 0) and `response.completed` (else it fails).
//! Codex is installed by npm under `target/tmp/agents` by the first test that needs it
//! (`PROMPTD_TEST_CODEX` names a binary instead); each run is bounded by [`RUN_TIMEOUT`]; all
//! traffic stays on 127.0.0.1.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use common::external::{npm_package, run_for};
use common::fake_upstream::{fixtures, FakeUpstream};
use common::process::{stderr, stdout};
use common::{providers_toml, TestDaemon};
use serde_json::Value;

const CODEX_PACKAGE: &str = "@openai/codex";
const CODEX_VERSION: &str = "0.171.0";
/// The key of the daemon's TCP listener: Codex's `env_key` (sent as a bearer token).
const TCP_KEY: &str = "local-tcp-key-0123456789abcdef";
/// Longest one Codex run may take (it takes 1-3 s).
const RUN_TIMEOUT: Duration = Duration::from_secs(120);
const TOOL_OUTPUT: &str = "hi-from-tool";

/// The `codex` launcher at [`CODEX_VERSION`], installed on first use.
fn codex() -> PathBuf {
    static CODEX: OnceLock<PathBuf> = OnceLock::new();
    CODEX
        .get_or_init(|| {
            if let Some(codex) = std::env::var_os("PROMPTD_TEST_CODEX") {
                return PathBuf::from(codex);
            }
            npm_package(CODEX_PACKAGE, CODEX_VERSION).join("node_modules/.bin/codex")
        })
        .clone()
}

/// Run `codex exec PROMPT` against promptd at `base_url` in an empty work dir under a temp
/// home, with nothing of the test runner's environment but PATH.
fn run_codex(base_url: &str, prompt: &str) -> Output {
    let codex = tokio::task::block_in_place(codex);
    let home = tempfile::tempdir().expect("temp home");
    let codex_home = home.path().join("codex");
    let work = home.path().join("work");
    std::fs::create_dir_all(&codex_home).expect("codex home");
    std::fs::create_dir_all(&work).expect("work dir");
    let config = format!(
        "model_provider = \"promptd\"\nmodel = \"gpt-5-codex\"\n\n\
         [model_providers.promptd]\nname = \"promptd\"\nbase_url = \"{base_url}/v1\"\n\
         env_key = \"PROMPTD_KEY\"\nwire_api = \"responses\"\nrequest_max_retries = 0\n\
         stream_max_retries = 0\n\n[analytics]\nenabled = false\n\n[otel]\nexporter = \"none\"\n"
    );
    std::fs::write(codex_home.join("config.toml"), config).expect("codex config");
    let mut cmd = Command::new(codex);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("CODEX_HOME", &codex_home)
        .env("TMPDIR", home.path())
        .env("LANG", "C.UTF-8")
        .env("PROMPTD_KEY", TCP_KEY)
        .current_dir(&work)
        .args(["exec", "--skip-git-repo-check", prompt]);
    tokio::task::block_in_place(|| run_for(cmd, RUN_TIMEOUT))
}

fn assert_printed(out: &Output, text: &str) {
    assert!(
        out.status.success(),
        "codex exec failed ({}): stdout: {} stderr: {}",
        out.status,
        stdout(out),
        stderr(out)
    );
    assert!(
        stdout(out).contains(text),
        "stdout: {} stderr: {}",
        stdout(out),
        stderr(out)
    );
}

async fn daemon(openai: &FakeUpstream, anthropic: &FakeUpstream) -> (TestDaemon, String) {
    let toml = format!(
        "default_provider = \"openai\"\n{}",
        providers_toml(&openai.base_url(), &anthropic.base_url())
    );
    TestDaemon::start_tcp(&toml, TCP_KEY).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_through_a_chat_completions_provider() {
    let openai = FakeUpstream::always(fixtures::openai_stream()).await;
    let anthropic = FakeUpstream::always(fixtures::anthropic_message()).await;
    let (daemon, base_url) = daemon(&openai, &anthropic).await;
    let out = run_codex(&base_url, "Say hello");
    assert_printed(&out, fixtures::HELLO);
    let requests = openai.requests();
    assert_eq!(requests.len(), 1, "one model turn");
    let sent = &requests[0];
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(sent.body["model"], "gpt-5-codex");
    assert_eq!(sent.body["stream"], true);
    // Its developer and user items, as chat messages; its own key never leaves promptd.
    let roles: Vec<&str> = sent.body["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["role"].as_str())
        .collect();
    assert!(roles.contains(&"user"), "{roles:?}");
    assert_eq!(sent.header("authorization"), Some("Bearer sk-test-openai"));
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_runs_a_tool_through_a_chat_completions_provider() {
    // The first turn calls exec_command; the turn with its output gets the text.
    let openai = FakeUpstream::start(|req, _| {
        if fixtures::has_tool_result(&req.body) {
            fixtures::openai_stream()
        } else {
            let args = serde_json::json!({"cmd": format!("echo {TOOL_OUTPUT}")}).to_string();
            fixtures::openai_tool_call_stream_of("call_fake_exec_1", "exec_command", &args)
        }
    })
    .await;
    let anthropic = FakeUpstream::always(fixtures::anthropic_message()).await;
    let (daemon, base_url) = daemon(&openai, &anthropic).await;
    let out = run_codex(&base_url, "Run echo hi-from-tool");
    assert_printed(&out, fixtures::HELLO);
    let requests = openai.requests();
    assert_eq!(requests.len(), 2, "a turn for the call, one for its output");
    let second = &requests[1].body;
    let output = second["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .find(|m| m["role"] == "tool")
        .expect("the tool's output as a tool message");
    assert_eq!(output["tool_call_id"], "call_fake_exec_1");
    let text = match &output["content"] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    assert!(text.contains(TOOL_OUTPUT), "{text}");
    daemon.stop().await;
}

/// A provider that serves the Responses API, as the default.
async fn responses_daemon(upstream: &FakeUpstream) -> (TestDaemon, String) {
    let url = upstream.base_url();
    let toml = format!(
        "default_provider = \"openai\"\n\n[providers.openai]\nkind = \"openai\"\n\
         base_url = \"{url}\"\napi_key = \"sk-test-openai\"\nresponses = true\n\
         max_retries = 0\ntimeout = \"5s\"\n"
    );
    TestDaemon::start_tcp(&toml, TCP_KEY).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_through_a_responses_provider() {
    let upstream = FakeUpstream::always(fixtures::openai_responses_stream()).await;
    let (daemon, base_url) = responses_daemon(&upstream).await;
    let out = run_codex(&base_url, "Say hello");
    assert_printed(&out, fixtures::HELLO);
    let requests = upstream.requests();
    assert_eq!(requests.len(), 1, "one model turn");
    let sent = &requests[0];
    assert_eq!(sent.path, "/v1/responses");
    assert_eq!(sent.body["model"], "gpt-5-codex");
    assert_eq!(sent.body["stream"], true);
    // Codex's own fields, which a translated call leaves out, go on as it sent them.
    assert_eq!(sent.body["store"], false);
    assert_eq!(
        sent.body["include"],
        serde_json::json!(["reasoning.encrypted_content"])
    );
    assert!(sent.body["prompt_cache_key"].is_string(), "{}", sent.body);
    let tools = sent.body["tools"].as_array().expect("tools");
    assert!(
        tools.iter().any(|t| t["type"] != "function"),
        "hosted and namespace tools kept: {tools:?}"
    );
    assert_eq!(sent.header("authorization"), Some("Bearer sk-test-openai"));
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_runs_a_tool_through_a_responses_provider() {
    let upstream = FakeUpstream::start(|req, _| {
        if fixtures::has_function_call_output(&req.body) {
            fixtures::openai_responses_stream()
        } else {
            let args = serde_json::json!({"cmd": format!("echo {TOOL_OUTPUT}")}).to_string();
            fixtures::openai_responses_call_stream_of("call_fake_exec_1", "exec_command", &args)
        }
    })
    .await;
    let (daemon, base_url) = responses_daemon(&upstream).await;
    let out = run_codex(&base_url, "Run echo hi-from-tool");
    assert_printed(&out, fixtures::HELLO);
    let requests = upstream.requests();
    assert_eq!(requests.len(), 2, "a turn for the call, one for its output");
    let output = requests[1].body["input"]
        .as_array()
        .expect("input")
        .iter()
        .find(|item| item["type"] == "function_call_output")
        .cloned()
        .expect("the tool's output as a function_call_output item");
    assert_eq!(output["call_id"], "call_fake_exec_1");
    assert!(
        output["output"].to_string().contains(TOOL_OUTPUT),
        "{output}"
    );
    daemon.stop().await;
}
