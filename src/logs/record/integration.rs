//! Records of Parea's tracing integrations (`POST /trace_log/{vendor}`, the SDK's
//! `VENDOR_LOG_ENDPOINT`): today LangChain's tracer, which posts each finished run as
//! LangChain's run tree (`run.dict()` with Parea's `_`-prefixed fields added), not a TraceLog.
//!
//! promptd checks such a record only as far as it acts on it ([`LangchainRun`]: the ids it
//! orders and samples by, the sample rate), spools the bytes as sent, and ships them to the
//! same path upstream. Only the vendors of the SDK's `TraceIntegrations` are accepted
//! ([`TraceIntegration`]): a daemon never forwards a path a client made up.

use serde::{Deserialize, Serialize};

/// A tracing integration of Parea's SDK (its `TraceIntegrations` enum). Stored in spool entries
/// by variant index: new vendors go at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TraceIntegration {
    Langchain,
}

impl TraceIntegration {
    /// Every integration promptd accepts.
    pub const ALL: &'static [TraceIntegration] = &[TraceIntegration::Langchain];

    /// The vendor as it appears in the path (`trace_log/{vendor}`).
    pub fn name(self) -> &'static str {
        match self {
            TraceIntegration::Langchain => "langchain",
        }
    }

    /// The integration a path segment names, `None` for one promptd does not accept.
    pub fn from_name(segment: &str) -> Option<TraceIntegration> {
        Self::ALL.iter().copied().find(|i| i.name() == segment)
    }

    /// The collector's endpoint for its records, under `[upstream] base_url`.
    pub fn upstream_path(self) -> &'static str {
        match self {
            TraceIntegration::Langchain => "trace_log/langchain",
        }
    }

    /// The names of [`Self::ALL`], for messages.
    pub fn names() -> String {
        let names: Vec<&str> = Self::ALL.iter().map(|i| i.name()).collect();
        names.join(", ")
    }
}

/// The fields of a LangChain run promptd acts on; every other field is shipped untouched.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct LangchainRun {
    /// The run's id (a UUID).
    #[serde(default)]
    pub id: Option<String>,
    /// The id of the LangChain trace the run belongs to: its root run's id.
    #[serde(default)]
    pub trace_id: Option<String>,
    /// The root of the Parea trace the chain ran inside of, if any.
    #[serde(default, rename = "_parea_root_trace_id")]
    pub parea_root_trace_id: Option<String>,
    /// The tracer's `log_sample_rate`.
    #[serde(default, rename = "_log_sample_rate")]
    pub log_sample_rate: Option<f64>,
}

impl LangchainRun {
    /// The trace the run's spool entry is filed under: its LangChain trace, else the run, else
    /// none. Runs of one trace are shipped one at a time in the order received, like the
    /// entries of one Parea trace.
    pub fn trace_key(&self) -> &str {
        non_empty(&self.trace_id)
            .or(non_empty(&self.id))
            .unwrap_or("")
    }

    /// The id sampling is decided on: the Parea trace's root when the chain ran inside one (so
    /// the run is kept or dropped with that trace's records), else its LangChain trace.
    pub fn sampling_key(&self) -> Option<&str> {
        non_empty(&self.parea_root_trace_id).or(Some(self.trace_key()).filter(|k| !k.is_empty()))
    }
}

fn non_empty(id: &Option<String>) -> Option<&str> {
    id.as_deref().filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendors_by_name() {
        assert_eq!(
            TraceIntegration::from_name("langchain"),
            Some(TraceIntegration::Langchain)
        );
        assert_eq!(TraceIntegration::from_name("LangChain"), None);
        assert_eq!(TraceIntegration::from_name("../feedback"), None);
        assert_eq!(TraceIntegration::names(), "langchain");
        for i in TraceIntegration::ALL {
            assert_eq!(i.upstream_path(), format!("trace_log/{}", i.name()));
        }
    }

    #[test]
    fn keys_prefer_the_parea_root_then_the_langchain_trace_then_the_run() {
        let run = |id: Option<&str>, trace: Option<&str>, root: Option<&str>| LangchainRun {
            id: id.map(str::to_owned),
            trace_id: trace.map(str::to_owned),
            parea_root_trace_id: root.map(str::to_owned),
            log_sample_rate: None,
        };
        let full = run(Some("r"), Some("t"), Some("p"));
        assert_eq!((full.trace_key(), full.sampling_key()), ("t", Some("p")));
        let no_root = run(Some("r"), Some("t"), Some(""));
        assert_eq!(no_root.sampling_key(), Some("t"));
        let old_langchain = run(Some("r"), None, None);
        assert_eq!(
            (old_langchain.trace_key(), old_langchain.sampling_key()),
            ("r", Some("r"))
        );
        let bare = run(None, None, None);
        assert_eq!((bare.trace_key(), bare.sampling_key()), ("", None));
    }
}
