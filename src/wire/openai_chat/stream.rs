//! Model stream events as OpenAI `chat.completion.chunk`s ([`EventRenderer`]): for an OpenAI
//! client whose answer came from a provider of another wire, or from a cache entry.
//!
//! The first chunk carries `delta: {role: assistant, content: ""}`; text deltas become
//! `delta.content`. Tool calls are numbered 0, 1, ... in the order their blocks start (a
//! model block index also counts text blocks, so it is not OpenAI's `index`); a call's first
//! delta carries its `id`, `type: function`, `function.name` and `arguments: ""`, every
//! non-empty arguments piece follows. The finish event gives the chunk with `finish_reason`
//! ([`super::finish_reason`]); [`EventRenderer::finish`] adds it (as `stop`) when no finish
//! came, then the usage chunk (`choices: []`) for a client that asked for it
//! (`stream_options.include_usage`). Reasoning and signatures have no place in a chat chunk and
//! are not rendered.

use serde_json::{json, Value};

use super::{finish_reason, usage_json};
use crate::model::{BlockKind, FinishReason, StreamEvent, Usage, MAX_TOOL_CALLS};

/// The fields every chunk carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkHeader {
    pub id: String,
    pub created: i64,
    pub model: String,
    /// `null` in the chunks when `None`.
    pub system_fingerprint: Option<String>,
}

/// Renders one stream's events, in order, as chunk JSON texts.
#[derive(Debug)]
pub struct EventRenderer {
    header: ChunkHeader,
    include_usage: bool,
    /// The role chunk went out.
    started: bool,
    /// (model block index, OpenAI tool call index) of each tool call block.
    tools: Vec<(usize, usize)>,
    usage: Usage,
    finish_sent: bool,
    usage_sent: bool,
}

impl EventRenderer {
    /// `header` goes into every chunk; `include_usage` is the client's
    /// `stream_options.include_usage` (then every chunk has `usage: null` but the last).
    pub fn new(header: ChunkHeader, include_usage: bool) -> Self {
        EventRenderer {
            header,
            include_usage,
            started: false,
            tools: Vec::new(),
            usage: Usage::default(),
            finish_sent: false,
            usage_sent: false,
        }
    }

    /// Nothing was rendered yet.
    pub fn is_fresh(&self) -> bool {
        !self.started
    }

    /// The chunks of one event (often none), appended to `out`. An error event renders
    /// nothing: the door ends the stream with its own error event.
    pub fn render(&mut self, event: &StreamEvent, out: &mut Vec<String>) {
        match event {
            StreamEvent::Start { model, .. } => {
                if let Some(model) = model.as_deref().filter(|m| !m.is_empty()) {
                    if !self.started {
                        model.clone_into(&mut self.header.model);
                    }
                }
                self.start(out);
            }
            StreamEvent::BlockStart {
                index,
                kind: BlockKind::ToolCall { id, name },
            } => {
                self.start(out);
                if self.tools.len() >= MAX_TOOL_CALLS || self.tool(*index).is_some() {
                    return; // the decoder bounds tool calls; a block starts once
                }
                let call = self.tools.len();
                self.tools.push((*index, call));
                out.push(self.chunk(
                    json!({"tool_calls": [{"index": call, "id": id, "type": "function",
                        "function": {"name": name, "arguments": ""}}]}),
                    None,
                ));
            }
            StreamEvent::TextDelta { text, .. } if !text.is_empty() => {
                self.start(out);
                out.push(self.chunk(json!({ "content": text }), None));
            }
            StreamEvent::ToolArgsDelta { index, json } if !json.is_empty() => {
                if let Some(call) = self.tool(*index) {
                    self.start(out);
                    out.push(self.chunk(
                        json!({"tool_calls": [{"index": call, "function": {"arguments": json}}]}),
                        None,
                    ));
                }
            }
            StreamEvent::Usage(usage) => self.usage.max(*usage),
            StreamEvent::Finish(reason) => {
                self.start(out);
                self.end(Some(reason), out);
            }
            _ => {}
        }
    }

    /// After the last event: the finish chunk when no finish event came (as `stop`), then
    /// the usage chunk for a client that asked. Calling it again yields nothing.
    pub fn finish(&mut self, out: &mut Vec<String>) {
        self.start(out);
        self.end(None, out);
        if self.include_usage && !self.usage_sent {
            self.usage_sent = true;
            let mut chunk = self.object(json!([]));
            chunk["usage"] = usage_json(&self.usage);
            out.push(chunk.to_string());
        }
    }

