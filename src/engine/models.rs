//! The models OpenAI-kind providers say they serve (`GET {base_url}/models`), for
//! `GET /v1/models` when a provider's config table lists none: asked all at once, kept for
//! [`MODELS_TTL`], a failure logged at debug and answered as an empty list.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::Engine;

/// How long a provider's own model list is reused before it is asked again.
pub const MODELS_TTL: Duration = Duration::from_secs(300);

/// The last lists, by provider name, with when each was fetched.
pub(super) type Discovered = parking_lot::Mutex<BTreeMap<String, (Instant, Vec<String>)>>;

impl Engine {
    /// Each OpenAI-kind provider's own model ids, for those whose config lists none and that
    /// can be called (a key, or keyless).
    pub async fn discovered_models(&self) -> BTreeMap<String, Vec<String>> {
        let upstreams = self.upstreams();
        let now = Instant::now();
        let mut known = BTreeMap::new();
        let mut ask = Vec::new();
        {
            let discovered = self.discovered.lock();
            for (name, provider) in &upstreams.providers {
                if provider.lists_models() || provider.missing_key_remedy().is_some() {
                    continue;
                }
                match discovered.get(name) {
                    Some((at, ids)) if now.duration_since(*at) < MODELS_TTL => {
                        known.insert(name.clone(), ids.clone());
                    }
                    _ => ask.push((name.clone(), std::sync::Arc::clone(provider))),
                }
            }
        }
        let asked = futures_util::future::join_all(ask.into_iter().map(|(name, p)| async move {
            let ids = p.list_models().await.unwrap_or_else(|e| {
                let text = crate::config::mask_keys(e.to_string(), p.api_key());
                let text = crate::redact::urls(&text);
                tracing::debug!(provider = %name, error = %text, "no model list from the provider");
                Vec::new()
            });
            (name, ids)
        }))
        .await;
        let mut discovered = self.discovered.lock();
        for (name, ids) in asked {
            discovered.insert(name.clone(), (now, ids.clone()));
            known.insert(name, ids);
        }
        known
    }
}
