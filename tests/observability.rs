//! `/metrics` and `/status` through the real daemon.

mod common;

use common::fake_upstream::{fixtures, FakeUpstream};
use common::{openai_hello, providers_toml, TestDaemon};

#[tokio::test]
async fn metrics_count_requests_providers_and_the_cache() {
    let openai = FakeUpstream::first_then(fixtures::openai_chat(), fixtures::openai_500()).await;
    let daemon = TestDaemon::start(&providers_toml(&openai.base_url(), &openai.base_url())).await;
    let req = openai_hello();
    daemon.post("/completion", &req).await;
    daemon.post("/completion", &req).await; // hit
    let mut other = req.clone();
    other["llm_configuration"]["model"] = serde_json::json!("gpt-4o");
    assert_eq!(daemon.post("/completion", &other).await.status, 502);
    daemon.get("/nope").await;

    let reply = daemon.get("/metrics").await;
    assert_eq!(reply.status, 200);
    assert!(reply.headers["content-type"]
        .to_str()
        .unwrap_or("")
        .starts_with("application/openmetrics-text"));
    let text = String::from_utf8_lossy(&reply.body).into_owned();
    for line in [
        "promptd_requests_total{route=\"completion\",status=\"200\"} 2",
        "promptd_requests_total{route=\"completion\",status=\"502\"} 1",
        "promptd_requests_total{route=\"other\",status=\"404\"} 1",
        "promptd_request_duration_seconds_count{route=\"completion\"} 3",
        "promptd_provider_calls_total{provider=\"openai\"} 2",
        "promptd_provider_errors_total{provider=\"openai\",kind=\"status_5xx\"} 1",
        "promptd_cache_hits_total 1",
        "promptd_cache_misses_total 1",
        "promptd_cache_entries 1",
        "promptd_build_info{version=\"",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    assert!(!text.contains("/nope"), "raw paths never become labels");
    daemon.stop().await;
}

/// The value of the first line of `text` that starts with `name` (labels included).
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|rest| rest.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

/// `promptd_overhead_seconds` is promptd's own time: a slow provider's wait is in the request's
/// duration, not in the overhead; a hit and a stream are counted under their own labels.
#[tokio::test]
async fn overhead_histogram_leaves_out_the_provider_wait() {
    let openai = FakeUpstream::start(|request, _| {
        let answer = if request.body["stream"] == true {
            fixtures::openai_stream()
        } else {
            fixtures::openai_chat()
        };
        answer.after(std::time::Duration::from_millis(300))
    })
    .await;
    let daemon = TestDaemon::start(&providers_toml(&openai.base_url(), &openai.base_url())).await;
    let req = openai_hello();
    assert_eq!(daemon.post("/completion", &req).await.status, 200);
    assert_eq!(daemon.post("/completion", &req).await.status, 200); // hit
    let mut streamed = req.clone();
    streamed["llm_configuration"]["model"] = serde_json::json!("gpt-4o");
    assert_eq!(daemon.stream(&streamed).await.status(), 200);

    let text = String::from_utf8_lossy(&daemon.get("/metrics").await.body).into_owned();
    let miss = "promptd_overhead_seconds_sum{route=\"completion\",cache=\"miss\"}";
    let total = "promptd_request_duration_seconds_sum{route=\"completion\"}";
    assert!(sample(&text, total) >= 0.3, "{text}");
    assert!(
        sample(&text, miss) < 0.25,
        "the provider's 300 ms are not overhead: {text}"
    );
    for line in [
        "promptd_overhead_seconds_count{route=\"completion\",cache=\"miss\"} 1",
        "promptd_overhead_seconds_count{route=\"completion\",cache=\"hit\"} 1",
        "promptd_overhead_seconds_count{route=\"completion_stream\",cache=\"miss\"} 1",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    daemon.stop().await;
}

#[tokio::test]
async fn status_describes_the_daemon_without_secrets() {
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let daemon = TestDaemon::start(&providers_toml(&openai.base_url(), &openai.base_url())).await;
    daemon.post("/completion", &openai_hello()).await;
    let reply = daemon.get("/status").await;
    assert_eq!(reply.status, 200);
    let s = reply.json();
    assert_eq!(s["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(s["pid"], std::process::id());
    assert!(
        s["listeners"]
            .as_str()
            .unwrap_or("")
            .contains(daemon.socket.to_str().unwrap_or("?")),
        "{s}"
    );
    assert_eq!(s["providers"][1]["name"], "openai");
    assert_eq!(s["providers"][1]["kind"], "openai");
    assert_eq!(s["providers"][1]["api_key"], "config");
    assert_eq!(s["cache"]["entries"], 1);
    assert!(s["requests"].as_u64().unwrap_or(0) >= 2);
    let text = String::from_utf8_lossy(&reply.body);
    assert!(
        !text.contains("sk-test-openai") && !text.contains("sk-ant-test"),
        "{text}"
    );
    daemon.stop().await;
}
