//! `POST /completion` through the real daemon against fake OpenAI and Anthropic servers:
//! every response field, the upstream request mapping, upstream failures and their statuses.

mod common;

use std::time::Duration;

use common::fake_upstream::{fixtures, refused_base_url, Behavior, FakeUpstream};
use common::{hello_request, openai_hello, providers_toml, TestDaemon};
use serde_json::{json, Value};

async fn daemon_with(openai: &FakeUpstream, anthropic: &FakeUpstream) -> TestDaemon {
    TestDaemon::start(&providers_toml(&openai.base_url(), &anthropic.base_url())).await
}

fn assert_iso(ts: &Value) {
    let text = ts.as_str().expect("timestamp is a string");
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text} is not RFC 3339: {e}"));
}

#[tokio::test]
async fn openai_answer_has_every_field() {
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let anthropic = FakeUpstream::always(fixtures::anthropic_message()).await;
    let daemon = daemon_with(&openai, &anthropic).await;
    let body = json!({
        "trace_id": "trace-123",
        "llm_configuration": {
            "model": "gpt-4o-mini",
            "provider": "openai",
            "model_params": {"temp": 0.3, "max_length": 50, "top_p": null},
            "messages": [
                {"role": "system", "content": "Be kind."},
                {"role": "example_user", "content": "Hi"},
                {"role": "example_assistant", "content": "Hello"},
                {"role": "user", "content": "Hello"}
            ]
        },
        "metadata": {"k": "v"}, "tags": ["t"], "end_user_identifier": "u1",
        "deployment_id": null, "unknown_future_field": 1
    });
    let reply = daemon.post("/completion", &body).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let r = reply.json();
    assert_eq!(r["inference_id"], "trace-123");
    assert_eq!(r["content"], fixtures::HELLO);
    assert_eq!(r["input_tokens"], 12);
    assert_eq!(r["output_tokens"], 9);
    assert_eq!(r["total_tokens"], 21);
    let expected_cost = (12.0 * 0.15 + 9.0 * 0.60) / 1e6;
    assert!(
        (r["cost"].as_f64().expect("cost") - expected_cost).abs() < 1e-12,
        "{}",
        r["cost"]
    );
    assert_eq!(r["model"], fixtures::OPENAI_MODEL);
    assert_eq!(r["provider"], "openai");
    assert_eq!(r["cache_hit"], false);
    assert_eq!(r["status"], "success");
    assert!(r["error"].is_null());
    assert!(r["latency"].as_f64().expect("latency") > 0.0);
    assert_iso(&r["start_timestamp"]);
    assert_iso(&r["end_timestamp"]);
    assert_eq!(reply.headers["content-type"], "application/json");

    let sent = openai.last_request().expect("upstream called");
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(sent.header("authorization"), Some("Bearer sk-test-openai"));
    assert_eq!(sent.body["model"], "gpt-4o-mini");
    assert_eq!(sent.body["temperature"], 0.3);
    assert_eq!(sent.body["max_tokens"], 50);
    assert!(sent.body.get("top_p").is_none());
    assert!(sent.body.get("stream").is_none());
    assert_eq!(
        sent.body["messages"],
        json!([
            {"role": "system", "content": "Be kind."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "Hello"}
        ])
    );
    assert_eq!(anthropic.calls(), 0);
    daemon.stop().await;
}

#[tokio::test]
async fn generated_trace_id_and_inference_id_alias() {
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let daemon = daemon_with(&openai, &openai).await;
    let r = daemon.post("/completion", &openai_hello()).await.json();
    let id = r["inference_id"].as_str().expect("id");
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id} is a UUID");
    let mut body = openai_hello();
    body["inference_id"] = json!("from-sdk");
    let r = daemon.post("/completion", &body).await.json();
    assert_eq!(r["inference_id"], "from-sdk");
    daemon.stop().await;
}

