//! Log records, the durable spool they wait in, and the flusher that ships them upstream.
//!
//! ```text
//! engine ─▶ record::LogRecord<CallConfiguration> ─▶ entry::encode_trace_log ─┐
//! POST /trace_log, PUT /trace_log, /feedback, /trace_log/{vendor}            │
//!        ─▶ entry::encode_json_text (the bytes as sent) ─────────────────────┤
//!        ─▶ Spool::append (queue; group commit + fsync by the writer thread) ─▶ segment files
//!        ─▶ Spool::read_batch ─▶ Flusher (reqwest, retries) ─▶ collector ─▶ Spool::ack
//! ```
//!
//! - [`record`] — [`LogRecord`] (Parea's TraceLog), built from a completion with its
//!   configuration borrowed from the call ([`CallConfiguration`]); omit rules and trace-wide
//!   sampling.
//! - [`intake`] — client records on their one way in: checked, sampled, appended as sent,
//!   answered once durable.
//! - [`integration`] — [`TraceIntegration`] (the vendors of `POST /trace_log/{vendor}`) and
//!   [`LangchainRun`], the fields of a LangChain run promptd orders and samples by.
//! - [`entry`] — the versioned encoding of a spool record (`{kind, trace_id, body}` with the body
//!   as JSON text; the version byte is the format that introduced the kind), and [`SpoolEntry`],
//!   the typed view of one (tests and tools build and read records with it; the daemon writes
//!   through `encode_trace_log`/`encode_json_text`).
//! - [`spool`] — the public spool API; its header holds the on-disk design.
//! - `segment` (frames, scanning), `ledger` (ledger and lock files), `recovery` (start-up
//!   repair), `writer` (the group-commit thread), `reader` (ordered reads), `state` (what they
//!   share) — the spool's parts.
//! - [`held_trace`] — [`HeldTrace`]: a trace's record read back from the spool (its last
//!   `TraceLog` entry with later updates applied) for `GET /logs/trace/{trace_id}`; `lookup`
//!   finds the entries of one or many traces in a pass, read-only, the way the reader reads.
//! - [`trace_tree`] — [`TraceTree`]: a held trace with its held children, gathered one spool
//!   pass per level, and its answer in Parea's `TraceLogTree` shape for
//!   `GET /trace_log/{trace_id}`.
//! - [`flusher`] — [`Flusher`]: reads the spool in order, sends to the collector with retries,
//!   acknowledges; `delivery` sends one entry (headers, retry classification, backoff).
//! - [`config`] — `[spool]` and `[upstream]`, raw and validated.

pub mod config;
mod delivery;
pub mod entry;
pub mod flusher;
pub mod held_trace;
pub mod intake;
pub mod integration;
mod ledger;
mod lookup;
mod reader;
pub mod record;
mod recovery;
mod segment;
pub mod spool;
mod state;
pub mod trace_tree;
mod writer;

pub use config::{RawSpool, RawUpstream, SpoolConfig, UpstreamConfig};
pub use entry::{
    encode_json_text, encode_trace_log, EntryError, EntryKind, Feedback, SpoolEntry, StoredEntry,
    TraceLogUpdate,
};
pub use flusher::{Flusher, FlusherHandle, FlusherState, FlusherStats, UpstreamError};
pub use held_trace::{Delivery, HeldTrace};
pub use intake::{Accepted, ClientRecord, IntakeError};
pub use integration::{LangchainRun, TraceIntegration};
pub use record::{sampled_in, CallConfiguration, CompletionLog, LogRecord, OmitRules};
pub use spool::{
    Dropped, Durable, NotDurable, Spool, SpoolError, SpoolOptions, SpoolRecord, SpoolStats,
};
pub use trace_tree::TraceTree;
