//! `POST /v1/responses`, OpenAI's Responses door, through the real daemon against fake
//! providers: translated through the internal model to a chat-completions provider and to an
//! Anthropic-kind one; the answer as a `response` object, the stream as typed events with
//! increasing `sequence_number`s (every item added and done, `response.completed` last); the
//! hints Codex sends left out and named; Codex's captured request served; kept answers:
//! conversations continued by `previous_response_id` (the provider gets the whole history),
//! `GET` / `DELETE /v1/responses/{id}`, `store: false`, another owner's id unknown, an unknown
//! id and `conversation` refused by name.

mod common;

use common::fake_upstream::{fixtures, FakeUpstream};
use common::{
    parse_raw_response, providers_toml, raw_get, raw_post_bytes, raw_post_with, RawResponse,
    TestDaemon,
};
use hyper::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
async fn an_unknown_previous_response_id_is_a_400_naming_it_and_conversation_is_refused() {
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
    let message = e["error"]["message"].as_str().expect("a message");
    assert!(
        message.contains("resp_123") && message.contains("unknown"),
        "{message}"
    );
    let body = json!({"model": "openai/gpt-x", "input": "and then?", "conversation": "conv_1"});
    let raw = responses(&daemon, &body).await;
    assert_eq!(raw.status(), 400);
    assert_eq!(json_of(&raw)["error"]["param"], "conversation");
    assert_eq!(openai.calls(), 0, "never a silent fresh start");
    daemon.stop().await;
}

/// A first turn that promptd keeps (no `store: false`).
fn first_turn(stream: bool) -> Value {
    json!({"model": "openai/gpt-x", "stream": stream, "instructions": "Be brief.",
        "input": [{"type": "message", "role": "user",
            "content": [{"type": "input_text", "text": "Hello"}]}]})
}

/// The roles and texts of the chat messages a provider got.
fn turns(sent: &Value) -> Vec<(String, String)> {
    sent["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| {
            let text = match &m["content"] {
                Value::String(s) => s.clone(),
                Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect(),
                other => other.to_string(),
            };
            (m["role"].as_str().unwrap_or_default().to_owned(), text)
        })
        .collect()
}

fn turn(role: &str, text: &str) -> (String, String) {
    (role.to_owned(), text.to_owned())
}

async fn get(daemon: &TestDaemon, path: &str) -> RawResponse {
    raw_get(&daemon.socket, path).await
}

/// A continuation whose whole conversation is over `max_rendered` is a 400 naming
/// `previous_response_id` (retrying would not help), and the provider is not called.
#[tokio::test]
async fn a_conversation_too_long_to_continue_is_refused_by_name() {
    let anthropic = FakeUpstream::always(fixtures::anthropic_message()).await;
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let toml = format!(
        "max_rendered = \"2KiB\"\n{}",
        providers_toml(&openai.base_url(), &anthropic.base_url())
    );
    let daemon = TestDaemon::start(&toml).await;
    let long = "x".repeat(1500);
    let first = json!({"model": "openai/gpt-x", "input": long});
    let first = responses(&daemon, &first).await;
    assert_eq!(first.status(), 200, "{:?}", first.chunk_strings());
    let id = json_of(&first)["id"].as_str().expect("an id").to_owned();
    let next = json!({"model": "openai/gpt-x", "input": long, "previous_response_id": id});
    let refused = responses(&daemon, &next).await;
    assert_eq!(refused.status(), 400, "{:?}", refused.chunk_strings());
    let error = &json_of(&refused)["error"];
    assert_eq!(error["param"], "previous_response_id", "{error}");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("would be") && m.contains("bytes, over max_rendered")),
        "{error}"
    );
    assert!(
        !error["message"].as_str().unwrap_or_default().contains("  "),
        "one sentence, no runs of spaces: {error}"
    );
    assert_eq!(openai.calls(), 1);
    daemon.stop().await;
}