#[tokio::test]
async fn request_key_beats_config_key_and_is_never_echoed() {
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let daemon = daemon_with(&openai, &openai).await;
    let mut body = openai_hello();
    body["provider_api_key"] = json!("sk-from-request");
    let reply = daemon.post("/completion", &body).await;
    assert_eq!(reply.status, 200);
    assert!(!String::from_utf8_lossy(&reply.body).contains("sk-from-request"));
    assert_eq!(
        openai
            .last_request()
            .and_then(|r| r.header("authorization").map(str::to_owned)),
        Some("Bearer sk-from-request".to_owned())
    );
    daemon.stop().await;
}

#[tokio::test]
async fn anthropic_answer_and_request_mapping() {
    let anthropic = FakeUpstream::always(fixtures::anthropic_message()).await;
    let daemon = daemon_with(&anthropic, &anthropic).await;
    let body = json!({"llm_configuration": {
    "model": "claude-3-5-sonnet-20241022", "provider": "anthropic",
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "example_user", "content": "again"}
    ]}});
    let reply = daemon.post("/completion", &body).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let r = reply.json();
    assert_eq!(r["content"], fixtures::HELLO);
    assert_eq!(r["input_tokens"], 14);
    assert_eq!(r["output_tokens"], 12);
    assert_eq!(r["total_tokens"], 26);
    assert_eq!(r["model"], fixtures::ANTHROPIC_MODEL);
    assert_eq!(r["provider"], "anthropic");
    let expected_cost = (14.0 * 3.0 + 12.0 * 15.0) / 1e6;
    assert!((r["cost"].as_f64().expect("cost") - expected_cost).abs() < 1e-12);

    let sent = anthropic.last_request().expect("called");
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(sent.header("x-api-key"), Some("sk-ant-test"));
    assert_eq!(sent.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(sent.body["system"], "Be brief.");
    assert_eq!(sent.body["max_tokens"], 4096);
    // Consecutive turns of one role are one Anthropic turn of their blocks (one mapper for
    // every door: wire::anthropic).
    assert_eq!(
        sent.body["messages"],
        json!([{"role": "user", "content": [
            {"type": "text", "text": "Hi"}, {"type": "text", "text": "again"}]}])
    );
    daemon.stop().await;
}

