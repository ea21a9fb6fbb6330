//! Parea's completion API, as promptd's Parea door speaks it: the request body and its
//! [`Call`](crate::call::Call) ([`request`]), the stream's framing ([`stream`]), the
//! `/project` and `/deployed-prompt` bodies ([`project`]) and promptd's own error body
//! ([`error`]). The answer is [`CompletionResponse`](crate::call::CompletionResponse), which
//! the log record speaks too.

pub mod error;
mod events;
pub mod project;
pub mod request;
pub mod stream;

pub use error::error_body;
pub use events::EventStream;
pub use request::CompletionRequest;