#[tokio::test]
async fn a_conversation_continues_by_previous_response_id() {
    let anthropic = FakeUpstream::always(fixtures::anthropic_message()).await;
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let daemon = daemon(&openai, &anthropic).await;
    let first = responses(&daemon, &first_turn(false)).await;
    assert_eq!(first.status(), 200, "{:?}", first.chunk_strings());
    let first = json_of(&first);
    let id = first["id"].as_str().expect("an id").to_owned();
    assert_eq!(first["store"], true);
    // Read back as it was answered.
    let read = get(&daemon, &format!("/v1/responses/{id}")).await;
    assert_eq!(read.status(), 200);
    assert_eq!(json_of(&read), first);

    let second = json!({"model": "openai/gpt-x", "input": "And then?",
        "previous_response_id": id});
    let raw = responses(&daemon, &second).await;
    assert_eq!(raw.status(), 200, "{:?}", raw.chunk_strings());
    let answer = json_of(&raw);
    assert_eq!(answer["previous_response_id"], id.as_str());
    assert_ne!(answer["id"], id.as_str());
    assert_eq!(openai.calls(), 2, "the longer conversation is no cache hit");
    let sent = openai.last_request().expect("called");
    // The whole conversation; the first turn's instructions are not carried over.
    assert_eq!(
        turns(&sent.body),
        [
            turn("user", "Hello"),
            turn("assistant", fixtures::HELLO),
            turn("user", "And then?")
        ]
    );
    // Its input items: the whole conversation before its answer, newest first by default.
    let second_id = answer["id"].as_str().expect("an id").to_owned();
    let items = json_of(&get(&daemon, &format!("/v1/responses/{second_id}/input_items")).await);
    assert_eq!(items["object"], "list");
    let data = items["data"].as_array().expect("data");
    assert_eq!(data.len(), 3);
    assert_eq!(data[0]["content"], "And then?");
    assert_eq!(data[2]["content"][0]["text"], "Hello");

    // A third turn continues the second: everything before it, from one record.
    let third = json!({"model": "openai/gpt-x", "input": "Thanks.",
        "previous_response_id": second_id});
    let raw = responses(&daemon, &third).await;
    assert_eq!(raw.status(), 200, "{:?}", raw.chunk_strings());
    let sent = openai.last_request().expect("called");
    assert_eq!(turns(&sent.body).len(), 5, "{}", sent.body);
    assert_eq!(turns(&sent.body)[4], turn("user", "Thanks."));
    // The same continuation again is a cache hit: the key covers the whole conversation.
    let again = responses(&daemon, &third).await;
    assert_eq!(again.header("x-promptd-cache"), Some("hit"));
    assert_eq!(openai.calls(), 3);
    daemon.stop().await;
}

#[tokio::test]
async fn a_streamed_answer_is_kept_by_the_end_of_its_stream() {
    let anthropic = FakeUpstream::always(fixtures::anthropic_message()).await;
    let openai = FakeUpstream::always(fixtures::openai_stream()).await;
    let daemon = daemon(&openai, &anthropic).await;
    let raw = responses(&daemon, &first_turn(true)).await;
    assert_eq!(raw.status(), 200, "{:?}", raw.chunk_strings());
    let evs = events(&raw);
    let created = &evs[0];
    assert_eq!(created["type"], "response.created");
    assert_eq!(created["response"]["store"], true);
    let id = created["response"]["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    let completed = evs.last().expect("events");
    assert_eq!(completed["type"], "response.completed");
    // Kept as response.completed said it, once the stream's end was read.
    let read = json_of(&get(&daemon, &format!("/v1/responses/{id}")).await);
    assert_eq!(read["id"], id.as_str());
    assert_eq!(read["status"], "completed");
    assert_eq!(read["output"], completed["response"]["output"]);
    assert_eq!(read["output"][0]["content"][0]["text"], fixtures::HELLO);

    let second = json!({"model": "openai/gpt-x", "stream": true, "input": "And then?",
        "previous_response_id": id});
    let raw = responses(&daemon, &second).await;
    assert_eq!(raw.status(), 200, "{:?}", raw.chunk_strings());
    let evs = events(&raw);
    assert_eq!(evs[0]["response"]["previous_response_id"], id.as_str());
    assert_eq!(types(&evs).last(), Some(&"response.completed"));
    let sent = openai.last_request().expect("called");
    assert_eq!(
        turns(&sent.body),
        [
            turn("user", "Hello"),
            turn("assistant", fixtures::HELLO),
            turn("user", "And then?")
        ]
    );
    daemon.stop().await;
}

#[tokio::test]
async fn store_false_keeps_nothing() {
    let anthropic = FakeUpstream::always(fixtures::anthropic_message()).await;
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let daemon = daemon(&openai, &anthropic).await;
    let raw = responses(&daemon, &hello("openai/gpt-x", false)).await;
    assert_eq!(raw.status(), 200);
    let answer = json_of(&raw);
    assert_eq!(answer["store"], false);
    let id = answer["id"].as_str().expect("an id");
    let read = get(&daemon, &format!("/v1/responses/{id}")).await;
    assert_eq!(read.status(), 404);
    let e = json_of(&read);
    assert_eq!(e["error"]["type"], "invalid_request_error");
    assert_eq!(
        e["error"]["message"],
        format!("Response with id '{id}' not found.")
    );
    let next = json!({"model": "openai/gpt-x", "input": "And then?", "previous_response_id": id});
    let raw = responses(&daemon, &next).await;
    assert_eq!(raw.status(), 400);
    assert_eq!(json_of(&raw)["error"]["param"], "previous_response_id");
    assert_eq!(openai.calls(), 1);
    daemon.stop().await;
}

#[tokio::test]
async fn a_kept_response_is_read_and_deleted() {
    let anthropic = FakeUpstream::always(fixtures::anthropic_message()).await;
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let daemon = daemon(&openai, &anthropic).await;
    let first = json_of(&responses(&daemon, &first_turn(false)).await);
    let id = first["id"].as_str().expect("an id");
    let path = format!("/v1/responses/{id}");
    assert_eq!(get(&daemon, &path).await.status(), 200);
    let deleted = daemon.request(Method::DELETE, &path, None).await;
    assert_eq!(deleted.status, 200);
    assert_eq!(
        deleted.json(),
        json!({"id": id, "object": "response.deleted", "deleted": true})
    );
    assert_eq!(get(&daemon, &path).await.status(), 404);
    let again = daemon.request(Method::DELETE, &path, None).await;
    assert_eq!(again.status, 404);
    assert_eq!(again.json()["error"]["type"], "invalid_request_error");
    let items = get(&daemon, &format!("{path}/input_items")).await;
    assert_eq!(items.status(), 404);
    daemon.stop().await;
}

/// One request over the daemon's TCP listener at `url` with its key.
async fn over_tcp(url: &str, method: &str, path: &str, body: Option<&Value>) -> RawResponse {
    let addr = url.strip_prefix("http://").expect("an http url");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TCP_KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("write head");
    stream.write_all(body.as_bytes()).await.expect("write body");
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).await.expect("read");
    parse_raw_response(&bytes)
}

