//! An OpenAI-kind provider's answers as the model: a whole `chat.completion` body as a
//! [`Response`] ([`decode_response`]) and each `chat.completion.chunk` of a stream as
//! [`StreamEvent`]s ([`EventDecoder`]).
//!
//! | OpenAI | model |
//! |---|---|
//! | `id`, `model` (a chunk's: on the first one) | `Response::id`, `model`; `StreamEvent::Start` |
//! | `message.reasoning_content` / `delta.reasoning_content` (DeepSeek and compatible servers) | a Reasoning block (first in a whole answer; stream index [`REASONING_INDEX`]) |
//! | `message.content` / `delta.content` | a Text block (stream index 0) |
//! | `message.tool_calls[]` / `delta.tool_calls[]` | ToolCall blocks in order (stream index 1 + the call's `index`: `BlockStart` with its `id` and `function.name` at the call's first delta, then `ToolArgsDelta` for each non-empty `arguments` piece) |
//! | `finish_reason` | the model's finish reason ([`finish_reason_of`](super::finish_reason_of)) |
//! | `usage` | [`Usage`]: `prompt_tokens_details.cached_tokens` is `cache_read` and is taken out of `input`; `completion_tokens_details.reasoning_tokens` is `reasoning` |
//! | a chunk's `error` | [`Error`] (the provider's `type` and `code` kept) |
//!
//! Only the first choice is read (promptd never asks for `n > 1`). A call's `id` and name are
//! those of its first delta (OpenAI sends them whole there). Everything the upstream controls
//! is bounded before it sizes anything: a tool call `index` at or past
//! [`MAX_TOOL_CALLS`] is an error (so no more calls than that), and calls are remembered in a
//! fixed bit set, never in a table the upstream's index sizes.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;

use super::finish_reason_of;
use crate::model::{
    Block, BlockKind, Error, ErrorKind, Response, StreamEvent, Usage, MAX_TOOL_CALLS,
};

/// The stream index of the reasoning block (past every tool call's, under the model's
/// [`MAX_BLOCKS`](crate::model::MAX_BLOCKS)).
pub const REASONING_INDEX: usize = MAX_TOOL_CALLS + 1;

// The seen-calls bit set holds MAX_TOOL_CALLS bits.
const _: () = assert!(MAX_TOOL_CALLS <= 128);

#[derive(Deserialize)]
struct ChatCompletion {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct Choice {
    message: WireMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    reasoning_content: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<WireToolCall>>,
}

#[derive(Deserialize)]
struct WireToolCall {
    #[serde(default)]
    id: String,
    function: WireFunction,
}

#[derive(Deserialize)]
struct WireFunction {
    #[serde(default)]
    name: String,
    #[serde(default)]
    arguments: String,
}

/// OpenAI's `usage`: `prompt_tokens` counts every prompt token, the cached ones
/// (`prompt_tokens_details.cached_tokens`) included; `completion_tokens` counts the reasoning
/// ones (`completion_tokens_details.reasoning_tokens`). The details may be absent or `null`.
#[derive(Deserialize, Clone, Copy)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
    #[serde(default)]
    completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Deserialize, Clone, Copy)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

#[derive(Deserialize, Clone, Copy)]
struct CompletionDetails {
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

impl From<WireUsage> for Usage {
    /// The cached part is taken out of `input` (never more than the prompt, so the total stays
    /// `prompt_tokens`); OpenAI reports no cache writes.
    fn from(u: WireUsage) -> Usage {
        let cached = u
            .prompt_tokens_details
            .and_then(|d| d.cached_tokens)
            .unwrap_or(0)
            .min(u.prompt_tokens);
        Usage {
            input: u.prompt_tokens - cached,
            output: u.completion_tokens,
            cache_read: cached,
            cache_write: 0,
            reasoning: u
                .completion_tokens_details
                .and_then(|d| d.reasoning_tokens)
                .unwrap_or(0),
        }
    }
}

fn unreadable(message: String) -> Error {
    Error::new(ErrorKind::Upstream, message)
}

/// A whole `chat.completion` body as the model's answer: reasoning (when the server sends
/// `reasoning_content`), text (when there is some), then the tool calls.
pub fn decode_response(body: &[u8]) -> Result<Response, Error> {
    let parsed: ChatCompletion = crate::wire::json::from_bytes(body)
        .map_err(|e| unreadable(format!("chat completion body: {e}")))?;
    let choice = parsed
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| unreadable("chat completion has no choices".into()))?;
    let message = choice.message;
    let calls = message.tool_calls.unwrap_or_default();
    if calls.len() > MAX_TOOL_CALLS {
        return Err(unreadable(format!(
            "{} tool calls: more than promptd's bound of {MAX_TOOL_CALLS}",
            calls.len()
        )));
    }
    let mut blocks = Vec::with_capacity(2 + calls.len());
    if let Some(text) = message.reasoning_content.filter(|t| !t.is_empty()) {
        blocks.push(Block::Reasoning {
            text,
            signature: None,
            encrypted: None,
            redacted: None,
        });
    }
    if let Some(text) = message.content.filter(|t| !t.is_empty()) {
        blocks.push(Block::Text(text));
    }
    blocks.extend(calls.into_iter().map(|c| Block::ToolCall {
        id: c.id,
        name: c.function.name,
        arguments: c.function.arguments,
    }));
    Ok(Response {
        id: parsed.id,
        model: parsed.model,
        blocks,
        finish: choice.finish_reason.as_deref().map(finish_reason_of),
        usage: parsed.usage.map(Usage::from).unwrap_or_default(),
    })
}

