//! `POST /completion/stream`: exact event framing (one event per HTTP chunk), every upstream
//! stream shape, and failures before and after the stream started.

mod common;

use std::time::Duration;

use common::fake_upstream::{fixtures, Behavior, FakeUpstream};
use common::{anthropic_hello, openai_hello, providers_toml, RawResponse, TestDaemon};
use serde_json::{json, Value};

fn chunk_event(text: &str) -> String {
    format!(
        "data: {}\r\n\r\n",
        json!({"chunk": text})
            .to_string()
            .replacen("\":", "\": ", 1)
    )
}

/// The `chunk` texts of the events after the id event, and the error of a final error event.
fn deltas(raw: &RawResponse) -> (Vec<String>, Option<String>) {
    let mut texts = Vec::new();
    let mut error = None;
    for chunk in raw.chunk_strings().iter().skip(1) {
        let data = chunk
            .strip_prefix("data: ")
            .and_then(|c| c.strip_suffix("\r\n\r\n"))
            .unwrap_or_else(|| panic!("badly framed event {chunk:?}"));
        let value: Value = serde_json::from_str(data).expect("event is JSON");
        if let Some(e) = value.get("error") {
            error = Some(e.as_str().unwrap_or_default().to_owned());
        } else {
            texts.push(value["chunk"].as_str().expect("chunk").to_owned());
        }
    }
    (texts, error)
}

async fn daemon(openai: Behavior, anthropic: Behavior) -> (TestDaemon, FakeUpstream, FakeUpstream) {
    let openai = FakeUpstream::always(openai).await;
    let anthropic = FakeUpstream::always(anthropic).await;
    let daemon =
        TestDaemon::start(&providers_toml(&openai.base_url(), &anthropic.base_url())).await;
    (daemon, openai, anthropic)
}

#[tokio::test]
async fn openai_stream_is_framed_exactly_one_event_per_chunk() {
    let (daemon, openai, _a) =
        daemon(fixtures::openai_stream(), fixtures::anthropic_stream()).await;
    let mut body = openai_hello();
    body["trace_id"] = json!("t-1");
    let raw = daemon.stream(&body).await;
    assert_eq!(raw.status(), 200, "{}", raw.head);
    let head = raw.head.to_ascii_lowercase();
    assert!(head.contains("content-type: text/event-stream"), "{head}");
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    let mut expected = vec!["data: ID_STARTt-1ID_END\r\n\r\n".to_owned()];
    expected.extend(fixtures::OPENAI_DELTAS.iter().map(|d| chunk_event(d)));
    assert_eq!(raw.chunk_strings(), expected);
    assert_eq!(fixtures::OPENAI_DELTAS.concat(), fixtures::HELLO);

    let sent = openai.last_request().expect("called");
    assert_eq!(sent.body["stream"], true);
    assert_eq!(sent.body["stream_options"], json!({"include_usage": true}));
    daemon.stop().await;
}

#[tokio::test]
async fn generated_trace_id_leads_the_stream() {
    let (daemon, _o, _a) = daemon(fixtures::openai_stream(), fixtures::anthropic_stream()).await;
    let raw = daemon.stream(&openai_hello()).await;
    let first = &raw.chunk_strings()[0];
    let id = first
        .strip_prefix("data: ID_START")
        .and_then(|s| s.strip_suffix("ID_END\r\n\r\n"))
        .expect("id event");
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    daemon.stop().await;
}

#[tokio::test]
async fn crlf_stream_split_across_frames_gives_the_same_deltas() {
    let (daemon, _o, _a) =
        daemon(fixtures::openai_stream_crlf(), fixtures::anthropic_stream()).await;
    let raw = daemon.stream(&openai_hello()).await;
    let (texts, error) = deltas(&raw);
    assert_eq!(error, None);
    assert_eq!(texts.concat(), fixtures::HELLO);
    daemon.stop().await;
}

#[tokio::test]
async fn anthropic_stream_deltas() {
    let (daemon, _o, anthropic) =
        daemon(fixtures::openai_stream(), fixtures::anthropic_stream()).await;
    let raw = daemon.stream(&anthropic_hello()).await;
    assert_eq!(raw.status(), 200);
    let (texts, error) = deltas(&raw);
    assert_eq!(error, None);
    assert_eq!(texts, fixtures::ANTHROPIC_DELTAS);
    assert_eq!(
        anthropic.last_request().expect("called").body["stream"],
        true
    );
    daemon.stop().await;
}

