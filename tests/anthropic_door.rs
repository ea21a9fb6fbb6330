//! `POST /v1/messages`, Anthropic's Messages door, through the real daemon against fake
//! providers: to an Anthropic-kind provider the client's body and `anthropic-*` headers are
//! forwarded as they came; to an OpenAI-kind provider the call is translated through the
//! internal model and the answer (whole and streamed, tool calls included) comes back in
//! Anthropic's shapes; one cache entry serves this door and the OpenAI route; errors are
//! Anthropic's; a provider without a key is sent the client's.

mod common;

use common::fake_upstream::{fixtures, Behavior, FakeUpstream};
use common::{providers_toml, raw_post_bytes, raw_post_with, RawResponse, TestDaemon};
use serde_json::{json, Value};

const VERSION: (&str, &str) = ("anthropic-version", "2023-06-01");

async fn daemon(openai: &FakeUpstream, anthropic: &FakeUpstream) -> TestDaemon {
    TestDaemon::start(&providers_toml(&openai.base_url(), &anthropic.base_url())).await
}

async fn messages(daemon: &TestDaemon, body: &Value, headers: &[(&str, &str)]) -> RawResponse {
    raw_post_with(&daemon.socket, "/v1/messages?beta=true", body, headers).await
}

fn json_of(raw: &RawResponse) -> Value {
    let body: Vec<u8> = raw.chunks.concat();
    serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&body)))
}

/// Each `(event, data)` of an Anthropic stream; every event has its name and its data's
/// `type` is that name.
fn events(raw: &RawResponse) -> Vec<(String, Value)> {
    let text: String = raw.chunk_strings().concat();
    let mut out = Vec::new();
    for event in text.split("\n\n").filter(|e| !e.trim().is_empty()) {
        let mut lines = event.lines();
        let name = lines
            .next()
            .and_then(|l| l.strip_prefix("event: "))
            .unwrap_or_else(|| panic!("an event line first: {event:?}"));
        let data = lines
            .next()
            .and_then(|l| l.strip_prefix("data: "))
            .unwrap_or_else(|| panic!("a data line: {event:?}"));
        let data: Value = serde_json::from_str(data).expect("data is JSON");
        assert_eq!(data["type"], name, "{event}");
        out.push((name.to_owned(), data));
    }
    out
}

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(n, _)| n.as_str()).collect()
}

fn text_of(events: &[(String, Value)]) -> String {
    events
        .iter()
        .filter_map(|(_, d)| d["delta"]["text"].as_str())
        .collect()
}

fn hello(model: &str, stream: bool) -> Value {
    json!({"model": model, "max_tokens": 64, "stream": stream,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "metadata": {"user_id": "{\"session\":\"s-1\"}"},
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "an_unknown_field": {"kept": [1, 2.50, "x"]},
        "messages": [{"role": "user", "content": "Hello"}]})
}

