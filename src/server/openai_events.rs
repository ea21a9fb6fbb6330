//! The body of an OpenAI-route stream: each upstream chunk as its own SSE event (the usage
//! chunk only for a client that asked for it), or — for an answer promptd holds only in parts —
//! chunks rendered from its text and its end; `data: [DONE]` after a clean end, an error event
//! and no `[DONE]` after a failure. Events ready together are sent as one frame ([`Batch`]).

use std::collections::VecDeque;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;

use super::batch::Batch;
use crate::api::openai::response::{
    self, chunk_event, closing_chunks, text_chunk, AnswerView, Header, ToolCallView, DONE_EVENT,
};
use crate::api::openai::stream_error_event;
use crate::cache::CacheEntry;
use crate::engine::{StreamItem, StreamItems};
use crate::providers::Piece;

/// An OpenAI-route stream being sent.
#[derive(Debug)]
pub struct OpenAiEvents {
    items: StreamItems,
    include_usage: bool,
    trace_id: String,
    created: i64,
    /// Upstream chunks were sent: nothing is rendered from parts.
    saw_chunk: bool,
    /// Rendered text chunks so far (the first carries the role).
    rendered: usize,
    /// Parts seen before the end, to render from.
    header: Option<Header>,
    queued: VecDeque<Bytes>,
    ended: bool,
    batch: Batch,
}

impl OpenAiEvents {
    pub fn new(items: StreamItems, include_usage: bool, trace_id: String) -> Self {
        OpenAiEvents {
            items,
            include_usage,
            trace_id,
            created: chrono::Utc::now().timestamp(),
            saw_chunk: false,
            rendered: 0,
            header: None,
            queued: VecDeque::new(),
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
                StreamItem::Piece(Piece {
                    text: Some(text),
                    chunk: None,
                    ..
                }) if !self.saw_chunk => {
                    let header = self
                        .header
                        .get_or_insert_with(|| Header::placeholder(&self.trace_id, self.created));
                    let event = text_chunk(header, &text, self.rendered == 0);
                    self.rendered += 1;
                    return Poll::Ready(Some(event));
                }
                // Parea's tool-call text of a stream whose chunks already carried the calls.
                StreamItem::Piece(_) => continue,
                StreamItem::End(entry) => {
                    if !self.saw_chunk {
                        let view = view_of(&entry, &self.trace_id, self.created);
                        let header = self.header.take().unwrap_or_else(|| Header::of(&view));
                        if self.rendered == 0 {
                            // A replay: its text deltas first.
                            for text in text_deltas(&entry) {
                                self.queued.push_back(text_chunk(
                                    &header,
                                    text,
                                    self.rendered == 0,
                                ));
                                self.rendered += 1;
                            }
                        }
                        self.queued.extend(closing_chunks(
                            &header,
                            &view,
                            self.rendered > 0,
                            self.include_usage,
                        ));
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
}

/// The text deltas of an entry: its deltas without the tool calls' JSON, which is the last one
/// when the model called tools (Parea's `content`).
fn text_deltas(entry: &CacheEntry) -> &[String] {
    match entry.deltas.split_last() {
        Some((_, texts)) if !entry.tool_calls.is_empty() => texts,
        _ => &entry.deltas,
    }
}

/// The `chat.completion` body of a whole answer: the upstream's own body when it answered whole
/// (shared with the cache entry, not copied), else rendered from the entry.
pub fn completion_body(entry: &Arc<CacheEntry>, trace_id: &str, created: i64) -> Bytes {
    if entry.raw_response.is_some() {
        return Bytes::from_owner(RawResponse(Arc::clone(entry)));
    }
    response::completion(&view_of(entry, trace_id, created))
}

/// A cache entry seen as the bytes of its upstream body.
struct RawResponse(Arc<CacheEntry>);

impl AsRef<[u8]> for RawResponse {
    fn as_ref(&self) -> &[u8] {
        self.0
            .raw_response
            .as_deref()
            .unwrap_or_default()
            .as_bytes()
    }
}

/// The view of a cache entry an OpenAI answer is rendered from.
pub fn view_of<'a>(entry: &'a Arc<CacheEntry>, trace_id: &str, created: i64) -> AnswerView<'a> {
    let text = if entry.tool_calls.is_empty() {
        entry.content.clone()
    } else {
        // With tool calls `content` is their JSON; the text is the other deltas.
        text_deltas(entry).concat()
    };
    AnswerView {
        raw_response: entry.raw_response.as_deref(),
        first_chunk: entry.chunks.first().map(String::as_str),
        fallback_id: format!("chatcmpl-{trace_id}"),
        created,
        model: &entry.model,
        text,
        tool_calls: entry
            .tool_calls
            .iter()
            .map(|c| ToolCallView {
                id: &c.id,
                name: &c.name,
                arguments: &c.arguments,
            })
            .collect(),
        finish_reason: entry.finish_reason.as_ref(),
        usage: entry.usage,
    }
}
