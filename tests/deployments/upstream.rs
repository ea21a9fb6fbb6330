//! Upstream fetches against a fake Parea server on 127.0.0.1:0, then offline.

use std::time::Duration;

use promptd::config::Secret;
use promptd::deployments::{LookupError, Source, Upstream};
use serde_json::json;

use crate::fake_upstream::{Behavior, FakeUpstream};
use crate::Fixture;

fn deployed_prompt(id: &str) -> String {
    json!({
        "deployment_id": id,
        "version_number": 3.0,
        "name": "Support answer",
        "functions": [],
        "function_call": null,
        "prompt": {
            "raw_messages": [
                {"role": "system", "content": "You answer for {{company}}."},
                {"role": "user", "content": "{{question}}"}
            ],
            "messages": [],
            "inputs": null
        },
        "model": "gpt-4o-mini",
        "provider": "openai",
        "model_params": {"temp": 0.3, "max_length": null}
    })
    .to_string()
}

fn upstream(server: &FakeUpstream, ttl: Duration) -> Upstream {
    Upstream {
        client: reqwest::Client::new(),
        base_url: format!("http://{}/api/parea/v1", server.addr()),
        api_key: Secret::new("pk-test"),
        ttl,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetched_deployment_is_cached_and_served_when_upstream_is_gone() {
    let mut fx = Fixture::new();
    let server = FakeUpstream::start(|req, _| {
        let id = req.body["deployment_id"].as_str().unwrap_or("");
        if id == "p-remote" {
            Behavior::json(200, deployed_prompt(id))
        } else {
            Behavior::json(404, r#"{"detail": "Deployment not found"}"#)
        }
    })
    .await;
    let registry = fx.registry();
    let up = upstream(&server, Duration::from_secs(300));

    let d = registry
        .get_or_fetch("p-remote", Some(&up))
        .await
        .expect("fetched");
    assert_eq!(d.model, "gpt-4o-mini");
    assert_eq!(d.version, 3);
    assert_eq!(d.model_params.temp, Some(0.3));
    assert!(matches!(d.source, Source::Upstream { .. }));
    let inputs = json!({"company": "ACME", "question": "Hours?"});
    let rendered = d
        .render(inputs.as_object().expect("object"), u64::MAX)
        .expect("renders");
    assert_eq!(rendered[0].content.as_deref(), Some("You answer for ACME."));

    let request = server.last_request().expect("one request");
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/api/parea/v1/deployed-prompt");
    assert_eq!(request.header("x-api-key"), Some("pk-test"));
    assert_eq!(request.body, json!({"deployment_id": "p-remote"}));

    // Within the TTL: no second call.
    registry
        .get_or_fetch("p-remote", Some(&up))
        .await
        .expect("cached");
    assert_eq!(server.calls(), 1);

    // A definite "no" from upstream is passed on.
    match registry.get_or_fetch("p-missing", Some(&up)).await {
        Err(LookupError::Upstream { source, .. }) => {
            assert!(source.to_string().contains("404"), "{source}")
        }
        other => panic!("expected an upstream error, got {other:?}"),
    }
    // ... and remembered for a while: asking again is no upstream call.
    let calls = server.calls();
    for _ in 0..5 {
        assert!(matches!(
            registry.get_or_fetch("p-missing", Some(&up)).await,
            Err(LookupError::Unknown(_))
        ));
    }
    assert_eq!(
        server.calls(),
        calls,
        "unknown ids are cached, not fetched each time"
    );
    // Without an upstream, an unknown id is unknown.
    assert!(matches!(
        registry.get_or_fetch("p-remote-2", None).await,
        Err(LookupError::Unknown(_))
    ));

    // Restart with upstream gone and the TTL over: the stored copy serves.
    let expired = upstream(&server, Duration::ZERO);
    drop(server);
    drop(registry);
    fx.reopen_db();
    let registry = fx.registry();
    let d = registry
        .get_or_fetch("p-remote", Some(&expired))
        .await
        .expect("served from the store while upstream is unreachable");
    assert_eq!(d.model, "gpt-4o-mini");
    assert_eq!(d.version, 3);
    // Something never fetched cannot be served offline.
    match registry.get_or_fetch("p-never", Some(&expired)).await {
        Err(LookupError::Upstream { source, .. }) => assert!(source.is_unavailable(), "{source}"),
        other => panic!("expected unreachable, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_copy_is_refreshed_from_upstream() {
    let fx = Fixture::new();
    let server = FakeUpstream::start(|_, n| {
        let body = deployed_prompt("p").replace("gpt-4o-mini", &format!("model-{n}"));
        Behavior::json(200, body)
    })
    .await;
    let registry = fx.registry();
    let up = upstream(&server, Duration::ZERO);
    let first = registry
        .get_or_fetch("p", Some(&up))
        .await
        .expect("fetched");
    let second = registry
        .get_or_fetch("p", Some(&up))
        .await
        .expect("refetched");
    assert_eq!(first.model, "model-0");
    assert_eq!(second.model, "model-1");
    assert_eq!(server.calls(), 2);
    // A local file beats upstream.
    crate::Fixture::write(&fx, "p.yaml", &crate::yaml("local"));
    registry.reload_all();
    let local = registry.get_or_fetch("p", Some(&up)).await.expect("local");
    assert_eq!(local.model, "local");
    assert_eq!(server.calls(), 2);
}
