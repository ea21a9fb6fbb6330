//! Reading an upstream stream the engine's way: each piece as it arrives, then — when the model
//! called tools — their JSON as one text piece (Parea's `content`), then the completion.
//! A flight reads it to its end for every subscriber, present and late, keeping each delta for
//! the cache entry it replays from ([`read_into_flight`]); a private stream is polled by its one
//! client's response body and keeps none (`private.rs`), so its memory does not grow with its
//! length.

use crate::api::ApiError;
use crate::cache::coalesce::Flight;
use crate::providers::{tool_calls_json, Completion, Piece, ProviderError, UpstreamStream};

/// The piece that follows the last of a stream whose model called tools: their JSON as text.
pub(super) fn tool_calls_piece(completion: &Completion) -> Option<Piece> {
    (!completion.tool_calls.is_empty()).then(|| Piece {
        text: Some(tool_calls_json(&completion.tool_calls)),
        ..Piece::default()
    })
}

/// Read `upstream` to its end into `flight`, whoever listens: the completion and every delta
/// handed on.
pub(super) async fn read_into_flight(
    mut upstream: UpstreamStream,
    flight: &Flight<ApiError>,
) -> Result<(Completion, Vec<Piece>), ProviderError> {
    let mut deltas = Vec::new();
    while let Some(delta) = upstream.next_piece().await? {
        deltas.push(delta.clone());
        flight.push_delta(delta);
    }
    let completion = upstream.into_completion();
    if let Some(calls) = tool_calls_piece(&completion) {
        deltas.push(calls.clone());
        flight.push_delta(calls);
    }
    Ok((completion, deltas))
}
