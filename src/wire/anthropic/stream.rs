//! Anthropic SSE streams <-> the model's [`StreamEvent`]s: the [`EventDecoder`] of a provider's
//! stream and the [`EventRenderer`] of the Anthropic door's.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error::{error_of, error_type, InError};
use super::response::{message_id, stop_reason, InBlock, OutBlock};
use super::{finish_reason, WireUsage};
use crate::model::{
    BlockKind, Error, ErrorKind, FinishReason, StreamEvent, Usage, MAX_BLOCKS, MAX_TOOL_CALLS,
};

fn upstream(message: String) -> Error {
    Error::new(ErrorKind::Upstream, message)
}

/// Decodes an Anthropic stream, event by event, into model events, within bounds: a content
/// block index at or past [`MAX_BLOCKS`], or more than [`MAX_TOOL_CALLS`] `tool_use` blocks, is
/// an error (nothing is ever sized by an upstream's number). Blocks of types the model has no
/// place for (server tool use and results) are skipped with their deltas.
#[derive(Debug, Default)]
pub struct EventDecoder {
    /// The counts so far: each the largest reported.
    usage: Usage,
    tool_calls: usize,
    /// Indexes of the skipped blocks (each under [`MAX_BLOCKS`], each once).
    skipped: Vec<usize>,
}

impl EventDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// One event: its `event:` name (else the data's `type`) and its `data:`. Appends the model
    /// events it makes to `out`; `Ok(true)` at `message_stop`. An `error` event is the `Err`
    /// of its kind (`overloaded_error` is [`ErrorKind::Overloaded`], ...), as is unreadable
    /// data or an event past the bounds ([`ErrorKind::Upstream`]).
    pub fn on_event(
        &mut self,
        event: Option<&str>,
        data: &str,
        out: &mut Vec<StreamEvent>,
    ) -> Result<bool, Error> {
        let name: Cow<str> = match event {
            Some(name) if !name.is_empty() => Cow::Borrowed(name),
            _ => parse::<TypeOnly>(data)?.kind,
        };
        match name.as_ref() {
            "message_start" => {
                let m = parse::<MessageStart>(data)?.message;
                out.push(StreamEvent::Start {
                    id: m.id,
                    model: m.model,
                });
                if let Some(usage) = m.usage {
                    self.usage.max(usage.into());
                    out.push(StreamEvent::Usage(self.usage));
                }
            }
            "content_block_start" => {
                let start = parse::<BlockStart>(data)?;
                let index = bounded(start.index)?;
                self.skipped.retain(|i| *i != index);
                match start.content_block {
                    InBlock::Text { text } => {
                        out.push(StreamEvent::BlockStart {
                            index,
                            kind: BlockKind::Text,
                        });
                        if !text.is_empty() {
                            out.push(StreamEvent::TextDelta { index, text });
                        }
                    }
                    InBlock::ToolUse { id, name, input } => {
                        if self.tool_calls >= MAX_TOOL_CALLS {
                            return Err(upstream(format!(
                                "more than promptd's bound of {MAX_TOOL_CALLS} tool calls"
                            )));
                        }
                        self.tool_calls += 1;
                        out.push(StreamEvent::BlockStart {
                            index,
                            kind: BlockKind::ToolCall { id, name },
                        });
                        // The input comes in deltas; a start that carries some is kept.
                        if let Some(input) = input.filter(|i| i.as_object() != Some(&Map::new())) {
                            out.push(StreamEvent::ToolArgsDelta {
                                index,
                                json: input.to_string(),
                            });
                        }
                    }
                    InBlock::Thinking {
                        thinking,
                        signature,
                    } => {
                        out.push(StreamEvent::BlockStart {
                            index,
                            kind: BlockKind::Reasoning { redacted: None },
                        });
                        if !thinking.is_empty() {
                            out.push(StreamEvent::ReasoningDelta {
                                index,
                                text: thinking,
                            });
                        }
                        if let Some(signature) = signature.filter(|s| !s.is_empty()) {
                            out.push(StreamEvent::SignatureDelta { index, signature });
                        }
                    }
                    InBlock::RedactedThinking { data } => out.push(StreamEvent::BlockStart {
                        index,
                        kind: BlockKind::Reasoning {
                            redacted: Some(data),
                        },
                    }),
                    InBlock::Other => self.skipped.push(index),
                }
            }
            "content_block_delta" => {
                let delta = parse::<BlockDelta>(data)?;
                let index = bounded(delta.index)?;
                if self.skipped.contains(&index) {
                    return Ok(false);
                }
                out.extend(match delta.delta {
                    Delta::TextDelta { text } => Some(StreamEvent::TextDelta { index, text }),
                    Delta::InputJsonDelta { partial_json } => Some(StreamEvent::ToolArgsDelta {
                        index,
                        json: partial_json,
                    }),
                    Delta::ThinkingDelta { thinking } => Some(StreamEvent::ReasoningDelta {
                        index,
                        text: thinking,
                    }),
                    Delta::SignatureDelta { signature } => {
                        Some(StreamEvent::SignatureDelta { index, signature })
                    }
                    Delta::Other => None, // citations_delta, future deltas
                });
            }
            "content_block_stop" => {
                let index = bounded(parse::<BlockStop>(data)?.index)?;
                if !self.skipped.contains(&index) {
                    out.push(StreamEvent::BlockStop { index });
                }
            }
            "message_delta" => {
                let delta = parse::<MessageDelta>(data)?;
                if let Some(usage) = delta.usage {
                    // Output counts are cumulative; newer streams repeat the input counts.
                    self.usage.max(usage.into());
                    out.push(StreamEvent::Usage(self.usage));
                }
                if let Some(reason) = delta.delta.and_then(|d| d.stop_reason) {
                    out.push(StreamEvent::Finish(finish_reason(&reason)));
                }
            }
            "message_stop" => return Ok(true),
            "error" => return Err(error_of(parse::<InError>(data)?.error)),
            _ => {} // ping, future events
        }
        Ok(false)
    }
}

