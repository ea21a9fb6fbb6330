//! Provider keys through the real daemon: a provider whose key is missing is refused at once
//! (whole answers, streams, deployments) without calling it, unless the request brings
//! `provider_api_key` or the provider is declared keyless (`api_key_env = ""`); a keyless local
//! server that is not running says so plainly.

mod common;

use common::fake_upstream::{fixtures, refused_base_url, FakeUpstream};
use common::{hello_request, TestDaemon};
use serde_json::json;

/// Set nowhere: the tests' stand-in for an `OPENAI_API_KEY` nobody exported.
const UNSET_VAR: &str = "PROMPTD_TEST_UNSET_PROVIDER_KEY";

/// A provider table named `name` at `base_url` whose key comes from `key_line`.
fn provider(name: &str, base_url: &str, key_line: &str) -> String {
    format!(
        "[providers.{name}]\nkind = \"openai\"\nbase_url = \"{base_url}\"\n{key_line}\n\
         max_retries = 0\ntimeout = \"5s\"\n"
    )
}

const DEPLOYMENT: &str = r#"
provider: openai
model: gpt-4o-mini
messages:
  - role: user
    content: "Hello"
"#;

#[tokio::test]
async fn a_provider_without_its_key_is_refused_at_once_naming_the_variable() {
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let prompts = dir.path().join("prompts");
    std::fs::create_dir_all(&prompts).expect("mkdir");
    std::fs::write(prompts.join("greet.yaml"), DEPLOYMENT).expect("write prompt");
    let toml = provider(
        "openai",
        &openai.base_url(),
        &format!("api_key_env = \"{UNSET_VAR}\""),
    );
    let daemon = TestDaemon::start_in(dir, &toml).await;
    let expected = format!(
        "provider openai has no API key: set {UNSET_VAR} in promptd's environment and \
         restart it, or pass provider_api_key in the request"
    );

    let reply = daemon
        .post("/completion", &hello_request("openai", "gpt-4o-mini"))
        .await;
    assert_eq!(reply.status, 401, "{:?}", reply.body);
    assert_eq!(reply.error_type(), "provider_key_missing");
    assert_eq!(reply.error_message(), expected);

    let stream = daemon.stream(&hello_request("openai", "gpt-4o-mini")).await;
    assert_eq!(stream.status(), 401, "{}", stream.head);
    let body: serde_json::Value =
        serde_json::from_slice(&stream.chunks.concat()).expect("a JSON error body");
    assert_eq!(body["error"]["type"], "provider_key_missing");
    assert_eq!(body["error"]["message"], expected.as_str());

    let reply = daemon
        .post("/completion", &json!({"deployment_id": "greet"}))
        .await;
    assert_eq!(reply.status, 401, "{:?}", reply.body);
    assert_eq!(reply.error_type(), "provider_key_missing");
    let mut empty_key = hello_request("openai", "gpt-4o-mini");
    empty_key["provider_api_key"] = json!("");
    let reply = daemon.post("/completion", &empty_key).await;
    assert_eq!(
        reply.status, 401,
        "an empty key is no key: {:?}",
        reply.body
    );
    assert_eq!(openai.calls(), 0, "no request reached the provider");

    // The request's own key is enough.
    let mut own_key = hello_request("openai", "gpt-4o-mini");
    own_key["provider_api_key"] = json!("sk-from-request");
    let reply = daemon.post("/completion", &own_key).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(openai.calls(), 1);
    let sent = openai.last_request().expect("called");
    assert_eq!(sent.header("authorization"), Some("Bearer sk-from-request"));
    daemon.stop().await;
}

#[tokio::test]
async fn a_provider_that_declares_no_key_source_says_how_to_declare_one() {
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let daemon = TestDaemon::start(&provider("local", &openai.base_url(), "")).await;
    let reply = daemon
        .post("/completion", &hello_request("local", "llama3"))
        .await;
    assert_eq!(reply.status, 401, "{:?}", reply.body);
    assert_eq!(reply.error_type(), "provider_key_missing");
    assert_eq!(
        reply.error_message(),
        "provider local has no API key: give api_key_env or api_key in [providers.local] \
         (api_key_env = \"\" for a server that takes no key), or pass provider_api_key in the \
         request"
    );
    assert_eq!(openai.calls(), 0);
    daemon.stop().await;
}

#[tokio::test]
async fn a_keyless_provider_is_called_without_a_key() {
    let local = FakeUpstream::start(|req, _| {
        if req.body["stream"] == true {
            fixtures::openai_stream()
        } else {
            fixtures::openai_chat()
        }
    })
    .await;
    let toml = provider("local", &local.base_url(), "api_key_env = \"\"");
    let daemon = TestDaemon::start(&toml).await;
    let reply = daemon
        .post("/completion", &hello_request("local", "llama3"))
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let stream = daemon.stream(&hello_request("local", "llama3.1")).await;
    assert_eq!(stream.status(), 200, "{}", stream.head);
    assert_eq!(local.calls(), 2);
    for sent in local.requests() {
        assert_eq!(sent.header("authorization"), None, "{:?}", sent.headers);
    }
    let status = daemon.get("/status").await.json();
    assert_eq!(status["providers"][0]["api_key"], "none (keyless)");
    daemon.stop().await;
}

#[tokio::test]
async fn a_local_server_that_is_not_running_is_named_with_its_address() {
    let base_url = refused_base_url();
    let daemon = TestDaemon::start(&provider("ollama", &base_url, "api_key_env = \"\"")).await;
    let expected = format!(
        "provider ollama at {base_url} is not reachable (connection refused): is the server \
         running?"
    );
    let reply = daemon
        .post("/completion", &hello_request("ollama", "llama3"))
        .await;
    assert_eq!(reply.status, 502, "{:?}", reply.body);
    assert_eq!(reply.error_type(), "provider_unreachable");
    assert_eq!(reply.error_message(), expected);
    let stream = daemon.stream(&hello_request("ollama", "llama3")).await;
    assert_eq!(stream.status(), 502, "{}", stream.head);
    let body: serde_json::Value =
        serde_json::from_slice(&stream.chunks.concat()).expect("a JSON error body");
    assert_eq!(body["error"]["message"], expected.as_str());
    daemon.stop().await;
}