#[tokio::test]
async fn to_an_anthropic_provider_the_body_and_headers_go_as_they_came() {
    let anthropic = FakeUpstream::always(fixtures::anthropic_message()).await;
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let daemon = daemon(&openai, &anthropic).await;
    let body = hello("anthropic/claude-x", false);
    let beta = ("anthropic-beta", "interleaved-thinking-2025-05-14");
    // Sent as a client writes it: its own order and number forms.
    let text = r#"{"stream": false, "model": "anthropic/claude-x", "max_tokens": 64,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "metadata": {"user_id": "{\"session\":\"s-1\"}"},
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "an_unknown_field": {"kept": [1, 2.50, "x"]},
        "messages": [{"role": "user", "content": "Hello"}]}"#;
    assert_eq!(serde_json::from_str::<Value>(text).expect("json"), body);
    let headers = [VERSION, beta, ("x-api-key", "sk-client")];
    let raw = raw_post_bytes(&daemon.socket, "/v1/messages", text.as_bytes(), &headers).await;
    assert_eq!(raw.status(), 200, "{:?}", raw.chunk_strings());
    let v = json_of(&raw);
    assert_eq!(
        raw.chunks.concat(),
        fixtures::ANTHROPIC_MESSAGE_JSON.as_bytes(),
        "the provider's answer as it came"
    );
    assert_eq!(v["type"], "message");
    assert_eq!(v["role"], "assistant");
    assert_eq!(v["content"][0]["type"], "text");
    assert_eq!(v["content"][0]["text"], fixtures::HELLO);
    assert_eq!(v["stop_reason"], "end_turn");
    let (input, output) = fixtures::ANTHROPIC_USAGE;
    assert_eq!(v["usage"]["input_tokens"], input);
    assert_eq!(v["usage"]["output_tokens"], output);

    let sent = anthropic.last_request().expect("called");
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(sent.header("anthropic-beta"), Some(beta.1));
    assert_eq!(sent.header("anthropic-version"), Some(VERSION.1));
    // The provider's own key, not the client's.
    assert_eq!(sent.header("x-api-key"), Some("sk-ant-test"));
    let mut expected = body.clone();
    expected["model"] = json!("claude-x");
    expected.as_object_mut().expect("object").remove("stream");
    assert_eq!(sent.body, expected, "every field, unknown ones included");
    let raw_text = String::from_utf8_lossy(&sent.raw);
    assert!(
        raw_text.starts_with(r#"{"model":"claude-x","max_tokens":64,"system":[{"type": "text","#)
            && raw_text.contains(r#""an_unknown_field":{"kept": [1, 2.50, "x"]}"#),
        "values as sent, not re-encoded: {raw_text}"
    );
    assert_eq!(openai.calls(), 0);
    // A hit answers the provider's body as it came too (the entry keeps it, with its wire).
    let again = raw_post_bytes(&daemon.socket, "/v1/messages", text.as_bytes(), &headers).await;
    assert_eq!(again.header("x-promptd-cache"), Some("hit"));
    assert_eq!(
        again.chunks.concat(),
        fixtures::ANTHROPIC_MESSAGE_JSON.as_bytes()
    );
    assert_eq!(anthropic.calls(), 1);
    daemon.stop().await;
}

#[tokio::test]
async fn a_stream_from_an_anthropic_provider_is_anthropics_events() {
    let anthropic = FakeUpstream::always(fixtures::anthropic_stream()).await;
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let daemon = daemon(&openai, &anthropic).await;
    let raw = messages(&daemon, &hello("anthropic/claude-x", true), &[VERSION]).await;
    assert_eq!(raw.status(), 200, "{:?}", raw.chunk_strings());
    assert_eq!(raw.header("content-type"), Some("text/event-stream"));
    let evs = events(&raw);
    let n = names(&evs);
    assert_eq!(n[0], "message_start");
    assert!(n.contains(&"content_block_start"));
    assert_eq!(
        &n[n.len() - 3..],
        ["content_block_stop", "message_delta", "message_stop"]
    );
    assert_eq!(text_of(&evs), fixtures::HELLO);
    let delta = &evs[evs.len() - 2].1;
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert_eq!(delta["usage"]["output_tokens"], fixtures::ANTHROPIC_USAGE.1);
    let sent = anthropic.last_request().expect("called");
    assert_eq!(sent.body["stream"], true);
    // Each event as the provider sent it (its `ping` with its own spacing too).
    let text: String = raw.chunk_strings().concat();
    assert_eq!(
        text.replace("\r\n", "\n").trim_end(),
        fixtures::ANTHROPIC_STREAM_SSE
            .replace("\r\n", "\n")
            .trim_end()
    );
    // A hit of it is rendered from the cache entry, in the same shape.
    let raw = messages(&daemon, &hello("anthropic/claude-x", true), &[VERSION]).await;
    assert_eq!(raw.header("x-promptd-cache"), Some("hit"));
    let evs = events(&raw);
    assert_eq!(names(&evs)[0], "message_start");
    assert_eq!(text_of(&evs), fixtures::HELLO);
    assert_eq!(names(&evs).last(), Some(&"message_stop"));
    assert_eq!(anthropic.calls(), 1);
    daemon.stop().await;
}

#[tokio::test]
async fn to_an_openai_provider_the_call_is_translated_and_the_answer_is_anthropics() {
    let anthropic = FakeUpstream::always(fixtures::anthropic_message()).await;
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let daemon = daemon(&openai, &anthropic).await;
    let mut body = hello("openai/gpt-x", false);
    body.as_object_mut()
        .expect("object")
        .remove("an_unknown_field");
    let raw = messages(&daemon, &body, &[VERSION]).await;
    assert_eq!(raw.status(), 200, "{:?}", raw.chunk_strings());
    let v = json_of(&raw);
    assert_eq!(v["type"], "message");
    assert_eq!(v["content"][0]["text"], fixtures::HELLO);
    assert_eq!(v["stop_reason"], "end_turn");
    let (prompt, completion, _) = fixtures::OPENAI_USAGE;
    assert_eq!(v["usage"]["input_tokens"], prompt);
    assert_eq!(v["usage"]["output_tokens"], completion);
    let dropped = raw
        .header("x-promptd-dropped")
        .expect("dropped hints named");
    for hint in ["cache_control", "metadata", "thinking"] {
        assert!(dropped.contains(hint), "{dropped}");
    }

    let sent = openai.last_request().expect("called");
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(sent.body["model"], "gpt-x");
    assert_eq!(
        sent.body["messages"],
        json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}])
    );
    for hint in ["thinking", "metadata", "stream"] {
        assert!(
            sent.body.get(hint).is_none(),
            "{hint} left out: {}",
            sent.body
        );
    }
    assert_eq!(anthropic.calls(), 0);

    // A field that would change the answer and has no translation: a 400 naming it.
    let refused = messages(&daemon, &hello("openai/gpt-x", false), &[VERSION]).await;
    assert_eq!(refused.status(), 400);
    let e = json_of(&refused);
    assert_eq!(e["type"], "error");
    assert_eq!(e["error"]["type"], "invalid_request_error");
    assert!(e["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("an_unknown_field")));
    assert_eq!(openai.calls(), 1, "refused before any call");
    daemon.stop().await;
}

#[tokio::test]
async fn a_streamed_tool_call_from_an_openai_provider_is_a_tool_use_block() {
    let anthropic = FakeUpstream::always(fixtures::anthropic_message()).await;
    let openai = FakeUpstream::always(fixtures::openai_tool_call_stream()).await;
    let daemon = daemon(&openai, &anthropic).await;
    let body = json!({"model": "openai/gpt-x", "max_tokens": 100, "stream": true,
        "tools": [{"name": fixtures::TOOL_NAME, "description": "The weather in a city",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
        "messages": [{"role": "user", "content": "Weather in Paris?"}]});
    let raw = messages(&daemon, &body, &[VERSION]).await;
    assert_eq!(raw.status(), 200, "{:?}", raw.chunk_strings());
    let evs = events(&raw);
    let start = evs
        .iter()
        .find(|(n, d)| n == "content_block_start" && d["content_block"]["type"] == "tool_use")
        .expect("a tool_use block");
    assert_eq!(start.1["content_block"]["name"], fixtures::TOOL_NAME);
    assert_eq!(
        start.1["content_block"]["id"],
        fixtures::OPENAI_TOOL_CALL_ID
    );
    let index = &start.1["index"];
    let json: String = evs
        .iter()
        .filter(|(_, d)| d["index"] == *index && d["delta"]["type"] == "input_json_delta")
        .filter_map(|(_, d)| d["delta"]["partial_json"].as_str())
        .collect();
    assert_eq!(json, fixtures::OPENAI_TOOL_ARGS);
    let delta = evs
        .iter()
        .find(|(n, _)| n == "message_delta")
        .expect("delta");
    assert_eq!(delta.1["delta"]["stop_reason"], "tool_use");
    assert!(
        delta.1["usage"]["output_tokens"].as_u64() > Some(0),
        "usage never zero"
    );
    // The upstream counts the prompt only at its end: the start shows an estimate, not zero.
    let start = &evs[0].1;
    assert!(
        start["message"]["usage"]["input_tokens"].as_u64() > Some(0),
        "{start}"
    );
    assert_eq!(
        delta.1["usage"]["input_tokens"],
        fixtures::OPENAI_TOOL_USAGE.0,
        "the provider's count at the end"
    );
    let sent = openai.last_request().expect("called");
    assert_eq!(
        sent.body["tools"][0]["function"]["name"],
        fixtures::TOOL_NAME
    );
    assert_eq!(sent.body["stream"], true);
    assert_eq!(sent.body["stream_options"]["include_usage"], true);
    daemon.stop().await;
}

#[tokio::test]
async fn one_entry_serves_this_door_and_the_openai_route() {
    let anthropic = FakeUpstream::always(fixtures::anthropic_message()).await;
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let daemon = daemon(&openai, &anthropic).await;
    let body = json!({"model": "openai/gpt-x", "max_tokens": 64,
        "system": "Be brief.", "messages": [{"role": "user", "content": "Hello"}]});
    let first = messages(&daemon, &body, &[VERSION]).await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.header("x-promptd-cache"), Some("miss"));
    // The same request on the OpenAI route: the same entry.
    let chat = json!({"model": "openai/gpt-x", "max_tokens": 64, "messages": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}]});
    let reply = raw_post_with(&daemon.socket, "/v1/chat/completions", &chat, &[]).await;
    assert_eq!(reply.header("x-promptd-cache"), Some("hit"));
    assert_eq!(
        json_of(&reply)["choices"][0]["message"]["content"],
        fixtures::HELLO
    );
    // A hit streamed to this door replays as Anthropic's events.
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let raw = messages(&daemon, &streamed, &[VERSION]).await;
    assert_eq!(raw.header("x-promptd-cache"), Some("hit"));
    let evs = events(&raw);
    assert_eq!(names(&evs)[0], "message_start");
    assert_eq!(names(&evs).last(), Some(&"message_stop"));
    assert_eq!(text_of(&evs), fixtures::HELLO);
    assert_eq!(openai.calls(), 1);
    daemon.stop().await;
}

