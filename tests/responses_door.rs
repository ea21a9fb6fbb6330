//! `POST /v1/responses`, OpenAI's Responses door, through the real daemon against fake
//! providers: translated through the internal model to a chat-completions provider and to an
//! Anthropic-kind one; the answer as a `response` object, the stream as typed events with
//! increasing `sequence_number`s (every item added and done, `response.completed` last); the
//! hints Codex sends left out and named; state the door does not keep refused by name; Codex's
//! captured request served.

mod common;

use common::fake_upstream::{fixtures, FakeUpstream};
use common::{providers_toml, raw_post_bytes, raw_post_with, RawResponse, TestDaemon};
use serde_json::{json, Value};

async fn daemon(openai: &FakeUpstream, anthropic: &FakeUpstream) -> TestDaemon {
    TestDaemon::start(&providers_toml(&openai.base_url(), &anthropic.base_url())).await
}

async fn responses(daemon: &TestDaemon, body: &Value) -> RawResponse {
    raw_post_with(&daemon.socket, "/v1/responses", body, &[]).await
}

fn json_of(raw: &RawResponse) -> Value {
    let body: Vec<u8> = raw.chunks.concat();
    serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&body)))
}

/// The typed events of a stream, checked: each has its `event:` name equal to its data's
/// `type` and a `sequence_number` one above the last.
fn events(raw: &RawResponse) -> Vec<Value> {
    let text: String = raw.chunk_strings().concat();
    let mut out: Vec<Value> = Vec::new();
    for event in text.split("\n\n").filter(|e| !e.trim().is_empty()) {
        let mut lines = event.lines();
        let name = lines
            .next()
            .and_then(|l| l.strip_prefix("event: "))
            .unwrap_or_else(|| panic!("an event line first: {event:?}"));
        let data: Value = lines
            .next()
            .and_then(|l| l.strip_prefix("data: "))
            .map(|d| serde_json::from_str(d).expect("data is JSON"))
            .unwrap_or_else(|| panic!("a data line: {event:?}"));
        assert_eq!(data["type"], name, "{event}");
        let seq = data["sequence_number"].as_u64().expect("a sequence number");
        if let Some(last) = out.last() {
            assert_eq!(seq, last["sequence_number"].as_u64().expect("seq") + 1);
        }
        out.push(data);
    }
    out
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().filter_map(|e| e["type"].as_str()).collect()
}

fn hello(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "instructions": "Be brief.",
        "input": [{"type": "message", "role": "user",
            "content": [{"type": "input_text", "text": "Hello"}]}],
        "store": false, "prompt_cache_key": "k-1", "include": ["reasoning.encrypted_content"],
        "max_output_tokens": 64})
}

#[tokio::test]
async fn a_whole_answer_from_a_chat_provider_is_a_response_object() {
    let anthropic = FakeUpstream::always(fixtures::anthropic_message()).await;
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let daemon = daemon(&openai, &anthropic).await;
    let raw = responses(&daemon, &hello("openai/gpt-x", false)).await;
    assert_eq!(raw.status(), 200, "{:?}", raw.chunk_strings());
    let v = json_of(&raw);
    assert_eq!(v["object"], "response");
    assert_eq!(v["status"], "completed");
    assert!(v["id"].as_str().is_some_and(|id| id.starts_with("resp_")));
    let message = &v["output"][0];
    assert_eq!(message["type"], "message");
    assert_eq!(message["role"], "assistant");
    assert_eq!(message["content"][0]["type"], "output_text");
    assert_eq!(message["content"][0]["text"], fixtures::HELLO);
    let (prompt, completion, _) = fixtures::OPENAI_USAGE;
    assert_eq!(v["usage"]["input_tokens"], prompt);
    assert_eq!(v["usage"]["output_tokens"], completion);
    let dropped = raw.header("x-promptd-dropped").expect("hints named");
    for hint in ["prompt_cache_key", "store", "include"] {
        assert!(dropped.contains(hint), "{dropped}");
    }
    let sent = openai.last_request().expect("called");
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(
        sent.body["messages"],
        json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}])
    );
    assert_eq!(sent.body["max_tokens"], 64);
    for hint in [
        "prompt_cache_key",
        "store",
        "include",
        "instructions",
        "input",
    ] {
        assert!(sent.body.get(hint).is_none(), "{hint}: {}", sent.body);
    }
    // The same request again is a hit; the same conversation on the chat route shares it.
    let again = responses(&daemon, &hello("openai/gpt-x", false)).await;
    assert_eq!(again.header("x-promptd-cache"), Some("hit"));
    let chat = json!({"model": "openai/gpt-x", "max_tokens": 64, "messages": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}]});
    let reply = raw_post_with(&daemon.socket, "/v1/chat/completions", &chat, &[]).await;
    assert_eq!(reply.header("x-promptd-cache"), Some("hit"));
    assert_eq!(openai.calls(), 1);
    daemon.stop().await;
}

