//! `POST /v1/embeddings` through the real daemon against a fake OpenAI server that computes a
//! deterministic embedding per input item: the shapes of `input`, the caller's order and
//! indices, base64 passed through, the per-item cache (all known, one new item, bypass), the
//! item limit, bad input and Anthropic-kind providers refused.

mod common;

use bytes::Bytes;
use common::fake_upstream::{fixtures, Behavior, FakeUpstream, RecordedRequest};
use common::{providers_toml, TestDaemon};
use hyper::Method;
use serde_json::{json, Value};

/// The fake's embedding of one item: a string's length and first byte; a token array's length
/// and first token. With `base64`, a string naming the item instead.
fn embedding_of(item: &Value, base64: bool) -> Value {
    let (len, first) = match item {
        Value::String(s) => (s.len() as u64, u64::from(s.bytes().next().unwrap_or(0))),
        Value::Array(t) => (t.len() as u64, t[0].as_u64().unwrap_or(0)),
        other => panic!("not an item: {other}"),
    };
    if base64 {
        json!(format!("b64:{len}:{first}"))
    } else {
        json!([len as f64, first as f64, 0.5])
    }
}

/// The items of an upstream body's `input`, as the daemon split them.
fn items_of(input: &Value) -> Vec<Value> {
    match input {
        Value::Array(a) if a.iter().all(Value::is_u64) => vec![input.clone()],
        Value::Array(a) => a.clone(),
        one => vec![one.clone()],
    }
}

/// A fake OpenAI embeddings endpoint: 2 prompt tokens per item.
async fn fake_openai() -> FakeUpstream {
    FakeUpstream::start(|req: &RecordedRequest, _| {
        if req.path != "/v1/embeddings" {
            return Behavior::json(404, r#"{"error": {"message": "no such path"}}"#);
        }
        if req.body["model"] == "refuse-me" {
            return Behavior::json(
                400,
                r#"{"error": {"message": "This model does not support embeddings"}}"#,
            );
        }
        let base64 = req.body["encoding_format"] == "base64";
        let items = items_of(&req.body["input"]);
        let data: Vec<Value> = items
            .iter()
            .enumerate()
            .map(|(i, item)| json!({"object": "embedding", "index": i, "embedding": embedding_of(item, base64)}))
            .collect();
        let n = items.len() as u64;
        Behavior::json(
            200,
            json!({"object": "list", "data": data, "model": "text-embedding-3-small",
                   "usage": {"prompt_tokens": 2 * n, "total_tokens": 2 * n}})
            .to_string(),
        )
    })
    .await
}

async fn daemon_with(openai: &FakeUpstream, extra: &str) -> TestDaemon {
    let anthropic = FakeUpstream::always(fixtures::anthropic_message()).await;
    let toml = format!(
        "{extra}\n{}",
        providers_toml(&openai.base_url(), &anthropic.base_url())
    );
    TestDaemon::start(&toml).await
}

async fn embed(daemon: &TestDaemon, body: &Value) -> common::Reply {
    let bytes = Bytes::from(serde_json::to_vec(body).expect("encode"));
    daemon
        .request(Method::POST, "/v1/embeddings", Some(bytes))
        .await
}

/// POST `body` with one more header line; the status, the head and the JSON body.
async fn embed_with_header(
    daemon: &TestDaemon,
    body: &Value,
    header: &str,
) -> (u16, String, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = body.to_string();
    let mut stream = tokio::net::UnixStream::connect(&daemon.socket)
        .await
        .expect("connect");
    let head = format!(
        "POST /v1/embeddings HTTP/1.1\r\nHost: localhost\r\n{header}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("write head");
    stream.write_all(body.as_bytes()).await.expect("write body");
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).await.expect("read");
    let raw = common::parse_raw_response(&bytes);
    let json = serde_json::from_slice(&raw.chunks.concat()).expect("JSON body");
    (raw.status(), raw.head.to_ascii_lowercase(), json)
}

fn embeddings(body: &Value) -> Vec<Value> {
    body["data"]
        .as_array()
        .expect("data")
        .iter()
        .enumerate()
        .map(|(i, d)| {
            assert_eq!(d["object"], "embedding");
            assert_eq!(d["index"], i, "the caller's indices, in order");
            d["embedding"].clone()
        })
        .collect()
}

fn cache_of(reply: &common::Reply) -> &str {
    reply.headers["x-promptd-cache"].to_str().expect("text")
}

#[tokio::test]
async fn a_string_input_is_one_embedding_in_openais_shape() {
    let openai = fake_openai().await;
    let daemon = daemon_with(&openai, "").await;
    let reply = embed(
        &daemon,
        &json!({"model": "openai/text-embedding-3-small", "input": "hello", "user": "u1"}),
    )
    .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let body = reply.json();
    assert_eq!(body["object"], "list");
    assert_eq!(body["model"], "text-embedding-3-small");
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 2, "total_tokens": 2})
    );
    assert_eq!(
        embeddings(&body),
        vec![embedding_of(&json!("hello"), false)]
    );
    assert_eq!(cache_of(&reply), "miss");
    let sent = openai.last_request().expect("called").body;
    assert_eq!(
        sent,
        json!({"model": "text-embedding-3-small", "input": "hello", "user": "u1"}),
        "the model routed, user forwarded"
    );
    daemon.stop().await;
}

