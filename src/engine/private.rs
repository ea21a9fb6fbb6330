//! A stream nobody shares (`cache: false`, `x-promptd-cache: bypass`): the client's response
//! body polls the upstream itself, in the connection's task, with no task or channel between
//! them, so a piece goes out in the same poll it arrives in. Its record is written when the
//! upstream ends, before the last item; when the body is dropped first (the client left, or
//! the drain closed the connection) the upstream call is dropped with it — cancelled — and the
//! record says `cancelled`, with the text the upstream had sent.

use std::collections::VecDeque;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::answer::{entry_from_completion, response_from_entry};
use super::log::Record;
use super::read::tool_calls_piece;
use super::{provider_error, Engine, Prepared, StreamItem};
use crate::providers::{Completion, Piece, ProviderError, UpstreamStream};

/// A private stream being read by its client's response body.
pub(super) struct PrivateStream {
    engine: Arc<Engine>,
    prepared: Prepared,
    /// The request's record, written when the upstream ends, fails, or is dropped (`None`
    /// once written).
    record: Option<Record>,
    /// The piece read before the response was committed.
    first: Option<Piece>,
    /// `None` once the upstream ended (or failed). Boxed: it is moved out and back on every
    /// read.
    upstream: Option<Box<UpstreamStream>>,
    /// What follows the upstream's end: the tool calls' piece, then [`StreamItem::End`].
    ending: VecDeque<StreamItem>,
}

impl PrivateStream {
    pub(super) fn new(
        engine: Arc<Engine>,
        prepared: Prepared,
        record: Record,
        first: Option<Piece>,
        upstream: UpstreamStream,
    ) -> Self {
        PrivateStream {
            engine,
            prepared,
            record: Some(record),
            first,
            upstream: Some(Box::new(upstream)),
            ending: VecDeque::new(),
        }
    }

    /// The next item; `None` after the last.
    pub(super) fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<StreamItem>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(StreamItem::Piece(first)));
        }
        if let Some(item) = self.ending.pop_front() {
            return Poll::Ready(Some(item));
        }
        // Taken while it is read, put back unless it ended or failed: a stream that is done
        // with holds no upstream (nor its call slot).
        let Some(mut upstream) = self.upstream.take() else {
            return Poll::Ready(None);
        };
        match upstream.poll_next_piece(cx) {
            Poll::Pending => {
                self.upstream = Some(upstream);
                Poll::Pending
            }
            Poll::Ready(Ok(Some(piece))) => {
                self.upstream = Some(upstream);
                Poll::Ready(Some(StreamItem::Piece(piece)))
            }
            Poll::Ready(Ok(None)) => Poll::Ready(Some(self.end(upstream.into_completion()))),
            Poll::Ready(Err(e)) => Poll::Ready(Some(self.fail(e))),
        }
    }

    /// The upstream ended cleanly: the record, then the items that end the stream (the first
    /// returned, the others queued).
    fn end(&mut self, completion: Completion) -> StreamItem {
        let calls = tool_calls_piece(&completion);
        let prepared = &self.prepared;
        let prices = &self.engine.upstreams().prices;
        // No deltas kept: the entry is built from the completion (its text).
        let entry = entry_from_completion(prepared, completion, None, prices, (0, 0));
        if let Some(record) = self.record.take() {
            let response = response_from_entry(prepared, &entry, record.timing(), false);
            record.answered(&response);
        }
        let end = StreamItem::End(Arc::new(entry));
        match calls {
            Some(calls) => {
                self.ending.push_back(end);
                StreamItem::Piece(calls)
            }
            None => end,
        }
    }

    /// The upstream failed after the stream started: the record, and the error event.
    fn fail(&mut self, e: ProviderError) -> StreamItem {
        let prepared = &self.prepared;
        let err = provider_error(&prepared.provider, e, prepared.api_key.as_ref());
        tracing::warn!(trace_id = %prepared.trace_id, error = %err, "stream failed after it started");
        if let Some(record) = self.record.take() {
            record.failed(&err);
        }
        StreamItem::Error(err.to_string())
    }
}

/// A body dropped before the upstream ended: the call is cancelled, and its record says so.
impl Drop for PrivateStream {
    fn drop(&mut self) {
        if let Some(upstream) = self.upstream.take() {
            tracing::debug!(trace_id = %self.prepared.trace_id, "client went away; upstream stream cancelled");
            let partial = upstream.into_completion();
            let usage = &partial.response.usage;
            let usage = (usage.total_input(), usage.output);
            if let Some(record) = self.record.take() {
                record.cancelled(partial.content(), usage);
            }
        }
    }
}

impl std::fmt::Debug for PrivateStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateStream")
            .field("trace_id", &self.prepared.trace_id)
            .field("ended", &self.upstream.is_none())
            .finish_non_exhaustive()
    }
}
