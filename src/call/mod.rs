//! What a front door asks the engine, in the engine's words: a [`Call`] (the request its door
//! decoded into the model, a deployment to lay it over; trace ids and log controls; the cache
//! mode), how it fails ([`ApiError`], which each door renders in its
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
use crate::model::Wire;

/// A completion call as the engine takes it, from any door. Every field may be absent; the
/// engine applies the defaults.
#[derive(Debug, Clone, Default)]
pub struct Call {
    /// `cache` (default true): read and write the completion cache.
    pub cache: Option<bool>,
    /// Ask the provider even when a fresh entry exists, and store the new answer.
    pub cache_refresh: bool,
    pub deployment_id: Option<String>,
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
    /// The request as its door decoded it into the model (laid over the deployment's when
    /// there is one). Every call has one; `None` only in a call still being built.
    pub request: Option<Box<ModelCall>>,
    /// The configured provider the request is for (else its deployment's).
    pub provider: Option<String>,
    /// Earlier turns (Parea's `history`), placed before the last user message once the
    /// deployment's messages are in.
    pub history: Option<Vec<Message>>,
}

/// A request a door decoded into the model, and what a provider of the door's own wire is sent
/// instead of an encoding of it: the client's body and headers as they came.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelCall {
    /// The request; its `model` is the provider's name for it.
    pub request: crate::model::Request,
    /// The keys of its extras (and block fields) that are only hints.
    pub hints: Vec<String>,
    /// The client's body as it came (or as its door completed it), sent to a provider of its
    /// own wire ([`ModelCall::same_wire_body`]); `None` once the engine changed the request (a
    /// deployment laid under it, templates rendered): the request is then encoded.
    pub sent: Option<bytes::Bytes>,
    /// The client's headers of its wire a same-wire call forwards (`anthropic-version`,
    /// `anthropic-beta`); `anthropic-beta` is part of the cache key.
    pub headers: Vec<(hyper::header::HeaderName, hyper::header::HeaderValue)>,
}

impl ModelCall {
    /// The client's body for a provider of its own wire: `model` the provider's, without the
    /// members its door reads and the call sets itself (`stream`; on the OpenAI chat route also
    /// `stream_options` and promptd's `promptd`), every other member's bytes as they came.
    /// `None` when the request was changed ([`ModelCall::sent`]); an error when the body is not
    /// a JSON object.
    pub fn same_wire_body(&self) -> Option<Result<Vec<u8>, serde_json::Error>> {
        let sent = self.sent.as_ref()?;
        let read: &[&str] = match self.request.wire {
            Wire::OpenAiChat => &["stream", "stream_options", "promptd"],
            Wire::Parea | Wire::AnthropicMessages | Wire::OpenAiResponses => &["stream"],
        };
        let model = match serde_json::to_string(&self.request.model) {
            Ok(model) => model,
            Err(e) => return Some(Err(e)),
        };
        Some(crate::wire::json::rewrite_members(
            sent,
            read,
            ("model", &model),
        ))
    }
}