    fn tool(&self, index: usize) -> Option<usize> {
        self.tools
            .iter()
            .find(|(block, _)| *block == index)
            .map(|(_, call)| *call)
    }

    fn start(&mut self, out: &mut Vec<String>) {
        if !self.started {
            self.started = true;
            out.push(self.chunk(json!({"role": "assistant", "content": ""}), None));
        }
    }

    fn end(&mut self, reason: Option<&FinishReason>, out: &mut Vec<String>) {
        if !self.finish_sent {
            self.finish_sent = true;
            out.push(self.chunk(json!({}), Some(finish_reason(reason))));
        }
    }

    fn object(&self, choices: Value) -> Value {
        json!({
            "id": self.header.id,
            "object": "chat.completion.chunk",
            "created": self.header.created,
            "model": self.header.model,
            "system_fingerprint": self.header.system_fingerprint,
            "choices": choices,
        })
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> String {
        let mut chunk = self.object(
            json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]),
        );
        if self.include_usage {
            chunk["usage"] = Value::Null; // as OpenAI: null on every chunk but the last
        }
        chunk.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(chunks: &[String]) -> Vec<Value> {
        chunks
            .iter()
            .map(|c| serde_json::from_str(c).expect("json"))
            .collect()
    }

    fn header() -> ChunkHeader {
        ChunkHeader {
            id: "chatcmpl-1".into(),
            created: 7,
            model: "m".into(),
            system_fingerprint: None,
        }
    }

    #[test]
    fn text_then_two_tool_calls_then_finish_and_usage() {
        let mut r = EventRenderer::new(header(), true);
        let mut out = Vec::new();
        for event in [
            StreamEvent::Start {
                id: None,
                model: Some("answered".into()),
            },
            StreamEvent::TextDelta {
                index: 0,
                text: "Hi".into(),
            },
            StreamEvent::BlockStart {
                index: 1,
                kind: BlockKind::ToolCall {
                    id: "c1".into(),
                    name: "f".into(),
                },
            },
            StreamEvent::BlockStart {
                index: 3,
                kind: BlockKind::ToolCall {
                    id: "c2".into(),
                    name: "g".into(),
                },
            },
            StreamEvent::ToolArgsDelta {
                index: 3,
                json: "{}".into(),
            },
            StreamEvent::ToolArgsDelta {
                index: 1,
                json: "{\"a\"".into(),
            },
            StreamEvent::ToolArgsDelta {
                index: 9,
                json: "lost".into(),
            },
            StreamEvent::Usage(Usage {
                input: 3,
                output: 4,
                cache_read: 2,
                ..Usage::default()
            }),
            StreamEvent::Finish(FinishReason::ToolCalls),
        ] {
            r.render(&event, &mut out);
        }
        r.finish(&mut out);
        r.finish(&mut out);
        let chunks = parse(&out);
        assert_eq!(chunks.len(), 8, "{chunks:#?}");
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(chunks[0]["model"], "answered");
        assert!(chunks[0]["usage"].is_null() && chunks[0].get("usage").is_some());
        assert_eq!(chunks[1]["choices"][0]["delta"]["content"], "Hi");
        assert_eq!(
            chunks[3]["choices"][0]["delta"]["tool_calls"][0]["index"],
            1
        );
        assert_eq!(
            chunks[4]["choices"][0]["delta"]["tool_calls"][0]["index"],
            1
        );
        assert_eq!(
            chunks[5]["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"],
            "{\"a\""
        );
        assert_eq!(chunks[6]["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(chunks[7]["choices"], json!([]));
        assert_eq!(chunks[7]["usage"]["prompt_tokens"], 5);
        assert_eq!(
            chunks[7]["usage"]["prompt_tokens_details"]["cached_tokens"],
            2
        );
    }

    #[test]
    fn without_a_finish_event_the_stream_stops_and_no_usage_unless_asked() {
        let mut r = EventRenderer::new(header(), false);
        let mut out = Vec::new();
        r.finish(&mut out);
        let chunks = parse(&out);
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[1]["choices"][0]["finish_reason"], "stop");
        assert!(chunks[1].get("usage").is_none());
    }
}
