//! What one spool record holds: a trace log, an update of one, feedback, or a tracing integration's
//! record (a LangChain run), as JSON text in a versioned envelope. The daemon writes completions'
//! records with [`encode_trace_log`] and clients' records, as they sent them, with
//! [`encode_json_text`]; [`SpoolEntry`] is the typed view of an entry, for tests and tools.
//!
//! Encoding: one format-version byte, then a bincode 2 envelope `{kind, trace_id, body}` whose
//! `body` is the entry as **JSON text**, exactly the body the flusher will send. Why JSON inside
//! bincode, and not bincode all the way down:
//! - bincode (a non-self-describing format) cannot encode `serde_json::Value` or
//!   `#[serde(flatten)]` (both need `deserialize_any`), and a trace log is mostly free-form JSON
//!   (configuration, inputs, metadata, scores, and the unknown fields of a client's record,
//!   which must be forwarded unchanged);
//! - the bytes sent after a restart are the bytes stored, not a re-encoding, so a resend is the
//!   same request;
//! - the envelope's fixed fields let the flusher route and order an entry without parsing the
//!   JSON.
//!
//! The version byte is the oldest format a reader must know to read the entry, so a new kind
//! of entry never makes an older promptd misread one: version 1 for the kinds every promptd
//! knows (`TraceLog`, `TraceLogUpdate`, `Feedback`), version 2 for the kinds added with format 2
//! (`IntegrationLog`); both have the same envelope, and an old kind is written as version 1
//! still, byte for byte as before. So a spool written by an older promptd reads as it always
//! did, and an older promptd started on a newer spool reads every entry it knows; an entry of a
//! newer kind is to it an unknown version (its log says so, with the spool id), skipped, counted
//! as undecodable and acknowledged: after a downgrade, integration records still waiting are
//! lost, nothing else is.
//!
//! A payload with an unknown version byte, or that does not decode, is an [`EntryError`]: the
//! flusher skips, counts and acknowledges it, never panics.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::integration::TraceIntegration;
use super::LogRecord;

/// The newest format version this promptd reads (and writes, for the kinds that need it).
pub const ENTRY_FORMAT_VERSION: u8 = 2;

/// Largest payload of one entry, which is the largest payload one spool frame carries (the
/// spool takes its frame limit from here). Also bounds what a damaged length prefix can make
/// decoding read.
pub const MAX_PAYLOAD: usize = 64 * 1024 * 1024;

/// An update of an earlier trace log (`PUT /trace_log`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceLogUpdate {
    pub trace_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_trace_id: Option<String>,
    pub field_name_to_value_map: Map<String, Value>,
}

/// Feedback on a trace (`POST /feedback`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Feedback {
    /// In `[0, 1]`.
    pub score: f64,
    pub trace_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Fields promptd does not know, forwarded as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One thing to ship upstream.
#[derive(Debug, Clone, PartialEq)]
pub enum SpoolEntry {
    /// `POST /trace_log`.
    TraceLog(Box<LogRecord>),
    /// `PUT /trace_log`.
    TraceLogUpdate(TraceLogUpdate),
    /// `POST /feedback`.
    Feedback(Feedback),
    /// `POST /trace_log/{vendor}`: the record as the integration sent it (a JSON object).
    IntegrationLog {
        integration: TraceIntegration,
        /// The trace the entry is filed under (see [`super::LangchainRun::trace_key`]).
        trace_id: String,
        record: Map<String, Value>,
    },
}

/// Which endpoint an entry goes to. Stored by variant index: new kinds go at the end, with
/// the format version that introduced them in [`EntryKind::format_version`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryKind {
    TraceLog,
    TraceLogUpdate,
    Feedback,
    /// Since format 2.
    IntegrationLog(TraceIntegration),
}

impl EntryKind {
    /// The version byte of an entry of this kind: the format that introduced the kind.
    pub fn format_version(self) -> u8 {
        match self {
            EntryKind::TraceLog | EntryKind::TraceLogUpdate | EntryKind::Feedback => 1,
            EntryKind::IntegrationLog(_) => 2,
        }
    }
}

/// A payload that is not a readable entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    #[error("empty spool payload")]
    Empty,
    #[error("spool entry format version {0} is not known to this promptd (it reads 1 to {ENTRY_FORMAT_VERSION}): a newer promptd wrote it, or it is damaged")]
    UnknownVersion(u8),
    #[error("malformed spool entry: {0}")]
    Malformed(String),
}

/// The stored form of versions 1 and 2, borrowed both ways: encoding writes a record without
/// copying it, decoding reads the fields in place (a spool scan compares trace ids without
/// copying every body).
#[derive(Serialize, Deserialize)]
struct EnvelopeV1<'a> {
    kind: EntryKind,
    #[serde(borrow)]
    trace_id: &'a str,
    #[serde(borrow)]
    body: &'a str,
}

fn bincode_config() -> impl bincode::config::Config {
    // The limit keeps a damaged length prefix from allocating more than a frame can hold.
    bincode::config::standard().with_limit::<MAX_PAYLOAD>()
}

impl SpoolEntry {
    /// The spool payload: version byte + bincode envelope.
    pub fn encode(&self) -> Result<Vec<u8>, EntryError> {
        match self {
            SpoolEntry::TraceLog(r) => encode_trace_log(r),
            SpoolEntry::TraceLogUpdate(u) => encode(EntryKind::TraceLogUpdate, &u.trace_id, u),
            SpoolEntry::Feedback(f) => encode(EntryKind::Feedback, &f.trace_id, f),
            SpoolEntry::IntegrationLog {
                integration,
                trace_id,
                record,
            } => encode(EntryKind::IntegrationLog(*integration), trace_id, record),
        }
    }
}

