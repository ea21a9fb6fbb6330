//! A failure as the model holds it: a kind every door has a word and a status for, and the
//! provider's own `code` and `param` kept (so an app can tell `context_length_exceeded` from
//! `insufficient_quota`).

/// What went wrong, in no wire's vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The request is wrong (400).
    InvalidRequest,
    /// The key is missing or wrong (401).
    Authentication,
    /// The key may not do this (403).
    PermissionDenied,
    /// No such model or route (404).
    NotFound,
    /// The request is too large for the provider (413).
    RequestTooLarge,
    /// Too many requests, or the quota is spent (429).
    RateLimited,
    /// The provider is overloaded (Anthropic's 529, a 503).
    Overloaded,
    /// No answer in time (408, 504, or promptd's own deadline).
    Timeout,
    /// The provider could not be reached.
    Unreachable,
    /// The provider failed (other 5xx) or answered something promptd cannot read.
    Upstream,
}

impl ErrorKind {
    /// The kind an upstream HTTP status means.
    pub fn from_status(status: u16) -> ErrorKind {
        match status {
            401 => ErrorKind::Authentication,
            403 => ErrorKind::PermissionDenied,
            404 => ErrorKind::NotFound,
            408 | 504 => ErrorKind::Timeout,
            413 => ErrorKind::RequestTooLarge,
            429 => ErrorKind::RateLimited,
            503 | 529 => ErrorKind::Overloaded,
            400..=499 => ErrorKind::InvalidRequest,
            _ => ErrorKind::Upstream,
        }
    }

    /// Whether trying again later may succeed.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            ErrorKind::RateLimited
                | ErrorKind::Overloaded
                | ErrorKind::Timeout
                | ErrorKind::Unreachable
                | ErrorKind::Upstream
        )
    }
}

/// A failure, with what the provider said about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    /// For people; already masked of keys and credentials.
    pub message: String,
    /// The provider's machine-readable code (`model_not_found`, `context_length_exceeded`).
    pub code: Option<String>,
    /// The request parameter the provider blamed.
    pub param: Option<String>,
    /// The provider's class of error, where its wire has one beside the code (OpenAI's
    /// `invalid_request_error` beside `context_length_exceeded`, `insufficient_quota`). Anthropic
    /// has one word for both, kept as the `code` (`overloaded_error`).
    pub provider_type: Option<String>,
    /// The provider's HTTP status, when it answered one.
    pub status: Option<u16>,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
            code: None,
            param: None,
            provider_type: None,
            status: None,
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_kinds() {
        let kinds: Vec<ErrorKind> = [400, 401, 403, 404, 408, 413, 422, 429, 500, 503, 504, 529]
            .into_iter()
            .map(ErrorKind::from_status)
            .collect();
        use ErrorKind::*;
        assert_eq!(
            kinds,
            [
                InvalidRequest,
                Authentication,
                PermissionDenied,
                NotFound,
                Timeout,
                RequestTooLarge,
                InvalidRequest,
                RateLimited,
                Upstream,
                Overloaded,
                Timeout,
                Overloaded
            ]
        );
        assert!(RateLimited.is_transient() && !InvalidRequest.is_transient());
    }
}
