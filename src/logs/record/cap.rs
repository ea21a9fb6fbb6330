//! The record cap (`spool.max_record_bytes`): a completion's record is never larger than the cap,
//! and never dropped for its size. One client's huge prompts or answers would otherwise fill the
//! spool with a few records and make everyone else's records get dropped while the collector is
//! away (and a record over the frame limit, `entry::MAX_PAYLOAD`, was dropped whatever the room).
//!
//! A record over the cap keeps its shape: every field stays where the collector expects it, but
//! the longest texts in it (the output, rendered messages, input values, tool definitions,
//! metadata, ...) are cut to a common head length, the longest first, until the record fits.
//! Each top-level field that was cut is listed in the record's `truncated` object with its full
//! length and BLAKE3 hash, so the collector sees what is missing and can match it against a copy
//! kept elsewhere:
//!
//! ```json
//! "truncated": {"output": {"len": 300000000, "blake3": "9f1c…"},
//!               "configuration": {"len": 16777300, "blake3": "…"}}
//! ```
//!
//! `len` and `blake3` are of the field's text for a text field (`output`: the answer's UTF-8
//! bytes), else of the field's JSON as it would have been sent. A field that cutting texts
//! cannot shrink enough (a huge array of numbers, a huge object key) is left out of the record
//! instead, marked `"removed": true` beside its length and hash. Heads are cut on a character
//! boundary. Records under the cap are encoded exactly as before, byte for byte.

use serde::Serialize;
use serde_json::{Map, Value};

use super::entry::{encode_json_text, encode_trace_log, EntryError, EntryKind};
use super::LogRecord;

/// The smallest cap `spool.max_record_bytes` accepts (config's, as a `usize`).
pub const MIN_RECORD_BYTES: usize = crate::config::MIN_RECORD_BYTES as usize;

/// The field of a capped record that lists what was cut.
pub const TRUNCATED_FIELD: &str = "truncated";

/// Room for the envelope around the JSON body (version byte, kind, lengths) besides the trace id.
const ENVELOPE_SLACK: usize = 32;

/// Rounds of cutting before a field is removed instead (each round cuts at least what was over,
/// so a second is rare: the marks it adds).
const MAX_ROUNDS: usize = 16;

/// Texts are not cut shorter than this: a record whose texts would all have to be is cut by
/// removing a field instead (its ids and status stay readable).
const MIN_HEAD: usize = 256;

/// A capped spool payload and the top-level fields that were cut or removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CappedEntry {
    pub payload: Vec<u8>,
    /// Empty when the record was under the cap.
    pub truncated: Vec<String>,
}

/// Encode a trace log as a spool payload of at most `max` bytes (`max` at least
/// [`MIN_RECORD_BYTES`]): as [`encode_trace_log`] when it fits, else cut as the module says.
pub fn encode_trace_log_capped<C: Serialize>(
    mut record: LogRecord<C>,
    max: usize,
) -> Result<CappedEntry, EntryError> {
    let max = max.max(MIN_RECORD_BYTES);
    let mut marks = Map::new();
    // The answer is the one field an upstream sizes: cut it before anything copies it.
    if let Some(output) = record.output.as_mut() {
        if output.len() > max {
            marks.insert("output".to_owned(), mark(output.as_bytes()));
            cut(output, max);
        }
    }
    if marks.is_empty() {
        let payload = encode_trace_log(&record)?;
        if payload.len() <= max {
            return Ok(CappedEntry {
                payload,
                truncated: Vec::new(),
            });
        }
    }
    let malformed = |e: &dyn std::fmt::Display| EntryError::Malformed(e.to_string());
    let Value::Object(mut fields) = serde_json::to_value(&record).map_err(|e| malformed(&e))?
    else {
        return Err(EntryError::Malformed("a trace log is not an object".into()));
    };
    drop(record);
    let truncated = cap_object(&mut fields, marks, max);
    let trace_id = fields
        .get("trace_id")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let body = serde_json::to_string(&fields).map_err(|e| malformed(&e))?;
    let payload = encode_json_text(EntryKind::TraceLog, &trace_id, &body)?;
    Ok(CappedEntry { payload, truncated })
}