#[tokio::test]
async fn array_and_token_inputs_keep_the_callers_order() {
    let openai = fake_openai().await;
    let daemon = daemon_with(&openai, "").await;
    let items = json!(["a", "bb", "ccc"]);
    let reply = embed(&daemon, &json!({"model": "openai/e", "input": items})).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let expected: Vec<Value> = ["a", "bb", "ccc"]
        .iter()
        .map(|s| embedding_of(&json!(s), false))
        .collect();
    assert_eq!(embeddings(&reply.json()), expected);
    assert_eq!(reply.json()["usage"]["prompt_tokens"], 6);

    let tokens = embed(&daemon, &json!({"model": "openai/e", "input": [7, 8, 9]})).await;
    assert_eq!(tokens.status, 200, "{:?}", tokens.body);
    assert_eq!(embeddings(&tokens.json()), vec![json!([3.0, 7.0, 0.5])]);
    assert_eq!(
        openai.last_request().expect("called").body["input"],
        json!([7, 8, 9])
    );

    let lists = embed(
        &daemon,
        &json!({"model": "openai/e", "input": [[5], [6, 1]]}),
    )
    .await;
    assert_eq!(lists.status, 200, "{:?}", lists.body);
    assert_eq!(
        embeddings(&lists.json()),
        vec![json!([1.0, 5.0, 0.5]), json!([2.0, 6.0, 0.5])]
    );
    daemon.stop().await;
}

#[tokio::test]
async fn base64_is_passed_through_and_cached_apart_from_float() {
    let openai = fake_openai().await;
    let daemon = daemon_with(&openai, "").await;
    let body =
        json!({"model": "openai/e", "input": ["xy"], "encoding_format": "base64", "dimensions": 4});
    let reply = embed(&daemon, &body).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(embeddings(&reply.json()), vec![json!("b64:2:120")]);
    let sent = openai.last_request().expect("called").body;
    assert_eq!(sent["encoding_format"], "base64");
    assert_eq!(sent["dimensions"], 4);
    let float = embed(
        &daemon,
        &json!({"model": "openai/e", "input": ["xy"], "dimensions": 4}),
    )
    .await;
    assert_eq!(cache_of(&float), "miss", "another format is another key");
    assert_eq!(embeddings(&float.json()), vec![json!([2.0, 120.0, 0.5])]);
    let again = embed(&daemon, &body).await;
    assert_eq!(cache_of(&again), "hit");
    assert_eq!(embeddings(&again.json()), vec![json!("b64:2:120")]);
    assert_eq!(openai.calls(), 2);
    daemon.stop().await;
}

#[tokio::test]
async fn known_items_make_no_call_and_a_new_one_is_asked_alone() {
    let openai = fake_openai().await;
    let daemon = daemon_with(&openai, "").await;
    let first = embed(&daemon, &json!({"model": "openai/e", "input": ["a", "bb"]})).await;
    assert_eq!(cache_of(&first), "miss");
    assert_eq!(openai.calls(), 1);

    // The same items in another order, another `user`: all known.
    let known = embed(
        &daemon,
        &json!({"model": "openai/e", "input": ["bb", "a"], "user": "someone"}),
    )
    .await;
    assert_eq!(known.status, 200, "{:?}", known.body);
    assert_eq!(cache_of(&known), "hit");
    assert_eq!(openai.calls(), 1, "no provider call");
    assert_eq!(
        embeddings(&known.json()),
        vec![
            embedding_of(&json!("bb"), false),
            embedding_of(&json!("a"), false)
        ]
    );
    assert_eq!(known.json()["usage"]["prompt_tokens"], 4);
    assert_eq!(known.json()["model"], "text-embedding-3-small");

    // One new item in the middle: the provider gets that item only.
    let partial = embed(
        &daemon,
        &json!({"model": "openai/e", "input": ["a", "dddd", "bb"]}),
    )
    .await;
    assert_eq!(cache_of(&partial), "partial");
    assert_eq!(openai.calls(), 2);
    assert_eq!(
        openai.last_request().expect("called").body["input"],
        json!(["dddd"])
    );
    assert_eq!(
        embeddings(&partial.json()),
        ["a", "dddd", "bb"]
            .iter()
            .map(|s| embedding_of(&json!(s), false))
            .collect::<Vec<_>>()
    );
    assert_eq!(partial.json()["usage"]["prompt_tokens"], 6);
    daemon.stop().await;
}

