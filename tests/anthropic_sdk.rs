//! The real Anthropic Python SDK (`tests/sdk/requirements.txt`, driven by
//! `tests/sdk/anthropic_calls.py`) against promptd's Anthropic Messages door (`/v1/messages`,
//! `/v1/messages/count_tokens`), over the loopback TCP listener (with its key) and over the
//! Unix socket: a whole message, the stream helper and raw `stream=True` events, a tool use
//! answered with a `tool_result` turn, a streamed tool use, count_tokens, the beta namespace and
//! an upstream's refusal as the SDK's own exception.
//!
//! Once with an Anthropic-kind provider (the body and the `anthropic-version` /
//! `anthropic-beta` headers forwarded; the fake's answers passed back), once with an
//! OpenAI-kind provider (the request translated to `/chat/completions`: system first,
//! `tool_calls` and `tool` messages, `max_tokens`; the answers rendered as Anthropic's).
//!
//! The venv is shared with `tests/sdk.rs` (`tests/common/external.rs`).
//! `fakes_answer_the_sdk_directly` (ignored) points the SDK at the fake Anthropic itself: it
//! checks the fake, not promptd (`cargo test --test anthropic_sdk -- --ignored`).

mod common;

use std::time::Duration;

use common::external::{python_script, run_for};
use common::fake_upstream::{fixtures, Behavior, FakeUpstream, RecordedRequest};
use common::process::{stderr, stdout};
use common::{providers_toml, TestDaemon};
use serde_json::{json, Value};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/anthropic_calls.py");
/// The key of the daemon's TCP listener, given to the SDK (it sends it as `x-api-key`).
const TCP_KEY: &str = "local-tcp-key-0123456789abcdef";
/// The `anthropic-version` the pinned SDK sends (its `ANTHROPIC_API_VERSION`; Claude Code
/// 2.1.197 sends 2023-06-01). It sends its key as `Authorization: Bearer`, not `x-api-key`.
const SDK_ANTHROPIC_VERSION: &str = "2026-10-21";
/// The model the SDK asks for: a bare name, placed by `default_provider` or `[models]`.
const MODEL: &str = "claude-sonnet-4-5";
/// What the script sends (`tests/sdk/anthropic_calls.py`).
const SYSTEM: &str = "Be brief.";
const MAX_TOKENS: u64 = 100;
const TOOL_RESULT: &str = "18C and sunny";
const ALL: &[&str] = &[
    "message",
    "stream",
    "tools",
    "tool_stream",
    "count_tokens",
    "beta",
    "error",
];

/// Whether the request asks for a tool and has no tool result yet.
fn wants_tool(req: &RecordedRequest) -> bool {
    req.body["tools"].as_array().is_some_and(|t| !t.is_empty())
        && !fixtures::has_tool_result(&req.body)
}

/// The first user message's text (a string, or its first text block / part).
fn first_user_text(body: &Value) -> String {
    let Some(user) = body["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["role"] == "user")
    else {
        return String::new();
    };
    match &user["content"] {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts
            .iter()
            .find_map(|p| p["text"].as_str())
            .unwrap_or_default()
            .to_owned(),
        _ => String::new(),
    }
}

/// The fake Anthropic: count_tokens answers 42, "please fail" 400, a request with tools and
/// no result yet the tool use fixture, else the hello fixture; streamed when asked.
fn anthropic_fake(req: &RecordedRequest, _: usize) -> Behavior {
    if req.path.ends_with("/count_tokens") {
        return fixtures::anthropic_count_tokens(42);
    }
    if first_user_text(&req.body).contains("please fail") {
        return fixtures::anthropic_400();
    }
    match (req.body["stream"] == true, wants_tool(req)) {
        (true, true) => fixtures::anthropic_tool_use_stream(),
        (true, false) => fixtures::anthropic_stream(),
        (false, true) => fixtures::anthropic_tool_use(),
        (false, false) => fixtures::anthropic_message(),
    }
}

/// The fake OpenAI: "please fail" 400, a request with tools and no `tool` message yet the
/// `get_weather` call fixture, else the hello fixture; streamed when asked.
fn openai_fake(req: &RecordedRequest, _: usize) -> Behavior {
    if first_user_text(&req.body).contains("please fail") {
        return fixtures::openai_400();
    }
    match (req.body["stream"] == true, wants_tool(req)) {
        (true, true) => fixtures::openai_tool_call_stream(),
        (true, false) => fixtures::openai_stream(),
        (false, true) => fixtures::openai_tool_call(),
        (false, false) => fixtures::openai_chat(),
    }
}

/// Run the script's `scenarios` against `target` (`{"base_url": ..}` or `{"socket": ..}`);
/// each scenario's line by name, none of them an exception.
fn sdk(target: Value, scenarios: &[&str]) -> std::collections::HashMap<String, Value> {
    let mut arg = target;
    arg["model"] = json!(MODEL);
    let mut cmd = python_script(SCRIPT);
    cmd.env("PROMPTD_TCP_KEY", TCP_KEY)
        .arg(arg.to_string())
        .args(scenarios);
    let out = tokio::task::block_in_place(|| run_for(cmd, Duration::from_secs(120)));
    assert!(
        out.status.success(),
        "anthropic_calls.py failed: {}{}",
        stdout(&out),
        stderr(&out)
    );
    let mut lines = std::collections::HashMap::new();
    for line in stdout(&out).lines() {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("the script printed a line that is not JSON ({e}): {line}"));
        let name = v["scenario"].as_str().expect("scenario name").to_owned();
        assert!(
            v.get("exception").is_none(),
            "scenario {name} raised: {}",
            serde_json::to_string_pretty(&v["exception"]).unwrap_or_default()
        );
        lines.insert(name, v);
    }
    for name in scenarios {
        assert!(lines.contains_key(*name), "no line for scenario {name}");
    }
    lines
}

