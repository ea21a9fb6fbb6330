//! `POST /v1/responses` to a provider that serves the Responses API (`responses = true`): the
//! client's body goes on as it came (only `model` is the provider's; every other member's bytes,
//! unknown fields and encrypted reasoning included), the answer and each stream event come back
//! as received; a cached answer replays in this wire and serves the chat-completions route too;
//! a stream cut after its start ends with `response.failed` numbered after the upstream's events;
//! to a provider that does not serve it, the same body is translated (or refused by name).

mod common;

use common::fake_upstream::{fixtures, FakeUpstream};
use common::wait::wait_for_async;
use common::{raw_post_bytes, raw_post_with, RawResponse, TestDaemon};
use hyper::Method;
use serde_json::{json, Value};

/// An OpenAI-kind provider that serves the Responses API, and one that does not.
async fn daemon(upstream: &FakeUpstream) -> TestDaemon {
    let url = upstream.base_url();
    TestDaemon::start(&format!(
        r#"
[providers.openai]
kind = "openai"
base_url = "{url}"
api_key = "sk-test-openai"
responses = true
max_retries = 0
timeout = "5s"

[providers.chat]
kind = "openai"
base_url = "{url}"
api_key = "sk-test-chat"
max_retries = 0
timeout = "5s"
"#
    ))
    .await
}

/// A Codex-like body, compact, with members promptd has no model for.
fn body(stream: bool) -> String {
    format!(
        concat!(
            r#"{{"model":"openai/gpt-5","instructions":"Be brief.","input":[{{"type":"reasoning","#,
            r#""summary":[],"encrypted_content":"gAAAAB-earlier"}},{{"type":"message","role":"user","#,
            r#""content":[{{"type":"input_text","text":"Hello"}}]}}],"stream":{},"store":false,"#,
            r#""include":["reasoning.encrypted_content"],"prompt_cache_key":"k-1","#,
            r#""x_future_field":{{"b": 1, "a": [2, 3.50]}},"max_output_tokens":64}}"#
        ),
        stream
    )
}

/// `body(stream)` as the provider must get it: `model` its own, `stream` only when asked for,
/// at the end; every other member byte for byte.
fn forwarded(stream: bool) -> String {
    let sent = body(stream)
        .replace(r#""model":"openai/gpt-5""#, r#""model":"gpt-5""#)
        .replace(&format!(r#""stream":{stream},"#), "");
    if stream {
        format!("{},\"stream\":true}}", sent.trim_end_matches('}'))
    } else {
        sent
    }
}

async fn post(daemon: &TestDaemon, body: &str) -> RawResponse {
    raw_post_bytes(&daemon.socket, "/v1/responses", body.as_bytes(), &[]).await
}

fn text_of(raw: &RawResponse) -> String {
    raw.chunk_strings().concat()
}

/// The data of each event of a stream.
fn event_data(text: &str) -> Vec<Value> {
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|event| {
            let data = event
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .unwrap_or_else(|| panic!("a data line: {event:?}"));
            serde_json::from_str(data).expect("data is JSON")
        })
        .collect()
}

#[tokio::test]
async fn a_whole_call_goes_as_it_came_and_its_answer_comes_back_as_received() {
    let upstream = FakeUpstream::always(fixtures::openai_responses()).await;
    let daemon = daemon(&upstream).await;
    let raw = post(&daemon, &body(false)).await;
    assert_eq!(raw.status(), 200, "{:?}", raw.chunk_strings());
    assert_eq!(text_of(&raw), fixtures::OPENAI_RESPONSES_JSON);
    assert_eq!(raw.header("x-promptd-cache"), Some("miss"));
    assert_eq!(raw.header("x-promptd-dropped"), None, "nothing is left out");
    let sent = upstream.last_request().expect("called");
    assert_eq!(sent.path, "/v1/responses");
    assert_eq!(sent.header("authorization"), Some("Bearer sk-test-openai"));
    assert_eq!(String::from_utf8_lossy(&sent.raw), forwarded(false));

    // A hit is the answer as it came, again.
    let again = post(&daemon, &body(false)).await;
    assert_eq!(again.header("x-promptd-cache"), Some("hit"));
    assert_eq!(text_of(&again), fixtures::OPENAI_RESPONSES_JSON);
    assert_eq!(upstream.calls(), 1);
    daemon.stop().await;
}

#[tokio::test]
async fn a_stream_is_forwarded_event_by_event_and_replays_in_either_wire() {
    let upstream = FakeUpstream::always(fixtures::openai_responses_stream()).await;
    let daemon = daemon(&upstream).await;
    let raw = post(&daemon, &body(true)).await;
    assert_eq!(raw.status(), 200, "{:?}", raw.chunk_strings());
    assert_eq!(raw.header("content-type"), Some("text/event-stream"));
    assert_eq!(text_of(&raw), fixtures::OPENAI_RESPONSES_STREAM_SSE);
    let sent = upstream.last_request().expect("called");
    assert_eq!(sent.path, "/v1/responses");
    assert_eq!(String::from_utf8_lossy(&sent.raw), forwarded(true));

    // The stored answer replays as this wire's events, rendered by promptd.
    let hit = post(&daemon, &body(true)).await;
    assert_eq!(hit.header("x-promptd-cache"), Some("hit"));
    let events = event_data(&text_of(&hit));
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event["sequence_number"], i, "{event}");
    }
    let last = events.last().expect("events");
    assert_eq!(last["type"], "response.completed");
    let text: String = events
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .filter_map(|e| e["delta"].as_str())
        .collect();
    assert_eq!(text, fixtures::HELLO);
    assert_eq!(last["response"]["usage"]["output_tokens"], 9);
    assert_eq!(upstream.calls(), 1);
    daemon.stop().await;
}