#[tokio::test]
async fn tool_calls_come_back_as_json_content() {
    let openai = FakeUpstream::always(fixtures::openai_tool_call()).await;
    let anthropic = FakeUpstream::always(fixtures::anthropic_tool_use()).await;
    let daemon = daemon_with(&openai, &anthropic).await;
    let functions = json!([{"name": "get_weather", "description": "Weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]);
    for (provider, model, id, args) in [
        (
            "openai",
            "gpt-4o-mini",
            fixtures::OPENAI_TOOL_CALL_ID,
            fixtures::OPENAI_TOOL_ARGS,
        ),
        (
            "anthropic",
            "claude-3-5-sonnet-20241022",
            fixtures::ANTHROPIC_TOOL_USE_ID,
            r#"{"city":"Paris","unit":"c"}"#,
        ),
    ] {
        let mut body = hello_request(provider, model);
        body["llm_configuration"]["functions"] = functions.clone();
        body["llm_configuration"]["function_call"] = json!({"name": "get_weather"});
        let reply = daemon.post("/completion", &body).await;
        assert_eq!(reply.status, 200, "{provider}: {:?}", reply.body);
        let content = reply.json()["content"]
            .as_str()
            .expect("content")
            .to_owned();
        let calls: Value = serde_json::from_str(&content).expect("content is JSON");
        assert_eq!(
            calls,
            json!([{"id": id, "type": "function", "function": {"name": fixtures::TOOL_NAME, "arguments": args}}]),
            "{provider}"
        );
    }
    let sent = openai.last_request().expect("called");
    assert_eq!(sent.body["tools"][0]["type"], "function");
    assert_eq!(sent.body["tools"][0]["function"]["name"], "get_weather");
    assert_eq!(
        sent.body["tool_choice"],
        json!({"type": "function", "function": {"name": "get_weather"}})
    );
    let sent = anthropic.last_request().expect("called");
    assert_eq!(sent.body["tools"][0]["input_schema"]["type"], "object");
    assert_eq!(
        sent.body["tool_choice"],
        json!({"type": "tool", "name": "get_weather"})
    );
    daemon.stop().await;
}

#[tokio::test]
async fn upstream_client_errors_pass_through_and_server_errors_are_502() {
    let openai = FakeUpstream::start(|_, i| match i {
        0 => fixtures::openai_400(),
        1 => fixtures::openai_429(),
        _ => fixtures::openai_500(),
    })
    .await;
    let anthropic = FakeUpstream::always(fixtures::anthropic_529()).await;
    let daemon = daemon_with(&openai, &anthropic).await;
    let req = openai_hello();

    let reply = daemon.post("/completion", &req).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.error_type(), "provider_error");
    assert!(
        reply
            .error_message()
            .contains("Invalid value for 'temperature'"),
        "{}",
        reply.error_message()
    );

    let reply = daemon.post("/completion", &req).await;
    assert_eq!(reply.status, 429);
    assert!(reply.error_message().contains("Rate limit reached"));

    let reply = daemon.post("/completion", &req).await;
    assert_eq!(reply.status, 502);
    assert_eq!(reply.error_type(), "provider_error");
    assert!(
        reply.error_message().contains("500"),
        "{}",
        reply.error_message()
    );

    let reply = daemon
        .post(
            "/completion",
            &hello_request("anthropic", "claude-3-5-haiku"),
        )
        .await;
    assert_eq!(reply.status, 502);
    assert!(reply.error_message().contains("Overloaded"));
    assert_eq!(openai.calls(), 3, "no retries with max_retries = 0");
    daemon.stop().await;
}

#[tokio::test]
async fn retries_429_and_5xx_then_succeeds() {
    let openai = FakeUpstream::start(|_, i| match i {
        0 => fixtures::openai_429(),
        1 => fixtures::openai_500(),
        _ => fixtures::openai_chat(),
    })
    .await;
    let toml = providers_toml(&openai.base_url(), &openai.base_url()).replacen(
        "max_retries = 0",
        "max_retries = 2",
        1,
    );
    let daemon = TestDaemon::start(&toml).await;
    let reply = daemon.post("/completion", &openai_hello()).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.json()["content"], fixtures::HELLO);
    assert_eq!(openai.calls(), 3);
    daemon.stop().await;
}

#[tokio::test]
async fn unreachable_is_502_and_timeout_is_504() {
    let slow = FakeUpstream::always(fixtures::openai_chat().after(Duration::from_secs(3))).await;
    let toml = providers_toml(&refused_base_url(), &slow.base_url())
        .replace(
            "timeout = \"5s\"\n\n[providers.anthropic]",
            "timeout = \"5s\"\n\n[providers.slow]",
        )
        .replace("kind = \"anthropic\"", "kind = \"openai\"")
        .replace(
            "api_key = \"sk-ant-test\"\nmax_retries = 0\ntimeout = \"5s\"",
            "api_key = \"k\"\nmax_retries = 0\ntimeout = \"200ms\"",
        );
    let daemon = TestDaemon::start(&toml).await;
    let reply = daemon.post("/completion", &openai_hello()).await;
    assert_eq!(reply.status, 502, "{:?}", reply.body);
    assert_eq!(reply.error_type(), "provider_unreachable");
    let reply = daemon
        .post("/completion", &hello_request("slow", "gpt-4o-mini"))
        .await;
    assert_eq!(reply.status, 504, "{:?}", reply.body);
    assert_eq!(reply.error_type(), "provider_timeout");
    daemon.stop().await;
}

#[tokio::test]
async fn templated_messages_are_rendered_from_llm_inputs() {
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let daemon = daemon_with(&openai, &openai).await;
    let mut body = openai_hello();
    body["llm_configuration"]["messages"] =
        json!([{"role": "user", "content": "Hi {{ name }}, you are {{age}}. \\{{literal}}"}]);
    body["llm_inputs"] = json!({"name": "Ada", "age": 36});
    let reply = daemon.post("/completion", &body).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let sent = openai.last_request().expect("called");
    assert_eq!(
        sent.body["messages"][0]["content"],
        "Hi Ada, you are 36. {{literal}}"
    );

    body["llm_configuration"]["messages"] = json!([
        {"role": "system", "content": "{{a}} {{b}}"},
        {"role": "user", "content": "{{c}}"}
    ]);
    body["llm_inputs"] = json!({"b": "x"});
    let reply = daemon.post("/completion", &body).await;
    assert_eq!(reply.status, 422);
    assert_eq!(reply.error_type(), "missing_input");
    assert!(
        reply.error_message().contains("a, c"),
        "{}",
        reply.error_message()
    );

    // Without llm_inputs, braces in a message are plain text.
    let mut body = openai_hello();
    body["llm_configuration"]["messages"][0]["content"] = json!("explain {{ jinja }}");
    assert_eq!(daemon.post("/completion", &body).await.status, 200);
    assert_eq!(openai.calls(), 2);
    daemon.stop().await;
}

#[tokio::test]
async fn history_is_placed_before_the_last_user_message() {
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let daemon = daemon_with(&openai, &openai).await;
    let body = json!({"llm_configuration": {"model": "gpt-4o-mini", "provider": "openai",
        "messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "now"}],
        "history": [{"role": "user", "content": "before"}, {"role": "assistant", "content": "reply"}]}});
    assert_eq!(daemon.post("/completion", &body).await.status, 200);
    let sent = openai.last_request().expect("called");
    let contents: Vec<&str> = sent.body["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["content"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(contents, vec!["S", "before", "reply", "now"]);
    daemon.stop().await;
}

#[tokio::test]
async fn project_is_created_once_with_a_stable_uuid() {
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let daemon = daemon_with(&openai, &openai).await;
    let first = daemon.post("/project", &json!({"name": "demo"})).await;
    assert_eq!(first.status, 200);
    let first = first.json();
    assert_eq!(first["name"], "demo");
    assert_eq!(first["was_created"], true);
    assert_iso(&first["created_at"]);
    let second = daemon
        .post("/project", &json!({"name": "demo"}))
        .await
        .json();
    assert_eq!(second["was_created"], false);
    assert_eq!(second["uuid"], first["uuid"]);
    assert_eq!(second["created_at"], first["created_at"]);
    let other = daemon
        .post("/project", &json!({"name": "other"}))
        .await
        .json();
    assert_ne!(other["uuid"], first["uuid"]);
    assert_eq!(
        daemon.post("/project", &json!({"name": ""})).await.status,
        422
    );
    assert_eq!(daemon.post("/project", &json!({})).await.status, 422);

    assert!(daemon.path().join("state/projects.json").exists());
    daemon.stop().await;
}

#[tokio::test]
async fn health_and_route_errors() {
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let daemon = daemon_with(&openai, &openai).await;
    let reply = daemon.get("/health").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["status"], "ok");
    assert_eq!(reply.json()["version"], env!("CARGO_PKG_VERSION"));

    let reply = daemon.get("/nope").await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.error_type(), "not_found");
    let reply = daemon.get("/api/parea/v1/completion").await;
    assert_eq!(reply.status, 405);
    assert_eq!(reply.error_type(), "method_not_allowed");
    let reply = daemon.get("/cache").await;
    assert_eq!(reply.status, 405, "only DELETE purges the cache");
    let reply = daemon.get("/api/parea/v1/trace_log/abc").await;
    assert_eq!(reply.status, 404, "served: no record of `abc` is held");
    assert_eq!(reply.error_type(), "not_found");
    let reply = daemon.get("/api/parea/v1/trace_log").await;
    assert_eq!(reply.status, 501, "listing records is not served");
    assert_eq!(reply.error_type(), "not_implemented");
    let reply = daemon.post("/experiment", &json!({})).await;
    assert_eq!(reply.status, 501);
    assert_eq!(reply.error_type(), "not_implemented");
    assert!(
        reply.error_message().contains("/api/parea/v1/experiment"),
        "{}",
        reply.error_message()
    );
    daemon.stop().await;
}

