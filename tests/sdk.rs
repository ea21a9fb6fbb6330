//! The real Parea Python SDK (`tests/sdk/requirements.txt`) against the real daemon over its
//! loopback TCP listener: completion, cached replay, stream, a deployed prompt, reading a trace
//! log back and feedback; and the real OpenAI Python SDK against its `/v1` routes, over TCP and
//! over the Unix socket; agent frameworks on its Responses door (the OpenAI Agents SDK and
//! pydantic-ai, `tests/sdk/agents_calls.py`), each running a tool; with fake providers and a fake
//! collector on loopback.
//!
//! The SDK is installed from the package registry into `target/tmp/sdk-venv` by the first test
//! that needs it (once per requirements file; shared with `tests/anthropic_sdk.rs`, see
//! `tests/common/external.rs`). `PROMPTD_TEST_PYTHON` names an interpreter that already has it.

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::external::{python_script, run_for};
use common::fake_upstream::{fixtures, Behavior, FakeUpstream};
use common::process::{stderr, stdout};
use common::{providers_toml, TestDaemon, PREFIX};
use promptd::config::{Config, Overrides, Secret};
use serde_json::{json, Value};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/parea_calls.py");
const OPENAI_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/openai_calls.py");
/// The key of the daemons' TCP listener (`tcp_key_env`), given to the SDKs.
const TCP_KEY: &str = "local-tcp-key-0123456789abcdef";

/// A daemon with a TCP listener, providers at `openai`, logs shipped to `collector`, and the
/// prompt files `prompts` (name, text).
async fn daemon(
    openai: &FakeUpstream,
    collector: &FakeUpstream,
    prompts: &[(&str, &str)],
) -> (TestDaemon, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("prompts")).expect("prompts dir");
    for (name, text) in prompts {
        std::fs::write(dir.path().join("prompts").join(name), text).expect("prompt file");
    }
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let overrides = Overrides {
        socket: Some(dir.path().join("promptd.sock")),
        tcp: Some(format!("127.0.0.1:{port}")),
        state_dir: Some(dir.path().join("state")),
        prompts_dir: Some(dir.path().join("prompts")),
    };
    let toml = format!(
        "default_provider = \"openai\"\n[spool]\nflush_interval = \"20ms\"\n[upstream]\nbase_url = \"{}\"\napi_key = \"pk-test\"\n{}",
        collector.base_url(),
        providers_toml(&openai.base_url(), &openai.base_url())
    );
    let mut config = Config::from_toml(&toml, "sdk test", &overrides).expect("config");
    // The TCP listener asks for a key, as the README tells SDK users to set it up.
    config.access.tcp_key = Some(Secret::new(TCP_KEY));
    config.access.tcp_key_env = Some("PROMPTD_TCP_KEY".to_owned());
    let base_url = format!("http://127.0.0.1:{port}{PREFIX}");
    (TestDaemon::start_with(dir, config).await, base_url)
}

/// Run one scenario of `tests/sdk/parea_calls.py` with the SDK aimed at `base_url`.
fn sdk(base_url: &str, scenario: &str, arg: Value) -> Value {
    let mut cmd = tokio::task::block_in_place(|| python_script(SCRIPT));
    cmd.env("PAREA_BASE_URL", base_url)
        .env("PROMPTD_TCP_KEY", TCP_KEY);
    run_scenario(cmd, scenario, arg)
}

/// Run one scenario of `tests/sdk/openai_calls.py` (`arg` names the daemon: `base_url` or
/// `socket`).
fn openai_sdk(scenario: &str, arg: Value) -> Value {
    let mut cmd = tokio::task::block_in_place(|| python_script(OPENAI_SCRIPT));
    cmd.env("PROMPTD_TCP_KEY", TCP_KEY);
    run_scenario(cmd, scenario, arg)
}

fn run_scenario(mut cmd: Command, scenario: &str, arg: Value) -> Value {
    cmd.arg(scenario).arg(arg.to_string());
    let out = tokio::task::block_in_place(|| run_for(cmd, Duration::from_secs(60)));
    assert!(
        out.status.success(),
        "SDK scenario {scenario} failed: {}{}",
        stdout(&out),
        stderr(&out)
    );
    let last_line = stdout(&out).lines().last().unwrap_or_default().to_owned();
    serde_json::from_str(&last_line)
        .unwrap_or_else(|e| panic!("SDK scenario {scenario} printed no JSON ({e}): {last_line}"))
}