#[tokio::test]
async fn an_answer_from_the_responses_api_serves_the_chat_route() {
    let upstream = FakeUpstream::always(fixtures::openai_responses()).await;
    let daemon = daemon(&upstream).await;
    let request = json!({"model": "openai/gpt-5", "instructions": "Be brief.",
        "input": "Hello", "max_output_tokens": 64});
    let raw = raw_post_with(&daemon.socket, "/v1/responses", &request, &[]).await;
    assert_eq!(raw.status(), 200, "{:?}", raw.chunk_strings());
    let chat = json!({"model": "openai/gpt-5", "max_tokens": 64, "messages": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}]});
    let reply = raw_post_with(&daemon.socket, "/v1/chat/completions", &chat, &[]).await;
    assert_eq!(reply.header("x-promptd-cache"), Some("hit"));
    let v: Value = serde_json::from_str(&text_of(&reply)).expect("json");
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["content"], fixtures::HELLO);
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(upstream.calls(), 1);
    daemon.stop().await;
}

#[tokio::test]
async fn a_provider_that_does_not_serve_it_is_called_on_chat_completions_unless_refused() {
    let upstream = FakeUpstream::always(fixtures::openai_chat()).await;
    let daemon = daemon(&upstream).await;
    // What has no chat-completions translation and may change the answer is refused by name.
    let body = body(false).replace("openai/gpt-5", "chat/gpt-5");
    let raw = post(&daemon, &body).await;
    assert_eq!(raw.status(), 400, "{:?}", raw.chunk_strings());
    let v: Value = serde_json::from_str(&text_of(&raw)).expect("json");
    assert_eq!(v["error"]["param"], "x_future_field");
    assert_eq!(upstream.calls(), 0);
    let body = body.replace(r#""x_future_field":{"b": 1, "a": [2, 3.50]},"#, "");
    let raw = post(&daemon, &body).await;
    assert_eq!(raw.status(), 200, "{:?}", raw.chunk_strings());
    let v: Value = serde_json::from_str(&text_of(&raw)).expect("json");
    assert_eq!(v["object"], "response");
    assert_eq!(v["output"][0]["content"][0]["text"], fixtures::HELLO);
    let sent = upstream.last_request().expect("called");
    assert_eq!(sent.path, "/v1/chat/completions");
    daemon.stop().await;
}

#[tokio::test]
async fn a_forwarded_stream_cut_after_its_start_ends_with_response_failed() {
    const SENT: usize = 6;
    let upstream = FakeUpstream::always(fixtures::openai_responses_stream_cut(SENT)).await;
    let daemon = daemon(&upstream).await;
    let raw = post(&daemon, &body(true)).await;
    assert_eq!(raw.status(), 200, "{:?}", raw.chunk_strings());
    let events = event_data(&text_of(&raw));
    assert_eq!(events.len(), SENT + 1, "{events:?}");
    let failed = &events[SENT];
    assert_eq!(failed["type"], "response.failed");
    assert_eq!(failed["sequence_number"], SENT);
    assert_eq!(failed["response"]["status"], "failed");
    assert_eq!(failed["response"]["id"], events[0]["response"]["id"]);
    assert!(
        failed["response"]["error"]["message"].is_string(),
        "{failed}"
    );
    // A cut answer is not kept.
    let again = post(&daemon, &body(true)).await;
    assert_ne!(again.header("x-promptd-cache"), Some("hit"));
    daemon.stop().await;
}

#[tokio::test]
async fn an_answer_as_received_is_kept_under_the_providers_id_and_continued_whole() {
    let upstream = FakeUpstream::always(fixtures::openai_responses()).await;
    let daemon = daemon(&upstream).await;
    let first = json!({"model": "openai/gpt-5", "instructions": "Be brief.", "input": "Hello"});
    let raw = raw_post_with(&daemon.socket, "/v1/responses", &first, &[]).await;
    assert_eq!(raw.status(), 200, "{:?}", raw.chunk_strings());
    let id = serde_json::from_str::<Value>(&text_of(&raw)).expect("json")["id"].clone();
    let id = id.as_str().expect("the provider's id");
    let kept = daemon.get(&format!("/v1/responses/{id}")).await;
    assert_eq!(kept.status, 200);
    assert_eq!(kept.body, fixtures::OPENAI_RESPONSES_JSON.as_bytes());
    // A hit is the same answer under the same id; deleted, a hit keeps it again.
    let path = format!("/v1/responses/{id}");
    let deleted = daemon.request(Method::DELETE, &path, None).await;
    assert_eq!(deleted.status, 200);
    let hit = raw_post_with(&daemon.socket, "/v1/responses", &first, &[]).await;
    assert_eq!(hit.header("x-promptd-cache"), Some("hit"));
    assert_eq!(daemon.get(&path).await.status, 200);
    assert_eq!(upstream.calls(), 1);

    let next = json!({"model": "openai/gpt-5", "previous_response_id": id,
        "input": [{"role": "user", "content": "And again"}]});
    let raw = raw_post_with(&daemon.socket, "/v1/responses", &next, &[]).await;
    assert_eq!(raw.status(), 200, "{:?}", raw.chunk_strings());
    let sent = upstream.last_request().expect("called");
    assert!(
        sent.body.get("previous_response_id").is_none(),
        "{}",
        sent.body
    );
    let input = sent.body["input"]
        .as_array()
        .expect("the whole conversation");
    let kinds: Vec<&str> = input.iter().filter_map(|i| i["type"].as_str()).collect();
    assert_eq!(kinds, ["message", "reasoning", "message"], "{input:?}");
    assert_eq!(input[0]["content"], "Hello");
    assert_eq!(
        input[1]["encrypted_content"],
        "gAAAAABoISQ24OyVRYbkYfukNwkkALqTDJZdaZhw"
    );
    assert_eq!(input[2]["content"][0]["text"], fixtures::HELLO);
    assert_eq!(input[3]["content"], "And again");
    daemon.stop().await;
}

#[tokio::test]
async fn a_forwarded_stream_is_kept_as_its_response_completed_said() {
    let upstream = FakeUpstream::always(fixtures::openai_responses_stream()).await;
    let daemon = daemon(&upstream).await;
    let raw = post(&daemon, &body(true).replace(r#""store":false,"#, "")).await;
    assert_eq!(raw.status(), 200, "{:?}", raw.chunk_strings());
    let events = event_data(&text_of(&raw));
    let completed = &events.last().expect("events")["response"];
    let id = completed["id"].as_str().expect("id");
    let kept = daemon.get(&format!("/v1/responses/{id}")).await;
    assert_eq!(kept.status, 200);
    assert_eq!(kept.json(), *completed);
    // Counted once the writer behind the answers has written it.
    wait_for_async("the kept response counted", || async {
        let status = daemon.get("/status").await.json();
        match status["responses"]["count"] == 1 {
            true => Ok(()),
            false => Err(status.to_string()),
        }
    })
    .await;
    let metrics = String::from_utf8_lossy(&daemon.get("/metrics").await.body).into_owned();
    assert!(metrics.contains("promptd_responses_kept 1"), "{metrics}");
    daemon.stop().await;
    // `store: false` keeps nothing.
    let upstream = FakeUpstream::always(fixtures::openai_responses_stream()).await;
    let other = self::daemon(&upstream).await;
    let raw = post(&other, &body(true)).await;
    assert_eq!(raw.status(), 200);
    let kept = other.get(&format!("/v1/responses/{id}")).await;
    assert_eq!(kept.status, 404);
    other.stop().await;
}
