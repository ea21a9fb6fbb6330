//! The internal model every front door and every provider kind maps to (never to each other):
//! a chat [`Request`] of typed content [`Block`]s, a [`Response`] with a [`FinishReason`] and
//! [`Usage`], the [`StreamEvent`]s of a streamed answer and the [`Assembler`] that turns them
//! into a response, and the [`Error`] an upstream failure becomes, with its [`ErrorKind`].
//!
//! No HTTP and no wire serde here: a front door (`frontends`) decodes its wire into these types
//! and renders them back; a provider kind (`providers`) encodes them into its wire and decodes
//! its answers into them. JSON that is data to the model — a tool's parameter schema, a
//! response format's schema, a wire's extra fields kept verbatim for a same-wire pass-through —
//! is held as [`serde_json::Value`], opaque.
//!
//! Everything an upstream controls is bounded before it sizes an allocation: the assembler
//! refuses a block index past [`MAX_BLOCKS`] and more than [`MAX_TOOL_CALLS`] tool calls.

pub mod error;
pub mod request;
pub mod response;
pub mod stream;
pub mod support;

pub use error::{Error, ErrorKind};
pub use request::{
    Block, ImageSource, Message, Params, Request, ResponseFormat, Role, Tool, ToolChoice, Wire,
};
pub use response::{FinishReason, Response, Usage};
pub use stream::{Assembler, BlockKind, StreamEvent};

/// Most tool calls one answer may make (OpenAI `tool_calls`, Anthropic `tool_use` blocks, a
/// Responses `function_call` item): far more than a model makes, few enough that an upstream's
/// count or index never sizes an allocation.
pub const MAX_TOOL_CALLS: usize = 128;

/// The bound of a content block's index in a stream: above [`MAX_TOOL_CALLS`], as citations
/// split one answer into many text blocks.
pub const MAX_BLOCKS: usize = 1024;
