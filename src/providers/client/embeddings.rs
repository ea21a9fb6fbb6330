//! `POST {base_url}/embeddings` for OpenAI-kind providers: the same pooled client, headers,
//! timeout, retries and metrics as a chat call, the body sent as the caller built it and the
//! answer handed back as JSON.

use bytes::Bytes;
use serde_json::Value;

use super::Provider;
use crate::config::Secret;
use crate::providers::{ProviderError, ProviderKind};

impl Provider {
    /// Ask for embeddings with `body` (an OpenAI embeddings request); the answer's JSON. Only
    /// for OpenAI-kind providers (the caller checks the kind first).
    pub async fn embed(&self, body: &Value, key: Option<&Secret>) -> Result<Value, ProviderError> {
        self.metrics.calls.inc();
        let _slot = self.slot().await?;
        let timeout = self.config.timeout;
        let result = tokio::time::timeout(timeout, self.embed_with_retries(body, key))
            .await
            .map_err(|_| ProviderError::Timeout(timeout))
            .and_then(|r| r);
        if let Err(e) = &result {
            self.metrics.error(e.kind());
        }
        result
    }

    async fn embed_with_retries(
        &self,
        body: &Value,
        key: Option<&Secret>,
    ) -> Result<Value, ProviderError> {
        if self.config.kind != ProviderKind::OpenAi {
            return Err(ProviderError::Protocol(
                "embeddings need an OpenAI-kind provider".into(),
            ));
        }
        let url = format!("{}/embeddings", self.config.base_url);
        let url = super::parse_uri(&url).map_err(ProviderError::Protocol)?;
        let body = Bytes::from(
            serde_json::to_vec(body).map_err(|e| ProviderError::Protocol(e.to_string()))?,
        );
        let response = self.post_with_retries(&url, body, key, &[]).await?;
        let bytes = super::read_body(response, self.config.max_response_bytes).await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| ProviderError::Protocol(format!("the embeddings answer is not JSON: {e}")))
    }
}