/// The requests `fake` received whose first user text is `text`.
fn sent_with(fake: &FakeUpstream, text: &str) -> Vec<RecordedRequest> {
    fake.requests()
        .into_iter()
        .filter(|r| first_user_text(&r.body) == text)
        .collect()
}

fn one_sent_with(fake: &FakeUpstream, text: &str) -> RecordedRequest {
    let found = sent_with(fake, text);
    assert_eq!(found.len(), 1, "one request with {text:?}: {found:#?}");
    found.into_iter().next().expect("one")
}

fn text_only(text: &str) -> Value {
    json!([{"type": "text", "text": text}])
}

fn weather_input() -> Value {
    json!({"city": "Paris", "unit": "c"})
}

/// What the SDK got from the Anthropic fake through promptd: the fixtures as they are.
fn assert_anthropic_answers(got: &std::collections::HashMap<String, Value>) {
    let (input, output) = fixtures::ANTHROPIC_USAGE;
    let m = &got["message"];
    assert_eq!(m["id"], fixtures::ANTHROPIC_ID, "{m}");
    assert_eq!(m["type"], "message", "{m}");
    assert_eq!(m["role"], "assistant", "{m}");
    assert_eq!(m["model"], fixtures::ANTHROPIC_MODEL, "{m}");
    assert_eq!(m["content"], text_only(fixtures::HELLO), "{m}");
    assert_eq!(m["stop_reason"], "end_turn", "{m}");
    assert_eq!(
        (m["input_tokens"].as_u64(), m["output_tokens"].as_u64()),
        (Some(input), Some(output)),
        "{m}"
    );

    let s = &got["stream"];
    assert_eq!(s["texts"], json!(fixtures::ANTHROPIC_DELTAS), "{s}");
    assert_eq!(s["final"]["content"], text_only(fixtures::HELLO), "{s}");
    assert_eq!(s["final"]["stop_reason"], "end_turn", "{s}");
    assert_eq!(s["final"]["output_tokens"], output, "{s}");
    assert_eq!(s["raw_text"], fixtures::HELLO, "{s}");
    assert_eq!(
        s["event_types"],
        json!([
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]),
        "{s}"
    );

    let t = &got["tools"];
    assert_eq!(
        t["first"]["content"],
        json!([{"type": "text", "text": fixtures::ANTHROPIC_TOOL_TEXT},
               {"type": "tool_use", "id": fixtures::ANTHROPIC_TOOL_USE_ID,
                "name": fixtures::TOOL_NAME, "input": weather_input()}]),
        "{t}"
    );
    assert_eq!(t["first"]["stop_reason"], "tool_use", "{t}");
    assert_eq!(t["second"]["content"], text_only(fixtures::HELLO), "{t}");

    let ts = &got["tool_stream"];
    assert_eq!(
        ts["partial_json"],
        fixtures::ANTHROPIC_TOOL_INPUT_JSON,
        "{ts}"
    );
    assert_eq!(ts["final"]["content"][1]["input"], weather_input(), "{ts}");
    assert_eq!(ts["final"]["stop_reason"], "tool_use", "{ts}");

    assert_eq!(got["count_tokens"]["input_tokens"], 42, "passed through");
    assert_eq!(got["beta"]["content"][0]["text"], fixtures::HELLO);
    let e = &got["error"];
    assert_eq!(e["class"], "BadRequestError", "{e}");
    assert_eq!(e["status"], 400, "{e}");
    assert_eq!(e["error_type"], "invalid_request_error", "{e}");
    let fixture: Value =
        serde_json::from_str(fixtures::ANTHROPIC_ERROR_400_JSON).expect("fixture JSON");
    assert_eq!(e["body"], fixture, "Anthropic's error passed through: {e}");
}

