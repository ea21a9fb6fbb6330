//! The completion request body (`Completion` and `LLMInputs` of Parea's API), and the
//! engine's [`Call`] of it.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::call::{ApiError, Call, LlmConfiguration, ModelCall};
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
}

impl CompletionRequest {
    /// The engine's call of this body: its `llm_configuration` as the model (a malformed
    /// function is a 400 naming it).
    pub fn into_call(self) -> Result<Call, ApiError> {
        // Exhaustive on purpose: a new body field does not compile until it is placed.
        let CompletionRequest {
            cache,
            deployment_id,
            llm_configuration,
            llm_inputs,
            trace_id,
            inference_id,
            parent_trace_id,
            root_trace_id,
            trace_name,
            name: _,
            end_user_identifier,
            eval_metric_ids,
            experiment_uuid,
            metadata,
            tags,
            target,
            project_uuid,
            project_name,
            provider_api_key,
            log_omit,
            log_omit_inputs,
            log_omit_outputs,
            log_sample_rate,
            stream: _,
        } = self;
        let mut configuration = llm_configuration.unwrap_or_default();
        let provider = configuration.provider.take().filter(|p| !p.is_empty());
        let history = configuration.history.take();
        let (request, hints) = configuration.into_model().map_err(function_error)?;
        Ok(Call {
            cache,
            cache_refresh: false,
            deployment_id,
            inputs: llm_inputs,
            // `inference_id` is the deprecated name of the same id.
            trace_id: trace_id.or(inference_id),
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
            provider_api_key,
            log_omit,
            log_omit_inputs,
            log_omit_outputs,
            log_sample_rate,
            request: Some(Box::new(ModelCall {
                request,
                hints,
                sent: None,
                headers: Vec::new(),
            })),
            provider,
            history,
        })
    }
}

/// A malformed function (the one part of a configuration the model reads as more than text),
/// named by its place in `llm_configuration.functions`: the tools path the OpenAI wire's
/// decoder names (`tools[1].function.name`) in Parea's words (`functions[1].name`).
fn function_error(e: crate::model::Error) -> ApiError {
    let path = e
        .param
        .as_deref()
        .unwrap_or("tools")
        .replacen("tools", "functions", 1);
    let field = format!("llm_configuration.{}", path.replacen(".function.", ".", 1));
    ApiError::InvalidRequest {
        message: format!("{field}: {}", e.message),
        field: Some(field.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_function_is_named_in_pareas_words() {
        let body: CompletionRequest = serde_json::from_value(serde_json::json!({
            "llm_configuration": {"model": "m", "provider": "openai",
                "messages": [{"role": "user", "content": "hi"}],
                "functions": [{"name": "f"}, {"parameters": {}}]}
        }))
        .expect("a body");
        match body.into_call() {
            Err(ApiError::InvalidRequest { field, message }) => {
                assert_eq!(
                    field.as_deref(),
                    Some("llm_configuration.functions[1].name")
                );
                assert!(
                    message.starts_with("llm_configuration.functions[1].name: "),
                    "{message}"
                );
            }
            other => panic!("{other:?}"),
        }
    }
}
