//! Log records, the durable spool they wait in, and the flusher that ships them upstream.
//!
//! ```text
//! engine ─▶ record::CompletionRecord (borrowed) ─▶ entry: its JSON as text ───┐
//! POST /trace_log, PUT /trace_log, /feedback, /trace_log/{vendor}            │
//!        ─▶ intake::accept ─▶ entry::encode_json_text (the bytes as sent) ───┤
//!        ─▶ Spool::append (queue; group commit + fsync by the writer thread) ─▶ segment files
//!        ─▶ Spool::read_batch ─▶ Flusher (reqwest, retries) ─▶ collector ─▶ Spool::ack
//! ```
//!
//! Three rooms, each importing only the ones before it (`.ci/import-cycles` checks it):
//!
//! - [`record`] — the record format. [`LogRecord`] (Parea's TraceLog), built from a completion
//!   with its configuration borrowed from the call ([`CallConfiguration`]); omit rules and
//!   trace-wide sampling. [`CompletionRecord`] (`record/completion.rs`): a completion's record
//!   as the request path writes it, every part borrowed, the same bytes as the owned one. [`entry`] (`record/entry.rs`): the versioned encoding of a spool
//!   record (`{kind, trace_id, body}` with the body as JSON text; the version byte is the
//!   format that introduced the kind) and its size bound, and [`SpoolEntry`], the typed view of
//!   one. [`record::cap`]: the record cap, `spool.max_record_bytes` (long texts cut to a head,
//!   marked in `truncated` with their length and hash). [`record::integration`]: [`TraceIntegration`] (the vendors of
//!   `POST /trace_log/{vendor}`) and [`LangchainRun`], the fields of a LangChain run promptd
//!   orders and samples by.
//! - [`spool`] — the durable on-disk queue; its header holds the on-disk design. Its parts:
//!   `error`, `options`, `stats` (its types), `fs` (the file system seam: every file operation,
//!   real or simulated in tests), `segment` (frames, scanning), `ledger` (ledger and lock
//!   files), `state` (what the parts share), `recovery` (start-up repair), `writer` (the
//!   group-commit thread), `reader` (ordered reads), `lookup`, [`spool::held_trace`]
//!   ([`HeldTrace`]: a trace's record read back, read-only, for `GET /logs/trace/{trace_id}`) and
//!   [`spool::trace_tree`] ([`TraceTree`]: a held trace with its held children, in Parea's
//!   `TraceLogTree` shape for `GET /trace_log/{trace_id}`).
//! - [`intake`] — client records on their one way in: checked, sampled, appended as sent,
//!   answered once durable.
//! - [`flusher`] — [`Flusher`]: reads the spool in order, sends to the collector with retries,
//!   acknowledges; `delivery` sends one entry (headers, retry classification, backoff);
//!   `status` holds its state and counters ([`FlusherStats`], [`FlusherHandle`]);
//!   [`FlusherTask`] runs one on its own task until stopped.
//!
//! The `[spool]` and `[upstream]` settings are [`crate::config`]'s (re-exported here).

pub mod flusher;
pub mod intake;
pub mod record;
pub mod spool;

// The settings live in config; re-exported so promptd::logs::{SpoolConfig, ...} keep working.
pub use crate::config::{RawSpool, RawUpstream, SpoolConfig, UpstreamConfig};
pub use flusher::{Flusher, FlusherHandle, FlusherState, FlusherStats, FlusherTask, UpstreamError};
pub use intake::{Accepted, ClientRecord, IntakeError};
pub use record::cap::{encode_trace_log_capped, CappedEntry};
pub use record::completion::{CompletionRecord, NoteValue, Notes};
pub use record::entry;
pub use record::entry::{
    encode_json_text, encode_trace_log, EntryError, EntryKind, Feedback, SpoolEntry, StoredEntry,
    TraceLogUpdate,
};
pub use record::integration::{LangchainRun, TraceIntegration};
pub use record::{sampled_in, CallConfiguration, CompletionLog, LogRecord, OmitRules};
pub use spool::held_trace::{Delivery, HeldTrace};
pub use spool::trace_tree::{self, TraceTree};
pub use spool::{
    Dropped, Durable, NotDurable, Spool, SpoolError, SpoolOptions, SpoolRecord, SpoolStats,
};
