//! A stream rendered by a door from another wire — Anthropic's Messages or OpenAI's Responses,
//! the call translated to an OpenAI-kind provider's chat completions — starts as soon as the
//! upstream has answered, with the door's opening events (`message_start`; `response.created`),
//! not with the first text: an OpenAI upstream's first chunk often holds only the role, its text
//! a token later. The fake provider sends that role-only chunk and then holds its text until
//! the client has seen the start (it waited a chunk longer before: +6.2 ms at 5 ms between
//! chunks). Nothing here measures time: the test waits for the start, then opens the gate.

mod common;

use common::fake_upstream::{fixtures, FakeUpstream, Gate};
use common::{providers_toml, TestDaemon};
use serde_json::{json, Value};

/// What a door's translated stream showed while the provider held its text, and the whole
/// answer's events after: their names, and their data.
struct Seen {
    before: String,
    names: Vec<String>,
    data: Vec<Value>,
}

/// Stream `body` through `path` (with `headers`) to an OpenAI provider that sends its role-only
/// chunk, then holds its text until the client has read `opening`.
async fn started_before_text(
    path: &str,
    headers: &[(&str, &str)],
    body: Value,
    opening: &str,
) -> Seen {
    let gate = Gate::new();
    let openai = FakeUpstream::always(fixtures::openai_stream().held_after(1, &gate)).await;
    let anthropic = FakeUpstream::always(fixtures::anthropic_stream()).await;
    let daemon =
        TestDaemon::start(&providers_toml(&openai.base_url(), &anthropic.base_url())).await;
    let opened = common::read_until(&daemon.socket, path, &body, headers, opening).await;
    gate.open();
    let before = opened.started_ok();
    let raw = opened.rest().await;
    daemon.stop().await;
    let body = String::from_utf8_lossy(&raw.chunks.concat()).into_owned();
    let names = body
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .map(str::to_owned)
        .collect();
    let data = body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).expect("event data is JSON"))
        .collect();
    Seen {
        before,
        names,
        data,
    }
}

/// Before the provider's text the client had the stream's opening event `first` and no
/// `block` yet; the whole stream opens with `first` once and ends with `last`.
fn started_before_blocks(seen: &Seen, first: &str, block: &str, last: &str) {
    assert!(
        seen.before.contains(&format!("event: {first}")),
        "{}",
        seen.before
    );
    assert!(
        !seen.before.contains(block),
        "no {block} before the provider sent its text: {}",
        seen.before
    );
    assert_eq!(
        seen.names.first().map(String::as_str),
        Some(first),
        "{:?}",
        seen.names
    );
    assert_eq!(seen.names.iter().filter(|n| *n == first).count(), 1);
    assert_eq!(
        seen.names.last().map(String::as_str),
        Some(last),
        "{:?}",
        seen.names
    );
}

#[tokio::test]
async fn a_translated_messages_stream_starts_when_the_upstream_answers() {
    let body = json!({"model": "openai/gpt-x", "max_tokens": 64, "stream": true,
        "messages": [{"role": "user", "content": "Hello"}]});
    let headers = [
        ("anthropic-version", "2023-06-01"),
        ("x-promptd-cache", "bypass"),
    ];
    let seen = started_before_text("/v1/messages", &headers, body, "event: ping").await;
    started_before_blocks(&seen, "message_start", "content_block", "message_stop");
    let text: String = seen
        .data
        .iter()
        .filter_map(|v| v["delta"]["text"].as_str())
        .collect();
    assert_eq!(text, fixtures::OPENAI_DELTAS.concat());
}

#[tokio::test]
async fn a_translated_responses_stream_starts_when_the_upstream_answers() {
    let body = json!({"model": "openai/gpt-x", "stream": true, "store": false,
        "input": [{"role": "user", "content": "Hello"}]});
    let headers = [("x-promptd-cache", "bypass")];
    let seen = started_before_text(
        "/v1/responses",
        &headers,
        body,
        "event: response.in_progress",
    )
    .await;
    started_before_blocks(
        &seen,
        "response.created",
        "output_item",
        "response.completed",
    );
    let text: String = seen
        .data
        .iter()
        .filter(|v| v["type"] == "response.output_text.delta")
        .filter_map(|v| v["delta"].as_str())
        .collect();
    assert_eq!(text, fixtures::OPENAI_DELTAS.concat());
}
