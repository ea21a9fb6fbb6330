//! A trace log record as the spool still holds it: the answer of `GET /logs/trace/{trace_id}`,
//! and each node of the `TraceLogTree` of `GET /trace_log/{trace_id}` ([`super::trace_tree`]).
//!
//! Built from a trace's entries in spool order ([`super::lookup`]): the **last** `TraceLog`
//! entry is the record; the `field_name_to_value_map` of every `TraceLogUpdate` after it is
//! applied on top, replacing top-level fields, as the collector would. Updates before that
//! record, and feedback, are not part of it. With no `TraceLog` entry there is no record to
//! show (it was shipped and its segment removed, or never sent), even if updates remain.

use serde::Serialize;
use serde_json::{Map, Value};

use super::lookup::TraceEntries;
use crate::logs::record::entry::{EntryError, EntryKind, TraceLogUpdate};

/// Whether the entries a [`HeldTrace`] was built from are acknowledged by the flusher.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// The record or one of its updates still waits to be shipped (or is being shipped).
    Waiting,
    /// The record and its updates are acknowledged (sent, or rejected by the collector for
    /// good), but their segment still holds unacknowledged records of other traces.
    Acknowledged,
}

impl Delivery {
    /// As serialized (and in `x-promptd-delivery`).
    pub fn as_str(self) -> &'static str {
        match self {
            Delivery::Waiting => "waiting",
            Delivery::Acknowledged => "acknowledged",
        }
    }
}

/// A trace log record read back from the spool.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HeldTrace {
    pub trace_id: String,
    pub delivery: Delivery,
    /// Spool id of the `TraceLog` entry.
    pub spool_id: u64,
    /// How many later `TraceLogUpdate` entries were applied to `record`.
    pub updates_applied: usize,
    /// The record with its later updates applied: what the collector ends up holding once it
    /// has them all (they are shipped one by one, as they came).
    pub record: Map<String, Value>,
}

impl HeldTrace {
    /// The record of `trace_id` in `found`, `None` without a `TraceLog` entry. A stored body
    /// that is not the JSON it was checked to be on the way in is an [`EntryError`].
    pub(crate) fn from_entries(
        trace_id: &str,
        found: &TraceEntries,
    ) -> Result<Option<HeldTrace>, EntryError> {
        let malformed = |e: serde_json::Error| EntryError::Malformed(e.to_string());
        let Some(last) = found
            .entries
            .iter()
            .rposition(|e| e.kind == EntryKind::TraceLog)
        else {
            return Ok(None);
        };
        let base = &found.entries[last];
        let mut record: Map<String, Value> = serde_json::from_str(&base.body).map_err(malformed)?;
        let mut updates_applied = 0;
        let mut newest_id = base.id;
        for entry in &found.entries[last + 1..] {
            if entry.kind != EntryKind::TraceLogUpdate {
                continue;
            }
            let update: TraceLogUpdate = serde_json::from_str(&entry.body).map_err(malformed)?;
            record.extend(update.field_name_to_value_map);
            updates_applied += 1;
            newest_id = entry.id;
        }
        let delivery = if newest_id <= found.acked_through {
            Delivery::Acknowledged
        } else {
            Delivery::Waiting
        };
        Ok(Some(HeldTrace {
            trace_id: trace_id.to_owned(),
            delivery,
            spool_id: base.id,
            updates_applied,
            record,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::super::lookup::TraceEntry;
    use super::*;
    use serde_json::json;

    fn entry(id: u64, kind: EntryKind, body: Value) -> TraceEntry {
        TraceEntry {
            id,
            kind,
            body: body.to_string(),
        }
    }

    fn update(id: u64, fields: Value) -> TraceEntry {
        entry(
            id,
            EntryKind::TraceLogUpdate,
            json!({"trace_id": "t", "field_name_to_value_map": fields}),
        )
    }

    #[test]
    fn the_last_record_with_later_updates_applied() {
        let found = TraceEntries {
            entries: vec![
                entry(
                    1,
                    EntryKind::TraceLog,
                    json!({"trace_id": "t", "output": "old"}),
                ),
                update(2, json!({"output": "ignored: before the last record"})),
                entry(
                    4,
                    EntryKind::TraceLog,
                    json!({"trace_id": "t", "output": "a", "tags": ["x"]}),
                ),
                entry(5, EntryKind::Feedback, json!({"trace_id": "t", "score": 1})),
                update(6, json!({"output": "b", "latency": 2.5})),
                update(9, json!({"tags": []})),
            ],
            acked_through: 5,
        };
        let held = HeldTrace::from_entries("t", &found)
            .expect("decodes")
            .expect("a record");
        assert_eq!(held.spool_id, 4);
        assert_eq!(held.updates_applied, 2);
        assert_eq!(held.delivery, Delivery::Waiting, "update 9 is not acked");
        assert_eq!(
            Value::Object(held.record),
            json!({"trace_id": "t", "output": "b", "tags": [], "latency": 2.5})
        );
    }

    #[test]
    fn acknowledged_only_when_the_record_and_its_updates_are() {
        let mut found = TraceEntries {
            entries: vec![
                entry(3, EntryKind::TraceLog, json!({"trace_id": "t"})),
                update(7, json!({"output": "b"})),
            ],
            acked_through: 6,
        };
        let delivery = |found: &TraceEntries| {
            HeldTrace::from_entries("t", found)
                .expect("decodes")
                .expect("a record")
                .delivery
        };
        assert_eq!(delivery(&found), Delivery::Waiting);
        found.acked_through = 7;
        assert_eq!(delivery(&found), Delivery::Acknowledged);
    }

    #[test]
    fn updates_without_their_record_are_no_record() {
        let found = TraceEntries {
            entries: vec![update(2, json!({"output": "b"}))],
            acked_through: 0,
        };
        assert_eq!(HeldTrace::from_entries("t", &found), Ok(None));
    }
}