#[tokio::test]
async fn errors_are_anthropics_and_a_keyless_provider_gets_the_clients_key() {
    let anthropic = FakeUpstream::always(fixtures::anthropic_529()).await;
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let daemon = daemon(&openai, &anthropic).await;
    let raw = messages(&daemon, &hello("anthropic/claude-x", false), &[VERSION]).await;
    assert_eq!(raw.status(), 529);
    let e = json_of(&raw);
    assert_eq!(e["type"], "error");
    assert_eq!(e["error"]["type"], "overloaded_error");

    let bad = json!({"model": "anthropic/claude-x", "max_tokens": 5,
        "messages": [{"role": "user", "content": [{"text": "no type"}]}]});
    let raw = messages(&daemon, &bad, &[VERSION]).await;
    assert_eq!(raw.status(), 400);
    assert_eq!(json_of(&raw)["error"]["type"], "invalid_request_error");
    let unknown = json!({"model": "nobody-serves-this", "max_tokens": 5,
        "messages": [{"role": "user", "content": "x"}]});
    let raw = messages(&daemon, &unknown, &[VERSION]).await;
    assert_eq!(raw.status(), 404);
    assert_eq!(json_of(&raw)["error"]["type"], "not_found_error");
    daemon.stop().await;

    let local = FakeUpstream::always(fixtures::openai_chat()).await;
    let toml = format!(
        "[providers.local]\nkind = \"openai\"\nbase_url = \"{}\"\nmax_retries = 0\n\n\
         [models]\n\"claude-opus-4-8\" = \"local\"\n",
        local.base_url()
    );
    let daemon = TestDaemon::start(&toml).await;
    let body = json!({"model": "claude-opus-4-8", "max_tokens": 5,
        "messages": [{"role": "user", "content": "x"}]});
    let raw = messages(&daemon, &body, &[VERSION, ("x-api-key", "sk-from-client")]).await;
    assert_eq!(raw.status(), 200, "{:?}", raw.chunk_strings());
    let sent = local.last_request().expect("called");
    assert_eq!(sent.header("authorization"), Some("Bearer sk-from-client"));
    assert_eq!(sent.body["model"], "claude-opus-4-8");
    daemon.stop().await;
}

