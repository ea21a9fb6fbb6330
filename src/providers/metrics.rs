//! The counters a provider keeps of its own calls ([`ProviderMetrics`]). The metrics registry
//! ([`crate::telemetry::metrics`]) creates and exports them; the provider only counts, so the
//! provider layer does not import telemetry.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderErrorLabels {
    pub provider: String,
    pub kind: &'static str,
}

/// Counters of one provider, handed to it at construction.
#[derive(Debug, Clone, Default)]
pub struct ProviderMetrics {
    pub calls: Counter,
    pub retries: Counter,
    errors: Family<ProviderErrorLabels, Counter>,
    name: String,
}

impl ProviderMetrics {
    /// The counters of provider `name`: its calls and retries, and the error counters that
    /// every provider shares (labelled by provider and kind).
    pub fn new(
        name: &str,
        calls: Counter,
        retries: Counter,
        errors: Family<ProviderErrorLabels, Counter>,
    ) -> ProviderMetrics {
        ProviderMetrics {
            calls,
            retries,
            errors,
            name: name.to_owned(),
        }
    }

    /// Count one failed call of kind `kind` (`status_4xx`, `status_5xx`, `unreachable`,
    /// `timeout`, `protocol`, `stream`).
    pub fn error(&self, kind: &'static str) {
        self.errors
            .get_or_create(&ProviderErrorLabels {
                provider: self.name.clone(),
                kind,
            })
            .inc();
    }
}
