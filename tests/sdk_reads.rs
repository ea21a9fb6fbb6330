//! What Parea's SDK reads back, through the real daemon: `GET /trace_log/{trace_id}` answers
//! the SDK's `TraceLogTree` (the exact field set, the strings it requires, children from the
//! spool) with the delivery state in headers, `GET /logs/trace/{trace_id}` keeps promptd's
//! debugging view, and every route the SDK can call (`fixtures/parea_sdk_routes.txt`, copied
//! from the SDK) is served or a 501 naming it, never a 404 or 405.

mod common;

use bytes::Bytes;
use common::fake_upstream::{fixtures, FakeUpstream};
use common::{openai_hello, providers_toml, Reply, TestDaemon, PREFIX};
use hyper::Method;
use serde_json::{json, Value};

const SDK_ROUTES: &str = include_str!("fixtures/parea_sdk_routes.txt");
const TRACE_LOG_TREE_FIELDS: &str = include_str!("fixtures/parea_trace_log_tree_fields.txt");

/// The fields the SDK's TraceLog validates with `instance_of(str)`.
const REQUIRED_STRINGS: [&str; 4] = [
    "trace_id",
    "parent_trace_id",
    "root_trace_id",
    "start_timestamp",
];

/// Lines of a fixture that are not comments or blank.
fn fixture_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

/// A daemon that keeps every record in its spool (shipping is off), committing every 20 ms.
async fn daemon(openai: &FakeUpstream) -> TestDaemon {
    let toml = format!(
        "[spool]\nflush_interval = \"20ms\"\n[upstream]\nbase_url = \"\"\n{}",
        providers_toml(&openai.base_url(), &openai.base_url())
    );
    TestDaemon::start(&toml).await
}

async fn send(daemon: &TestDaemon, method: &str, path: &str, body: Option<&Value>) -> Reply {
    let method = Method::from_bytes(method.as_bytes()).expect("a method");
    let body = body.map(|b| Bytes::from(serde_json::to_vec(b).expect("json")));
    daemon.request(method, path, body).await
}

/// Assert `tree` has exactly the SDK's TraceLogTree fields, the required ones as strings, and
/// the same of every child.
fn assert_trace_log_tree(tree: &Value) {
    let expected: Vec<&str> = fixture_lines(TRACE_LOG_TREE_FIELDS).collect();
    let object = tree.as_object().expect("a JSON object");
    let mut got: Vec<&str> = object.keys().map(String::as_str).collect();
    let mut want = expected.clone();
    got.sort_unstable();
    want.sort_unstable();
    assert_eq!(got, want, "the field set of TraceLogTree: {tree}");
    for field in REQUIRED_STRINGS {
        assert!(
            tree[field].is_string(),
            "`{field}` must be a string: {tree}"
        );
    }
    for list in [
        "scores",
        "evaluation_metric_names",
        "children",
        "tags",
        "images",
        "comments",
        "children_logs",
    ] {
        assert!(
            tree[list].is_array(),
            "`{list}` is iterated by the SDK: {tree}"
        );
    }
    assert!(tree["annotations"].is_object(), "{tree}");
    let configuration = tree["configuration"].as_object().expect("an object");
    assert!(
        configuration.values().all(|v| !v.is_null()),
        "the SDK parses every entry of `configuration` present: {tree}"
    );
    for child in tree["children_logs"].as_array().into_iter().flatten() {
        assert_trace_log_tree(child);
    }
}