#[tokio::test]
async fn a_streamed_tool_call_is_a_function_call_item_with_argument_deltas() {
    let anthropic = FakeUpstream::always(fixtures::anthropic_message()).await;
    let openai = FakeUpstream::always(fixtures::openai_tool_call_stream()).await;
    let daemon = daemon(&openai, &anthropic).await;
    let body = json!({"model": "openai/gpt-x", "stream": true,
        "input": "Weather in Paris?",
        "tools": [{"type": "function", "name": fixtures::TOOL_NAME,
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]});
    let raw = responses(&daemon, &body).await;
    assert_eq!(raw.status(), 200, "{:?}", raw.chunk_strings());
    let evs = events(&raw);
    let t = types(&evs);
    assert_eq!(t[0], "response.created");
    assert_eq!(t.last(), Some(&"response.completed"));
    let done = evs
        .iter()
        .find(|e| e["type"] == "response.output_item.done" && e["item"]["type"] == "function_call")
        .expect("the call's item done");
    assert_eq!(done["item"]["name"], fixtures::TOOL_NAME);
    assert_eq!(done["item"]["call_id"], fixtures::OPENAI_TOOL_CALL_ID);
    assert_eq!(done["item"]["arguments"], fixtures::OPENAI_TOOL_ARGS);
    let deltas: String = evs
        .iter()
        .filter(|e| e["type"] == "response.function_call_arguments.delta")
        .filter_map(|e| e["delta"].as_str())
        .collect();
    assert_eq!(deltas, fixtures::OPENAI_TOOL_ARGS);
    let added = t
        .iter()
        .filter(|t| **t == "response.output_item.added")
        .count();
    let finished = t
        .iter()
        .filter(|t| **t == "response.output_item.done")
        .count();
    assert_eq!(added, finished, "every item added is done");
    let completed = evs.last().expect("events");
    assert_eq!(completed["response"]["status"], "completed");
    assert!(completed["response"]["usage"]["output_tokens"].as_u64() > Some(0));
    let sent = openai.last_request().expect("called");
    assert_eq!(
        sent.body["tools"][0]["function"]["name"],
        fixtures::TOOL_NAME
    );
    assert_eq!(sent.body["stream"], true);
    daemon.stop().await;
}

#[tokio::test]
async fn to_an_anthropic_provider_the_stream_is_typed_events_too() {
    let anthropic = FakeUpstream::always(fixtures::anthropic_stream()).await;
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let daemon = daemon(&openai, &anthropic).await;
    let raw = responses(&daemon, &hello("anthropic/claude-x", true)).await;
    assert_eq!(raw.status(), 200, "{:?}", raw.chunk_strings());
    let evs = events(&raw);
    let text: String = evs
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .filter_map(|e| e["delta"].as_str())
        .collect();
    assert_eq!(text, fixtures::HELLO);
    assert_eq!(types(&evs).last(), Some(&"response.completed"));
    let sent = anthropic.last_request().expect("called");
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(sent.body["system"], "Be brief.");
    assert_eq!(sent.body["max_tokens"], 64);
    daemon.stop().await;
}

#[tokio::test]
async fn state_promptd_does_not_keep_is_refused_by_name() {
    let anthropic = FakeUpstream::always(fixtures::anthropic_message()).await;
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let daemon = daemon(&openai, &anthropic).await;
    let body = json!({"model": "openai/gpt-x", "input": "and then?",
        "previous_response_id": "resp_123"});
    let raw = responses(&daemon, &body).await;
    assert_eq!(raw.status(), 400);
    let e = json_of(&raw);
    assert_eq!(e["error"]["param"], "previous_response_id");
    assert_eq!(e["error"]["type"], "invalid_request_error");
    assert_eq!(openai.calls(), 0);
    daemon.stop().await;
}

#[tokio::test]
async fn codexs_captured_request_is_served() {
    let anthropic = FakeUpstream::always(fixtures::anthropic_message()).await;
    let openai = FakeUpstream::always(fixtures::openai_stream()).await;
    let toml = format!(
        "default_provider = \"openai\"\n{}",
        providers_toml(&openai.base_url(), &anthropic.base_url())
    );
    let daemon = TestDaemon::start(&toml).await;
    let capture = include_str!("fixtures/agents/codex_0.171.0.jsonl");
    let first: Value = serde_json::from_str(capture.lines().next().expect("a line")).expect("json");
    let body = first["body"].as_str().expect("the body");
    let raw = raw_post_bytes(&daemon.socket, "/v1/responses", body.as_bytes(), &[]).await;
    assert_eq!(raw.status(), 200, "{:?}", raw.chunk_strings());
    let evs = events(&raw);
    let t = types(&evs);
    assert!(t.contains(&"response.output_item.done"), "{t:?}");
    assert_eq!(t.last(), Some(&"response.completed"));
    let text: String = evs
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .filter_map(|e| e["delta"].as_str())
        .collect();
    assert_eq!(text, fixtures::HELLO);
    let dropped = raw.header("x-promptd-dropped").expect("hints named");
    for hint in ["prompt_cache_key", "store", "include", "tools.namespace"] {
        assert!(dropped.contains(hint), "{dropped}");
    }
    let sent = openai.last_request().expect("called");
    assert_eq!(sent.body["model"], "gpt-5-codex");
    assert!(sent.body["tools"].as_array().is_some_and(|t| !t.is_empty()));
    daemon.stop().await;
}

#[tokio::test]
async fn a_keyless_provider_gets_the_clients_bearer() {
    let local = FakeUpstream::always(fixtures::openai_chat()).await;
    let toml = format!(
        "default_provider = \"local\"\n[providers.local]\nkind = \"openai\"\n\
         base_url = \"{}\"\nmax_retries = 0\n",
        local.base_url()
    );
    let daemon = TestDaemon::start(&toml).await;
    let body = json!({"model": "qwen3-coder", "input": "Hello"});
    let auth = ("authorization", "Bearer sk-from-client");
    let raw = raw_post_with(&daemon.socket, "/v1/responses", &body, &[auth]).await;
    assert_eq!(raw.status(), 200, "{:?}", raw.chunk_strings());
    let sent = local.last_request().expect("called");
    assert_eq!(sent.header("authorization"), Some("Bearer sk-from-client"));
    assert_eq!(sent.body["model"], "qwen3-coder");
    daemon.stop().await;
}

#[tokio::test]
async fn the_legacy_completions_route_says_what_to_use() {
    let anthropic = FakeUpstream::always(fixtures::anthropic_message()).await;
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let daemon = daemon(&openai, &anthropic).await;
    let body = json!({"model": "openai/gpt-x", "prompt": "Hello"});
    let raw = raw_post_with(&daemon.socket, "/v1/completions", &body, &[]).await;
    assert_eq!(raw.status(), 501);
    let e = json_of(&raw);
    let message = e["error"]["message"].as_str().expect("a message");
    assert!(
        message.contains("/v1/chat/completions") && message.contains("/v1/responses"),
        "{message}"
    );
    assert_eq!(openai.calls(), 0);
    daemon.stop().await;
}
