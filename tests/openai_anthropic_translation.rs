//! Golden tests of `promptd::api::openai::anthropic` over recorded Anthropic bodies and
//! streams (`tests/fixtures/anthropic_*`, `tests/fixtures/openai_compat_anthropic_*`).
//!
//! The expected OpenAI bodies are `tests/fixtures/openai_compat_*.{chunks,completion}.json`.
//! After an intended change of the output, `PROMPTD_BLESS=1 cargo test --test
//! openai_anthropic_translation` rewrites them from the current output: review the diff.
//! Besides the goldens, each stream test asserts the properties gateways get wrong (tool call
//! indexes, the first delta of a call, no lost fragment, usage never zero), so a bad bless
//! still fails.

use std::path::PathBuf;

use promptd::api::openai::anthropic::{
    assemble, error_from_anthropic, include_usage, request_to_anthropic, response_from_anthropic,
    StreamTranslator,
};
use promptd::providers::sse::SseParser;
use serde_json::{json, Value};

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
fn events(sse: &str) -> Vec<(String, Value)> {
    let mut parser = SseParser::new();
    let mut out = Vec::new();
    parser.feed(sse.as_bytes(), &mut out).expect("no limit");
    parser.finish(&mut out).expect("no limit");
    out.into_iter()
        .map(|e| {
            let data = serde_json::from_str(&e.data).unwrap_or_else(|err| panic!("{e:?}: {err}"));
            (e.event.unwrap_or_default(), data)
        })
        .collect()
}

/// Translate a recorded stream: the chunks, and the error that ended it if any.
fn translate_stream(sse_fixture: &str, include_usage: bool) -> (Vec<Value>, Option<Value>) {
    let mut t = StreamTranslator::new(ID, CREATED, MODEL, include_usage);
    let mut chunks = Vec::new();
    for (name, data) in events(&fixture(sse_fixture)) {
        match t.event(&name, &data) {
            Ok(more) => chunks.extend(more),
            Err(error) => return (chunks, Some(error)),
        }
    }
    chunks.extend(t.finish());
    assert!(t.finish().is_empty(), "finish yields its chunks once");
    (chunks, None)
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
    let openai = json_fixture("openai_compat_request_tool_loop.json");
    let body = request_to_anthropic(&openai, "claude-sonnet-4-20250514", 4096).unwrap();
    assert_eq!(
        body,
        json_fixture("openai_compat_request_tool_loop.anthropic.json")
    );
    assert!(include_usage(&openai));
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
fn overloaded_mid_stream_ends_with_an_openai_error() {
    let (chunks, error) = translate_stream("anthropic_stream_overloaded.sse", true);
    let deltas: Vec<&Value> = chunks.iter().map(|c| &choice(c)["delta"]).collect();
    assert_eq!(
        deltas,
        [
            &json!({"role": "assistant", "content": ""}),
            &json!({"content": "Hello"})
        ]
    );
    assert_eq!(
        error,
        Some(
            json!({"error": {"message": "Overloaded", "type": "server_error",
            "param": null, "code": "overloaded_error"}})
        )
    );
    // The same body for a non-2xx answer.
    assert_eq!(
        error_from_anthropic(&json_fixture("anthropic_error_529.json")),
        error.unwrap()
    );
    assert_eq!(
        error_from_anthropic(&json_fixture("anthropic_error_400.json")),
        json!({"error": {"message": "max_tokens: Field required",
            "type": "invalid_request_error", "param": null, "code": "invalid_request_error"}})
    );
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
        let completion = response_from_anthropic(&json_fixture(anthropic), ID, CREATED, MODEL);
        golden(expected, &completion);
    }
    let tool =
        response_from_anthropic(&json_fixture("anthropic_tool_use.json"), ID, CREATED, MODEL);
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
        let answered = normalized(response_from_anthropic(
            &json_fixture(whole),
            ID,
            CREATED,
            MODEL,
        ));
        assert_eq!(streamed, answered, "{sse} vs {whole}");
    }
}