fn parse<'a, T: Deserialize<'a>>(data: &'a str) -> Result<T, Error> {
    serde_json::from_str(data).map_err(|e| upstream(format!("unreadable stream event: {e}")))
}

/// A content block index, refused at or past [`MAX_BLOCKS`].
fn bounded(index: u64) -> Result<usize, Error> {
    match usize::try_from(index) {
        Ok(i) if i < MAX_BLOCKS => Ok(i),
        _ => Err(upstream(format!(
            "content block index {index} is past promptd's bound of {MAX_BLOCKS} blocks"
        ))),
    }
}

#[derive(Deserialize)]
struct TypeOnly<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
}

#[derive(Deserialize)]
struct MessageStart {
    message: StartMessage,
}

#[derive(Deserialize)]
struct StartMessage {
    id: Option<String>,
    model: Option<String>,
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct BlockStart {
    index: u64,
    content_block: InBlock,
}

#[derive(Deserialize)]
struct BlockDelta {
    index: u64,
    delta: Delta,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[allow(clippy::enum_variant_names)] // the wire's own words: text_delta, input_json_delta, ...
enum Delta {
    TextDelta {
        text: String,
    },
    InputJsonDelta {
        partial_json: String,
    },
    ThinkingDelta {
        thinking: String,
    },
    SignatureDelta {
        signature: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct BlockStop {
    index: u64,
}

#[derive(Deserialize)]
struct MessageDelta {
    delta: Option<MessageDeltaBody>,
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct MessageDeltaBody {
    stop_reason: Option<String>,
}

// ------------------------------------------------------------------------------------------
// Rendering (the Anthropic door).

/// What an Anthropic block holds, for telling a model index's blocks apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Text,
    Tool,
    Thinking,
    Redacted,
}

/// Renders model events as an Anthropic SSE stream (`event: X\ndata: {...}\n\n` frames).
///
/// `message_start` (with the usage known so far) and a `ping` go out before the first block,
/// the error, or at [`finish`](Self::finish); `message_delta` (stop reason and usage) and
/// `message_stop` at [`finish`](Self::finish). Blocks are rendered one at a time, as Anthropic
/// sends them, numbered 0, 1, ... in order of first appearance: an event for another block (or
/// another kind of content at the same model index) closes the open one, so model events
/// without `BlockStart` / `BlockStop` (OpenAI chunks) render correctly. Text or reasoning for a
/// block already closed opens a new block; tool arguments for a closed or never started tool
/// call cannot be rendered and end the stream with an `error` event, as does a model `Error`.
#[derive(Debug)]
pub struct EventRenderer {
    id: String,
    model: String,
    started: bool,
    finished: bool,
    usage: Usage,
    /// The prompt's tokens as estimated, shown at the start when the upstream has not counted
    /// them yet.
    estimated_input: u64,
    finish: Option<FinishReason>,
    /// Each rendered block's model index and class; its Anthropic index is its position.
    blocks: Vec<(usize, Class)>,
    /// The Anthropic index of the open block.
    open: Option<usize>,
}

impl EventRenderer {
    /// A renderer of the answer `id` (shown as `msg_...`: see
    /// [`message_id`](super::message_id)) by `model`.
    pub fn new(id: &str, model: &str) -> Self {
        EventRenderer {
            id: message_id(Some(id)),
            model: model.to_owned(),
            started: false,
            finished: false,
            usage: Usage::default(),
            estimated_input: 0,
            finish: None,
            blocks: Vec::new(),
            open: None,
        }
    }

    /// Show `tokens` as the prompt's at `message_start` when the upstream has not counted them
    /// by then (its real count comes in `message_delta`): Anthropic's clients budget their
    /// context from the start's usage, and a zero there misleads them.
    pub fn estimating_input(mut self, tokens: u64) -> Self {
        self.estimated_input = tokens;
        self
    }

    /// Append the frames of one model event to `out` (often none).
    pub fn render(&mut self, event: &StreamEvent, out: &mut Vec<u8>) {
        if self.finished {
            return;
        }
        match event {
            // The model that answered (a dated snapshot of the one asked, a local server's
            // own name) is shown once the answer names it, as a whole answer shows it.
            StreamEvent::Start {
                model: Some(model), ..
            } if !self.started => model.clone_into(&mut self.model),
            StreamEvent::Start { .. } | StreamEvent::Encrypted { .. } => {}
            StreamEvent::BlockStart { index, kind } => {
                let (class, start) = match kind {
                    BlockKind::Text => (Class::Text, OutBlock::Text { text: "" }),
                    BlockKind::ToolCall { id, name } => (
                        Class::Tool,
                        OutBlock::ToolUse {
                            id,
                            name,
                            input: Value::Object(Map::new()),
                        },
                    ),
                    BlockKind::Reasoning { redacted: None } => (
                        Class::Thinking,
                        OutBlock::Thinking {
                            thinking: "",
                            signature: "",
                        },
                    ),
                    BlockKind::Reasoning {
                        redacted: Some(data),
                    } => (Class::Redacted, OutBlock::RedactedThinking { data }),
                };
                if let Err(e) = self.block(*index, class, Some(start), out) {
                    self.fail(&e, out);
                }
            }
            StreamEvent::TextDelta { index, text } => {
                self.delta(*index, Class::Text, OutDelta::TextDelta { text }, out)
            }
            StreamEvent::ToolArgsDelta { index, json } => self.delta(
                *index,
                Class::Tool,
                OutDelta::InputJsonDelta { partial_json: json },
                out,
            ),
            StreamEvent::ReasoningDelta { index, text } => self.delta(
                *index,
                Class::Thinking,
                OutDelta::ThinkingDelta { thinking: text },
                out,
            ),
            StreamEvent::SignatureDelta { index, signature } => self.delta(
                *index,
                Class::Thinking,
                OutDelta::SignatureDelta { signature },
                out,
            ),
            StreamEvent::BlockStop { index } => {
                if let Some(open) = self.open {
                    if self.blocks.get(open).is_some_and(|(i, _)| i == index) {
                        self.close(out);
                    }
                }
            }
            StreamEvent::Usage(usage) => self.usage.max(*usage),
            StreamEvent::Finish(reason) => self.finish = Some(reason.clone()),
            StreamEvent::Error(error) => self.fail(error, out),
        }
    }

    /// The answer has begun: `message_start` and a `ping` go out now if they have not (with
    /// the usage known so far), before any block. Appends nothing once started or finished.
    pub fn begin(&mut self, out: &mut Vec<u8>) {
        if !self.finished {
            self.start(out);
        }
    }

    /// Close the open block and end the message (`message_delta`, `message_stop`). Calling it
    /// again, or after an error, appends nothing.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.finished {
            return;
        }
        self.start(out);
        self.close(out);
        self.finished = true;
        let reason = match &self.finish {
            Some(reason) => stop_reason(reason),
            None if self.blocks.iter().any(|(_, c)| *c == Class::Tool) => "tool_use",
            None => "end_turn",
        };
        frame(
            out,
            "message_delta",
            &OutEvent::MessageDelta {
                delta: OutMessageDelta {
                    stop_reason: reason,
                    stop_sequence: None,
                },
                usage: self.usage.into(),
            },
        );
        frame(out, "message_stop", &OutEvent::MessageStop);
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        // Anthropic's start carries the prompt's tokens; an upstream that counts them only at
        // its end (OpenAI's usage chunk) is shown the estimate until `message_delta`.
        let mut usage = self.usage;
        if usage.total_input() == 0 {
            usage.input = self.estimated_input;
        }
        let message = OutEvent::MessageStart {
            message: OutStartMessage {
                id: &self.id,
                kind: "message",
                role: "assistant",
                model: &self.model,
                content: [],
                stop_reason: None,
                stop_sequence: None,
                usage: usage.into(),
            },
        };
        frame(out, "message_start", &message);
        frame(out, "ping", &OutEvent::Ping);
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        if let Some(index) = self.open.take() {
            frame(
                out,
                "content_block_stop",
                &OutEvent::ContentBlockStop { index },
            );
        }
    }

