//! `/v1/chat/completions` for a model routed to an Anthropic-kind provider, through the real
//! daemon against a fake Anthropic: the request translated (what the fake received), the answer
//! and the stream in OpenAI's shapes, tool calls, the cache, a field with no translation refused
//! before any call, Anthropic's own errors passed through.

mod common;

use bytes::Bytes;
use common::fake_upstream::{fixtures, Behavior, FakeUpstream};
use common::{providers_toml, raw_post, RawResponse, TestDaemon};
use hyper::Method;
use serde_json::{json, Value};

const MODEL: &str = "anthropic/claude-3-5-haiku-latest";

async fn daemon_with(anthropic: &FakeUpstream) -> (TestDaemon, FakeUpstream) {
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let toml = providers_toml(&openai.base_url(), &anthropic.base_url());
    (TestDaemon::start(&toml).await, openai)
}

async fn chat(daemon: &TestDaemon, body: &Value) -> common::Reply {
    let bytes = Bytes::from(serde_json::to_vec(body).expect("encode"));
    daemon
        .request(Method::POST, "/v1/chat/completions", Some(bytes))
        .await
}

fn events(raw: &RawResponse) -> (Vec<Value>, bool) {
    common::openai_events(raw)
}

fn weather_tool() -> Value {
    json!([{"type": "function", "function": {"name": fixtures::TOOL_NAME,
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}])
}

#[tokio::test]
async fn a_whole_answer_is_translated_both_ways_and_cached() {
    let anthropic = FakeUpstream::always(fixtures::anthropic_message()).await;
    let (daemon, _openai) = daemon_with(&anthropic).await;
    let body = json!({"model": MODEL, "max_tokens": 50, "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello"}]});
    let reply = chat(&daemon, &body).await;
    assert_eq!(reply.status, 200, "{:?}", reply.json());
    let v = reply.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert_eq!(v["choices"][0]["message"]["content"], fixtures::HELLO);
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    let (input, output) = fixtures::ANTHROPIC_USAGE;
    assert_eq!(
        v["usage"],
        json!({"prompt_tokens": input, "completion_tokens": output, "total_tokens": input + output})
    );
    let sent = anthropic.last_request().expect("called");
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(sent.header("x-api-key"), Some("sk-ant-test"));
    assert!(sent.header("anthropic-version").is_some());
    assert_eq!(sent.body["system"], "Be brief.");
    assert_eq!(sent.body["max_tokens"], 50);
    assert_eq!(sent.body["model"], "claude-3-5-haiku-latest");
    assert_eq!(
        sent.body["messages"],
        json!([{"role": "user", "content": "Hello"}])
    );
    assert!(sent.body.get("stream").is_none());
    // The same request again: a cache hit, the fake called once.
    let again = chat(&daemon, &body).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.headers["x-promptd-cache"], "hit");
    assert_eq!(
        again.json()["choices"][0]["message"]["content"],
        fixtures::HELLO
    );
    assert_eq!(anthropic.calls(), 1);
    daemon.stop().await;
}

