//! Reading an upstream stream the engine's way: each piece as it arrives, then — when the model
//! called tools — their JSON as one text piece (Parea's `content`), then the completion.
//! A flight reads it to its end for every subscriber, present and late, keeping each delta for
//! the cache entry it replays from while they fit `cache.max_entry_bytes`
//! ([`read_into_flight`]); a private stream is polled by its one
//! client's response body and keeps none (`private.rs`), so its memory does not grow with its
//! length.

use std::time::Duration;

use crate::cache::coalesce::Flight;
use crate::call::ApiError;
use crate::providers::{tool_calls_json, Completion, Piece, ProviderError, UpstreamStream};

/// How long a shared stream past `cache.max_entry_bytes` waits for its slowest client to read
/// before that client is left behind (and fails): longer than any live client pauses.
const SLOW_CLIENT_GRACE: Duration = Duration::from_secs(30);

/// The piece that follows the last of a stream whose model called tools: their JSON as text.
pub(super) fn tool_calls_piece(completion: &Completion) -> Option<Piece> {
    completion.tool_calls().next().is_some().then(|| Piece {
        text: Some(tool_calls_json(completion.tool_calls())),
        ..Piece::default()
    })
}

/// Read `upstream` to its end into `flight`, whoever listens: the completion and every delta
/// handed on (`None` when they outgrew `budget`, the flight's hold: then the answer is not
/// cached). Past its budget it is read at the pace of its slowest client (see
/// [`Flight::make_room`]); and not read on when nobody listens any more.
pub(super) async fn read_into_flight(
    mut upstream: UpstreamStream,
    flight: &Flight<ApiError>,
    budget: usize,
) -> Result<(Completion, Option<Vec<Piece>>), ProviderError> {
    while let Some(delta) = upstream.next_piece().await? {
        flight.push_delta(delta, budget);
        if flight.overflowed() {
            if flight.subscribers() == 0 {
                return Err(ProviderError::Stream(
                    "every client left a stream too long to cache: not read on".into(),
                ));
            }
            flight.make_room(budget, SLOW_CLIENT_GRACE).await;
        }
    }
    let completion = upstream.into_completion();
    if let Some(calls) = tool_calls_piece(&completion) {
        flight.push_delta(calls, budget);
    }
    Ok((completion, flight.deltas()))
}
