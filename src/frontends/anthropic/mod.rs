//! Anthropic's Messages API (`POST /v1/messages`), as promptd's door speaks it: the body decoded
//! into the internal model by the Anthropic wire ([`crate::wire::anthropic`]) and handed to the
//! engine as a [`ModelCall`] beside its Parea view ([`MessagesCall::into_request`]), and the
//! error body with Anthropic's types and statuses ([`error_body`]), and an estimate of a
//! request's tokens for `count_tokens` where the provider cannot count ([`estimate_tokens`]).
//!
//! Pure wire code: no HTTP server, no cache, no engine. The server renders answers with the
//! wire's renderers.

mod count;
mod error;
mod request;

pub use count::estimate_tokens;
pub use error::{error_body, error_event};
pub use request::decode_messages;
