//! The body of a `/completion/stream` answer: the trace id's event first, then one event per
//! text piece as the upstream sends it, or per stored delta of a cached answer (then its tool
//! calls' JSON, as a live stream ends), an error event after a failure.

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;

use super::stream;
use crate::cache::CacheEntry;
use crate::engine::{StreamItem, StreamItems};
use crate::frontends::batch::Batch;
use crate::providers::tool_calls_json;

/// A completion stream rendered as Parea events: the `ID_START` event, then one event per item.
#[derive(Debug)]
pub struct EventStream {
    first: Option<Bytes>,
    items: StreamItems,
    /// A cached answer being replayed, and its next delta.
    replay: Option<(Arc<CacheEntry>, usize)>,
    ended: bool,
    /// The events ready together, given in a row so they are written together.
    batch: Batch,
}

impl EventStream {
    /// The events of `items`, a stream of trace `trace_id`.
    pub fn new(trace_id: &str, items: StreamItems) -> EventStream {
        EventStream {
            first: Some(stream::id_event(trace_id)),
            items,
            replay: None,
            ended: false,
            batch: Batch::default(),
        }
    }

    /// The next event, each its own body frame (the Python SDK parses each chunk as one
    /// event); the events ready together are given in a row, so hyper writes them in one
    /// `writev`, a chunk each (see [`Batch::poll_each`]).
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let mut batch = std::mem::take(&mut self.batch);
        let next = batch.poll_each(cx, |cx| self.poll_event(cx));
        self.batch = batch;
        next
    }

    /// The next event.
    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(first));
        }
        loop {
            if let Some((entry, next)) = &mut self.replay {
                // One event per stored delta, as the answer streamed, then — when the model
                // called tools — their JSON (Parea's `content`), as a live stream ends.
                if let Some(delta) = entry.deltas.get(*next) {
                    *next += 1;
                    return Poll::Ready(Some(stream::chunk_event(delta)));
                }
                let calls =
                    *next == entry.deltas.len() && entry.response.tool_calls().next().is_some();
                *next += 1;
                if calls {
                    let json = tool_calls_json(entry.response.tool_calls());
                    return Poll::Ready(Some(stream::chunk_event(&json)));
                }
                self.replay = None;
                self.ended = true;
            }
            if self.ended {
                return Poll::Ready(None);
            }
            let Some(item) = std::task::ready!(self.items.poll_next(cx)) else {
                return Poll::Ready(None);
            };
            match item {
                StreamItem::Replay(entry) => self.replay = Some((entry, 0)),
                StreamItem::Piece(piece) => {
                    if let Some(text) = piece.text_ref() {
                        return Poll::Ready(Some(stream::chunk_event(&text)));
                    }
                    // A piece with no text (a role, a tool call fragment) shows nothing.
                }
                // The end carries nothing a Parea stream shows.
                StreamItem::End(_) => continue,
                StreamItem::Error(message) => {
                    self.ended = true;
                    return Poll::Ready(Some(stream::error_event(&message)));
                }
            }
        }
    }
}
