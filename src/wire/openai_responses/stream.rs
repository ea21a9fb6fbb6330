//! Responses streams (typed events, each with a `sequence_number`) <-> the model's
//! [`StreamEvent`]s: the [`EventDecoder`] of a provider's stream and the [`EventRenderer`] of
//! the Responses door's.
//!
//! Decoded (a model block's index is the item's `output_index`):
//!
//! | event | model |
//! |---|---|
//! | `response.created` / `response.in_progress` / `response.queued` | Start (`id`, `model`), once |
//! | `response.output_item.added`: `message`; `function_call`; `reasoning` | BlockStart Text; ToolCall (`call_id`, `name`); Reasoning |
//! | `response.output_text.delta`, `response.refusal.delta` | TextDelta |
//! | `response.function_call_arguments.delta` | ToolArgsDelta |
//! | `response.reasoning_summary_text.delta`, `response.reasoning_text.delta` | ReasoningDelta (a later summary part starts with a blank line) |
//! | `response.output_item.done` | the item's content when no delta carried it (a stream of whole items), its `encrypted_content` (Encrypted), then BlockStop |
//! | `response.completed` / `response.incomplete` | Usage, Finish; the end |
//! | `response.failed`, `error` | the `Err` of the error's code ([`error_kind`](super::error_kind)) |
//! | other items (`web_search_call`, ...) and their events; `*.done`, `content_part.*`, annotations, unknown events | nothing |
//!
//! Rendered, as OpenAI streams them (see [`EventRenderer`]): `response.created` and
//! `response.in_progress` first; each item `response.output_item.added`, its content events,
//! then `response.output_item.done` with the whole item; `response.completed` (or
//! `response.incomplete` for a length stop or a content filter) last, with the whole response
//! and its usage; `response.failed` for an error. Codex needs `response.output_item.done`
//! (else it prints nothing) and `response.completed` (else it fails); it ignores `error`
//! events and reads a failure's code from `response.failed`, which is why a model error
//! renders as `response.failed` only.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::{json, Value};

use super::error::{error_of, failure_json};
use super::response::{
    finished, message_text, response_json, summary_text, InItem, InResponse, Item, ResponseHeader,
};
use super::{incomplete_reason, status_of};
use crate::model::{
    BlockKind, Error, ErrorKind, FinishReason, StreamEvent, Usage, MAX_BLOCKS, MAX_TOOL_CALLS,
};

fn upstream(message: String) -> Error {
    Error::new(ErrorKind::Upstream, message)
}

/// What the decoder knows of one output item.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Seen {
    /// Not added yet.
    #[default]
    New,
    /// An item the model has no type for: its events are skipped.
    Skipped,
    /// Added; whether a delta carried some of its content.
    Open {
        content: bool,
    },
    Done,
}

/// Decodes a Responses stream, event by event, into model events, within bounds: an
/// `output_index` at or past [`MAX_BLOCKS`], or more than [`MAX_TOOL_CALLS`] function calls, is
/// an error (nothing is ever sized by an upstream's number).
#[derive(Debug, Default)]
pub struct EventDecoder {
    started: bool,
    tool_calls: usize,
    refused: bool,
    texts: bool,
    /// By `output_index` (under [`MAX_BLOCKS`]).
    items: Vec<Seen>,
}

