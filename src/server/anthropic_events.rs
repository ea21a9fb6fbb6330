//! The body of a Messages-door stream: Anthropic's events (`message_start`, `ping`, content
//! blocks with their deltas, `message_delta`, `message_stop`). An Anthropic-kind upstream's
//! events go on as it sent them (block types promptd has no model for, such as server tool
//! use, included). Any other answer is rendered from the model's events by the Anthropic
//! wire's [`EventRenderer`]: an OpenAI-kind upstream's chunks are decoded here by the OpenAI
//! chat wire; a cached answer replays its entry. A failure after the start is an
//! `event: error`, and nothing follows it. Events ready together go as one frame ([`Batch`]).

use std::task::{Context, Poll};

use bytes::Bytes;

use super::batch::Batch;
use crate::api::anthropic::error_event;
use crate::cache::CacheEntry;
use crate::engine::{StreamItem, StreamItems};
use crate::model::{Error, ErrorKind, StreamEvent};
use crate::providers::{Piece, RawEvent};
use crate::wire::anthropic::EventRenderer;
use crate::wire::openai_chat::EventDecoder;

/// The end of a forwarded stream whose upstream did not send it (it stopped after its
/// `message_delta`).
const MESSAGE_STOP: &[u8] = b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

/// A Messages stream being sent.
#[derive(Debug)]
pub struct AnthropicEvents {
    items: StreamItems,
    renderer: EventRenderer,
    /// Decodes an OpenAI-kind upstream's chunks (made at the first).
    chunks: Option<EventDecoder>,
    /// The model's events of the piece being rendered (kept to reuse its allocation).
    events: Vec<StreamEvent>,
    /// Live events were rendered: the end adds only what closes them.
    saw_events: bool,
    /// The upstream's own events were sent: nothing is rendered.
    forwarding: bool,
    /// Its `message_stop` was among them.
    saw_stop: bool,
    ended: bool,
    batch: Batch,
}

impl AnthropicEvents {
    /// The stream of trace `trace_id` (its message id) for a client that asked for `model`.
    pub fn new(items: StreamItems, trace_id: &str, model: &str) -> Self {
        AnthropicEvents {
            items,
            renderer: EventRenderer::new(trace_id, model),
            chunks: None,
            events: Vec::new(),
            saw_events: false,
            forwarding: false,
            saw_stop: false,
            ended: false,
            batch: Batch::default(),
        }
    }

    /// The next body frame: the events ready together, batched (see [`Batch`]).
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let mut batch = std::mem::take(&mut self.batch);
        let next = batch.poll_next(cx, |cx| self.poll_event(cx));
        self.batch = batch;
        next
    }

    /// The frames of the next item that makes any.
    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let mut out = Vec::new();
        while out.is_empty() {
            if self.ended {
                return Poll::Ready(None);
            }
            let Some(item) = std::task::ready!(self.items.poll_next(cx)) else {
                // The engine ends every stream with End or Error; a channel closed without
                // either is a stream that did not finish.
                self.ended = true;
                return Poll::Ready(Some(error_event(
                    "the stream ended before the answer was complete",
                )));
            };
            match item {
                StreamItem::Piece(Piece {
                    raw_event: Some(raw),
                    ..
                }) if !self.saw_events => self.forward(&raw, &mut out),
                // What the engine adds for other doors (Parea's tool-call text).
                StreamItem::Piece(_) if self.forwarding => continue,
                StreamItem::Piece(piece) => self.render_piece(piece, &mut out),
                StreamItem::End(_) if self.forwarding => {
                    if !self.saw_stop {
                        out.extend_from_slice(MESSAGE_STOP);
                    }
                    self.ended = true;
                }
                StreamItem::Error(message) if self.forwarding => {
                    self.ended = true;
                    return Poll::Ready(Some(error_event(&message)));
                }
                StreamItem::End(entry) => {
                    if !self.saw_events {
                        self.render_entry(&entry, &mut out);
                    }
                    self.renderer.finish(&mut out);
                    self.ended = true;
                }
                StreamItem::Replay(entry) => {
                    self.render_entry(&entry, &mut out);
                    self.renderer.finish(&mut out);
                    self.ended = true;
                }
                StreamItem::Error(message) => {
                    let error = StreamEvent::Error(Error::new(ErrorKind::Upstream, message));
                    self.renderer.render(&error, &mut out);
                    self.ended = true;
                }
            }
        }
        Poll::Ready(Some(Bytes::from(out)))
    }

    /// An upstream event of Anthropic's wire, as it came.
    fn forward(&mut self, raw: &RawEvent, out: &mut Vec<u8>) {
        self.forwarding = true;
        if let Some(name) = &raw.name {
            self.saw_stop |= name == "message_stop";
            out.extend_from_slice(b"event: ");
            out.extend_from_slice(name.as_bytes());
            out.push(b'\n');
        }
        // An SSE data field holds no line break: each line of the upstream's data is one.
        for line in raw.data.split('\n') {
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(line.as_bytes());
            out.push(b'\n');
        }
        out.push(b'\n');
    }

    /// One live piece: its model events, or its OpenAI chunk decoded into them.
    fn render_piece(&mut self, piece: Piece, out: &mut Vec<u8>) {
        let mut events = std::mem::take(&mut self.events);
        match piece {
            Piece {
                chunk: Some(chunk), ..
            } => {
                let decoder = self.chunks.get_or_insert_with(EventDecoder::new);
                if let Err(e) = decoder.on_chunk(&chunk, &mut events) {
                    events.push(StreamEvent::Error(e));
                    self.ended = true;
                }
            }
            Piece { events: mine, .. } => events.extend(mine),
        }
        self.saw_events |= !events.is_empty();
        for event in events.drain(..) {
            self.renderer.render(&event, out);
        }
        self.events = events;
    }

    fn render_entry(&mut self, entry: &CacheEntry, out: &mut Vec<u8>) {
        for event in entry.events() {
            self.renderer.render(&event, out);
        }
    }
}