/// A chunk; its `id` and `model` borrowed from the text (every chunk repeats them, only the
/// first one's are kept).
#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    model: Option<Cow<'a, str>>,
    #[serde(default)]
    choices: Vec<ChunkChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct ChunkChoice {
    #[serde(default)]
    delta: Option<Delta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    reasoning_content: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<ToolCallDelta>>,
}

#[derive(Deserialize)]
struct ToolCallDelta {
    #[serde(default)]
    index: u64,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<FunctionDelta>,
}

#[derive(Deserialize)]
struct FunctionDelta {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}

/// What a chunk was, besides its events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChunkFacts {
    /// It only reports usage (`choices: []` and a `usage`): OpenAI sends it only to a client
    /// that asked (`stream_options.include_usage`).
    pub usage_only: bool,
}

/// Decodes one OpenAI stream's chunks, in order, into the model's events.
#[derive(Debug, Default)]
pub struct EventDecoder {
    started: bool,
    /// Bit `i`: the call of `index` i has started.
    seen_calls: u128,
}

impl EventDecoder {
    pub fn new() -> EventDecoder {
        EventDecoder::default()
    }

    /// The events of one chunk's JSON (the text of an SSE `data:` line other than `[DONE]`),
    /// appended to `out`. A chunk with an `error` is the stream's failure; a tool call index
    /// past the bound is an error (the stream must fail: its answer cannot be held).
    pub fn on_chunk(
        &mut self,
        data: &str,
        out: &mut Vec<StreamEvent>,
    ) -> Result<ChunkFacts, Error> {
        let chunk: Chunk = serde_json::from_str(data)
            .map_err(|e| unreadable(format!("unreadable stream event: {e}")))?;
        if let Some(error) = chunk.error {
            return Err(stream_error(&error));
        }
        let facts = ChunkFacts {
            usage_only: chunk.usage.is_some() && chunk.choices.is_empty(),
        };
        if !self.started {
            self.started = true;
            out.push(StreamEvent::Start {
                id: chunk.id.map(Cow::into_owned),
                model: chunk.model.map(Cow::into_owned),
            });
        }
        // Only the first choice is used (promptd never asks for n > 1); the usage chunk has none.
        if let Some(choice) = chunk.choices.into_iter().next() {
            if let Some(delta) = choice.delta {
                if let Some(text) = delta.reasoning_content.filter(|t| !t.is_empty()) {
                    out.push(StreamEvent::ReasoningDelta {
                        index: REASONING_INDEX,
                        text,
                    });
                }
                if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
                    out.push(StreamEvent::TextDelta { index: 0, text });
                }
                for call in delta.tool_calls.unwrap_or_default() {
                    self.tool_call(call, out)?;
                }
            }
            if let Some(reason) = choice.finish_reason {
                out.push(StreamEvent::Finish(finish_reason_of(&reason)));
            }
        }
        if let Some(usage) = chunk.usage {
            out.push(StreamEvent::Usage(usage.into()));
        }
        Ok(facts)
    }

    /// A call's fragment: its start at its first appearance, then its arguments' piece.
    fn tool_call(&mut self, call: ToolCallDelta, out: &mut Vec<StreamEvent>) -> Result<(), Error> {
        if call.index >= MAX_TOOL_CALLS as u64 {
            return Err(unreadable(format!(
                "tool call index {} is beyond the limit of {MAX_TOOL_CALLS} tool calls in one \
                 answer",
                call.index
            )));
        }
        let bit = 1u128 << call.index;
        let index = 1 + call.index as usize;
        let (name, arguments) = match call.function {
            Some(f) => (f.name, f.arguments),
            None => (None, None),
        };
        if self.seen_calls & bit == 0 {
            self.seen_calls |= bit;
            out.push(StreamEvent::BlockStart {
                index,
                kind: BlockKind::ToolCall {
                    id: call.id.unwrap_or_default(),
                    name: name.unwrap_or_default(),
                },
            });
        }
        if let Some(json) = arguments.filter(|a| !a.is_empty()) {
            out.push(StreamEvent::ToolArgsDelta { index, json });
        }
        Ok(())
    }
}

