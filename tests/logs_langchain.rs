//! LangChain runs from Parea's LangChain tracer (`POST /trace_log/langchain`, the SDK's
//! `VENDOR_LOG_ENDPOINT`) through the real daemon to a fake collector: spooled and shipped as
//! the bytes the tracer sent, to the same path upstream, sampled by the tracer's
//! `_log_sample_rate` like a trace log; other vendors and methods answered clearly.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::fake_upstream::{fixtures, Behavior, FakeUpstream, RecordedRequest};
use common::{providers_toml, TestDaemon, PREFIX};
use hyper::Method;
use serde_json::json;

/// A daemon whose logs go to `collector`, committing every 20 ms.
async fn daemon(collector: &FakeUpstream) -> (FakeUpstream, TestDaemon) {
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let toml = common::shipping_to(
        collector,
        &providers_toml(&openai.base_url(), &openai.base_url()),
    );
    let daemon = TestDaemon::start(&toml).await;
    (openai, daemon)
}

/// Wait until the collector got `n` requests.
async fn received(collector: &FakeUpstream, n: usize) -> Vec<RecordedRequest> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while collector.calls() < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "collector got {} of {n}",
            collector.calls()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    collector.requests()
}

async fn post_bytes(daemon: &TestDaemon, path: &str, body: &'static [u8]) -> common::Reply {
    daemon
        .request(
            Method::POST,
            &format!("{PREFIX}{path}"),
            Some(Bytes::from_static(body)),
        )
        .await
}

/// A run as the tracer posts it (`run.dict()` plus Parea's `_` fields, UUIDs as strings),
/// spelled the way no re-encoding would spell it: spacing, `1.0`, nulls, nested runs.
const RUN: &[u8] = br#"{ "id": "6f1c0f6e-0000-4000-8000-000000000001", "name": "RunnableSequence",
  "run_type": "chain", "trace_id": "6f1c0f6e-0000-4000-8000-000000000001", "parent_run_id": null,
  "start_time": "2024-05-01T10:00:00.000001", "end_time": "2024-05-01T10:00:01.5",
  "inputs": {"question": "Hi"}, "outputs": {"output": "Hello"}, "error": null,
  "child_runs": [{"id": "6f1c0f6e-0000-4000-8000-000000000002", "run_type": "llm",
                  "extra": {"invocation_params": {"temperature": 1.0}}, "child_runs": []}],
  "_parea_root_trace_id": null, "_session_id": null, "_tags": [], "_metadata": {},
  "_end_user_identifier": null, "_deployment_id": null, "_log_sample_rate": 1.0,
  "_parea_parent_trace_id": null, "project_uuid": "p-1" }"#;

#[tokio::test]
async fn a_langchain_run_is_shipped_as_sent_to_the_same_path_upstream() {
    let collector = FakeUpstream::always(Behavior::json(200, "{}")).await;
    let (_openai, daemon) = daemon(&collector).await;
    let reply = post_bytes(&daemon, "/trace_log/langchain", RUN).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.json()["status"], "ok");
    assert!(
        reply.json()["spool_id"].as_u64().is_some(),
        "{}",
        reply.json()
    );

    let requests = received(&collector, 1).await;
    let sent = &requests[0];
    assert_eq!(sent.method, "POST");
    assert_eq!(sent.path, "/v1/trace_log/langchain");
    assert_eq!(
        sent.raw,
        Bytes::from_static(RUN),
        "the bytes as the tracer sent them"
    );
    assert_eq!(sent.header("x-api-key"), Some("pk-test"));
    assert_eq!(sent.header("content-type"), Some("application/json"));
    let key = sent.header("idempotency-key").expect("idempotency key");
    assert!(
        key.starts_with("6f1c0f6e-0000-4000-8000-000000000001-"),
        "keyed by the run's trace: {key}"
    );
    daemon.stop().await;
}