impl EventDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// One event: its `event:` name (else the data's `type`) and its `data:`. Appends the model
    /// events it makes to `out`; `Ok(true)` at `response.completed` or `response.incomplete`.
    /// `response.failed` and `error` are the `Err` of their code's kind, as is unreadable data
    /// or an event past the bounds ([`ErrorKind::Upstream`]).
    pub fn on_event(
        &mut self,
        event: Option<&str>,
        data: &str,
        out: &mut Vec<StreamEvent>,
    ) -> Result<bool, Error> {
        let e: InEvent = serde_json::from_str(data)
            .map_err(|e| upstream(format!("unreadable stream event: {e}")))?;
        let name: &str = match (event, &e.kind) {
            (Some(name), _) if !name.is_empty() => name,
            (_, Some(kind)) => kind,
            _ => return Err(upstream("a stream event without a type".to_owned())),
        };
        match name {
            "response.created" | "response.in_progress" | "response.queued" => {
                if !self.started {
                    self.started = true;
                    let (id, model) = e.response.map_or((None, None), |r| (r.id, r.model));
                    out.push(StreamEvent::Start { id, model });
                }
            }
            "response.output_item.added" => {
                let index = self.index(e.output_index)?;
                let item = e
                    .item
                    .ok_or_else(|| upstream("an item event without its item".into()))?;
                self.add(index, item, out)?;
            }
            "response.output_text.delta" | "response.refusal.delta" => {
                if let Some(index) = self.delta_target(e.output_index)? {
                    if name == "response.refusal.delta" {
                        self.refused = true;
                    } else {
                        self.texts = true;
                    }
                    let text = e.delta.unwrap_or_default();
                    if !text.is_empty() {
                        out.push(StreamEvent::TextDelta { index, text });
                    }
                }
            }
            "response.function_call_arguments.delta" => {
                if let Some(index) = self.delta_target(e.output_index)? {
                    let json = e.delta.unwrap_or_default();
                    if !json.is_empty() {
                        out.push(StreamEvent::ToolArgsDelta { index, json });
                    }
                }
            }
            "response.reasoning_summary_text.delta" | "response.reasoning_text.delta" => {
                if let Some(index) = self.delta_target(e.output_index)? {
                    let text = e.delta.unwrap_or_default();
                    if !text.is_empty() {
                        out.push(StreamEvent::ReasoningDelta { index, text });
                    }
                }
            }
            "response.reasoning_summary_part.added" => {
                let index = self.index(e.output_index)?;
                let later = e.summary_index.unwrap_or(0) > 0;
                if later && self.items[index] == (Seen::Open { content: true }) {
                    out.push(StreamEvent::ReasoningDelta {
                        index,
                        text: "\n\n".to_owned(),
                    });
                }
            }
            "response.output_item.done" => {
                let index = self.index(e.output_index)?;
                let item = e
                    .item
                    .ok_or_else(|| upstream("an item event without its item".into()))?;
                self.done(index, item, out)?;
            }
            "response.completed" | "response.incomplete" => {
                let response = e.response;
                if let Some(usage) = response.as_ref().and_then(|r| r.usage) {
                    out.push(StreamEvent::Usage(usage.into()));
                }
                let finish = if name == "response.incomplete" {
                    incomplete_reason(
                        response
                            .as_ref()
                            .and_then(|r| r.incomplete_details.as_ref())
                            .and_then(|d| d.reason.as_deref()),
                    )
                } else {
                    finished(self.tool_calls > 0, self.refused && !self.texts)
                };
                out.push(StreamEvent::Finish(finish));
                return Ok(true);
            }
            "response.failed" => {
                return Err(error_of(e.response.as_ref().and_then(|r| r.error.as_ref())))
            }
            "error" => {
                // `{code, message, param}`, or (some servers) nested in `error`.
                let value: Value = serde_json::from_str(data).unwrap_or_default();
                let error = value
                    .get("error")
                    .filter(|v| v.is_object())
                    .unwrap_or(&value);
                return Err(error_of(Some(error)));
            }
            _ => {} // *.done, content_part.*, annotations, hosted tools' progress, future events
        }
        Ok(false)
    }

    /// An `output_index`, refused at or past [`MAX_BLOCKS`]; its slot made.
    fn index(&mut self, index: Option<u64>) -> Result<usize, Error> {
        let index = index.unwrap_or(0);
        match usize::try_from(index) {
            Ok(i) if i < MAX_BLOCKS => {
                if self.items.len() <= i {
                    self.items.resize(i + 1, Seen::New);
                }
                Ok(i)
            }
            _ => Err(upstream(format!(
                "output_index {index} is past promptd's bound of {MAX_BLOCKS} blocks"
            ))),
        }
    }

    /// The index a content delta goes to, `None` for a skipped item's; marks it as having
    /// content. A delta for an item never added is the model's implicit start (text and
    /// reasoning) or an error (a call's arguments: the assembler refuses them).
    fn delta_target(&mut self, index: Option<u64>) -> Result<Option<usize>, Error> {
        let index = self.index(index)?;
        match self.items[index] {
            Seen::Skipped => Ok(None),
            _ => {
                self.items[index] = Seen::Open { content: true };
                Ok(Some(index))
            }
        }
    }

    fn add(&mut self, index: usize, item: InItem, out: &mut Vec<StreamEvent>) -> Result<(), Error> {
        let kind = match item {
            InItem::Message { .. } => BlockKind::Text,
            InItem::FunctionCall { call_id, name, .. } => {
                if self.tool_calls >= MAX_TOOL_CALLS {
                    return Err(upstream(format!(
                        "more than promptd's bound of {MAX_TOOL_CALLS} tool calls"
                    )));
                }
                self.tool_calls += 1;
                BlockKind::ToolCall { id: call_id, name }
            }
            InItem::Reasoning { .. } => BlockKind::Reasoning { redacted: None },
            InItem::Other => {
                self.items[index] = Seen::Skipped;
                return Ok(());
            }
        };
        self.items[index] = Seen::Open { content: false };
        out.push(StreamEvent::BlockStart { index, kind });
        Ok(())
    }

    fn done(
        &mut self,
        index: usize,
        item: InItem,
        out: &mut Vec<StreamEvent>,
    ) -> Result<(), Error> {
        if matches!(self.items[index], Seen::Skipped | Seen::Done) {
            return Ok(());
        }
        if self.items[index] == Seen::New {
            // A whole item without its `added`: start it now.
            let start = match &item {
                InItem::Message { .. } => InItem::Message {
                    content: Vec::new(),
                },
                InItem::FunctionCall { call_id, name, .. } => InItem::FunctionCall {
                    call_id: call_id.clone(),
                    name: name.clone(),
                    arguments: String::new(),
                },
                InItem::Reasoning { .. } => InItem::Reasoning {
                    summary: Vec::new(),
                    encrypted_content: None,
                },
                InItem::Other => InItem::Other,
            };
            self.add(index, start, out)?;
            if self.items[index] == Seen::Skipped {
                return Ok(());
            }
        }
        let had_content = self.items[index] == (Seen::Open { content: true });
        match item {
            InItem::Message { content } => {
                let (text, refusal) = message_text(&content);
                if refusal {
                    self.refused = true;
                } else if !text.is_empty() {
                    self.texts = true;
                }
                if !had_content && !text.is_empty() {
                    out.push(StreamEvent::TextDelta { index, text });
                }
            }
            InItem::FunctionCall { arguments, .. } => {
                if !had_content && !arguments.is_empty() {
                    out.push(StreamEvent::ToolArgsDelta {
                        index,
                        json: arguments,
                    });
                }
            }
            InItem::Reasoning {
                summary,
                encrypted_content,
            } => {
                let text = summary_text(&summary);
                if !had_content && !text.is_empty() {
                    out.push(StreamEvent::ReasoningDelta { index, text });
                }
                if let Some(data) = encrypted_content {
                    out.push(StreamEvent::Encrypted { index, data });
                }
            }
            InItem::Other => {}
        }
        self.items[index] = Seen::Done;
        out.push(StreamEvent::BlockStop { index });
        Ok(())
    }
}

