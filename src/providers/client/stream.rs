//! An open upstream stream, read by polling: body frames are parsed as server-sent events and
//! decoded into [`Piece`]s for the provider's kind, under three clocks (the first event within
//! the provider's `timeout`, every later one within `stream_idle_timeout`, the whole stream
//! within `max_stream_duration`). Poll-based so that a response body can read it directly, in
//! the task that writes the answer, with no task or channel between the two.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::Body;
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use super::super::metrics::ProviderMetrics;
use super::super::sse::{SseEvent, SseParser};
use super::super::{Completion, Piece, ProviderError, RawEvent, StreamDecoder};

/// The limits an [`UpstreamStream`] is read under.
#[derive(Debug, Clone, Copy)]
pub(super) struct StreamClocks {
    /// For the first read (the provider's whole `timeout`).
    pub first: Duration,
    /// For every later read.
    pub idle: Duration,
    /// For the whole stream, however lively.
    pub max: Duration,
}

/// The sizes an [`UpstreamStream`] is read under.
#[derive(Debug, Clone, Copy)]
pub(super) struct StreamLimits {
    /// One line or event (`max_event_bytes`).
    pub event: usize,
}

/// An open upstream stream: yields [`Piece`]s, then the accumulated [`Completion`].
#[derive(Debug)]
pub struct UpstreamStream {
    body: Incoming,
    parser: SseParser,
    /// Events parsed and not yet decoded.
    pending: VecDeque<SseEvent>,
    /// The parser's output for one frame (kept, so a frame costs no allocation).
    parsed: Vec<SseEvent>,
    /// Pieces decoded and not yet handed on.
    ready: VecDeque<Piece>,
    decoder: StreamDecoder,
    clocks: StreamClocks,
    /// The wait that applies to the next read: `clocks.first`, then `clocks.idle`.
    wait: Duration,
    /// When the current wait for a frame runs out; `None` while not waiting.
    waiting_until: Option<Instant>,
    /// One timer, moved to each wait's end (tokio extends a later deadline without touching its
    /// wheel, so a read costs no timer registration).
    timer: Pin<Box<Sleep>>,
    /// When the stream is cut, however lively (`max_stream_duration` after it opened).
    cut_at: Instant,
    /// The provider's call slot, held until the stream is dropped.
    _slot: tokio::sync::OwnedSemaphorePermit,
    finished: bool,
    metrics: ProviderMetrics,
}

impl UpstreamStream {
    pub(super) fn new(
        body: Incoming,
        decoder: StreamDecoder,
        clocks: StreamClocks,
        limits: StreamLimits,
        slot: tokio::sync::OwnedSemaphorePermit,
        metrics: ProviderMetrics,
    ) -> Self {
        let cut_at = Instant::now() + clocks.max;
        UpstreamStream {
            body,
            parser: SseParser::with_limit(limits.event),
            pending: VecDeque::new(),
            parsed: Vec::new(),
            ready: VecDeque::new(),
            decoder,
            clocks,
            wait: clocks.first,
            waiting_until: None,
            timer: Box::pin(tokio::time::sleep_until(cut_at)),
            cut_at,
            _slot: slot,
            finished: false,
            metrics,
        }
    }

    /// The next piece (an event with text, or an OpenAI chunk); `Ok(None)` once the answer
    /// ended cleanly. A failure after the start (error event, cut connection, idle timeout, a
    /// body that ends too early) is an error.
    pub async fn next_piece(&mut self) -> Result<Option<Piece>, ProviderError> {
        poll_fn(|cx| self.poll_next_piece(cx)).await
    }

    /// [`UpstreamStream::next_piece`], polled.
    pub fn poll_next_piece(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Piece>, ProviderError>> {
        let result = ready!(self.poll_read(cx));
        if let Err(e) = &result {
            self.metrics.error(e.kind());
        }
        Poll::Ready(result)
    }

    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Piece>, ProviderError>> {
        loop {
            if let Some(piece) = self.ready.pop_front() {
                return Poll::Ready(Ok(Some(piece)));
            }
            if let Some(event) = self.pending.pop_front() {
                self.decode(event)?;
                continue;
            }
            if self.finished {
                return Poll::Ready(Ok(None));
            }
            match ready!(self.poll_frame(cx))? {
                Some(bytes) => {
                    self.parser
                        .feed(&bytes, &mut self.parsed)
                        .map_err(too_large)?;
                    self.pending.extend(self.parsed.drain(..));
                }
                None => {
                    self.parser.finish(&mut self.parsed).map_err(too_large)?;
                    if self.parsed.is_empty() {
                        if self.decoder.ended_cleanly() {
                            self.finished = true;
                            return Poll::Ready(Ok(None));
                        }
                        return Poll::Ready(Err(ProviderError::Stream(
                            "stream ended before the answer was complete".into(),
                        )));
                    }
                    self.pending.extend(self.parsed.drain(..));
                }
            }
        }
    }

    /// Decode one event into [`UpstreamStream::ready`].
    fn decode(&mut self, event: SseEvent) -> Result<(), ProviderError> {
        let decoded = self.decoder.on_event(&event)?;
        if decoded.done {
            self.finished = true;
            self.pending.clear();
        }
        // An upstream's events of a door's wire go on as they came (moved, not copied).
        let raw_event = self.decoder.keeps_events().then(|| RawEvent {
            wire: self.decoder.wire(),
            name: event.event,
            data: event.data,
        });
        if decoded.delta.is_some()
            || decoded.chunk.is_some()
            || !decoded.events.is_empty()
            || raw_event.is_some()
        {
            self.ready.push_back(Piece {
                text: decoded.delta,
                chunk: decoded.chunk,
                events: decoded.events,
                usage_only: decoded.usage_only,
                chunk_events: decoded.chunk_events,
                raw_event,
            });
        }
        Ok(())
    }

    /// The next data frame of the body (trailers skipped), `None` at its end, under the clocks.
    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, ProviderError>> {
        loop {
            match Pin::new(&mut self.body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    self.waiting_until = None;
                    self.wait = self.clocks.idle;
                    match frame.into_data() {
                        Ok(data) => return Poll::Ready(Ok(Some(data))),
                        Err(_trailers) => continue,
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    return Poll::Ready(Err(ProviderError::Stream(format!(
                        "stream cut: {}",
                        crate::error_chain(&e)
                    ))))
                }
                Poll::Ready(None) => return Poll::Ready(Ok(None)),
                Poll::Pending => return self.poll_clocks(cx),
            }
        }
    }

    /// No frame yet: `Pending` until one comes, an error once a clock runs out.
    fn poll_clocks(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, ProviderError>> {
        let until = *self
            .waiting_until
            .get_or_insert_with(|| (Instant::now() + self.wait).min(self.cut_at));
        if self.timer.deadline() != until {
            self.timer.as_mut().reset(until);
        }
        ready!(self.timer.as_mut().poll(cx));
        Poll::Ready(Err(ProviderError::Stream(if until >= self.cut_at {
            format!(
                "the stream ran over max_stream_duration ({:?}) and was cut",
                self.clocks.max
            )
        } else {
            format!("no stream event within {:?}", self.wait)
        })))
    }

    /// The whole answer as accumulated from the stream (its head, past what is held).
    pub fn into_completion(self) -> Completion {
        self.decoder.into_completion()
    }
}

/// A stream event over `max_event_bytes`: the stream fails.
fn too_large(e: super::super::sse::EventTooLarge) -> ProviderError {
    ProviderError::Stream(e.to_string())
}