/// Cut a record's top-level JSON object under `max` payload bytes as the module says, `marks`
/// holding what was already cut; adds the `truncated` object (when anything was cut) and
/// returns the top-level fields that were cut or removed. Used for promptd's own records and
/// for clients' (`POST /trace_log` and the other log routes), which keep their unknown fields.
pub fn cap_object(
    fields: &mut Map<String, Value>,
    mut marks: Map<String, Value>,
    max: usize,
) -> Vec<String> {
    let max = max.max(MIN_RECORD_BYTES);
    // Length and hash of every field as it was, for the ones that get cut.
    let originals: Map<String, Value> = fields
        .iter()
        .filter(|(k, _)| !marks.contains_key(*k))
        .map(|(k, v)| (k.clone(), original_mark(v)))
        .collect();
    let mut rounds = 0;
    loop {
        let over = size_of(fields, &marks).saturating_sub(max);
        if over == 0 {
            break;
        }
        let mut lengths = Vec::new();
        for value in fields.values() {
            text_lengths(value, &mut lengths);
        }
        let head = head_length(lengths, over);
        rounds += 1;
        if head >= MIN_HEAD && rounds <= MAX_ROUNDS {
            for (key, value) in fields.iter_mut() {
                if cut_texts(value, head) && !marks.contains_key(key) {
                    if let Some(m) = originals.get(key) {
                        marks.insert(key.clone(), m.clone());
                    }
                }
            }
            continue;
        }
        // Cutting texts cannot bring it under the cap (or only by cutting every text to
        // nothing): the field with the most bytes that are not text goes.
        let Some(largest) = fields
            .iter()
            .max_by_key(|(_, v)| skeleton_len(v))
            .map(|(k, _)| k.clone())
        else {
            break;
        };
        fields.remove(&largest);
        let mut m = marks
            .remove(&largest)
            .or_else(|| originals.get(&largest).cloned())
            .unwrap_or_else(|| Value::Object(Map::new()));
        if let Value::Object(m) = &mut m {
            m.insert("removed".to_owned(), Value::Bool(true));
        }
        marks.insert(largest, m);
    }
    let truncated: Vec<String> = marks.keys().cloned().collect();
    if !marks.is_empty() {
        fields.insert(TRUNCATED_FIELD.to_owned(), Value::Object(marks));
    }
    truncated
}

/// `{"len", "blake3"}` of `bytes`.
fn mark(bytes: &[u8]) -> Value {
    let mut m = Map::new();
    m.insert("len".to_owned(), Value::from(bytes.len() as u64));
    m.insert(
        "blake3".to_owned(),
        Value::String(blake3::hash(bytes).to_hex().to_string()),
    );
    Value::Object(m)
}

/// The mark of a field as it was: of its text for a text, else of its JSON (hashed as written,
/// not copied).
fn original_mark(value: &Value) -> Value {
    if let Value::String(text) = value {
        return mark(text.as_bytes());
    }
    let mut writer = HashingWriter::default();
    // Writing a `Value` to a writer that never fails cannot fail.
    let _ = serde_json::to_writer(&mut writer, value);
    let mut m = Map::new();
    m.insert("len".to_owned(), Value::from(writer.len));
    m.insert(
        "blake3".to_owned(),
        Value::String(writer.hasher.finalize().to_hex().to_string()),
    );
    Value::Object(m)
}

/// Counts and hashes what is written to it.
#[derive(Default)]
struct HashingWriter {
    hasher: blake3::Hasher,
    len: u64,
}

impl std::io::Write for HashingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.hasher.update(buf);
        self.len += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Counts what is written to it.
#[derive(Default)]
struct CountingWriter(usize);

impl std::io::Write for CountingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn json_len<T: Serialize + ?Sized>(value: &T) -> usize {
    let mut counter = CountingWriter::default();
    let _ = serde_json::to_writer(&mut counter, value);
    counter.0
}

/// The payload size of `fields` with `marks` as its `truncated` object (and the trace id
/// repeated in the envelope).
fn size_of(fields: &Map<String, Value>, marks: &Map<String, Value>) -> usize {
    let trace_id = fields.get("trace_id").and_then(Value::as_str).unwrap_or("");
    let marks_len = if marks.is_empty() {
        0
    } else {
        TRUNCATED_FIELD.len() + 4 + json_len(marks)
    };
    json_len(fields) + marks_len + trace_id.len() + ENVELOPE_SLACK
}

/// The bytes of `value`'s JSON that are not in its texts (what cutting texts cannot remove).
fn skeleton_len(value: &Value) -> usize {
    let mut lengths = Vec::new();
    text_lengths(value, &mut lengths);
    json_len(value).saturating_sub(lengths.iter().sum())
}

