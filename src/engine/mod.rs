//! The completion pipeline: the one place that knows the order of the steps.
//!
//! ```text
//! decoded request -> prepare (provider, rendered messages, trace id)
//!   cache: false / disabled -> provider call (whole or stream)                    [bypass]
//!   cache key -> fresh entry? -> answer / replay its deltas                        [hit]
//!             -> join the identical call in flight, or lead a new one (flight.rs)  [miss]
//!                -> provider call -> entry stored after a clean end -> answer
//!                -> provider down + expired entry -> answer from it               [stale]
//! ```
//!
//! Streams read their first delta before the response is committed, so early failures are
//! real HTTP errors. Handlers only translate HTTP to engine calls and back; the provider layer
//! knows nothing of the cache, the cache nothing of HTTP.

mod answer;
mod flight;
mod prepare;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use chrono::{DateTime, SecondsFormat, Utc};
use tokio::sync::mpsc;

pub use prepare::Prepared;

use crate::api::{ApiError, CompletionRequest, CompletionResponse};
use crate::cache::coalesce::{Event, Joined, Outcome, Subscription};
use crate::cache::{cache_key, Cache, CacheEntry, CacheKey, CacheStatus, Lookup};
use crate::config::Config;
use crate::deployments::{
    Deployment, LookupError, Registry, Upstream as DeploymentUpstream, UpstreamError,
};
use crate::projects::ProjectStore;
use crate::providers::{tool_calls_json, PriceTable, Provider, ProviderError};
use crate::store::{Store, StoreError};
use crate::telemetry::metrics::{Metrics, StatsSource};
use answer::{entry_from_completion, response_from_entry};

/// Deltas buffered between the upstream reader and a slow client.
const STREAM_BUFFER: usize = 64;
/// How often hit counts are written back and the cache is trimmed to `max_bytes`.
const CACHE_MAINTENANCE_EVERY: Duration = Duration::from_secs(10);