/// The fields of every event this decoder reads.
#[derive(Deserialize)]
struct InEvent<'a> {
    #[serde(rename = "type", default, borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(default)]
    output_index: Option<u64>,
    #[serde(default)]
    summary_index: Option<u64>,
    #[serde(default)]
    delta: Option<String>,
    #[serde(default)]
    item: Option<InItem>,
    #[serde(default)]
    response: Option<InResponse>,
}

// ------------------------------------------------------------------------------------------
// Rendering (the Responses door).

/// What a rendered item holds, for telling a model index's items apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Text,
    Call,
    Reasoning,
}

/// One rendered output item: the model block it renders, and what it holds so far.
#[derive(Debug)]
struct Rendered {
    index: usize,
    class: Class,
    id: String,
    item: Item,
}

/// Renders model events as a Responses SSE stream (`event: NAME\ndata: {...}\n\n` frames, each
/// with a `sequence_number` from 0 up).
///
/// `response.created` and `response.in_progress` go out before the first item, the failure,
/// or at [`finish`](Self::finish). Items are rendered one at a time, as OpenAI sends them,
/// `output_index` 0, 1, ... in order of first appearance: an event for another model block (or
/// another kind of content at the same model index) closes the open item, so model events
/// without `BlockStart` / `BlockStop` (OpenAI chat chunks) render correctly. Each item opens
/// with `response.output_item.added` (a message also with `response.content_part.added`, a
/// reasoning summary with `response.reasoning_summary_part.added` at its first text) and
/// closes with its `.done` events and `response.output_item.done` carrying the whole item.
/// Text or reasoning for an item already closed opens a new one; arguments for a closed or
/// never started call cannot be rendered and fail the stream (`response.failed`), as does a
/// model `Error`. An Anthropic signature and redacted thinking have no place here and are not
/// rendered. The renderer keeps each item's content until the end: `response.completed`
/// repeats the whole output, as OpenAI's does.
#[derive(Debug)]
pub struct EventRenderer {
    header: ResponseHeader,
    sequence: u64,
    started: bool,
    finished: bool,
    usage: Usage,
    finish: Option<FinishReason>,
    items: Vec<Rendered>,
    /// The `output_index` of the open item.
    open: Option<usize>,
}