/// The model's error of a chunk's `error` object: its `message` (or the whole object when it
/// has none), `type` and `code`.
fn stream_error(error: &Value) -> Error {
    let text = |key: &str| match error.get(key) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let mut e = Error::new(
        ErrorKind::Upstream,
        text("message").unwrap_or_else(|| error.to_string()),
    );
    e.provider_type = text("type");
    e.code = text("code");
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Assembler, FinishReason};

    /// The `data:` texts of a recorded SSE body, without `[DONE]`.
    fn datas(sse: &str) -> Vec<&str> {
        sse.lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter(|d| *d != "[DONE]")
            .collect()
    }

    fn assembled(sse: &str) -> Response {
        let mut decoder = EventDecoder::new();
        let mut assembler = Assembler::default();
        let mut events = Vec::new();
        for data in datas(sse) {
            decoder.on_chunk(data, &mut events).expect("decodes");
            for event in events.drain(..) {
                assembler.push(event).expect("in bounds");
            }
        }
        assembler.finish().expect("no error")
    }

    #[test]
    fn recorded_answers_whole_and_streamed_are_the_same_response() {
        for (body, sse) in [
            (
                include_str!("../../../tests/fixtures/openai_chat.json"),
                include_str!("../../../tests/fixtures/openai_stream.sse"),
            ),
            (
                include_str!("../../../tests/fixtures/openai_tool_call.json"),
                include_str!("../../../tests/fixtures/openai_tool_call_stream.sse"),
            ),
        ] {
            let whole = decode_response(body.as_bytes()).expect("decodes");
            let streamed = assembled(sse);
            assert_eq!(streamed.text(), whole.text());
            assert_eq!(
                streamed.tool_calls().collect::<Vec<_>>(),
                whole.tool_calls().collect::<Vec<_>>()
            );
            assert_eq!(streamed.finish, whole.finish);
            assert_eq!(streamed.model, whole.model);
            assert_eq!(streamed.id, whole.id);
        }
        let whole = decode_response(
            include_bytes!("../../../tests/fixtures/openai_tool_call.json").as_slice(),
        )
        .expect("decodes");
        assert_eq!(
            whole.tool_calls().collect::<Vec<_>>(),
            [(
                "call_weather_1",
                "get_weather",
                "{\"city\":\"Paris\",\"unit\":\"c\"}"
            )]
        );
        assert_eq!(whole.finish, Some(FinishReason::ToolCalls));
        assert_eq!(whole.id.as_deref(), Some("chatcmpl-tool456"));
        assert_eq!((whole.usage.input, whole.usage.output), (50, 18));
        let text = decode_response(include_bytes!("../../../tests/fixtures/openai_chat.json"))
            .expect("decodes");
        assert_eq!(
            text.blocks,
            [Block::Text("Hello! How can I help you today?".into())]
        );
        assert_eq!(text.finish, Some(FinishReason::Stop));
    }

    #[test]
    fn usage_takes_the_cached_tokens_out_of_input_and_keeps_reasoning() {
        let body = br#"{"choices":[{"message":{"content":"x","reasoning_content":"hm"},
            "finish_reason":"length"}],"usage":{"prompt_tokens":30,"completion_tokens":10,
            "prompt_tokens_details":{"cached_tokens":20},
            "completion_tokens_details":{"reasoning_tokens":4}}}"#;
        let r = decode_response(body).expect("decodes");
        assert_eq!(
            r.usage,
            Usage {
                input: 10,
                output: 10,
                cache_read: 20,
                cache_write: 0,
                reasoning: 4,
            }
        );
        assert_eq!(r.finish, Some(FinishReason::Length));
        assert!(matches!(&r.blocks[0], Block::Reasoning { text, .. } if text == "hm"));
        assert_eq!(r.text(), "x");
        let nulls = br#"{"model":"gpt-4o","choices":[{"message":{"role":"assistant","content":null,
            "tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]},
            "finish_reason":"tool_calls"}],"usage":{"prompt_tokens":5,"completion_tokens":2,
            "prompt_tokens_details":null,"completion_tokens_details":null}}"#;
        let r = decode_response(nulls).expect("decodes");
        assert_eq!(r.text(), "");
        assert_eq!(r.blocks.len(), 1);
        assert_eq!((r.usage.total_input(), r.usage.output), (5, 2));
        assert!(decode_response(b"{\"choices\": []}").is_err());
        assert!(decode_response(b"<html>").is_err());
    }

    #[test]
    fn chunks_become_start_text_tool_calls_usage_and_finish() {
        let mut d = EventDecoder::new();
        let mut out = Vec::new();
        for data in [
            r#"{"id":"chatcmpl-1","model":"gpt-x","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#,
            r#"{"id":"chatcmpl-1","model":"gpt-x","choices":[{"index":0,"delta":{"content":"Hi"}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":2,"id":"c1","type":"function","function":{"name":"f","arguments":""}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":2,"function":{"arguments":"{}"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
        ] {
            assert_eq!(d.on_chunk(data, &mut out), Ok(ChunkFacts::default()));
        }
        let facts = d
            .on_chunk(
                r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1}}"#,
                &mut out,
            )
            .expect("decodes");
        assert!(facts.usage_only);
        assert_eq!(
            out,
            vec![
                StreamEvent::Start {
                    id: Some("chatcmpl-1".into()),
                    model: Some("gpt-x".into())
                },
                StreamEvent::TextDelta {
                    index: 0,
                    text: "Hi".into()
                },
                StreamEvent::BlockStart {
                    index: 3,
                    kind: BlockKind::ToolCall {
                        id: "c1".into(),
                        name: "f".into()
                    }
                },
                StreamEvent::ToolArgsDelta {
                    index: 3,
                    json: "{}".into()
                },
                StreamEvent::Finish(FinishReason::ToolCalls),
                StreamEvent::Usage(Usage {
                    input: 3,
                    output: 1,
                    ..Usage::default()
                }),
            ]
        );
    }

    #[test]
    fn tool_call_indexes_are_bounded_and_never_size_anything() {
        let call = |index: u64| {
            format!(
                r#"{{"choices":[{{"delta":{{"tool_calls":[{{"index":{index},"id":"c","function":{{"name":"f"}}}}]}}}}]}}"#
            )
        };
        let mut d = EventDecoder::new();
        let mut out = Vec::new();
        let err = d.on_chunk(&call(1_000_000_000_000), &mut out).unwrap_err();
        assert!(err.message.contains("beyond the limit of 128"), "{err}");
        let mut d = EventDecoder::new();
        let failed = (0..200u64)
            .map(|i| d.on_chunk(&call(i), &mut out))
            .position(|r| r.is_err());
        assert_eq!(failed, Some(MAX_TOOL_CALLS));
        let mut assembler = Assembler::default();
        for event in out.drain(..) {
            assembler.push(event).expect("within the model's bounds");
        }
        assert_eq!(assembler.response().tool_calls().count(), MAX_TOOL_CALLS);
    }

    #[test]
    fn an_error_chunk_is_the_streams_failure() {
        let sse = include_str!("../../../tests/fixtures/openai_stream_error_event.sse");
        let mut d = EventDecoder::new();
        let mut out = Vec::new();
        let results: Vec<_> = datas(sse)
            .into_iter()
            .map(|data| d.on_chunk(data, &mut out))
            .collect();
        let err = results.into_iter().find_map(Result::err).expect("an error");
        assert_eq!(
            err.message,
            "The server had an error while processing your request."
        );
        assert_eq!(err.provider_type.as_deref(), Some("server_error"));
        let err = d.on_chunk(r#"{"error":"boom"}"#, &mut out).unwrap_err();
        assert_eq!(err.message, "\"boom\"");
        assert!(d.on_chunk("{not json", &mut out).is_err());
    }
}
