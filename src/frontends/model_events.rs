//! The body of a stream on a door whose wire promptd renders from the model (Anthropic's
//! Messages, OpenAI's Responses): each door's [`Render`] turns the model's events into its own
//! (`message_start`, `content_block_delta`, ... or `response.output_text.delta`, ...), whoever
//! answered: an Anthropic-kind upstream's events are the model's already; an OpenAI-kind
//! upstream's chunks come with their model events (decoded once, by the provider's decoder,
//! for a call made for a door like this one), or are decoded here by the OpenAI chat wire (a
//! request of another door that this one joined); a cached answer replays its entry. An
//! upstream of the door's own wire is forwarded instead: each of its events as it came (block
//! types promptd has no model for included). A failure after the start is the wire's error
//! event, and nothing follows it. Events ready together go as one frame ([`Batch`]).

use std::task::{Context, Poll};

use bytes::Bytes;

use crate::cache::CacheEntry;
use crate::engine::{StreamItem, StreamItems};
use crate::frontends::batch::Batch;
use crate::model::{Error, ErrorKind, StreamEvent};
use crate::providers::{Piece, RawEvent};
use crate::wire::openai_chat::EventDecoder;

/// A door's rendering of the model's events.
pub trait Render {
    /// Append the frames of one model event (often none).
    fn render(&mut self, event: &StreamEvent, out: &mut Vec<u8>);
    /// The answer has begun (a live piece brought model events, the upstream's start among
    /// them): what opens the door's stream goes out now, not with the first content, so the
    /// client's first byte follows the upstream's (an OpenAI-kind upstream's first chunk often
    /// holds only the role, its text coming a token later).
    fn begin(&mut self, out: &mut Vec<u8>);
    /// Close what is open and end the answer.
    fn finish(&mut self, out: &mut Vec<u8>);
    /// Whether an upstream's event as it came is of this door's wire: it is then forwarded
    /// (and nothing is rendered), and the renderer may note what it was.
    fn forwards(&mut self, raw: &RawEvent) -> bool;
    /// After the upstream's own events: what ends a stream whose upstream stopped without its
    /// last event.
    fn end_forwarded(&mut self, out: &mut Vec<u8>);
    /// After the upstream's own events: the wire's error event, for a failure after them.
    fn forwarded_error(&mut self, message: &str, out: &mut Vec<u8>);
    /// The answer rendered whole (a clean end, or a replay), just before
    /// [`finish`](Self::finish) sends its last event: what the door keeps of it, if anything.
    fn ended(&mut self, _entry: &CacheEntry) {}
    /// The answer is a stored entry's, replayed whole: before anything of it is rendered.
    fn replaying(&mut self, _entry: &CacheEntry) {}
}

/// A stream being sent.
#[derive(Debug)]
pub struct ModelEvents<R> {
    items: StreamItems,
    renderer: R,
    /// Decodes an OpenAI-kind upstream's chunks (made at the first).
    chunks: Option<EventDecoder>,
    /// The model's events of the piece being rendered (kept to reuse its allocation).
    events: Vec<StreamEvent>,
    /// Live events were rendered: the end adds only what closes them.
    saw_events: bool,
    /// The upstream's own events were sent: nothing is rendered.
    forwarding: bool,
    ended: bool,
    batch: Batch,
}

impl<R: Render> ModelEvents<R> {
    pub fn new(items: StreamItems, renderer: R) -> Self {
        ModelEvents {
            items,
            renderer,
            chunks: None,
            events: Vec::new(),
            saw_events: false,
            forwarding: false,
            ended: false,
            batch: Batch::default(),
        }
    }

    /// The next body frame: the events ready together, batched (see [`Batch`]).
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let mut batch = std::mem::take(&mut self.batch);
        let next = batch.poll_joined(cx, |cx| self.poll_event(cx));
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
                self.fail("the stream ended before the answer was complete", &mut out);
                break;
            };
            match item {
                StreamItem::Piece(Piece {
                    raw_event: Some(raw),
                    ..
                }) if !self.saw_events && self.renderer.forwards(&raw) => {
                    self.forwarding = true;
                    forward(&raw, &mut out);
                }
                // What the engine adds for other doors (Parea's tool-call text).
                StreamItem::Piece(_) if self.forwarding => continue,
                StreamItem::Piece(piece) => self.render_piece(piece, &mut out),
                StreamItem::End(_) if self.forwarding => {
                    self.renderer.end_forwarded(&mut out);
                    self.ended = true;
                }
                StreamItem::End(entry) => {
                    if !self.saw_events {
                        self.render_entry(&entry, &mut out);
                    }
                    self.renderer.ended(&entry);
                    self.renderer.finish(&mut out);
                    self.ended = true;
                }
                StreamItem::Replay(entry) => {
                    self.renderer.replaying(&entry);
                    self.render_entry(&entry, &mut out);
                    self.renderer.ended(&entry);
                    self.renderer.finish(&mut out);
                    self.ended = true;
                }
                StreamItem::Error(message) => {
                    self.fail(&message, &mut out);
                    self.ended = true;
                }
            }
        }
        Poll::Ready(Some(Bytes::from(out)))
    }

    /// The stream failed after it started: the wire's error event.
    fn fail(&mut self, message: &str, out: &mut Vec<u8>) {
        if self.forwarding {
            self.renderer.forwarded_error(message, out);
        } else {
            let error = StreamEvent::Error(Error::new(ErrorKind::Upstream, message));
            self.renderer.render(&error, out);
        }
    }

    /// One live piece: its model events, or its OpenAI chunk decoded into them.
    fn render_piece(&mut self, piece: Piece, out: &mut Vec<u8>) {
        let mut events = std::mem::take(&mut self.events);
        match piece {
            Piece {
                chunk: Some(chunk),
                chunk_events: false,
                ..
            } => {
                let decoder = self.chunks.get_or_insert_with(EventDecoder::new);
                if let Err(e) = decoder.on_chunk(&chunk, &mut events) {
                    events.push(StreamEvent::Error(e));
                    self.ended = true;
                }
            }
            Piece { events: mine, .. } => events.extend(mine),
        }
        if !events.is_empty() {
            self.saw_events = true;
            for event in events.drain(..) {
                self.renderer.render(&event, out);
            }
            self.renderer.begin(out);
        }
        self.events = events;
    }

    fn render_entry(&mut self, entry: &CacheEntry, out: &mut Vec<u8>) {
        for event in entry.events() {
            self.renderer.render(&event, out);
        }
    }
}

/// An upstream's event as it came: its name, and its data one `data:` line per line (an SSE
/// data field holds no line break).
fn forward(raw: &RawEvent, out: &mut Vec<u8>) {
    if let Some(name) = &raw.name {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(name.as_bytes());
        out.push(b'\n');
    }
    for line in raw.data.split('\n') {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
}
