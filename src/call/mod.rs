//! What a front door asks the engine, in the engine's words: a [`Call`] (a configuration, a
//! deployment to lay it over, or a request a door decoded into the model whole; trace ids and
//! log controls; the cache mode), how it fails ([`ApiError`], which each door renders in its
//! own shape), and what a completion came to ([`CompletionResponse`], which the log record and
//! the Parea door both speak). No HTTP server, no door's wire.

mod completion;
pub mod configuration;
mod embeddings;
mod error;

pub use completion::CompletionResponse;
pub use configuration::{FunctionCallSpec, LlmConfiguration, Message, ModelParams, Role};
pub use embeddings::EmbeddingsCall;
pub use error::ApiError;

use serde_json::{Map, Value};

use crate::config::Secret;

/// A completion call as the engine takes it, from any door. Every field may be absent; the
/// engine applies the defaults.
#[derive(Debug, Clone, Default)]
pub struct Call {
    /// `cache` (default true): read and write the completion cache.
    pub cache: Option<bool>,
    /// Ask the provider even when a fresh entry exists, and store the new answer.
    pub cache_refresh: bool,
    pub deployment_id: Option<String>,
    /// What to ask which model; laid over the deployment's when there is one.
    pub configuration: Option<LlmConfiguration>,
    /// The values of the templates' placeholders.
    pub inputs: Option<Map<String, Value>>,
    /// The trace id asked for (else one is made).
    pub trace_id: Option<String>,
    pub parent_trace_id: Option<String>,
    pub root_trace_id: Option<String>,
    pub trace_name: Option<String>,
    pub end_user_identifier: Option<String>,
    pub eval_metric_ids: Option<Vec<i64>>,
    pub experiment_uuid: Option<String>,
    pub metadata: Option<Map<String, Value>>,
    pub tags: Option<Vec<String>>,
    pub target: Option<String>,
    pub project_uuid: Option<String>,
    pub project_name: Option<String>,
    /// Beats the configured key for this call; never logged, never cached.
    pub provider_api_key: Option<Secret>,
    pub log_omit: Option<bool>,
    pub log_omit_inputs: Option<bool>,
    pub log_omit_outputs: Option<bool>,
    pub log_sample_rate: Option<f64>,
    /// What an OpenAI-route request forwards unread.
    pub passthrough: Option<Passthrough>,
    /// A request a door decoded into the model whole (Anthropic Messages, OpenAI Responses):
    /// `configuration` is then its Parea view, for the log record.
    pub modeled: Option<Box<ModelCall>>,
}

/// The parts of an OpenAI-route request that promptd forwards without reading them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Passthrough {
    /// The messages exactly as the client sent them, when some are more than a plain text turn
    /// (parts, tool calls, `tool_call_id`, `name`, the `developer` role): then these are sent
    /// and the request's neutral `messages` only describe them for the log.
    pub messages: Option<Vec<Value>>,
    /// Body fields promptd does not know (`seed`, `logit_bias`, `reasoning_effort`, ...).
    pub fields: Map<String, Value>,
    /// Fields forwarded as sent that do not change the answer (`user`, `metadata`): not in the
    /// cache key.
    pub unkeyed: Map<String, Value>,
}

impl Passthrough {
    /// Nothing to forward: a request with this is the same as one without.
    pub fn is_empty(&self) -> bool {
        self.messages.is_none() && self.fields.is_empty() && self.unkeyed.is_empty()
    }
}

/// A request a door decoded into the model whole, and what a provider of the door's own wire
/// is sent instead of a translation: the client's body and headers as they came.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelCall {
    /// The request; its `model` is the provider's name for it.
    pub request: crate::model::Request,
    /// The keys of its extras (and block fields) that are only hints.
    pub hints: Vec<String>,
    /// The client's body, its `model` the provider's and without `stream` (the call adds it).
    pub sent: bytes::Bytes,
    /// The client's headers of its wire a same-wire call forwards (`anthropic-version`,
    /// `anthropic-beta`); `anthropic-beta` is part of the cache key.
    pub headers: Vec<(hyper::header::HeaderName, hyper::header::HeaderValue)>,
}
