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

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::{error_of, failure_json};
use super::render::{
    ArgumentsDone, At, ContentPart, Delta, Event, ItemEvent, ItemJson, Part, ResponseEvent,
    ResponseObject, Summary, SummaryPart, TextDelta, TextDone, EMPTY,
};
use super::response::{
    finished, message_text, summary_text, InItem, InResponse, Item, ResponseHeader,
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
            "response.created" | "response.in_progress" | "response.queued" if !self.started => {
                self.started = true;
                let (id, model) = e.response.map_or((None, None), |r| (r.id, r.model));
                out.push(StreamEvent::Start { id, model });
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

/// The most a renderer keeps of an answer's text and arguments (what its `.done` events and
/// `response.completed` repeat): a longer answer streams whole, its items keep their heads.
/// Memory per stream is bounded, whatever the upstream sends.
pub const MAX_HELD: usize = 8 << 20;

/// The head of `piece` of at most `room` bytes, cut at a character boundary.
fn head(piece: &str, room: usize) -> &str {
    if piece.len() <= room {
        return piece;
    }
    let mut end = room;
    while !piece.is_char_boundary(end) {
        end -= 1;
    }
    &piece[..end]
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
    /// Bytes of text and arguments kept for the `.done` events (at most [`MAX_HELD`]).
    held: usize,
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
            held: 0,
            sequence: 0,
            started: false,
            finished: false,
            usage: Usage::default(),
            finish: None,
            items: Vec::new(),
            open: None,
        }
    }

    /// Go on after `sent` events an upstream of this wire sent as they came (its response
    /// `id`, when its `response.created` named one): what is rendered next (a failure) is
    /// numbered after them and starts nothing again.
    pub fn continue_forwarded(&mut self, sent: u64, id: Option<String>) {
        self.started = true;
        self.sequence = sent;
        if let Some(id) = id {
            self.header.id = id;
        }
    }

    /// The response's id is `id` (and its items' ids are made from it), when nothing was
    /// rendered yet; `false` (nothing changed) once something was.
    pub fn rename(&mut self, id: String) -> bool {
        if self.started {
            return false;
        }
        self.header.id = id;
        true
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

    /// The answer has begun: `response.created` and `response.in_progress` go out now if they
    /// have not. Appends nothing once started or finished.
    pub fn begin(&mut self, out: &mut Vec<u8>) {
        if !self.finished {
            self.start(out);
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
        let name = if status == "completed" {
            "response.completed"
        } else {
            "response.incomplete"
        };
        let response = ResponseObject {
            header: &self.header,
            status,
            output: output(&self.items),
            usage: Some(&self.usage),
            incomplete,
            error: None,
        };
        emit(&mut self.sequence, out, name, ResponseEvent { response });
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        for name in ["response.created", "response.in_progress"] {
            let response = ResponseObject {
                header: &self.header,
                status: "in_progress",
                output: Vec::new(),
                usage: None,
                incomplete: None,
                error: None,
            };
            emit(&mut self.sequence, out, name, ResponseEvent { response });
        }
    }

    /// End the stream with `response.failed` (the items so far, as far as they came, as its
    /// output).
    fn fail(&mut self, error: &Error, out: &mut Vec<u8>) {
        self.start(out);
        self.open = None;
        self.finished = true;
        let response = ResponseObject {
            header: &self.header,
            status: "failed",
            output: output(&self.items),
            usage: Some(&self.usage),
            incomplete: None,
            error: Some(failure_json(error)),
        };
        emit(
            &mut self.sequence,
            out,
            "response.failed",
            ResponseEvent { response },
        );
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
        // What is kept for the `.done` events and `response.completed` is bounded: past
        // [`MAX_HELD`] the deltas still go out, but the items keep only their heads.
        let room = MAX_HELD.saturating_sub(self.held);
        let kept = head(piece, room);
        self.held += kept.len();
        let first = match &mut self.items[at].item {
            Item::Message { text } | Item::Reasoning { text, .. } => {
                let first = text.is_empty();
                text.push_str(kept);
                first
            }
            Item::Call { arguments, .. } => {
                arguments.push_str(kept);
                false
            }
        };
        let at_ = |rest| At {
            item_id: &id,
            output_index: at,
            rest,
        };
        let seq = &mut self.sequence;
        match class {
            Class::Text => {
                let delta = TextDelta {
                    content_index: 0,
                    delta: piece,
                    logprobs: EMPTY,
                };
                emit(
                    seq,
                    out,
                    "response.output_text.delta",
                    at_(Rest::Text(delta)),
                );
            }
            Class::Call => {
                let delta = Delta { delta: piece };
                let name = "response.function_call_arguments.delta";
                emit(seq, out, name, at_(Rest::Args(delta)));
            }
            Class::Reasoning => {
                if first {
                    let part = SummaryPart {
                        summary_index: 0,
                        part: Part {
                            summary: true,
                            text: "",
                        },
                    };
                    let name = "response.reasoning_summary_part.added";
                    emit(seq, out, name, at_(Rest::SummaryPart(part)));
                }
                let delta = Summary {
                    summary_index: 0,
                    delta: Some(piece),
                    text: None,
                };
                let name = "response.reasoning_summary_text.delta";
                emit(seq, out, name, at_(Rest::Summary(delta)));
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
        let added = ItemEvent {
            output_index: at,
            item: ItemJson {
                item: &item,
                id: &id,
                status: "in_progress",
                opening: true,
            },
        };
        emit(&mut self.sequence, out, "response.output_item.added", added);
        if class == Class::Text {
            let part = ContentPart {
                content_index: 0,
                part: Part {
                    summary: false,
                    text: "",
                },
            };
            let added = At {
                item_id: &id,
                output_index: at,
                rest: part,
            };
            emit(
                &mut self.sequence,
                out,
                "response.content_part.added",
                added,
            );
        }
        self.items.push(Rendered {
            index,
            class,
            id,
            item,
        });
        self.open = Some(at);
        Ok(at)
    }

    /// Close the open item: its `.done` events and `response.output_item.done`.
    fn close(&mut self, out: &mut Vec<u8>) {
        let Some(at) = self.open.take() else {
            return;
        };
        let Rendered { id, item, .. } = &self.items[at];
        let seq = &mut self.sequence;
        let at_ = |rest| At {
            item_id: id,
            output_index: at,
            rest,
        };
        match item {
            Item::Message { text } => {
                let done = TextDone {
                    content_index: 0,
                    text,
                    logprobs: EMPTY,
                };
                emit(
                    seq,
                    out,
                    "response.output_text.done",
                    at_(Rest::TextDone(done)),
                );
                let part = ContentPart {
                    content_index: 0,
                    part: Part {
                        summary: false,
                        text,
                    },
                };
                emit(
                    seq,
                    out,
                    "response.content_part.done",
                    at_(Rest::Part(part)),
                );
            }
            Item::Call { arguments, .. } => {
                let done = ArgumentsDone { arguments };
                let name = "response.function_call_arguments.done";
                emit(seq, out, name, at_(Rest::ArgsDone(done)));
            }
            Item::Reasoning { text, .. } if !text.is_empty() => {
                let done = Summary {
                    summary_index: 0,
                    delta: None,
                    text: Some(text),
                };
                let name = "response.reasoning_summary_text.done";
                emit(seq, out, name, at_(Rest::Summary(done)));
                let part = SummaryPart {
                    summary_index: 0,
                    part: Part {
                        summary: true,
                        text,
                    },
                };
                let name = "response.reasoning_summary_part.done";
                emit(seq, out, name, at_(Rest::SummaryPart(part)));
            }
            Item::Reasoning { .. } => {}
        }
        let done = ItemEvent {
            output_index: at,
            item: ItemJson {
                item,
                id,
                status: "completed",
                opening: false,
            },
        };
        emit(seq, out, "response.output_item.done", done);
    }
}

/// The fields an item's event adds to its place ([`At`]).
#[derive(Serialize)]
#[serde(untagged)]
enum Rest<'a> {
    Text(TextDelta<'a>),
    TextDone(TextDone<'a>),
    Args(Delta<'a>),
    ArgsDone(ArgumentsDone<'a>),
    Summary(Summary<'a>),
    SummaryPart(SummaryPart<'a>),
    Part(ContentPart<'a>),
}

/// The whole items rendered so far, as `output` holds them.
fn output(items: &[Rendered]) -> Vec<ItemJson<'_>> {
    items
        .iter()
        .map(|r| ItemJson {
            item: &r.item,
            id: &r.id,
            status: "completed",
            opening: false,
        })
        .collect()
}

/// One frame (`event: NAME` and its data: `type`, the next sequence number, `body`'s fields).
fn emit<T: Serialize>(sequence: &mut u64, out: &mut Vec<u8>, name: &str, body: T) {
    let event = Event {
        kind: name,
        sequence_number: *sequence,
        body,
    };
    *sequence += 1;
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    // Strings, numbers and the model's own values: it always serialises.
    let _ = serde_json::to_writer(&mut *out, &event);
    out.extend_from_slice(b"\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Assembler, Block, Response};
    use crate::providers::sse::SseParser;
    use crate::wire::openai_responses::decode_response;
    use serde_json::json;

    /// A stream as OpenAI sends one: reasoning (two summary parts, encrypted content), a web
    /// search the model has no type for, text, and a function call.
    const STREAM: &str = r#"event: response.created
data: {"type":"response.created","sequence_number":0,"response":{"id":"resp_up","object":"response","status":"in_progress","model":"gpt-5-2025","output":[],"usage":null}}

event: response.in_progress
data: {"type":"response.in_progress","sequence_number":1,"response":{"id":"resp_up","status":"in_progress","model":"gpt-5-2025"}}

event: response.output_item.added
data: {"type":"response.output_item.added","sequence_number":2,"output_index":0,"item":{"id":"rs_1","type":"reasoning","summary":[]}}

event: response.reasoning_summary_part.added
data: {"type":"response.reasoning_summary_part.added","sequence_number":3,"item_id":"rs_1","output_index":0,"summary_index":0,"part":{"type":"summary_text","text":""}}

event: response.reasoning_summary_text.delta
data: {"type":"response.reasoning_summary_text.delta","sequence_number":4,"item_id":"rs_1","output_index":0,"summary_index":0,"delta":"First."}

event: response.reasoning_summary_part.added
data: {"type":"response.reasoning_summary_part.added","sequence_number":5,"item_id":"rs_1","output_index":0,"summary_index":1,"part":{"type":"summary_text","text":""}}

event: response.reasoning_summary_text.delta
data: {"type":"response.reasoning_summary_text.delta","sequence_number":6,"item_id":"rs_1","output_index":0,"summary_index":1,"delta":"Second."}

event: response.output_item.done
data: {"type":"response.output_item.done","sequence_number":7,"output_index":0,"item":{"id":"rs_1","type":"reasoning","summary":[{"type":"summary_text","text":"First."},{"type":"summary_text","text":"Second."}],"encrypted_content":"gAAAAB"}}

event: response.output_item.added
data: {"type":"response.output_item.added","sequence_number":8,"output_index":1,"item":{"id":"ws_1","type":"web_search_call","status":"in_progress"}}

event: response.web_search_call.completed
data: {"type":"response.web_search_call.completed","sequence_number":9,"output_index":1,"item_id":"ws_1"}

event: response.output_item.done
data: {"type":"response.output_item.done","sequence_number":10,"output_index":1,"item":{"id":"ws_1","type":"web_search_call","status":"completed"}}

event: response.output_item.added
data: {"type":"response.output_item.added","sequence_number":11,"output_index":2,"item":{"id":"msg_1","type":"message","status":"in_progress","role":"assistant","content":[]}}

event: response.content_part.added
data: {"type":"response.content_part.added","sequence_number":12,"item_id":"msg_1","output_index":2,"content_index":0,"part":{"type":"output_text","text":"","annotations":[]}}

event: response.output_text.delta
data: {"type":"response.output_text.delta","sequence_number":13,"item_id":"msg_1","output_index":2,"content_index":0,"delta":"I'll "}

event: response.output_text.delta
data: {"type":"response.output_text.delta","sequence_number":14,"item_id":"msg_1","output_index":2,"content_index":0,"delta":"check."}

event: response.output_text.done
data: {"type":"response.output_text.done","sequence_number":15,"item_id":"msg_1","output_index":2,"content_index":0,"text":"I'll check."}

event: response.output_item.done
data: {"type":"response.output_item.done","sequence_number":16,"output_index":2,"item":{"id":"msg_1","type":"message","status":"completed","role":"assistant","content":[{"type":"output_text","text":"I'll check.","annotations":[]}]}}

event: response.output_item.added
data: {"type":"response.output_item.added","sequence_number":17,"output_index":3,"item":{"id":"fc_1","type":"function_call","status":"in_progress","call_id":"call_9","name":"get_weather","arguments":""}}

event: response.function_call_arguments.delta
data: {"type":"response.function_call_arguments.delta","sequence_number":18,"item_id":"fc_1","output_index":3,"delta":"{\"city\":"}

event: response.function_call_arguments.delta
data: {"type":"response.function_call_arguments.delta","sequence_number":19,"item_id":"fc_1","output_index":3,"delta":"\"Paris\"}"}

event: response.function_call_arguments.done
data: {"type":"response.function_call_arguments.done","sequence_number":20,"item_id":"fc_1","output_index":3,"arguments":"{\"city\":\"Paris\"}"}

event: response.output_item.done
data: {"type":"response.output_item.done","sequence_number":21,"output_index":3,"item":{"id":"fc_1","type":"function_call","status":"completed","call_id":"call_9","name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}

event: response.completed
data: {"type":"response.completed","sequence_number":22,"response":{"id":"resp_up","object":"response","status":"completed","model":"gpt-5-2025","output":[{"id":"rs_1","type":"reasoning","summary":[{"type":"summary_text","text":"First."},{"type":"summary_text","text":"Second."}],"encrypted_content":"gAAAAB"},{"id":"ws_1","type":"web_search_call","status":"completed"},{"id":"msg_1","type":"message","status":"completed","role":"assistant","content":[{"type":"output_text","text":"I'll check.","annotations":[]}]},{"id":"fc_1","type":"function_call","status":"completed","call_id":"call_9","name":"get_weather","arguments":"{\"city\":\"Paris\"}"}],"usage":{"input_tokens":120,"input_tokens_details":{"cached_tokens":100},"output_tokens":30,"output_tokens_details":{"reasoning_tokens":12},"total_tokens":150}}}

"#;

    fn frames(sse: &[u8]) -> Vec<(Option<String>, String)> {
        let mut parser = SseParser::new();
        let mut out = Vec::new();
        parser.feed(sse, &mut out).unwrap();
        parser.finish(&mut out).unwrap();
        out.into_iter().map(|e| (e.event, e.data)).collect()
    }

    /// Decode a whole SSE body: its model events, and whether the response ended.
    fn decode(sse: &[u8]) -> Result<(Vec<StreamEvent>, bool), Error> {
        let mut decoder = EventDecoder::new();
        let mut events = Vec::new();
        let mut done = false;
        for (name, data) in frames(sse) {
            assert!(!done, "nothing after the end");
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

    fn render(events: &[StreamEvent]) -> Vec<u8> {
        let mut r = EventRenderer::new(ResponseHeader::new("resp_door", 1_700_000_000, "door-m"));
        assert!(r.is_fresh());
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

    /// The data of each frame, checked as every Responses client may expect: the event name
    /// is the data's type, sequence numbers go 0, 1, 2, ..., every item added is done once
    /// (its `.done` carrying the whole item as the final response holds it), and the stream
    /// ends with exactly one terminal event.
    fn checked(sse: &[u8]) -> Vec<Value> {
        let data: Vec<Value> = frames(sse)
            .into_iter()
            .map(|(name, data)| {
                let data: Value = serde_json::from_str(&data).unwrap();
                assert_eq!(Some(data["type"].as_str().unwrap()), name.as_deref());
                data
            })
            .collect();
        for (n, d) in data.iter().enumerate() {
            assert_eq!(d["sequence_number"], n as u64, "{d}");
        }
        assert_eq!(data[0]["type"], "response.created");
        assert_eq!(data[1]["type"], "response.in_progress");
        let terminal = [
            "response.completed",
            "response.incomplete",
            "response.failed",
        ];
        let last = data.last().unwrap();
        assert!(terminal.contains(&last["type"].as_str().unwrap()), "{last}");
        assert_eq!(
            data.iter()
                .filter(|d| terminal.contains(&d["type"].as_str().unwrap()))
                .count(),
            1
        );
        let of =
            |kind: &str| -> Vec<&Value> { data.iter().filter(|d| d["type"] == kind).collect() };
        let added = of("response.output_item.added");
        let done = of("response.output_item.done");
        let output = last["response"]["output"].as_array().unwrap();
        if last["type"] != "response.failed" {
            assert_eq!(added.len(), done.len());
            assert_eq!(output.len(), done.len());
        }
        for (n, (a, d)) in added.iter().zip(&done).enumerate() {
            assert_eq!(a["output_index"], n);
            assert_eq!(d["output_index"], n);
            assert_eq!(a["item"]["id"], d["item"]["id"]);
            assert_eq!(&d["item"], &output[n]);
        }
        data
    }

    #[test]
    fn an_upstream_stream_assembles_to_its_whole_answer() {
        let (events, done) = decode(STREAM.as_bytes()).unwrap();
        assert!(done);
        assert_eq!(
            events[0],
            StreamEvent::Start {
                id: Some("resp_up".into()),
                model: Some("gpt-5-2025".into())
            }
        );
        let streamed = assemble(&events);
        let last = frames(STREAM.as_bytes()).pop().unwrap().1;
        let whole: Value = serde_json::from_str(&last).unwrap();
        let whole = decode_response(whole["response"].to_string().as_bytes()).unwrap();
        assert_eq!(streamed, whole);
        assert_eq!(
            streamed.blocks[0],
            Block::Reasoning {
                text: "First.\n\nSecond.".into(),
                signature: None,
                encrypted: Some("gAAAAB".into()),
                redacted: None
            }
        );
        assert_eq!(streamed.usage.cache_read, 100);
        assert_eq!(streamed.usage.input, 20);
        assert_eq!(streamed.usage.reasoning, 12);
        assert_eq!(streamed.finish, Some(FinishReason::ToolCalls));
        assert!(
            !events.iter().any(|e| matches!(
                e,
                StreamEvent::BlockStart { index: 1, .. } | StreamEvent::BlockStop { index: 1 }
            )),
            "the web search is skipped"
        );

        // Whole items only (as Codex tolerates): the same answer.
        let sparse: String = STREAM
            .split("\n\n")
            .filter(|f| {
                f.contains("response.output_item.done")
                    || f.contains("response.completed")
                    || f.contains("response.created")
            })
            .map(|f| format!("{f}\n\n"))
            .collect();
        let (events, done) = decode(sparse.as_bytes()).unwrap();
        assert!(done);
        assert_eq!(assemble(&events), streamed);
    }

    #[test]
    fn openai_like_events_render_as_a_valid_responses_stream() {
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
        let text = |text: &str| StreamEvent::TextDelta {
            index: 0,
            text: text.into(),
        };
        // As the chat wire's decoder makes them: no BlockStart for text, no BlockStop at all.
        let events = vec![
            StreamEvent::Start {
                id: Some("chatcmpl-1".into()),
                model: Some("gpt-4o".into()),
            },
            StreamEvent::ReasoningDelta {
                index: 129,
                text: "hmm".into(),
            },
            text("Let me "),
            text(""),
            text("look."),
            tool(1, "call_a"),
            args(1, "{\"city\":"),
            args(1, "\"Paris\"}"),
            tool(2, "call_b"),
            args(2, "{}"),
            StreamEvent::Finish(FinishReason::ToolCalls),
            StreamEvent::Usage(Usage {
                input: 10,
                output: 20,
                cache_read: 3,
                cache_write: 0,
                reasoning: 5,
            }),
        ];
        let sse = render(&events);
        let data = checked(&sse);
        let kinds: Vec<&str> = data.iter().map(|d| d["type"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.reasoning_summary_part.added",
                "response.reasoning_summary_text.delta",
                "response.reasoning_summary_text.done",
                "response.reasoning_summary_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        let completed = &data.last().unwrap()["response"];
        assert_eq!(completed["id"], "resp_door");
        assert_eq!(completed["status"], "completed");
        assert_eq!(
            completed["usage"],
            json!({"input_tokens": 13, "input_tokens_details": {"cached_tokens": 3},
                "output_tokens": 20, "output_tokens_details": {"reasoning_tokens": 5},
                "total_tokens": 33})
        );
        assert_eq!(
            completed["output"][1]["content"][0]["text"], "Let me look.",
            "completed carries the text"
        );
        assert_eq!(
            data[15]["item"],
            json!({"id": "fc_door_2", "type": "function_call", "status": "in_progress",
                "call_id": "call_a", "name": "get_weather", "arguments": ""})
        );
        assert_eq!(data[19]["item"]["arguments"], "{\"city\":\"Paris\"}");

        // Our own stream decodes back to the same answer.
        let (decoded, done) = decode(&sse).unwrap();
        assert!(done);
        let again = assemble(&decoded);
        let original = assemble(&events);
        assert_eq!(again.blocks, original.blocks);
        assert_eq!(again.usage, original.usage);
        assert_eq!(again.finish, original.finish);
        assert_eq!(again.id.as_deref(), Some("resp_door"));
    }

    #[test]
    fn a_decoded_stream_renders_back_to_the_same_answer() {
        let (events, _) = decode(STREAM.as_bytes()).unwrap();
        let sse = render(&events);
        checked(&sse);
        let (again, done) = decode(&sse).unwrap();
        assert!(done);
        let original = assemble(&events);
        let again = assemble(&again);
        assert_eq!(again.blocks, original.blocks, "encrypted reasoning kept");
        assert_eq!(again.usage, original.usage);
    }

    #[test]
    fn length_stops_are_incomplete_and_errors_fail_the_response() {
        let text = |index: usize, t: &str| StreamEvent::TextDelta {
            index,
            text: t.into(),
        };
        let sse = render(&[text(0, "cut"), StreamEvent::Finish(FinishReason::Length)]);
        let data = checked(&sse);
        let last = data.last().unwrap();
        assert_eq!(last["type"], "response.incomplete");
        assert_eq!(
            last["response"]["incomplete_details"],
            json!({"reason": "max_output_tokens"})
        );
        let (events, done) = decode(&sse).unwrap();
        assert!(done);
        assert_eq!(assemble(&events).finish, Some(FinishReason::Length));

        // A model error: response.failed with the error's code, then nothing.
        let mut r = EventRenderer::new(ResponseHeader::new("resp_e", 1, "m"));
        let mut out = Vec::new();
        r.render(&text(0, "partial"), &mut out);
        let mut error = Error::new(ErrorKind::RateLimited, "slow down");
        error.code = Some("rate_limit_exceeded".into());
        r.render(&StreamEvent::Error(error), &mut out);
        r.render(&text(0, "more"), &mut out);
        r.finish(&mut out);
        let data = checked(&out);
        let last = data.last().unwrap();
        assert_eq!(last["type"], "response.failed");
        assert_eq!(
            last["response"]["error"],
            json!({"code": "rate_limit_exceeded", "message": "slow down"})
        );
        let err = decode(&out).unwrap_err();
        assert_eq!(
            (err.kind, err.message.as_str()),
            (ErrorKind::RateLimited, "slow down")
        );

        // Arguments of a call that never started cannot be rendered.
        let mut r = EventRenderer::new(ResponseHeader::new("resp_e", 1, "m"));
        let mut out = Vec::new();
        r.render(
            &StreamEvent::ToolArgsDelta {
                index: 3,
                json: "{}".into(),
            },
            &mut out,
        );
        r.finish(&mut out);
        let data = checked(&out);
        assert_eq!(
            data.last().unwrap()["response"]["error"]["code"],
            "server_error"
        );

        // Content switches at one index open new items; a redacted block is not rendered.
        let events = vec![
            StreamEvent::BlockStart {
                index: 0,
                kind: BlockKind::Reasoning {
                    redacted: Some("x".into()),
                },
            },
            StreamEvent::ReasoningDelta {
                index: 1,
                text: "hm".into(),
            },
            text(1, "a"),
            StreamEvent::BlockStop { index: 1 },
            text(1, "b"),
        ];
        let data = checked(&render(&events));
        let added: Vec<&str> = data
            .iter()
            .filter(|d| d["type"] == "response.output_item.added")
            .map(|d| d["item"]["type"].as_str().unwrap())
            .collect();
        assert_eq!(added, ["reasoning", "message", "message"]);
    }

    #[test]
    fn upstream_errors_and_bounds() {
        for (data, kind) in [
            (
                r#"{"type":"response.failed","response":{"status":"failed","error":{"code":"server_is_overloaded","message":"busy"}}}"#,
                ErrorKind::Overloaded,
            ),
            (
                r#"{"type":"error","code":"context_length_exceeded","message":"too long","param":"input"}"#,
                ErrorKind::RequestTooLarge,
            ),
            (
                r#"{"type":"error","error":{"type":"invalid_request_error","code":"invalid_prompt","message":"no"}}"#,
                ErrorKind::InvalidRequest,
            ),
            ("not json", ErrorKind::Upstream),
            (
                r#"{"type":"response.output_item.added","output_index":1024,"item":{"type":"message"}}"#,
                ErrorKind::Upstream,
            ),
            (
                r#"{"type":"response.output_text.delta","output_index":18446744073709551615,"delta":"x"}"#,
                ErrorKind::Upstream,
            ),
        ] {
            let err = EventDecoder::new()
                .on_event(None, data, &mut Vec::new())
                .unwrap_err();
            assert_eq!(err.kind, kind, "{data}");
        }
        let mut d = EventDecoder::new();
        let mut out = Vec::new();
        let call = |i: usize| {
            format!(
                r#"{{"type":"response.output_item.added","output_index":{i},"item":{{"type":"function_call","call_id":"c{i}","name":"f","arguments":""}}}}"#
            )
        };
        for i in 0..MAX_TOOL_CALLS {
            d.on_event(None, &call(i), &mut out).unwrap();
        }
        let err = d
            .on_event(None, &call(MAX_TOOL_CALLS), &mut out)
            .unwrap_err();
        assert!(err.message.contains("128 tool calls"), "{err}");
        assert_eq!(out.len(), MAX_TOOL_CALLS);
    }

    #[test]
    fn what_a_stream_keeps_is_bounded_however_long_the_answer() {
        let mut r = EventRenderer::new(ResponseHeader::new("resp_long", 1, "m"));
        let piece = "é".repeat(1 << 19); // 1 MiB of two-byte characters
        let mut sent = 0;
        for _ in 0..9 {
            let mut out = Vec::new();
            r.render(
                &StreamEvent::TextDelta {
                    index: 0,
                    text: piece.clone(),
                },
                &mut out,
            );
            sent += out.len();
        }
        assert!(sent > 9 << 20, "every delta goes out");
        assert!(r.held <= MAX_HELD);
        let mut out = Vec::new();
        r.finish(&mut out);
        let text = String::from_utf8(out).expect("utf-8");
        let completed = text
            .split("\n\n")
            .filter_map(|e| e.lines().nth(1)?.strip_prefix("data: "))
            .map(|d| serde_json::from_str::<serde_json::Value>(d).expect("json"))
            .find(|v| v["type"] == "response.completed")
            .expect("completed");
        let kept = completed["response"]["output"][0]["content"][0]["text"]
            .as_str()
            .expect("the text")
            .len();
        assert_eq!(kept, MAX_HELD, "the head, cut at a character");
    }
}