fn openai_fake_script() -> impl Fn(&common::fake_upstream::RecordedRequest, usize) -> Behavior {
    |req, _| {
        if req.path.ends_with("/embeddings") {
            // One vector per input item, from its length: order is checkable.
            let data: Vec<Value> = req.body["input"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
                .map(|(i, item)| {
                    let n = item.as_str().map_or(0, str::len) as f64;
                    json!({"object": "embedding", "index": i, "embedding": [n, n / 2.0]})
                })
                .collect();
            return Behavior::json(
                200,
                json!({"object": "list", "data": data, "model": "text-embedding-3-small",
                       "usage": {"prompt_tokens": 2, "total_tokens": 2}})
                .to_string(),
            );
        }
        if req.body["stream"] == true {
            fixtures::openai_stream()
        } else {
            fixtures::openai_chat()
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_completion_is_cached_and_replayed_as_a_stream() {
    let openai = FakeUpstream::start(openai_fake_script()).await;
    let collector = FakeUpstream::always(Behavior::json(200, "{}")).await;
    let (daemon, base_url) = daemon(&openai, &collector, &[]).await;

    let got = sdk(&base_url, "completion", json!({"name": "Ada"}));
    assert_eq!(got["first"]["content"], fixtures::HELLO, "{got}");
    assert_eq!(got["first"]["cache_hit"], false, "{got}");
    assert_eq!(got["second"]["content"], fixtures::HELLO, "{got}");
    assert_eq!(got["second"]["cache_hit"], true, "{got}");
    assert_ne!(
        got["first"]["id"], got["second"]["id"],
        "each call its own trace: {got}"
    );
    assert_eq!(got["streamed"], fixtures::HELLO, "{got}");
    assert_eq!(openai.calls(), 1, "the second call and the stream are hits");
    let sent = openai.last_request().expect("provider request");
    assert_eq!(sent.body["messages"][0]["content"], "Say hello to Ada");
    daemon.stop().await;
}

/// A deployment's own sampling settings reach the provider, though the SDK sends its defaults
/// (`temp` 1.0, `top_p` 1.0, penalties 0.0) in every request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_deployment_keeps_the_deployments_params() {
    let openai = FakeUpstream::start(openai_fake_script()).await;
    let collector = FakeUpstream::always(Behavior::json(200, "{}")).await;
    let prompt = "provider: openai\nmodel: gpt-4o-mini\nmodel_params:\n  temp: 0.2\n  top_p: 0.5\n\
                  messages:\n  - role: user\n    content: \"Greet {{name}}\"\n";
    let (daemon, base_url) = daemon(&openai, &collector, &[("greet.yaml", prompt)]).await;

    let got = sdk(
        &base_url,
        "deployment",
        json!({"id": "greet", "inputs": {"name": "Ada"}}),
    );
    assert_eq!(got["content"], fixtures::HELLO, "{got}");
    let sent = openai.last_request().expect("provider request");
    assert_eq!(sent.body["messages"][0]["content"], "Greet Ada");
    assert_eq!(sent.body["temperature"], 0.2, "{}", sent.body);
    assert_eq!(sent.body["top_p"], 0.5, "{}", sent.body);
    daemon.stop().await;
}

/// `p.get_trace_log(id)` parses promptd's answer into the SDK's TraceLogTree; feedback on that
/// trace reaches the collector.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_reads_a_trace_log_back_and_sends_feedback() {
    let openai = FakeUpstream::start(openai_fake_script()).await;
    // The collector holds back the records (503) until the tree is read, so the spool keeps
    // them readable; then it takes them, and the feedback after its trace's record.
    let holding = Arc::new(AtomicBool::new(true));
    let hold = Arc::clone(&holding);
    let collector = FakeUpstream::start(move |_, _| {
        if hold.load(Ordering::SeqCst) {
            Behavior::json(503, "{}")
        } else {
            Behavior::json(200, "{}")
        }
    })
    .await;
    let (daemon, base_url) = daemon(&openai, &collector, &[]).await;

    let got = sdk(&base_url, "completion", json!({"name": "Grace"}));
    let trace_id = got["first"]["id"].as_str().expect("trace id").to_owned();
    let path = format!("{PREFIX}/trace_log/{trace_id}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while daemon.get(&path).await.status != 200 {
        assert!(tokio::time::Instant::now() < deadline, "record never held");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let tree = sdk(&base_url, "trace_log", json!({"trace_id": trace_id}));
    assert_eq!(tree["trace_id"], trace_id.as_str(), "{tree}");
    assert_eq!(tree["root_trace_id"], trace_id.as_str(), "{tree}");
    assert_eq!(tree["parent_trace_id"], trace_id.as_str(), "{tree}");
    assert_eq!(tree["status"], "success", "{tree}");
    assert_eq!(tree["output"], fixtures::HELLO, "{tree}");

    holding.store(false, Ordering::SeqCst);
    sdk(
        &base_url,
        "feedback",
        json!({"trace_id": trace_id, "score": 0.75}),
    );
    // The flusher backs off after the 503s (for longer on a busy machine): ask it to ship now,
    // until it has. The deadline only keeps a broken daemon from hanging the suite.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let feedback = loop {
        let found = collector
            .requests()
            .into_iter()
            .find(|r| r.path.ends_with("/feedback"));
        if let Some(found) = found {
            break found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "feedback never shipped"
        );
        daemon.post("/logs/flush", &json!({})).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(feedback.body["trace_id"], trace_id.as_str());
    assert_eq!(feedback.body["score"], 0.75);
    daemon.stop().await;
}

/// The OpenAI SDK over TCP and over the Unix socket: a whole answer, its cached replay (the
/// raw response's `x-promptd-cache` header), a stream with the usage chunk, the model list, and
/// an empty `messages` as the SDK's own `BadRequestError` naming the parameter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_sdk_chat_stream_models_and_errors() {
    let openai = FakeUpstream::start(openai_fake_script()).await;
    let collector = FakeUpstream::always(Behavior::json(200, "{}")).await;
    let (daemon, base_url) = daemon(&openai, &collector, &[]).await;
    let tcp = base_url.replace(PREFIX, "/v1");
    let socket = daemon.socket.display().to_string();

    for (i, target) in [json!({"base_url": tcp}), json!({"socket": socket})]
        .into_iter()
        .enumerate()
    {
        let mut arg = target.clone();
        arg["text"] = json!(format!("Hello {i}"));
        let got = openai_sdk("chat", arg);
        assert_eq!(got["content"], fixtures::HELLO, "{got}");
        assert_eq!(got["finish_reason"], "stop", "{got}");
        assert!(got["total_tokens"].as_u64() > Some(0), "{got}");
        assert_eq!(got["again_content"], fixtures::HELLO, "{got}");
        assert_eq!(got["again_cache"], "hit", "{got}");
        assert_eq!(got["streamed"], fixtures::HELLO, "{got}");
        assert_eq!(
            got["stream_usage"].as_array().map(Vec::len),
            Some(1),
            "{got}"
        );
        // The Responses API, translated to the chat-completions fake and back.
        let mut arg = target.clone();
        arg["text"] = json!(format!("Respond {i}"));
        let got = openai_sdk("responses", arg);
        assert_eq!(got["output_text"], fixtures::HELLO, "{got}");
        assert_eq!(got["status"], "completed", "{got}");
        assert!(got["total_tokens"].as_u64() > Some(0), "{got}");
        assert_eq!(got["streamed"], fixtures::HELLO, "{got}");
        assert_eq!(got["first"], "response.created", "{got}");
        assert_eq!(got["last"], "response.completed", "{got}");
        let sequence: Vec<u64> = got["sequence"]
            .as_array()
            .expect("sequence numbers")
            .iter()
            .filter_map(Value::as_u64)
            .collect();
        assert!(sequence.windows(2).all(|w| w[1] == w[0] + 1), "{got}");
        assert_eq!(got["completed_text"], fixtures::HELLO, "{got}");
        assert_eq!(got["final_text"], fixtures::HELLO, "{got}");
        // Kept: continued, read back, its successor's input listed (newest first), deleted.
        assert_eq!(got["followed_text"], fixtures::HELLO, "{got}");
        assert_eq!(got["followed_previous"], got["id"], "{got}");
        assert_eq!(got["retrieved_id"], got["id"], "{got}");
        assert_eq!(got["retrieved_text"], fixtures::HELLO, "{got}");
        assert_eq!(
            got["followed_items"],
            json!(["user", "assistant", "user"]),
            "{got}"
        );
        assert_eq!(
            got["gone"],
            json!({"type": "NotFoundError", "status": 404}),
            "{got}"
        );
        let continued = openai
            .requests()
            .into_iter()
            .filter(|r| r.body["messages"].as_array().is_some_and(|m| m.len() == 3))
            .count();
        assert_eq!(continued, i + 1, "the provider got each whole conversation");
    }
    let embedded = openai_sdk("embeddings", json!({"socket": socket}));
    assert_eq!(embedded["indices"], json!([0, 1]), "{embedded}");
    assert_eq!(
        embedded["vectors"],
        json!([[5.0, 2.5], [4.0, 2.0]]),
        "{embedded}"
    );
    assert_eq!(embedded["again"], json!([[4.0, 2.0]]), "{embedded}");
    assert_eq!(embedded["again_cache"], "hit", "a known item: {embedded}");
    let models = openai_sdk("models", json!({"base_url": tcp}));
    assert!(models["ids"].as_array().is_some(), "{models}");
    let error = openai_sdk("error", json!({"socket": socket}));
    assert_eq!(error["type"], "BadRequestError", "{error}");
    assert_eq!(error["status"], 400, "{error}");
    assert_eq!(error["param"], "messages", "{error}");
    daemon.stop().await;
}

const AGENTS_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/agents_calls.py");

/// Run one scenario of `tests/sdk/agents_calls.py` (`arg` names the daemon and the user's
/// text), with every telemetry of the frameworks off.
fn agents_sdk(scenario: &str, arg: Value) -> Value {
    let mut cmd = tokio::task::block_in_place(|| python_script(AGENTS_SCRIPT));
    cmd.env("PROMPTD_TCP_KEY", TCP_KEY)
        .env("OPENAI_AGENTS_DISABLE_TRACING", "1")
        .env("PYDANTIC_AI_NO_BANNER", "1")
        .env("LOGFIRE_SEND_TO_LOGFIRE", "false")
        .env("DO_NOT_TRACK", "1")
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL");
    run_scenario(cmd, scenario, arg)
}

/// A chat-completions provider for an agent with the fixtures' `get_weather` tool: a request
/// that offers tools and holds no tool result yet is answered with the tool call (streamed
/// when asked), any other with the fixtures' text.
fn agent_fake_script() -> impl Fn(&common::fake_upstream::RecordedRequest, usize) -> Behavior {
    |req, _| {
        let stream = req.body["stream"] == true;
        let offers_tools = req.body["tools"].as_array().is_some_and(|t| !t.is_empty());
        match (
            offers_tools && !fixtures::has_tool_result(&req.body),
            stream,
        ) {
            (true, true) => fixtures::openai_tool_call_stream(),
            (true, false) => fixtures::openai_tool_call(),
            (false, true) => fixtures::openai_stream(),
            (false, false) => fixtures::openai_chat(),
        }
    }
}

/// The provider's calls of one agent run with the tool (`calls`, in order): the first offers
/// `get_weather` and holds no result; the second carries the assistant's tool call and the
/// tool's result under the call's id.
fn assert_tool_round(calls: &[common::fake_upstream::RecordedRequest]) {
    assert_eq!(calls.len(), 2, "a tool round, then the answer: {calls:#?}");
    let first = &calls[0].body;
    assert_eq!(first["tools"][0]["function"]["name"], fixtures::TOOL_NAME);
    assert!(!fixtures::has_tool_result(first), "{first}");
    let messages = calls[1].body["messages"].as_array().expect("messages");
    let call = messages
        .iter()
        .find(|m| m["role"] == "assistant" && m["tool_calls"].is_array())
        .unwrap_or_else(|| panic!("the assistant's tool call: {messages:?}"));
    assert_eq!(call["tool_calls"][0]["id"], fixtures::OPENAI_TOOL_CALL_ID);
    assert_eq!(
        call["tool_calls"][0]["function"]["name"],
        fixtures::TOOL_NAME
    );
    let args: Value = serde_json::from_str(
        call["tool_calls"][0]["function"]["arguments"]
            .as_str()
            .expect("arguments text"),
    )
    .expect("arguments JSON");
    assert_eq!(args, json!({"city": "Paris", "unit": "c"}));
    let result = messages
        .iter()
        .find(|m| m["role"] == "tool")
        .unwrap_or_else(|| panic!("the tool's result: {messages:?}"));
    assert_eq!(result["tool_call_id"], fixtures::OPENAI_TOOL_CALL_ID);
    let content = result["content"].to_string();
    assert!(
        content.contains("18 degrees and sunny in Paris"),
        "{result}"
    );
}

/// The OpenAI SDK's own `responses.create` with a function tool, over TCP and the Unix socket:
/// the call comes back as a `function_call` item, the call and its output go back as input
/// items and the provider gets them as a tool round; streamed, the arguments come as deltas and
/// the call's item done whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_sdk_runs_a_function_tool_round_on_the_responses_door() {
    let openai = FakeUpstream::start(agent_fake_script()).await;
    let collector = FakeUpstream::always(Behavior::json(200, "{}")).await;
    let (daemon, base_url) = daemon(&openai, &collector, &[]).await;
    let tcp = base_url.replace(PREFIX, "/v1");
    let socket = daemon.socket.display().to_string();
    for (i, target) in [json!({"base_url": tcp}), json!({"socket": socket})]
        .into_iter()
        .enumerate()
    {
        let before = openai.calls();
        let mut arg = target;
        arg["text"] = json!(format!("Weather in Paris? ({i})"));
        let got = openai_sdk("responses_tool", arg);
        let call = &got["call"];
        assert_eq!(call["name"], fixtures::TOOL_NAME, "{got}");
        assert_eq!(call["call_id"], fixtures::OPENAI_TOOL_CALL_ID, "{got}");
        let args: Value =
            serde_json::from_str(call["arguments"].as_str().expect("text")).expect("JSON");
        assert_eq!(args, json!({"city": "Paris", "unit": "c"}), "{got}");
        assert_eq!(got["first_status"], "completed", "{got}");
        assert_eq!(got["answer"], fixtures::HELLO, "{got}");
        assert_eq!(got["streamed_call"], *call, "{got}");
        assert_eq!(got["streamed_arguments"], call["arguments"], "{got}");
        assert_eq!(got["last"], "response.completed", "{got}");
        assert_tool_round(&openai.requests()[before..before + 2]);
    }
    daemon.stop().await;
}

/// The OpenAI Agents SDK (a default `Agent`, so `OpenAIResponsesModel`, with a function tool)
/// on the Responses door over TCP and the Unix socket: `Runner.run_sync` and
/// `Runner.run_streamed` each run the tool the provider asked for and end with the provider's
/// text; the provider saw the tool round translated to chat completions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_agents_sdk_runs_a_tool_through_the_responses_door() {
    let openai = FakeUpstream::start(agent_fake_script()).await;
    let collector = FakeUpstream::always(Behavior::json(200, "{}")).await;
    let (daemon, base_url) = daemon(&openai, &collector, &[]).await;
    let tcp = base_url.replace(PREFIX, "/v1");
    let socket = daemon.socket.display().to_string();
    let weather = json!([{"city": "Paris", "unit": "c"}]);

    for (i, target) in [json!({"base_url": tcp}), json!({"socket": socket})]
        .into_iter()
        .enumerate()
    {
        let before = openai.calls();
        let mut arg = target.clone();
        arg["text"] = json!(format!("Weather in Paris? ({i})"));
        let got = agents_sdk("agents_run", arg);
        assert_eq!(got["final_output"], fixtures::HELLO, "{got}");
        assert_eq!(got["tool_calls"], weather, "{got}");
        assert_eq!(
            got["items"],
            json!([
                "tool_call_item",
                "tool_call_output_item",
                "message_output_item"
            ]),
            "{got}"
        );
        let ids = got["response_ids"].as_array().expect("response ids");
        assert_eq!(ids.len(), 2, "{got}");
        assert!(
            ids.iter()
                .all(|id| id.as_str().is_some_and(|id| id.starts_with("resp_"))),
            "answers of the Responses door: {got}"
        );
        assert_tool_round(&openai.requests()[before..]);

        let before = openai.calls();
        let mut arg = target.clone();
        arg["text"] = json!(format!("Weather in Paris, streamed? ({i})"));
        let got = agents_sdk("agents_stream", arg);
        assert_eq!(got["final_output"], fixtures::HELLO, "{got}");
        assert_eq!(got["streamed"], fixtures::HELLO, "{got}");
        assert_eq!(got["completed"], true, "{got}");
        assert_eq!(got["tool_calls"], weather, "{got}");
        assert!(got["run_item_events"].as_u64() >= Some(3), "{got}");
        let calls = &openai.requests()[before..];
        assert!(calls.iter().all(|c| c.body["stream"] == true), "{calls:#?}");
        assert_tool_round(calls);
    }
    daemon.stop().await;
}

