//! Anthropic SSE streams <-> the model's [`StreamEvent`]s: the [`EventDecoder`] of a provider's
//! stream and the [`EventRenderer`] of the Anthropic door's.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error::{error_of, error_type, InError};
use super::response::{message_id, stop_reason, OutBlock};
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
                    StartBlock::Text { text } => {
                        out.push(StreamEvent::BlockStart {
                            index,
                            kind: BlockKind::Text,
                        });
                        if !text.is_empty() {
                            out.push(StreamEvent::TextDelta { index, text });
                        }
                    }
                    StartBlock::ToolUse { id, name, input } => {
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
                        if let Some(input) = input.filter(|i| i.as_object() != Some(&Map::new()))
                        {
                            out.push(StreamEvent::ToolArgsDelta {
                                index,
                                json: input.to_string(),
                            });
                        }
                    }
                    StartBlock::Thinking {
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
                    StartBlock::RedactedThinking { data } => out.push(StreamEvent::BlockStart {
                        index,
                        kind: BlockKind::Reasoning {
                            redacted: Some(data),
                        },
                    }),
                    StartBlock::Other => self.skipped.push(index),
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
                    Delta::InputJsonDelta { partial_json } => {
                        Some(StreamEvent::ToolArgsDelta {
                            index,
                            json: partial_json,
                        })
                    }
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
    content_block: StartBlock,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StartBlock {
    Text {
        #[serde(default)]
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Option<Value>,
    },
    Thinking {
        #[serde(default)]
        thinking: String,
        #[serde(default)]
        signature: Option<String>,
    },
    RedactedThinking {
        data: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct BlockDelta {
    index: u64,
    delta: Delta,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Delta {
    TextDelta { text: String },
    InputJsonDelta { partial_json: String },
    ThinkingDelta { thinking: String },
    SignatureDelta { signature: String },
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
            finish: None,
            blocks: Vec::new(),
            open: None,
        }
    }

    /// Append the frames of one model event to `out` (often none).
    pub fn render(&mut self, event: &StreamEvent, out: &mut Vec<u8>) {
        if self.finished {
            return;
        }
        match event {
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
        let message = OutEvent::MessageStart {
            message: OutStartMessage {
                id: &self.id,
                kind: "message",
                role: "assistant",
                model: &self.model,
                content: [],
                stop_reason: None,
                stop_sequence: None,
                usage: self.usage.into(),
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
        let seen = self.blocks.iter().any(|b| *b == (index, class));
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
