//! The OpenAI-compatible routes driven through the real daemon against fake upstreams:
//! answers compared with OpenAI's shapes field by field, streams event by event, the cache
//! shared with the Parea route, model routing, errors and bad input.

mod common;

use bytes::Bytes;
use common::fake_upstream::{fixtures, Behavior, FakeUpstream};
use common::{openai_hello, providers_toml, raw_post, RawResponse, TestDaemon};
use hyper::Method;
use serde_json::{json, Value};

async fn daemon_with(openai: &FakeUpstream, extra: &str) -> TestDaemon {
    let anthropic = FakeUpstream::always(fixtures::anthropic_message()).await;
    let toml = format!(
        "{extra}\n{}",
        providers_toml(&openai.base_url(), &anthropic.base_url())
    );
    TestDaemon::start(&toml).await
}

fn hello(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Hello"}]})
}

async fn chat(daemon: &TestDaemon, body: &Value) -> common::Reply {
    let bytes = Bytes::from(serde_json::to_vec(body).expect("encode"));
    daemon
        .request(Method::POST, "/v1/chat/completions", Some(bytes))
        .await
}

async fn stream(daemon: &TestDaemon, body: &Value) -> RawResponse {
    raw_post(&daemon.socket, "/v1/chat/completions", body).await
}

fn events(raw: &RawResponse) -> (Vec<Value>, bool) {
    common::openai_events(raw)
}

/// POST `body` with one more header line over a fresh connection.
async fn with_header(daemon: &TestDaemon, body: &Value, header: &str) -> RawResponse {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = body.to_string();
    let mut stream = tokio::net::UnixStream::connect(&daemon.socket)
        .await
        .expect("connect");
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\n{header}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("write head");
    stream.write_all(body.as_bytes()).await.expect("write body");
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).await.expect("read");
    common::parse_raw_response(&bytes)
}

fn upstream_chunks(sse: &str) -> Vec<Value> {
    sse.split("\n\n")
        .filter_map(|e| e.trim().strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).expect("fixture JSON"))
        .collect()
}

#[tokio::test]
async fn a_whole_answer_is_the_upstreams_body_as_received() {
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let daemon = daemon_with(&openai, "").await;
    let reply = chat(&daemon, &hello("openai/gpt-4o-mini")).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let body = reply.json();
    let expected: Value =
        serde_json::from_str(include_str!("fixtures/openai_chat.json")).expect("fixture");
    assert_eq!(body, expected, "every field, unknown ones too");
    assert_eq!(reply.headers["x-promptd-cache"], "miss");
    assert!(reply.headers.contains_key("x-promptd-trace-id"));
    assert!(reply.headers.contains_key("x-promptd-overhead-ms"));
    let sent = openai.last_request().expect("called").body;
    assert_eq!(sent["model"], "gpt-4o-mini");
    assert_eq!(
        sent["messages"],
        json!([{"role": "user", "content": "Hello"}])
    );

    // Cached: the second identical request does not call the provider.
    let again = chat(&daemon, &hello("openai/gpt-4o-mini")).await;
    assert_eq!(again.headers["x-promptd-cache"], "hit");
    assert_eq!(again.json(), expected);
    assert_eq!(openai.calls(), 1);
    daemon.stop().await;
}

#[tokio::test]
async fn parea_and_openai_requests_share_one_entry() {
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let daemon = daemon_with(&openai, "").await;
    let parea = daemon.post("/completion", &openai_hello()).await;
    assert_eq!(parea.status, 200);
    let key = parea.headers["x-promptd-cache-key"].clone();
    let reply = chat(&daemon, &hello("openai/gpt-4o-mini")).await;
    assert_eq!(reply.headers["x-promptd-cache"], "hit");
    assert_eq!(reply.headers["x-promptd-cache-key"], key);
    assert_eq!(
        reply.json()["choices"][0]["message"]["content"],
        "Hello! How can I help you today?"
    );
    // ... and streamed from the same entry, rendered as OpenAI chunks.
    let mut body = hello("openai/gpt-4o-mini");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let raw = stream(&daemon, &body).await;
    let (chunks, done) = events(&raw);
    assert!(done);
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(chunks[0]["object"], "chat.completion.chunk");
    let last = chunks.last().expect("usage chunk");
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"]["total_tokens"], 21);
    assert_eq!(openai.calls(), 1);
    daemon.stop().await;
}

