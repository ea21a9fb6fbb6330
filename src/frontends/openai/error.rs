//! OpenAI's error body, `{"error": {"message", "type", "param", "code"}}`, and the status each
//! [`ApiError`] answers with on the `/v1` routes (one exhaustive mapping of the differences).
//! A provider's own error keeps its message, `code` and `param` as the provider sent them, and
//! its `type` when it sent one (else the type of the status, as for promptd's own errors), so
//! an app tells `context_length_exceeded` from `insufficient_quota` as it would upstream.

use bytes::Bytes;
use hyper::StatusCode;
use serde::Serialize;

use crate::call::ApiError;

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    message: String,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

/// The status of `err` on a `/v1` route: OpenAI answers every bad request with 400.
pub fn status(err: &ApiError) -> StatusCode {
    match err {
        ApiError::InvalidRequest { .. }
        | ApiError::Refused { .. }
        | ApiError::MissingInput(_)
        | ApiError::PayloadTooLarge(_) => StatusCode::BAD_REQUEST,
        other => other.status(),
    }
}

/// OpenAI's `type` for a status.
fn kind(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "invalid_request_error",
        429 => "rate_limit_error",
        s if s >= 500 => "api_error",
        _ => "invalid_request_error",
    }
}

fn param(err: &ApiError) -> Option<&str> {
    match err {
        ApiError::InvalidRequest { field, .. } => field.as_deref(),
        ApiError::Refused { param, .. } => Some(param),
        ApiError::ProviderStatus { error, .. } => error.param.as_deref(),
        ApiError::ModelNotFound(_) | ApiError::UnknownDeployment(_) => Some("model"),
        ApiError::MissingInput(_) => Some("promptd.inputs"),
        _ => None,
    }
}

fn code(err: &ApiError) -> Option<&str> {
    match err {
        ApiError::ModelNotFound(_) | ApiError::UnknownDeployment(_) => Some("model_not_found"),
        // The provider's own code, or none when it sent none.
        ApiError::ProviderStatus { error, .. } => error.code.as_deref(),
        other => Some(other.kind()),
    }
}

/// The status and body of `err` in OpenAI's shape. A provider's own error passes its message,
/// type, code and param through unchanged.
pub fn error_body(err: &ApiError) -> (StatusCode, Bytes) {
    let status = status(err);
    let (message, provider_type) = match err {
        ApiError::ProviderStatus { error, .. } => {
            (error.message.clone(), error.provider_type.as_deref())
        }
        other => (other.to_string(), None),
    };
    let body = Body {
        error: Inner {
            message,
            kind: provider_type.unwrap_or_else(|| kind(status)),
            param: param(err),
            code: code(err),
        },
    };
    // A struct of strings always serialises.
    (
        status,
        Bytes::from(serde_json::to_vec(&body).unwrap_or_default()),
    )
}

/// The event that ends a stream which failed after it started: `data: {"error": {...}}`.
pub fn stream_error_event(message: &str) -> Bytes {
    let body = Body {
        error: Inner {
            message: message.to_owned(),
            kind: "api_error",
            param: None,
            code: Some("provider_error"),
        },
    };
    let mut out = b"data: ".to_vec();
    let _ = serde_json::to_writer(&mut out, &body);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Error, ErrorKind};

    fn json(err: &ApiError) -> (u16, serde_json::Value) {
        let (status, body) = error_body(err);
        (
            status.as_u16(),
            serde_json::from_slice(&body).unwrap_or_default(),
        )
    }

    #[test]
    fn bad_requests_are_400_naming_the_param_and_models_404() {
        let (status, body) = json(&ApiError::invalid("messages", "messages must not be empty"));
        assert_eq!(status, 400);
        assert_eq!(body["error"]["param"], "messages");
        assert_eq!(body["error"]["type"], "invalid_request_error");
        let (status, body) = json(&ApiError::ModelNotFound("no model x".into()));
        assert_eq!(status, 404);
        assert_eq!(body["error"]["code"], "model_not_found");
        let mut error = Error::new(ErrorKind::RateLimited, "Rate limit reached");
        let provider = |error: &Error| ApiError::ProviderStatus {
            provider: "openai".into(),
            status: 429,
            error: Box::new(error.clone()),
        };
        let (status, body) = json(&provider(&error));
        assert_eq!(status, 429);
        assert_eq!(body["error"]["message"], "Rate limit reached");
        assert_eq!(body["error"]["type"], "rate_limit_error", "from the status");
        assert!(body["error"]["code"].is_null());
        error.code = Some("insufficient_quota".into());
        error.provider_type = Some("insufficient_quota".into());
        error.param = Some("model".into());
        let (_, body) = json(&provider(&error));
        assert_eq!(
            body["error"],
            serde_json::json!({"message": "Rate limit reached", "type": "insufficient_quota",
                "param": "model", "code": "insufficient_quota"})
        );
    }
}
