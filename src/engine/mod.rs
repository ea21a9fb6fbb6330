//! The completion pipeline: the one place that knows the order of the steps.
//!
//! ```text
//! decoded request -> prepare (provider, rendered messages, trace id)
//!                 -> provider call (whole answer, or stream: first delta read before commit)
//!                 -> CompletionResponse / stream of deltas
//! ```
//!
//! Handlers only translate HTTP to engine calls and back; the provider layer knows nothing of
//! HTTP clients of promptd. Later stages (cache, coalescing, log spool) slot in here.

mod prepare;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, SecondsFormat, Utc};
use tokio::sync::mpsc;

pub use prepare::Prepared;

use crate::api::{ApiError, CompletionRequest, CompletionResponse};
use crate::config::Config;
use crate::projects::ProjectStore;
use crate::providers::{tool_calls_json, Completion, PriceTable, Provider, ProviderError};

/// Deltas buffered between the upstream reader and a slow client.
const STREAM_BUFFER: usize = 64;

/// The current time as promptd writes timestamps (RFC 3339, UTC, microseconds).
pub fn now_iso() -> String {
    iso(Utc::now())
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// An error while building the engine.
#[derive(Debug, thiserror::Error)]
#[error("provider {name}: cannot build its HTTP client: {source}")]
pub struct EngineError {
    name: String,
    source: reqwest::Error,
}

/// Shared by every request: providers with their connection pools, prices, projects.
#[derive(Debug)]
pub struct Engine {
    providers: BTreeMap<String, Arc<Provider>>,
    prices: PriceTable,
    projects: ProjectStore,
}

/// One item of a completion stream.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamItem {
    Delta(String),
    /// The stream failed after it started; nothing follows.
    Error(String),
}

/// A started stream: the upstream accepted the call and its first delta has been read.
#[derive(Debug)]
pub struct CompletionStream {
    pub trace_id: String,
    pub items: mpsc::Receiver<StreamItem>,
}

impl Engine {
    /// Build providers (one pooled HTTP client each) and open the project store.
    pub fn new(config: &Config) -> Result<Engine, EngineError> {
        let providers = config
            .providers
            .iter()
            .map(|(name, p)| {
                Provider::new(name, p.clone())
                    .map(|p| (name.clone(), Arc::new(p)))
                    .map_err(|source| EngineError {
                        name: name.clone(),
                        source,
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(Engine {
            providers,
            prices: PriceTable::new(config.prices.clone()),
            projects: ProjectStore::open(&config.state_dir),
        })
    }

    pub fn projects(&self) -> &ProjectStore {
        &self.projects
    }

    fn prepare(&self, req: CompletionRequest) -> Result<Prepared, ApiError> {
        prepare::prepare(
            req,
            |name| self.providers.get(name).cloned(),
            || self.providers.keys().cloned().collect(),
        )
    }

    /// Answer a completion request with a whole answer.
    pub async fn complete(&self, req: CompletionRequest) -> Result<CompletionResponse, ApiError> {
        let started = Instant::now();
        let start_ts = Utc::now();
        let prepared = self.prepare(req)?;
        let completion = prepared
            .provider
            .complete(&prepared.chat, prepared.api_key.as_ref())
            .await
            .map_err(|e| provider_error(&prepared.provider, e))?;
        let response = self.response(&prepared, &completion, started, start_ts);
        tracing::debug!(trace_id = %response.inference_id, provider = %response.provider, latency = response.latency, "completion");
        Ok(response)
    }

    /// Start a streamed completion. Errors before the first delta are returned here (so they
    /// become HTTP errors); later ones arrive as [`StreamItem::Error`].
    pub async fn stream(
        self: &Arc<Self>,
        req: CompletionRequest,
    ) -> Result<CompletionStream, ApiError> {
        let started = Instant::now();
        let start_ts = Utc::now();
        let prepared = self.prepare(req)?;
        let provider = &prepared.provider;
        let mut upstream = provider
            .open_stream(&prepared.chat, prepared.api_key.as_ref())
            .await
            .map_err(|e| provider_error(provider, e))?;
        let first = upstream
            .next_delta()
            .await
            .map_err(|e| provider_error(provider, e))?;
        let (tx, items) = mpsc::channel(STREAM_BUFFER);
        let trace_id = prepared.trace_id.clone();
        let engine = Arc::clone(self);
        tokio::spawn(async move {
            let mut next = Ok(first);
            loop {
                match next {
                    Ok(Some(delta)) => {
                        if tx.send(StreamItem::Delta(delta)).await.is_err() {
                            tracing::debug!(trace_id = %prepared.trace_id, "client went away; upstream stream cancelled");
                            return;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        let message = provider_error(&prepared.provider, e).to_string();
                        tracing::warn!(trace_id = %prepared.trace_id, error = %message, "stream failed after it started");
                        let _ = tx.send(StreamItem::Error(message)).await;
                        return;
                    }
                }
                next = tokio::select! {
                    next = upstream.next_delta() => next,
                    _ = tx.closed() => {
                        tracing::debug!(trace_id = %prepared.trace_id, "client went away; upstream stream cancelled");
                        return;
                    }
                };
            }
            let completion = upstream.into_completion();
            if !completion.tool_calls.is_empty() {
                let _ = tx
                    .send(StreamItem::Delta(tool_calls_json(&completion.tool_calls)))
                    .await;
            }
            let response = engine.response(&prepared, &completion, started, start_ts);
            tracing::debug!(trace_id = %response.inference_id, provider = %response.provider, latency = response.latency, "streamed completion");
        });
        Ok(CompletionStream { trace_id, items })
    }

    fn response(
        &self,
        prepared: &Prepared,
        c: &Completion,
        started: Instant,
        start_ts: DateTime<Utc>,
    ) -> CompletionResponse {
        let model = c
            .model
            .clone()
            .unwrap_or_else(|| prepared.chat.model.clone());
        let (input, output) = (c.usage.input_tokens, c.usage.output_tokens);
        let price_model = if self.prices.price(&model).is_some() {
            &model
        } else {
            &prepared.chat.model
        };
        let latency = started.elapsed().as_secs_f64();
        CompletionResponse {
            inference_id: prepared.trace_id.clone(),
            content: c.content(),
            latency,
            input_tokens: input,
            output_tokens: output,
            total_tokens: input + output,
            cost: self.prices.cost(price_model, input, output),
            model,
            provider: prepared.provider.name().to_owned(),
            cache_hit: false,
            status: "success".to_owned(),
            start_timestamp: iso(start_ts),
            end_timestamp: now_iso(),
            error: None,
        }
    }
}

/// Map a provider failure to the request error the client sees.
fn provider_error(provider: &Provider, err: ProviderError) -> ApiError {
    let provider = provider.name().to_owned();
    match err {
        ProviderError::Status {
            status, message, ..
        } => ApiError::ProviderStatus {
            provider,
            status,
            message,
        },
        ProviderError::Unreachable(message) => ApiError::ProviderUnreachable { provider, message },
        ProviderError::Timeout(d) => ApiError::ProviderTimeout {
            provider,
            seconds: d.as_secs_f64(),
        },
        ProviderError::Protocol(message) => ApiError::ProviderProtocol { provider, message },
        ProviderError::Stream(message) => ApiError::ProviderStream { provider, message },
    }
}
