//! The one loop that reads an upstream stream: each piece handed on as it arrives (and kept, by
//! a flight), the model's tool calls (as one JSON text piece, Parea's `content`) after the last,
//! the completion at the end.
//! A flight hands deltas to its subscribers and reads to the end whoever listens, keeping every
//! delta for the cache entry it replays from; a private stream hands them to its one client,
//! keeps none (its record needs the text, which the completion has), and stops when the client
//! goes away. So a private stream's memory does not grow with its length.

use std::future::Future;

use tokio::sync::mpsc;

use super::StreamItem;
use crate::api::ApiError;
use crate::cache::coalesce::Flight;
use crate::providers::{tool_calls_json, Completion, Piece, ProviderError, UpstreamStream};

/// Where the deltas of an upstream stream go.
pub(super) trait DeltaSink {
    /// Whether the read keeps every delta for the end ([`ReadEnd::Complete`]).
    const KEEPS_DELTAS: bool;
    /// Hand on one delta; `false` when nobody wants more (the read stops).
    fn send(&mut self, delta: Piece) -> impl Future<Output = bool> + Send;
    /// Resolves when nobody wants more, also while the upstream is silent.
    fn closed(&self) -> impl Future<Output = ()> + Send;
}

/// A flight: every subscriber, present and late; read to the end even when all have left.
impl DeltaSink for &Flight<ApiError> {
    /// A cached entry replays them: text deltas for Parea clients, chunks for OpenAI ones.
    const KEEPS_DELTAS: bool = true;

    async fn send(&mut self, delta: Piece) -> bool {
        self.push_delta(delta);
        true
    }

    async fn closed(&self) {
        std::future::pending().await
    }
}

/// One client's channel: the read stops when it closes.
impl DeltaSink for mpsc::Sender<StreamItem> {
    /// Its answer is never stored; a copy of every event would grow with the stream.
    const KEEPS_DELTAS: bool = false;

    async fn send(&mut self, delta: Piece) -> bool {
        mpsc::Sender::send(self, StreamItem::Piece(delta))
            .await
            .is_ok()
    }

    async fn closed(&self) {
        mpsc::Sender::closed(self).await
    }
}

/// How a read ended.
pub(super) enum ReadEnd {
    /// The upstream ended cleanly: the completion and, for a sink that keeps them, every
    /// delta handed on.
    Complete {
        completion: Completion,
        deltas: Option<Vec<Piece>>,
    },
    /// The sink stopped wanting deltas before the end; the upstream is dropped (cancelled).
    /// `partial` is what the upstream had said so far (its text and any usage it reported).
    Abandoned { partial: Completion },
}

/// Read `upstream` to its end into `sink`. `first_read` is what the caller's own first
/// `next_piece` gave, when it read one already (to fail before committing a response).
pub(super) async fn read_stream<S: DeltaSink>(
    mut upstream: UpstreamStream,
    first_read: Option<Option<Piece>>,
    sink: &mut S,
) -> Result<ReadEnd, ProviderError> {
    let mut deltas = S::KEEPS_DELTAS.then(Vec::new);
    let mut already_read = first_read;
    loop {
        let read = match already_read.take() {
            Some(read) => read,
            None => tokio::select! {
                read = upstream.next_piece() => read?,
                () = sink.closed() => return Ok(ReadEnd::Abandoned {
                    partial: upstream.into_completion(),
                }),
            },
        };
        let Some(delta) = read else { break };
        if let Some(kept) = deltas.as_mut() {
            kept.push(delta.clone());
        }
        if !sink.send(delta).await {
            return Ok(ReadEnd::Abandoned {
                partial: upstream.into_completion(),
            });
        }
    }
    let completion = upstream.into_completion();
    if !completion.tool_calls.is_empty() {
        let calls = Piece {
            text: Some(tool_calls_json(&completion.tool_calls)),
            chunk: None,
        };
        if let Some(kept) = deltas.as_mut() {
            kept.push(calls.clone());
        }
        // The answer is complete: a sink that left now still gets its record.
        sink.send(calls).await;
    }
    Ok(ReadEnd::Complete { completion, deltas })
}
