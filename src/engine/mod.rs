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
mod complete;
mod context;
mod count_tokens;
mod embed;
mod flight;
mod log;
mod models;
mod order;
mod prepare;
mod private;
mod read;
mod stream;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use tokio::sync::mpsc;

pub use context::{Client, RequestCtx};
pub use embed::{EmbedCacheMode, EmbedCacheStatus, Embedded};
pub use prepare::Prepared;

use crate::cache::coalesce::{Flights, Joined, Subscription};
use crate::cache::{cache_key, Cache, CacheEntry, CacheKey, CacheStatus};
use crate::call::Call;
use crate::call::{ApiError, CompletionResponse};
use crate::config::{Config, Secret};
use crate::deployments::{
    Deployment, LookupError, Registry, Upstream as DeploymentUpstream, UpstreamError,
};
pub use log::CompletionRecords;

use crate::memory::MemoryBudget;
use crate::providers::{Piece, PriceTable, Provider, ProviderError};
use crate::tasks::Tasks;
use crate::telemetry::metrics::Metrics;

/// Deltas buffered between the upstream reader and a slow client.
const STREAM_BUFFER: usize = 64;

/// An error while building the engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("provider {name}: {source}")]
    Provider {
        name: String,
        source: crate::providers::client::ProviderSetupError,
    },
}

/// The pipeline: providers with their connection pools, prices, the cache and the deployments
/// it reads, the spool its log records are written to. It holds what a completion needs and hands none
/// of it out: the daemon owns the parts and gives the engine its share.
#[derive(Debug)]
pub struct Engine {
    upstreams: ArcSwap<Upstreams>,
    deployments: Arc<Registry>,
    /// Where deployments that are not local are fetched (`[upstream]`), if anywhere.
    deployment_upstream: ArcSwapOption<DeploymentUpstream>,
    /// Where completion records are written.
    logs: CompletionRecords,
    cache: Arc<Cache>,
    /// Where the pipeline's own tasks run (shared provider calls, streams being read): stopped
    /// by the daemon at shutdown.
    tasks: Tasks,
    /// Identical cacheable calls in flight, shared (see [`flight`]).
    flights: Flights<ApiError>,
    /// Providers' own model lists, as last asked ([`models`]).
    discovered: models::Discovered,
    /// `max_request_memory`: rendered messages reserve from it (bodies too, in the server).
    memory: MemoryBudget,
}

/// What the daemon gives the engine.
#[derive(Debug)]
pub struct EngineParts {
    pub cache: Arc<Cache>,
    pub deployments: Arc<Registry>,
    pub logs: CompletionRecords,
    pub tasks: Tasks,
}

/// A whole answer and what the cache did for it.
#[derive(Debug)]
pub struct Answer {
    /// Parea's response of this request.
    pub response: CompletionResponse,
    /// The answer as the cache keeps it (what an OpenAI response is rendered from).
    pub entry: Arc<CacheEntry>,
    pub cache: CacheStatus,
    pub key: Option<CacheKey>,
    /// How long this request waited for the provider (zero for a cache hit).
    pub provider_wait: Duration,
    /// What a call translated for a provider of another wire left out (hints only).
    pub dropped: Vec<String>,
}

/// One item of a completion stream.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamItem {
    /// A piece as it arrived (or replayed): its text, and an OpenAI-kind upstream's chunk.
    Piece(Piece),
    /// The stream ended cleanly: the whole answer (for what a client's format sends last).
    End(Arc<CacheEntry>),
    /// A cached answer, the whole stream: the door replays it in its own wire.
    Replay(Arc<CacheEntry>),
    /// The stream failed after it started; nothing follows.
    Error(String),
}

/// The items of a started stream, as its response body takes them: from a channel (a replay,
/// or a flight's pieces forwarded by a task), or read from a private upstream stream in the
/// body's own poll.
#[derive(Debug)]
pub struct StreamItems(Items);

