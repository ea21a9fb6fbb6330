//! Anthropic error bodies (`{"type": "error", "error": {"type", "message"}}`) <-> the model's
//! [`Error`]: the body of a non-2xx answer, and of an `event: error` in a stream.

use serde::{Deserialize, Serialize};

use crate::model::{Error, ErrorKind};

/// Anthropic's error type word for a model error kind, and the HTTP status Anthropic answers it
/// with. Anthropic has no word for an unreachable provider: `api_error` with 502 (the gateway's
/// upstream failed, not the gateway).
pub fn error_type(kind: ErrorKind) -> (&'static str, u16) {
    match kind {
        ErrorKind::InvalidRequest => ("invalid_request_error", 400),
        ErrorKind::Authentication => ("authentication_error", 401),
        ErrorKind::PermissionDenied => ("permission_error", 403),
        ErrorKind::NotFound => ("not_found_error", 404),
        ErrorKind::RequestTooLarge => ("request_too_large", 413),
        ErrorKind::RateLimited => ("rate_limit_error", 429),
        ErrorKind::Overloaded => ("overloaded_error", 529),
        ErrorKind::Timeout => ("timeout_error", 504),
        ErrorKind::Unreachable => ("api_error", 502),
        ErrorKind::Upstream => ("api_error", 500),
    }
}

/// The model's error kind of an Anthropic error type word (`None` for a word it does not know).
/// `billing_error` (the account cannot pay) is a permission the key lacks, not to be retried.
pub fn error_kind(error_type: &str) -> Option<ErrorKind> {
    Some(match error_type {
        "invalid_request_error" => ErrorKind::InvalidRequest,
        "authentication_error" => ErrorKind::Authentication,
        "permission_error" | "billing_error" => ErrorKind::PermissionDenied,
        "not_found_error" => ErrorKind::NotFound,
        "request_too_large" => ErrorKind::RequestTooLarge,
        "rate_limit_error" => ErrorKind::RateLimited,
        "overloaded_error" => ErrorKind::Overloaded,
        "timeout_error" => ErrorKind::Timeout,
        "api_error" => ErrorKind::Upstream,
        _ => return None,
    })
}

/// A model error as Anthropic's error body; the status to send it with is
/// [`error_type`]`(err.kind).1`.
pub fn render_error(err: &Error) -> Vec<u8> {
    let body = OutError {
        kind: "error",
        error: OutErrorBody {
            kind: error_type(err.kind).0,
            message: &err.message,
        },
    };
    serde_json::to_vec(&body).unwrap_or_default()
}

/// The error of a non-2xx Anthropic answer: the kind from its error type (else from `status`),
/// the type kept as the `code`, the status kept.
pub fn decode_error(status: u16, body: &[u8]) -> Error {
    let mut error = match serde_json::from_slice::<InError>(body) {
        Ok(InError { error }) => error_of(error),
        Err(_) => Error::new(
            ErrorKind::from_status(status),
            format!("the provider answered {status} with a body that is not Anthropic's error"),
        ),
    };
    if error.code.is_none() {
        error.kind = ErrorKind::from_status(status);
    }
    error.status = Some(status);
    error
}

/// The `error` object of an error body or event.
#[derive(Debug, Deserialize)]
pub(super) struct InErrorBody {
    #[serde(rename = "type")]
    kind: Option<String>,
    message: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct InError {
    pub(super) error: InErrorBody,
}

/// The model error of an Anthropic `error` object: an unknown type word is
/// [`ErrorKind::Upstream`], kept as the `code`.
pub(super) fn error_of(body: InErrorBody) -> Error {
    let kind = body
        .kind
        .as_deref()
        .and_then(error_kind)
        .unwrap_or(ErrorKind::Upstream);
    let message = body
        .message
        .unwrap_or_else(|| "the provider reported an error without a message".to_owned());
    let mut error = Error::new(kind, message);
    error.code = body.kind;
    error
}

#[derive(Serialize)]
struct OutError<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    error: OutErrorBody<'a>,
}

#[derive(Serialize)]
struct OutErrorBody<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    message: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_word_that_comes_back_as_the_kind() {
        use ErrorKind::*;
        for kind in [
            InvalidRequest,
            Authentication,
            PermissionDenied,
            NotFound,
            RequestTooLarge,
            RateLimited,
            Overloaded,
            Timeout,
            Upstream,
        ] {
            let (word, status) = error_type(kind);
            assert_eq!(error_kind(word), Some(kind), "{word}");
            assert_eq!(ErrorKind::from_status(status), kind, "{status}");
        }
        assert_eq!(error_type(Unreachable), ("api_error", 502));
        assert_eq!(error_kind("billing_error"), Some(PermissionDenied));
        assert_eq!(error_kind("something_new"), None);
    }

    #[test]
    fn error_bodies_decode_and_render() {
        let fixture = include_str!("../../../tests/fixtures/anthropic_error_529.json");
        let err = decode_error(529, fixture.as_bytes());
        assert_eq!(err.kind, ErrorKind::Overloaded);
        assert_eq!(err.code.as_deref(), Some("overloaded_error"));
        assert_eq!(err.status, Some(529));
        let fixture = include_str!("../../../tests/fixtures/anthropic_error_400.json");
        let err = decode_error(400, fixture.as_bytes());
        assert_eq!(err.kind, ErrorKind::InvalidRequest);
        let err = decode_error(502, b"<html>bad gateway</html>");
        assert_eq!((err.kind, err.code), (ErrorKind::Upstream, None));
        let err = decode_error(429, br#"{"type":"error","error":{"message":"slow down"}}"#);
        assert_eq!(err.kind, ErrorKind::RateLimited);
        assert_eq!(err.message, "slow down");

        let rendered: serde_json::Value =
            serde_json::from_slice(&render_error(&Error::new(ErrorKind::RateLimited, "wait")))
                .unwrap();
        assert_eq!(
            rendered,
            serde_json::json!({"type": "error",
                "error": {"type": "rate_limit_error", "message": "wait"}})
        );
    }
}