#[tokio::test]
async fn a_stream_passes_each_chunk_through_and_usage_only_when_asked() {
    let openai = FakeUpstream::always(fixtures::openai_stream()).await;
    let daemon = daemon_with(&openai, "").await;
    let expected = upstream_chunks(include_str!("fixtures/openai_stream.sse"));
    let mut body = hello("openai/gpt-4o-mini");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let raw = stream(&daemon, &body).await;
    assert_eq!(raw.status(), 200);
    assert!(raw.head.contains("text/event-stream"), "{}", raw.head);
    let (chunks, done) = events(&raw);
    assert!(done, "ends with [DONE]");
    assert_eq!(chunks, expected, "every chunk as received");

    // Replayed from the cache, without the usage chunk for a client that did not ask.
    body["stream_options"] = Value::Null;
    let raw = stream(&daemon, &body).await;
    assert!(raw.head.contains("x-promptd-cache: hit"), "{}", raw.head);
    let (chunks, done) = events(&raw);
    assert!(done);
    assert_eq!(chunks, expected[..expected.len() - 1]);
    assert_eq!(openai.calls(), 1);
    daemon.stop().await;
}

#[tokio::test]
async fn tool_calls_stream_as_argument_fragments_and_whole_answers_render_from_a_stream() {
    let openai = FakeUpstream::always(fixtures::openai_tool_call_stream()).await;
    let daemon = daemon_with(&openai, "").await;
    let tools = json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object"}}}]);
    let mut body = hello("openai/gpt-4o-mini");
    body["tools"] = tools;
    body["stream"] = json!(true);
    let raw = stream(&daemon, &body).await;
    let (chunks, done) = events(&raw);
    assert!(done);
    let fragments: Vec<&str> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    assert!(fragments.len() > 2, "{fragments:?}");
    let args: String = fragments.concat();
    assert!(serde_json::from_str::<Value>(&args).is_ok(), "{args}");
    let sent = openai.last_request().expect("called").body;
    assert_eq!(sent["tools"][0]["function"]["name"], "get_weather");

    // The same request whole: answered from the streamed entry in OpenAI's shape.
    body["stream"] = json!(false);
    let reply = chat(&daemon, &body).await;
    assert_eq!(reply.headers["x-promptd-cache"], "hit");
    let v = reply.json();
    assert_eq!(v["id"], "chatcmpl-tool456");
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["system_fingerprint"], "fp_b8bc95a0ac");
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    let call = &v["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(call["function"]["arguments"].as_str(), Some(args.as_str()));
    assert_eq!(openai.calls(), 1);
    daemon.stop().await;
}

#[tokio::test]
async fn unknown_fields_are_forwarded_and_in_the_key_but_user_is_not() {
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let daemon = daemon_with(&openai, "").await;
    let mut body = hello("openai/gpt-4o-mini");
    body["seed"] = json!(7);
    body["logit_bias"] = json!({"50256": -100});
    body["user"] = json!("u1");
    body["messages"] = json!([{"role": "user", "content": [{"type": "text", "text": "Hello"}]}]);
    assert_eq!(chat(&daemon, &body).await.status, 200);
    let sent = openai.last_request().expect("called").body;
    assert_eq!(sent["seed"], 7);
    assert_eq!(sent["logit_bias"], json!({"50256": -100}));
    assert_eq!(sent["user"], "u1");
    assert_eq!(sent["messages"], body["messages"]);
    body["user"] = json!("u2");
    assert_eq!(chat(&daemon, &body).await.headers["x-promptd-cache"], "hit");
    body["seed"] = json!(8);
    assert_eq!(
        chat(&daemon, &body).await.headers["x-promptd-cache"],
        "miss"
    );
    assert_eq!(openai.calls(), 2);
    let bypass = with_header(&daemon, &body, "x-promptd-cache: bypass").await;
    assert!(
        bypass.head.contains("x-promptd-cache: bypass"),
        "{}",
        bypass.head
    );
    assert_eq!(openai.calls(), 3);
    daemon.stop().await;
}

