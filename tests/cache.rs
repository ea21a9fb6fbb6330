//! The completion cache through the real daemon: hits and misses, what is (not) in the key,
//! streamed replay, cross stream/whole hits, errors never stored, stale answers while the
//! provider is down, coalescing, admin routes, corrupt values and restarts.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::fake_upstream::{fixtures, refused_base_url, Behavior, FakeUpstream};
use common::{hello_request, openai_hello, providers_toml, Reply, TestDaemon};
use hyper::Method;
use serde_json::{json, Value};

fn cache_header(reply: &Reply) -> &str {
    reply
        .headers
        .get("x-promptd-cache")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

async fn openai_daemon(behavior: Behavior, extra: &str) -> (TestDaemon, FakeUpstream) {
    let openai = FakeUpstream::always(behavior).await;
    let toml = format!(
        "{extra}\n{}",
        providers_toml(&openai.base_url(), &openai.base_url())
    );
    (TestDaemon::start(&toml).await, openai)
}

/// The `chunk` texts of a raw stream response (after the id event).
fn stream_texts(raw: &common::RawResponse) -> Vec<String> {
    raw.chunk_strings()
        .iter()
        .skip(1)
        .map(|c| {
            let v: Value = serde_json::from_str(c.trim_start_matches("data: ").trim_end())
                .expect("event JSON");
            assert!(v.get("error").is_none(), "{c}");
            v["chunk"].as_str().expect("chunk").to_owned()
        })
        .collect()
}

#[tokio::test]
async fn a_repeated_request_is_a_hit_with_its_own_trace_id_and_latency() {
    let (daemon, openai) = openai_daemon(
        fixtures::openai_chat().after(Duration::from_millis(100)),
        "",
    )
    .await;
    let first = daemon.post("/completion", &openai_hello()).await;
    assert_eq!(first.status, 200);
    assert_eq!(cache_header(&first), "miss");
    let key = first.headers["x-promptd-cache-key"]
        .to_str()
        .expect("key")
        .to_owned();
    assert_eq!(key.len(), 64);
    let first = first.json();
    assert_eq!(first["cache_hit"], false);

    let second = daemon.post("/completion", &openai_hello()).await;
    assert_eq!(cache_header(&second), "hit");
    assert_eq!(second.headers["x-promptd-cache-key"], key.as_str());
    let second = second.json();
    assert_eq!(second["cache_hit"], true);
    assert_ne!(second["inference_id"], first["inference_id"]);
    for field in [
        "content",
        "input_tokens",
        "output_tokens",
        "total_tokens",
        "cost",
        "model",
        "provider",
        "status",
    ] {
        assert_eq!(second[field], first[field], "{field}");
    }
    assert!(
        second["latency"].as_f64().expect("latency") < 0.05,
        "a hit does not wait for the provider"
    );
    assert!(first["latency"].as_f64().expect("latency") >= 0.1);
    assert_eq!(openai.calls(), 1);

    let stats = daemon.get("/cache/stats").await.json();
    assert_eq!(stats["entries"], 1);
    assert_eq!(stats["hits"], 1);
    assert_eq!(stats["misses"], 1);
    assert!(stats["bytes"].as_u64().expect("bytes") > 0);
    daemon.stop().await;
}

#[tokio::test]
async fn ids_metadata_tags_log_flags_and_keys_are_not_in_the_key() {
    let (daemon, openai) = openai_daemon(fixtures::openai_chat(), "").await;
    let base = openai_hello();
    assert_eq!(
        cache_header(&daemon.post("/completion", &base).await),
        "miss"
    );
    let mut other = base.clone();
    for (k, v) in [
        ("trace_id", json!("t-9")),
        ("parent_trace_id", json!("p")),
        ("root_trace_id", json!("r")),
        ("metadata", json!({"a": "b"})),
        ("tags", json!(["x"])),
        ("end_user_identifier", json!("u")),
        ("log_omit", json!(true)),
        ("provider_api_key", json!("sk-other")),
        ("project_name", json!("p")),
        ("target", json!("t")),
    ] {
        other[k] = v;
    }
    let reply = daemon.post("/completion", &other).await;
    assert_eq!(cache_header(&reply), "hit");
    assert_eq!(reply.json()["inference_id"], "t-9");
    // Same meaning, other spelling: explicit defaults and a float for an integer.
    let mut spelled = base.clone();
    spelled["llm_configuration"]["model_params"] =
        json!({"temp": 1, "top_p": 1.0, "presence_penalty": 0});
    assert_eq!(
        cache_header(&daemon.post("/completion", &spelled).await),
        "hit"
    );
    // Anything that changes the output is a miss.
    let mut changed = base.clone();
    changed["llm_configuration"]["model_params"] = json!({"temp": 0.5});
    assert_eq!(
        cache_header(&daemon.post("/completion", &changed).await),
        "miss"
    );
    assert_eq!(openai.calls(), 2);
    daemon.stop().await;
}

#[tokio::test]
async fn templates_are_keyed_after_rendering() {
    let (daemon, openai) = openai_daemon(fixtures::openai_chat(), "").await;
    let mut a = openai_hello();
    a["llm_configuration"]["messages"][0]["content"] = json!("Hi {{name}}");
    a["llm_inputs"] = json!({"name": "Ada"});
    let mut b = openai_hello();
    b["llm_configuration"]["messages"][0]["content"] = json!("Hi Ada");
    b["llm_inputs"] = json!({});
    assert_eq!(cache_header(&daemon.post("/completion", &a).await), "miss");
    assert_eq!(cache_header(&daemon.post("/completion", &b).await), "hit");
    a["llm_inputs"] = json!({"name": "Bob"});
    assert_eq!(cache_header(&daemon.post("/completion", &a).await), "miss");
    assert_eq!(openai.calls(), 2);
    daemon.stop().await;
}

#[tokio::test]
async fn cache_false_neither_reads_nor_writes() {
    let (daemon, openai) = openai_daemon(fixtures::openai_chat(), "").await;
    let mut off = openai_hello();
    off["cache"] = json!(false);
    let reply = daemon.post("/completion", &off).await;
    assert_eq!(cache_header(&reply), "bypass");
    assert!(reply.headers.get("x-promptd-cache-key").is_none());
    assert_eq!(
        cache_header(&daemon.post("/completion", &openai_hello()).await),
        "miss"
    );
    assert_eq!(
        cache_header(&daemon.post("/completion", &off).await),
        "bypass"
    );
    assert_eq!(openai.calls(), 3);
    let stats = daemon.get("/cache/stats").await.json();
    assert_eq!(stats["bypass"], 2);
    daemon.stop().await;
}

#[tokio::test]
async fn a_disabled_cache_bypasses_everything() {
    let (daemon, openai) = openai_daemon(fixtures::openai_chat(), "[cache]\nenabled = false").await;
    for _ in 0..2 {
        assert_eq!(
            cache_header(&daemon.post("/completion", &openai_hello()).await),
            "bypass"
        );
    }
    assert_eq!(openai.calls(), 2);
    daemon.stop().await;
}

#[tokio::test]
async fn a_stream_is_replayed_event_by_event_and_answers_whole_requests_too() {
    let (daemon, openai) = openai_daemon(fixtures::openai_stream(), "").await;
    let req = openai_hello();
    let live = daemon.stream(&req).await;
    assert!(live.head.contains("x-promptd-cache: miss"), "{}", live.head);
    let replay = daemon.stream(&req).await;
    assert!(
        replay.head.contains("x-promptd-cache: hit"),
        "{}",
        replay.head
    );
    assert_eq!(stream_texts(&replay), fixtures::OPENAI_DELTAS);
    assert_eq!(
        replay.chunks.len(),
        fixtures::OPENAI_DELTAS.len() + 1,
        "one event per chunk"
    );
    assert_ne!(
        replay.chunk_strings()[0],
        live.chunk_strings()[0],
        "a fresh trace id"
    );

    let whole = daemon.post("/completion", &req).await;
    assert_eq!(cache_header(&whole), "hit");
    let whole = whole.json();
    assert_eq!(whole["content"], fixtures::HELLO);
    assert_eq!(whole["input_tokens"], 12);
    assert_eq!(whole["output_tokens"], 9);
    assert_eq!(openai.calls(), 1);
    daemon.stop().await;
}

#[tokio::test]
async fn a_whole_answer_is_replayed_to_a_stream_request() {
    let (daemon, openai) = openai_daemon(fixtures::openai_chat(), "").await;
    let req = openai_hello();
    assert_eq!(
        cache_header(&daemon.post("/completion", &req).await),
        "miss"
    );
    let replay = daemon.stream(&req).await;
    assert!(
        replay.head.contains("x-promptd-cache: hit"),
        "{}",
        replay.head
    );
    assert_eq!(stream_texts(&replay).concat(), fixtures::HELLO);
    assert_eq!(openai.calls(), 1);
    daemon.stop().await;
}

#[tokio::test]
async fn errors_and_cut_streams_are_never_stored() {
    let openai = FakeUpstream::start(|_, i| match i {
        0 => fixtures::openai_500(),
        1 => fixtures::openai_stream_cut(),
        _ => fixtures::openai_stream(),
    })
    .await;
    let daemon = TestDaemon::start(&providers_toml(&openai.base_url(), &openai.base_url())).await;
    let req = openai_hello();
    assert_eq!(daemon.post("/completion", &req).await.status, 502);
    let cut = daemon.stream(&req).await;
    assert!(cut
        .chunk_strings()
        .last()
        .is_some_and(|c| c.contains("\"error\"")));
    assert_eq!(daemon.get("/cache/stats").await.json()["entries"], 0);
    let ok = daemon.stream(&req).await;
    assert!(ok.head.contains("x-promptd-cache: miss"));
    assert_eq!(stream_texts(&ok).concat(), fixtures::HELLO);
    assert_eq!(daemon.get("/cache/stats").await.json()["entries"], 1);
    assert_eq!(openai.calls(), 3);
    daemon.stop().await;
}

#[tokio::test]
async fn expired_entries_answer_while_the_provider_is_down() {
    let openai = FakeUpstream::start(|_, i| match i {
        0 => fixtures::openai_chat(),
        1 => fixtures::openai_500(),
        _ => fixtures::openai_chat(),
    })
    .await;
    let toml = format!(
        "[cache]\nttl = \"1ms\"\n{}",
        providers_toml(&openai.base_url(), &openai.base_url())
    );
    let daemon = TestDaemon::start(&toml).await;
    let req = openai_hello();
    assert_eq!(
        cache_header(&daemon.post("/completion", &req).await),
        "miss"
    );
    tokio::time::sleep(Duration::from_millis(10)).await;
    let stale = daemon.post("/completion", &req).await;
    assert_eq!(stale.status, 200);
    assert_eq!(cache_header(&stale), "stale");
    assert_eq!(stale.json()["cache_hit"], true);
    assert_eq!(stale.json()["content"], fixtures::HELLO);
    // The provider is back: expired means a fresh call.
    assert_eq!(
        cache_header(&daemon.post("/completion", &req).await),
        "miss"
    );
    assert_eq!(openai.calls(), 3);
    assert_eq!(daemon.get("/cache/stats").await.json()["stale"], 1);
    let dir = daemon.stop_keep_dir().await;

    // Unreachable provider, stream request: the stale entry is replayed.
    let toml = format!(
        "[cache]\nttl = \"1ms\"\n{}",
        providers_toml(&refused_base_url(), &refused_base_url())
    );
    let daemon = TestDaemon::start_in(dir, &toml).await;
    let raw = daemon.stream(&req).await;
    assert_eq!(raw.status(), 200);
    assert!(raw.head.contains("x-promptd-cache: stale"), "{}", raw.head);
    assert_eq!(stream_texts(&raw).concat(), fixtures::HELLO);
    daemon.stop().await;

    // Without serve_stale_on_error the failure is the answer.
    let openai = FakeUpstream::first_then(fixtures::openai_chat(), fixtures::openai_500()).await;
    let toml = format!(
        "[cache]\nttl = \"1ms\"\nserve_stale_on_error = false\n{}",
        providers_toml(&openai.base_url(), &openai.base_url())
    );
    let daemon = TestDaemon::start(&toml).await;
    daemon.post("/completion", &req).await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(daemon.post("/completion", &req).await.status, 502);
    daemon.stop().await;
}

#[tokio::test]
async fn client_errors_do_not_fall_back_to_stale_entries() {
    let openai = FakeUpstream::first_then(fixtures::openai_chat(), fixtures::openai_400()).await;
    let toml = format!(
        "[cache]\nttl = \"1ms\"\n{}",
        providers_toml(&openai.base_url(), &openai.base_url())
    );
    let daemon = TestDaemon::start(&toml).await;
    let req = openai_hello();
    daemon.post("/completion", &req).await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(daemon.post("/completion", &req).await.status, 400);
    daemon.stop().await;
}

#[tokio::test]
async fn concurrent_identical_requests_make_one_provider_call() {
    let (daemon, openai) = openai_daemon(
        fixtures::openai_chat().after(Duration::from_millis(300)),
        "",
    )
    .await;
    let daemon = Arc::new(daemon);
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let daemon = Arc::clone(&daemon);
        tasks.push(tokio::spawn(async move {
            let reply = daemon.post("/completion", &openai_hello()).await;
            (
                reply.status.as_u16(),
                cache_header(&reply).to_owned(),
                reply.json()["content"].clone(),
            )
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        let (status, cache, content) = t.await.expect("task");
        assert_eq!(status, 200);
        assert_eq!(content, fixtures::HELLO);
        statuses.push(cache);
    }
    statuses.sort();
    assert_eq!(
        statuses.iter().filter(|s| *s == "miss").count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| *s == "hit").count(),
        9,
        "{statuses:?}"
    );
    assert_eq!(openai.calls(), 1);
    assert_eq!(daemon.get("/cache/stats").await.json()["coalesced"], 9);
    let Ok(daemon) = Arc::try_unwrap(daemon) else {
        panic!("shared")
    };
    daemon.stop().await;
}

#[tokio::test]
async fn late_stream_joiners_get_the_deltas_so_far_then_the_rest() {
    let slow = fixtures::openai_stream().with_frame_delay(Duration::from_millis(40));
    let (daemon, openai) = openai_daemon(slow, "").await;
    let daemon = Arc::new(daemon);
    let mut tasks = Vec::new();
    for i in 0..4 {
        let daemon = Arc::clone(&daemon);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100 * i)).await;
            daemon.stream(&openai_hello()).await
        }));
    }
    // And a whole-answer request joining the same flight.
    let whole = {
        let daemon = Arc::clone(&daemon);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(150)).await;
            daemon.post("/completion", &openai_hello()).await
        })
    };
    for t in tasks {
        let raw = t.await.expect("task");
        assert_eq!(stream_texts(&raw), fixtures::OPENAI_DELTAS);
    }
    assert_eq!(
        whole.await.expect("task").json()["content"],
        fixtures::HELLO
    );
    assert_eq!(openai.calls(), 1);
    let Ok(daemon) = Arc::try_unwrap(daemon) else {
        panic!("shared")
    };
    daemon.stop().await;
}

