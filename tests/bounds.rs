//! What a provider controls is bounded (issue 20, items 1 and 2): a tool-call or content-block
//! index, the number of tool calls, a whole answer, an error body, one SSE line and what a
//! stream holds. Each over its limit fails with a clear error naming the provider, and the
//! daemon keeps serving; memory per stream is O(limits), not O(answer).

mod common;

use bytes::Bytes;
use common::fake_upstream::{fixtures, Behavior, FakeUpstream};
use common::process::Setup;
use common::{anthropic_hello, openai_hello, providers_toml, raw_post, TestDaemon};
use serde_json::{json, Value};

/// An OpenAI stream whose one tool call has `index`.
fn openai_tool_call_at(index: u64) -> Behavior {
    let call = json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": index,
        "id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}}]});
    let end = json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]});
    Behavior::sse(&format!("data: {call}\n\ndata: {end}\n\ndata: [DONE]\n\n"))
}

/// An Anthropic stream with a `tool_use` block at `index`.
fn anthropic_tool_use_at(index: u64) -> Behavior {
    let start = json!({"type": "message_start", "message": {"id": "msg_1", "model": "claude-x",
        "usage": {"input_tokens": 1, "output_tokens": 0}}});
    let block = json!({"type": "content_block_start", "index": index,
        "content_block": {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}});
    let delta = json!({"type": "content_block_delta", "index": index,
        "delta": {"type": "input_json_delta", "partial_json": "{}"}});
    let stop = json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"},
        "usage": {"output_tokens": 3}});
    Behavior::sse(&format!(
        "event: message_start\ndata: {start}\n\nevent: content_block_start\ndata: {block}\n\n\
         event: content_block_delta\ndata: {delta}\n\nevent: message_delta\ndata: {stop}\n\n\
         event: message_stop\ndata: {{\"type\":\"message_stop\"}}\n\n"
    ))
}

/// A daemon in front of `openai` and `anthropic`, with `provider` keys added to each.
async fn daemon(openai: &FakeUpstream, anthropic: &FakeUpstream, provider: &str) -> TestDaemon {
    let providers = providers_toml(&openai.base_url(), &anthropic.base_url())
        .replace("timeout = \"5s\"", &format!("timeout = \"5s\"\n{provider}"));
    TestDaemon::start(&providers).await
}

/// The Parea stream's `chunk`s and its `error`, if any.
fn parea_events(chunks: &[String]) -> (Vec<String>, Option<String>) {
    let mut texts = Vec::new();
    let mut error = None;
    for chunk in chunks {
        let Some(data) = chunk.trim().strip_prefix("data: ") else {
            continue;
        };
        let Ok(event) = serde_json::from_str::<Value>(data) else {
            continue;
        };
        if let Some(e) = event.get("error").and_then(Value::as_str) {
            error = Some(e.to_owned());
        }
        if let Some(t) = event
            .get("chunk")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        {
            texts.push(t.to_owned());
        }
    }
    (texts, error)
}

#[tokio::test]
async fn a_huge_tool_call_index_fails_the_stream_and_the_daemon_serves_on() {
    const BOMB: u64 = 1_000_000_000_000;
    let openai = FakeUpstream::first_then(openai_tool_call_at(BOMB), fixtures::openai_chat()).await;
    let anthropic =
        FakeUpstream::first_then(anthropic_tool_use_at(BOMB), fixtures::anthropic_message()).await;
    let daemon = daemon(&openai, &anthropic, "").await;
    for (provider, request) in [("openai", openai_hello()), ("anthropic", anthropic_hello())] {
        let reply = daemon.stream(&request).await;
        // The call is the first piece: the failure comes before the stream starts (a 502).
        let error = match reply.status() {
            200 => parea_events(&reply.chunk_strings()).1,
            status => {
                assert_eq!(status, 502, "{provider}");
                Some(reply.chunk_strings().concat())
            }
        };
        let error = error.unwrap_or_else(|| panic!("{provider}: an error"));
        assert!(
            error.contains(&format!("provider {provider}")) && error.contains("index"),
            "{provider}: names the provider and the index: {error}"
        );
        // Still serving.
        let reply = daemon.post("/completion", &request).await;
        assert_eq!(reply.status, 200, "{provider}: {}", reply.json());
    }
    // The OpenAI route's stream fails the same way (its own error event).
    let openai2 = FakeUpstream::always(openai_tool_call_at(BOMB)).await;
    let anthropic2 = FakeUpstream::always(anthropic_tool_use_at(BOMB)).await;
    let daemon2 = self::daemon(&openai2, &anthropic2, "").await;
    for model in ["openai/gpt-4o-mini", "anthropic/claude-x"] {
        let body = json!({"model": model, "stream": true,
            "messages": [{"role": "user", "content": "hi"}]});
        let reply = raw_post(&daemon2.socket, "/v1/chat/completions", &body).await;
        let text = reply.chunk_strings().concat();
        assert!(text.contains("index"), "{model}: {text}");
        assert!(!text.contains("[DONE]"), "{model}: not a clean end: {text}");
    }
    daemon2.stop().await;
    daemon.stop().await;
}