/// A request to a provider of the OpenAI chat wire is sent the client's own bytes (a provider
/// signs and caches on them): every member as written, in its order, but for `model` (the
/// provider's), `stream`, `stream_options` and `promptd` (promptd's to set). Templates the
/// request's inputs fill change the request: it is then sent as the model encodes it, and
/// texts inside content parts are rendered too.
#[tokio::test]
async fn the_clients_bytes_are_sent_as_written_unless_templates_change_them() {
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let collector = FakeUpstream::always(Behavior::json(200, "{}")).await;
    let daemon = daemon_with(&openai, &common::shipping_to(&collector, "")).await;
    let body = r#"{"temperature":1.0e0,"messages":[{"role":"user","content":"Hi {{x}}"}],"x_vendor":{"b":1,"a":[2,  3]},"model":"openai/gpt-4o-mini","stream_options":{"include_usage":true}}"#;
    let reply = daemon
        .request(
            Method::POST,
            "/v1/chat/completions",
            Some(Bytes::from_static(body.as_bytes())),
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let sent = openai.last_request().expect("called").raw;
    assert_eq!(
        std::str::from_utf8(&sent).expect("utf-8"),
        r#"{"temperature":1.0e0,"messages":[{"role":"user","content":"Hi {{x}}"}],"x_vendor":{"b":1,"a":[2,  3]},"model":"gpt-4o-mini"}"#,
        "without inputs a `{{{{` is text, and the body is the client's"
    );
    let body = json!({"model": "openai/gpt-4o-mini", "x_vendor": {"b": 1},
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi {{x}}"}]}],
        "promptd": {"inputs": {"x": "Ada"}}});
    assert_eq!(chat(&daemon, &body).await.status, 200);
    let sent = openai.last_request().expect("called").body;
    assert_eq!(sent["messages"][0]["content"], "Hi Ada");
    assert_eq!(
        sent["x_vendor"],
        json!({"b": 1}),
        "extras go with the encoded request"
    );
    assert!(sent.get("promptd").is_none());
    let record = common::wait::wait_for("the rendered request's record", || {
        let rendered = |r: &&common::fake_upstream::RecordedRequest| {
            r.body["configuration"]["messages"][0]["content"] == "Hi Ada"
        };
        collector
            .requests()
            .iter()
            .find(rendered)
            .map(|r| r.body.clone())
    })
    .await;
    let configuration = &record["configuration"];
    assert_eq!(configuration["provider"], "openai", "{record}");
    assert_eq!(configuration["model"], "gpt-4o-mini", "{record}");
    assert_eq!(configuration["messages"][0]["role"], "user", "{record}");
    daemon.stop().await;
}

#[tokio::test]
async fn provider_errors_pass_through_in_openais_shape() {
    let openai = FakeUpstream::always(fixtures::openai_400()).await;
    let daemon = daemon_with(&openai, "").await;
    let reply = chat(&daemon, &hello("openai/gpt-4o-mini")).await;
    assert_eq!(reply.status, 400);
    let upstream: Value =
        serde_json::from_str(include_str!("fixtures/openai_error_400.json")).expect("fixture");
    let e = &reply.json()["error"];
    assert_eq!(e["message"], upstream["error"]["message"]);
    assert_eq!(e["type"], "invalid_request_error");
    daemon.stop().await;

    let openai = FakeUpstream::always(fixtures::openai_500()).await;
    let daemon = daemon_with(&openai, "").await;
    let reply = chat(&daemon, &hello("openai/gpt-4o-mini")).await;
    assert_eq!(reply.status, 502);
    assert_eq!(
        reply.json()["error"]["type"],
        "server_error",
        "the provider's type"
    );
    daemon.stop().await;
}

/// Upstream error bodies as OpenAI sends them, each answered for the model it names.
fn openai_errors() -> Vec<(&'static str, u16, Value)> {
    vec![
        (
            "gpt-missing",
            404,
            json!({"message": "The model `gpt-missing` does not exist or you do not have access to it.",
            "type": "invalid_request_error", "param": "model", "code": "model_not_found"}),
        ),
        (
            "long-context",
            400,
            json!({"message": "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.",
            "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}),
        ),
        (
            "no-quota",
            429,
            json!({"message": "You exceeded your current quota, please check your plan and billing details.",
            "type": "insufficient_quota", "param": null, "code": "insufficient_quota"}),
        ),
        (
            "too-fast",
            429,
            json!({"message": "Rate limit reached for gpt-4o-mini on requests per min (RPM): Limit 3, Used 3, Requested 1.",
            "type": "requests", "param": null, "code": "rate_limit_exceeded"}),
        ),
    ]
}

#[tokio::test]
async fn a_providers_code_param_and_type_reach_the_client_as_sent() {
    let openai = FakeUpstream::start(|req, _| {
        let model = req.body["model"].as_str().unwrap_or_default();
        match openai_errors().into_iter().find(|(m, ..)| *m == model) {
            Some((_, status, error)) => {
                Behavior::json(status, json!({ "error": error }).to_string())
            }
            // An OpenAI-compatible server that sends neither type nor code.
            None => Behavior::json(400, r#"{"error": {"message": "bad request"}}"#),
        }
    })
    .await;
    let daemon = daemon_with(&openai, "").await;
    for (model, status, error) in openai_errors() {
        let reply = chat(&daemon, &hello(&format!("openai/{model}"))).await;
        assert_eq!(reply.status, status, "{model}");
        assert_eq!(reply.json()["error"], error, "{model}");
        let mut body = hello(&format!("openai/{model}"));
        body["stream"] = json!(true);
        let raw = stream(&daemon, &body).await;
        assert_eq!(raw.status(), status, "{model} streamed");
        let sent: Value = serde_json::from_slice(&raw.chunks.concat()).expect("an error body");
        assert_eq!(sent["error"], error, "{model} streamed");
    }
    let bytes = Bytes::from(json!({"model": "openai/gpt-missing", "input": "x"}).to_string());
    let reply = daemon
        .request(Method::POST, "/v1/embeddings", Some(bytes))
        .await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.json()["error"], openai_errors()[0].2, "embeddings");
    // Neither type nor code from the provider: the type from the status, no code.
    let reply = chat(&daemon, &hello("openai/plain")).await;
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.json()["error"],
        json!({"message": "bad request", "type": "invalid_request_error", "param": null, "code": null})
    );
    // The Parea route keeps its own shape.
    let parea = daemon
        .post(
            "/completion",
            &common::hello_request("openai", "long-context"),
        )
        .await;
    assert_eq!(parea.status, 400);
    assert_eq!(parea.error_type(), "provider_error");
    assert_eq!(
        parea.json()["error"].as_object().map(|e| e.len()),
        Some(2),
        "type and message only: {}",
        parea.json()
    );
    daemon.stop().await;
}

#[tokio::test]
async fn a_cut_stream_ends_with_an_error_event_and_no_done() {
    for behavior in [
        fixtures::openai_stream_cut(),
        fixtures::openai_stream_error_event(),
    ] {
        let openai = FakeUpstream::always(behavior).await;
        let daemon = daemon_with(&openai, "").await;
        let mut body = hello("openai/gpt-4o-mini");
        body["stream"] = json!(true);
        let raw = stream(&daemon, &body).await;
        let (chunks, done) = events(&raw);
        assert!(!done, "no [DONE] after a failure");
        let last = chunks.last().expect("events");
        assert!(last["error"]["message"].is_string(), "{last}");
        daemon.stop().await;
    }
}

#[tokio::test]
async fn models_route_by_each_rule_and_unknown_ones_are_404() {
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let daemon = daemon_with(&openai, "[models]\n\"alias-model\" = \"openai\"").await;
    assert_eq!(chat(&daemon, &hello("alias-model")).await.status, 200);
    let sent = openai.last_request().expect("called").body;
    assert_eq!(sent["model"], "alias-model");
    let reply = chat(&daemon, &hello("nobody-serves-this")).await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.json()["error"]["code"], "model_not_found");
    assert_eq!(reply.json()["error"]["param"], "model");
    // Routed to the Anthropic provider (whose fake `daemon_with` has already stopped: a bad
    // gateway naming it); the translated answers are in tests/openai_anthropic.rs.
    let reply = chat(&daemon, &hello("anthropic/claude-3-5-sonnet-20241022")).await;
    assert_eq!(reply.status, 502);
    assert!(
        reply.error_message().contains("anthropic"),
        "{}",
        reply.error_message()
    );
    daemon.stop().await;
}

#[tokio::test]
async fn a_default_provider_and_a_models_list_route_bare_names_and_are_listed() {
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let anthropic = FakeUpstream::always(fixtures::anthropic_message()).await;
    let toml = format!(
        "default_provider = \"openai\"\n{}\nmodels = [\"listed-model\"]\n",
        providers_toml(&openai.base_url(), &anthropic.base_url())
    );
    let daemon = TestDaemon::start(&toml).await;
    assert_eq!(chat(&daemon, &hello("anything")).await.status, 200);
    assert_eq!(
        chat(&daemon, &hello("listed-model")).await.status,
        200,
        "anthropic's list"
    );
    let list = daemon.get("/v1/models").await.json();
    assert_eq!(list["object"], "list");
    let ids: Vec<&str> = list["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(ids, vec!["anthropic/listed-model", "listed-model"]);
    assert_eq!(list["data"][0]["object"], "model");
    assert_eq!(list["data"][0]["owned_by"], "anthropic");
    let one = daemon.get("/v1/models/anthropic/listed-model").await;
    assert_eq!(one.status, 200);
    assert_eq!(one.json()["id"], "anthropic/listed-model");
    assert_eq!(daemon.get("/v1/models/nope").await.status, 404);
    // An Anthropic client (its SDKs send anthropic-version) gets Anthropic's shapes.
    let anthropic_client = [("anthropic-version", "2023-06-01")];
    let raw = common::raw_get_with(&daemon.socket, "/v1/models", &anthropic_client).await;
    assert_eq!(raw.status(), 200);
    let page: Value = serde_json::from_slice(&raw.chunks.concat()).expect("JSON");
    assert_eq!(page["data"][0]["type"], "model");
    assert_eq!(page["data"][0]["id"], "anthropic/listed-model");
    assert!(page["data"][0]["created_at"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    assert_eq!(page["has_more"], false);
    assert_eq!(page["first_id"], "anthropic/listed-model");
    assert_eq!(page["last_id"], "listed-model");
    let raw =
        common::raw_get_with(&daemon.socket, "/v1/models/listed-model", &anthropic_client).await;
    let one: Value = serde_json::from_slice(&raw.chunks.concat()).expect("JSON");
    assert_eq!(
        (one["type"].as_str(), one["id"].as_str()),
        (Some("model"), Some("listed-model"))
    );
    let raw = common::raw_get_with(&daemon.socket, "/v1/models/nope", &anthropic_client).await;
    assert_eq!(raw.status(), 404);
    let error: Value = serde_json::from_slice(&raw.chunks.concat()).expect("JSON");
    assert_eq!(error["type"], "error");
    assert_eq!(error["error"]["type"], "not_found_error");
    daemon.stop().await;
}

#[tokio::test]
async fn bad_input_is_400_naming_the_parameter_and_the_daemon_keeps_serving() {
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let daemon = daemon_with(&openai, "max_body = \"1KiB\"").await;
    let big = format!(
        r#"{{"model": "openai/m", "messages": [{{"role": "user", "content": "{}"}}]}}"#,
        "x".repeat(2000)
    );
    let cases: Vec<(Vec<u8>, Value)> = vec![
        (b"{not json".to_vec(), Value::Null),
        (
            br#"{"messages": [{"role": "user", "content": "x"}]}"#.to_vec(),
            json!("model"),
        ),
        (br#"{"model": "openai/m"}"#.to_vec(), json!("messages")),
        (
            br#"{"model": "openai/m", "messages": []}"#.to_vec(),
            json!("messages"),
        ),
        (
            br#"{"model": "openai/m", "messages": [{"role": "wizard", "content": "x"}]}"#.to_vec(),
            json!("messages[0].role"),
        ),
        (big.into_bytes(), Value::Null),
    ];
    for (body, param) in cases {
        let reply = daemon
            .request(
                Method::POST,
                "/v1/chat/completions",
                Some(Bytes::from(body.clone())),
            )
            .await;
        assert_eq!(
            reply.status,
            400,
            "{}",
            String::from_utf8_lossy(&body[..body.len().min(80)])
        );
        let e = &reply.json()["error"];
        assert_eq!(e["type"], "invalid_request_error");
        assert_eq!(e["param"], param);
        assert!(e["message"].is_string());
    }
    assert_eq!(
        chat(&daemon, &hello("openai/gpt-4o-mini")).await.status,
        200
    );
    daemon.stop().await;
}

#[tokio::test]
async fn a_deployment_model_renders_its_prompt_with_inputs() {
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let anthropic = FakeUpstream::always(fixtures::anthropic_message()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let prompts = dir.path().join("prompts");
    std::fs::create_dir_all(&prompts).expect("prompts dir");
    std::fs::write(
        prompts.join("greet.yaml"),
        "provider: openai\nmodel: gpt-4o-mini\nmessages:\n  - role: user\n    content: \"Greet {{name}}\"\n",
    )
    .expect("write prompt");
    let toml = providers_toml(&openai.base_url(), &anthropic.base_url());
    let daemon = TestDaemon::start_in(dir, &toml).await;
    let body = json!({"model": "deployment/greet", "messages": [],
        "promptd": {"inputs": {"name": "Ada"}}});
    let reply = chat(&daemon, &body).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let sent = openai.last_request().expect("called").body;
    assert_eq!(sent["messages"][0]["content"], "Greet Ada");
    let missing = chat(
        &daemon,
        &json!({"model": "deployment/greet", "messages": []}),
    )
    .await;
    assert_eq!(missing.status, 400);
    assert_eq!(missing.json()["error"]["param"], "promptd.inputs");
    let list = daemon.get("/v1/models").await.json();
    assert!(list["data"]
        .as_array()
        .expect("data")
        .iter()
        .any(|m| m["id"] == "deployment/greet"));
    daemon.stop().await;
}

/// A provider whose table lists no models is asked for its own (`GET {base_url}/models`), once
/// per five minutes; those are listed as `PROVIDER/ID` and routable.
#[tokio::test]
async fn a_provider_without_a_models_list_is_asked_for_its_own() {
    let openai = FakeUpstream::start(|req, _| {
        if req.method == "GET" && req.path == "/v1/models" {
            Behavior::json(
                200,
                json!({"object": "list", "data": [
                    {"id": "own-a", "object": "model", "owned_by": "x"},
                    {"id": "own-b", "object": "model", "owned_by": "x"}]})
                .to_string(),
            )
        } else {
            fixtures::openai_chat()
        }
    })
    .await;
    let daemon = daemon_with(&openai, "").await;
    let list = daemon.get("/v1/models").await.json();
    let ids: Vec<&str> = list["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(ids, vec!["openai/own-a", "openai/own-b"], "{list}");
    let asked = openai
        .requests()
        .iter()
        .filter(|r| r.path == "/v1/models")
        .count();
    assert_eq!(asked, 1);
    let sent = openai.last_request().expect("models request");
    assert_eq!(sent.header("authorization"), Some("Bearer sk-test-openai"));
    assert_eq!(daemon.get("/v1/models/openai/own-b").await.status, 200);
    let asked = openai
        .requests()
        .iter()
        .filter(|r| r.path == "/v1/models")
        .count();
    assert_eq!(asked, 1, "the list is kept, not asked for again");
    assert_eq!(chat(&daemon, &hello("openai/own-a")).await.status, 200);
    daemon.stop().await;
}

/// The `x-promptd-*` request headers place the completion in a trace and a project and carry
/// tags and metadata into its log record (what OpenAI's body has no place for); the answer
/// names the trace.
#[tokio::test]
async fn promptd_headers_reach_the_log_record() {
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let collector = FakeUpstream::always(Behavior::json(200, "{}")).await;
    let extra = common::shipping_to(&collector, "");
    let daemon = daemon_with(&openai, &extra).await;
    let headers = "x-promptd-trace-id: t-child\r\nx-promptd-parent-trace-id: t-parent\r\n\
                   x-promptd-root-trace-id: t-root\r\nx-promptd-project: my-app\r\n\
                   x-promptd-tags: [\"a\", \"b\"]\r\nx-promptd-metadata: {\"team\": \"ml\"}";
    let raw = with_header(&daemon, &hello("openai/gpt-4o-mini"), headers).await;
    assert_eq!(raw.status(), 200, "{}", raw.head);
    assert!(
        raw.head
            .to_ascii_lowercase()
            .contains("x-promptd-trace-id: t-child"),
        "{}",
        raw.head
    );
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while collector.calls() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no record shipped");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let record = collector.requests()[0].body.clone();
    assert_eq!(record["trace_id"], "t-child", "{record}");
    assert_eq!(record["parent_trace_id"], "t-parent", "{record}");
    assert_eq!(record["root_trace_id"], "t-root", "{record}");
    assert_eq!(record["tags"], json!(["a", "b"]), "{record}");
    assert_eq!(record["metadata"]["team"], "ml", "{record}");
    assert_eq!(
        record["metadata"]["promptd_route"], "openai_chat_completions",
        "{record}"
    );
    assert_eq!(
        record["project_uuid"],
        promptd::projects::ProjectStore::uuid_for("my-app"),
        "{record}"
    );

    let bad = with_header(
        &daemon,
        &hello("openai/gpt-4o-mini"),
        "x-promptd-tags: nope",
    )
    .await;
    assert_eq!(bad.status(), 400, "{}", bad.head);
    daemon.stop().await;
}

/// `x-promptd-cache: refresh` asks the provider again and stores the new answer; the next
/// plain request is a hit.
#[tokio::test]
async fn cache_refresh_asks_again_and_stores() {
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let daemon = daemon_with(&openai, "").await;
    let body = hello("openai/gpt-4o-mini");
    assert_eq!(
        chat(&daemon, &body).await.headers["x-promptd-cache"],
        "miss"
    );
    let refreshed = with_header(&daemon, &body, "x-promptd-cache: refresh").await;
    assert_eq!(refreshed.status(), 200, "{}", refreshed.head);
    assert_eq!(openai.calls(), 2, "refresh asks the provider again");
    assert_eq!(chat(&daemon, &body).await.headers["x-promptd-cache"], "hit");
    assert_eq!(openai.calls(), 2);
    daemon.stop().await;
}
