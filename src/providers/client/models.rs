//! `GET {base_url}/models` for OpenAI-kind providers: the ids a provider says it serves, for
//! `GET /v1/models` when its config table lists none. One short attempt, no retries: a model
//! list is a convenience, and the caller answers without it when it fails.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Method;
use serde_json::Value;

use super::Provider;
use crate::providers::{ProviderError, ProviderKind};

/// Longest wait for a provider's model list.
const LIST_TIMEOUT: Duration = Duration::from_secs(3);

impl Provider {
    /// The ids of the provider's own `GET /models` (`{"data": [{"id": ...}]}`, as OpenAI and
    /// OpenAI-compatible servers answer); an error for another kind or answer.
    pub async fn list_models(&self) -> Result<Vec<String>, ProviderError> {
        if self.config.kind != ProviderKind::OpenAi {
            return Err(ProviderError::Protocol(
                "only OpenAI-kind providers list their models".into(),
            ));
        }
        let url = format!("{}/models", self.config.base_url);
        let uri = super::parse_uri(&url).map_err(ProviderError::Protocol)?;
        let request = self.request(
            Method::GET,
            &uri,
            self.headers.clone(),
            Full::new(Bytes::new()),
        );
        let response = tokio::time::timeout(LIST_TIMEOUT, request)
            .await
            .map_err(|_| ProviderError::Timeout(LIST_TIMEOUT))??;
        if !response.status().is_success() {
            return Err(ProviderError::Protocol(format!(
                "{url}: {}",
                response.status()
            )));
        }
        let limit = self.config.max_response_bytes;
        let body = tokio::time::timeout(LIST_TIMEOUT, super::read_body(response, limit))
            .await
            .map_err(|_| ProviderError::Timeout(LIST_TIMEOUT))?
            .map_err(|e| ProviderError::Protocol(format!("{url}: {e}")))?;
        let body: Value = serde_json::from_slice(&body)
            .map_err(|e| ProviderError::Protocol(format!("{url}: {e}")))?;
        let ids = body
            .get("data")
            .and_then(Value::as_array)
            .ok_or_else(|| ProviderError::Protocol(format!("{url}: no `data` list")))?
            .iter()
            .filter_map(|m| m.get("id").and_then(Value::as_str).map(str::to_owned))
            .collect();
        Ok(ids)
    }

    /// Whether its config table lists its models (then its own list is not asked for).
    pub fn lists_models(&self) -> bool {
        !self.config.models.is_empty()
    }
}
