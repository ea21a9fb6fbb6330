//! A completion's record as the request path writes it: [`CompletionRecord`] borrows every part
//! (the request's [`CompletionLog`], the call's [`CallConfiguration`], the answer, promptd's
//! [`Notes`]) and writes the same JSON as the owned [`LogRecord::from_completion`] of the same
//! parts with the notes in its `metadata` — without copying a string, building a metadata map,
//! escaping its own keys or moving a record of ~50 fields about. The owned record is built only
//! for a record over `spool.max_record_bytes`, which must be cut
//! ([`CompletionRecord::encode_capped`]).
//!
//! Two writings of one record are kept equal by a test that compares their bytes over every
//! optional part (`tests/logs_record.rs`): a field added to one is added to the other.

use std::fmt;
use std::net::SocketAddr;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use super::cap::{encode_trace_log_capped, CappedEntry, MIN_RECORD_BYTES};
use super::entry::{encode_with, EntryError, EntryKind};
use super::{CallConfiguration, CompletionLog, LogRecord};
use crate::call::CompletionResponse;

/// One completion's record, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct CompletionRecord<'a> {
    /// What the record takes from the request.
    pub log: &'a CompletionLog,
    /// The call as the provider got it.
    pub configuration: CallConfiguration<'a>,
    /// The answer (or the failure) as the client got it.
    pub response: &'a CompletionResponse,
    /// Streams: seconds to the first piece (the log's own is not used).
    pub time_to_first_token: Option<f64>,
    /// promptd's entries in `metadata`.
    pub notes: &'a Notes<'a>,
}

impl CompletionRecord<'_> {
    /// The spool payload of the record, at most `max` bytes (at least [`MIN_RECORD_BYTES`]):
    /// written straight from the borrowed parts when it fits, else built as a [`LogRecord`] and
    /// cut as [`encode_trace_log_capped`] says.
    pub fn encode_capped(&self, max: usize) -> Result<CappedEntry, EntryError> {
        let max = max.max(MIN_RECORD_BYTES);
        let output = if self.log.omit.outputs {
            0
        } else {
            self.response.content.len()
        };
        if output <= max {
            let payload = encode_with(EntryKind::TraceLog, &self.log.trace_id, |out| {
                self.write_json(out)
            })?;
            if payload.len() <= max {
                return Ok(CappedEntry {
                    payload,
                    truncated: Vec::new(),
                });
            }
        }
        encode_trace_log_capped(self.to_log_record(), max)
    }

    /// The record as an owned [`LogRecord`], promptd's notes in its `metadata` (a client's keys
    /// of the same names kept).
    pub fn to_log_record(&self) -> LogRecord<CallConfiguration<'_>> {
        let mut record =
            LogRecord::from_completion(self.log.clone(), self.configuration, self.response.clone());
        record.time_to_first_token = self.time_to_first_token;
        let metadata = record.metadata.get_or_insert_with(Map::new);
        for note in self.notes.as_slice() {
            metadata
                .entry(note.key)
                .or_insert_with(|| Value::String(note.value.to_string()));
        }
        record
    }
}

impl CompletionRecord<'_> {
    /// The record's JSON: the fields of [`LogRecord`] in its order, as
    /// [`LogRecord::from_completion`] fills them.
    fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        let (log, answer) = (self.log, self.response);
        let mut map = Object::new(out);
        map.entry("trace_id", &log.trace_id)?;
        map.optional("parent_trace_id", &log.parent_trace_id)?;
        map.entry("root_trace_id", log.root_trace_id())?;
        match &log.trace_name {
            Some(name) => map.entry("trace_name", name)?,
            None => map.entry("trace_name", &Concat(["llm-", &answer.provider]))?,
        }
        map.optional("project_uuid", &log.project_uuid)?;
        map.entry("start_timestamp", &answer.start_timestamp)?;
        map.entry("end_timestamp", &answer.end_timestamp)?;
        if log.omit.inputs {
            map.entry("configuration", &self.configuration.without_inputs())?;
        } else {
            map.entry("configuration", &self.configuration)?;
            map.optional("inputs", &log.inputs)?;
        }
        if !log.omit.outputs {
            map.entry("output", &answer.content)?;
        }
        map.optional("target", &log.target)?;
        map.entry("latency", &answer.latency)?;
        map.optional("time_to_first_token", &self.time_to_first_token)?;
        map.entry("input_tokens", &answer.input_tokens)?;
        map.entry("output_tokens", &answer.output_tokens)?;
        map.entry("total_tokens", &answer.total_tokens)?;
        map.entry("cost", &answer.cost)?;
        map.optional("error", &answer.error)?;
        map.entry("status", &answer.status)?;
        map.optional("deployment_id", &log.deployment_id)?;
        map.entry("cache_hit", &answer.cache_hit)?;
        map.optional("eval_metric_ids", &log.eval_metric_ids)?;
        map.optional("log_sample_rate", &log.sample_rate)?;
        map.optional("end_user_identifier", &log.end_user_identifier)?;
        map.entry(
            "metadata",
            &Metadata {
                client: log.metadata.as_ref(),
                notes: self.notes.as_slice(),
            },
        )?;
        map.optional("tags", &log.tags)?;
        map.optional("experiment_uuid", &log.experiment_uuid)?;
        map.end();
        Ok(())
    }
}

