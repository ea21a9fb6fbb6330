//! The OpenAI-compatible API (`/v1/chat/completions`): what promptd needs to answer OpenAI
//! clients from providers that speak another wire format.
//!
//! [`anthropic`] is the pure translation between OpenAI chat bodies and Anthropic Messages
//! bodies (requests, whole answers, streams). It works on `serde_json::Value` and knows nothing
//! of routes, engines or HTTP, so the `/v1` handlers can call it for every Anthropic-kind
//! provider and the golden tests can drive it with recorded bodies alone.

pub mod anthropic;