impl EventRenderer {
    /// A renderer of the answer `header` names (its id as [`response_id`](super::response_id)
    /// makes it).
    pub fn new(header: ResponseHeader) -> Self {
        EventRenderer {
            header,
            sequence: 0,
            started: false,
            finished: false,
            usage: Usage::default(),
            finish: None,
            items: Vec::new(),
            open: None,
        }
    }

    /// Nothing was rendered yet.
    pub fn is_fresh(&self) -> bool {
        !self.started
    }

    /// Append the frames of one model event to `out` (often none).
    pub fn render(&mut self, event: &StreamEvent, out: &mut Vec<u8>) {
        if self.finished {
            return;
        }
        match event {
            StreamEvent::Start { .. } | StreamEvent::SignatureDelta { .. } => {}
            StreamEvent::BlockStart { index, kind } => {
                let result = match kind {
                    BlockKind::Text => self.item(*index, Class::Text, None, out),
                    BlockKind::ToolCall { id, name } => {
                        let call = Item::Call {
                            call_id: id.clone(),
                            name: name.clone(),
                            arguments: String::new(),
                        };
                        self.item(*index, Class::Call, Some(call), out)
                    }
                    BlockKind::Reasoning { redacted: None } => {
                        self.item(*index, Class::Reasoning, None, out)
                    }
                    BlockKind::Reasoning { redacted: Some(_) } => return,
                };
                if let Err(e) = result {
                    self.fail(&e, out);
                }
            }
            StreamEvent::TextDelta { index, text } => self.delta(*index, Class::Text, text, out),
            StreamEvent::ToolArgsDelta { index, json } => {
                self.delta(*index, Class::Call, json, out)
            }
            StreamEvent::ReasoningDelta { index, text } => {
                self.delta(*index, Class::Reasoning, text, out)
            }
            StreamEvent::Encrypted { index, data } => {
                match self.item(*index, Class::Reasoning, None, out) {
                    Ok(at) => {
                        if let Item::Reasoning { encrypted, .. } = &mut self.items[at].item {
                            *encrypted = Some(data.clone());
                        }
                    }
                    Err(e) => self.fail(&e, out),
                }
            }
            StreamEvent::BlockStop { index } => {
                if let Some(open) = self.open {
                    if self.items[open].index == *index {
                        self.close(out);
                    }
                }
            }
            StreamEvent::Usage(usage) => self.usage.max(*usage),
            StreamEvent::Finish(reason) => self.finish = Some(reason.clone()),
            StreamEvent::Error(error) => self.fail(error, out),
        }
    }

