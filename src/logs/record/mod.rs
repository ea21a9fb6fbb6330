//! The log record (Parea's `TraceLog`), how the engine builds one for a completion, the omit
//! rules and the trace-wide sampling decision.
//!
//! Invariants:
//! - No API key can reach a record: [`LogRecord`] has no field for one, and
//!   [`CompletionLog::from_call`] destructures the call exhaustively, dropping
//!   `provider_api_key` by name (a new request field breaks the build until someone decides
//!   whether it belongs in the log).
//! - Sampling is decided by a stable hash (BLAKE3) of the root trace id, so every record of one
//!   trace, in this process or another, on this machine or another, is kept or dropped together.
//! - Records from clients (`POST /trace_log`) keep fields promptd does not know
//!   ([`LogRecord::extra`]): they are forwarded unchanged in content.
//!
//! [`completion`] is a completion's record as the request path writes it, borrowed.
//! [`entry`] is how a record (or an update, or feedback) is encoded for the spool; [`cap`] how a
//! completion's record is kept under `spool.max_record_bytes` (cut, marked, never dropped).

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

pub mod cap;
pub mod completion;
pub mod entry;
pub mod integration;
mod model_view;

use crate::call::Call;
use crate::call::CompletionResponse;

/// Domain separation for the sampling hash; bump it and every trace is re-drawn.
const SAMPLE_HASH_TAG: &[u8] = b"promptd log sample v1\0";

/// One `TraceLog` (the shape of `POST /trace_log`). Every field may be absent; absent fields
/// are not serialized. See `API.md` for their meaning.
///
/// `C` is the type of `configuration`: free-form JSON for a client's record (passed through
/// unchanged), or a [`CallConfiguration`] borrowed from the call for a completion's record, so
/// building one copies no messages and builds no JSON tree.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogRecord<C = Value> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_trace_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root_trace_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_uuid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organization_id: Option<String>,
    /// ISO-8601.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_timestamp: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_timestamp: Option<String>,
    /// `LLMInputs`: model, provider, model_params, messages, functions, ... (kept as JSON so a
    /// client's record passes through unchanged).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub configuration: Option<C>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency: Option<f64>,
    /// Seconds from the request to the first streamed delta.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_to_first_token: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_tokens: Option<u64>,
    /// USD.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `"success"` or `"error"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_hit: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evaluation_metric_names: Option<Vec<String>>,
    /// `eval_metric_ids` of the completion request, carried so the collector can run them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eval_metric_ids: Option<Vec<i64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scores: Option<Vec<Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub apply_eval_frac: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_sample_rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feedback_score: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub children: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_user_identifier: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub experiment_uuid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub images: Option<Vec<Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub depth: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution_order: Option<i64>,
    /// Fields of a client's record that promptd does not know, forwarded as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// What `log_omit`, `log_omit_inputs` and `log_omit_outputs` ask to leave out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OmitRules {
    /// No inputs, messages, functions or model params.
    pub inputs: bool,
    /// No output.
    pub outputs: bool,
}

impl OmitRules {
    /// From the request flags: `log_omit` is both of the others.
    pub fn from_flags(omit: Option<bool>, inputs: Option<bool>, outputs: Option<bool>) -> Self {
        let all = omit.unwrap_or(false);
        OmitRules {
            inputs: all || inputs.unwrap_or(false),
            outputs: all || outputs.unwrap_or(false),
        }
    }
}

/// A completion record's `configuration`: the call as the provider got it (deployment merged,
/// templates rendered, history placed), written from the model's request in Parea's words
/// ([`model_view`]) without copying it. Unset parameters are left out, not written as `null`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CallConfiguration<'a> {
    pub model: &'a str,
    pub provider: &'a str,
    /// The request; `None` writes the model and provider only.
    pub request: Option<&'a crate::model::Request>,
}

impl Serialize for CallConfiguration<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("model", self.model)?;
        map.serialize_entry("provider", self.provider)?;
        if let Some(request) = self.request {
            map.serialize_entry("model_params", &model_view::ParamsView(&request.params))?;
            map.serialize_entry("messages", &model_view::TurnsView(request))?;
            if !request.tools.is_empty() {
                map.serialize_entry("functions", &model_view::FunctionsView(request))?;
            }
            if let Some(choice) = &request.tool_choice {
                map.serialize_entry("function_call", &model_view::ChoiceView(choice))?;
            }
        }
        map.end()
    }
}

impl CallConfiguration<'_> {
    /// Without what counts as inputs for [`OmitRules::inputs`]: `model` and `provider` stay.
    fn without_inputs(self) -> Self {
        CallConfiguration {
            request: None,
            ..self
        }
    }
}

