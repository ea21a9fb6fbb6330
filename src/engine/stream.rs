//! Streamed answers: replayed from the cache, shared with identical requests in flight, or
//! (with `cache: false`) a private upstream stream that is cancelled when the client leaves.
//! The upstream's first piece, whatever it holds (OpenAI's carries only the role), is read
//! before the response is committed: a client's stream starts as soon as the upstream answered,
//! and an error before that is an HTTP error. The record of a stream is logged when it ends,
//! with its time to that first piece. A stream that ends cleanly ends with
//! [`StreamItem::End`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::answer::response_from_entry;
use super::log::{Record, Timing};
use super::order::{settle, Source};
use super::private::PrivateStream;
use super::{
    provider_error, CompletionStream, Engine, Prepared, RequestCtx, StreamItem, StreamItems,
    STREAM_BUFFER,
};
use crate::cache::coalesce::{Event, Outcome, Subscription};
use crate::cache::{CacheEntry, CacheStatus};
use crate::call::ApiError;
use crate::call::Call;
use crate::providers::Piece;

/// What a shared stream's forwarder keeps of the text it sent, for a cancelled request's
/// record: a head, as the record keeps one (the spool bounds a record anyway).
const SENT_HEAD_BYTES: usize = 1024 * 1024;

impl Engine {
    /// Start a streamed completion. Errors before the first piece are returned here (so they
    /// become HTTP errors); later ones arrive as [`StreamItem::Error`].
    pub async fn stream(
        self: &Arc<Self>,
        req: Call,
        ctx: RequestCtx,
    ) -> Result<CompletionStream, ApiError> {
        let timing = Timing::now();
        let prepared = self.prepare(req, ctx).await?;
        // The record keeps its own copy: a stream's parts outlive this call.
        let mut record = Record::new(self, prepared.clone(), timing);
        let trace_id = prepared.trace_id.clone();
        let dropped = prepared.dropped.clone();
        let waited = Instant::now();
        let source = self.source(&prepared, true);
        let replayed_fresh = matches!(source, Source::Fresh { .. });
        let (items, cache, key) = match source {
            Source::Bypass => {
                let items = self.stream_uncached(prepared, record).await?;
                (items, CacheStatus::Bypass, None)
            }
            Source::Fresh { key, entry } => {
                let items = replay_and_log(&prepared, record, entry, true);
                (items, CacheStatus::Hit, Some(key))
            }
            Source::Flight {
                key,
                mut sub,
                leader,
            } => {
                let (items, status) = match first_piece(&mut sub).await {
                    Ok(first) => {
                        record.first_piece();
                        let items = self.forward(first, sub, prepared, record, !leader);
                        (
                            items,
                            if leader {
                                CacheStatus::Miss
                            } else {
                                CacheStatus::Hit
                            },
                        )
                    }
                    Err(outcome) => match settle(outcome, leader) {
                        Ok((entry, status)) => {
                            let hit = status != CacheStatus::Miss;
                            (replay_and_log(&prepared, record, entry, hit), status)
                        }
                        Err(e) => {
                            record.failed(&e);
                            return Err(e);
                        }
                    },
                };
                self.cache.record(status);
                (items, status, Some(key))
            }
        };
        // A replay of a stored entry waited for no provider; anything else waited here.
        let provider_wait = if replayed_fresh {
            Duration::ZERO
        } else {
            waited.elapsed()
        };
        Ok(CompletionStream {
            trace_id,
            items,
            cache,
            key,
            provider_wait,
            dropped,
        })
    }

    /// Forward a flight's pieces to one client and log its record when the flight ends. When
    /// the client leaves, the flight goes on (and is cached), and this request's record says
    /// `cancelled`, with the text the client had been sent.
    fn forward(
        self: &Arc<Self>,
        first: Piece,
        mut sub: Subscription<ApiError>,
        prepared: Prepared,
        record: Record,
        cache_hit: bool,
    ) -> StreamItems {
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        self.tasks.spawn(async move {
            let mut item = Some(StreamItem::Piece(first));
            let mut sent = String::new();
            loop {
                if let Some(it) = item.take() {
                    let text = match &it {
                        StreamItem::Piece(piece) => {
                            piece.text_ref().map(std::borrow::Cow::into_owned)
                        }
                        _ => None,
                    };
                    if tx.send(it).await.is_err() {
                        // The client left: its record now; the flight goes on for the cache.
                        record.cancelled(sent, (0, 0));
                        return;
                    }
                    crate::providers::push_within(
                        &mut sent,
                        text.as_deref().unwrap_or_default(),
                        SENT_HEAD_BYTES,
                    );
                }
                match sub.next().await {
                    Event::Delta(piece) => item = Some(StreamItem::Piece(piece)),
                    Event::Outcome(outcome) => {
                        match settle(outcome, false) {
                            Ok((entry, _)) => {
                                let response = response_from_entry(
                                    &prepared,
                                    &entry,
                                    record.timing(),
                                    cache_hit,
                                );
                                record.answered(&response);
                                let _ = tx.send(StreamItem::End(entry)).await;
                            }
                            Err(e) => {
                                record.failed(&e);
                                let _ = tx.send(StreamItem::Error(e.to_string())).await;
                            }
                        }
                        return;
                    }
                }
            }
        });
        rx.into()
    }

    /// A stream that is not shared or cached, read by the client's response body (see
    /// [`PrivateStream`]).
    async fn stream_uncached(
        self: &Arc<Self>,
        prepared: Prepared,
        mut record: Record,
    ) -> Result<StreamItems, ApiError> {
        let provider = Arc::clone(&prepared.provider);
        let key = prepared.api_key.as_ref();
        // Boxed: see `Engine::complete_uncached`.
        let opened = Box::pin(provider.open_stream(&prepared.chat, key)).await;
        let read = match opened {
            Ok(mut upstream) => match upstream.next_piece().await {
                Ok(first) => Ok((first, upstream)),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        let (first, upstream) = match read {
            Ok(read) => read,
            Err(e) => {
                let err = provider_error(&provider, e, key);
                record.failed(&err);
                return Err(err);
            }
        };
        record.first_piece();
        let stream = PrivateStream::new(Arc::clone(self), prepared, record, first, upstream);
        Ok(StreamItems::private(stream))
    }
}

/// A complete answer replayed as a stream (one event per stored piece), logged at once.
fn replay_and_log(
    prepared: &Prepared,
    mut record: Record,
    entry: Arc<CacheEntry>,
    cache_hit: bool,
) -> StreamItems {
    let response = response_from_entry(prepared, &entry, record.timing(), cache_hit);
    record.first_piece();
    record.answered(&response);
    replay(entry).into()
}

/// The first piece of a flight, or the flight's outcome when it ends first.
async fn first_piece(sub: &mut Subscription<ApiError>) -> Result<Piece, Outcome<ApiError>> {
    match sub.next().await {
        Event::Delta(piece) => Ok(piece),
        Event::Outcome(outcome) => Err(outcome),
    }
}

/// A channel already holding a cached answer, which the request's door replays in its own
/// wire.
fn replay(entry: Arc<CacheEntry>) -> mpsc::Receiver<StreamItem> {
    let (tx, rx) = mpsc::channel(1);
    // Capacity is exactly the one item.
    let _ = tx.try_send(StreamItem::Replay(entry));
    rx
}
