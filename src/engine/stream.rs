//! Streamed answers: replayed from the cache, shared with identical requests in flight, or
//! (with `cache: false`) a private upstream stream that is cancelled when the client leaves.
//! The first delta is read before the response is committed; the record of a stream is
//! logged when it ends, with its time to first token.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::answer::{entry_from_completion, response_from_entry};
use super::log::Timing;
use super::order::{settle, Source};
use super::read::{read_stream, ReadEnd};
use super::{provider_error, CompletionStream, Engine, Prepared, StreamItem, STREAM_BUFFER};
use crate::api::{ApiError, CompletionRequest};
use crate::cache::coalesce::{Event, Subscription};
use crate::cache::{CacheEntry, CacheStatus};

impl Engine {
    /// Start a streamed completion. Errors before the first delta are returned here (so they
    /// become HTTP errors); later ones arrive as [`StreamItem::Error`].
    pub async fn stream(
        self: &Arc<Self>,
        req: CompletionRequest,
    ) -> Result<CompletionStream, ApiError> {
        let timing = Timing::now();
        let prepared = self.prepare(req).await?;
        let trace_id = prepared.trace_id.clone();
        let (items, cache, key) = match self.source(&prepared, true) {
            Source::Bypass => {
                let items = self
                    .stream_uncached(prepared.clone(), timing)
                    .await
                    .inspect_err(|e| self.log_failure(&prepared, e, &timing, None))?;
                (items, CacheStatus::Bypass, None)
            }
            Source::Fresh { key, entry } => {
                let items = self.replay_and_log(&prepared, &entry, &timing, true);
                (items, CacheStatus::Hit, Some(key))
            }
            Source::Flight {
                key,
                mut sub,
                leader,
            } => {
                let (items, status) = match sub.next().await {
                    Event::Delta(first) => {
                        let ttft = timing.elapsed();
                        let items = self.forward(first, sub, prepared, timing, ttft, !leader);
                        (
                            items,
                            if leader {
                                CacheStatus::Miss
                            } else {
                                CacheStatus::Hit
                            },
                        )
                    }
                    Event::Outcome(outcome) => match settle(outcome, leader) {
                        Ok((entry, status)) => {
                            let hit = status != CacheStatus::Miss;
                            (self.replay_and_log(&prepared, &entry, &timing, hit), status)
                        }
                        Err(e) => {
                            self.log_failure(&prepared, &e, &timing, None);
                            return Err(e);
                        }
                    },
                };
                self.cache.record(status);
                (items, status, Some(key))
            }
        };
        Ok(CompletionStream {
            trace_id,
            items,
            cache,
            key,
        })
    }

    /// A complete answer replayed as a stream (one event per stored delta), logged at once.
    fn replay_and_log(
        &self,
        prepared: &Prepared,
        entry: &CacheEntry,
        timing: &Timing,
        cache_hit: bool,
    ) -> mpsc::Receiver<StreamItem> {
        let response = response_from_entry(prepared, entry, timing, cache_hit);
        self.log_answer(prepared, &response, Some(response.latency));
        replay(&entry.deltas)
    }

    /// Forward a flight's deltas to one client and log its record when the flight ends. When
    /// the client leaves, the flight goes on (and is cached); this request's record is still
    /// logged.
    fn forward(
        self: &Arc<Self>,
        first: String,
        mut sub: Subscription<ApiError>,
        prepared: Prepared,
        timing: Timing,
        ttft: f64,
        cache_hit: bool,
    ) -> mpsc::Receiver<StreamItem> {
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let engine = Arc::clone(self);
        self.tasks.spawn(async move {
            let mut item = Some(StreamItem::Delta(first));
            loop {
                if let Some(it) = item.take() {
                    // A client that left only stops the forwarding, not the record.
                    let _ = tx.send(it).await;
                }
                match sub.next().await {
                    Event::Delta(delta) => item = Some(StreamItem::Delta(delta)),
                    Event::Outcome(outcome) => {
                        match settle(outcome, false) {
                            Ok((entry, _)) => {
                                let response =
                                    response_from_entry(&prepared, &entry, &timing, cache_hit);
                                engine.log_answer(&prepared, &response, Some(ttft));
                            }
                            Err(e) => {
                                engine.log_failure(&prepared, &e, &timing, Some(ttft));
                                let _ = tx.send(StreamItem::Error(e.to_string())).await;
                            }
                        }
                        return;
                    }
                }
            }
        });
        rx
    }

    /// A stream that is not shared or cached: the upstream call is cancelled when the client
    /// goes away (and the record says so).
    async fn stream_uncached(
        self: &Arc<Self>,
        prepared: Prepared,
        timing: Timing,
    ) -> Result<mpsc::Receiver<StreamItem>, ApiError> {
        let provider = Arc::clone(&prepared.provider);
        // Boxed: see `Engine::complete_uncached`.
        let mut upstream =
            Box::pin(provider.open_stream(&prepared.chat, prepared.api_key.as_ref()))
                .await
                .map_err(|e| provider_error(&provider, e, prepared.api_key.as_ref()))?;
        let first = upstream
            .next_delta()
            .await
            .map_err(|e| provider_error(&provider, e, prepared.api_key.as_ref()))?;
        let ttft = timing.elapsed();
        let (tx, items) = mpsc::channel(STREAM_BUFFER);
        let engine = Arc::clone(self);
        self.tasks.spawn(async move {
            let mut tx = tx;
            match read_stream(upstream, Some(first), &mut tx).await {
                Ok(ReadEnd::Complete { completion, deltas }) => {
                    let prices = &engine.upstreams().prices;
                    let entry =
                        entry_from_completion(&prepared, completion, Some(deltas), prices, (0, 0));
                    let response = response_from_entry(&prepared, &entry, &timing, false);
                    engine.log_answer(&prepared, &response, Some(ttft));
                }
                Ok(ReadEnd::Abandoned) => {
                    tracing::debug!(trace_id = %prepared.trace_id, "client went away; upstream stream cancelled");
                    let err =
                        ApiError::Internal("the client closed the stream before its end".into());
                    engine.log_failure(&prepared, &err, &timing, Some(ttft));
                }
                Err(e) => {
                    let err = provider_error(&provider, e, prepared.api_key.as_ref());
                    tracing::warn!(trace_id = %prepared.trace_id, error = %err, "stream failed after it started");
                    engine.log_failure(&prepared, &err, &timing, Some(ttft));
                    let _ = tx.send(StreamItem::Error(err.to_string())).await;
                }
            }
        });
        Ok(items)
    }
}

/// A channel already holding `deltas` (a cached answer's replay).
fn replay(deltas: &[String]) -> mpsc::Receiver<StreamItem> {
    let (tx, rx) = mpsc::channel(deltas.len().max(1));
    for delta in deltas {
        // Capacity is exactly the number of deltas.
        let _ = tx.try_send(StreamItem::Delta(delta.clone()));
    }
    rx
}
