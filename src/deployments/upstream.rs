//! Deployments fetched from the upstream Parea API when an id is not in the prompts directory:
//! `POST {base_url}/deployed-prompt` with `x-api-key`, body `{"deployment_id": ID}`, answered
//! by a UseDeployedPromptResponse.
//!
//! A fetched deployment is cached in memory and in the store's `upstream/` entries for a TTL.
//! Within the TTL it is served without asking upstream; after it, upstream is asked again, and
//! when upstream cannot be reached (connection error, timeout, 408/429/5xx) the stale copy
//! keeps serving — also after a restart. A definite answer (e.g. 404) is passed on.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use serde_json::Value;

use super::deployment::{Deployment, DeploymentContent, DeploymentMessage, Source};
use super::registry::Registry;
use crate::call::{FunctionCallSpec, Message, ModelParams};
use crate::config::Secret;

/// How long a fetched deployment serves before upstream is asked again: a redeploy upstream
/// reaches every daemon within 5 minutes, while a busy app costs one fetch per id per 5 minutes.
pub const DEFAULT_UPSTREAM_TTL: Duration = Duration::from_secs(300);

/// A fetch is on a request's path: an upstream that does not answer in this long is treated as
/// unreachable, and a stored copy (if any) serves instead.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Where to fetch deployments that are not local.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub client: reqwest::Client,
    /// The API prefix, e.g. `https://<hosted>/api/parea/v1`, without a trailing slash.
    pub base_url: String,
    pub api_key: Secret,
    pub ttl: Duration,
}

impl Upstream {
    /// The upstream `[upstream]` describes, when it has both a `base_url` and a key.
    pub fn from_config(config: &crate::config::UpstreamConfig) -> Option<Upstream> {
        let (Some(base_url), Some(api_key)) = (&config.base_url, &config.api_key) else {
            return None;
        };
        // Not following redirects: reqwest would carry `x-api-key` to wherever they point.
        let client = reqwest::Client::builder()
            .user_agent(concat!("promptd/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .inspect_err(|e| {
                tracing::error!(error = %crate::error_chain(e), "cannot build the client for deployments upstream; not fetching");
            })
            .ok()?;
        Some(Upstream {
            client,
            base_url: base_url.clone(),
            api_key: api_key.clone(),
            ttl: super::DEFAULT_UPSTREAM_TTL,
        })
    }
}

/// A failed upstream fetch.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream {url} cannot be reached: {message}")]
    Unreachable { url: String, message: String },
    #[error("upstream {url} answered {status}: {message}")]
    Status {
        url: String,
        status: u16,
        message: String,
    },
    #[error("upstream {url} sent a deployment promptd cannot use: {message}")]
    Invalid { url: String, message: String },
}

impl UpstreamError {
    /// Whether upstream is down (so a stale copy may serve) rather than saying no.
    pub fn is_unavailable(&self) -> bool {
        match self {
            UpstreamError::Unreachable { .. } => true,
            UpstreamError::Status { status, .. } => {
                matches!(status, 408 | 429) || (500..600).contains(status)
            }
            UpstreamError::Invalid { .. } => false,
        }
    }
}

/// A deployment id that cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error("unknown deployment `{0}`: not in the prompts directory and no upstream configured")]
    Unknown(String),
    #[error("deployment `{id}`: {source}")]
    Upstream {
        id: String,
        #[source]
        source: UpstreamError,
    },
}

#[derive(Deserialize)]
struct WireResponse {
    deployment_id: Option<String>,
    version_number: Option<Value>,
    name: Option<String>,
    functions: Option<Vec<Value>>,
    function_call: Option<FunctionCallSpec>,
    prompt: Option<WirePrompt>,
    model: Option<String>,
    provider: Option<String>,
    model_params: Option<ModelParams>,
}

#[derive(Deserialize)]
struct WirePrompt {
    raw_messages: Option<Vec<Message>>,
}

/// How long an id upstream does not know (404) is answered as unknown without asking again:
/// short, so a deployment published upstream is found soon.
pub const UNKNOWN_TTL: Duration = Duration::from_secs(30);
/// Most unknown ids remembered at once (clients can make up any number).
const MAX_UNKNOWN_IDS: usize = 4096;

/// Fetch deployment `id` from `base_url` (the Parea API prefix) and build a [`Deployment`]
/// from the answer's raw (template) messages.
pub async fn fetch_upstream(
    client: &reqwest::Client,
    base_url: &str,
    api_key: &Secret,
    id: &str,
) -> Result<Deployment, UpstreamError> {
    let url = format!("{}/deployed-prompt", base_url.trim_end_matches('/'));
    // What errors and the deployment's source show: without credentials in the URL.
    let shown = crate::redact::urls(&url).into_owned();
    let unreachable = |e: reqwest::Error| UpstreamError::Unreachable {
        url: shown.clone(),
        message: crate::error_chain(&e),
    };
    let response = client
        .post(&url)
        .header("x-api-key", api_key.expose())
        .json(&serde_json::json!({ "deployment_id": id }))
        .timeout(FETCH_TIMEOUT)
        .send()
        .await
        .map_err(unreachable)?;
    let status = response.status();
    let body = response.bytes().await.map_err(unreachable)?;
    if !status.is_success() {
        return Err(UpstreamError::Status {
            url: shown,
            status: status.as_u16(),
            // A collector may quote the key it got: masked before the text is cut.
            message: crate::error_body_excerpt(
                api_key.mask_in(&String::from_utf8_lossy(&body)).as_bytes(),
            ),
        });
    }
    let invalid = |message: String| UpstreamError::Invalid {
        url: shown.clone(),
        message,
    };
    let wire: WireResponse =
        serde_json::from_slice(&body).map_err(|e| invalid(format!("not a deployment: {e}")))?;
    let deployment = from_wire(wire, id, &crate::redact::urls(base_url)).map_err(invalid)?;
    Ok(deployment)
}

