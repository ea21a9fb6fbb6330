//! The wires promptd speaks, each mapped to and from the internal [`crate::model`]: a front
//! door decodes its wire's requests and renders the model's answers in it; a provider kind
//! encodes the model's requests in its wire and decodes its answers. A wire module knows the
//! model and JSON, nothing of HTTP, the engine or the cache.

pub mod openai_chat;
