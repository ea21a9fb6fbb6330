//! `POST {base_url}/messages/count_tokens` for Anthropic-kind providers: the same pooled
//! client, headers, timeout, retries and metrics as a chat call; the client's body (its model
//! the provider's) and its `anthropic-*` headers sent as they came, the answer's bytes handed
//! back as received.

use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue};

use super::Provider;
use crate::config::Secret;
use crate::providers::{ProviderError, ProviderKind};

impl Provider {
    /// Count the tokens of `body` (an Anthropic Messages request without `max_tokens`); the
    /// answer's JSON bytes. Only for Anthropic-kind providers (the caller checks the kind).
    pub async fn count_tokens(
        &self,
        body: Bytes,
        key: Option<&Secret>,
        forward: &[(HeaderName, HeaderValue)],
    ) -> Result<Bytes, ProviderError> {
        if self.config.kind != ProviderKind::Anthropic {
            return Err(ProviderError::Protocol(
                "count_tokens needs an Anthropic-kind provider".into(),
            ));
        }
        self.metrics.calls.inc();
        let _slot = self.slot().await?;
        let timeout = self.config.timeout;
        let call = async {
            let url = format!("{}/messages/count_tokens", self.config.base_url);
            let url = super::parse_uri(&url).map_err(ProviderError::Protocol)?;
            let response = self.post_with_retries(&url, body, key, forward).await?;
            super::read_body(response, self.config.max_response_bytes).await
        };
        let result = tokio::time::timeout(timeout, call)
            .await
            .map_err(|_| ProviderError::Timeout(timeout))
            .and_then(|r| r);
        if let Err(e) = &result {
            self.metrics.error(e.kind());
        }
        result
    }
}