/// The lengths of the texts (string values, not keys) in `value`.
fn text_lengths(value: &Value, out: &mut Vec<usize>) {
    match value {
        Value::String(s) => out.push(s.len()),
        Value::Array(items) => items.iter().for_each(|v| text_lengths(v, out)),
        Value::Object(map) => map.values().for_each(|v| text_lengths(v, out)),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// The largest head length that, every text cut to it, removes at least `over` bytes (0 when
/// even that does not).
fn head_length(mut lengths: Vec<usize>, over: usize) -> usize {
    lengths.sort_unstable_by(|a, b| b.cmp(a));
    // Cutting the `k` longest texts to the length of the (k+1)th removes `removed_k` bytes;
    // find the first level where that is enough, then lift the head within it.
    let mut sum = 0usize;
    for (k, &len) in lengths.iter().enumerate() {
        sum += len;
        let next = lengths.get(k + 1).copied().unwrap_or(0);
        let count = k + 1;
        let removed_at_next = sum - count * next;
        if removed_at_next >= over {
            // head = (sum - over) / count, at least `next`.
            return ((sum - over) / count).max(next);
        }
    }
    0
}

/// Cut every text in `value` longer than `head`; whether any was.
fn cut_texts(value: &mut Value, head: usize) -> bool {
    match value {
        Value::String(s) => cut(s, head),
        // Every text is cut (no short circuit), and whether any was is kept.
        Value::Array(items) => {
            let mut any = false;
            for v in items {
                any |= cut_texts(v, head);
            }
            any
        }
        Value::Object(map) => {
            let mut any = false;
            for v in map.values_mut() {
                any |= cut_texts(v, head);
            }
            any
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

/// Cut `s` to at most `head` bytes, on a character boundary; whether it was longer.
fn cut(s: &mut String, head: usize) -> bool {
    if s.len() <= head {
        return false;
    }
    let mut at = head;
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    s.truncate(at);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::entry::StoredEntry;

    fn decoded(entry: &CappedEntry) -> Value {
        let stored = StoredEntry::decode(&entry.payload).expect("decodes");
        serde_json::from_str(&stored.body).expect("json")
    }

    #[test]
    fn the_config_bound_is_the_frame_limit() {
        assert_eq!(
            crate::config::MAX_RECORD_BYTES,
            crate::logs::entry::MAX_PAYLOAD as u64
        );
    }

    #[test]
    fn small_records_are_unchanged() {
        let record = LogRecord::<Value> {
            trace_id: Some("t".into()),
            output: Some("hello".into()),
            ..LogRecord::default()
        };
        let capped = encode_trace_log_capped(record.clone(), MIN_RECORD_BYTES).expect("encodes");
        assert_eq!(capped.payload, encode_trace_log(&record).expect("encodes"));
        assert!(capped.truncated.is_empty());
    }

    #[test]
    fn a_long_output_keeps_its_head_length_and_hash() {
        let output = "é".repeat(200_000);
        let record = LogRecord::<Value> {
            trace_id: Some("t".into()),
            output: Some(output.clone()),
            ..LogRecord::default()
        };
        let capped = encode_trace_log_capped(record, 32 * 1024).expect("encodes");
        assert!(
            capped.payload.len() <= 32 * 1024,
            "{}",
            capped.payload.len()
        );
        let body = decoded(&capped);
        let head = body["output"].as_str().expect("output");
        assert!(output.starts_with(head) && head.len() > 16 * 1024);
        assert_eq!(body["truncated"]["output"]["len"], output.len());
        assert_eq!(
            body["truncated"]["output"]["blake3"],
            blake3::hash(output.as_bytes()).to_hex().as_str()
        );
        assert_eq!(body["trace_id"], "t");
    }

    #[test]
    fn many_fields_share_the_cap_and_unshrinkable_ones_go() {
        let numbers: Vec<Value> = (0..20_000).map(Value::from).collect();
        let mut metadata = Map::new();
        metadata.insert("numbers".into(), Value::Array(numbers));
        let mut inputs = Map::new();
        for i in 0..50 {
            inputs.insert(format!("k{i}"), Value::String("x".repeat(10_000)));
        }
        let record = LogRecord::<Value> {
            trace_id: Some("t".into()),
            configuration: Some(serde_json::json!({"model": "m", "messages": [
                {"role": "user", "content": "y".repeat(500_000)}
            ]})),
            inputs: Some(inputs),
            metadata: Some(metadata),
            status: Some("success".into()),
            ..LogRecord::default()
        };
        let capped = encode_trace_log_capped(record, MIN_RECORD_BYTES).expect("encodes");
        assert!(capped.payload.len() <= MIN_RECORD_BYTES);
        let body = decoded(&capped);
        assert_eq!(body["status"], "success");
        assert_eq!(body["configuration"]["model"], "m");
        assert!(body["truncated"]["configuration"]["len"].as_u64() > Some(500_000));
        assert!(body["truncated"]["inputs"]["blake3"].is_string());
        assert_eq!(body["truncated"]["metadata"]["removed"], true);
        assert!(body.get("metadata").is_none());
    }
}
