//! Deployed prompts through the real daemon: `deployment_id` completions (rendered messages,
//! field-by-field overrides, the Parea SDK's default parameters), missing inputs,
//! `/deployed-prompt`, `/deployments`, a live edit picked up by the watcher, and restarts
//! without the prompts directory.

mod common;

use std::time::Duration;

use common::fake_upstream::{fixtures, FakeUpstream};
use common::{providers_toml, TestDaemon};
use serde_json::json;

const SUPPORT: &str = r#"
name: Support reply
provider: openai
model: gpt-4o-mini
model_params:
  temp: 0.2
  max_length: 400
messages:
  - role: system
    content: "You answer questions about {{ product }} in {{language}}."
  - role: user
    content: "{{question}}"
"#;

async fn daemon_with_prompts(files: &[(&str, &str)]) -> (TestDaemon, FakeUpstream) {
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let prompts = dir.path().join("prompts");
    for (name, text) in files {
        let path = prompts.join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write prompt");
    }
    let daemon =
        TestDaemon::start_in(dir, &providers_toml(&openai.base_url(), &openai.base_url())).await;
    (daemon, openai)
}

fn inputs() -> serde_json::Value {
    json!({"product": "promptd", "language": "English", "question": "How do I start?"})
}

#[tokio::test]
async fn a_deployment_id_request_uses_the_rendered_deployment() {
    let (daemon, openai) = daemon_with_prompts(&[("support.yaml", SUPPORT)]).await;
    let reply = daemon
        .post(
            "/completion",
            &json!({"deployment_id": "support", "llm_inputs": inputs()}),
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.json()["content"], fixtures::HELLO);
    let sent = openai.last_request().expect("called").body;
    assert_eq!(sent["model"], "gpt-4o-mini");
    assert_eq!(sent["temperature"], 0.2);
    assert_eq!(sent["max_tokens"], 400);
    assert_eq!(
        sent["messages"],
        json!([
            {"role": "system", "content": "You answer questions about promptd in English."},
            {"role": "user", "content": "How do I start?"}
        ])
    );

    // Field-by-field overrides: one parameter and the model; the rest stays the deployment's.
    let reply = daemon
        .post(
            "/completion",
            &json!({"deployment_id": "support", "llm_inputs": inputs(),
                "llm_configuration": {"model": "gpt-4o", "model_params": {"temp": 0.9}}}),
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let sent = openai.last_request().expect("called").body;
    assert_eq!(sent["model"], "gpt-4o");
    assert_eq!(sent["temperature"], 0.9);
    assert_eq!(sent["max_tokens"], 400);
    assert_eq!(sent["messages"][1]["content"], "How do I start?");
    daemon.stop().await;
}

/// On the OpenAI route a deployment is the model `deployment/ID`, and the request is laid over
/// it the same way: what the request says (its messages, a parameter) wins, the rest (model,
/// provider, other parameters) is the deployment's; templates in the request's own messages are
/// filled from `promptd.inputs`.
#[tokio::test]
async fn an_openai_request_is_laid_over_its_deployment() {
    let (daemon, openai) = daemon_with_prompts(&[("support.yaml", SUPPORT)]).await;
    let body = json!({"model": "deployment/support", "temperature": 0.7,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi {{who}}"}]}],
        "promptd": {"inputs": {"who": "Ada"}}});
    let bytes = bytes::Bytes::from(body.to_string());
    let reply = daemon
        .request(hyper::Method::POST, "/v1/chat/completions", Some(bytes))
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let sent = openai.last_request().expect("called").body;
    assert_eq!(sent["model"], "gpt-4o-mini", "the deployment's");
    assert_eq!(sent["temperature"], 0.7, "the request's");
    assert_eq!(sent["max_tokens"], 400, "the deployment's");
    assert_eq!(
        sent["messages"],
        json!([{"role": "user", "content": "Hi Ada"}]),
        "the request's own, rendered"
    );
    assert!(sent.get("promptd").is_none());
    daemon.stop().await;
}

/// What the Parea Python SDK (parea-ai 0.2.220) sends for
/// `Completion(deployment_id='p-abc', llm_inputs={'x': 'y'})`: its `attrs.asdict`, with the
/// defaults of `ModelParams` (temp 1.0, top_p 1.0, penalties 0.0) although nobody set them.
const SDK_DEPLOYMENT_BODY: &str = include_str!("fixtures/parea_sdk_completion_deployment.json");

const P_ABC: &str = r#"
provider: openai
model: gpt-4o-mini
model_params:
  temp: 0
  top_p: 0.5
  presence_penalty: 0.2
messages:
  - role: user
    content: "Say {{x}}"
"#;

fn sdk_deployment_body() -> serde_json::Value {
    serde_json::from_str(SDK_DEPLOYMENT_BODY).expect("the SDK fixture is JSON")
}

#[tokio::test]
async fn the_parea_sdk_defaults_leave_a_deployments_params_alone() {
    let (daemon, openai) = daemon_with_prompts(&[("p-abc.yaml", P_ABC)]).await;

    // The SDK's literal body: the deployment's sampling settings reach the provider.
    let mut uncached = sdk_deployment_body();
    uncached["cache"] = json!(false);
    let reply = daemon.post("/completion", &uncached).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let sent = openai.last_request().expect("called").body;
    assert_eq!(sent["temperature"], 0.0, "{sent}");
    assert_eq!(sent["top_p"], 0.5, "{sent}");
    assert_eq!(sent["presence_penalty"], 0.2, "{sent}");
    assert_eq!(sent["messages"][0]["content"], "Say y");
    assert_eq!(openai.calls(), 1);

    // The deployment's own plain request and the SDK's body are one cache entry.
    let plain = daemon
        .post(
            "/completion",
            &json!({"deployment_id": "p-abc", "llm_inputs": {"x": "y"}}),
        )
        .await;
    assert_eq!(plain.status, 200, "{:?}", plain.body);
    assert_eq!(plain.json()["cache_hit"], false);
    assert_eq!(openai.calls(), 2);
    let sdk = daemon.post("/completion", &sdk_deployment_body()).await;
    assert_eq!(sdk.status, 200, "{:?}", sdk.body);
    assert_eq!(sdk.json()["cache_hit"], true, "{}", sdk.json());
    assert_eq!(
        sdk.headers["x-promptd-cache-key"],
        plain.headers["x-promptd-cache-key"]
    );
    assert_eq!(
        openai.calls(),
        2,
        "the SDK's request was answered from the cache"
    );

    // A value the caller really chose still wins; the defaults beside it still do not.
    let mut chosen = sdk_deployment_body();
    chosen["llm_configuration"]["model_params"]["temp"] = json!(0.3);
    let reply = daemon.post("/completion", &chosen).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(openai.calls(), 3);
    let sent = openai.last_request().expect("called").body;
    assert_eq!(sent["temperature"], 0.3, "{sent}");
    assert_eq!(sent["top_p"], 0.5, "{sent}");
    daemon.stop().await;
}

#[tokio::test]
async fn missing_inputs_and_unknown_deployments_are_clear_errors() {
    let (daemon, openai) = daemon_with_prompts(&[("support.yaml", SUPPORT)]).await;
    let reply = daemon
        .post(
            "/completion",
            &json!({"deployment_id": "support", "llm_inputs": {"product": "x", "extra": 1}}),
        )
        .await;
    assert_eq!(reply.status, 422);
    assert_eq!(reply.error_type(), "missing_input");
    assert!(
        reply.error_message().contains("language, question"),
        "{}",
        reply.error_message()
    );
    let reply = daemon
        .post("/completion", &json!({"deployment_id": "nope"}))
        .await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.error_type(), "unknown_deployment");
    assert_eq!(openai.calls(), 0);
    daemon.stop().await;
}