/// A JSON object written entry by entry, its keys as they are: the record's names are plain
/// ASCII that needs no escaping, so each is copied, not scanned (the record's most frequent
/// string is a key).
struct Object<'w> {
    out: &'w mut Vec<u8>,
    empty: bool,
}

impl<'w> Object<'w> {
    fn new(out: &'w mut Vec<u8>) -> Self {
        out.push(b'{');
        Object { out, empty: true }
    }

    fn entry<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> serde_json::Result<()> {
        debug_assert!(key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
        serde_json::to_writer(&mut *self.out, value)
    }

    /// An entry written only when the field is set (`skip_serializing_if = "Option::is_none"`).
    fn optional<T: Serialize>(
        &mut self,
        key: &'static str,
        value: &Option<T>,
    ) -> serde_json::Result<()> {
        match value {
            Some(value) => self.entry(key, value),
            None => Ok(()),
        }
    }

    fn end(self) {
        self.out.push(b'}');
    }
}

/// Strings written as one JSON string, without joining them first.
struct Concat<'a, const N: usize>([&'a str; N]);

impl<const N: usize> Serialize for Concat<'_, N> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<const N: usize> fmt::Display for Concat<'_, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|part| f.write_str(part))
    }
}

/// The client's metadata and promptd's notes as one object, in the key order of the map the
/// owned record would hold (a client's key beats a note of the same name).
struct Metadata<'a> {
    client: Option<&'a Map<String, Value>>,
    /// In key order.
    notes: &'a [Note<'a>],
}

impl Serialize for Metadata<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        let mut notes = self.notes.iter().peekable();
        for (key, value) in self.client.into_iter().flatten() {
            while let Some(note) = notes.next_if(|n| n.key < key.as_str()) {
                map.serialize_entry(note.key, &note.value)?;
            }
            // A note of the client's name is the client's.
            notes.next_if(|n| n.key == key.as_str());
            map.serialize_entry(key, value)?;
        }
        for note in notes {
            map.serialize_entry(note.key, &note.value)?;
        }
        map.end()
    }
}

/// promptd's entries in a record's `metadata` (who sent the request, by which route, what a
/// translation left out), held in key order: the order of the map they would be written into.
#[derive(Debug, Clone, Copy)]
pub struct Notes<'a> {
    items: [Note<'a>; MAX_NOTES],
    len: usize,
}

/// More than any request has (uid, gid, route, dropped).
const MAX_NOTES: usize = 5;

impl Default for Notes<'_> {
    fn default() -> Self {
        let empty = Note {
            key: "",
            value: NoteValue::Text(""),
        };
        Notes {
            items: [empty; MAX_NOTES],
            len: 0,
        }
    }
}

impl<'a> Notes<'a> {
    /// Add `key`. promptd's own keys are few and fixed, so one past [`MAX_NOTES`] is a bug,
    /// not data: it is left out (and fails debug builds).
    pub fn add(&mut self, key: &'static str, value: NoteValue<'a>) {
        let Some(slot) = self.items.get_mut(self.len) else {
            debug_assert!(false, "more than {MAX_NOTES} record notes");
            return;
        };
        *slot = Note { key, value };
        self.len += 1;
        self.items[..self.len].sort_unstable_by_key(|n| n.key);
    }

    fn as_slice(&self) -> &[Note<'a>] {
        &self.items[..self.len]
    }

    /// The text of note `key`, if there is one (for tests of who adds which note).
    #[cfg(test)]
    pub fn text(&self, key: &str) -> Option<String> {
        let note = self.as_slice().iter().find(|n| n.key == key)?;
        Some(note.value.to_string())
    }
}

/// One of promptd's metadata entries.
#[derive(Debug, Clone, Copy)]
struct Note<'a> {
    key: &'static str,
    value: NoteValue<'a>,
}

/// A note's value, written as text (Parea's metadata holds strings).
#[derive(Debug, Clone, Copy)]
pub enum NoteValue<'a> {
    Number(u32),
    Address(SocketAddr),
    Text(&'a str),
    /// Joined with `, `.
    List(&'a [String]),
}

impl fmt::Display for NoteValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoteValue::Number(n) => write!(f, "{n}"),
            NoteValue::Address(a) => write!(f, "{a}"),
            NoteValue::Text(t) => f.write_str(t),
            NoteValue::List(items) => {
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    f.write_str(item)?;
                }
                Ok(())
            }
        }
    }
}

impl Serialize for NoteValue<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            NoteValue::Text(t) => s.serialize_str(t),
            NoteValue::Number(n) => s.serialize_str(itoa::Buffer::new().format(*n)),
            NoteValue::Address(SocketAddr::V4(a)) => {
                // `a.b.c.d:port`, the loopback listener's usual peer, without the formatter.
                let mut text = [0u8; 21];
                let mut len = 0;
                let (octets, port) = (a.ip().octets(), a.port());
                let mut number = itoa::Buffer::new();
                for (i, part) in octets
                    .iter()
                    .map(|&o| u16::from(o))
                    .chain([port])
                    .enumerate()
                {
                    if i > 0 {
                        text[len] = if i == 4 { b':' } else { b'.' };
                        len += 1;
                    }
                    let digits = number.format(part).as_bytes();
                    text[len..len + digits.len()].copy_from_slice(digits);
                    len += digits.len();
                }
                s.serialize_str(std::str::from_utf8(&text[..len]).unwrap_or_default())
            }
            other => s.collect_str(other),
        }
    }
}