    fn fail(&mut self, error: &Error, out: &mut Vec<u8>) {
        let (kind, _) = error_type(error.kind);
        frame(
            out,
            "error",
            &OutEvent::Error {
                error: OutError {
                    kind,
                    message: &error.message,
                },
            },
        );
        self.finished = true;
    }

    /// A delta for model block `index` of `class`, opening its block when needed.
    fn delta(&mut self, index: usize, class: Class, delta: OutDelta, out: &mut Vec<u8>) {
        if delta.is_empty() {
            return;
        }
        let start = match class {
            Class::Text => Some(OutBlock::Text { text: "" }),
            Class::Thinking => Some(OutBlock::Thinking {
                thinking: "",
                signature: "",
            }),
            // A tool call's block cannot start without its id and name.
            Class::Tool | Class::Redacted => None,
        };
        match self.block(index, class, start, out) {
            Ok(at) => frame(
                out,
                "content_block_delta",
                &OutEvent::ContentBlockDelta { index: at, delta },
            ),
            Err(e) => self.fail(&e, out),
        }
    }

    /// The Anthropic index of the open block for model block `index` of `class`: the open one,
    /// or a new one opened with `start` (the open block closed first). `start` is `None` for a
    /// block that cannot be opened implicitly.
    fn block(
        &mut self,
        index: usize,
        class: Class,
        start: Option<OutBlock>,
        out: &mut Vec<u8>,
    ) -> Result<usize, Error> {
        if let Some(open) = self.open {
            if self.blocks.get(open) == Some(&(index, class)) {
                return Ok(open);
            }
        }
        let seen = self.blocks.contains(&(index, class));
        let start = match start {
            Some(start) if !(seen && class == Class::Tool) => start,
            _ => {
                return Err(Error::new(
                    ErrorKind::Upstream,
                    format!(
                        "tool call arguments for block {index}, which is not an open tool call: \
                         they cannot be rendered as an Anthropic stream"
                    ),
                ))
            }
        };
        if self.blocks.len() >= MAX_BLOCKS {
            return Err(Error::new(
                ErrorKind::Upstream,
                format!("more than promptd's bound of {MAX_BLOCKS} content blocks"),
            ));
        }
        self.start(out);
        self.close(out);
        let at = self.blocks.len();
        self.blocks.push((index, class));
        self.open = Some(at);
        frame(
            out,
            "content_block_start",
            &OutEvent::ContentBlockStart {
                index: at,
                content_block: start,
            },
        );
        Ok(at)
    }
}

/// One SSE frame: `event: NAME`, `data: JSON`, a blank line.
fn frame(out: &mut Vec<u8>, name: &str, data: &OutEvent) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    // Writing these types into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, data);
    out.extend_from_slice(b"\n\n");
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum OutEvent<'a> {
    MessageStart {
        message: OutStartMessage<'a>,
    },
    ContentBlockStart {
        index: usize,
        content_block: OutBlock<'a>,
    },
    ContentBlockDelta {
        index: usize,
        delta: OutDelta<'a>,
    },
    ContentBlockStop {
        index: usize,
    },
    MessageDelta {
        delta: OutMessageDelta,
        usage: WireUsage,
    },
    MessageStop,
    Ping,
    Error {
        error: OutError<'a>,
    },
}

#[derive(Serialize)]
struct OutStartMessage<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: [(); 0],
    stop_reason: Option<&'static str>,
    stop_sequence: Option<&'static str>,
    usage: WireUsage,
}