const TCP_KEY: &str = "k-tcp-test";

#[tokio::test]
async fn another_owner_can_neither_read_nor_continue_a_kept_response() {
    let anthropic = FakeUpstream::always(fixtures::anthropic_message()).await;
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let toml = providers_toml(&openai.base_url(), &anthropic.base_url());
    let (daemon, url) = TestDaemon::start_tcp(&toml, TCP_KEY).await;
    // Made by this uid on the Unix socket: unknown to the TCP listener's clients.
    let mine = json_of(&responses(&daemon, &first_turn(false)).await);
    let id = mine["id"].as_str().expect("an id");
    let path = format!("/v1/responses/{id}");
    assert_eq!(over_tcp(&url, "GET", &path, None).await.status(), 404);
    assert_eq!(over_tcp(&url, "DELETE", &path, None).await.status(), 404);
    let next = json!({"model": "openai/gpt-x", "input": "And then?", "previous_response_id": id});
    let refused = over_tcp(&url, "POST", "/v1/responses", Some(&next)).await;
    assert_eq!(refused.status(), 400);
    assert_eq!(json_of(&refused)["error"]["param"], "previous_response_id");
    assert_eq!(
        get(&daemon, &path).await.status(),
        200,
        "still there for its owner"
    );
    // TCP clients own what they make, the socket's users do not see it.
    let theirs = over_tcp(&url, "POST", "/v1/responses", Some(&first_turn(false))).await;
    assert_eq!(theirs.status(), 200, "{:?}", theirs.chunk_strings());
    let theirs_id = json_of(&theirs)["id"].as_str().expect("an id").to_owned();
    assert_ne!(
        theirs_id, id,
        "the same cached answer is another response for another owner"
    );
    let their_path = format!("/v1/responses/{theirs_id}");
    assert_eq!(over_tcp(&url, "GET", &their_path, None).await.status(), 200);
    assert_eq!(get(&daemon, &their_path).await.status(), 404);
    assert_eq!(openai.calls(), 1, "the second first turn is a cache hit");
    daemon.stop().await;
}

/// The same cached answer to the same owner is one response: a hit is named as the call that
/// stored it (whole or streamed), so it is kept once however often it is asked.
#[tokio::test]
async fn a_cached_answer_is_one_response_for_its_owner() {
    let anthropic = FakeUpstream::always(fixtures::anthropic_message()).await;
    let openai = FakeUpstream::start(|req, _| {
        if req.body["stream"] == true {
            fixtures::openai_stream()
        } else {
            fixtures::openai_chat()
        }
    })
    .await;
    let daemon = daemon(&openai, &anthropic).await;
    let id_of = |raw: &RawResponse| json_of(raw)["id"].as_str().expect("an id").to_owned();
    let first = id_of(&responses(&daemon, &first_turn(false)).await);
    let again = responses(&daemon, &first_turn(false)).await;
    assert_eq!(again.header("x-promptd-cache"), Some("hit"));
    assert_eq!(id_of(&again), first);
    // A replayed stream names the same answer the same way, in every event.
    let streamed = responses(&daemon, &first_turn(true)).await;
    assert_eq!(streamed.header("x-promptd-cache"), Some("hit"));
    let evs = events(&streamed);
    assert_eq!(evs[0]["response"]["id"], first.as_str());
    assert_eq!(
        evs.last().expect("events")["response"]["id"],
        first.as_str()
    );
    let path = format!("/v1/responses/{first}");
    assert_eq!(get(&daemon, &path).await.status(), 200);
    // Deleted, then hit again (whole, then streamed): kept again, not taken for held.
    for stream in [false, true] {
        let deleted = daemon.request(Method::DELETE, &path, None).await;
        assert_eq!(deleted.status, 200);
        assert_eq!(get(&daemon, &path).await.status(), 404);
        let hit = responses(&daemon, &first_turn(stream)).await;
        assert_eq!(hit.header("x-promptd-cache"), Some("hit"));
        assert_eq!(get(&daemon, &path).await.status(), 200, "stream: {stream}");
    }
    assert_eq!(openai.calls(), 1);
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