#[derive(Debug)]
enum Items {
    Queued(mpsc::Receiver<StreamItem>),
    Private(Box<private::PrivateStream>),
}

impl StreamItems {
    /// The next item; `None` after the last.
    pub fn poll_next(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<StreamItem>> {
        match &mut self.0 {
            Items::Queued(items) => items.poll_recv(cx),
            Items::Private(stream) => stream.poll_next(cx),
        }
    }

    fn private(stream: private::PrivateStream) -> Self {
        StreamItems(Items::Private(Box::new(stream)))
    }
}

impl From<mpsc::Receiver<StreamItem>> for StreamItems {
    fn from(items: mpsc::Receiver<StreamItem>) -> Self {
        StreamItems(Items::Queued(items))
    }
}

/// A started stream: the answer is under way (its first piece read) or replayed from the cache.
#[derive(Debug)]
pub struct CompletionStream {
    pub trace_id: String,
    pub items: StreamItems,
    pub cache: CacheStatus,
    pub key: Option<CacheKey>,
    /// How long this request waited for the provider's first piece (zero for a replay).
    pub provider_wait: Duration,
    /// What a call translated for a provider of another wire left out (hints only).
    pub dropped: Vec<String>,
}

/// What a config reload can replace while requests run: the providers (with their keys and
/// connection pools) and the prices.
#[derive(Debug)]
pub struct Upstreams {
    pub providers: BTreeMap<String, Arc<Provider>>,
    pub prices: PriceTable,
    /// Largest rendered request, in bytes (`max_rendered`).
    pub max_rendered: u64,
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
            max_rendered: config.max_rendered,
        })
    }
}

impl Engine {
    /// Build the providers (one pooled HTTP client each) around the daemon's parts.
    pub fn new(
        config: &Config,
        metrics: &Metrics,
        parts: EngineParts,
    ) -> Result<Engine, EngineError> {
        let EngineParts {
            cache,
            deployments,
            logs,
            tasks,
        } = parts;
        Ok(Engine {
            upstreams: ArcSwap::from_pointee(Upstreams::build(config, metrics)?),
            deployments,
            deployment_upstream: ArcSwapOption::from(
                DeploymentUpstream::from_config(&config.upstream).map(Arc::new),
            ),
            logs,
            cache,
            tasks,
            flights: Flights::default(),
            discovered: Default::default(),
            memory: MemoryBudget::new(config.max_request_memory),
        })
    }

    /// Apply a reloaded config: new providers, keys and prices for the next requests (those in
    /// flight finish with the old ones), and where deployments are fetched.
    pub fn reconfigure(&self, config: &Config, metrics: &Metrics) -> Result<(), EngineError> {
        let upstreams = Upstreams::build(config, metrics)?;
        self.upstreams.store(Arc::new(upstreams));
        self.deployment_upstream
            .store(DeploymentUpstream::from_config(&config.upstream).map(Arc::new));
        Ok(())
    }

    /// The daemon-wide budget of bytes held for requests (`max_request_memory`), which request
    /// bodies are read against too.
    pub fn memory(&self) -> &MemoryBudget {
        &self.memory
    }

    /// The current providers and prices.
    pub fn upstreams(&self) -> Arc<Upstreams> {
        self.upstreams.load_full()
    }

    /// Identical calls in flight now (each shared by one or more requests).
    pub fn flights_in_progress(&self) -> u64 {
        self.flights.len() as u64
    }

    /// Deployment `id`: from the prompts directory, else (with `[upstream]`) fetched.
    pub async fn deployment(&self, id: &str) -> Result<Arc<Deployment>, ApiError> {
        let upstream = self.deployment_upstream.load_full();
        self.deployments
            .get_or_fetch(id, upstream.as_deref())
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

    async fn prepare(&self, req: Call, ctx: RequestCtx) -> Result<Prepared, ApiError> {
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
            upstreams.max_rendered,
            &self.memory,
            ctx,
        )
    }

