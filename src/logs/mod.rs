//! Log records, the durable spool they wait in, and the flusher that ships them upstream.
//!
//! ```text
//! engine ─▶ record::LogRecord<CallConfiguration> ─▶ entry::encode_trace_log ─┐
//! POST /trace_log, PUT /trace_log, /feedback ─▶ entry::encode_json_text ────┤
//!        ─▶ Spool::append (queue; group commit + fsync by the writer thread) ─▶ segment files
//!        ─▶ Spool::read_batch ─▶ Flusher (reqwest, retries) ─▶ collector ─▶ Spool::ack
//! ```
//!
//! - [`record`] — [`LogRecord`] (Parea's TraceLog), built from a completion with its
//!   configuration borrowed from the call ([`CallConfiguration`]); omit rules and trace-wide
//!   sampling.
//! - [`entry`] — the versioned encoding of a spool record (`{kind, trace_id, body}` with the
//!   body as JSON text), and [`SpoolEntry`], the typed view of one (tests and tools build and
//!   read records with it; the daemon writes through `encode_trace_log`/`encode_json_text`).
//! - [`spool`] — the public spool API; its header holds the on-disk design.
//! - `segment` (frames, scanning), `ledger` (ledger and lock files), `recovery` (start-up
//!   repair), `writer` (the group-commit thread), `reader` (ordered reads), `state` (what they
//!   share) — the spool's parts.
//! - [`held_trace`] — [`HeldTrace`]: a trace's record read back from the spool (its last
//!   `TraceLog` entry with later updates applied) for `GET /trace_log/{trace_id}`; `lookup`
//!   finds the entries, read-only, the way the reader reads.
//! - [`flusher`] — [`Flusher`]: reads the spool in order, sends to the collector with retries,
//!   acknowledges; `delivery` sends one entry (headers, retry classification, backoff).
//! - [`config`] — `[spool]` and `[upstream]`, raw and validated.

pub mod flusher;
pub mod record;
pub mod spool;

pub use crate::config::{RawSpool, RawUpstream, SpoolConfig, UpstreamConfig};
pub use flusher::{Flusher, FlusherHandle, FlusherState, FlusherStats, FlusherTask, UpstreamError};
pub use record::entry;
pub use record::entry::{
    encode_json_text, encode_trace_log, EntryError, EntryKind, Feedback, SpoolEntry, StoredEntry,
    TraceLogUpdate,
};
pub use record::{sampled_in, CallConfiguration, CompletionLog, LogRecord, OmitRules};
pub use spool::held_trace::{Delivery, HeldTrace};
pub use spool::{
    Dropped, Durable, NotDurable, Spool, SpoolError, SpoolOptions, SpoolRecord, SpoolStats,
};
