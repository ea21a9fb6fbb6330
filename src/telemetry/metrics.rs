//! Prometheus metrics (`GET /metrics`, OpenMetrics text). Labels are low-cardinality only:
//! a fixed route name, a status code, a configured provider name, an error kind.
//!
//! Request and provider counters are recorded as things happen; the cache (and other
//! components that keep their own counters) are read at scrape time by a collector, so there is
//! one source of truth for each number.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use crate::cache::CacheStats;
use crate::deployments::DeploymentCounts;
use crate::logs::{FlusherStats, SpoolStats};
use crate::providers::metrics::{ProviderErrorLabels, ProviderMetrics};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: &'static str,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OverheadLabels {
    pub route: &'static str,
    pub cache: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderLabels {
    pub provider: String,
}

/// Snapshots read at scrape time.
pub trait StatsSource: std::fmt::Debug + Send + Sync + 'static {
    fn cache_stats(&self) -> CacheStats;
    fn flights_in_progress(&self) -> u64;
    fn deployments(&self) -> DeploymentCounts;
    fn spool(&self) -> Option<SpoolStats> {
        None
    }
    fn flusher(&self) -> Option<FlusherStats> {
        None
    }
    /// What the Responses door keeps for `previous_response_id`.
    fn kept_responses(&self) -> Option<crate::response_store::Totals> {
        None
    }
}

/// Every metric of the daemon.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    overhead: Family<OverheadLabels, Histogram>,
    /// The metrics of each request outcome seen, taken from the three families above once.
    outcomes: parking_lot::RwLock<HashMap<Outcome, OutcomeMetrics, foldhash::fast::RandomState>>,
    provider_calls: Family<ProviderLabels, Counter>,
    provider_retries: Family<ProviderLabels, Counter>,
    provider_errors: Family<ProviderErrorLabels, Counter>,
}

/// A request's outcome as the request metrics label it: route, status, cache outcome (a
/// completion's). Finite: fixed route names, HTTP statuses, cache outcomes.
type Outcome = (&'static str, u16, Option<&'static str>);

/// The metrics one outcome updates (each a handle on its family's child: clones share it). A
/// request finds them with one read lock and one fast hash, not with a lock and a SipHash of
/// its labels in each of three families.
#[derive(Debug)]
struct OutcomeMetrics {
    requests: Counter,
    latency: Histogram,
    overhead: Option<Histogram>,
}

/// Latency buckets: 50 µs to ~100 s.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.00005, 2.5, 16))
}