/// The current time as promptd writes timestamps (RFC 3339, UTC, microseconds).
pub fn now_iso() -> String {
    iso(Utc::now())
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// An error while building the engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("provider {name}: cannot build its HTTP client: {source}")]
    Provider {
        name: String,
        source: reqwest::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Shared by every request: providers with their connection pools, prices, the cache.
#[derive(Debug)]
pub struct Engine {
    upstreams: ArcSwap<Upstreams>,
    deployments: Arc<Registry>,
    /// Where deployments that are not local are fetched (`[upstream]`), if anywhere.
    deployment_upstream: Option<DeploymentUpstream>,
    projects: ProjectStore,
    store: Store,
    cache: Cache,
}

/// A whole answer and what the cache did for it.
#[derive(Debug)]
pub struct Answer {
    pub response: CompletionResponse,
    pub cache: CacheStatus,
    pub key: Option<CacheKey>,
}

/// One item of a completion stream.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamItem {
    Delta(String),
    /// The stream failed after it started; nothing follows.
    Error(String),
}

/// A started stream: the answer is under way (its first delta read) or replayed from the cache.
#[derive(Debug)]
pub struct CompletionStream {
    pub trace_id: String,
    pub items: mpsc::Receiver<StreamItem>,
    pub cache: CacheStatus,
    pub key: Option<CacheKey>,
}

/// What a config reload can replace while requests run: the providers (with their keys and
/// connection pools) and the prices.
#[derive(Debug)]
pub struct Upstreams {
    pub providers: BTreeMap<String, Arc<Provider>>,
    pub prices: PriceTable,
}

impl Upstreams {
    fn build(config: &Config, metrics: &Metrics) -> Result<Upstreams, EngineError> {
        let providers = config
            .providers
            .iter()
            .map(|(name, p)| {
                Provider::new(name, p.clone(), metrics.provider(name))
                    .map(|p| (name.clone(), Arc::new(p)))
                    .map_err(|source| EngineError::Provider {
                        name: name.clone(),
                        source,
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(Upstreams {
            providers,
            prices: PriceTable::new(config.prices.clone()),
        })
    }
}

impl Engine {
    /// Build providers (one pooled HTTP client each), open the store, the cache and projects.
    pub fn new(config: &Config, metrics: &Metrics) -> Result<Engine, EngineError> {
        let upstreams = Upstreams::build(config, metrics)?;
        let store = Store::open(&config.state_dir)?;
        let cache = Cache::open(store.cache_tree()?, config.cache.clone());
        let deployments = Arc::new(Registry::open(
            &config.prompts_dir,
            config.provider_names(),
            store.deployments_tree()?,
        ));
        Ok(Engine {
            upstreams: ArcSwap::from_pointee(upstreams),
            deployments,
            deployment_upstream: None,
            projects: ProjectStore::open(&config.state_dir),
            store,
            cache,
        })
    }

    /// Apply a reloaded config: new providers, keys and prices for the next requests (those in
    /// flight finish with the old ones), new cache settings.
    pub fn reconfigure(&self, config: &Config, metrics: &Metrics) -> Result<(), EngineError> {
        let upstreams = Upstreams::build(config, metrics)?;
        self.upstreams.store(Arc::new(upstreams));
        self.cache.set_config(config.cache.clone());
        self.deployments.set_providers(config.provider_names());
        Ok(())
    }

    /// The current providers and prices.
    pub fn upstreams(&self) -> Arc<Upstreams> {
        self.upstreams.load_full()
    }

    pub fn projects(&self) -> &ProjectStore {
        &self.projects
    }

    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// Background upkeep until `shutdown` resolves: cache hit write-back and eviction.
    pub async fn maintain(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(CACHE_MAINTENANCE_EVERY);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let engine = Arc::clone(&self);
                    let _ = tokio::task::spawn_blocking(move || engine.cache.maintain()).await;
                }
                () = &mut shutdown => return,
            }
        }
    }

    /// Clean shutdown: write hit counts back and flush the database.
    pub fn close(&self) {
        self.cache.maintain();
        self.store.flush();
    }

    /// The deployed prompts.
    pub fn deployments(&self) -> &Arc<Registry> {
        &self.deployments
    }

    /// Deployment `id`: from the prompts directory, else (with `[upstream]`) fetched.
    pub async fn deployment(&self, id: &str) -> Result<Arc<Deployment>, ApiError> {
        self.deployments
            .get_or_fetch(id, self.deployment_upstream.as_ref())
            .await
            .map_err(|e| match e {
                LookupError::Unknown(id) => ApiError::UnknownDeployment(id),
                LookupError::Upstream {
                    id,
                    source: UpstreamError::Status { status: 404, .. },
                } => ApiError::UnknownDeployment(id),
                LookupError::Upstream { id, source } => ApiError::DeploymentUnavailable {
                    id,
                    message: source.to_string(),
                },
            })
    }

    async fn prepare(&self, req: CompletionRequest) -> Result<Prepared, ApiError> {
        let deployment = match req.deployment_id.as_deref() {
            Some(id) => Some(self.deployment(id).await?),
            None => None,
        };
        let upstreams = self.upstreams.load();
        prepare::prepare(
            req,
            deployment.as_deref(),
            |name| upstreams.providers.get(name).cloned(),
            || upstreams.providers.keys().cloned().collect(),
        )
    }

    fn cache_key_of(&self, prepared: &Prepared) -> Option<CacheKey> {
        (self.cache.config().enabled && prepared.cache)
            .then(|| cache_key(prepared.provider.name(), &prepared.chat))
    }

    /// Join (or lead) the flight of `key`; whether this request leads it.
    fn join_flight(
        self: &Arc<Self>,
        key: CacheKey,
        prepared: &Prepared,
        stream: bool,
        stale: Option<CacheEntry>,
    ) -> (Subscription, bool) {
        match self.cache.flights().join(key) {
            Joined::Leader(leader) => {
                let sub = leader.flight().subscribe();
                tokio::spawn(flight::drive(
                    Arc::clone(self),
                    leader,
                    prepared.clone(),
                    key,
                    stream,
                    stale,
                ));
                (sub, true)
            }
            Joined::Follower(flight) => {
                self.cache.record_coalesced();
                (flight.subscribe(), false)
            }
        }
    }

    /// Answer a completion request with a whole answer.
    pub async fn complete(self: &Arc<Self>, req: CompletionRequest) -> Result<Answer, ApiError> {
        let started = Instant::now();
        let start_ts = Utc::now();
        let prepared = self.prepare(req).await?;
        let Some(key) = self.cache_key_of(&prepared) else {
            self.cache.record(CacheStatus::Bypass);
            let completion = prepared
                .provider
                .complete(&prepared.chat, prepared.api_key.as_ref())
                .await
                .map_err(|e| provider_error(&prepared.provider, e))?;
            let entry = entry_from_completion(
                &prepared,
                completion,
                None,
                &self.upstreams.load().prices,
                (0, 0),
            );
            return Ok(Answer {
                response: response_from_entry(&prepared, &entry, started, start_ts, false),
                cache: CacheStatus::Bypass,
                key: None,
            });
        };
        let stale = match self.cache.lookup(&key) {
            Lookup::Fresh(entry) => {
                self.cache.record_hit(&key);
                return Ok(Answer {
                    response: response_from_entry(&prepared, &entry, started, start_ts, true),
                    cache: CacheStatus::Hit,
                    key: Some(key),
                });
            }
            Lookup::Expired(entry) => Some(entry),
            Lookup::Miss => None,
        };
        let (mut sub, leader) = self.join_flight(key, &prepared, false, stale);
        let (entry, status) = match sub.outcome().await {
            Outcome::Done(entry) if leader => (entry, CacheStatus::Miss),
            Outcome::Done(entry) => (entry, CacheStatus::Hit),
            Outcome::Stale(entry) => (entry, CacheStatus::Stale),
            Outcome::Failed(e) => return Err(e),
        };
        self.cache.record(status);
        Ok(Answer {
            response: response_from_entry(
                &prepared,
                &entry,
                started,
                start_ts,
                status != CacheStatus::Miss,
            ),
            cache: status,
            key: Some(key),
        })
    }

    /// Start a streamed completion. Errors before the first delta are returned here (so they
    /// become HTTP errors); later ones arrive as [`StreamItem::Error`].
    pub async fn stream(
        self: &Arc<Self>,
        req: CompletionRequest,
    ) -> Result<CompletionStream, ApiError> {
        let prepared = self.prepare(req).await?;
        let trace_id = prepared.trace_id.clone();
        let Some(key) = self.cache_key_of(&prepared) else {
            self.cache.record(CacheStatus::Bypass);
            let items = self.stream_uncached(prepared).await?;
            return Ok(CompletionStream {
                trace_id,
                items,
                cache: CacheStatus::Bypass,
                key: None,
            });
        };
        let stale = match self.cache.lookup(&key) {
            Lookup::Fresh(entry) => {
                self.cache.record_hit(&key);
                return Ok(CompletionStream {
                    trace_id,
                    items: replay(&entry.deltas),
                    cache: CacheStatus::Hit,
                    key: Some(key),
                });
            }
            Lookup::Expired(entry) => Some(entry),
            Lookup::Miss => None,
        };
        let (mut sub, leader) = self.join_flight(key, &prepared, true, stale);
        let fresh = if leader {
            CacheStatus::Miss
        } else {
            CacheStatus::Hit
        };
        let (items, status) = match sub.next().await {
            Event::Delta(first) => (forward(first, sub), fresh),
            Event::Outcome(Outcome::Done(entry)) => (replay(&entry.deltas), fresh),
            Event::Outcome(Outcome::Stale(entry)) => (replay(&entry.deltas), CacheStatus::Stale),
            Event::Outcome(Outcome::Failed(e)) => return Err(e),
        };
        self.cache.record(status);
        Ok(CompletionStream {
            trace_id,
            items,
            cache: status,
            key: Some(key),
        })
    }

    /// A stream that is not shared or cached: the upstream call is cancelled when the client
    /// goes away.
    async fn stream_uncached(
        &self,
        prepared: Prepared,
    ) -> Result<mpsc::Receiver<StreamItem>, ApiError> {
        let provider = Arc::clone(&prepared.provider);
        let mut upstream = provider
            .open_stream(&prepared.chat, prepared.api_key.as_ref())
            .await
            .map_err(|e| provider_error(&provider, e))?;
        let first = upstream
            .next_delta()
            .await
            .map_err(|e| provider_error(&provider, e))?;
        let (tx, items) = mpsc::channel(STREAM_BUFFER);
        tokio::spawn(async move {
            let mut next = Ok(first);
            loop {
                match next {
                    Ok(Some(delta)) => {
                        if tx.send(StreamItem::Delta(delta)).await.is_err() {
                            break;
                        }
                    }
                    Ok(None) => {
                        let completion = upstream.into_completion();
                        if !completion.tool_calls.is_empty() {
                            let _ = tx
                                .send(StreamItem::Delta(tool_calls_json(&completion.tool_calls)))
                                .await;
                        }
                        return;
                    }
                    Err(e) => {
                        let message = provider_error(&provider, e).to_string();
                        tracing::warn!(trace_id = %prepared.trace_id, error = %message, "stream failed after it started");
                        let _ = tx.send(StreamItem::Error(message)).await;
                        return;
                    }
                }
                next = tokio::select! {
                    next = upstream.next_delta() => next,
                    _ = tx.closed() => break,
                };
            }
            tracing::debug!(trace_id = %prepared.trace_id, "client went away; upstream stream cancelled");
        });
        Ok(items)
    }
}

impl StatsSource for Engine {
    fn cache_stats(&self) -> crate::cache::CacheStats {
        self.cache.stats()
    }

    fn flights_in_progress(&self) -> u64 {
        self.cache.flights().len() as u64
    }

    fn deployments(&self) -> crate::deployments::DeploymentCounts {
        self.deployments.status().counts()
    }
}

/// A channel already holding `deltas` (a cached answer's replay).
fn replay(deltas: &[String]) -> mpsc::Receiver<StreamItem> {
    let (tx, rx) = mpsc::channel(deltas.len().max(1));
    for delta in deltas {
        // Capacity is exactly the number of deltas.
        let _ = tx.try_send(StreamItem::Delta(delta.clone()));
    }
    rx
}

/// Forward a flight's deltas to one client. When the client leaves, the flight goes on.
fn forward(first: String, mut sub: Subscription) -> mpsc::Receiver<StreamItem> {
    let (tx, rx) = mpsc::channel(STREAM_BUFFER);
    tokio::spawn(async move {
        let mut item = StreamItem::Delta(first);
        loop {
            if tx.send(item).await.is_err() {
                return;
            }
            item = match sub.next().await {
                Event::Delta(delta) => StreamItem::Delta(delta),
                Event::Outcome(Outcome::Failed(e)) => StreamItem::Error(e.to_string()),
                Event::Outcome(Outcome::Done(_) | Outcome::Stale(_)) => return,
            };
        }
    });
    rx
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
