//! Log records through the real daemon to a fake collector: the record of a completion (exact
//! fields, no key), cache hits, failures and streams, the omit and sample rules, client
//! records with their updates and feedback in order, `/logs/status`, and reading a record back
//! with `GET /logs/trace/{trace_id}` while the spool holds it.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::fake_upstream::{fixtures, Behavior, FakeUpstream, RecordedRequest};
use common::{openai_hello, providers_toml, TestDaemon};
use serde_json::{json, Value};

fn collector_ok() -> Behavior {
    Behavior::json(200, "{}")
}

/// A daemon whose logs go to `collector`, committing every 20 ms.
async fn daemon(openai: &FakeUpstream, collector: &FakeUpstream) -> TestDaemon {
    let toml = common::shipping_to(
        collector,
        &providers_toml(&openai.base_url(), &openai.base_url()),
    );
    TestDaemon::start(&toml).await
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

#[tokio::test]
async fn a_completion_is_logged_with_every_field_and_no_key() {
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let collector = FakeUpstream::always(collector_ok()).await;
    let daemon = daemon(&openai, &collector).await;
    let body = json!({
        "trace_id": "t-1", "parent_trace_id": "p-1", "root_trace_id": "r-1",
        "project_name": "demo", "end_user_identifier": "u-1", "metadata": {"k": "v"},
        "tags": ["a"], "target": "Hi", "experiment_uuid": "e-1", "eval_metric_ids": [3],
        "provider_api_key": "sk-secret-from-request",
        "llm_configuration": {"model": "gpt-4o-mini", "provider": "openai",
            "model_params": {"temp": 0.5},
            "messages": [{"role": "user", "content": "Hello {{name}}"}]},
        "llm_inputs": {"name": "Ada"}
    });
    assert_eq!(daemon.post("/completion", &body).await.status, 200);
    let requests = received(&collector, 1).await;
    let sent = &requests[0];
    assert_eq!(sent.method, "POST");
    assert_eq!(sent.path, "/v1/trace_log");
    assert_eq!(sent.header("x-api-key"), Some("pk-test"));
    let key = sent
        .header("idempotency-key")
        .expect("idempotency key")
        .to_owned();
    assert!(key.starts_with("t-1-"), "{key}");
    let r = &sent.body;
    assert_eq!(r["trace_id"], "t-1");
    assert_eq!(r["parent_trace_id"], "p-1");
    assert_eq!(r["root_trace_id"], "r-1");
    assert_eq!(r["trace_name"], "llm-openai");
    assert_eq!(
        r["project_uuid"],
        promptd::projects::ProjectStore::uuid_for("demo")
    );
    assert_eq!(r["configuration"]["model"], "gpt-4o-mini");
    assert_eq!(r["configuration"]["provider"], "openai");
    assert_eq!(r["configuration"]["model_params"]["temp"], 0.5);
    assert_eq!(
        r["configuration"]["messages"][0]["content"], "Hello Ada",
        "the rendered messages"
    );
    assert_eq!(r["inputs"], json!({"name": "Ada"}));
    assert_eq!(r["output"], fixtures::HELLO);
    assert_eq!(r["input_tokens"], 12);
    assert_eq!(r["output_tokens"], 9);
    assert_eq!(r["total_tokens"], 21);
    assert!(r["cost"].as_f64().expect("cost") > 0.0);
    assert!(r["latency"].as_f64().expect("latency") > 0.0);
    assert_eq!(r["status"], "success");
    assert_eq!(r["cache_hit"], false);
    assert_eq!(r["end_user_identifier"], "u-1");
    // The client's metadata, and who sent the request by which route (SO_PEERCRED).
    assert_eq!(
        r["metadata"],
        json!({"k": "v",
            "promptd_uid": nix::unistd::geteuid().as_raw().to_string(),
            "promptd_gid": nix::unistd::getegid().as_raw().to_string(),
            "promptd_route": "completion"})
    );
    assert_eq!(r["tags"], json!(["a"]));
    assert_eq!(r["target"], "Hi");
    assert_eq!(r["experiment_uuid"], "e-1");
    assert_eq!(r["eval_metric_ids"], json!([3]));
    assert!(r["start_timestamp"].is_string() && r["end_timestamp"].is_string());
    let text = r.to_string();
    assert!(
        !text.contains("sk-secret") && !text.contains("sk-test-openai"),
        "{text}"
    );

    // A cache hit is logged too.
    assert_eq!(daemon.post("/completion", &body).await.status, 200);
    let requests = received(&collector, 2).await;
    assert_eq!(requests[1].body["cache_hit"], true);
    assert_eq!(openai.calls(), 1);
    daemon.stop().await;
}

#[tokio::test]
async fn failures_and_streams_are_logged() {
    let openai = FakeUpstream::first_then(fixtures::openai_500(), fixtures::openai_stream()).await;
    let collector = FakeUpstream::always(collector_ok()).await;
    let daemon = daemon(&openai, &collector).await;
    let mut req = openai_hello();
    req["trace_id"] = json!("failed");
    assert_eq!(daemon.post("/completion", &req).await.status, 502);
    req["trace_id"] = json!("streamed");
    let raw = daemon.stream(&req).await;
    assert_eq!(raw.status(), 200);
    let requests = received(&collector, 2).await;
    let by_id = |id: &str| {
        requests
            .iter()
            .find(|r| r.body["trace_id"] == id)
            .map(|r| r.body.clone())
    };
    let failed = by_id("failed").expect("failure logged");
    assert_eq!(failed["status"], "error");
    assert!(
        failed["error"].as_str().unwrap_or("").contains("500"),
        "{failed}"
    );
    assert_eq!(failed["metadata"]["promptd_route"], "completion");
    let streamed = by_id("streamed").expect("stream logged");
    assert_eq!(streamed["metadata"]["promptd_route"], "completion_stream");
    assert!(
        streamed["metadata"]["promptd_uid"].is_string(),
        "{streamed}"
    );
    assert_eq!(streamed["output"], fixtures::HELLO);
    assert_eq!(streamed["output_tokens"], 9);
    assert!(
        streamed["time_to_first_token"].as_f64().is_some(),
        "{streamed}"
    );
    daemon.stop().await;
}

#[tokio::test]
async fn omit_rules_remove_exactly_inputs_or_outputs() {
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let collector = FakeUpstream::always(collector_ok()).await;
    let daemon = daemon(&openai, &collector).await;
    for (id, flags) in [
        ("in", json!({"log_omit_inputs": true})),
        ("out", json!({"log_omit_outputs": true})),
        ("both", json!({"log_omit": true})),
    ] {
        let mut req = openai_hello();
        req["trace_id"] = json!(id);
        req["cache"] = json!(false);
        req["llm_inputs"] = json!({"x": 1});
        req["llm_configuration"]["functions"] =
            json!([{"name": "f", "parameters": {"type": "object"}}]);
        for (k, v) in flags.as_object().expect("flags") {
            req[k] = v.clone();
        }
        assert_eq!(daemon.post("/completion", &req).await.status, 200);
    }
    let requests = received(&collector, 3).await;
    let by_id = |id: &str| {
        requests
            .iter()
            .find(|r| r.body["trace_id"] == id)
            .map(|r| r.body.clone())
            .expect("logged")
    };
    let input_keys = ["messages", "functions", "model_params"];
    let inputs_gone = |r: &Value| {
        r.get("inputs").is_none()
            && input_keys
                .iter()
                .all(|k| r["configuration"].get(k).is_none())
    };
    let r = by_id("in");
    assert!(inputs_gone(&r), "{r}");
    assert_eq!(
        r["configuration"]["model"], "gpt-4o-mini",
        "the model stays"
    );
    assert_eq!(r["output"], fixtures::HELLO);
    let r = by_id("out");
    assert!(r.get("output").is_none(), "{r}");
    assert_eq!(r["configuration"]["messages"][0]["content"], "Hello");
    assert_eq!(r["inputs"], json!({"x": 1}));
    let r = by_id("both");
    assert!(inputs_gone(&r) && r.get("output").is_none(), "{r}");
    assert_eq!(r["output_tokens"], 9, "counts are not outputs");
    daemon.stop().await;
}

#[tokio::test]
async fn sampling_keeps_or_drops_a_whole_trace() {
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let collector = FakeUpstream::always(collector_ok()).await;
    let daemon = daemon(&openai, &collector).await;
    let kept = (0..100)
        .map(|i| format!("root-{i}"))
        .find(|r| promptd::logs::sampled_in(r, 0.5))
        .expect("a kept root");
    let dropped = (0..100)
        .map(|i| format!("root-{i}"))
        .find(|r| !promptd::logs::sampled_in(r, 0.5))
        .expect("a dropped root");
    for root in [&kept, &dropped] {
        for n in 0..2 {
            let mut req = openai_hello();
            req["root_trace_id"] = json!(root);
            req["trace_id"] = json!(format!("{root}-gen{n}"));
            req["log_sample_rate"] = json!(0.5);
            assert_eq!(daemon.post("/completion", &req).await.status, 200);
        }
        let record = json!({"trace_id": format!("{root}-client"), "root_trace_id": root, "log_sample_rate": 0.5});
        assert_eq!(daemon.post("/trace_log", &record).await.status, 200);
    }
    // A marker after both traces: once it arrives, everything before it has been shipped.
    assert_eq!(
        daemon
            .post("/trace_log", &json!({"trace_id": "marker"}))
            .await
            .status,
        200
    );
    let requests = received(&collector, 4).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let ids: Vec<String> = collector
        .requests()
        .iter()
        .map(|r| r.body["trace_id"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(requests.len(), 4, "{ids:?}");
    for suffix in ["gen0", "gen1", "client"] {
        assert!(ids.contains(&format!("{kept}-{suffix}")), "{ids:?}");
        assert!(!ids.contains(&format!("{dropped}-{suffix}")), "{ids:?}");
    }
    daemon.stop().await;
}

#[tokio::test]
async fn client_records_updates_and_feedback_arrive_in_order_with_unknown_fields() {
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let collector = FakeUpstream::always(collector_ok()).await;
    let daemon = daemon(&openai, &collector).await;
    let record = json!({"trace_id": "c-1", "trace_name": "my step", "output": "x",
        "some_future_field": {"nested": [1, 2]}, "depth": 1});
    let reply = daemon.post("/trace_log", &record).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.json()["status"], "ok");
    let update = json!({"trace_id": "c-1", "field_name_to_value_map": {"output": "y"},
        "a_field_promptd_does_not_model": true});
    assert_eq!(
        daemon
            .request(
                hyper::Method::PUT,
                "/api/parea/v1/trace_log",
                Some(serde_json::to_vec(&update).expect("json").into())
            )
            .await
            .status,
        200
    );
    assert_eq!(
        daemon
            .post(
                "/feedback",
                &json!({"trace_id": "c-1", "score": 0.8, "comment": "good"})
            )
            .await
            .status,
        200
    );
    let requests = received(&collector, 3).await;
    assert_eq!(requests[0].method, "POST");
    assert_eq!(requests[0].path, "/v1/trace_log");
    assert_eq!(
        requests[0].body, record,
        "a client's record is forwarded unchanged"
    );
    assert_eq!(requests[1].method, "PUT");
    assert_eq!(requests[1].body, update);
    assert_eq!(requests[2].path, "/v1/feedback");
    assert_eq!(requests[2].body["score"], 0.8);

    // The bytes a client sent are the bytes shipped: nulls, number spellings, order, spacing.
    const AS_SENT: &[u8] = br#"{"trace_id": "c-2", "output": null, "cost": 1.50, "z": 1, "a": 2}"#;
    assert_eq!(daemon.post_raw("/trace_log", AS_SENT).await.status, 200);
    let requests = received(&collector, 4).await;
    assert_eq!(&requests[3].raw[..], AS_SENT);

    // Bad client input is refused clearly and nothing is spooled.
    assert_eq!(
        daemon
            .post("/trace_log", &json!({"output": "no id"}))
            .await
            .status,
        422
    );
    assert_eq!(
        daemon
            .post("/feedback", &json!({"trace_id": "c-1", "score": 3}))
            .await
            .status,
        422
    );
    assert_eq!(daemon.post_raw("/trace_log", b"{oops").await.status, 400);
    daemon.stop().await;
}

#[tokio::test]
async fn retries_then_delivers_and_status_tells_what_waits() {
    let up = Arc::new(AtomicBool::new(false));
    let collector = {
        let up = Arc::clone(&up);
        FakeUpstream::start(move |_, _| {
            if up.load(Ordering::SeqCst) {
                Behavior::json(200, "{}")
            } else {
                Behavior::json(503, "{\"error\": \"down\"}")
            }
        })
        .await
    };
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let daemon = daemon(&openai, &collector).await;
    assert_eq!(
        daemon
            .post("/trace_log", &json!({"trace_id": "w-1"}))
            .await
            .status,
        200
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let status = daemon.get("/logs/status").await.json();
        if status["last_upstream_error"].is_string() {
            assert_eq!(status["waiting_records"], 1, "{status}");
            assert_eq!(status["sent"], 0);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no upstream error reported: {status}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    up.store(true, Ordering::SeqCst);
    daemon
        .request(hyper::Method::POST, "/logs/flush", None)
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let status = daemon.get("/logs/status").await.json();
        if status["sent"] == 1 && status["waiting_records"] == 0 {
            assert!(status["retries"].as_u64().unwrap_or(0) >= 1, "{status}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never delivered: {status}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    daemon.stop().await;
}

#[tokio::test]
async fn without_an_api_key_records_stay_on_disk_and_status_says_why() {
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let toml = format!(
        "[spool]\nflush_interval = \"20ms\"\n[upstream]\napi_key_env = \"PROMPTD_TEST_UNSET_KEY\"\n{}",
        providers_toml(&openai.base_url(), &openai.base_url())
    );
    let daemon = TestDaemon::start(&toml).await;
    assert_eq!(
        daemon
            .post("/trace_log", &json!({"trace_id": "kept"}))
            .await
            .status,
        200
    );
    let status = daemon.get("/logs/status").await.json();
    assert_eq!(status["flusher"], "disabled", "{status}");
    assert!(
        status["not_flushing_because"]
            .as_str()
            .unwrap_or("")
            .contains("PROMPTD_TEST_UNSET_KEY"),
        "{status}"
    );
    assert_eq!(status["waiting_records"], 1);
    daemon.stop().await;
}

#[tokio::test]
async fn a_reloaded_upstream_starts_shipping_what_waited() {
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let collector = FakeUpstream::always(collector_ok()).await;
    let providers = providers_toml(&openai.base_url(), &openai.base_url());
    let dir = tempfile::tempdir().expect("tempdir");
    let before = TestDaemon::config_in(
        dir.path(),
        &format!("[spool]\nflush_interval = \"20ms\"\n[upstream]\nbase_url = \"\"\n{providers}"),
    );
    let after = TestDaemon::config_in(
        dir.path(),
        &format!(
            "[spool]\nflush_interval = \"20ms\"\n[upstream]\nbase_url = \"{}\"\napi_key = \"pk-new\"\n{providers}",
            collector.base_url()
        ),
    );
    let (reload, reloads) = tokio::sync::mpsc::channel(1);
    let daemon = TestDaemon::start_reloadable(dir, before, reloads).await;
    assert_eq!(
        daemon
            .post("/trace_log", &json!({"trace_id": "waited"}))
            .await
            .status,
        200
    );
    assert_eq!(
        daemon.get("/logs/status").await.json()["flusher"],
        "disabled"
    );
    reload.send(after).await.expect("reload");
    let requests = received(&collector, 1).await;
    assert_eq!(requests[0].body["trace_id"], "waited");
    assert_eq!(requests[0].header("x-api-key"), Some("pk-new"));
    daemon.stop().await;
}

/// `GET /logs/trace/{trace_id}`, promptd's view of a held record (the id as it goes in the
/// path). `GET /trace_log/{trace_id}`, the SDK's view, is in `sdk_reads.rs`.
async fn get_trace(daemon: &TestDaemon, id_in_path: &str) -> common::Reply {
    daemon.get(&format!("/logs/trace/{id_in_path}")).await
}

#[tokio::test]
async fn records_waiting_to_be_shipped_can_be_read_back() {
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let collector = FakeUpstream::always(Behavior::json(503, "{\"error\": \"down\"}")).await;
    let daemon = daemon(&openai, &collector).await;

    let record = json!({"trace_id": "r-1", "trace_name": "step", "output": "x", "depth": 1,
        "some_future_field": {"nested": [1, 2]}});
    assert_eq!(daemon.post("/trace_log", &record).await.status, 200);
    let reply = get_trace(&daemon, "r-1").await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let held = reply.json();
    assert_eq!(held["trace_id"], "r-1");
    assert_eq!(held["delivery"], "waiting");
    assert_eq!(held["updates_applied"], 0);
    assert!(held["spool_id"].as_u64().is_some(), "{held}");
    assert_eq!(held["record"], record, "the record as the client sent it");

    let update =
        json!({"trace_id": "r-1", "field_name_to_value_map": {"output": "y", "score": 0.5}});
    let put = daemon
        .request(
            hyper::Method::PUT,
            "/api/parea/v1/trace_log",
            Some(serde_json::to_vec(&update).expect("json").into()),
        )
        .await;
    assert_eq!(put.status, 200);
    let held = get_trace(&daemon, "r-1").await.json();
    assert_eq!(held["updates_applied"], 1);
    assert_eq!(held["record"]["output"], "y");
    assert_eq!(held["record"]["score"], 0.5);
    assert_eq!(held["record"]["trace_name"], "step", "other fields stay");

    // The daemon's own record of a completion, under the completion's generated trace id.
    let answer = daemon.post("/completion", &openai_hello()).await;
    assert_eq!(answer.status, 200);
    let id = answer.json()["inference_id"]
        .as_str()
        .expect("inference_id")
        .to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let held = loop {
        // Completion records are spooled without waiting for their group commit.
        let reply = get_trace(&daemon, &id).await;
        if reply.status == 200 {
            break reply.json();
        }
        assert_eq!(reply.error_type(), "not_found");
        assert!(
            tokio::time::Instant::now() < deadline,
            "completion record never found"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(held["record"]["trace_id"], id.as_str());
    assert_eq!(held["record"]["output"], fixtures::HELLO);
    assert_eq!(held["record"]["status"], "success");
    assert_eq!(held["delivery"], "waiting");

    // The id in the path is percent-decoded.
    let spaced = json!({"trace_id": "with space/slash"});
    assert_eq!(daemon.post("/trace_log", &spaced).await.status, 200);
    let reply = get_trace(&daemon, "with%20space%2Fslash").await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.json()["record"], spaced);

    let reply = get_trace(&daemon, "never-sent").await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.error_type(), "not_found");
    assert!(
        reply.error_message().contains("shipped upstream"),
        "{}",
        reply.error_message()
    );
    for bad in [String::new(), "x".repeat(257)] {
        let reply = get_trace(&daemon, &bad).await;
        assert_eq!(reply.status, 422, "{bad:?}");
        assert_eq!(reply.error_type(), "invalid_request");
    }
    daemon.stop().await;
}

#[tokio::test]
async fn a_shipped_record_is_no_longer_held() {
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let collector = FakeUpstream::always(collector_ok()).await;
    let daemon = daemon(&openai, &collector).await;
    assert_eq!(
        daemon
            .post("/trace_log", &json!({"trace_id": "shipped"}))
            .await
            .status,
        200
    );
    received(&collector, 1).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let reply = get_trace(&daemon, "shipped").await;
        if reply.status == 404 {
            break;
        }
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        assert!(
            tokio::time::Instant::now() < deadline,
            "still held after shipping: {}",
            reply.json()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    daemon.stop().await;
}

/// Every prepared request writes exactly one record: one whose client leaves while the
/// provider still holds its whole answer says `cancelled` (before the record phase, it wrote
/// none), and the answer the provider sends later adds nothing.
#[tokio::test]
async fn a_request_its_client_left_is_logged_once_as_cancelled() {
    use common::fake_upstream::Gate;
    use tokio::io::AsyncWriteExt;

    let gate = Gate::new();
    let openai = FakeUpstream::always(fixtures::openai_chat().held(&gate)).await;
    let collector = FakeUpstream::always(collector_ok()).await;
    let daemon = daemon(&openai, &collector).await;
    let mut left = openai_hello();
    left["trace_id"] = json!("left");
    left["cache"] = json!(false);
    let body = serde_json::to_vec(&left).expect("encode");
    let mut conn = tokio::net::UnixStream::connect(&daemon.socket)
        .await
        .expect("connect");
    let head = format!(
        "POST /api/parea/v1/completion HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.expect("write");
    conn.write_all(&body).await.expect("write");
    common::wait::wait_until("the call at the provider", || openai.calls() == 1).await;
    drop(conn);
    let requests = received(&collector, 1).await;
    let record = &requests[0].body;
    assert_eq!(record["trace_id"], "left", "{record}");
    assert_eq!(record["status"], "cancelled", "{record}");
    assert!(
        record["error"].as_str().unwrap_or("").contains("went away"),
        "{record}"
    );

    // The held answer comes back to nobody; the next request's record is the only other one.
    gate.open();
    let mut next = openai_hello();
    next["trace_id"] = json!("next");
    assert_eq!(daemon.post("/completion", &next).await.status, 200);
    let requests = received(&collector, 2).await;
    let ids: Vec<&Value> = requests.iter().map(|r| &r.body["trace_id"]).collect();
    assert_eq!(ids.iter().filter(|id| **id == "left").count(), 1, "{ids:?}");
    assert!(ids.contains(&&json!("next")), "{ids:?}");
    daemon.stop().await;
}
