//! The completion request body (`Completion` and `LLMInputs` of Parea's API).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::Secret;

/// `POST /completion` and `POST /completion/stream` body. Every field may be absent or `null`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct CompletionRequest {
    pub cache: Option<bool>,
    pub deployment_id: Option<String>,
    pub llm_configuration: Option<LlmConfiguration>,
    #[serde(alias = "inputs")]
    pub llm_inputs: Option<Map<String, Value>>,
    pub trace_id: Option<String>,
    /// Deprecated alias of `trace_id`; the Python SDK still sends it.
    pub inference_id: Option<String>,
    pub parent_trace_id: Option<String>,
    pub root_trace_id: Option<String>,
    pub trace_name: Option<String>,
    /// Deprecated; accepted and ignored.
    pub name: Option<String>,
    pub end_user_identifier: Option<String>,
    pub eval_metric_ids: Option<Vec<i64>>,
    pub experiment_uuid: Option<String>,
    pub metadata: Option<Map<String, Value>>,
    pub tags: Option<Vec<String>>,
    pub target: Option<String>,
    pub project_uuid: Option<String>,
    pub project_name: Option<String>,
    /// Beats the configured key for this call; never logged, never cached.
    #[serde(skip_serializing)]
    pub provider_api_key: Option<Secret>,
    pub log_omit: Option<bool>,
    pub log_omit_inputs: Option<bool>,
    pub log_omit_outputs: Option<bool>,
    pub log_sample_rate: Option<f64>,
    /// Deprecated: use `/completion/stream`.
    pub stream: Option<bool>,
    /// `x-promptd-cache: refresh`: ask the provider even when a fresh entry exists, and store
    /// the new answer (not a body field).
    #[serde(skip)]
    pub cache_refresh: bool,
    /// What an OpenAI-route request forwards unread (not a Parea body field).
    #[serde(skip)]
    pub passthrough: Option<Passthrough>,
    /// A request a door decoded into the model whole (Anthropic Messages; not a Parea body
    /// field): `llm_configuration` is then its Parea view, for the log record.
    #[serde(skip)]
    pub modeled: Option<Box<ModelCall>>,
}

/// `llm_configuration`: what to ask which model.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct LlmConfiguration {
    pub model: Option<String>,
    pub provider: Option<String>,
    pub model_params: Option<ModelParams>,
    pub messages: Option<Vec<Message>>,
    pub history: Option<Vec<Message>>,
    pub functions: Option<Vec<Value>>,
    pub function_call: Option<FunctionCallSpec>,
}

/// One chat turn.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Message {
    pub role: Role,
    #[serde(default)]
    pub content: Option<String>,
}

/// Chat roles as Parea names them; `example_*` turns are sent as user/assistant turns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    System,
    User,
    Assistant,
    Tool,
    ExampleUser,
    ExampleAssistant,
}

/// `model_params`, mapped to each provider's names by the provider layer.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct ModelParams {
    pub temp: Option<f64>,
    pub top_p: Option<f64>,
    pub frequency_penalty: Option<f64>,
    pub presence_penalty: Option<f64>,
    pub max_length: Option<u32>,
    pub response_format: Option<Value>,
    pub safe_prompt: Option<bool>,
}

impl ModelParams {
    /// The model's parameters these ask for. A `response_format` is the structure it names:
    /// `text` none, `json_schema` its schema, any other type a JSON object.
    pub fn to_model(&self) -> crate::model::Params {
        use crate::model::ResponseFormat;
        let response_format = self.response_format.as_ref().map(|format| {
            match format.get("type").and_then(Value::as_str) {
                Some("text") => ResponseFormat::Text,
                Some("json_schema") => {
                    let spec = format.get("json_schema");
                    let field = |name: &str| spec.and_then(|s| s.get(name));
                    ResponseFormat::JsonSchema {
                        name: field("name")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned(),
                        schema: field("schema").cloned().unwrap_or(Value::Null),
                        strict: field("strict").and_then(Value::as_bool),
                    }
                }
                _ => ResponseFormat::JsonObject,
            }
        });
        crate::model::Params {
            temperature: self.temp,
            top_p: self.top_p,
            max_output_tokens: self.max_length.map(u64::from),
            presence_penalty: self.presence_penalty,
            frequency_penalty: self.frequency_penalty,
            response_format,
            ..crate::model::Params::default()
        }
    }
}

/// `function_call`: a mode (`"auto"`, `"none"`, a function name) or `{"name": ...}`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum FunctionCallSpec {
    Named { name: String },
    Mode(String),
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
