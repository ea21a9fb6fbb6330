//! Anthropic's error body, `{"type": "error", "error": {"type", "message"}}`, and the status
//! each [`ApiError`] answers with on the Messages door. A provider's own error keeps its
//! message and, from an Anthropic-kind provider, its status (`overloaded_error` is 529, which
//! Anthropic's clients retry); promptd's own errors get the word of their status.

use bytes::Bytes;
use hyper::StatusCode;

use crate::call::ApiError;
use crate::model::{Error, ErrorKind};
use crate::wire::anthropic::{error_type, render_error};

/// The model's kind of `err` and the status to answer it with.
fn kind_and_status(err: &ApiError) -> (ErrorKind, u16) {
    if let ApiError::ProviderStatus { status, error, .. } = err {
        // A client error the provider named passes through with its status; a server error
        // is the upstream's failure (502), but for an overloaded provider (529, retried).
        let status = match error.kind {
            ErrorKind::Overloaded => 529,
            _ if (400..500).contains(status) => *status,
            _ => 502,
        };
        return (error.kind, status);
    }
    let kind = match err {
        ApiError::ServerBusy(_) | ApiError::ProviderBusy { .. } => ErrorKind::Overloaded,
        ApiError::RateLimited { .. } => ErrorKind::RateLimited,
        ApiError::ProviderTimeout { .. } => ErrorKind::Timeout,
        ApiError::Unauthorized(_) | ApiError::ProviderKeyMissing { .. } => {
            ErrorKind::Authentication
        }
        ApiError::Forbidden(_) => ErrorKind::PermissionDenied,
        ApiError::PayloadTooLarge(_) | ApiError::RenderedTooLarge { .. } => {
            ErrorKind::RequestTooLarge
        }
        ApiError::NotFound { .. }
        | ApiError::ModelNotFound(_)
        | ApiError::UnknownDeployment(_)
        | ApiError::NoCacheEntry(_)
        | ApiError::TraceNotHeld(_)
        | ApiError::ResponseNotFound(_) => ErrorKind::NotFound,
        ApiError::ProviderRefused { .. }
        | ApiError::ProviderUnreachable { .. }
        | ApiError::DeploymentUnavailable { .. } => ErrorKind::Unreachable,
        ApiError::ProviderProtocol { .. }
        | ApiError::ProviderStream { .. }
        | ApiError::Internal(_)
        | ApiError::NotImplemented(_)
        | ApiError::NotServed(_)
        | ApiError::LogNotAccepted(_) => ErrorKind::Upstream,
        ApiError::InvalidJson(_)
        | ApiError::InvalidRequest { .. }
        | ApiError::Refused { .. }
        | ApiError::BodyUnreadable(_)
        | ApiError::UnknownProvider { .. }
        | ApiError::MissingInput(_)
        | ApiError::MisdirectedHost(_)
        | ApiError::UnsupportedMediaType(_)
        | ApiError::MethodNotAllowed { .. }
        | ApiError::ProviderStatus { .. } => ErrorKind::InvalidRequest,
    };
    let status = match err {
        // Statuses of HTTP itself keep their meaning; every other bad request is a 400.
        ApiError::MisdirectedHost(_)
        | ApiError::UnsupportedMediaType(_)
        | ApiError::MethodNotAllowed { .. }
        | ApiError::NotImplemented(_)
        | ApiError::NotServed(_)
        | ApiError::Internal(_) => err.status().as_u16(),
        _ => error_type(kind).1,
    };
    (kind, status)
}

/// The status and body of `err` in Anthropic's shape.
pub fn error_body(err: &ApiError) -> (StatusCode, Bytes) {
    let (kind, status) = kind_and_status(err);
    let message = match err {
        ApiError::ProviderStatus { error, .. } => error.message.clone(),
        other => other.to_string(),
    };
    let body = render_error(&Error::new(kind, message));
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    (status, Bytes::from(body))
}

/// The `event: error` that ends a stream which failed after it started.
pub fn error_event(message: &str) -> Bytes {
    let mut out = b"event: error\ndata: ".to_vec();
    out.extend_from_slice(&render_error(&Error::new(ErrorKind::Upstream, message)));
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(err: &ApiError) -> (u16, serde_json::Value) {
        let (status, body) = error_body(err);
        (
            status.as_u16(),
            serde_json::from_slice(&body).expect("json"),
        )
    }

    #[test]
    fn errors_take_anthropics_words_and_statuses() {
        let (status, body) = json(&ApiError::invalid(
            "max_tokens",
            "max_tokens: Field required",
        ));
        assert_eq!(status, 400);
        assert_eq!(body["type"], "error");
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert_eq!(json(&ApiError::ModelNotFound("no".into())).0, 404);
        let overloaded = ApiError::ProviderStatus {
            provider: "anthropic".into(),
            status: 529,
            error: Box::new(Error::new(ErrorKind::Overloaded, "Overloaded")),
        };
        let (status, body) = json(&overloaded);
        assert_eq!(status, 529);
        assert_eq!(body["error"]["type"], "overloaded_error");
        assert_eq!(body["error"]["message"], "Overloaded");
        let missing = ApiError::ProviderKeyMissing {
            provider: "anthropic".into(),
            remedy: "set the key".into(),
        };
        assert_eq!(json(&missing).1["error"]["type"], "authentication_error");
        let unreachable = ApiError::ProviderUnreachable {
            provider: "local".into(),
            base_url: "http://127.0.0.1:1".into(),
            message: "refused".into(),
        };
        assert_eq!(json(&unreachable).0, 502);
    }
}
