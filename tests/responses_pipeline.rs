//! The Responses door on the same pipeline as the other doors, with a provider that serves the
//! Responses API: identical streams in flight make one call and each client gets the provider's
//! events; an expired answer is served (as received) when the provider fails; the log record
//! names the door and carries the `x-promptd-*` headers; the metrics label the route.

mod common;

use std::sync::Arc;

use common::fake_upstream::{fixtures, Behavior, FakeUpstream, Gate};
use common::wait::{wait_for_async, wait_until};
use common::{raw_post_bytes, raw_post_with, RawResponse, TestDaemon};
use serde_json::{json, Value};

fn provider(url: &str) -> String {
    format!(
        "[providers.openai]\nkind = \"openai\"\nbase_url = \"{url}\"\napi_key = \"sk-test-openai\"\n\
         responses = true\nmax_retries = 0\ntimeout = \"5s\"\n"
    )
}

fn hello(stream: bool) -> Value {
    json!({"model": "openai/gpt-5", "stream": stream, "instructions": "Be brief.",
        "input": "Hello", "store": false})
}

fn text_of(raw: &RawResponse) -> String {
    raw.chunk_strings().concat()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_streams_in_flight_make_one_call_and_each_gets_the_providers_events() {
    const JOINERS: u64 = 3;
    let gate = Gate::new();
    let upstream =
        FakeUpstream::always(fixtures::openai_responses_stream().held_after(1, &gate)).await;
    let daemon = Arc::new(TestDaemon::start(&provider(&upstream.base_url())).await);
    let post = |daemon: Arc<TestDaemon>| {
        tokio::spawn(async move {
            raw_post_with(&daemon.socket, "/v1/responses", &hello(true), &[]).await
        })
    };
    let mut clients = vec![post(Arc::clone(&daemon))];
    wait_until("the first call reaches the provider", || {
        upstream.calls() == 1
    })
    .await;
    clients.extend((0..JOINERS).map(|_| post(Arc::clone(&daemon))));
    joined(&daemon, JOINERS).await;
    gate.open();
    for client in clients {
        let raw = client.await.expect("client");
        assert_eq!(raw.status(), 200, "{:?}", raw.chunk_strings());
        assert_eq!(text_of(&raw), fixtures::OPENAI_RESPONSES_STREAM_SSE);
    }
    assert_eq!(upstream.calls(), 1);
}

/// Wait until `n` requests have joined a call in flight (`/cache/stats`' `coalesced`).
async fn joined(daemon: &TestDaemon, n: u64) {
    wait_for_async("the joiners to join the call in flight", || async {
        let stats = daemon.get("/cache/stats").await.json();
        match stats["coalesced"].as_u64() == Some(n) {
            true => Ok(()),
            false => Err(stats.to_string()),
        }
    })
    .await
}

#[tokio::test]
async fn an_expired_answer_is_served_as_received_when_the_provider_fails() {
    let upstream =
        FakeUpstream::first_then(fixtures::openai_responses(), fixtures::openai_500()).await;
    let toml = format!("[cache]\nttl = \"1ms\"\n{}", provider(&upstream.base_url()));
    let daemon = TestDaemon::start(&toml).await;
    let body = serde_json::to_vec(&hello(false)).expect("encode");
    let first = raw_post_bytes(&daemon.socket, "/v1/responses", &body, &[]).await;
    assert_eq!(first.status(), 200, "{:?}", first.chunk_strings());
    // Past the TTL (a slower machine only makes it more expired).
    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    let stale = raw_post_bytes(&daemon.socket, "/v1/responses", &body, &[]).await;
    assert_eq!(stale.status(), 200, "{:?}", stale.chunk_strings());
    assert_eq!(stale.header("x-promptd-cache"), Some("stale"));
    assert_eq!(text_of(&stale), fixtures::OPENAI_RESPONSES_JSON);
    assert_eq!(upstream.calls(), 2);
    daemon.stop().await;
}

#[tokio::test]
async fn the_record_names_the_door_and_the_metrics_label_its_route() {
    let upstream = FakeUpstream::always(fixtures::openai_responses_stream()).await;
    let collector = FakeUpstream::always(Behavior::json(200, "{}")).await;
    let toml = format!(
        "{}\n{}",
        common::shipping_to(&collector, ""),
        provider(&upstream.base_url())
    );
    let daemon = TestDaemon::start(&toml).await;
    let body = serde_json::to_vec(&hello(true)).expect("encode");
    let headers = [
        ("x-promptd-trace-id", "t-resp"),
        ("x-promptd-tags", "[\"codex\"]"),
    ];
    let raw = raw_post_bytes(&daemon.socket, "/v1/responses", &body, &headers).await;
    assert_eq!(raw.status(), 200, "{:?}", raw.chunk_strings());
    assert_eq!(raw.header("x-promptd-trace-id"), Some("t-resp"));
    wait_until("the record is shipped", || collector.calls() > 0).await;
    let record = collector.requests()[0].body.clone();
    assert_eq!(record["trace_id"], "t-resp", "{record}");
    assert_eq!(record["tags"], json!(["codex"]), "{record}");
    assert_eq!(
        record["metadata"]["promptd_route"], "openai_responses",
        "{record}"
    );
    assert_eq!(record["output"], fixtures::HELLO, "{record}");
    let metrics = String::from_utf8_lossy(&daemon.get("/metrics").await.body).into_owned();
    assert!(
        metrics
            .lines()
            .any(|l| l.contains("route=\"openai_responses\"") && l.contains("status=\"200\"")),
        "{metrics}"
    );
    daemon.stop().await;
}

/// A stream shared by two doors: whichever leads, the other gets its own wire whole (a door
/// that renders the model decodes the chunks itself when the leader did not keep their events).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_shared_across_doors_is_whole_in_each_wire_whichever_leads() {
    let chat = json!({"model": "chat/gpt-5", "stream": true, "messages": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}]});
    let responses = json!({"model": "chat/gpt-5", "stream": true, "instructions": "Be brief.",
        "input": "Hello"});
    for (leader, joiner) in [
        (
            ("/v1/chat/completions", &chat),
            ("/v1/responses", &responses),
        ),
        (
            ("/v1/responses", &responses),
            ("/v1/chat/completions", &chat),
        ),
    ] {
        let gate = Gate::new();
        let upstream = FakeUpstream::always(fixtures::openai_stream().held_after(1, &gate)).await;
        let toml = format!(
            "[providers.chat]\nkind = \"openai\"\nbase_url = \"{}\"\napi_key = \"k\"\n\
             max_retries = 0\ntimeout = \"5s\"\n",
            upstream.base_url()
        );
        let daemon = Arc::new(TestDaemon::start(&toml).await);
        let post = |(path, body): (&'static str, &Value)| {
            let (daemon, body) = (Arc::clone(&daemon), body.clone());
            tokio::spawn(async move { raw_post_with(&daemon.socket, path, &body, &[]).await })
        };
        let first = post(leader);
        wait_until("the leader reaches the provider", || upstream.calls() == 1).await;
        let second = post(joiner);
        joined(&daemon, 1).await;
        gate.open();
        for (client, path) in [(first, leader.0), (second, joiner.0)] {
            let raw = client.await.expect("client");
            assert_eq!(raw.status(), 200, "{path}: {:?}", raw.chunk_strings());
            let text = text_of(&raw);
            let got: String = text
                .split("\n\n")
                .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
                .filter_map(|d| serde_json::from_str::<Value>(d).ok())
                .filter_map(|v| {
                    if path == "/v1/responses" {
                        (v["type"] == "response.output_text.delta")
                            .then(|| v["delta"].as_str().map(str::to_owned))
                            .flatten()
                    } else {
                        v["choices"][0]["delta"]["content"]
                            .as_str()
                            .map(str::to_owned)
                    }
                })
                .collect();
            assert_eq!(got, fixtures::HELLO, "{path}: {text}");
        }
        assert_eq!(upstream.calls(), 1);
    }
}