#[tokio::test]
async fn concurrent_uncached_requests_each_call_the_provider() {
    let openai =
        FakeUpstream::always(fixtures::openai_chat().after(Duration::from_millis(50))).await;
    let daemon = std::sync::Arc::new(daemon_with(&openai, &openai).await);
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let daemon = std::sync::Arc::clone(&daemon);
        tasks.push(tokio::spawn(async move {
            let mut body = openai_hello();
            body["cache"] = json!(false);
            let reply = daemon.post("/completion", &body).await;
            (
                reply.status,
                reply.headers["x-promptd-cache"]
                    .to_str()
                    .unwrap_or("")
                    .to_owned(),
            )
        }));
    }
    for t in tasks {
        assert_eq!(
            t.await.expect("task"),
            (hyper::StatusCode::OK, "bypass".to_owned())
        );
    }
    assert_eq!(openai.calls(), 20);
    let Ok(daemon) = std::sync::Arc::try_unwrap(daemon) else {
        panic!("daemon still shared")
    };
    daemon.stop().await;
}

#[tokio::test]
async fn a_provider_redirect_is_an_upstream_error_and_is_not_followed() {
    let elsewhere = FakeUpstream::always(fixtures::anthropic_message()).await;
    let location = format!("{}/messages", elsewhere.base_url());
    let redirecting = FakeUpstream::always(Behavior::Json {
        status: 307,
        headers: vec![("location".into(), location)],
        body: String::new(),
    })
    .await;
    let daemon = daemon_with(&redirecting, &redirecting).await;
    let reply = daemon
        .post(
            "/completion",
            &json!({"llm_configuration": {
                "model": "claude-3-5-haiku-latest", "provider": "anthropic",
                "messages": [{"role": "user", "content": "Hello"}]
            }, "cache": false}),
        )
        .await;
    assert_eq!(reply.status, 502, "{:?}", reply.body);
    assert_eq!(
        reply.json()["error"]["type"],
        "provider_error",
        "{:?}",
        reply.body
    );
    assert_eq!(redirecting.calls(), 1);
    assert_eq!(elsewhere.calls(), 0, "the key must not follow a redirect");
}