    fn cache_key_of(&self, prepared: &Prepared) -> Option<CacheKey> {
        (self.cache.config().enabled && prepared.cache)
            .then(|| cache_key(prepared.provider.name(), &prepared.chat))
    }

    /// Join (or lead) the flight of `key` (see [`flight_key`]); whether this request leads it.
    fn join_flight(
        self: &Arc<Self>,
        key: CacheKey,
        prepared: &Prepared,
        stream: bool,
        stale: Option<CacheEntry>,
    ) -> (Subscription<ApiError>, bool) {
        match self
            .flights
            .join(flight_key(key, prepared.api_key.as_ref()))
        {
            Joined::Leader(leader) => {
                let sub = leader.flight().subscribe();
                self.tasks.spawn(flight::drive(
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
}

/// Map a provider failure to the request error the client sees: the one place a provider's
/// failure becomes text for anyone. Every key the call could have carried is masked in the
/// upstream's text (the provider's own and the request's `provider_api_key`): OpenAI-compatible
/// servers echo the key they got ("Incorrect API key provided: sk-..."); and credentials in a
/// `base_url` are masked ([`crate::redact`]). The message goes to the client, the log record
/// and the daemon's log: log the result, never the [`ProviderError`].
fn provider_error(
    provider: &Provider,
    err: ProviderError,
    request_key: Option<&Secret>,
) -> ApiError {
    let mask = |text: String| {
        let text =
            crate::config::mask_keys(text, provider.api_key().into_iter().chain(request_key));
        crate::redact::urls(&text).into_owned()
    };
    let err = match err {
        ProviderError::Status {
            status,
            mut error,
            retry_after,
        } => {
            // Every text the upstream wrote: it may quote a key anywhere.
            error.message = mask(std::mem::take(&mut error.message));
            for word in [&mut error.code, &mut error.param, &mut error.provider_type] {
                *word = word.take().map(&mask);
            }
            ProviderError::Status {
                status,
                error,
                retry_after,
            }
        }
        ProviderError::Unreachable(message) => ProviderError::Unreachable(mask(message)),
        ProviderError::Protocol(message) => ProviderError::Protocol(mask(message)),
        ProviderError::Stream(message) => ProviderError::Stream(mask(message)),
        other @ (ProviderError::Refused
        | ProviderError::Timeout(_)
        | ProviderError::Busy { .. }) => other,
    };
    let base_url = crate::redact::urls(provider.base_url()).into_owned();
    let provider = provider.name().to_owned();
    match err {
        ProviderError::Status { status, error, .. } => ApiError::ProviderStatus {
            provider,
            status,
            error,
        },
        ProviderError::Refused => ApiError::ProviderRefused { provider, base_url },
        ProviderError::Unreachable(message) => ApiError::ProviderUnreachable {
            provider,
            base_url,
            message,
        },
        ProviderError::Busy { limit, waited } => ApiError::ProviderBusy {
            provider,
            limit,
            waited_seconds: waited.as_secs_f64(),
        },
        ProviderError::Timeout(d) => ApiError::ProviderTimeout {
            provider,
            seconds: d.as_secs_f64(),
        },
        ProviderError::Protocol(message) => ApiError::ProviderProtocol { provider, message },
        ProviderError::Stream(message) => ApiError::ProviderStream { provider, message },
    }
}

/// The flight a request joins. Requests that bring their own `provider_api_key` share a
/// provider call only with requests bringing the same key: the call is made with the leader's
/// key, and a failure caused by it (401, 429 on that account) must not answer someone else. The
/// cache key itself leaves the key out, so the answer is still stored for everyone.
fn flight_key(key: CacheKey, api_key: Option<&Secret>) -> CacheKey {
    let Some(api_key) = api_key else {
        return key;
    };
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"promptd flight with a request key\0");
    hasher.update(&key.0);
    hasher.update(api_key.expose().as_bytes());
    CacheKey(*hasher.finalize().as_bytes())
}