#[tokio::test]
async fn bypass_skips_the_cache() {
    let openai = fake_openai().await;
    let daemon = daemon_with(&openai, "").await;
    let body = json!({"model": "openai/e", "input": ["a"]});
    assert_eq!(cache_of(&embed(&daemon, &body).await), "miss");
    let (status, head, json) = embed_with_header(&daemon, &body, "x-promptd-cache: bypass").await;
    assert_eq!(status, 200, "{json}");
    assert!(head.contains("x-promptd-cache: bypass"), "{head}");
    assert_eq!(embeddings(&json), vec![embedding_of(&json!("a"), false)]);
    assert_eq!(openai.calls(), 2, "asked again despite the entry");
    let (status, _, json) = embed_with_header(&daemon, &body, "x-promptd-cache: sometimes").await;
    assert_eq!(status, 400);
    assert_eq!(json["error"]["param"], "x-promptd-cache");
    daemon.stop().await;
}

#[tokio::test]
async fn more_items_than_the_limit_is_a_400_naming_input() {
    let openai = fake_openai().await;
    let daemon = daemon_with(&openai, "max_embedding_inputs = 2").await;
    let reply = embed(
        &daemon,
        &json!({"model": "openai/e", "input": ["a", "b", "c"]}),
    )
    .await;
    assert_eq!(reply.status, 400, "{:?}", reply.body);
    let error = &reply.json()["error"];
    assert_eq!(error["param"], "input");
    assert_eq!(error["type"], "invalid_request_error");
    assert!(
        error["message"]
            .as_str()
            .unwrap_or_default()
            .contains("max_embedding_inputs"),
        "{error}"
    );
    let two = embed(&daemon, &json!({"model": "openai/e", "input": ["a", "b"]})).await;
    assert_eq!(two.status, 200);
    assert_eq!(openai.calls(), 1);
    daemon.stop().await;
}

#[tokio::test]
async fn bad_bodies_are_400s_naming_the_param() {
    let openai = fake_openai().await;
    let daemon = daemon_with(&openai, "").await;
    let cases = [
        (json!({"input": "a"}), "model"),
        (json!({"model": "openai/e"}), "input"),
        (json!({"model": "openai/e", "input": []}), "input"),
        (json!({"model": "openai/e", "input": ""}), "input"),
        (json!({"model": "openai/e", "input": ["a", 3]}), "input"),
        (json!({"model": "openai/e", "input": [["a"]]}), "input"),
        (
            json!({"model": "openai/e", "input": "a", "encoding_format": "hex"}),
            "encoding_format",
        ),
        (
            json!({"model": "openai/e", "input": "a", "dimensions": -1}),
            "dimensions",
        ),
    ];
    for (body, param) in cases {
        let reply = embed(&daemon, &body).await;
        assert_eq!(reply.status, 400, "{body}: {:?}", reply.body);
        assert_eq!(reply.json()["error"]["param"], param, "{body}");
    }
    let malformed = daemon
        .request(
            Method::POST,
            "/v1/embeddings",
            Some(Bytes::from_static(b"{")),
        )
        .await;
    assert_eq!(malformed.status, 400);
    assert_eq!(malformed.json()["error"]["type"], "invalid_request_error");
    assert_eq!(openai.calls(), 0);
    daemon.stop().await;
}

#[tokio::test]
async fn anthropic_providers_are_refused_and_provider_4xx_passes_through() {
    let openai = fake_openai().await;
    let daemon = daemon_with(&openai, "").await;
    let reply = embed(
        &daemon,
        &json!({"model": "anthropic/claude-3-5-haiku", "input": "a"}),
    )
    .await;
    assert_eq!(reply.status, 400, "{:?}", reply.body);
    let error = &reply.json()["error"];
    assert_eq!(error["param"], "model");
    assert!(
        error["message"]
            .as_str()
            .unwrap_or_default()
            .contains("OpenAI-kind provider"),
        "{error}"
    );
    let refused = embed(&daemon, &json!({"model": "openai/refuse-me", "input": "a"})).await;
    assert_eq!(refused.status, 400);
    assert_eq!(
        refused.json()["error"]["message"],
        "This model does not support embeddings"
    );
    let again = embed(&daemon, &json!({"model": "openai/refuse-me", "input": "a"})).await;
    assert_eq!(again.status, 400, "a failure is not cached");
    assert_eq!(openai.calls(), 2);
    let metrics = daemon.get("/metrics").await;
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(text.contains("route=\"openai_embeddings\""), "{text}");
    daemon.stop().await;
}
