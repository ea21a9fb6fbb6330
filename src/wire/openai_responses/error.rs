//! Errors on the Responses wire <-> the model's [`Error`].
//!
//! - A non-2xx answer of a Responses provider has OpenAI's body
//!   (`{"error": {"message", "type", "param", "code"}}`), which
//!   `providers::upstream_error` already reads for the OpenAI kind: nothing here.
//! - The Responses door answers a model error in the same OpenAI shape ([`render_error`]),
//!   with the status of its kind. Errors of promptd's own (`ApiError`) are the API layer's:
//!   `frontends::openai::error::error_body` renders them in this same shape; the door uses that one
//!   for them and [`render_error`] for a model error it holds without an `ApiError`.
//! - In a stream, `response.failed` carries `response.error: {code, message}` and an `error`
//!   event `{code, message, param}`: [`error_kind`] reads the code, [`error_code`] writes one.
//!
//! | kind | HTTP status | `type` | stream `code` |
//! |---|---|---|---|
//! | InvalidRequest | 400 | `invalid_request_error` | `invalid_prompt` |
//! | Authentication | 401 | `authentication_error` | `invalid_api_key` |
//! | PermissionDenied | 403 | `permission_error` | `permission_denied` |
//! | NotFound | 404 | `invalid_request_error` | `model_not_found` |
//! | RequestTooLarge | 400 (OpenAI answers every bad request so) | `invalid_request_error` | `context_length_exceeded` |
//! | RateLimited | 429 | `rate_limit_error` | `rate_limit_exceeded` |
//! | Overloaded | 503 | `api_error` | `server_is_overloaded` |
//! | Timeout | 504 | `api_error` | `server_error` |
//! | Unreachable | 502 | `api_error` | `server_error` |
//! | Upstream | 500 | `api_error` | `server_error` |
//!
//! A provider's own `code`, `type` and `param` are passed through instead when the error has
//! them (Codex tells `context_length_exceeded` and `insufficient_quota` apart by the code).

use serde_json::{json, Value};

use crate::model::{Error, ErrorKind};

/// The HTTP status and OpenAI error `type` the Responses door answers a model error kind with.
fn status_and_type(kind: ErrorKind) -> (u16, &'static str) {
    match kind {
        ErrorKind::InvalidRequest => (400, "invalid_request_error"),
        ErrorKind::Authentication => (401, "authentication_error"),
        ErrorKind::PermissionDenied => (403, "permission_error"),
        ErrorKind::NotFound => (404, "invalid_request_error"),
        ErrorKind::RequestTooLarge => (400, "invalid_request_error"),
        ErrorKind::RateLimited => (429, "rate_limit_error"),
        ErrorKind::Overloaded => (503, "api_error"),
        ErrorKind::Timeout => (504, "api_error"),
        ErrorKind::Unreachable => (502, "api_error"),
        ErrorKind::Upstream => (500, "api_error"),
    }
}

/// The code a `response.failed` event gives a model error kind (the error's own code wins).
pub fn error_code(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidRequest => "invalid_prompt",
        ErrorKind::Authentication => "invalid_api_key",
        ErrorKind::PermissionDenied => "permission_denied",
        ErrorKind::NotFound => "model_not_found",
        ErrorKind::RequestTooLarge => "context_length_exceeded",
        ErrorKind::RateLimited => "rate_limit_exceeded",
        ErrorKind::Overloaded => "server_is_overloaded",
        ErrorKind::Timeout | ErrorKind::Unreachable | ErrorKind::Upstream => "server_error",
    }
}

/// The model's kind of a Responses error code (of `response.failed`, an `error` event): the
/// image codes and `invalid_prompt` are the request's fault, a code it does not know is
/// [`ErrorKind::Upstream`].
pub fn error_kind(code: &str) -> ErrorKind {
    match code {
        "rate_limit_exceeded" | "insufficient_quota" => ErrorKind::RateLimited,
        "server_is_overloaded" | "slow_down" => ErrorKind::Overloaded,
        "vector_store_timeout" => ErrorKind::Timeout,
        "context_length_exceeded" => ErrorKind::RequestTooLarge,
        "invalid_api_key" => ErrorKind::Authentication,
        "model_not_found" => ErrorKind::NotFound,
        "invalid_prompt" | "invalid_request_error" | "usage_not_included" => {
            ErrorKind::InvalidRequest
        }
        code if code.contains("image") || code.contains("base64") => ErrorKind::InvalidRequest,
        _ => ErrorKind::Upstream,
    }
}

/// A model error as the Responses door's answer: its status and the OpenAI error body
/// `{"error": {"message", "type", "param", "code"}}` (see the header for the table).
pub fn render_error(err: &Error) -> (u16, Vec<u8>) {
    let (status, kind) = status_and_type(err.kind);
    let body = json!({"error": {
        "message": err.message,
        "type": err.provider_type.as_deref().unwrap_or(kind),
        "param": err.param,
        "code": err.code,
    }});
    (status, serde_json::to_vec(&body).unwrap_or_default())
}

/// The `error` object of a `response.failed` event or a failed response's body.
pub(super) fn failure_json(err: &Error) -> Value {
    json!({
        "code": err.code.as_deref().unwrap_or_else(|| error_code(err.kind)),
        "message": err.message,
    })
}

/// The model error of a Responses `error` object (`{code, message, param?, type?}`), or of an
/// `error` event's fields.
pub(super) fn error_of(value: Option<&Value>) -> Error {
    let text = |key: &str| {
        value
            .and_then(|v| v.get(key))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let code = text("code");
    let kind = code.as_deref().map_or(ErrorKind::Upstream, error_kind);
    let message = text("message")
        .unwrap_or_else(|| "the provider reported a failed response without a message".to_owned());
    let mut error = Error::new(kind, message);
    error.code = code;
    error.param = text("param");
    error.provider_type = text("type");
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_code_that_comes_back_as_the_kind() {
        use ErrorKind::*;
        for kind in [
            InvalidRequest,
            Authentication,
            NotFound,
            RequestTooLarge,
            RateLimited,
            Overloaded,
            Upstream,
        ] {
            assert_eq!(error_kind(error_code(kind)), kind, "{kind:?}");
        }
        assert_eq!(error_kind("insufficient_quota"), RateLimited);
        assert_eq!(error_kind("invalid_base64_image"), InvalidRequest);
        assert_eq!(error_kind("brand_new"), Upstream);
    }

    #[test]
    fn errors_render_in_openai_shape_with_the_providers_words() {
        let mut err = Error::new(ErrorKind::RateLimited, "slow down");
        let (status, body) = render_error(&err);
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(status, 429);
        assert_eq!(
            body,
            json!({"error": {"message": "slow down", "type": "rate_limit_error",
                "param": null, "code": null}})
        );
        err.code = Some("insufficient_quota".into());
        err.provider_type = Some("insufficient_quota".into());
        let (_, body) = render_error(&err);
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["type"], "insufficient_quota");
        assert_eq!(failure_json(&err)["code"], "insufficient_quota");
        let bad = Error::new(ErrorKind::RequestTooLarge, "too long");
        assert_eq!(render_error(&bad).0, 400);
        assert_eq!(failure_json(&bad)["code"], "context_length_exceeded");

        let read = error_of(Some(
            &json!({"code": "server_is_overloaded", "message": "busy"}),
        ));
        assert_eq!(
            (read.kind, read.message.as_str(), read.code.as_deref()),
            (ErrorKind::Overloaded, "busy", Some("server_is_overloaded"))
        );
        assert_eq!(error_of(None).kind, ErrorKind::Upstream);
    }
}