impl<'a> LogRecord<CallConfiguration<'a>> {
    /// The record of one completion (cache hits too): `log` from the request as the engine
    /// resolved it, `configuration` the call the provider got, `response` as answered. Applies
    /// the omit rules; sampling is the caller's decision ([`CompletionLog::sampled_in`]), made
    /// before building.
    pub fn from_completion(
        log: CompletionLog,
        configuration: CallConfiguration<'a>,
        response: CompletionResponse,
    ) -> Self {
        let root_trace_id = log.root_trace_id().to_owned();
        let CompletionLog {
            trace_id,
            parent_trace_id,
            root_trace_id: _,
            trace_name,
            project_uuid,
            project_name: _,
            inputs,
            deployment_id,
            end_user_identifier,
            eval_metric_ids,
            experiment_uuid,
            metadata,
            tags,
            target,
            omit,
            sample_rate,
            time_to_first_token,
        } = log;
        let CompletionResponse {
            inference_id: _,
            content,
            latency,
            input_tokens,
            output_tokens,
            total_tokens,
            cost,
            model: _,
            provider,
            cache_hit,
            status,
            start_timestamp,
            end_timestamp,
            error,
        } = response;
        LogRecord {
            trace_id: Some(trace_id),
            parent_trace_id,
            root_trace_id: Some(root_trace_id),
            trace_name: Some(trace_name.unwrap_or_else(|| format!("llm-{provider}"))),
            project_uuid,
            start_timestamp: Some(start_timestamp),
            end_timestamp: Some(end_timestamp),
            configuration: Some(if omit.inputs {
                configuration.without_inputs()
            } else {
                configuration
            }),
            inputs: inputs.filter(|_| !omit.inputs),
            output: Some(content).filter(|_| !omit.outputs),
            target,
            latency: Some(latency),
            time_to_first_token,
            input_tokens: Some(input_tokens),
            output_tokens: Some(output_tokens),
            total_tokens: Some(total_tokens),
            cost: Some(cost),
            error,
            status: Some(status),
            deployment_id,
            cache_hit: Some(cache_hit),
            eval_metric_ids,
            log_sample_rate: sample_rate,
            end_user_identifier,
            metadata,
            tags,
            experiment_uuid,
            ..LogRecord::default()
        }
    }
}

impl<C> LogRecord<C> {
    /// The id sampling is decided on: `root_trace_id`, else the record's own `trace_id`.
    pub fn sampling_key(&self) -> Option<&str> {
        self.root_trace_id.as_deref().or(self.trace_id.as_deref())
    }
}

/// Whether the trace whose root is `root_trace_id` is kept at sampling `rate` (in `[0, 1]`;
/// anything not below 1, or not a number, keeps everything: a bad rate never loses logs).
pub fn sampled_in(root_trace_id: &str, rate: f64) -> bool {
    if rate.is_nan() || rate >= 1.0 {
        return true;
    }
    if rate <= 0.0 {
        return false;
    }
    let mut hasher = blake3::Hasher::new();
    hasher.update(SAMPLE_HASH_TAG);
    hasher.update(root_trace_id.as_bytes());
    let mut head = [0u8; 8];
    head.copy_from_slice(&hasher.finalize().as_bytes()[..8]);
    // The top 53 bits as a uniform number in [0, 1).
    let draw = (u64::from_le_bytes(head) >> 11) as f64 / (1u64 << 53) as f64;
    draw < rate
}

/// What the engine knows about a completion besides its answer; the input of
/// [`LogRecord::from_completion`]. Holds no key by construction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CompletionLog {
    /// The generation's trace id as answered (`trace_id`, else `inference_id`, else generated).
    pub trace_id: String,
    pub parent_trace_id: Option<String>,
    /// `None`: this generation is the root of its trace.
    pub root_trace_id: Option<String>,
    /// `None`: `llm-{provider}`.
    pub trace_name: Option<String>,
    /// Resolved from `project_name` by the engine when only the name was given.
    pub project_uuid: Option<String>,
    pub project_name: Option<String>,
    pub inputs: Option<Map<String, Value>>,
    pub deployment_id: Option<String>,
    pub end_user_identifier: Option<String>,
    pub eval_metric_ids: Option<Vec<i64>>,
    pub experiment_uuid: Option<String>,
    pub metadata: Option<Map<String, Value>>,
    pub tags: Option<Vec<String>>,
    pub target: Option<String>,
    pub omit: OmitRules,
    /// `log_sample_rate` as given (`None`: keep all).
    pub sample_rate: Option<f64>,
    /// Streams: seconds until the first delta. Filled by the engine.
    pub time_to_first_token: Option<f64>,
}

impl CompletionLog {
    /// Take what the log needs from `req`; `trace_id` is the id the engine answers with.
    pub fn from_call(req: &Call, trace_id: impl Into<String>) -> CompletionLog {
        // Exhaustive on purpose: every request field is either logged or named here as not.
        let Call {
            cache: _,
            deployment_id,
            inputs,
            trace_id: _,
            parent_trace_id,
            root_trace_id,
            trace_name,
            end_user_identifier,
            eval_metric_ids,
            experiment_uuid,
            metadata,
            tags,
            target,
            project_uuid,
            project_name,
            provider_api_key: _,
            log_omit,
            log_omit_inputs,
            log_omit_outputs,
            log_sample_rate,
            // The record's configuration is the resolved request (deployment merged,
            // templates rendered, history placed), given when the record is built: see
            // `LogRecord::from_completion`. Its hints are noted as dropped by the call.
            request: _,
            provider: _,
            history: _,
            cache_refresh: _,
        } = req;
        CompletionLog {
            trace_id: trace_id.into(),
            parent_trace_id: parent_trace_id.clone(),
            root_trace_id: root_trace_id.clone().filter(|r| !r.is_empty()),
            trace_name: trace_name.clone().filter(|n| !n.is_empty()),
            project_uuid: project_uuid.clone(),
            project_name: project_name.clone(),
            inputs: inputs.clone(),
            deployment_id: deployment_id.clone(),
            end_user_identifier: end_user_identifier.clone(),
            eval_metric_ids: eval_metric_ids.clone(),
            experiment_uuid: experiment_uuid.clone(),
            metadata: metadata.clone(),
            tags: tags.clone(),
            target: target.clone(),
            omit: OmitRules::from_flags(*log_omit, *log_omit_inputs, *log_omit_outputs),
            sample_rate: *log_sample_rate,
            time_to_first_token: None,
        }
    }

    /// The root of this generation's trace.
    pub fn root_trace_id(&self) -> &str {
        self.root_trace_id.as_deref().unwrap_or(&self.trace_id)
    }

    /// Whether this completion's trace is kept under its `log_sample_rate`.
    pub fn sampled_in(&self) -> bool {
        sampled_in(self.root_trace_id(), self.sample_rate.unwrap_or(1.0))
    }
}
