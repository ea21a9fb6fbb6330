//! Claude Code itself (`@anthropic-ai/claude-code`, the version `tests/fixtures/agents` was
//! captured with) in print mode (`claude -p`) against promptd's Anthropic Messages door on the
//! loopback TCP listener, as `tests/agents/run_claude.sh` runs it: a temp HOME, no telemetry or
//! other non-essential traffic, `ANTHROPIC_BASE_URL` = the listener, `ANTHROPIC_API_KEY` = its
//! key. Behind promptd, once a fake Anthropic-kind provider (the request forwarded as Claude
//! Code wrote it, betas and all) and once a fake OpenAI-kind provider (translated to chat
//! completions); each with a plain answer and with a `Bash` tool call that Claude Code runs
//! and answers with its result.
//!
//! What Claude Code needs of the door (tests/agents/README.md): it sends `HEAD /` first (no
//! key; any answer will do), then streams `POST /v1/messages?beta=true`; a stream without
//! `event:` lines, `message_start` or `content_block_start` makes it silently resend without
//! `stream`, and one without text deltas makes it retry once with a nudge. So every test
//! checks the count and the `stream: true` of what the provider received, not only the text.
//!
//! Claude Code is installed by npm under `target/tmp/agents` by the first test that needs it
//! (`tests/common/external.rs`; `PROMPTD_TEST_CLAUDE` names a binary instead). Each run is
//! bounded by [`RUN_TIMEOUT`]; all traffic stays on 127.0.0.1.
//! `claude_code_against_the_fake_alone` (ignored) points Claude Code at the fake Anthropic
//! itself: it checks the fake, not promptd (`cargo test --test claude_code -- --ignored`).

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::external::{claude, run_for};
use common::fake_upstream::{fixtures, Behavior, FakeUpstream, RecordedRequest};
use common::process::{stderr, stdout};
use common::{providers_toml, TestDaemon};
use serde_json::{json, Value};

/// The key of the daemon's TCP listener: Claude Code's `ANTHROPIC_API_KEY` (sent as
/// `x-api-key`).
const TCP_KEY: &str = "local-tcp-key-0123456789abcdef";
/// Longest one Claude Code run may take (it takes 2-5 s).
const RUN_TIMEOUT: Duration = Duration::from_secs(120);
const PROMPT: &str = "Say hello";
/// The command the fake's tool call asks Claude Code to run, and what it prints.
const TOOL_OUTPUT: &str = "hi-from-tool";
const TOOL_USE_ID: &str = "toolu_fake_bash_1";
const TOOL_CALL_ID: &str = "call_fake_bash_1";
/// The first request of `claude -p "Say hello"` as captured (HEAD /, then this POST).
const CAPTURE: &str = include_str!("fixtures/agents/claude_code_2.1.197.jsonl");

fn bash_input() -> Value {
    json!({"command": format!("echo {TOOL_OUTPUT}"), "description": "Print a greeting"})
}

