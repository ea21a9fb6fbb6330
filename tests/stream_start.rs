//! A stream rendered by a door from another wire — Anthropic's Messages or OpenAI's Responses,
//! the call translated to an OpenAI-kind provider's chat completions — starts as soon as the
//! upstream has answered, with the door's opening events (`message_start`; `response.created`),
//! not with the first text: an OpenAI upstream's first chunk often holds only the role, its text
//! a token later. The fake provider sends that role-only chunk and then holds its text until
//! the client has seen the start (it waited a chunk longer before: +6.2 ms at 5 ms between
//! chunks). The bound below only stops a hang if the stream never starts.

mod common;

use std::time::Duration;

use common::fake_upstream::{fixtures, FakeUpstream, Gate};
use common::{providers_toml, TestDaemon};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Send `body` to `path` over a raw connection, read until `opening` is seen while the provider
/// holds its text, then open the gate and read the rest: what came before the gate opened, and
/// the whole answer.
async fn started_before_text(
    path: &str,
    extra: &str,
    body: Value,
    opening: &str,
) -> (String, String) {
    let gate = Gate::new();
    let openai = FakeUpstream::always(fixtures::openai_stream().held_after(1, &gate)).await;
    let anthropic = FakeUpstream::always(fixtures::anthropic_stream()).await;
    let daemon =
        TestDaemon::start(&providers_toml(&openai.base_url(), &anthropic.base_url())).await;
    let body = serde_json::to_vec(&body).expect("encode");
    let mut conn = tokio::net::UnixStream::connect(&daemon.socket)
        .await
        .expect("connect");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.expect("write");
    conn.write_all(&body).await.expect("write");
    let mut seen = Vec::new();
    let started = tokio::time::timeout(Duration::from_secs(60), async {
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&seen).contains(opening) {
            let n = conn.read(&mut buf).await.expect("read");
            assert!(n > 0, "closed before the stream started");
            seen.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    gate.open();
    let before = String::from_utf8_lossy(&seen).into_owned();
    assert!(
        started.is_ok(),
        "the stream did not start while the provider held its text: {before:?}"
    );
    conn.read_to_end(&mut seen).await.expect("read the rest");
    daemon.stop().await;
    (before, String::from_utf8_lossy(&seen).into_owned())
}

#[tokio::test]
async fn a_translated_messages_stream_starts_when_the_upstream_answers() {
    let body = json!({"model": "openai/gpt-x", "max_tokens": 64, "stream": true,
        "messages": [{"role": "user", "content": "Hello"}]});
    let (before, whole) = started_before_text(
        "/v1/messages",
        "anthropic-version: 2023-06-01\r\nx-promptd-cache: bypass\r\n",
        body,
        "event: ping",
    )
    .await;
    assert!(before.starts_with("HTTP/1.1 200"), "{before}");
    assert!(before.contains("event: message_start"), "{before}");
    assert!(
        !before.contains("content_block"),
        "no block before the provider sent its text: {before}"
    );
    // The rest is the whole answer, in Anthropic's order.
    let names: Vec<&str> = whole
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(names.first(), Some(&"message_start"), "{whole}");
    assert_eq!(names.iter().filter(|n| **n == "message_start").count(), 1);
    assert_eq!(names.last(), Some(&"message_stop"), "{whole}");
    let text: String = whole
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| v["delta"]["text"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(text, fixtures::OPENAI_DELTAS.concat());
}

#[tokio::test]
async fn a_translated_responses_stream_starts_when_the_upstream_answers() {
    let body = json!({"model": "openai/gpt-x", "stream": true, "store": false,
        "input": [{"role": "user", "content": "Hello"}]});
    let (before, whole) = started_before_text(
        "/v1/responses",
        "x-promptd-cache: bypass\r\n",
        body,
        "event: response.in_progress",
    )
    .await;
    assert!(before.starts_with("HTTP/1.1 200"), "{before}");
    assert!(before.contains("event: response.created"), "{before}");
    assert!(
        !before.contains("output_item"),
        "no item before the provider sent its text: {before}"
    );
    let names: Vec<&str> = whole
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(names.first(), Some(&"response.created"), "{whole}");
    assert_eq!(
        names.iter().filter(|n| **n == "response.created").count(),
        1
    );
    assert_eq!(names.last(), Some(&"response.completed"), "{whole}");
    let text: String = whole
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter(|v| v["type"] == "response.output_text.delta")
        .filter_map(|v| v["delta"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(text, fixtures::OPENAI_DELTAS.concat());
}