#[tokio::test]
async fn admin_routes_delete_entries_and_report_errors() {
    let (daemon, openai) = openai_daemon(fixtures::openai_chat(), "").await;
    let first = daemon.post("/completion", &openai_hello()).await;
    let key = first.headers["x-promptd-cache-key"]
        .to_str()
        .expect("key")
        .to_owned();
    daemon
        .post("/completion", &hello_request("openai", "gpt-4o"))
        .await;
    assert_eq!(daemon.get("/cache/stats").await.json()["entries"], 2);

    let reply = daemon
        .request(Method::DELETE, &format!("/cache/{key}"), None)
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["deleted"], 1);
    let reply = daemon
        .request(Method::DELETE, &format!("/cache/{key}"), None)
        .await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.error_type(), "not_found");
    assert_eq!(
        reply.error_message(),
        format!("no cache entry with key {key}")
    );
    let reply = daemon
        .request(Method::DELETE, "/cache/not-a-key", None)
        .await;
    assert_eq!(reply.status, 422);
    assert_eq!(reply.error_type(), "invalid_request");
    assert_eq!(
        cache_header(&daemon.post("/completion", &openai_hello()).await),
        "miss"
    );

    let reply = daemon.request(Method::DELETE, "/cache", None).await;
    assert_eq!(reply.json()["deleted"], 2);
    let stats = daemon.get("/cache/stats").await.json();
    assert_eq!(stats["entries"], 0);
    assert_eq!(stats["bytes"], 0);
    assert_eq!(openai.calls(), 3);
    daemon.stop().await;
}