#[derive(Serialize)]
struct OutMessageDelta {
    stop_reason: &'static str,
    stop_sequence: Option<&'static str>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[allow(clippy::enum_variant_names)] // the wire's own words: text_delta, input_json_delta, ...
enum OutDelta<'a> {
    TextDelta { text: &'a str },
    InputJsonDelta { partial_json: &'a str },
    ThinkingDelta { thinking: &'a str },
    SignatureDelta { signature: &'a str },
}

impl OutDelta<'_> {
    fn is_empty(&self) -> bool {
        match self {
            OutDelta::TextDelta { text: s }
            | OutDelta::InputJsonDelta { partial_json: s }
            | OutDelta::ThinkingDelta { thinking: s }
            | OutDelta::SignatureDelta { signature: s } => s.is_empty(),
        }
    }
}

#[derive(Serialize)]
struct OutError<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    message: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Assembler, Block, Response};
    use crate::providers::sse::SseParser;
    use crate::wire::anthropic::decode_response;
    use serde_json::json;

    /// A stream with thinking (and its signature), text, redacted thinking, a server tool's
    /// blocks and a tool call, and a ping between blocks.
    const THINKING_SSE: &str = r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_think","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":12,"cache_creation_input_tokens":100,"cache_read_input_tokens":2000,"output_tokens":1}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Let me think"}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":" about it."}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQBCkYIBxgCKkBsig=="}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: ping