#[tokio::test]
async fn streamed_tool_calls_end_with_the_calls_as_json() {
    let (daemon, _o, _a) = daemon(
        fixtures::openai_tool_call_stream(),
        fixtures::anthropic_tool_use_stream(),
    )
    .await;
    let raw = daemon.stream(&openai_hello()).await;
    let (texts, error) = deltas(&raw);
    assert_eq!(error, None);
    let calls: Value = serde_json::from_str(texts.last().expect("a delta")).expect("JSON");
    assert_eq!(
        calls,
        json!([{"id": fixtures::OPENAI_TOOL_CALL_ID, "type": "function",
            "function": {"name": fixtures::TOOL_NAME, "arguments": fixtures::OPENAI_TOOL_ARGS}}])
    );
    // A replay from the cache ends the same way: the text deltas, then the calls.
    let replay = daemon.stream(&openai_hello()).await;
    assert!(
        replay.head.contains("x-promptd-cache: hit"),
        "{}",
        replay.head
    );
    assert_eq!(deltas(&replay), (texts, None));

    let raw = daemon.stream(&anthropic_hello()).await;
    let (texts, error) = deltas(&raw);
    assert_eq!(error, None);
    assert_eq!(
        texts[..texts.len() - 1].concat(),
        fixtures::ANTHROPIC_TOOL_TEXT
    );
    let calls: Value = serde_json::from_str(texts.last().expect("a delta")).expect("JSON");
    assert_eq!(calls[0]["id"], fixtures::ANTHROPIC_TOOL_USE_ID);
    let replay = daemon.stream(&anthropic_hello()).await;
    assert!(
        replay.head.contains("x-promptd-cache: hit"),
        "{}",
        replay.head
    );
    assert_eq!(deltas(&replay), (texts.clone(), None));
    let args: Value =
        serde_json::from_str(calls[0]["function"]["arguments"].as_str().expect("args"))
            .expect("args JSON");
    assert_eq!(args, json!({"city": "Paris", "unit": "c"}));
    daemon.stop().await;
}

#[tokio::test]
async fn a_cut_upstream_ends_with_an_error_event_never_silently() {
    let (daemon, _o, _a) = daemon(
        fixtures::openai_stream_cut(),
        fixtures::anthropic_overloaded_midstream(),
    )
    .await;
    let raw = daemon.stream(&openai_hello()).await;
    assert_eq!(raw.status(), 200);
    let (texts, error) = deltas(&raw);
    assert_eq!(texts, vec!["Hello", "!", " How"]);
    let error = error.expect("an error event ends the stream");
    assert!(error.contains("openai"), "{error}");
    let last = raw.chunk_strings().last().cloned().unwrap_or_default();
    assert!(
        last.starts_with("data: {\"chunk\": \"\", \"error\": "),
        "{last}"
    );

    let raw = daemon.stream(&anthropic_hello()).await;
    let (texts, error) = deltas(&raw);
    assert_eq!(texts, vec!["Hello"]);
    assert!(error.expect("error event").contains("Overloaded"));
    daemon.stop().await;
}

#[tokio::test]
async fn an_error_event_from_openai_mid_stream_is_forwarded() {
    let (daemon, _o, _a) = daemon(
        fixtures::openai_stream_error_event(),
        fixtures::anthropic_stream(),
    )
    .await;
    let raw = daemon.stream(&openai_hello()).await;
    let (texts, error) = deltas(&raw);
    assert_eq!(texts, vec!["Hello", "!"]);
    assert!(error
        .expect("error event")
        .contains("The server had an error"));
    daemon.stop().await;
}

#[tokio::test]
async fn failures_before_the_first_delta_are_http_errors() {
    let (daemon, _o, _a) = daemon(fixtures::openai_429(), fixtures::anthropic_400()).await;
    let raw = daemon.stream(&openai_hello()).await;
    assert_eq!(raw.status(), 429, "{}", raw.head);
    assert!(raw
        .head
        .to_ascii_lowercase()
        .contains("content-type: application/json"));
    let raw = daemon.stream(&anthropic_hello()).await;
    assert_eq!(raw.status(), 400);
    let body: Value = serde_json::from_slice(&raw.chunks.concat()).expect("JSON error");
    assert_eq!(body["error"]["type"], "provider_error");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap_or("")
        .contains("max_tokens"));
    daemon.stop().await;
}