#[tokio::test]
async fn get_trace_log_answers_the_sdks_trace_log_tree_with_its_children() {
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let daemon = daemon(&openai).await;

    // A trace as the SDK's decorators log it: children first, the root last, listing them.
    let child = json!({"trace_id": "child-1", "parent_trace_id": "root-1",
        "root_trace_id": "root-1", "trace_name": "retrieve", "start_timestamp": "2024-05-01T10:00:00Z",
        "children": ["grandchild-1"], "depth": 1, "execution_order": 1,
        "comments": null, "annotations": null, "scores": null, "future_field": 1,
        "configuration": {"model": null, "messages": null, "functions": null,
            "model_params": {"temp": 1.0, "max_length": null}}});
    let grandchild = json!({"trace_id": "grandchild-1", "parent_trace_id": "child-1",
        "root_trace_id": "root-1", "start_timestamp": "2024-05-01T10:00:00.5Z", "output": "g",
        "scores": [{"name": "accuracy", "score": 0.5}]});
    let root = json!({"trace_id": "root-1", "trace_name": "pipeline",
        "start_timestamp": "2024-05-01T10:00:00Z", "children": ["child-1", "never-sent"],
        "inputs": {"q": "Hi"}, "metadata": {"k": "v"}, "tags": ["a"], "depth": 0});
    for record in [&grandchild, &child, &root] {
        assert_eq!(daemon.post("/trace_log", record).await.status, 200);
    }
    let update = json!({"trace_id": "root-1", "field_name_to_value_map": {"output": "done"}});
    let put = send(
        &daemon,
        "PUT",
        &format!("{PREFIX}/trace_log"),
        Some(&update),
    )
    .await;
    assert_eq!(put.status, 200);

    let reply = daemon.get(&format!("{PREFIX}/trace_log/root-1")).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let tree = reply.json();
    assert_trace_log_tree(&tree);
    assert_eq!(tree["trace_id"], "root-1");
    assert_eq!(
        (&tree["parent_trace_id"], &tree["root_trace_id"]),
        (&json!("root-1"), &json!("root-1")),
        "a root is its own parent and root, as the hosted API answers"
    );
    assert_eq!(tree["output"], "done", "updates applied");
    assert_eq!(tree["trace_name"], "pipeline");
    assert_eq!(tree["inputs"], json!({"q": "Hi"}));
    assert_eq!(tree["children"], json!(["child-1", "never-sent"]));
    assert_eq!(tree["scores"], json!([]));
    assert_eq!(tree["configuration"], json!({}));
    let header = |name: &str| reply.headers.get(name).and_then(|v| v.to_str().ok());
    assert_eq!(header("x-promptd-delivery"), Some("waiting"));
    assert_eq!(header("x-promptd-updates-applied"), Some("1"));
    assert!(
        header("x-promptd-spool-id").is_some_and(|v| v.parse::<u64>().is_ok()),
        "{:?}",
        reply.headers
    );
    assert_eq!(
        header("x-promptd-children-missing"),
        Some("1"),
        "`never-sent` is listed but not held"
    );

    let children = tree["children_logs"].as_array().expect("children");
    assert_eq!(children.len(), 1, "{tree}");
    let child_tree = &children[0];
    assert_eq!(child_tree["trace_id"], "child-1");
    assert_eq!(child_tree["parent_trace_id"], "root-1");
    assert_eq!(
        child_tree["comments"],
        json!([]),
        "null becomes what the SDK iterates"
    );
    assert_eq!(child_tree["annotations"], json!({}));
    assert_eq!(
        child_tree["configuration"],
        json!({"model_params": {"temp": 1.0, "max_length": null}}),
        "as the SDK sends it, without the nulls its parser cannot take"
    );
    let grandchild_tree = &child_tree["children_logs"][0];
    assert_eq!(grandchild_tree["trace_id"], "grandchild-1");
    assert_eq!(grandchild_tree["output"], "g");
    assert_eq!(grandchild_tree["scores"][0]["name"], "accuracy");

    // A child read on its own keeps its parent.
    let reply = daemon.get(&format!("{PREFIX}/trace_log/child-1")).await;
    let tree = reply.json();
    assert_trace_log_tree(&tree);
    assert_eq!(
        (&tree["parent_trace_id"], &tree["root_trace_id"]),
        (&json!("root-1"), &json!("root-1"))
    );

    // promptd's debugging view of the same record moved to an admin route.
    let reply = daemon.get("/logs/trace/root-1").await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let held = reply.json();
    assert_eq!(held["trace_id"], "root-1");
    assert_eq!(held["delivery"], "waiting");
    assert_eq!(held["updates_applied"], 1);
    assert_eq!(held["record"]["output"], "done");
    let reply = daemon.get("/logs/trace/never-sent").await;
    assert_eq!(
        (reply.status.as_u16(), reply.error_type()),
        (404, "not_found".into())
    );
    daemon.stop().await;
}

#[tokio::test]
async fn a_completions_own_record_reads_back_as_a_trace_log_tree() {
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let daemon = daemon(&openai).await;
    let mut request = openai_hello();
    request["trace_id"] = json!("gen-1");
    request["parent_trace_id"] = json!("step-1");
    request["root_trace_id"] = json!("pipeline-1");
    assert_eq!(daemon.post("/completion", &request).await.status, 200);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let tree = loop {
        // A completion's record is spooled without waiting for its group commit.
        let reply = daemon.get(&format!("{PREFIX}/trace_log/gen-1")).await;
        if reply.status == 200 {
            break reply.json();
        }
        assert!(tokio::time::Instant::now() < deadline, "never held");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_trace_log_tree(&tree);
    assert_eq!(tree["parent_trace_id"], "step-1");
    assert_eq!(tree["root_trace_id"], "pipeline-1");
    assert_eq!(tree["output"], fixtures::HELLO);
    assert_eq!(tree["configuration"]["model"], "gpt-4o-mini");
    assert_eq!(tree["configuration"]["messages"][0]["role"], "user");
    daemon.stop().await;
}

#[tokio::test]
async fn every_route_the_sdk_calls_is_served_or_a_501_naming_it() {
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    let daemon = daemon(&openai).await;
    assert_eq!(
        daemon
            .post("/trace_log", &json!({"trace_id": "held-1"}))
            .await
            .status,
        200
    );
    let routes: Vec<(&str, &str)> = fixture_lines(SDK_ROUTES)
        .map(|line| line.split_once(' ').expect("`METHOD PATH`"))
        .collect();
    assert!(routes.len() >= 19, "the whole list: {routes:?}");
    for (method, template) in routes {
        let path = template
            .replace("{trace_id}", "held-1")
            .replace("{vendor}", "langchain")
            .replace("{experiment_uuid}", "e-1")
            .replace("{test_collection_identifier}", "c-1")
            .replace("{dataset_id}", "7")
            .replace("{test_case_id}", "8");
        assert!(!path.contains('{'), "a placeholder left in {path}");
        let full = format!("{PREFIX}{path}");
        let body = (method != "GET").then(|| json!({}));
        let reply = send(&daemon, method, &full, body.as_ref()).await;
        let status = reply.status.as_u16();
        assert!(
            status != 404 && status != 405,
            "{method} {template} answered {status}: {:?}",
            reply.body
        );
        if status == 501 {
            assert_eq!(reply.error_type(), "not_implemented");
            let message = reply.error_message();
            assert!(
                message.contains(&format!("{method} {full}")),
                "{method} {template}: the 501 names the route: {message}"
            );
        }
    }
    daemon.stop().await;
}