data: {"type": "ping"}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"I'll check."}}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: content_block_start
data: {"type":"content_block_start","index":2,"content_block":{"type":"redacted_thinking","data":"EmwKAhgB"}}

event: content_block_stop
data: {"type":"content_block_stop","index":2}

event: content_block_start
data: {"type":"content_block_start","index":3,"content_block":{"type":"server_tool_use","id":"srvtoolu_1","name":"web_search","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":3,"delta":{"type":"input_json_delta","partial_json":"{\"query\":\"x\"}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":3}

event: content_block_start
data: {"type":"content_block_start","index":4,"content_block":{"type":"tool_use","id":"toolu_9","name":"get_weather","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":4,"delta":{"type":"input_json_delta","partial_json":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":4,"delta":{"type":"input_json_delta","partial_json":"{\"city\":"}}

event: content_block_delta
data: {"type":"content_block_delta","index":4,"delta":{"type":"input_json_delta","partial_json":"\"Paris\"}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":4}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":77}}

event: future_event
data: {"type":"future_event"}

event: message_stop
data: {"type":"message_stop"}

"#;

    /// The whole answer [`THINKING_SSE`] streams.
    const THINKING_JSON: &str = r#"{"id":"msg_think","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"thinking","thinking":"Let me think about it.","signature":"EqQBCkYIBxgCKkBsig=="},{"type":"text","text":"I'll check."},{"type":"redacted_thinking","data":"EmwKAhgB"},{"type":"server_tool_use","id":"srvtoolu_1","name":"web_search","input":{"query":"x"}},{"type":"tool_use","id":"toolu_9","name":"get_weather","input":{"city":"Paris"}}],"stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":12,"cache_creation_input_tokens":100,"cache_read_input_tokens":2000,"output_tokens":77}}"#;

    /// The `(event, data)` frames of an SSE body.
    fn frames(sse: &[u8]) -> Vec<(Option<String>, String)> {
        let mut parser = SseParser::new();
        let mut out = Vec::new();
        parser.feed(sse, &mut out).unwrap();
        parser.finish(&mut out).unwrap();
        out.into_iter().map(|e| (e.event, e.data)).collect()
    }

    /// Decode a whole SSE body: its model events, and whether `message_stop` came.
    fn decode(sse: &[u8]) -> Result<(Vec<StreamEvent>, bool), Error> {
        let mut decoder = EventDecoder::new();
        let mut events = Vec::new();
        let mut done = false;
        for (name, data) in frames(sse) {
            assert!(!done, "nothing after message_stop");
            done = decoder.on_event(name.as_deref(), &data, &mut events)?;
        }
        Ok((events, done))
    }

    fn assemble(events: &[StreamEvent]) -> Response {
        let mut a = Assembler::default();
        for e in events {
            a.push(e.clone()).unwrap();
        }
        a.finish().unwrap()
    }

    /// Tool arguments as parsed JSON: a stream's spacing may differ from `input` re-encoded.
    fn normalized(mut r: Response) -> Response {
        for b in &mut r.blocks {
            if let Block::ToolCall { arguments, .. } = b {
                *arguments = serde_json::from_str::<Value>(arguments)
                    .unwrap()
                    .to_string();
            }
        }
        r
    }

    #[test]
    fn a_recorded_stream_assembles_to_its_whole_answer() {
        let fixtures: [(&[u8], &[u8]); 2] = [
            (
                include_bytes!("../../../tests/fixtures/anthropic_tool_use_stream.sse"),
                include_bytes!("../../../tests/fixtures/anthropic_tool_use.json"),
            ),
            (THINKING_SSE.as_bytes(), THINKING_JSON.as_bytes()),
        ];
        for (sse, json) in fixtures {
            let (events, done) = decode(sse).unwrap();
            assert!(done);
            let streamed = normalized(assemble(&events));
            assert_eq!(streamed, normalized(decode_response(json).unwrap()));
        }
        let (events, _) = decode(THINKING_SSE.as_bytes()).unwrap();
        assert_eq!(
            events[..2],
            [
                StreamEvent::Start {
                    id: Some("msg_think".into()),
                    model: Some("claude-sonnet-4-5".into())
                },
                StreamEvent::Usage(Usage {
                    input: 12,
                    output: 1,
                    cache_read: 2000,
                    cache_write: 100,
                    reasoning: 0
                })
            ]
        );
        assert!(
            !events.iter().any(|e| matches!(
                e,
                StreamEvent::BlockStop { index: 3 } | StreamEvent::ToolArgsDelta { index: 3, .. }
            )),
            "the server tool's block is skipped"
        );
    }

    #[test]
    fn message_delta_merges_usage_and_input_counts_never_shrink() {
        let mut d = EventDecoder::new();
        let mut out = Vec::new();
        d.on_event(
            None,
            r#"{"type":"message_start","message":{"usage":{"input_tokens":10,"cache_read_input_tokens":100,"cache_creation_input_tokens":20,"output_tokens":1}}}"#,
            &mut out,
        )
        .unwrap();
        d.on_event(
            Some("message_delta"),
            r#"{"type":"message_delta","delta":{"stop_reason":"stop_sequence"},"usage":{"output_tokens":30,"input_tokens":0}}"#,
            &mut out,
        )
        .unwrap();
        assert_eq!(
            out[2..],
            [
                StreamEvent::Usage(Usage {
                    input: 10,
                    output: 30,
                    cache_read: 100,
                    cache_write: 20,
                    reasoning: 0
                }),
                StreamEvent::Finish(FinishReason::StopSequence)
            ]
        );
    }

    #[test]
    fn indexes_and_tool_calls_are_bounded() {
        let mut d = EventDecoder::new();
        let mut out = Vec::new();
        for data in [
            r#"{"type":"content_block_start","index":1000000000000,"content_block":{"type":"text","text":""}}"#,
            r#"{"type":"content_block_delta","index":1000000000000,"delta":{"type":"text_delta","text":"x"}}"#,
            r#"{"type":"content_block_stop","index":18446744073709551615}"#,
            r#"{"type":"content_block_delta","index":1024,"delta":{"type":"text_delta","text":"x"}}"#,
        ] {
            let err = d.on_event(None, data, &mut out).unwrap_err();
            assert_eq!(err.kind, ErrorKind::Upstream);
            assert!(err.message.contains("1024 blocks"), "{err}");
        }
        assert!(out.is_empty());
        let start = |i: usize| {
            format!(
                r#"{{"type":"content_block_start","index":{i},"content_block":{{"type":"tool_use","id":"t{i}","name":"f","input":{{}}}}}}"#
            )
        };
        for i in 0..MAX_TOOL_CALLS {
            d.on_event(Some("content_block_start"), &start(i), &mut out)
                .unwrap();
        }
        let err = d
            .on_event(
                Some("content_block_start"),
                &start(MAX_TOOL_CALLS),
                &mut out,
            )
            .unwrap_err();
        assert!(err.message.contains("128 tool calls"), "{err}");
        assert_eq!(out.len(), MAX_TOOL_CALLS);
        let err = d.on_event(None, "not json", &mut out).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Upstream);
    }

    #[test]
    fn error_events_carry_their_kind() {
        let err = decode(include_bytes!(
            "../../../tests/fixtures/anthropic_stream_overloaded.sse"
        ))
        .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Overloaded);
        assert_eq!(err.code.as_deref(), Some("overloaded_error"));
        assert_eq!(err.message, "Overloaded");
        for (word, kind) in [
            ("rate_limit_error", ErrorKind::RateLimited),
            ("api_error", ErrorKind::Upstream),
            ("invalid_request_error", ErrorKind::InvalidRequest),
            ("timeout_error", ErrorKind::Timeout),
            ("brand_new_error", ErrorKind::Upstream),
        ] {
            let data = json!({"type": "error", "error": {"type": word, "message": "m"}});
            let err = EventDecoder::new()
                .on_event(Some("error"), &data.to_string(), &mut Vec::new())
                .unwrap_err();
            assert_eq!(err.kind, kind, "{word}");
            assert_eq!(err.code.as_deref(), Some(word));
        }
    }

    fn render(events: &[StreamEvent], id: &str) -> Vec<u8> {
        let mut r = EventRenderer::new(id, "claude-x");
        let mut out = Vec::new();
        for e in events {
            r.render(e, &mut out);
        }
        r.finish(&mut out);
        let len = out.len();
        r.finish(&mut out);
        assert_eq!(out.len(), len, "finish is idempotent");
        out
    }

    fn data_of(sse: &[u8]) -> Vec<Value> {
        frames(sse)
            .into_iter()
            .map(|(name, data)| {
                let data: Value = serde_json::from_str(&data).unwrap();
                assert_eq!(Some(data["type"].as_str().unwrap()), name.as_deref());
                data
            })
            .collect()
    }

    #[test]
    fn openai_like_events_render_as_a_valid_anthropic_stream() {
        let tool = |index: usize, id: &str| StreamEvent::BlockStart {
            index,
            kind: BlockKind::ToolCall {
                id: id.into(),
                name: "get_weather".into(),
            },
        };
        let args = |index: usize, json: &str| StreamEvent::ToolArgsDelta {
            index,
            json: json.into(),
        };
        let events = vec![
            StreamEvent::Start {
                id: Some("msg_1".into()),
                model: Some("claude-x".into()),
            },
            StreamEvent::TextDelta {
                index: 0,
                text: "Let me ".into(),
            },
            StreamEvent::TextDelta {
                index: 0,
                text: "look.".into(),
            },
            tool(5, "call_a"),
            args(5, "{\"city\":"),
            args(5, "\"Paris\"}"),
            tool(9, "call_b"),
            args(9, ""),
            args(9, "{\"city\":\"Rome\"}"),
            StreamEvent::Finish(FinishReason::ToolCalls),
            StreamEvent::Usage(Usage {
                input: 10,
                output: 20,
                cache_read: 3,
                ..Usage::default()
            }),
        ];
        let sse = render(&events, "msg_1");
        let data = data_of(&sse);
        let kinds: Vec<&str> = data.iter().map(|d| d["type"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "message_start",
                "ping",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        let starts: Vec<&Value> = data
            .iter()
            .filter(|d| d["type"] == "content_block_start")
            .collect();
        assert_eq!(
            starts
                .iter()
                .map(|d| d["index"].clone())
                .collect::<Vec<_>>(),
            [0, 1, 2]
        );
        assert_eq!(
            starts[1]["content_block"],
            json!({"type": "tool_use", "id": "call_a", "name": "get_weather", "input": {}})
        );
        assert_eq!(data[0]["message"]["id"], "msg_1");
        assert_eq!(data[0]["message"]["content"], json!([]));
        assert_eq!(
            data[13],
            json!({"type": "message_delta",
                "delta": {"stop_reason": "tool_use", "stop_sequence": null},
                "usage": {"input_tokens": 10, "output_tokens": 20,
                    "cache_creation_input_tokens": 0, "cache_read_input_tokens": 3}})
        );
        let (decoded, done) = decode(&sse).unwrap();
        assert!(done);
        assert_eq!(assemble(&decoded), assemble(&events));
    }

    #[test]
    fn a_decoded_stream_renders_back_to_the_same_answer() {
        let (events, _) = decode(THINKING_SSE.as_bytes()).unwrap();
        let sse = render(&events, "msg_think");
        let (again, done) = decode(&sse).unwrap();
        assert!(done);
        let original = assemble(&events);
        // The same answer, the model that answered included (named by the stream's start).
        assert_eq!(assemble(&again), original);
        assert!(matches!(
            &original.blocks[0],
            Block::Reasoning { signature: Some(s), .. } if s == "EqQBCkYIBxgCKkBsig=="
        ));
    }

    #[test]
    fn content_switches_close_blocks_and_errors_end_the_stream() {
        let text = |index: usize, t: &str| StreamEvent::TextDelta {
            index,
            text: t.into(),
        };
        // Reasoning, text, more reasoning at the same index as before, an empty delta.
        let events = vec![
            StreamEvent::ReasoningDelta {
                index: 0,
                text: "hm".into(),
            },
            text(0, "a"),
            text(0, ""),
            StreamEvent::BlockStop { index: 0 },
            text(0, "b"),
        ];
        let data = data_of(&render(&events, "x"));
        let starts: Vec<(u64, &str)> = data
            .iter()
            .filter(|d| d["type"] == "content_block_start")
            .map(|d| {
                (
                    d["index"].as_u64().unwrap(),
                    d["content_block"]["type"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(starts, [(0, "thinking"), (1, "text"), (2, "text")]);
        assert!(data[0]["message"]["id"]
            .as_str()
            .unwrap()
            .starts_with("msg_"));
        assert_eq!(data.last().unwrap()["type"], "message_stop");
        assert_eq!(data[data.len() - 2]["delta"]["stop_reason"], "end_turn");

        // Arguments of a tool call that never started: an error event, then nothing.
        let mut r = EventRenderer::new("msg_e", "m");
        let mut out = Vec::new();
        r.render(&text(0, "partial"), &mut out);
        r.render(
            &StreamEvent::ToolArgsDelta {
                index: 1,
                json: "{}".into(),
            },
            &mut out,
        );
        r.render(&text(0, "more"), &mut out);
        r.finish(&mut out);
        let data = data_of(&out);
        let last = data.last().unwrap();
        assert_eq!(last["type"], "error");
        assert_eq!(last["error"]["type"], "api_error");

        // A model error renders Anthropic's error event with its kind's word.
        let mut r = EventRenderer::new("msg_e", "m");
        let mut out = Vec::new();
        r.render(&text(0, "partial"), &mut out);
        r.render(
            &StreamEvent::Error(Error::new(ErrorKind::Overloaded, "busy")),
            &mut out,
        );
        r.finish(&mut out);
        let data = data_of(&out);
        assert_eq!(
            data.last().unwrap(),
            &json!({"type": "error", "error": {"type": "overloaded_error", "message": "busy"}})
        );
        let err = decode(&out).unwrap_err();
        assert_eq!(
            (err.kind, err.message.as_str()),
            (ErrorKind::Overloaded, "busy")
        );
    }
}