fn from_wire(wire: WireResponse, id: &str, base_url: &str) -> Result<Deployment, String> {
    if let Some(answered) = wire.deployment_id.as_deref() {
        if answered != id {
            return Err(format!("asked for `{id}`, got `{answered}`"));
        }
    }
    let model = wire.model.filter(|m| !m.is_empty()).ok_or("no `model`")?;
    let provider = wire
        .provider
        .filter(|p| !p.is_empty())
        .ok_or("no `provider`")?;
    let raw = wire
        .prompt
        .and_then(|p| p.raw_messages)
        .filter(|m| !m.is_empty())
        .ok_or("no `prompt.raw_messages`")?;
    let messages = raw
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            DeploymentMessage::new(m.role, m.content.unwrap_or_default())
                .map_err(|e| format!("prompt.raw_messages[{i}]: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    // Functions may come as JSON objects or as JSON text.
    let functions = wire
        .functions
        .unwrap_or_default()
        .into_iter()
        .map(|f| match f {
            Value::String(text) => serde_json::from_str(&text).unwrap_or(Value::String(text)),
            other => other,
        })
        .collect();
    let version = match wire.version_number {
        Some(Value::Number(n)) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f.round() as u64))
            .unwrap_or(1),
        Some(Value::String(s)) => s.trim().parse().unwrap_or(1),
        _ => 1,
    };
    let content = DeploymentContent {
        id: id.to_owned(),
        name: wire.name.unwrap_or_else(|| id.to_owned()),
        provider,
        model,
        model_params: wire.model_params.unwrap_or_default(),
        messages,
        functions,
        function_call: wire.function_call,
    };
    Ok(content.into_deployment(
        version,
        Source::Upstream {
            base_url: base_url.to_owned(),
            fetched_at: SystemTime::now(),
        },
    ))
}

impl Registry {
    /// Deployment `id` from the prompts directory; else, with `upstream`, from the upstream
    /// cache (fresh), from upstream itself, or — upstream being unreachable — from a stale copy.
    pub async fn get_or_fetch(
        &self,
        id: &str,
        upstream: Option<&Upstream>,
    ) -> Result<Arc<Deployment>, LookupError> {
        if let Some(d) = self.get(id) {
            return Ok(d);
        }
        let Some(upstream) = upstream else {
            return Err(LookupError::Unknown(id.to_owned()));
        };
        let now = SystemTime::now();
        if self.known_unknown(id, now) {
            return Err(LookupError::Unknown(id.to_owned()));
        }
        let cached = self.cached_upstream(id);
        if let Some((d, expires_at)) = &cached {
            if *expires_at > now {
                return Ok(d.clone());
            }
        }
        // Boxed: see `Engine::complete_uncached` (a local deployment never pays for it).
        let fetch = fetch_upstream(&upstream.client, &upstream.base_url, &upstream.api_key, id);
        match Box::pin(fetch).await {
            Ok(d) => {
                let expires_at = now + upstream.ttl;
                if let Err(e) = self.store.put_upstream(&d, expires_at) {
                    tracing::warn!("{e}; upstream deployment `{id}` is not persisted");
                }
                let d = Arc::new(d);
                self.upstream_cache()
                    .insert(id.to_owned(), (d.clone(), expires_at));
                Ok(d)
            }
            Err(e) if e.is_unavailable() => match cached {
                Some((d, _)) => {
                    tracing::warn!("{e}; serving the stored copy of deployment `{id}`");
                    Ok(d)
                }
                None => Err(LookupError::Upstream {
                    id: id.to_owned(),
                    source: e,
                }),
            },
            Err(e) => {
                if let UpstreamError::Status { status: 404, .. } = e {
                    self.remember_unknown(id, now + UNKNOWN_TTL);
                }
                Err(LookupError::Upstream {
                    id: id.to_owned(),
                    source: e,
                })
            }
        }
    }

    /// Whether upstream said lately that it does not know `id`.
    fn known_unknown(&self, id: &str, now: SystemTime) -> bool {
        let unknown = self
            .unknown_upstream
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        unknown.get(id).is_some_and(|until| *until > now)
    }

    fn remember_unknown(&self, id: &str, until: SystemTime) {
        let mut unknown = self
            .unknown_upstream
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if unknown.len() >= MAX_UNKNOWN_IDS {
            let now = SystemTime::now();
            unknown.retain(|_, t| *t > now);
            if unknown.len() >= MAX_UNKNOWN_IDS {
                // Still full of live entries: forget them all rather than grow without bound.
                unknown.clear();
            }
        }
        unknown.insert(id.to_owned(), until);
    }

    fn upstream_cache(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, (Arc<Deployment>, SystemTime)>>
    {
        self.upstream.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The memory copy, else the stored copy (loaded into memory).
    fn cached_upstream(&self, id: &str) -> Option<(Arc<Deployment>, SystemTime)> {
        if let Some(hit) = self.upstream_cache().get(id) {
            return Some(hit.clone());
        }
        let stored = self.store.get_upstream(id)?;
        let entry = (Arc::new(stored.deployment), stored.expires_at);
        self.upstream_cache().insert(id.to_owned(), entry.clone());
        Some(entry)
    }
}
