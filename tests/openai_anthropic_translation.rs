//! Golden tests of the OpenAI route to an Anthropic-kind provider, through the internal model:
//! an OpenAI request decoded by `wire::openai_chat` and encoded by `wire::anthropic`; recorded
//! Anthropic bodies and streams (`tests/fixtures/anthropic_*`,
//! `tests/fixtures/openai_compat_anthropic_*`) decoded by `wire::anthropic` and rendered by
//! `wire::openai_chat`. No wire is translated into another.
//!
//! The expected OpenAI bodies are `tests/fixtures/openai_compat_*.{chunks,completion}.json`.
//! After an intended change of the output, `PROMPTD_BLESS=1 cargo test --test
//! openai_anthropic_translation` rewrites them from the current output: review the diff.
//! Besides the goldens, each stream test asserts the properties gateways get wrong (tool call
//! indexes, the first delta of a call, no lost fragment, usage never zero), so a bad bless
//! still fails.

use std::path::PathBuf;

use promptd::model::{Assembler, ErrorKind, StreamEvent};
use promptd::providers::sse::SseParser;
use promptd::wire::anthropic::{self, EncodeOptions, EventDecoder};
use promptd::wire::openai_chat::{self, ChunkHeader, EventRenderer};
use serde_json::{json, Map, Value};

const ID: &str = "chatcmpl-promptd-1";
const CREATED: u64 = 1_741_569_952;
const MODEL: &str = "claude-sonnet";

fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(path(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn json_fixture(name: &str) -> Value {
    serde_json::from_str(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Compare with the golden file, or rewrite it under `PROMPTD_BLESS=1`.
fn golden(name: &str, actual: &Value) {
    if std::env::var_os("PROMPTD_BLESS").is_some() {
        let text = serde_json::to_string_pretty(actual).unwrap() + "\n";
        std::fs::write(path(name), text).unwrap();
        return;
    }
    let expected = json_fixture(name);
    assert_eq!(
        actual,
        &expected,
        "{name} differs; actual:\n{}",
        serde_json::to_string_pretty(actual).unwrap()
    );
}

/// The (name, data) of every event of a recorded SSE body.
fn events(sse: &str) -> Vec<(String, String)> {
    let mut parser = SseParser::new();
    let mut out = Vec::new();
    parser.feed(sse.as_bytes(), &mut out).expect("no limit");
    parser.finish(&mut out).expect("no limit");
    out.into_iter()
        .map(|e| (e.event.unwrap_or_default(), e.data))
        .collect()
}

fn header() -> ChunkHeader {
    ChunkHeader {
        id: ID.into(),
        created: CREATED as i64,
        model: MODEL.into(),
        system_fingerprint: None,
    }
}

/// The model's events of a recorded Anthropic stream, and the error that ended it if any.
fn decode_stream(sse_fixture: &str) -> (Vec<StreamEvent>, Option<promptd::model::Error>) {
    let mut decoder = EventDecoder::new();
    let mut out = Vec::new();
    for (name, data) in events(&fixture(sse_fixture)) {
        if let Err(e) = decoder.on_event(Some(&name), &data, &mut out) {
            return (out, Some(e));
        }
    }
    (out, None)
}

/// A recorded stream rendered as OpenAI chunks: the chunks, and the error that ended it.
fn translate_stream(
    sse_fixture: &str,
    include_usage: bool,
) -> (Vec<Value>, Option<promptd::model::Error>) {
    let (events, error) = decode_stream(sse_fixture);
    let mut renderer = EventRenderer::new(header(), include_usage);
    let mut chunks = Vec::new();
    for event in &events {
        // The model shown is the one the client asked for (the header's), as in a golden.
        if !matches!(event, StreamEvent::Start { .. }) {
            renderer.render(event, &mut chunks);
        }
    }
    if error.is_none() {
        renderer.finish(&mut chunks);
        let mut again = Vec::new();
        renderer.finish(&mut again);
        assert!(again.is_empty(), "finish yields its chunks once");
    } else if chunks.is_empty() {
        renderer.render(
            &StreamEvent::Start {
                id: None,
                model: None,
            },
            &mut chunks,
        );
    }
    let chunks = chunks
        .iter()
        .map(|c| serde_json::from_str(c).expect("a chunk is JSON"))
        .collect();
    (chunks, error)
}

/// A recorded whole answer as a `chat.completion`.
fn response_from_anthropic(name: &str) -> Value {
    let response = anthropic::decode_response(fixture(name).as_bytes()).expect("decodes");
    openai_chat::render_response(&response, &header())
}

fn choice(chunk: &Value) -> &Value {
    &chunk["choices"][0]
}

/// The tool call deltas of the chunks, in order.
fn tool_deltas(chunks: &[Value]) -> Vec<&Value> {
    chunks
        .iter()
        .filter_map(|c| choice(c)["delta"]["tool_calls"].as_array())
        .flatten()
        .collect()
}

/// Properties every translated stream must have, whatever the golden says.
fn check_stream_shape(chunks: &[Value], include_usage: bool) {
    let first = choice(&chunks[0]);
    assert_eq!(first["delta"], json!({"role": "assistant", "content": ""}));
    for c in chunks {
        assert_eq!(c["id"], ID);
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(c["created"], CREATED);
        assert_eq!(c["model"], MODEL);
        assert_eq!(c.get("usage").is_some(), include_usage, "{c}");
    }
    let with_choices: Vec<&Value> = chunks
        .iter()
        .filter(|c| !c["choices"].as_array().unwrap().is_empty())
        .collect();
    let (last, rest) = with_choices.split_last().unwrap();
    assert!(choice(last)["finish_reason"].is_string(), "{last}");
    assert!(rest.iter().all(|c| choice(c)["finish_reason"].is_null()));
    let usage_chunks: Vec<&Value> = chunks
        .iter()
        .filter(|c| c["choices"].as_array().unwrap().is_empty())
        .collect();
    if include_usage {
        assert_eq!(usage_chunks.len(), 1);
        assert!(std::ptr::eq(usage_chunks[0], chunks.last().unwrap()));
        let u = &usage_chunks[0]["usage"];
        assert!(u["prompt_tokens"].as_u64().unwrap() > 0, "{u}");
        assert!(u["completion_tokens"].as_u64().unwrap() > 0, "{u}");
    } else {
        assert!(usage_chunks.is_empty());
    }
}

/// `arguments` parsed, so that `{"a": 1}` from a stream equals `{"a":1}` from a whole body.
fn normalized(mut completion: Value) -> Value {
    if let Some(calls) = completion["choices"][0]["message"]["tool_calls"].as_array_mut() {
        for call in calls {
            let args = call["function"]["arguments"].as_str().unwrap();
            call["function"]["arguments"] = serde_json::from_str(args).unwrap();
        }
    }
    completion
}

#[test]
fn request_of_a_tool_loop_is_the_recorded_anthropic_body() {
    let openai = fixture("openai_compat_request_tool_loop.json");
    let mut decoded = openai_chat::decode_request(openai.as_bytes()).expect("decodes");
    decoded.request.model = "claude-sonnet-4-20250514".into();
    let options = EncodeOptions {
        stream: decoded.request.stream,
        default_max_tokens: 4096,
    };
    let encoded =
        anthropic::encode_request(&decoded.request, &decoded.hints, &options).expect("encodes");
    let body: Value = serde_json::from_slice(&encoded.body).expect("JSON");
    assert_eq!(
        body,
        json_fixture("openai_compat_request_tool_loop.anthropic.json")
    );
    // Hints only, none of which changes the answer: OpenAI's metadata and stored-completions
    // flag, `n: 1`, how usage is reported, the model the client named, a tool's `strict`.
    let mut dropped = encoded.dropped;
    dropped.sort();
    assert_eq!(
        dropped,
        [
            "metadata",
            "model",
            "n",
            "store",
            "stream_options",
            "strict"
        ]
    );
}

#[test]
fn text_stream() {
    let (chunks, error) = translate_stream("anthropic_stream.sse", true);
    assert!(error.is_none());
    check_stream_shape(&chunks, true);
    let text: String = chunks
        .iter()
        .filter_map(|c| choice(c)["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "Hello! How can I help you today?");
    assert_eq!(choice(&chunks[chunks.len() - 2])["finish_reason"], "stop");
    assert_eq!(
        chunks.last().unwrap()["usage"],
        json!({"prompt_tokens": 14, "completion_tokens": 12, "total_tokens": 26})
    );
    golden(
        "openai_compat_text_stream.chunks.json",
        &Value::from(chunks),
    );
}

#[test]
fn text_then_tool_call_stream() {
    let (chunks, error) = translate_stream("anthropic_tool_use_stream.sse", true);
    assert!(error.is_none());
    check_stream_shape(&chunks, true);
    // The text comes before the call, in one stream.
    let first_tool = chunks
        .iter()
        .position(|c| choice(c)["delta"].get("tool_calls").is_some())
        .unwrap();
    let text: String = chunks[..first_tool]
        .iter()
        .filter_map(|c| choice(c)["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "I'll check the weather.");
    let deltas = tool_deltas(&chunks);
    // Anthropic's block index is 1 (the text block is 0); the OpenAI index is 0.
    assert_eq!(
        deltas[0],
        &json!({"index": 0, "id": "toolu_01A09q90qw90lq917835lq9", "type": "function",
            "function": {"name": "get_weather", "arguments": ""}})
    );
    // Every non-empty fragment, in order; the recorded empty one adds no chunk.
    let pieces: Vec<&str> = deltas[1..]
        .iter()
        .map(|d| {
            assert_eq!(d["index"], 0);
            assert!(d.get("id").is_none() && d["function"].get("name").is_none());
            d["function"]["arguments"].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        pieces,
        ["{\"city\": ", "\"Par", "is\", \"unit\"", ": \"c\"}"]
    );
    assert_eq!(
        choice(&chunks[chunks.len() - 2])["finish_reason"],
        "tool_calls"
    );
    assert_eq!(
        chunks.last().unwrap()["usage"],
        json!({"prompt_tokens": 60, "completion_tokens": 40, "total_tokens": 100})
    );
    golden(
        "openai_compat_tool_use_stream.chunks.json",
        &Value::from(chunks),
    );
}

#[test]
fn two_parallel_tool_calls_stream() {
    let (chunks, error) =
        translate_stream("openai_compat_anthropic_parallel_tool_use_stream.sse", true);
    assert!(error.is_none());
    check_stream_shape(&chunks, true);
    let deltas = tool_deltas(&chunks);
    let starts: Vec<(u64, &str)> = deltas
        .iter()
        .filter(|d| d.get("id").is_some())
        .map(|d| (d["index"].as_u64().unwrap(), d["id"].as_str().unwrap()))
        .collect();
    assert_eq!(
        starts,
        [
            (0, "toolu_01T1x1fJ34qAmk2tNTrN7Up6"),
            (1, "toolu_01XJ3bMh6v9bQ8kZz2Wd4rKf")
        ]
    );
    let arguments = |index: u64| -> String {
        deltas
            .iter()
            .filter(|d| d["index"] == index)
            .filter_map(|d| d["function"]["arguments"].as_str())
            .collect()
    };
    assert_eq!(arguments(0), r#"{"city": "Paris", "unit": "c"}"#);
    assert_eq!(arguments(1), r#"{"city": "Rome", "unit": "c"}"#);
    // Cache reads are prompt tokens too.
    assert_eq!(
        chunks.last().unwrap()["usage"],
        json!({"prompt_tokens": 1436, "completion_tokens": 97, "total_tokens": 1533,
            "prompt_tokens_details": {"cached_tokens": 1024}})
    );
    golden(
        "openai_compat_parallel_tool_use_stream.chunks.json",
        &Value::from(chunks),
    );
}

#[test]
fn without_include_usage_there_is_no_usage_chunk() {
    let (chunks, error) = translate_stream("anthropic_tool_use_stream.sse", false);
    assert!(error.is_none());
    check_stream_shape(&chunks, false);
    assert_eq!(
        choice(chunks.last().unwrap())["finish_reason"],
        "tool_calls"
    );
}

#[test]
fn overloaded_mid_stream_ends_with_the_providers_error() {
    let (chunks, error) = translate_stream("anthropic_stream_overloaded.sse", true);
    let deltas: Vec<&Value> = chunks.iter().map(|c| &choice(c)["delta"]).collect();
    assert_eq!(
        deltas,
        [
            &json!({"role": "assistant", "content": ""}),
            &json!({"content": "Hello"})
        ]
    );
    let error = error.expect("the stream failed");
    assert_eq!(error.kind, ErrorKind::Overloaded);
    assert_eq!(error.code.as_deref(), Some("overloaded_error"));
    assert_eq!(error.message, "Overloaded");
    // The same error for a non-2xx answer.
    let whole = anthropic::decode_error(529, fixture("anthropic_error_529.json").as_bytes());
    assert_eq!((whole.kind, whole.code), (error.kind, error.code));
    let bad = anthropic::decode_error(400, fixture("anthropic_error_400.json").as_bytes());
    assert_eq!(bad.kind, ErrorKind::InvalidRequest);
    assert_eq!(bad.message, "max_tokens: Field required");
}

#[test]
fn whole_answers() {
    let cases = [
        (
            "anthropic_message.json",
            "openai_compat_message.completion.json",
        ),
        (
            "anthropic_tool_use.json",
            "openai_compat_tool_use.completion.json",
        ),
        (
            "openai_compat_anthropic_parallel_tool_use.json",
            "openai_compat_parallel_tool_use.completion.json",
        ),
    ];
    for (anthropic, expected) in cases {
        golden(expected, &response_from_anthropic(anthropic));
    }
    let tool = response_from_anthropic("anthropic_tool_use.json");
    let message = &tool["choices"][0]["message"];
    assert_eq!(message["content"], "I'll check the weather.");
    assert_eq!(
        message["tool_calls"],
        json!([{"id": "toolu_01A09q90qw90lq917835lq9", "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\",\"unit\":\"c\"}"}}])
    );
    assert_eq!(tool["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        tool["usage"],
        json!({"prompt_tokens": 60, "completion_tokens": 40, "total_tokens": 100})
    );
}

#[test]
fn a_stream_assembles_to_its_whole_answer() {
    let pairs = [
        ("anthropic_stream.sse", "anthropic_message.json"),
        ("anthropic_tool_use_stream.sse", "anthropic_tool_use.json"),
        (
            "openai_compat_anthropic_parallel_tool_use_stream.sse",
            "openai_compat_anthropic_parallel_tool_use.json",
        ),
    ];
    for (sse, whole) in pairs {
        let (chunks, error) = translate_stream(sse, true);
        assert!(error.is_none());
        let streamed = normalized(assemble(&chunks));
        let answered = normalized(response_from_anthropic(whole));
        assert_eq!(streamed, answered, "{sse} vs {whole}");
        // And the model's events assemble to the model's whole answer.
        let mut assembler = Assembler::default();
        for event in decode_stream(sse).0 {
            assembler.push(event).expect("within bounds");
        }
        let mut assembled = assembler.finish().expect("no error");
        let mut decoded = anthropic::decode_response(fixture(whole).as_bytes()).expect("decodes");
        for r in [&mut assembled, &mut decoded] {
            for block in &mut r.blocks {
                if let promptd::model::Block::ToolCall { arguments, .. } = block {
                    let v: Value = serde_json::from_str(arguments).expect("JSON arguments");
                    *arguments = v.to_string();
                }
            }
        }
        assert_eq!(assembled.blocks, decoded.blocks, "{sse} vs {whole}");
        assert_eq!(assembled.finish, decoded.finish, "{sse} vs {whole}");
    }
}

/// Fold `chat.completion.chunk`s into the `chat.completion` they spell (content pieces and
/// tool call `arguments` concatenated per `index`, the last `finish_reason`, the usage chunk's
/// `usage`), to check that a stream and its non-stream twin say the same thing.
fn assemble(chunks: &[Value]) -> Value {
    let first = chunks.first().unwrap_or(&Value::Null);
    let mut content = String::new();
    // By order of first appearance, never at the chunk's index.
    let mut calls: Vec<(u64, Map<String, Value>)> = Vec::new();
    let mut reason = Value::Null;
    let mut usage = Value::Null;
    for chunk in chunks {
        if let Some(u) = chunk.get("usage").filter(|u| !u.is_null()) {
            usage = u.clone();
        }
        let choices = chunk.get("choices").and_then(Value::as_array);
        for choice in choices.map(Vec::as_slice).unwrap_or_default() {
            if let Some(r) = choice.get("finish_reason").filter(|r| !r.is_null()) {
                reason = r.clone();
            }
            let delta = choice.get("delta").unwrap_or(&Value::Null);
            if let Some(piece) = delta.get("content").and_then(Value::as_str) {
                content.push_str(piece);
            }
            let tool_deltas = delta.get("tool_calls").and_then(Value::as_array);
            for call in tool_deltas.map(Vec::as_slice).unwrap_or_default() {
                let index = call.get("index").and_then(Value::as_u64).unwrap_or(0);
                let at = match calls.iter().position(|(i, _)| *i == index) {
                    Some(at) => at,
                    None => {
                        calls.push((index, Map::new()));
                        calls.len() - 1
                    }
                };
                merge_call(&mut calls[at].1, call);
            }
        }
    }
    let content = match (content.is_empty(), calls.is_empty()) {
        (true, false) => Value::Null,
        _ => Value::String(content),
    };
    let mut message = json!({"role": "assistant", "content": content, "refusal": null});
    if !calls.is_empty() {
        message["tool_calls"] = calls.into_iter().map(|(_, c)| Value::Object(c)).collect();
    }
    json!({
        "id": first.get("id").cloned().unwrap_or(Value::Null),
        "object": "chat.completion",
        "created": first.get("created").cloned().unwrap_or(Value::Null),
        "model": first.get("model").cloned().unwrap_or(Value::Null),
        "system_fingerprint": null,
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": reason}],
        "usage": usage,
    })
}

/// Merge one streamed tool call delta into the call it continues.
fn merge_call(call: &mut Map<String, Value>, delta: &Value) {
    for key in ["id", "type"] {
        if let Some(v) = delta.get(key).filter(|v| !v.is_null()) {
            call.insert(key.into(), v.clone());
        }
    }
    let function = call
        .entry("function")
        .or_insert_with(|| json!({"name": "", "arguments": ""}));
    if let Some(name) = delta.pointer("/function/name").and_then(Value::as_str) {
        function["name"] = Value::from(name);
    }
    if let Some(piece) = delta.pointer("/function/arguments").and_then(Value::as_str) {
        let mut arguments = function["arguments"].as_str().unwrap_or("").to_owned();
        arguments.push_str(piece);
        function["arguments"] = Value::from(arguments);
    }
}
