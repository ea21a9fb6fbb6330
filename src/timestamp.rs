//! Timestamps as promptd writes them (RFC 3339, UTC, microseconds): in log records, answers,
//! projects and status. A module of its own so that everything that stamps a time takes it from
//! the same place without importing the engine.

use chrono::{DateTime, SecondsFormat, Utc};

/// The current time as promptd writes timestamps (RFC 3339, UTC, microseconds).
pub fn now_iso() -> String {
    iso(Utc::now())
}

/// `t` (a system time, as the flusher keeps them) as promptd writes timestamps.
pub fn system_time_iso(t: std::time::SystemTime) -> String {
    iso(DateTime::<Utc>::from(t))
}

/// `t` as promptd writes timestamps.
pub fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}