/// What the fake Anthropic received from promptd (`direct`: from the SDK itself).
fn assert_anthropic_requests(fake: &FakeUpstream, direct: bool) {
    let requests = fake.requests();
    for r in &requests {
        assert_eq!(r.method, "POST", "{r:?}");
        let want = if r.path.ends_with("/count_tokens") {
            "/v1/messages/count_tokens"
        } else {
            "/v1/messages"
        };
        assert_eq!(r.path, want, "{r:?}");
        assert_eq!(
            r.header("anthropic-version"),
            Some(SDK_ANTHROPIC_VERSION),
            "the client's version forwarded: {r:?}"
        );
        if !direct {
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
        }
    }
    let counted: Vec<_> = requests
        .iter()
        .filter(|r| r.path.ends_with("/count_tokens"))
        .collect();
    assert_eq!(counted.len(), 1, "count_tokens forwarded once");
    assert_eq!(counted[0].body["model"], MODEL);
    assert_eq!(counted[0].body["system"], SYSTEM);
    assert_eq!(counted[0].body["tools"][0]["name"], fixtures::TOOL_NAME);

    // The bodies as the SDK wrote them.
    let hello: Vec<_> = sent_with(fake, "Hello")
        .into_iter()
        .filter(|r| !r.path.ends_with("/count_tokens"))
        .collect();
    assert_eq!(hello.len(), 1, "{hello:#?}");
    let body = &hello[0].body;
    assert_eq!(body["model"], MODEL);
    assert_eq!(body["max_tokens"], MAX_TOKENS);
    assert_eq!(body["system"], SYSTEM);
    assert_eq!(
        body["messages"],
        json!([{"role": "user", "content": "Hello"}])
    );
    assert_ne!(body["stream"], true);
    for text in ["Hello stream", "Hello raw"] {
        assert_eq!(one_sent_with(fake, text).body["stream"], true, "{text}");
    }

    let tools = sent_with(fake, "What is the weather in Paris?");
    assert_eq!(tools.len(), 2, "{tools:#?}");
    let second = &tools[1].body;
    assert_eq!(second["messages"][1]["role"], "assistant");
    assert_eq!(
        second["messages"][1]["content"][1]["id"],
        fixtures::ANTHROPIC_TOOL_USE_ID
    );
    assert_eq!(
        second["messages"][2]["content"],
        json!([{"type": "tool_result", "tool_use_id": fixtures::ANTHROPIC_TOOL_USE_ID,
                "content": TOOL_RESULT}]),
        "{second}"
    );

    let beta = one_sent_with(fake, "Hello beta");
    assert_eq!(
        beta.header("anthropic-beta"),
        Some("context-management-2025-06-27"),
        "forwarded: {beta:?}"
    );
    for r in &requests {
        if first_user_text(&r.body) != "Hello beta" {
            assert_eq!(r.header("anthropic-beta"), None, "{r:?}");
        }
    }
}