/// The spool payload of a trace log, whatever its `configuration` is held as (a completion's
/// record borrows it from the call): the same bytes as [`SpoolEntry::TraceLog`] of it.
pub fn encode_trace_log<C: Serialize>(record: &LogRecord<C>) -> Result<Vec<u8>, EntryError> {
    encode(
        EntryKind::TraceLog,
        record.trace_id.as_deref().unwrap_or(""),
        record,
    )
}

/// The spool payload of `body` as the entry of `kind` filed under `trace_id`.
fn encode<T: Serialize + ?Sized>(
    kind: EntryKind,
    trace_id: &str,
    body: &T,
) -> Result<Vec<u8>, EntryError> {
    encode_with(kind, trace_id, |json| serde_json::to_writer(json, body))
}

/// The spool payload of the entry of `kind` filed under `trace_id` whose JSON `write` writes.
pub(super) fn encode_with(
    kind: EntryKind,
    trace_id: &str,
    write: impl FnOnce(&mut Vec<u8>) -> serde_json::Result<()>,
) -> Result<Vec<u8>, EntryError> {
    let malformed = |e: &dyn std::fmt::Display| EntryError::Malformed(e.to_string());
    // The JSON is written into a buffer kept per thread, not a new string grown by doubling
    // for every record (a completion's record is built on the request path).
    JSON_SCRATCH.with_borrow_mut(|json| {
        json.clear();
        let encoded = write(json)
            .map_err(|e| malformed(&e))
            .and_then(|()| std::str::from_utf8(json).map_err(|e| malformed(&e)))
            .and_then(|text| encode_json_text(kind, trace_id, text));
        if json.capacity() > JSON_SCRATCH_KEEP {
            *json = Vec::new();
        }
        encoded
    })
}

thread_local! {
    /// The JSON of the record being encoded on this thread.
    static JSON_SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A scratch buffer grown past this by one large record is given back after it.
const JSON_SCRATCH_KEEP: usize = 64 * 1024;

/// The spool payload of an entry already held as JSON text: a client's `POST /trace_log`,
/// `PUT /trace_log`, `POST /feedback` or `POST /trace_log/{vendor}` body, checked by decoding
/// it and then stored as the client sent it, so fields promptd does not model (and their
/// nulls, number spellings and order) reach upstream unchanged. `body` must be one JSON value.
pub fn encode_json_text(
    kind: EntryKind,
    trace_id: &str,
    body: &str,
) -> Result<Vec<u8>, EntryError> {
    let malformed = |e: &dyn std::fmt::Display| EntryError::Malformed(e.to_string());
    let envelope = EnvelopeV1 {
        kind,
        trace_id,
        body,
    };
    // The version byte, the envelope's lengths and fixed fields, and the body.
    let mut out = Vec::with_capacity(body.len() + trace_id.len() + 16);
    out.push(kind.format_version());
    bincode::serde::encode_into_std_write(&envelope, &mut out, bincode_config())
        .map_err(|e| malformed(&e))?;
    Ok(out)
}

/// A decoded payload, body still as JSON text: what the flusher needs to send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry {
    pub kind: EntryKind,
    pub trace_id: String,
    /// The request body, JSON.
    pub body: String,
}

/// A decoded payload borrowing from it, for reading many payloads and keeping few.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryRef<'a> {
    pub kind: EntryKind,
    pub trace_id: &'a str,
    /// The request body, JSON.
    pub body: &'a str,
}

impl<'a> EntryRef<'a> {
    /// Decode a spool payload in place.
    pub fn decode(payload: &'a [u8]) -> Result<EntryRef<'a>, EntryError> {
        let (&version, rest) = payload.split_first().ok_or(EntryError::Empty)?;
        if !(1..=ENTRY_FORMAT_VERSION).contains(&version) {
            return Err(EntryError::UnknownVersion(version));
        }
        let (envelope, used): (EnvelopeV1<'a>, usize) =
            bincode::serde::borrow_decode_from_slice(rest, bincode_config())
                .map_err(|e| EntryError::Malformed(e.to_string()))?;
        if used != rest.len() {
            return Err(EntryError::Malformed(format!(
                "{} trailing bytes",
                rest.len() - used
            )));
        }
        Ok(EntryRef {
            kind: envelope.kind,
            trace_id: envelope.trace_id,
            body: envelope.body,
        })
    }
}

impl StoredEntry {
    /// Decode a spool payload.
    pub fn decode(payload: &[u8]) -> Result<StoredEntry, EntryError> {
        let entry = EntryRef::decode(payload)?;
        Ok(StoredEntry {
            kind: entry.kind,
            trace_id: entry.trace_id.to_owned(),
            body: entry.body.to_owned(),
        })
    }

    /// Parse the body back into a typed entry.
    pub fn to_entry(&self) -> Result<SpoolEntry, EntryError> {
        let malformed = |e: serde_json::Error| EntryError::Malformed(e.to_string());
        Ok(match self.kind {
            EntryKind::TraceLog => SpoolEntry::TraceLog(Box::new(
                serde_json::from_str(&self.body).map_err(malformed)?,
            )),
            EntryKind::TraceLogUpdate => {
                SpoolEntry::TraceLogUpdate(serde_json::from_str(&self.body).map_err(malformed)?)
            }
            EntryKind::Feedback => {
                SpoolEntry::Feedback(serde_json::from_str(&self.body).map_err(malformed)?)
            }
            EntryKind::IntegrationLog(integration) => SpoolEntry::IntegrationLog {
                integration,
                trace_id: self.trace_id.clone(),
                record: serde_json::from_str(&self.body).map_err(malformed)?,
            },
        })
    }
}