#[tokio::test]
async fn a_sparse_tool_call_index_gives_one_tool_call_not_empty_ones() {
    let openai = FakeUpstream::always(openai_tool_call_at(5)).await;
    let anthropic = FakeUpstream::always(anthropic_tool_use_at(5)).await;
    let daemon = daemon(&openai, &anthropic, "").await;
    for request in [openai_hello(), anthropic_hello()] {
        let reply = daemon.stream(&request).await;
        let (texts, error) = parea_events(&reply.chunk_strings());
        assert_eq!(error, None);
        let calls: Value = serde_json::from_str(texts.last().expect("the calls")).expect("json");
        let calls = calls.as_array().expect("an array");
        assert_eq!(calls.len(), 1, "{calls:?}");
        assert_eq!(calls[0]["function"]["name"], "f");
    }
    daemon.stop().await;
}

#[tokio::test]
async fn a_whole_answer_over_max_response_bytes_is_a_502_naming_the_provider() {
    // A valid-looking body of 8 MiB, over a limit of 1 MiB.
    let big = Behavior::Repeat {
        status: 200,
        content_type: "application/json",
        head: Bytes::from_static(br#"{"choices":[{"message":{"content":""#),
        piece: Bytes::from(vec![b'a'; 1024]),
        times: 8 * 1024,
        tail: Bytes::from_static(br#""}}]}"#),
    };
    let openai = FakeUpstream::first_then(big, fixtures::openai_chat()).await;
    let anthropic = FakeUpstream::always(fixtures::anthropic_message()).await;
    let daemon = daemon(&openai, &anthropic, "max_response_bytes = \"1MiB\"").await;
    let reply = daemon.post("/completion", &openai_hello()).await;
    assert_eq!(reply.status, 502, "{}", reply.json());
    let message = reply.error_message();
    assert!(
        message.contains("provider openai") && message.contains("max_response_bytes"),
        "{message}"
    );
    let reply = daemon.post("/completion", &openai_hello()).await;
    assert_eq!(reply.status, 200, "{}", reply.json());
    daemon.stop().await;
}

#[tokio::test]
async fn an_error_body_keeps_only_its_head() {
    let huge_error = Behavior::Repeat {
        status: 400,
        content_type: "text/plain",
        head: Bytes::from_static(b"bad request: "),
        piece: Bytes::from(vec![b'x'; 1024]),
        times: 16 * 1024,
        tail: Bytes::new(),
    };
    let openai = FakeUpstream::always(huge_error).await;
    let anthropic = FakeUpstream::always(fixtures::anthropic_message()).await;
    let daemon = daemon(&openai, &anthropic, "").await;
    let reply = daemon.post("/completion", &openai_hello()).await;
    assert_eq!(reply.status, 400, "{}", reply.json());
    let message = reply.error_message();
    assert!(message.contains("bad request: xxx"), "{}", &message[..100]);
    assert!(message.len() < 70 * 1024, "{} bytes", message.len());
    daemon.stop().await;
}

#[tokio::test]
async fn one_sse_line_over_max_event_bytes_fails_the_stream() {
    // One `data:` line of 8 MiB that never ends, over a limit of 1 MiB.
    let line = Behavior::Repeat {
        status: 200,
        content_type: "text/event-stream",
        head: Bytes::from_static(b"data: {\"choices\":[{\"delta\":{\"content\":\""),
        piece: Bytes::from(vec![b'a'; 1024]),
        times: 8 * 1024,
        tail: Bytes::from_static(b"\"}}]}\n\n"),
    };
    let openai = FakeUpstream::always(line).await;
    let anthropic = FakeUpstream::always(fixtures::anthropic_message()).await;
    let daemon = daemon(&openai, &anthropic, "max_event_bytes = \"1MiB\"").await;
    let reply = daemon.stream(&openai_hello()).await;
    // The first event never completes: the failure is an HTTP error.
    assert_eq!(reply.status(), 502);
    let body = reply.chunk_strings().concat();
    assert!(
        body.contains("provider openai") && body.contains("max_event_bytes"),
        "{body}"
    );
    let reply = daemon.post("/completion", &anthropic_hello()).await;
    assert_eq!(reply.status, 200, "{}", reply.json());
    daemon.stop().await;
}

/// The daemon's peak resident memory (`VmHWM`) in KiB.
fn peak_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

/// Read a streamed answer of `path` until `bytes` have come (or it ended); what came.
/// `header` is one more request header line (or "").
async fn read_stream(
    socket: &std::path::Path,
    path: &str,
    header: &str,
    body: &Value,
    bytes: u64,
) -> u64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = serde_json::to_vec(body).expect("encode");
    let mut conn = tokio::net::UnixStream::connect(socket)
        .await
        .expect("connect");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n{header}\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.expect("head");
    conn.write_all(&body).await.expect("body");
    let mut buf = vec![0; 64 * 1024];
    let mut seen = 0;
    while seen < bytes {
        match conn.read(&mut buf).await.expect("read") {
            0 => break,
            n => seen += n as u64,
        }
    }
    seen
}

#[tokio::test]
async fn an_endless_stream_keeps_the_daemons_memory_bounded() {
    // 1 KiB deltas without end, as fast as the fake writes them (far faster than the client
    // reads), on the Parea and OpenAI routes, cached (shared) and private.
    let delta = format!(
        "data: {}\n\n",
        json!({"choices": [{"index": 0, "delta": {"content": "a".repeat(1000)}}]})
    );
    let endless = Behavior::Repeat {
        status: 200,
        content_type: "text/event-stream",
        head: Bytes::new(),
        piece: Bytes::from(delta),
        times: u64::MAX,
        tail: Bytes::new(),
    };
    let openai = FakeUpstream::always(endless).await;
    let providers = providers_toml(&openai.base_url(), &openai.base_url()).replace(
        "timeout = \"5s\"",
        "timeout = \"5s\"\nmax_response_bytes = \"4MiB\"",
    );
    let setup = Setup::new("[cache]\nmax_entry_bytes = \"1MiB\"", &providers);
    let mut daemon = setup.serve("endless");
    let pid = daemon.pid().as_raw();
    const STREAMED: u64 = 96 * 1024 * 1024;
    for (n, cache) in [true, false].into_iter().enumerate() {
        let mut parea = openai_hello();
        parea["cache"] = cache.into();
        let path = "/api/parea/v1/completion/stream";
        let got = read_stream(&setup.socket, path, "", &parea, STREAMED).await;
        assert!(got >= STREAMED, "{got}");
        let request = json!({"model": "openai/gpt-4o-mini", "stream": true,
            "messages": [{"role": "user", "content": format!("hi {n}")}]});
        let header = if cache {
            ""
        } else {
            "x-promptd-cache: bypass\r\n"
        };
        let path = "/v1/chat/completions";
        let got = read_stream(&setup.socket, path, header, &request, STREAMED).await;
        assert!(got >= STREAMED, "{got}");
    }
    let peak = peak_kib(pid);
    // Before the bounds: several times what was streamed (each stream held whole, twice).
    assert!(
        peak < 160 * 1024,
        "peak {peak} KiB after 4 x 96 MiB streamed"
    );
    drop(daemon);
}
