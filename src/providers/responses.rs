//! OpenAI's Responses API (`POST {base_url}/responses`) of a provider that serves it
//! (`responses = true`; OpenAI's own URL): only the Responses door's calls go there, as their
//! client sent them (the body encoded at prepare is the client's, its `model` the provider's),
//! and the answers are decoded by the Responses wire ([`crate::wire::openai_responses`]) into
//! the model: a whole answer kept with its body as received (the door returns it as it came),
//! a stream's typed events into the model's events, each event kept as received for the door.

use super::events::{whole, EventsState};
use super::{Completion, ProviderError};
use crate::wire::openai_responses::{self as wire, EventDecoder};

/// Parse a whole (non-stream) answer: the model's response, and the body kept as received.
pub fn parse_response(body: &[u8]) -> Result<Completion, ProviderError> {
    whole(body, wire::decode_response(body), "responses")
}

/// The state of a Responses stream: its decoder, and the answer assembled from its events
/// within `held` bytes ([`EventsState`]).
pub type StreamState = EventsState<EventDecoder>;
