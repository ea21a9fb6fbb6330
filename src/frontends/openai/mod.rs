//! The OpenAI-compatible API (`/v1`), as promptd speaks it: the request body decoded into the
//! internal model by the OpenAI chat wire ([`crate::wire::openai_chat`]) and handed to the
//! engine as a [`DoorCall`](crate::frontends::DoorCall) with the client's body, which a
//! provider of this wire is sent as it came ([`request`]); the answer and its stream chunks
//! ([`response`]), model routing and the model list ([`models`]), the error body ([`error`]).
//! A call to a provider of another wire is encoded from the model, and its answers rendered
//! from the model.
//!
//! Answers go out through [`completion_body`] (a whole answer, from its cache entry) and
//! [`OpenAiEvents`] (a stream's body over the engine's stream items), rendered through the
//! borrowed views of [`response`]. No HTTP server here: the server's handlers are thin.

pub mod embeddings;
pub mod error;
mod events;
pub mod models;
pub mod request;
pub mod response;

pub use error::{error_body, stream_error_event};
pub use events::{completion_body, OpenAiEvents};
pub use models::{resolve_model, resolve_model_or, Target};
pub use request::{decode_chat, ChatCall, RequestHeaders};