/// A stream cut before the upstream's first event is a 502; cut after it (here its role-only
/// chunk: the client's stream has started) it ends with an error event and no text.
#[tokio::test]
async fn an_upstream_cut_before_its_first_event_is_a_502_after_it_an_error_event() {
    let cut_after = |frames: usize| Behavior::SseCut {
        frames: common::fake_upstream::sse_frames(fixtures::OPENAI_STREAM_SSE)
            .into_iter()
            .take(frames)
            .collect(),
        delay: Duration::ZERO,
    };
    let (before, _o, _a) = daemon(cut_after(0), fixtures::anthropic_stream()).await;
    let raw = before.stream(&openai_hello()).await;
    assert_eq!(raw.status(), 502, "{}", raw.head);
    before.stop().await;

    let (after, _o, _a) = daemon(cut_after(1), fixtures::anthropic_stream()).await;
    let raw = after.stream(&openai_hello()).await;
    assert_eq!(raw.status(), 200, "{}", raw.head);
    let (texts, error) = deltas(&raw);
    assert_eq!(texts, Vec::<String>::new());
    assert!(
        error.is_some_and(|e| !e.is_empty()),
        "an error event ends it"
    );
    after.stop().await;
}

#[tokio::test]
async fn deprecated_stream_flag_on_completion_streams() {
    let (daemon, _o, _a) = daemon(fixtures::openai_stream(), fixtures::anthropic_stream()).await;
    let mut body = openai_hello();
    body["stream"] = json!(true);
    let raw = daemon.post_chunks("/completion", &body).await;
    let (texts, error) = deltas(&raw);
    assert_eq!(error, None);
    assert_eq!(texts.concat(), fixtures::HELLO);
    daemon.stop().await;
}

#[tokio::test]
async fn a_client_leaving_mid_stream_cancels_the_upstream_call() {
    let slow = fixtures::openai_stream().with_frame_delay(Duration::from_millis(100));
    let (daemon, openai, _a) = daemon(slow, fixtures::anthropic_stream()).await;
    let mut request = openai_hello();
    request["cache"] = json!(false);
    common::leave_after_first_bytes(&daemon.socket, "/api/parea/v1/completion/stream", &request)
        .await;
    // The daemon hangs up on the provider too, long before the 1.3 s stream would end.
    let deadline = tokio::time::Instant::now() + Duration::from_millis(900);
    while openai.abandoned_streams() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "upstream call was not cancelled"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The daemon keeps serving.
    let raw = daemon.stream(&openai_hello()).await;
    let (texts, error) = deltas(&raw);
    assert_eq!(error, None);
    assert_eq!(texts.concat(), fixtures::HELLO);
    assert_eq!(openai.calls(), 2);
    daemon.stop().await;
}

#[tokio::test]
async fn a_cacheable_stream_is_read_to_the_end_and_stored_when_the_client_leaves() {
    let slow = fixtures::openai_stream().with_frame_delay(Duration::from_millis(30));
    let (daemon, openai, _a) = daemon(slow, fixtures::anthropic_stream()).await;
    let request = openai_hello();
    common::leave_after_first_bytes(&daemon.socket, "/api/parea/v1/completion/stream", &request)
        .await;
    // The upstream stream runs to its end and the answer is cached: the same request is then a
    // hit, replayed event by event, with no second provider call.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while daemon.get("/cache/stats").await.json()["entries"] != 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "answer never cached"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let raw = daemon.stream(&request).await;
    assert!(
        raw.head
            .to_ascii_lowercase()
            .contains("x-promptd-cache: hit"),
        "{}",
        raw.head
    );
    let (texts, error) = deltas(&raw);
    assert_eq!(error, None);
    assert_eq!(texts, fixtures::OPENAI_DELTAS);
    assert_eq!(openai.calls(), 1);
    assert_eq!(openai.abandoned_streams(), 0);
    daemon.stop().await;
}

/// The stream starts (its head and the id event) as soon as the upstream has answered — here
/// with OpenAI's role-only first chunk — not with the first text: the fake provider sends its
/// text only once the client has seen that start (it waited a chunk longer before: 7.7 ms p50
/// at 5 ms between chunks). The bound below only stops a hang if the stream never starts.
#[tokio::test]
async fn parea_stream_starts_when_the_upstream_answers_not_at_its_first_text() {
    use common::fake_upstream::Gate;

    let gate = Gate::new();
    let (daemon, _openai, _a) = daemon(
        fixtures::openai_stream().held_after(1, &gate),
        fixtures::anthropic_stream(),
    )
    .await;
    let mut request = openai_hello();
    request["trace_id"] = json!("t-early");
    request["cache"] = json!(false);
    let opened = common::read_until(
        &daemon.socket,
        "/api/parea/v1/completion/stream",
        &request,
        &[],
        "ID_END",
    )
    .await;
    gate.open();
    let text = opened.started_ok();
    assert!(text.contains("ID_STARTt-earlyID_END"), "{text}");
    assert!(
        !text.contains("\"chunk\""),
        "no text before the provider sent it: {text}"
    );
    let raw = opened.rest().await;
    let (texts, error) = deltas(&raw);
    assert_eq!(error, None);
    assert_eq!(texts.concat(), fixtures::OPENAI_DELTAS.concat());
}