#[tokio::test]
async fn entries_survive_a_restart_and_corrupt_values_are_misses() {
    let (daemon, openai) = openai_daemon(fixtures::openai_chat(), "").await;
    let toml = providers_toml(&openai.base_url(), &openai.base_url());
    let req = openai_hello();
    let reply = daemon.post("/completion", &req).await;
    let key = reply.headers["x-promptd-cache-key"]
        .to_str()
        .expect("key")
        .to_owned();
    let dir = daemon.stop_keep_dir().await;

    let daemon = TestDaemon::start_in(dir, &toml).await;
    assert_eq!(
        cache_header(&daemon.post("/completion", &req).await),
        "hit",
        "entry kept across a clean restart"
    );
    let dir = daemon.stop_keep_dir().await;

    // Foreign bytes under the key (an old format, a torn write, another program).
    {
        let options = promptd::store::StoreOptions {
            page_cache: 1 << 24,
        };
        let store =
            promptd::store::Store::open(&dir.path().join("state"), options).expect("open store");
        let tree = store.cache_trees().expect("trees").entries().clone();
        let raw_key = promptd::cache::CacheKey::from_hex(&key).expect("hex");
        tree.insert(raw_key.0, &b"\x01\xff\xff\xff garbage"[..])
            .expect("insert");
        store.flush();
    }
    let daemon = TestDaemon::start_in(dir, &toml).await;
    let reply = daemon.post("/completion", &req).await;
    assert_eq!(reply.status, 200);
    assert_eq!(cache_header(&reply), "miss");
    assert_eq!(reply.json()["content"], fixtures::HELLO);
    assert_eq!(
        cache_header(&daemon.post("/completion", &req).await),
        "hit",
        "replaced by a good entry"
    );
    assert_eq!(daemon.get("/cache/stats").await.json()["corrupt"], 1);
    assert_eq!(openai.calls(), 2);
    daemon.stop().await;
}

/// A request with its own provider key does not share a call (nor its failure) with a request
/// without one: a 401 for the caller's key answers that caller only.
#[tokio::test]
async fn a_callers_own_key_does_not_answer_other_callers() {
    let openai = FakeUpstream::start(|req, _| {
        let delay = Duration::from_millis(300);
        if req.header("authorization") == Some("Bearer sk-revoked") {
            Behavior::json(
                401,
                r#"{"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}}"#,
            )
            .after(delay)
        } else {
            fixtures::openai_chat().after(delay)
        }
    })
    .await;
    let daemon =
        Arc::new(TestDaemon::start(&providers_toml(&openai.base_url(), &openai.base_url())).await);
    let mut own_key = openai_hello();
    own_key["provider_api_key"] = json!("sk-revoked");
    let first = {
        let daemon = Arc::clone(&daemon);
        tokio::spawn(async move { daemon.post("/completion", &own_key).await.status })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let second = daemon.post("/completion", &openai_hello()).await;
    assert_eq!(second.status, 200, "{:?}", second.body);
    assert_eq!(second.json()["content"], fixtures::HELLO);
    assert_eq!(first.await.expect("task"), 401);
    assert_eq!(openai.calls(), 2);
}