async fn anthropic_daemon(anthropic: &FakeUpstream) -> (TestDaemon, String, FakeUpstream) {
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let toml = format!(
        "default_provider = \"anthropic\"\n{}",
        providers_toml(&openai.base_url(), &anthropic.base_url())
    );
    let (daemon, url) = TestDaemon::start_tcp(&toml, TCP_KEY).await;
    (daemon, url, openai)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_sdk_through_an_anthropic_provider() {
    let anthropic = FakeUpstream::start(anthropic_fake).await;
    let (daemon, url, openai) = anthropic_daemon(&anthropic).await;

    let got = sdk(json!({"base_url": url}), ALL);
    assert_anthropic_answers(&got);
    assert_anthropic_requests(&anthropic, false);
    assert_eq!(openai.calls(), 0);

    // The Unix socket: the same door, no key.
    let socket = daemon.socket.display().to_string();
    let got = sdk(json!({"socket": socket}), &["message", "stream"]);
    assert_eq!(got["message"]["content"], text_only(fixtures::HELLO));
    assert_eq!(got["stream"]["raw_text"], fixtures::HELLO);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_sdk_through_an_openai_provider() {
    let openai = FakeUpstream::start(openai_fake).await;
    let anthropic = FakeUpstream::always(fixtures::anthropic_message()).await;
    // A Claude name mapped to the OpenAI-kind provider.
    let toml = format!(
        "[models]\n\"{MODEL}\" = \"openai\"\n{}",
        providers_toml(&openai.base_url(), &anthropic.base_url())
    );
    let (daemon, url) = TestDaemon::start_tcp(&toml, TCP_KEY).await;

    let got = sdk(json!({"base_url": url}), ALL);
    let (prompt, completion, _) = fixtures::OPENAI_USAGE;
    let m = &got["message"];
    assert_eq!(m["type"], "message", "{m}");
    assert_eq!(m["role"], "assistant", "{m}");
    assert_eq!(m["content"], text_only(fixtures::HELLO), "{m}");
    assert_eq!(m["stop_reason"], "end_turn", "{m}");
    assert_eq!(
        (m["input_tokens"].as_u64(), m["output_tokens"].as_u64()),
        (Some(prompt), Some(completion)),
        "{m}"
    );
    assert!(m["id"].as_str().is_some_and(|id| !id.is_empty()), "{m}");

    let s = &got["stream"];
    assert_eq!(
        s["texts"]
            .as_array()
            .map(|t| t.iter().filter_map(Value::as_str).collect::<String>()),
        Some(fixtures::HELLO.to_owned()),
        "{s}"
    );
    assert_eq!(s["final"]["content"], text_only(fixtures::HELLO), "{s}");
    assert_eq!(s["final"]["stop_reason"], "end_turn", "{s}");
    assert_eq!(s["raw_text"], fixtures::HELLO, "{s}");
    let types = s["event_types"].as_array().expect("event types");
    assert_eq!(types.first(), Some(&json!("message_start")), "{s}");
    assert_eq!(types.get(1), Some(&json!("content_block_start")), "{s}");
    assert_eq!(
        &types[types.len() - 3..],
        &[
            json!("content_block_stop"),
            json!("message_delta"),
            json!("message_stop")
        ],
        "{s}"
    );

    let t = &got["tools"];
    let call = t["first"]["content"]
        .as_array()
        .and_then(|c| c.iter().find(|b| b["type"] == "tool_use"))
        .unwrap_or_else(|| panic!("a tool_use block: {t}"))
        .clone();
    assert_eq!(call["name"], fixtures::TOOL_NAME, "{t}");
    assert_eq!(call["input"], weather_input(), "{t}");
    assert_eq!(
        call["id"],
        fixtures::OPENAI_TOOL_CALL_ID,
        "the call's id kept: {t}"
    );
    assert_eq!(t["first"]["stop_reason"], "tool_use", "{t}");
    assert_eq!(t["second"]["content"], text_only(fixtures::HELLO), "{t}");

    let ts = &got["tool_stream"];
    let partial: Value = serde_json::from_str(ts["partial_json"].as_str().unwrap_or_default())
        .unwrap_or_else(|e| panic!("the streamed input is JSON ({e}): {ts}"));
    assert_eq!(partial, weather_input(), "{ts}");
    assert_eq!(ts["final"]["stop_reason"], "tool_use", "{ts}");
    assert!(
        ts["final"]["content"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|b| b["type"] == "tool_use" && b["input"] == weather_input()),
        "{ts}"
    );

    assert!(
        got["count_tokens"]["input_tokens"].as_u64() > Some(0),
        "{}",
        got["count_tokens"]
    );
    assert_eq!(got["beta"]["content"][0]["text"], fixtures::HELLO);
    let e = &got["error"];
    assert_eq!(e["class"], "BadRequestError", "{e}");
    assert_eq!(e["status"], 400, "{e}");
    assert_eq!(e["body"]["type"], "error", "Anthropic's error shape: {e}");
    assert_eq!(e["body"]["error"]["type"], "invalid_request_error", "{e}");
    assert!(
        e["body"]["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{e}"
    );

    // What the OpenAI-kind provider received: the chat completions translation.
    let requests = openai.requests();
    for r in &requests {
        assert_eq!(
            (r.method.as_str(), r.path.as_str()),
            ("POST", "/v1/chat/completions"),
            "{r:?}"
        );
        assert_eq!(
            r.header("authorization"),
            Some("Bearer sk-test-openai"),
            "{r:?}"
        );
        assert_eq!(r.body["model"], MODEL, "{r:?}");
    }
    let hello = one_sent_with(&openai, "Hello");
    assert_eq!(
        hello.body["messages"][0],
        json!({"role": "system", "content": SYSTEM}),
        "system first: {}",
        hello.body
    );
    assert_eq!(hello.body["messages"][1]["role"], "user", "{}", hello.body);
    assert_eq!(
        hello.body["messages"].as_array().map(Vec::len),
        Some(2),
        "{}",
        hello.body
    );
    assert_eq!(hello.body["max_tokens"], MAX_TOKENS, "{}", hello.body);
    assert_ne!(hello.body["stream"], true, "{}", hello.body);
    assert_eq!(one_sent_with(&openai, "Hello stream").body["stream"], true);

    let tools = sent_with(&openai, "What is the weather in Paris?");
    assert_eq!(tools.len(), 2, "{tools:#?}");
    let first = &tools[0].body;
    assert_eq!(first["tools"][0]["type"], "function", "{first}");
    assert_eq!(
        first["tools"][0]["function"]["name"],
        fixtures::TOOL_NAME,
        "{first}"
    );
    assert_eq!(
        first["tools"][0]["function"]["parameters"]["required"],
        json!(["city"]),
        "{first}"
    );
    let second = &tools[1].body;
    let messages = second["messages"].as_array().expect("messages");
    assert_eq!(
        messages[0],
        json!({"role": "system", "content": SYSTEM}),
        "{second}"
    );
    let assistant = messages
        .iter()
        .find(|m| m["role"] == "assistant")
        .unwrap_or_else(|| panic!("{second}"));
    let calls = assistant["tool_calls"]
        .as_array()
        .unwrap_or_else(|| panic!("tool_calls: {second}"));
    assert_eq!(calls.len(), 1, "{second}");
    assert_eq!(calls[0]["id"], fixtures::OPENAI_TOOL_CALL_ID, "{second}");
    assert_eq!(calls[0]["type"], "function", "{second}");
    assert_eq!(
        calls[0]["function"]["name"],
        fixtures::TOOL_NAME,
        "{second}"
    );
    let args: Value = serde_json::from_str(
        calls[0]["function"]["arguments"]
            .as_str()
            .unwrap_or_default(),
    )
    .unwrap_or_else(|e| panic!("arguments are JSON text ({e}): {second}"));
    assert_eq!(args, weather_input(), "{second}");
    let tool = messages.last().expect("a last message");
    assert_eq!(tool["role"], "tool", "{second}");
    assert_eq!(
        tool["tool_call_id"],
        fixtures::OPENAI_TOOL_CALL_ID,
        "{second}"
    );
    assert_eq!(tool["content"], TOOL_RESULT, "{second}");
    assert_eq!(anthropic.calls(), 0);

    let socket = daemon.socket.display().to_string();
    let got = sdk(json!({"socket": socket}), &["message", "stream"]);
    assert_eq!(got["message"]["content"], text_only(fixtures::HELLO));
    assert_eq!(got["stream"]["raw_text"], fixtures::HELLO);
    daemon.stop().await;
}

/// The SDK straight at the fake Anthropic, no promptd: what the tests above expect of promptd
/// is what the fake itself gives the SDK.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "checks the fake, not promptd"]
async fn fakes_answer_the_sdk_directly() {
    let anthropic = FakeUpstream::start(anthropic_fake).await;
    let got = sdk(
        json!({"base_url": format!("http://{}", anthropic.addr())}),
        ALL,
    );
    assert_anthropic_answers(&got);
    assert_anthropic_requests(&anthropic, true);
    // This SDK's beta namespace adds no `?beta=true` (Claude Code's requests have it).
    assert!(anthropic.requests().iter().all(|r| r.query.is_none()));
}