/// pydantic-ai's `OpenAIResponsesModel` on the Responses door over TCP and the Unix socket: a
/// plain run (text and usage back), a run with a tool (the tool round, then the text) and the
/// same streamed with `run_stream`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pydantic_ai_runs_plain_and_with_a_tool_through_the_responses_door() {
    let openai = FakeUpstream::start(agent_fake_script()).await;
    let collector = FakeUpstream::always(Behavior::json(200, "{}")).await;
    let (daemon, base_url) = daemon(&openai, &collector, &[]).await;
    let tcp = base_url.replace(PREFIX, "/v1");
    let socket = daemon.socket.display().to_string();
    let weather = json!([{"city": "Paris", "unit": "c"}]);
    let (prompt, completion, _) = fixtures::OPENAI_USAGE;

    for (i, target) in [json!({"base_url": tcp}), json!({"socket": socket})]
        .into_iter()
        .enumerate()
    {
        let before = openai.calls();
        let mut arg = target.clone();
        arg["text"] = json!(format!("Hello ({i})"));
        let got = agents_sdk("pydantic_plain", arg);
        assert_eq!(got["output"], fixtures::HELLO, "{got}");
        assert_eq!(got["messages"], json!([["user-prompt"], ["text"]]), "{got}");
        assert_eq!(got["input_tokens"], prompt, "{got}");
        assert_eq!(got["output_tokens"], completion, "{got}");
        assert_eq!(openai.calls(), before + 1);
        let sent = openai.last_request().expect("provider request");
        assert_eq!(sent.body["messages"][0]["role"], "system", "{}", sent.body);
        assert_eq!(sent.body["messages"][0]["content"], "Be brief.");

        let before = openai.calls();
        let mut arg = target.clone();
        arg["text"] = json!(format!("Weather in Paris? ({i})"));
        let got = agents_sdk("pydantic_tool", arg);
        assert_eq!(got["output"], fixtures::HELLO, "{got}");
        assert_eq!(got["tool_calls"], weather, "{got}");
        assert_eq!(got["requests"], 2, "{got}");
        let round = json!([["user-prompt"], ["tool-call"], ["tool-return"], ["text"]]);
        assert_eq!(got["messages"], round, "{got}");
        assert_tool_round(&openai.requests()[before..]);

        let before = openai.calls();
        let mut arg = target.clone();
        arg["text"] = json!(format!("Weather in Paris, streamed? ({i})"));
        let got = agents_sdk("pydantic_stream", arg);
        assert_eq!(got["streamed"], fixtures::HELLO, "{got}");
        assert_eq!(got["tool_calls"], weather, "{got}");
        assert_eq!(got["messages"], round, "{got}");
        let calls = &openai.requests()[before..];
        assert!(calls.iter().all(|c| c.body["stream"] == true), "{calls:#?}");
        assert_tool_round(calls);
    }
    daemon.stop().await;
}