    /// Close the open item and end the response (`response.completed`, or
    /// `response.incomplete` for a length stop or a content filter), with the whole output and
    /// the usage. Calling it again, or after a failure, appends nothing.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.finished {
            return;
        }
        self.start(out);
        self.close(out);
        self.finished = true;
        let (status, incomplete) = status_of(self.finish.as_ref());
        let response = response_json(
            &self.header,
            status,
            self.output(),
            Some(&self.usage),
            incomplete,
            None,
        );
        let name = if status == "completed" {
            "response.completed"
        } else {
            "response.incomplete"
        };
        self.emit(out, name, json!({ "response": response }));
    }

    /// The whole items rendered so far.
    fn output(&self) -> Vec<Value> {
        self.items
            .iter()
            .map(|r| r.item.json(&r.id, "completed", false))
            .collect()
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let response = response_json(&self.header, "in_progress", Vec::new(), None, None, None);
        self.emit(
            out,
            "response.created",
            json!({ "response": response.clone() }),
        );
        self.emit(out, "response.in_progress", json!({ "response": response }));
    }

    /// End the stream with `response.failed` (the items so far, as far as they came, as its
    /// output).
    fn fail(&mut self, error: &Error, out: &mut Vec<u8>) {
        self.start(out);
        self.open = None;
        self.finished = true;
        let done = self.output();
        let response = response_json(
            &self.header,
            "failed",
            done,
            Some(&self.usage),
            None,
            Some(failure_json(error)),
        );
        self.emit(out, "response.failed", json!({ "response": response }));
    }

    /// One frame, with the next sequence number.
    fn emit(&mut self, out: &mut Vec<u8>, name: &str, mut data: Value) {
        data["type"] = Value::from(name);
        data["sequence_number"] = Value::from(self.sequence);
        self.sequence += 1;
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\ndata: ");
        // A Value always serialises.
        let _ = serde_json::to_writer(&mut *out, &data);
        out.extend_from_slice(b"\n\n");
    }

    /// Text, arguments or reasoning for model block `index`, opening its item when needed.
    fn delta(&mut self, index: usize, class: Class, piece: &str, out: &mut Vec<u8>) {
        if piece.is_empty() {
            return;
        }
        let at = match self.item(index, class, None, out) {
            Ok(at) => at,
            Err(e) => return self.fail(&e, out),
        };
        let id = self.items[at].id.clone();
        let first = match &mut self.items[at].item {
            Item::Message { text } | Item::Reasoning { text, .. } => {
                let first = text.is_empty();
                text.push_str(piece);
                first
            }
            Item::Call { arguments, .. } => {
                arguments.push_str(piece);
                false
            }
        };
        let loc = json!({"item_id": id, "output_index": at});
        match class {
            Class::Text => self.emit(
                out,
                "response.output_text.delta",
                merge(
                    loc,
                    json!({"content_index": 0, "delta": piece, "logprobs": []}),
                ),
            ),
            Class::Call => self.emit(
                out,
                "response.function_call_arguments.delta",
                merge(loc, json!({ "delta": piece })),
            ),
            Class::Reasoning => {
                if first {
                    self.emit(
                        out,
                        "response.reasoning_summary_part.added",
                        merge(
                            loc.clone(),
                            json!({"summary_index": 0,
                                "part": {"type": "summary_text", "text": ""}}),
                        ),
                    );
                }
                self.emit(
                    out,
                    "response.reasoning_summary_text.delta",
                    merge(loc, json!({"summary_index": 0, "delta": piece})),
                );
            }
        }
    }

    /// The `output_index` of the open item for model block `index` of `class`: the open one,
    /// or a new one (the open one closed first), opened with `call` for a function call (one
    /// cannot be opened without its id and name).
    fn item(
        &mut self,
        index: usize,
        class: Class,
        call: Option<Item>,
        out: &mut Vec<u8>,
    ) -> Result<usize, Error> {
        if let Some(open) = self.open {
            let r = &self.items[open];
            if r.index == index && r.class == class {
                return Ok(open);
            }
        }
        let item = match (class, call) {
            (Class::Text, _) => Item::Message {
                text: String::new(),
            },
            (Class::Reasoning, _) => Item::Reasoning {
                text: String::new(),
                encrypted: None,
            },
            (Class::Call, Some(call)) => call,
            (Class::Call, None) => {
                return Err(upstream(format!(
                    "tool call arguments for block {index}, which is not an open tool call: \
                     they cannot be rendered as a Responses stream"
                )))
            }
        };
        if self.items.len() >= MAX_BLOCKS {
            return Err(upstream(format!(
                "more than promptd's bound of {MAX_BLOCKS} output items"
            )));
        }
        self.start(out);
        self.close(out);
        let at = self.items.len();
        let id = self.header.item_id(item.prefix(), at);
        let added = item.json(&id, "in_progress", true);
        self.items.push(Rendered {
            index,
            class,
            id: id.clone(),
            item,
        });
        self.open = Some(at);
        self.emit(
            out,
            "response.output_item.added",
            json!({"output_index": at, "item": added}),
        );
        if class == Class::Text {
            self.emit(
                out,
                "response.content_part.added",
                json!({"item_id": id, "output_index": at, "content_index": 0,
                    "part": {"type": "output_text", "text": "", "annotations": []}}),
            );
        }
        Ok(at)
    }

    /// Close the open item: its `.done` events and `response.output_item.done`.
    fn close(&mut self, out: &mut Vec<u8>) {
        let Some(at) = self.open.take() else {
            return;
        };
        let id = self.items[at].id.clone();
        let loc = json!({"item_id": id, "output_index": at});
        let done = self.items[at].item.json(&id, "completed", false);
        match self.items[at].item.clone() {
            Item::Message { text } => {
                self.emit(
                    out,
                    "response.output_text.done",
                    merge(
                        loc.clone(),
                        json!({"content_index": 0, "text": text, "logprobs": []}),
                    ),
                );
                self.emit(
                    out,
                    "response.content_part.done",
                    merge(
                        loc,
                        json!({"content_index": 0, "part": {"type": "output_text",
                            "text": text, "annotations": []}}),
                    ),
                );
            }
            Item::Call { arguments, .. } => self.emit(
                out,
                "response.function_call_arguments.done",
                merge(loc, json!({ "arguments": arguments })),
            ),
            Item::Reasoning { text, .. } if !text.is_empty() => {
                self.emit(
                    out,
                    "response.reasoning_summary_text.done",
                    merge(loc.clone(), json!({"summary_index": 0, "text": text})),
                );
                self.emit(
                    out,
                    "response.reasoning_summary_part.done",
                    merge(
                        loc,
                        json!({"summary_index": 0,
                            "part": {"type": "summary_text", "text": text}}),
                    ),
                );
            }
            Item::Reasoning { .. } => {}
        }
        self.emit(
            out,
            "response.output_item.done",
            json!({"output_index": at, "item": done}),
        );
    }
}

/// `a`'s members with `b`'s added.
fn merge(mut a: Value, b: Value) -> Value {
    if let (Value::Object(a), Value::Object(b)) = (&mut a, b) {
        a.extend(b);
    }
    a
}
