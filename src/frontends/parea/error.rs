//! Promptd's own error body, which the Parea routes (and every path no door serves) answer
//! with: `{"error": {"type": "...", "message": "...", "field"?: "..."}}`, a refused parameter
//! named by its place in `llm_configuration`.

use std::borrow::Cow;

use bytes::Bytes;
use serde::Serialize;

use crate::call::ApiError;

fn field(err: &ApiError) -> Option<Cow<'_, str>> {
    match err {
        ApiError::InvalidRequest { field, .. } => field.as_deref().map(Cow::Borrowed),
        ApiError::Refused { param, .. } => Some(Cow::Owned(parea_param(param))),
        _ => None,
    }
}

/// The message of the Parea route's body: a refused parameter by its Parea name.
fn message(err: &ApiError) -> String {
    match err {
        ApiError::Refused {
            provider,
            param,
            why,
        } => format!(
            "{} cannot go to provider `{provider}`: {why}",
            parea_param(param)
        ),
        other => other.to_string(),
    }
}

/// The JSON error body.
pub fn error_body(err: &ApiError) -> Bytes {
    #[derive(Serialize)]
    struct Body<'a> {
        error: Inner<'a>,
    }
    #[derive(Serialize)]
    struct Inner<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        field: Option<Cow<'a, str>>,
    }
    let body = Body {
        error: Inner {
            kind: err.kind(),
            message: message(err),
            field: field(err),
        },
    };
    // A struct of strings always serialises.
    Bytes::from(serde_json::to_vec(&body).unwrap_or_default())
}

/// A parameter of the model (by OpenAI's name) where a Parea request sets it, in
/// `llm_configuration`.
fn parea_param(param: &str) -> String {
    let head_len = param.find(['.', '[']).unwrap_or(param.len());
    let (head, rest) = param.split_at(head_len);
    let place = match head {
        "temperature" => "model_params.temp".to_owned(),
        "max_tokens" | "max_completion_tokens" => "model_params.max_length".to_owned(),
        "top_p" | "response_format" | "presence_penalty" | "frequency_penalty" | "seed" => {
            format!("model_params.{head}")
        }
        "tools" => format!("functions{rest}"),
        "tool_choice" => "function_call".to_owned(),
        other => format!("{other}{rest}"),
    };
    format!("llm_configuration.{place}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_parameter_is_named_by_its_parea_place() {
        let err = ApiError::Refused {
            provider: "anthropic".into(),
            param: "temperature".into(),
            why: "Anthropic accepts values from 0 to 1".into(),
        };
        let body: serde_json::Value = serde_json::from_slice(&error_body(&err)).expect("json");
        assert_eq!(
            body["error"]["field"],
            "llm_configuration.model_params.temp"
        );
        assert!(body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("llm_configuration.model_params.temp cannot go")));
        assert_eq!(
            parea_param("messages[2].content"),
            "llm_configuration.messages[2].content"
        );
        assert_eq!(
            parea_param("tools[0].type"),
            "llm_configuration.functions[0].type"
        );
    }

    #[test]
    fn body_has_type_message_and_field() {
        let err = ApiError::invalid("llm_configuration.model", "model is required");
        let body: serde_json::Value = serde_json::from_slice(&error_body(&err)).expect("json");
        assert_eq!(body["error"]["type"], "invalid_request");
        assert_eq!(body["error"]["field"], "llm_configuration.model");
        assert_eq!(body["error"]["message"], "model is required");
    }
}
