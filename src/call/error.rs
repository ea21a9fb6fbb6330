//! Everything a call can fail with, its kind and its HTTP status; each door renders it in its
//! own body ([`crate::frontends`]).
//!
//! The mapping from error to HTTP status is one exhaustive `match`, so a new error kind cannot
//! ship without a decided status.

use std::borrow::Cow;

use hyper::StatusCode;

/// Everything a request can fail with. Messages say what was wrong and what to do.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    #[error("request body is not valid JSON: {0}")]
    InvalidJson(String),
    /// A request that parses but asks for something wrong; `field` names where, when known
    /// (a fixed name, or the JSON path serde reported).
    #[error("{message}")]
    InvalidRequest {
        field: Option<Cow<'static, str>>,
        message: String,
    },
    /// The request body could not be read to its end (the client went away, or sent broken
    /// chunked framing): nothing is wrong with its JSON, there is none.
    #[error("cannot read the request body: {0}")]
    BodyUnreadable(String),
    #[error("unknown provider `{requested}`; configured providers: {}", configured.join(", "))]
    UnknownProvider {
        requested: String,
        configured: Vec<String>,
    },
    #[error("unknown deployment `{0}`")]
    UnknownDeployment(String),
    #[error("deployment `{id}` cannot be fetched: {message}")]
    DeploymentUnavailable { id: String, message: String },
    #[error("missing inputs for placeholders: {}", .0.join(", "))]
    MissingInput(Vec<String>),
    #[error("request body is larger than the limit of {0} bytes")]
    PayloadTooLarge(u64),
    #[error(
        "the rendered messages would be {size} bytes, over the limit of {limit} bytes \
         (max_rendered): placeholders filled with large inputs, or used many times; send less"
    )]
    RenderedTooLarge { size: u64, limit: u64 },
    #[error("{0}")]
    Forbidden(String),
    /// A TCP request without the listener's key (`tcp_key_env`), or with another.
    #[error("{0}")]
    Unauthorized(String),
    /// A TCP request whose `Host` is not this daemon's (DNS rebinding, a misrouted request).
    #[error("{0}")]
    MisdirectedHost(String),
    /// A TCP request whose body is not declared JSON.
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("no route {method} {path}")]
    NotFound { method: String, path: String },
    #[error("no cache entry with key {0}")]
    NoCacheEntry(String),
    #[error(
        "no record of trace `{0}` is held locally: it was never sent (or only updates of it \
         were), it is not yet on disk (a completion's record waits up to spool.flush_interval), \
         or it was shipped upstream and its spool segment removed (look for it there)"
    )]
    TraceNotHeld(String),
    /// A response id the Responses door does not hold for this client (OpenAI's wording).
    #[error("Response with id '{0}' not found.")]
    ResponseNotFound(String),
    #[error("method {method} not allowed on {path}")]
    MethodNotAllowed { method: String, path: String },
    #[error("{0} is a hosted Parea route that promptd does not serve")]
    NotImplemented(String),
    /// A route of another API that promptd does not serve; the message says what to use.
    #[error("{0}")]
    NotServed(String),
    /// A model of an OpenAI-route request that no provider or deployment serves.
    #[error("{0}")]
    ModelNotFound(String),
    /// A provider's non-2xx answer, with what it said (its message masked of keys, its code,
    /// param and type): the Parea route quotes the message, the OpenAI routes render it all.
    #[error("{provider} answered {status}: {}", error.message)]
    ProviderStatus {
        provider: String,
        status: u16,
        error: Box<crate::model::Error>,
    },
    /// A parameter the provider's wire cannot honour (refuse, never drop). `param` is the
    /// model's name for it (OpenAI's: `temperature`, `messages[2].content[0]`); each door
    /// names it in its own vocabulary.
    #[error("{param} cannot go to provider `{provider}`: {why}")]
    Refused {
        provider: String,
        param: String,
        why: String,
    },
    /// The call needs a key nobody gave: promptd's config has none for the provider (its
    /// variable unset, or no key declared) and the request brought no `provider_api_key`.
    #[error("provider {provider} has no API key: {remedy}")]
    ProviderKeyMissing { provider: String, remedy: String },
    /// Nothing accepts connections at the provider's address: typically a local server
    /// (Ollama, llama.cpp, vLLM) that is not running.
    #[error(
        "provider {provider} at {base_url} is not reachable (connection refused): is the server \
         running?"
    )]
    ProviderRefused { provider: String, base_url: String },
    #[error("cannot reach provider {provider} at {base_url}: {message}")]
    ProviderUnreachable {
        provider: String,
        base_url: String,
        message: String,
    },
    #[error("provider {provider} did not answer within {seconds} s")]
    ProviderTimeout { provider: String, seconds: f64 },
    #[error("provider {provider} sent an answer promptd cannot read: {message}")]
    ProviderProtocol { provider: String, message: String },
    #[error("provider {provider} stream failed: {message}")]
    ProviderStream { provider: String, message: String },
    #[error(
        "provider {provider} is busy: {limit} calls in flight (its max_concurrent) and none \
         finished within {waited_seconds}s; try again shortly"
    )]
    ProviderBusy {
        provider: String,
        limit: usize,
        waited_seconds: f64,
    },
    #[error("too many requests from this peer (rate_limit per uid); try again in {retry_after}s")]
    RateLimited { retry_after: u64 },
    /// The requests in flight hold all of `max_request_memory`: this one's body or rendered
    /// messages do not fit now.
    #[error("promptd is busy: {0}; try again shortly")]
    ServerBusy(crate::memory::OverBudget),
    #[error("{0}")]
    LogNotAccepted(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// An invalid request, naming the field at fault.
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        ApiError::InvalidRequest {
            field: Some(Cow::Borrowed(field)),
            message: message.into(),
        }
    }

    /// Seconds a client should wait before trying again (`Retry-After`), for errors that say
    /// "not now" rather than "no".
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::ProviderBusy { .. } | ApiError::ServerBusy(_) => Some(1),
            ApiError::RateLimited { retry_after } => Some(*retry_after),
            _ => None,
        }
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidJson(_) => StatusCode::BAD_REQUEST,
            ApiError::InvalidRequest { .. } | ApiError::Refused { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::BodyUnreadable(_) => StatusCode::BAD_REQUEST,
            ApiError::UnknownProvider { .. } => StatusCode::BAD_REQUEST,
            ApiError::UnknownDeployment(_) => StatusCode::NOT_FOUND,
            ApiError::DeploymentUnavailable { .. } => StatusCode::BAD_GATEWAY,
            ApiError::MissingInput(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::PayloadTooLarge(_) | ApiError::RenderedTooLarge { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::MisdirectedHost(_) => StatusCode::MISDIRECTED_REQUEST,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::NotFound { .. }
            | ApiError::NoCacheEntry(_)
            | ApiError::TraceNotHeld(_)
            | ApiError::ResponseNotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::NotImplemented(_) | ApiError::NotServed(_) => StatusCode::NOT_IMPLEMENTED,
            ApiError::ModelNotFound(_) => StatusCode::NOT_FOUND,
            // Upstream client errors pass through; upstream server errors are a bad gateway.
            ApiError::ProviderStatus { status, .. } => match StatusCode::from_u16(*status) {
                Ok(s) if s.is_client_error() => s,
                _ => StatusCode::BAD_GATEWAY,
            },
            // 401 as for a provider's own "no key" answer: clients (the OpenAI SDK among them)
            // read it as an authentication error and do not retry, which is right, since only
            // a key fixes it. Not 503: nothing is unavailable, and retrying would not help.
            ApiError::ProviderKeyMissing { .. } => StatusCode::UNAUTHORIZED,
            ApiError::ProviderRefused { .. } | ApiError::ProviderUnreachable { .. } => {
                StatusCode::BAD_GATEWAY
            }
            ApiError::ProviderTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ApiError::ProviderBusy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::ProviderProtocol { .. } => StatusCode::BAD_GATEWAY,
            ApiError::ProviderStream { .. } => StatusCode::BAD_GATEWAY,
            ApiError::LogNotAccepted(_) | ApiError::ServerBusy(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable `type` of the error body.
    pub fn kind(&self) -> &'static str {
        match self {
            ApiError::InvalidJson(_) => "invalid_json",
            ApiError::InvalidRequest { .. } | ApiError::Refused { .. } => "invalid_request",
            ApiError::BodyUnreadable(_) => "unreadable_body",
            ApiError::UnknownProvider { .. } => "unknown_provider",
            ApiError::UnknownDeployment(_) => "unknown_deployment",
            ApiError::DeploymentUnavailable { .. } => "deployment_unavailable",
            ApiError::MissingInput(_) => "missing_input",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::RenderedTooLarge { .. } => "rendered_too_large",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::MisdirectedHost(_) => "misdirected_request",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::NotFound { .. }
            | ApiError::NoCacheEntry(_)
            | ApiError::TraceNotHeld(_)
            | ApiError::ResponseNotFound(_) => "not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::NotImplemented(_) | ApiError::NotServed(_) => "not_implemented",
            ApiError::ModelNotFound(_) => "model_not_found",
            ApiError::ProviderStatus { .. }
            | ApiError::ProviderProtocol { .. }
            | ApiError::ProviderStream { .. } => "provider_error",
            ApiError::ProviderKeyMissing { .. } => "provider_key_missing",
            ApiError::ProviderRefused { .. } | ApiError::ProviderUnreachable { .. } => {
                "provider_unreachable"
            }
            ApiError::ProviderTimeout { .. } => "provider_timeout",
            ApiError::ProviderBusy { .. } => "provider_busy",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::LogNotAccepted(_) => "log_not_accepted",
            ApiError::ServerBusy(_) => "server_busy",
            ApiError::Internal(_) => "internal",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_client_errors_pass_through_and_server_errors_are_bad_gateway() {
        let e = |status| ApiError::ProviderStatus {
            provider: "openai".into(),
            status,
            error: Box::new(crate::model::Error::new(
                crate::model::ErrorKind::from_status(status),
                "m",
            )),
        };
        assert_eq!(e(429).status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(e(400).status(), StatusCode::BAD_REQUEST);
        assert_eq!(e(500).status(), StatusCode::BAD_GATEWAY);
        assert_eq!(e(529).status(), StatusCode::BAD_GATEWAY);
    }
}