#[tokio::test]
async fn a_langchain_run_is_sampled_by_its_parea_root_like_a_trace_log() {
    let collector = FakeUpstream::always(Behavior::json(200, "{}")).await;
    let (_openai, daemon) = daemon(&collector).await;
    let roots = (0..100).map(|i| format!("root-{i}"));
    let dropped = roots
        .clone()
        .find(|r| !promptd::logs::sampled_in(r, 0.5))
        .expect("a dropped root");
    let kept = roots
        .clone()
        .find(|r| promptd::logs::sampled_in(r, 0.5))
        .expect("a kept root");
    for root in [&dropped, &kept] {
        // A chain run inside a Parea trace: `_parea_root_trace_id` is that trace's root.
        let run = json!({"id": format!("{root}-run"), "trace_id": format!("{root}-run"),
            "_parea_root_trace_id": root, "_log_sample_rate": 0.5});
        let reply = daemon.post("/trace_log/langchain", &run).await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        let expected = if root == &kept { "ok" } else { "sampled_out" };
        assert_eq!(reply.json()["status"], expected, "{root}");
        // The Parea record of the same trace is kept or dropped with it.
        let record = json!({"trace_id": root, "log_sample_rate": 0.5});
        assert_eq!(
            daemon.post("/trace_log", &record).await.json()["status"],
            expected
        );
    }
    // Without a Parea root, the run's own LangChain trace decides; a rate of 0 drops it.
    let alone = json!({"id": "a-1", "trace_id": "a-1", "_log_sample_rate": 0.0});
    let reply = daemon.post("/trace_log/langchain", &alone).await;
    assert_eq!(reply.json()["status"], "sampled_out");
    assert_eq!(
        daemon
            .post("/trace_log", &json!({"trace_id": "marker"}))
            .await
            .status,
        200
    );
    let requests = received(&collector, 3).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let shipped: Vec<(String, String)> = collector
        .requests()
        .iter()
        .map(|r| (r.path.clone(), r.body["id"].to_string()))
        .collect();
    assert_eq!(requests.len(), 3, "{shipped:?}");
    assert_eq!(collector.requests().len(), 3, "{shipped:?}");
    assert!(
        shipped.contains(&("/v1/trace_log/langchain".into(), format!("\"{kept}-run\""))),
        "{shipped:?}"
    );
    daemon.stop().await;
}

#[tokio::test]
async fn other_vendors_methods_and_bodies_are_answered_clearly() {
    let collector = FakeUpstream::always(Behavior::json(200, "{}")).await;
    let (_openai, daemon) = daemon(&collector).await;

    let reply = daemon
        .post("/trace_log/llamaindex", &json!({"id": "x"}))
        .await;
    assert_eq!(reply.status, 501, "{:?}", reply.body);
    assert_eq!(reply.error_type(), "not_implemented");
    let message = reply.error_message();
    assert!(
        message.contains("POST /api/parea/v1/trace_log/llamaindex")
            && message.contains("langchain"),
        "names the route and what is served: {message}"
    );

    let reply = daemon
        .request(
            Method::PUT,
            &format!("{PREFIX}/trace_log/langchain"),
            Some(Bytes::from_static(b"{}")),
        )
        .await;
    assert_eq!(reply.status, 405, "the path is served, not with PUT");
    assert_eq!(reply.error_type(), "method_not_allowed");

    for (body, status, kind) in [
        (&b"{\"id\": "[..], 400, "invalid_json"),
        (&b"[1, 2]"[..], 422, "invalid_request"),
        (&b"\"run\""[..], 422, "invalid_request"),
        (
            &b"{\"_log_sample_rate\": \"half\"}"[..],
            422,
            "invalid_request",
        ),
    ] {
        let reply = daemon
            .request(
                Method::POST,
                &format!("{PREFIX}/trace_log/langchain"),
                Some(Bytes::copy_from_slice(body)),
            )
            .await;
        assert_eq!(reply.status, status, "{}", String::from_utf8_lossy(body));
        assert_eq!(reply.error_type(), kind, "{}", reply.error_message());
    }
    assert_eq!(
        daemon.get("/logs/status").await.json()["appended"],
        0,
        "nothing refused was spooled"
    );
    daemon.stop().await;
}