/// A model parameter an Anthropic-kind provider cannot honour is refused naming it (422
/// `invalid_request` with its `field`, as every invalid request on this route), before any call
/// (it was silently left out); the values the Parea SDK sends for unset parameters
/// (penalties 0, `temp` and `top_p` 1) ask nothing and pass.
#[tokio::test]
async fn parameters_anthropic_cannot_honour_are_refused_by_name_not_dropped() {
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let anthropic = FakeUpstream::always(fixtures::anthropic_message()).await;
    let daemon = daemon_with(&openai, &anthropic).await;
    let with_params = |params: Value| {
        let mut body = common::anthropic_hello();
        body["llm_configuration"]["model_params"] = params;
        body["cache"] = json!(false);
        body
    };
    for (params, name) in [
        (json!({"frequency_penalty": 0.5}), "frequency_penalty"),
        (json!({"presence_penalty": -1.0}), "presence_penalty"),
        (
            json!({"response_format": {"type": "json_object"}}),
            "response_format",
        ),
    ] {
        let reply = daemon.post("/completion", &with_params(params)).await;
        assert_eq!(reply.status, 422, "{name}: {}", reply.json());
        assert_eq!(
            reply.json()["error"]["field"],
            format!("llm_configuration.model_params.{name}")
        );
        let message = reply.error_message();
        assert!(
            message.contains(name) && message.contains("anthropic"),
            "{message}"
        );
    }
    assert_eq!(anthropic.calls(), 0, "nothing refused reached the provider");
    let sdk_defaults = json!({"temp": 1.0, "top_p": 1.0, "frequency_penalty": 0.0,
        "presence_penalty": 0.0, "response_format": null});
    let reply = daemon.post("/completion", &with_params(sdk_defaults)).await;
    assert_eq!(reply.status, 200, "{}", reply.json());
    assert_eq!(anthropic.calls(), 1);
    // An OpenAI-kind provider gets them all.
    let mut body = openai_hello();
    body["llm_configuration"]["model_params"] = json!({"frequency_penalty": 0.5,
        "response_format": {"type": "json_object"}});
    assert_eq!(daemon.post("/completion", &body).await.status, 200);
    daemon.stop().await;
}
