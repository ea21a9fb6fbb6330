//! Anthropic's Messages API (`POST /v1/messages`), as promptd's door speaks it: the body decoded
//! into the internal model by the Anthropic wire ([`crate::wire::anthropic`]) and handed to the
//! engine as a [`DoorCall`](crate::frontends::DoorCall) (its log record's configuration is
//! written from the model), the
//! error body with Anthropic's types and statuses ([`error_body`]), and an estimate of a
//! request's tokens for `count_tokens` where the provider cannot count ([`estimate_tokens`]).
//!
//! Answers go out through [`message_body`] and [`MessagesRender`] (the wire's renderers over
//! the engine's stream items). No HTTP server here: the server's handler is thin.

mod count;
mod error;
pub mod models;
mod render;
mod request;

pub use count::estimate_tokens;
pub use error::{error_body, error_event};
pub use render::{message_body, MessagesRender};
pub use request::decode_messages;