/// Overhead buckets: 5 µs to ~160 ms (promptd's own work is microseconds; a cache hit is
/// answered in tens of them).
fn overhead_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000005, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("promptd");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let overhead = Family::<OverheadLabels, Histogram>::new_with_constructor(
            overhead_histogram as fn() -> Histogram,
        );
        let provider_calls = Family::<ProviderLabels, Counter>::default();
        let provider_retries = Family::<ProviderLabels, Counter>::default();
        let provider_errors = Family::<ProviderErrorLabels, Counter>::default();
        registry.register(
            "requests",
            "HTTP requests answered, by route and status",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time to the response headers (a stream's first event), by route",
            latency.clone(),
        );
        registry.register(
            "overhead_seconds",
            "promptd's own time per completion until its response headers (a stream's first \
             event): the request's time less the time spent waiting for the provider, by route \
             and cache outcome",
            overhead.clone(),
        );
        registry.register(
            "provider_calls",
            "Calls to a model provider",
            provider_calls.clone(),
        );
        registry.register(
            "provider_retries",
            "Retries of provider calls (429, 5xx, connection errors) before an answer started",
            provider_retries.clone(),
        );
        registry.register(
            "provider_errors",
            "Failed provider calls, by kind",
            provider_errors.clone(),
        );
        registry.register(
            "build",
            "Build information",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        Metrics {
            registry,
            requests,
            latency,
            overhead,
            provider_calls,
            provider_retries,
            provider_errors,
            outcomes: Default::default(),
        }
    }

    /// The counters of provider `name`.
    pub fn provider(&self, name: &str) -> ProviderMetrics {
        let labels = ProviderLabels {
            provider: name.to_owned(),
        };
        ProviderMetrics::new(
            name,
            self.provider_calls.get_or_create(&labels).clone(),
            self.provider_retries.get_or_create(&labels).clone(),
            self.provider_errors.clone(),
        )
    }

    /// Read `source` at every scrape.
    pub fn register_source(&mut self, source: Arc<dyn StatsSource>) {
        self.registry
            .register_collector(Box::new(SourceCollector(source)));
    }

    /// Count one answered request; for a completion, `served` is its cache outcome and the
    /// time it waited for the provider, the rest of `elapsed` being promptd's own overhead.
    pub fn request(
        &self,
        route: &'static str,
        status: u16,
        elapsed: Duration,
        served: Option<(&'static str, Duration)>,
    ) {
        let outcome = (route, status, served.map(|(cache, _)| cache));
        let record = |m: &OutcomeMetrics| {
            m.requests.inc();
            m.latency.observe(elapsed.as_secs_f64());
            if let (Some(overhead), Some((_, provider_wait))) = (&m.overhead, served) {
                overhead.observe(elapsed.saturating_sub(provider_wait).as_secs_f64());
            }
        };
        if let Some(metrics) = self.outcomes.read().get(&outcome) {
            return record(metrics);
        }
        let mut outcomes = self.outcomes.write();
        let metrics = outcomes.entry(outcome).or_insert_with(|| OutcomeMetrics {
            requests: self
                .requests
                .get_or_create(&RequestLabels { route, status })
                .clone(),
            latency: self.latency.get_or_create(&RouteLabels { route }).clone(),
            overhead: outcome.2.map(|cache| {
                self.overhead
                    .get_or_create(&OverheadLabels { route, cache })
                    .clone()
            }),
        });
        record(metrics);
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        out
    }
}

#[derive(Debug)]
struct SourceCollector(Arc<dyn StatsSource>);

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: i64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn as_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Collector for SourceCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let c = self.0.cache_stats();
        let e = &mut encoder;
        gauge(
            e,
            "cache_entries",
            "Entries in the completion cache",
            as_i64(c.entries),
        )?;
        gauge(
            e,
            "cache_bytes",
            "Bytes of the completion cache entries",
            as_i64(c.bytes),
        )?;
        gauge(
            e,
            "cache_max_bytes",
            "Configured bound of the cache",
            as_i64(c.max_bytes),
        )?;
        counter(
            e,
            "cache_hits",
            "Answers from the cache (including coalesced requests)",
            c.hits,
        )?;
        counter(
            e,
            "cache_misses",
            "Cacheable requests that called the provider",
            c.misses,
        )?;
        counter(
            e,
            "cache_stale",
            "Answers from expired entries while the provider failed",
            c.stale,
        )?;
        counter(
            e,
            "cache_bypass",
            "Requests with cache: false or a disabled cache",
            c.bypass,
        )?;
        counter(
            e,
            "cache_coalesced",
            "Requests that joined an identical call in flight",
            c.coalesced,
        )?;
        counter(
            e,
            "cache_evictions",
            "Entries evicted to stay under max_bytes",
            c.evictions,
        )?;
        counter(
            e,
            "cache_corrupt",
            "Stored values that did not decode (dropped)",
            c.corrupt,
        )?;
        counter(
            e,
            "cache_write_errors",
            "Failed cache writes",
            c.write_errors,
        )?;
        counter(
            e,
            "cache_read_errors",
            "Cache lookups sled could not answer (answered as misses)",
            c.read_errors,
        )?;
        counter(
            e,
            "cache_too_large",
            "Answers not cached because they were over cache.max_entry_bytes",
            c.too_large,
        )?;
        counter(
            e,
            "cache_db_damaged",
            "Damaged cache databases moved aside at start (the cache started empty)",
            c.db_damaged,
        )?;
        if let Some(kept) = self.0.kept_responses() {
            gauge(
                e,
                "responses_kept",
                "Responses kept for previous_response_id",
                as_i64(kept.count),
            )?;
            gauge(
                e,
                "responses_kept_bytes",
                "Bytes of the kept responses",
                as_i64(kept.bytes),
            )?;
        }
        if let Some(s) = self.0.spool() {
            gauge(
                e,
                "spool_waiting_records",
                "Log records on disk not yet acknowledged upstream",
                as_i64(s.waiting_records),
            )?;
            gauge(
                e,
                "spool_bytes",
                "Bytes of log spool segments on disk",
                as_i64(s.bytes_on_disk),
            )?;
            gauge(
                e,
                "spool_oldest_waiting_seconds",
                "Age of the oldest waiting log record",
                s.oldest_waiting_age.map_or(0, |a| as_i64(a.as_secs())),
            )?;
            counter(
                e,
                "spool_appended",
                "Log records accepted into the spool",
                s.appended,
            )?;
            counter(
                e,
                "spool_dropped",
                "Log records dropped: spool full or record too large",
                s.dropped_full + s.dropped_too_large,
            )?;
            counter(
                e,
                "spool_corrupt",
                "Damaged log records skipped",
                s.corrupt_skipped,
            )?;
            counter(
                e,
                "spool_write_errors",
                "Failed group commits",
                s.write_errors,
            )?;
        }
        if let Some(f) = self.0.flusher() {
            counter(e, "logs_sent", "Log entries the collector accepted", f.sent)?;
            counter(
                e,
                "logs_rejected",
                "Log entries the collector refused for good",
                f.rejected,
            )?;
            counter(
                e,
                "logs_retries",
                "Retried deliveries of log entries",
                f.retries,
            )?;
            counter(
                e,
                "logs_set_aside",
                "Log entries whose send task kept panicking, unacknowledged until a restart",
                f.set_aside,
            )?;
        }
        let d = self.0.deployments();
        gauge(
            e,
            "deployments_serving",
            "Deployed prompts answering requests",
            as_i64(d.serving),
        )?;
        gauge(
            e,
            "deployments_failed",
            "Prompt files refused at the last reload",
            as_i64(d.failed),
        )?;
        gauge(
            e,
            "deployments_from_store",
            "Deployments served from the store (prompts directory unreadable)",
            as_i64(d.from_store),
        )?;
        gauge(
            e,
            "flights_in_progress",
            "Provider calls shared by identical requests, in flight",
            as_i64(self.0.flights_in_progress()),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Fixed;

    impl StatsSource for Fixed {
        fn cache_stats(&self) -> CacheStats {
            CacheStats {
                entries: 3,
                hits: 7,
                ..CacheStats::default()
            }
        }
        fn flights_in_progress(&self) -> u64 {
            1
        }
        fn deployments(&self) -> DeploymentCounts {
            DeploymentCounts {
                serving: 2,
                ..DeploymentCounts::default()
            }
        }
    }

    #[test]
    fn text_has_requests_latency_providers_cache_and_build_info() {
        let mut metrics = Metrics::new();
        metrics.register_source(Arc::new(Fixed));
        metrics.request("completion", 200, Duration::from_millis(3), None);
        let waited = Some(("miss", Duration::from_millis(2)));
        metrics.request("completion", 200, Duration::from_millis(3), waited);
        let provider = metrics.provider("openai");
        provider.calls.inc();
        provider.error("timeout");
        let text = metrics.encode();
        for line in [
            "promptd_requests_total{route=\"completion\",status=\"200\"} 2",
            "promptd_request_duration_seconds_count{route=\"completion\"} 2",
            "promptd_overhead_seconds_count{route=\"completion\",cache=\"miss\"} 1",
            "promptd_overhead_seconds_sum{route=\"completion\",cache=\"miss\"} 0.001",
            "promptd_provider_calls_total{provider=\"openai\"} 1",
            "promptd_provider_errors_total{provider=\"openai\",kind=\"timeout\"} 1",
            "promptd_cache_entries 3",
            "promptd_cache_hits_total 7",
            "promptd_flights_in_progress 1",
            "promptd_deployments_serving 2",
            "promptd_build_info{version=\"",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }
}