#[tokio::test]
async fn a_stream_with_include_usage_ends_with_the_usage_chunk_and_done() {
    let anthropic = FakeUpstream::always(fixtures::anthropic_stream()).await;
    let (daemon, _openai) = daemon_with(&anthropic).await;
    let body = json!({"model": MODEL, "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "Hello"}]});
    let raw = raw_post(&daemon.socket, "/v1/chat/completions", &body).await;
    assert_eq!(raw.status(), 200);
    let (chunks, done) = events(&raw);
    assert!(done, "ends with [DONE]");
    assert!(chunks
        .iter()
        .all(|c| c["object"] == "chat.completion.chunk"));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, fixtures::HELLO);
    let finish: Vec<&Value> = chunks
        .iter()
        .map(|c| &c["choices"][0]["finish_reason"])
        .filter(|f| !f.is_null())
        .collect();
    assert_eq!(finish, vec!["stop"]);
    let last = chunks.last().expect("chunks");
    assert_eq!(last["choices"], json!([]));
    let (input, output) = fixtures::ANTHROPIC_USAGE;
    assert_eq!(last["usage"]["prompt_tokens"], input);
    assert_eq!(last["usage"]["completion_tokens"], output);
    assert_eq!(
        anthropic.last_request().expect("called").body["stream"],
        true
    );
    // Without include_usage: no usage chunk.
    let body = json!({"model": MODEL, "stream": true,
        "messages": [{"role": "user", "content": "Hello again"}]});
    let raw = raw_post(&daemon.socket, "/v1/chat/completions", &body).await;
    let (chunks, done) = events(&raw);
    assert!(done);
    assert!(chunks
        .iter()
        .all(|c| c.get("usage").is_none_or(Value::is_null)
            || !c["choices"].as_array().is_some_and(Vec::is_empty)));
    daemon.stop().await;
}

#[tokio::test]
async fn a_streamed_tool_call_carries_index_id_name_and_its_argument_fragments() {
    let anthropic = FakeUpstream::always(fixtures::anthropic_tool_use_stream()).await;
    let (daemon, _openai) = daemon_with(&anthropic).await;
    let body = json!({"model": MODEL, "stream": true, "tools": weather_tool(),
        "tool_choice": "auto",
        "messages": [{"role": "user", "content": "Weather in Paris?"}]});
    let raw = raw_post(&daemon.socket, "/v1/chat/completions", &body).await;
    assert_eq!(raw.status(), 200);
    let sent = anthropic.last_request().expect("called").body;
    assert_eq!(sent["tools"][0]["name"], fixtures::TOOL_NAME);
    assert_eq!(sent["tools"][0]["input_schema"]["type"], "object");
    assert_eq!(sent["tool_choice"], json!({"type": "auto"}));
    let (chunks, done) = events(&raw);
    assert!(done);
    let calls: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].as_array())
        .flatten()
        .collect();
    let first = calls.first().expect("a tool call delta");
    assert_eq!(first["index"], 0);
    assert_eq!(first["id"], fixtures::ANTHROPIC_TOOL_USE_ID);
    assert_eq!(first["function"]["name"], fixtures::TOOL_NAME);
    assert!(calls.iter().all(|c| c["index"] == 0));
    let args: String = calls
        .iter()
        .filter_map(|c| c["function"]["arguments"].as_str())
        .collect();
    assert_eq!(args, fixtures::ANTHROPIC_TOOL_INPUT_JSON);
    let finish: Vec<&Value> = chunks
        .iter()
        .map(|c| &c["choices"][0]["finish_reason"])
        .filter(|f| !f.is_null())
        .collect();
    assert_eq!(finish, vec!["tool_calls"]);
    // The same request again: a hit, rendered from the entry's blocks, with the same calls.
    let replay = raw_post(&daemon.socket, "/v1/chat/completions", &body).await;
    assert_eq!(replay.header("x-promptd-cache"), Some("hit"));
    let (chunks, done) = events(&replay);
    assert!(done);
    let calls: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].as_array())
        .flatten()
        .collect();
    assert_eq!(calls[0]["id"], fixtures::ANTHROPIC_TOOL_USE_ID);
    let replayed: String = calls
        .iter()
        .filter_map(|c| c["function"]["arguments"].as_str())
        .collect();
    assert_eq!(replayed, args);
    assert_eq!(anthropic.calls(), 1);
    daemon.stop().await;
}

#[tokio::test]
async fn a_whole_tool_call_answer_has_tool_calls() {
    let anthropic = FakeUpstream::always(fixtures::anthropic_tool_use()).await;
    let (daemon, _openai) = daemon_with(&anthropic).await;
    let body = json!({"model": MODEL, "tools": weather_tool(),
        "messages": [{"role": "user", "content": "Weather in Paris?"}]});
    let reply = chat(&daemon, &body).await;
    assert_eq!(reply.status, 200);
    let v = reply.json();
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    let call = &v["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["id"], fixtures::ANTHROPIC_TOOL_USE_ID);
    assert_eq!(call["function"]["name"], fixtures::TOOL_NAME);
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap_or("")).expect("json");
    assert_eq!(args, json!({"city": "Paris", "unit": "c"}));
    daemon.stop().await;
}