/// The captured POST: its headers (name, value) and its body.
fn captured_post() -> (Vec<(String, String)>, Value) {
    let post: Value = CAPTURE
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("capture line"))
        .find(|r| r["method"] == "POST")
        .expect("a captured POST");
    let headers = post["headers"]
        .as_array()
        .expect("headers")
        .iter()
        .map(|h| {
            (
                h[0].as_str().unwrap_or_default().to_ascii_lowercase(),
                h[1].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let body = serde_json::from_str(post["body"].as_str().expect("body")).expect("body JSON");
    (headers, body)
}

fn captured_header(name: &str) -> String {
    captured_post()
        .0
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("the capture has {name}"))
}

/// The tool names of a request body (Anthropic `name`, OpenAI `function.name`).
fn tool_names(body: &Value) -> Vec<String> {
    body["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["name"].as_str().or(t["function"]["name"].as_str()))
        .map(str::to_owned)
        .collect()
}

/// Whether the request offers Claude Code's `Bash` tool and has no tool result yet.
fn wants_bash(req: &RecordedRequest) -> bool {
    tool_names(&req.body).iter().any(|n| n == "Bash") && !fixtures::has_tool_result(&req.body)
}

/// The fake Anthropic-kind provider: a streamed Bash call first when `tool_first`, else the
/// hello answer, streamed when asked (Claude Code asks); count_tokens answered too; anything
/// but a POST (the `HEAD /` probe, were it forwarded) a 404.
fn anthropic_fake(tool_first: bool) -> impl Fn(&RecordedRequest, usize) -> Behavior {
    move |req, _| {
        if req.method != "POST" {
            return Behavior::json(
                404,
                r#"{"type":"error","error":{"type":"not_found_error","message":"fake: not here"}}"#,
            );
        }
        if req.path.ends_with("/count_tokens") {
            return fixtures::anthropic_count_tokens(42);
        }
        if tool_first && wants_bash(req) {
            return fixtures::anthropic_tool_use_stream_of(TOOL_USE_ID, "Bash", &bash_input());
        }
        if req.body["stream"] == true {
            fixtures::anthropic_stream()
        } else {
            fixtures::anthropic_message()
        }
    }
}

/// The fake OpenAI-kind provider: a streamed `Bash` function call first when `tool_first`,
/// else the hello answer, streamed when asked.
fn openai_fake(tool_first: bool) -> impl Fn(&RecordedRequest, usize) -> Behavior {
    move |req, _| {
        if tool_first && wants_bash(req) {
            let args = bash_input().to_string();
            return fixtures::openai_tool_call_stream_of(TOOL_CALL_ID, "Bash", &args);
        }
        if req.body["stream"] == true {
            fixtures::openai_stream()
        } else {
            fixtures::openai_chat()
        }
    }
}

/// A daemon whose `default_provider` is `provider` (so Claude Code's model names, its main
/// model and any cheaper background one, all go there), with both fakes as providers.
async fn daemon(
    provider: &str,
    openai: &FakeUpstream,
    anthropic: &FakeUpstream,
) -> (TestDaemon, String) {
    let toml = format!(
        "default_provider = \"{provider}\"\n{}",
        providers_toml(&openai.base_url(), &anthropic.base_url())
    );
    TestDaemon::start_tcp(&toml, TCP_KEY).await
}

/// Run `claude -p PROMPT` against `base_url` with `key`, in an empty work dir under a temp
/// HOME, with nothing of the test runner's environment but PATH.
fn run_claude(base_url: &str, key: &str) -> Output {
    let claude = tokio::task::block_in_place(claude);
    let home = tempfile::tempdir().expect("temp HOME");
    let work = home.path().join("work");
    std::fs::create_dir_all(&work).expect("work dir");
    let mut cmd = Command::new(claude);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join(".config"))
        .env("TMPDIR", home.path())
        .env("SHELL", "/bin/bash")
        .env("LANG", "C.UTF-8")
        .env("ANTHROPIC_BASE_URL", base_url)
        .env("ANTHROPIC_API_KEY", key)
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env("DISABLE_AUTOUPDATER", "1")
        .env("DISABLE_TELEMETRY", "1")
        .env("DISABLE_ERROR_REPORTING", "1")
        .current_dir(&work)
        .args(["-p", PROMPT]);
    tokio::task::block_in_place(|| run_for(cmd, RUN_TIMEOUT))
}

/// Claude Code exited 0 and printed `text` (and nothing else) on stdout.
fn assert_printed(out: &Output, text: &str) {
    assert!(
        out.status.success(),
        "claude -p failed ({}): stdout: {} stderr: {}",
        out.status,
        stdout(out),
        stderr(out)
    );
    assert_eq!(stdout(out).trim(), text, "stderr: {}", stderr(out));
}

/// Every request was a streamed POST to `path` (no non-stream fallback, no empty-answer
/// retry: `expected` of them).
fn assert_streamed(requests: &[RecordedRequest], path: &str, expected: usize) {
    assert_eq!(
        requests.len(),
        expected,
        "one streamed request per model turn: {:#?}",
        requests
            .iter()
            .map(|r| (&r.method, &r.path, &r.body["stream"]))
            .collect::<Vec<_>>()
    );
    for r in requests {
        assert_eq!(
            (r.method.as_str(), r.path.as_str()),
            ("POST", path),
            "{r:?}"
        );
        assert_eq!(r.body["stream"], true, "streamed: {}", r.body);
    }
}

/// What an Anthropic-kind provider received: Claude Code's request forwarded, with promptd's
/// provider key instead of the listener's.
fn assert_forwarded(r: &RecordedRequest) {
    assert_eq!(r.header("anthropic-version"), Some("2023-06-01"), "{r:?}");
    assert_eq!(
        r.header("anthropic-beta").map(str::to_owned),
        Some(captured_header("anthropic-beta")),
        "Claude Code's betas forwarded: {r:?}"
    );
    assert_eq!(
        r.header("x-api-key"),
        Some("sk-ant-test"),
        "the provider's key: {r:?}"
    );
    assert!(
        r.headers
            .values()
            .all(|v| !v.as_bytes().ends_with(TCP_KEY.as_bytes())),
        "the listener's key stays in promptd: {r:?}"
    );
    let (_, captured) = captured_post();
    assert!(
        r.body["model"]
            .as_str()
            .is_some_and(|m| m.starts_with("claude-")),
        "{}",
        r.body["model"]
    );
    assert_eq!(
        tool_names(&r.body),
        tool_names(&captured),
        "the tools as sent"
    );
    for key in [
        "max_tokens",
        "thinking",
        "context_management",
        "output_config",
    ] {
        assert_eq!(r.body[key], captured[key], "{key} forwarded as sent");
    }
    assert_eq!(
        r.body["system"].as_array().map(Vec::len),
        Some(3),
        "{}",
        r.body["system"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_code_through_an_anthropic_provider() {
    let anthropic = FakeUpstream::start(anthropic_fake(false)).await;
    let openai = FakeUpstream::start(openai_fake(false)).await;
    let (daemon, url) = daemon("anthropic", &openai, &anthropic).await;

    let out = run_claude(&url, TCP_KEY);
    assert_printed(&out, fixtures::HELLO);
    let requests = anthropic.requests();
    assert_streamed(&requests, "/v1/messages", 1);
    assert_forwarded(&requests[0]);
    assert_eq!(openai.calls(), 0);
    daemon.stop().await;
}

/// The second turn of a tool run (Anthropic shape): the streamed `Bash` call rebuilt whole,
/// then its result, as Claude Code sends them.
fn assert_bash_result(body: &Value) {
    let messages = body["messages"].as_array().expect("messages");
    let n = messages.len();
    assert_eq!(messages[n - 2]["role"], "assistant");
    assert_eq!(
        messages[n - 2]["content"],
        json!([{"type": "tool_use", "id": TOOL_USE_ID, "name": "Bash", "input": bash_input()}]),
        "the streamed call rebuilt whole"
    );
    let result = &messages[n - 1]["content"][0];
    assert_eq!(result["type"], "tool_result", "{result}");
    assert_eq!(result["tool_use_id"], TOOL_USE_ID, "{result}");
    assert_eq!(result["is_error"], false, "{result}");
    assert!(
        result["content"].to_string().contains(TOOL_OUTPUT),
        "{result}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_code_runs_a_tool_through_an_anthropic_provider() {
    let anthropic = FakeUpstream::start(anthropic_fake(true)).await;
    let openai = FakeUpstream::start(openai_fake(true)).await;
    let (daemon, url) = daemon("anthropic", &openai, &anthropic).await;

    let out = run_claude(&url, TCP_KEY);
    assert_printed(&out, fixtures::HELLO);
    let requests = anthropic.requests();
    assert_streamed(&requests, "/v1/messages", 2);
    assert_forwarded(&requests[1]);
    assert_bash_result(&requests[1].body);
    assert_eq!(openai.calls(), 0);
    daemon.stop().await;
}

/// The text of an OpenAI message's content (a string or text parts).
fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect(),
        _ => String::new(),
    }
}

/// What an OpenAI-kind provider received: Claude Code's request as chat completions.
fn assert_translated(r: &RecordedRequest) {
    assert_eq!(
        r.header("authorization"),
        Some("Bearer sk-test-openai"),
        "{r:?}"
    );
    let body = &r.body;
    let messages = body["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("messages: {body}"));
    assert_eq!(messages[0]["role"], "system", "system first: {body}");
    assert!(
        content_text(&messages[0]["content"]).contains("You are a Claude agent"),
        "Claude Code's system blocks: {}",
        messages[0]
    );
    assert!(
        messages
            .iter()
            .any(|m| m["role"] == "user" && content_text(&m["content"]).contains(PROMPT)),
        "the prompt: {body}"
    );
    let (_, captured) = captured_post();
    assert_eq!(
        tool_names(body),
        tool_names(&captured),
        "every tool as a function"
    );
    assert!(
        body["tools"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|t| t["type"] == "function" && t["function"]["parameters"].is_object()),
        "{}",
        body["tools"]
    );
    assert_eq!(
        body["max_tokens"], captured["max_tokens"],
        "max_tokens mapped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_code_through_an_openai_provider() {
    let anthropic = FakeUpstream::start(anthropic_fake(false)).await;
    let openai = FakeUpstream::start(openai_fake(false)).await;
    let (daemon, url) = daemon("openai", &openai, &anthropic).await;

    let out = run_claude(&url, TCP_KEY);
    assert_printed(&out, fixtures::HELLO);
    let requests = openai.requests();
    assert_streamed(&requests, "/v1/chat/completions", 1);
    assert_translated(&requests[0]);
    assert_eq!(anthropic.calls(), 0);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_code_runs_a_tool_through_an_openai_provider() {
    let anthropic = FakeUpstream::start(anthropic_fake(true)).await;
    let openai = FakeUpstream::start(openai_fake(true)).await;
    let (daemon, url) = daemon("openai", &openai, &anthropic).await;

    let out = run_claude(&url, TCP_KEY);
    assert_printed(&out, fixtures::HELLO);
    let requests = openai.requests();
    assert_streamed(&requests, "/v1/chat/completions", 2);
    assert_translated(&requests[1]);
    let messages = requests[1].body["messages"].as_array().expect("messages");
    let n = messages.len();
    let assistant = &messages[n - 2];
    assert_eq!(assistant["role"], "assistant", "{assistant}");
    let call = &assistant["tool_calls"][0];
    assert_eq!(call["id"], TOOL_CALL_ID, "{assistant}");
    assert_eq!(call["type"], "function", "{assistant}");
    assert_eq!(call["function"]["name"], "Bash", "{assistant}");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap_or_default())
            .unwrap_or_else(|e| panic!("arguments are JSON text ({e}): {assistant}"));
    assert_eq!(args, bash_input(), "{assistant}");
    let tool = &messages[n - 1];
    assert_eq!(tool["role"], "tool", "{tool}");
    assert_eq!(tool["tool_call_id"], TOOL_CALL_ID, "{tool}");
    assert!(
        content_text(&tool["content"]).contains(TOOL_OUTPUT),
        "{tool}"
    );
    assert_eq!(anthropic.calls(), 0);
    daemon.stop().await;
}

/// Claude Code straight at the fake Anthropic, no promptd, its `HEAD /` probe answered 401 (as
/// promptd's listener answers a request without its key): what the tests above expect of
/// promptd is what the fake itself gives Claude Code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "checks the fake, not promptd"]
async fn claude_code_against_the_fake_alone() {
    let fake = anthropic_fake(true);
    let anthropic = FakeUpstream::start(move |req, i| {
        if req.method == "HEAD" {
            Behavior::json(
                401,
                r#"{"error":{"type":"authentication_error","message":"no key"}}"#,
            )
        } else {
            fake(req, i)
        }
    })
    .await;
    let out = run_claude(&format!("http://{}", anthropic.addr()), "sk-ant-fake");
    assert_printed(&out, fixtures::HELLO);
    let requests = anthropic.requests();
    assert_eq!(
        (requests[0].method.as_str(), requests[0].path.as_str()),
        ("HEAD", "/")
    );
    let posts = &requests[1..];
    assert_streamed(posts, "/v1/messages", 2);
    for r in posts {
        assert_eq!(r.query.as_deref(), Some("beta=true"), "{r:?}");
        assert_eq!(r.header("x-api-key"), Some("sk-ant-fake"), "{r:?}");
        assert_eq!(
            r.header("anthropic-beta").map(str::to_owned),
            Some(captured_header("anthropic-beta"))
        );
    }
    assert_bash_result(&posts[1].body);
}
