//! The body of an OpenAI-route stream: each upstream chunk as its own SSE event (the usage
//! chunk only for a client that asked for it), or — for an answer from an upstream of another
//! wire, or one promptd holds only in parts (a cache entry) — chunks rendered from the model's
//! events ([`EventRenderer`]); `data: [DONE]` after a clean end, an error event and no `[DONE]`
//! after a failure. Events ready together are sent as one frame ([`Batch`]).

use std::collections::VecDeque;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;

use crate::cache::entry::RawWire;
use crate::cache::CacheEntry;
use crate::engine::{StreamItem, StreamItems};
use crate::frontends::batch::Batch;
use crate::frontends::openai::response::{
    self, chunk_event, chunk_header, is_usage_chunk, AnswerView, DONE_EVENT,
};
use crate::frontends::openai::stream_error_event;
use crate::providers::Piece;
use crate::wire::openai_chat::{ChunkHeader, EventRenderer};

/// An OpenAI-route stream being sent.
#[derive(Debug)]
pub struct OpenAiEvents {
    items: StreamItems,
    include_usage: bool,
    trace_id: String,
    created: i64,
    /// The model the client asked for: shown until the answer names the one that answered.
    asked: String,
    /// Upstream chunks were sent: nothing is rendered.
    saw_chunk: bool,
    /// The model's events were rendered: the end adds only what closes them.
    saw_events: bool,
    /// Renders what is not sent as received (made at the first such piece, or at the end).
    renderer: Option<Box<EventRenderer>>,
    rendered: Vec<String>,
    queued: VecDeque<Bytes>,
    ended: bool,
    batch: Batch,
}

impl OpenAiEvents {
    pub fn new(items: StreamItems, include_usage: bool, trace_id: String, asked: String) -> Self {
        OpenAiEvents {
            items,
            include_usage,
            trace_id,
            created: chrono::Utc::now().timestamp(),
            asked,
            saw_chunk: false,
            saw_events: false,
            renderer: None,
            rendered: Vec::new(),
            queued: VecDeque::new(),
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

    /// The renderer, made with a header of the trace id when the answer's is not known yet.
    fn renderer(&mut self) -> &mut EventRenderer {
        let (trace_id, created, include_usage) = (&self.trace_id, self.created, self.include_usage);
        let asked = &self.asked;
        self.renderer.get_or_insert_with(|| {
            Box::new(EventRenderer::new(
                ChunkHeader {
                    id: format!("chatcmpl-{trace_id}"),
                    created,
                    model: asked.clone(),
                    system_fingerprint: None,
                },
                include_usage,
            ))
        })
    }

    /// Queue what the renderer made.
    fn flush_rendered(&mut self) {
        self.queued
            .extend(self.rendered.drain(..).map(|chunk| chunk_event(&chunk)));
    }

    /// The next event.
    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        loop {
            if let Some(event) = self.queued.pop_front() {
                return Poll::Ready(Some(event));
            }
            if self.ended {
                return Poll::Ready(None);
            }
            let Some(item) = std::task::ready!(self.items.poll_next(cx)) else {
                // The engine ends every stream with End or Error; a channel closed without
                // either is a stream that did not finish.
                self.ended = true;
                return Poll::Ready(Some(stream_error_event(
                    "the stream ended before the answer was complete",
                )));
            };
            match item {
                StreamItem::Piece(Piece {
                    chunk: Some(chunk),
                    usage_only,
                    ..
                }) => {
                    self.saw_chunk = true;
                    if self.include_usage || !usage_only {
                        return Poll::Ready(Some(chunk_event(&chunk)));
                    }
                }
                StreamItem::Piece(Piece { events, .. })
                    if !self.saw_chunk && !events.is_empty() =>
                {
                    self.saw_events = true;
                    let mut out = std::mem::take(&mut self.rendered);
                    let renderer = self.renderer();
                    for event in &events {
                        renderer.render(event, &mut out);
                    }
                    self.rendered = out;
                    self.flush_rendered();
                }
                // Parea's tool-call text of a stream whose chunks or events carried the calls.
                StreamItem::Piece(_) => continue,
                StreamItem::End(entry) => {
                    if !self.saw_chunk {
                        self.render_end(&entry);
                    }
                    self.queued.push_back(Bytes::from_static(DONE_EVENT));
                    self.ended = true;
                }
                // A cached answer: an OpenAI-kind upstream's chunks as it sent them, else
                // rendered from the entry.
                StreamItem::Replay(entry) => {
                    if entry.chunks.is_empty() || entry.raw_wire != RawWire::OpenAiChat {
                        self.render_end(&entry);
                    } else {
                        let include_usage = self.include_usage;
                        self.queued.extend(
                            entry
                                .chunks
                                .iter()
                                .filter(|c| include_usage || !is_usage_chunk(c))
                                .map(|c| chunk_event(c)),
                        );
                    }
                    self.queued.push_back(Bytes::from_static(DONE_EVENT));
                    self.ended = true;
                }
                StreamItem::Error(message) => {
                    self.ended = true;
                    return Poll::Ready(Some(stream_error_event(&message)));
                }
            }
        }
    }

    /// The chunks that end a rendered stream: for an answer whose events were not seen (a
    /// cache replay), the entry's text, tool calls, usage and finish first.
    fn render_end(&mut self, entry: &Arc<CacheEntry>) {
        let mut out = std::mem::take(&mut self.rendered);
        if !self.saw_events {
            let view = view_of(entry, &self.trace_id, self.created);
            let renderer = self.renderer.get_or_insert_with(|| {
                Box::new(EventRenderer::new(chunk_header(&view), self.include_usage))
            });
            for event in entry.events() {
                renderer.render(&event, &mut out);
            }
        }
        self.renderer().finish(&mut out);
        self.rendered = out;
        self.flush_rendered();
    }
}

/// The `chat.completion` body of a whole answer: the upstream's own body when it answered whole
/// (shared with the cache entry, not copied), else rendered from the entry.
pub fn completion_body(entry: &Arc<CacheEntry>, trace_id: &str, created: i64) -> Bytes {
    if let Some(raw) = CacheEntry::raw_body(entry, RawWire::OpenAiChat) {
        return raw;
    }
    response::completion(&view_of(entry, trace_id, created))
}

/// The view of a cache entry an OpenAI answer is rendered from.
pub fn view_of<'a>(entry: &'a Arc<CacheEntry>, trace_id: &str, created: i64) -> AnswerView<'a> {
    // The upstream's bytes are shown only when they are OpenAI's.
    let ours = entry.raw_wire == RawWire::OpenAiChat;
    AnswerView {
        raw_response: ours.then_some(entry.raw_response.as_deref()).flatten(),
        first_chunk: ours
            .then_some(entry.chunks.first())
            .flatten()
            .map(String::as_str),
        fallback_id: format!("chatcmpl-{trace_id}"),
        created,
        response: &entry.response,
    }
}