#[tokio::test]
async fn an_untranslatable_field_is_a_400_naming_it_before_any_call() {
    let anthropic = FakeUpstream::always(fixtures::anthropic_message()).await;
    let (daemon, _openai) = daemon_with(&anthropic).await;
    for (field, value) in [("n", json!(2)), ("logprobs", json!(true))] {
        let mut body = json!({"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]});
        body[field] = value;
        let reply = chat(&daemon, &body).await;
        assert_eq!(reply.status, 400, "{field}");
        let v = reply.json();
        assert_eq!(v["error"]["param"], field);
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert!(v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains(field)));
    }
    assert_eq!(anthropic.calls(), 0);
    daemon.stop().await;
}

#[tokio::test]
async fn anthropics_own_errors_pass_through() {
    let anthropic = FakeUpstream::always(fixtures::anthropic_400()).await;
    let (daemon, _openai) = daemon_with(&anthropic).await;
    let body = json!({"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]});
    let reply = chat(&daemon, &body).await;
    assert_eq!(reply.status, 400);
    assert!(reply.json()["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("max_tokens: Field required")));
    assert_eq!(reply.json()["error"]["code"], "invalid_request_error");
    let overloaded =
        FakeUpstream::always(Behavior::json(529, fixtures::ANTHROPIC_ERROR_529_JSON)).await;
    let (daemon2, _openai2) = daemon_with(&overloaded).await;
    // A provider's server error (Anthropic's 529 overloaded) is a bad gateway, as on every
    // route, with Anthropic's message.
    // Anthropic's error type is the code an app tells an overload by.
    let reply = chat(&daemon2, &body).await;
    assert_eq!(reply.status, 502);
    assert_eq!(
        reply.json()["error"],
        json!({"message": "Overloaded", "type": "api_error", "param": null,
            "code": "overloaded_error"})
    );
    daemon.stop().await;
    daemon2.stop().await;
}

#[tokio::test]
async fn an_error_event_mid_stream_is_the_streams_error_event() {
    let anthropic = FakeUpstream::always(fixtures::anthropic_overloaded_midstream()).await;
    let (daemon, _openai) = daemon_with(&anthropic).await;
    let body = json!({"model": MODEL, "stream": true,
        "messages": [{"role": "user", "content": "Hello"}]});
    let raw = raw_post(&daemon.socket, "/v1/chat/completions", &body).await;
    let (chunks, done) = events(&raw);
    assert!(!done, "no [DONE] after a failure");
    let last = chunks.last().expect("events");
    assert!(last["error"]["message"].is_string(), "{last}");
    daemon.stop().await;
}

#[tokio::test]
async fn the_entry_serves_the_parea_route_with_its_text_and_usage() {
    let anthropic = FakeUpstream::always(fixtures::anthropic_message()).await;
    let (daemon, _openai) = daemon_with(&anthropic).await;
    let model = "claude-3-5-sonnet-20241022";
    let reply = chat(
        &daemon,
        &json!({"model": format!("anthropic/{model}"),
            "messages": [{"role": "user", "content": "Hello"}]}),
    )
    .await;
    assert_eq!(reply.status, 200);
    let key = reply.headers["x-promptd-cache-key"].clone();
    // The same plain request by the Parea route: the same entry, rendered from the completion.
    let parea = daemon
        .post("/completion", &common::hello_request("anthropic", model))
        .await;
    assert_eq!(parea.status, 200);
    assert_eq!(parea.headers["x-promptd-cache"], "hit");
    assert_eq!(parea.headers["x-promptd-cache-key"], key);
    let v = parea.json();
    assert_eq!(v["content"], fixtures::HELLO);
    let (input, output) = fixtures::ANTHROPIC_USAGE;
    assert_eq!(v["input_tokens"], input);
    assert_eq!(v["output_tokens"], output);
    assert_eq!(anthropic.calls(), 1);
    daemon.stop().await;
}

/// The non-null `finish_reason`s of a stream's chunks.
fn finish_reasons(chunks: &[Value]) -> Vec<&Value> {
    chunks
        .iter()
        .map(|c| &c["choices"][0]["finish_reason"])
        .filter(|f| !f.is_null())
        .collect()
}

/// `/v1/chat/completions` for the plain "Hello" request (whole, then streamed) answered from the
/// cache: its `finish_reason`, whole and streamed, is `expected`.
async fn openai_hits_finish_with(daemon: &TestDaemon, expected: &str) {
    let body = json!({"model": format!("anthropic/{}", fixtures::ANTHROPIC_MODEL),
        "messages": [{"role": "user", "content": "Hello"}]});
    let reply = chat(daemon, &body).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.headers["x-promptd-cache"], "hit");
    assert_eq!(reply.json()["choices"][0]["finish_reason"], expected);
    let mut streamed = body;
    streamed["stream"] = json!(true);
    let raw = raw_post(&daemon.socket, "/v1/chat/completions", &streamed).await;
    assert_eq!(raw.status(), 200);
    assert_eq!(raw.header("x-promptd-cache"), Some("hit"));
    let (chunks, done) = events(&raw);
    assert!(done, "ends with [DONE]");
    assert_eq!(finish_reasons(&chunks), vec![expected]);
}

/// An entry the Parea route made from an Anthropic answer holds the model's finish reason, not
/// Anthropic's word for it: OpenAI-route clients answered from it get OpenAI's (issue 21).
#[tokio::test]
async fn a_parea_made_entry_answers_openai_clients_with_openais_finish_reasons() {
    let max_tokens = fixtures::ANTHROPIC_MESSAGE_JSON.replace("\"end_turn\"", "\"max_tokens\"");
    for (behavior, expected) in [
        (fixtures::anthropic_message(), "stop"),
        (fixtures::anthropic_tool_use(), "tool_calls"),
        (Behavior::json(200, max_tokens), "length"),
    ] {
        let anthropic = FakeUpstream::always(behavior).await;
        let (daemon, _openai) = daemon_with(&anthropic).await;
        let request = common::hello_request("anthropic", fixtures::ANTHROPIC_MODEL);
        let parea = daemon.post("/completion", &request).await;
        assert_eq!(parea.status, 200, "{:?}", parea.body);
        assert_eq!(parea.headers["x-promptd-cache"], "miss");
        // Parea's wire has no finish reason: none is rendered, in any vocabulary.
        assert!(parea.json().get("finish_reason").is_none());
        openai_hits_finish_with(&daemon, expected).await;
        assert_eq!(anthropic.calls(), 1);
        daemon.stop().await;
    }
}

/// The same from a stream the Parea route made (`/completion/stream`).
#[tokio::test]
async fn a_parea_made_stream_entry_answers_openai_clients_with_openais_finish_reasons() {
    for (behavior, expected) in [
        (fixtures::anthropic_stream(), "stop"),
        (fixtures::anthropic_tool_use_stream(), "tool_calls"),
    ] {
        let anthropic = FakeUpstream::always(behavior).await;
        let (daemon, _openai) = daemon_with(&anthropic).await;
        let request = common::hello_request("anthropic", fixtures::ANTHROPIC_MODEL);
        let parea = daemon.post("/completion/stream", &request).await;
        assert_eq!(parea.status, 200, "{:?}", parea.body);
        openai_hits_finish_with(&daemon, expected).await;
        assert_eq!(anthropic.calls(), 1);
        daemon.stop().await;
    }
}

#[tokio::test]
async fn hints_are_left_out_of_a_translated_call_and_said_so() {
    let anthropic = FakeUpstream::always(fixtures::anthropic_message()).await;
    let (daemon, _openai) = daemon_with(&anthropic).await;
    let body = json!({"model": MODEL, "messages": [{"role": "user", "content": "Hello"}],
        "metadata": {"team": "a"}, "store": false, "n": 1, "user": "u-1"});
    let reply = chat(&daemon, &body).await;
    assert_eq!(reply.status, 200, "{:?}", reply.json());
    let dropped = reply.headers["x-promptd-dropped"]
        .to_str()
        .expect("text")
        .to_owned();
    let mut names: Vec<&str> = dropped.split(", ").collect();
    names.sort_unstable();
    assert_eq!(names, ["metadata", "n", "store"]);
    let sent = anthropic.last_request().expect("called");
    assert!(sent.body.get("store").is_none() && sent.body.get("n").is_none());
    // The end user's id is translated, not dropped.
    assert_eq!(sent.body["metadata"], json!({"user_id": "u-1"}));
    // A request with nothing to leave out says nothing.
    let plain = json!({"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]});
    let reply = chat(&daemon, &plain).await;
    assert_eq!(reply.status, 200);
    assert!(reply.headers.get("x-promptd-dropped").is_none());
    daemon.stop().await;
}
