//! The wires promptd speaks, each mapped to and from the internal [`crate::model`] (never to
//! each other): a front door decodes its wire into the model and renders the model back; a
//! provider kind encodes the model into its wire and decodes its answers. Pure functions over
//! bytes and JSON: no HTTP, no engine, no cache, no configuration but the provider kinds.

pub mod anthropic;
pub mod json;
pub mod openai_chat;
pub mod openai_responses;