#[tokio::test]
async fn count_tokens_is_the_providers_or_a_said_estimate() {
    let anthropic = FakeUpstream::always(Behavior::json(200, r#"{"input_tokens":17}"#)).await;
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let daemon = daemon(&openai, &anthropic).await;
    let body = json!({"model": "anthropic/claude-x",
        "messages": [{"role": "user", "content": "Hello there"}]});
    let path = "/v1/messages/count_tokens";
    let raw = raw_post_with(&daemon.socket, path, &body, &[VERSION]).await;
    assert_eq!(raw.status(), 200);
    assert_eq!(json_of(&raw), json!({"input_tokens": 17}));
    assert_eq!(raw.header("x-promptd-estimated"), None);
    let sent = anthropic.last_request().expect("called");
    assert_eq!(sent.path, "/v1/messages/count_tokens");
    assert_eq!(sent.body["model"], "claude-x");
    // An OpenAI-kind provider cannot count: promptd estimates, and says so.
    let body = json!({"model": "openai/gpt-x", "system": "s".repeat(400),
        "messages": [{"role": "user", "content": "Hello there"}]});
    let raw = raw_post_with(&daemon.socket, path, &body, &[VERSION]).await;
    assert_eq!(raw.status(), 200);
    assert_eq!(raw.header("x-promptd-estimated"), Some("chars/4"));
    let tokens = json_of(&raw)["input_tokens"].as_u64().expect("a count");
    assert!((100..200).contains(&tokens), "{tokens}");
    assert_eq!(openai.calls(), 0);
    // An unserved /v1 path answers an Anthropic client in Anthropic's shape.
    let raw = raw_post_with(&daemon.socket, "/v1/messages/batches", &body, &[VERSION]).await;
    assert_eq!(raw.status(), 404);
    assert_eq!(json_of(&raw)["type"], "error");
    daemon.stop().await;
}

#[tokio::test]
async fn a_bare_claude_name_goes_to_the_doors_own_default_provider() {
    let anthropic = FakeUpstream::always(fixtures::anthropic_message()).await;
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let toml = format!(
        "default_provider = \"openai\"\nanthropic_default_provider = \"anthropic\"\n{}",
        providers_toml(&openai.base_url(), &anthropic.base_url())
    );
    let daemon = TestDaemon::start(&toml).await;
    let body = json!({"model": "claude-opus-4-8", "max_tokens": 5,
        "messages": [{"role": "user", "content": "x"}]});
    let raw = messages(&daemon, &body, &[VERSION]).await;
    assert_eq!(raw.status(), 200, "{:?}", raw.chunk_strings());
    assert_eq!(anthropic.calls(), 1);
    assert_eq!(
        anthropic.last_request().expect("called").body["model"],
        "claude-opus-4-8"
    );
    // The OpenAI route's bare names still go to default_provider.
    let chat = json!({"model": "gpt-x", "messages": [{"role": "user", "content": "x"}]});
    let reply = raw_post_with(&daemon.socket, "/v1/chat/completions", &chat, &[]).await;
    assert_eq!(reply.status(), 200);
    assert_eq!(openai.calls(), 1);
    daemon.stop().await;
}

#[tokio::test]
async fn metadata_session_headers_and_cache_control_are_not_in_the_key() {
    let anthropic = FakeUpstream::always(fixtures::anthropic_message()).await;
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let daemon = daemon(&openai, &anthropic).await;
    let first = json!({"model": "anthropic/claude-x", "max_tokens": 64,
        "metadata": {"user_id": "{\"session_id\":\"a\"}"},
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "Hello"}]});
    let raw = messages(
        &daemon,
        &first,
        &[VERSION, ("x-claude-code-session-id", "a")],
    )
    .await;
    assert_eq!(raw.header("x-promptd-cache"), Some("miss"));
    let second = json!({"model": "anthropic/claude-x", "max_tokens": 64,
        "metadata": {"user_id": "{\"session_id\":\"b\"}"},
        "system": "Be brief.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello",
            "cache_control": {"type": "ephemeral"}}]}]});
    let raw = messages(
        &daemon,
        &second,
        &[VERSION, ("x-claude-code-session-id", "b")],
    )
    .await;
    assert_eq!(raw.header("x-promptd-cache"), Some("hit"));
    // A beta can change the answer: it is in the key.
    let beta = ("anthropic-beta", "context-1m-2025-08-07");
    let raw = messages(&daemon, &second, &[VERSION, beta]).await;
    assert_eq!(raw.header("x-promptd-cache"), Some("miss"));
    assert_eq!(anthropic.calls(), 2);
    daemon.stop().await;
}
