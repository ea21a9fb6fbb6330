//! An upstream's non-2xx answer as the model's [`Error`]: the kind from the status, and what
//! the body says in the provider kind's shape, read once here and carried in
//! [`ProviderError::Status`](super::ProviderError::Status):
//!
//! - OpenAI kind: `{"error": {"message", "type", "param", "code"}}`; `code` a string, a number
//!   (some compatible servers) or null; `type` kept as the provider's type.
//! - Anthropic kind: `{"type": "error", "error": {"type": "overloaded_error", "message"}}`; the
//!   error's `type` is its code.
//!
//! The message is as the upstream wrote it, not yet masked: `engine::provider_error` masks
//! every text field before anyone sees it. A body that is not JSON, or not in the shape, gives
//! its excerpt as the message and no code; a code, param or type longer than
//! [`MAX_WORD_BYTES`] is not a machine word and is left out. The body is only the head the
//! client read (64 KiB at most).

use serde_json::Value;

use crate::config::ProviderKind;
use crate::model::{Error, ErrorKind};

/// Longest `code`, `param` or `type` kept: real ones are a few words (`context_length_exceeded`,
/// `messages[3].content`).
pub const MAX_WORD_BYTES: usize = 256;

/// The error a provider of `kind` answered with `status` and `body` (the head of it).
pub(crate) fn upstream_error(kind: ProviderKind, status: u16, body: &[u8]) -> Error {
    let json = serde_json::from_slice::<Value>(body).ok();
    let mut error = Error::new(
        ErrorKind::from_status(status),
        message(json.as_ref()).unwrap_or_else(|| crate::error_body_excerpt(body)),
    );
    error.status = Some(status);
    let Some(inner) = json.as_ref().and_then(|v| v.get("error")) else {
        return error;
    };
    match kind {
        ProviderKind::OpenAi => {
            error.code = match inner.get("code") {
                Some(Value::Number(n)) => word(&n.to_string()),
                Some(Value::String(s)) => word(s),
                _ => None,
            };
            error.param = inner.get("param").and_then(Value::as_str).and_then(word);
            error.provider_type = inner.get("type").and_then(Value::as_str).and_then(word);
        }
        ProviderKind::Anthropic => {
            error.code = inner.get("type").and_then(Value::as_str).and_then(word);
        }
    }
    error
}

/// `{"error": {"message"}}` (both kinds nest it so), or `{"error": "text"}`.
fn message(json: Option<&Value>) -> Option<String> {
    let json = json?;
    json.pointer("/error/message")
        .and_then(Value::as_str)
        .or_else(|| json.get("error").and_then(Value::as_str))
        .map(str::to_owned)
}

/// `s` when it can be a machine word (not empty, not too long).
fn word(s: &str) -> Option<String> {
    (!s.is_empty() && s.len() <= MAX_WORD_BYTES).then(|| s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn openai(status: u16, body: &str) -> Error {
        upstream_error(ProviderKind::OpenAi, status, body.as_bytes())
    }

    #[test]
    fn openai_bodies_keep_code_param_and_type() {
        let e = openai(
            404,
            r#"{"error": {"message": "The model `x` does not exist", "type":
            "invalid_request_error", "param": "model", "code": "model_not_found"}}"#,
        );
        assert_eq!(e.kind, ErrorKind::NotFound);
        assert_eq!(e.status, Some(404));
        assert_eq!(e.message, "The model `x` does not exist");
        assert_eq!(e.code.as_deref(), Some("model_not_found"));
        assert_eq!(e.param.as_deref(), Some("model"));
        assert_eq!(e.provider_type.as_deref(), Some("invalid_request_error"));

        let e = openai(
            429,
            r#"{"error": {"message": "m", "type": null, "code": 1008}}"#,
        );
        assert_eq!(e.kind, ErrorKind::RateLimited);
        assert_eq!(e.code.as_deref(), Some("1008"), "a numeric code as text");
        assert_eq!((e.param, e.provider_type), (None, None));

        let e = openai(
            400,
            r#"{"error": {"message": "m", "code": null, "param": 3}}"#,
        );
        assert_eq!(
            (e.code, e.param),
            (None, None),
            "null and non-text left out"
        );
    }

    #[test]
    fn anthropic_bodies_give_their_type_as_the_code() {
        let body =
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        let e = upstream_error(ProviderKind::Anthropic, 529, body);
        assert_eq!(e.kind, ErrorKind::Overloaded);
        assert_eq!(e.message, "Overloaded");
        assert_eq!(e.code.as_deref(), Some("overloaded_error"));
        assert_eq!((e.param, e.provider_type), (None, None));
    }

    #[test]
    fn malformed_bodies_give_a_message_and_no_code() {
        for (body, message) in [
            ("<html>Bad Gateway</html>", "<html>Bad Gateway</html>"),
            ("", "(empty body)"),
            (r#"{"error": "no such key"}"#, "no such key"),
            (r#"{"error": {"code": "x"#, r#"{"error": {"code": "x"#),
            (r#"{"error": [1, 2]}"#, r#"{"error": [1, 2]}"#),
            ("null", "null"),
        ] {
            for kind in [ProviderKind::OpenAi, ProviderKind::Anthropic] {
                let e = upstream_error(kind, 502, body.as_bytes());
                assert_eq!(e.message, message, "{body}");
                assert_eq!(e.kind, ErrorKind::Upstream);
                assert_eq!((e.code, e.param, e.provider_type), (None, None, None));
            }
        }
        let e = openai(400, r#"{"error": {"message": "m", "code": []}}"#);
        assert_eq!(e.code, None, "not a string or number");
        assert_eq!(
            openai(400, r#"{"error": {"code": "c"}}"#).code.as_deref(),
            Some("c")
        );
    }

    #[test]
    fn huge_bodies_and_words_are_bounded() {
        let long = "x".repeat(MAX_WORD_BYTES + 1);
        let e = openai(
            400,
            &format!(r#"{{"error": {{"message": "m", "code": "{long}", "param": "{long}"}}}}"#),
        );
        assert_eq!((e.code, e.param), (None, None));
        // The head of a huge body, cut mid-JSON: no code, an excerpt for a message.
        let huge = format!(
            r#"{{"error": {{"code": "c", "message": "{}"#,
            "y".repeat(64 * 1024)
        );
        let e = upstream_error(ProviderKind::OpenAi, 500, &huge.as_bytes()[..64 * 1024]);
        assert_eq!(e.code, None);
        assert!(
            e.message.len() < 1024 && e.message.ends_with("..."),
            "{}",
            e.message
        );
        let e = upstream_error(ProviderKind::OpenAi, 500, b"\xff\xfe{");
        assert_eq!(e.message, "\u{fffd}\u{fffd}{");
    }
}
