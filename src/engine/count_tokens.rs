//! `count_tokens` of Anthropic's Messages door, forwarded to an Anthropic-kind provider: the
//! provider looked up, its key (or the client's, for a provider configured without one)
//! checked as for a completion, its failure masked of keys as every provider failure is. No
//! cache, no log record: counting is not a completion.

use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue};

use super::{provider_error, Engine};
use crate::call::ApiError;
use crate::config::Secret;
use crate::providers::ProviderKind;

impl Engine {
    /// The kind of provider `name`, if it is configured.
    pub fn provider_kind(&self, name: &str) -> Option<ProviderKind> {
        self.upstreams.load().providers.get(name).map(|p| p.kind())
    }

    /// Count the tokens of `body` (the client's, its model the provider's) at provider
    /// `provider`; the provider's answer as it sent it.
    pub async fn count_tokens(
        &self,
        provider: &str,
        body: Bytes,
        key: Option<Secret>,
        forward: &[(HeaderName, HeaderValue)],
    ) -> Result<Bytes, ApiError> {
        let upstreams = self.upstreams();
        let p = upstreams
            .providers
            .get(provider)
            .ok_or_else(|| ApiError::UnknownProvider {
                requested: provider.to_owned(),
                configured: upstreams.providers.keys().cloned().collect(),
            })?;
        if key.is_none() {
            if let Some(remedy) = p.missing_key_remedy() {
                return Err(ApiError::ProviderKeyMissing {
                    provider: provider.to_owned(),
                    remedy,
                });
            }
        }
        Box::pin(p.count_tokens(body, key.as_ref(), forward))
            .await
            .map_err(|e| provider_error(p, e, key.as_ref()))
    }
}