#[tokio::test]
async fn deployed_prompt_and_deployments_routes() {
    let (daemon, _openai) = daemon_with_prompts(&[
        ("support.yaml", SUPPORT),
        ("nested/broken.json", "{\"model\": "),
    ])
    .await;
    let reply = daemon
        .post(
            "/deployed-prompt",
            &json!({"deployment_id": "support", "llm_inputs": inputs()}),
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let r = reply.json();
    assert_eq!(r["deployment_id"], "support");
    assert_eq!(r["name"], "Support reply");
    assert_eq!(r["model"], "gpt-4o-mini");
    assert_eq!(r["provider"], "openai");
    assert!(r["version_number"].as_u64().is_some());
    assert_eq!(r["prompt"]["raw_messages"][1]["content"], "{{question}}");
    assert_eq!(r["prompt"]["messages"][1]["content"], "How do I start?");

    let list = daemon.get("/deployments").await;
    assert_eq!(list.status, 200);
    let list = list.json();
    let rows = list["deployments"].as_array().expect("rows");
    let support = rows
        .iter()
        .find(|d| d["id"] == "support")
        .expect("support listed");
    assert_eq!(support["status"], "ok");
    let broken = rows
        .iter()
        .find(|d| d["id"] == "broken")
        .expect("broken listed");
    assert_eq!(broken["status"], "error");
    assert!(
        broken["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("broken.json"),
        "{broken}"
    );
    daemon.stop().await;
}

#[tokio::test]
async fn an_edited_prompt_file_is_served_without_a_restart() {
    let (daemon, openai) = daemon_with_prompts(&[("support.yaml", SUPPORT)]).await;
    let path = daemon.path().join("prompts/support.yaml");
    std::fs::write(&path, SUPPORT.replace("temp: 0.2", "temp: 0.7")).expect("edit");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut body = json!({"deployment_id": "support", "llm_inputs": inputs()});
        body["cache"] = json!(false);
        assert_eq!(daemon.post("/completion", &body).await.status, 200);
        if openai.last_request().expect("called").body["temperature"] == 0.7 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "edit never served");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    daemon.stop().await;
}

#[tokio::test]
async fn deployments_serve_from_the_store_when_the_directory_is_gone() {
    let (daemon, openai) = daemon_with_prompts(&[("support.yaml", SUPPORT)]).await;
    let toml = providers_toml(&openai.base_url(), &openai.base_url());
    let dir = daemon.stop_keep_dir().await;
    std::fs::remove_dir_all(dir.path().join("prompts")).expect("remove prompts");
    let daemon = TestDaemon::start_in(dir, &toml).await;
    let reply = daemon
        .post(
            "/completion",
            &json!({"deployment_id": "support", "llm_inputs": inputs()}),
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let list = daemon.get("/deployments").await.json();
    assert_eq!(list["deployments"][0]["status"], "from_store", "{list}");
    daemon.stop().await;
}

#[tokio::test]
async fn a_deployment_promptd_lacks_is_fetched_from_upstream() {
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let parea = FakeUpstream::start(|req, _| {
        if req.body["deployment_id"] == "remote" && req.header("x-api-key") == Some("pk-test") {
            common::fake_upstream::Behavior::json(
                200,
                json!({"deployment_id": "remote", "version_number": 2, "name": "Remote",
                    "functions": [], "function_call": null,
                    "prompt": {"raw_messages": [{"role": "user", "content": "Ask {{who}}"}], "messages": [], "inputs": null},
                    "model": "gpt-4o-mini", "provider": "openai", "model_params": {"temp": 0.1}})
                .to_string(),
            )
        } else {
            common::fake_upstream::Behavior::json(404, r#"{"detail": "Deployment not found"}"#)
        }
    })
    .await;
    let toml = format!(
        "[upstream]\nbase_url = \"{}\"\napi_key = \"pk-test\"\n[spool]\nflush_interval = \"20ms\"\n{}",
        parea.base_url(),
        providers_toml(&openai.base_url(), &openai.base_url())
    );
    let daemon = TestDaemon::start(&toml).await;
    let reply = daemon
        .post(
            "/completion",
            &json!({"deployment_id": "remote", "llm_inputs": {"who": "Ada"}}),
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let sent = openai.last_request().expect("called").body;
    assert_eq!(sent["messages"][0]["content"], "Ask Ada");
    assert_eq!(sent["temperature"], 0.1);
    let reply = daemon
        .post("/completion", &json!({"deployment_id": "missing"}))
        .await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.error_type(), "unknown_deployment");
    daemon.stop().await;
}
