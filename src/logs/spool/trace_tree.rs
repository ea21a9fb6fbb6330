//! A trace read back with its children, and its answer in Parea's `TraceLogTree` shape: what
//! `GET /trace_log/{trace_id}` sends, so the SDK's `get_trace_log` parses it
//! (`structure_trace_log_from_api`).
//!
//! **Gathering** ([`gather`]): the trace's [`HeldTrace`], then, level by level, the traces its
//! record lists in `children` (the SDK's decorators list each child's trace id there), each
//! level found in one pass over the spool (`lookup::find_traces`). So a tree costs one spool
//! scan per level, at most [`MAX_CHILD_LEVELS`] + 1, and holds at most [`MAX_NODES`] records.
//! A listed child that is not held (shipped and its segment removed, never sent, beyond those
//! bounds, or already in the tree) is left out and counted in [`TraceTree::children_missing`].
//!
//! **Rendering** ([`TraceTree::to_trace_log_tree`]): exactly the fields of the SDK's
//! `TraceLogTree` (`TRACE_LOG_TREE_FIELDS`), from the record with its updates applied; a
//! field the record lacks or holds as `null` gets the SDK's own default where the SDK's parser
//! cannot take a null (lists, maps, `configuration`, whose own null entries are left out), else
//! null. `trace_id`,
//! `parent_trace_id`, `root_trace_id` and `start_timestamp` are always strings (the SDK
//! validates them so): a root record's parent and root are its own id, as the hosted API
//! answers; a child's missing parent or root come from its place in the tree; a missing start
//! is the record's end, else the empty string. Record fields outside `TraceLogTree` are left out
//! (the SDK ignores them); `GET /logs/trace/{trace_id}` shows the record whole.

use std::collections::HashSet;

use serde_json::{Map, Value};

use super::error::SpoolError;
use super::held_trace::HeldTrace;
use super::lookup;
use super::state::Shared;
use crate::logs::record::entry::EntryError;

/// Levels of children looked up below a trace: each is one pass over the spool.
pub const MAX_CHILD_LEVELS: usize = 8;
/// Records in one tree, the trace's own included: bounds the answer and the memory it takes.
pub const MAX_NODES: usize = 1_000;

/// The fields of the SDK's `TraceLogTree` (`parea/schemas/models.py`), in its order, each with
/// what an answer holds when the record has no value for it.
const TRACE_LOG_TREE_FIELDS: &[(&str, Fill)] = &[
    ("configuration", Fill::Configuration),
    ("inputs", Fill::Null),
    ("output", Fill::Null),
    ("target", Fill::Null),
    ("latency", Fill::ZeroFloat),
    ("time_to_first_token", Fill::Null),
    ("input_tokens", Fill::Zero),
    ("output_tokens", Fill::Zero),
    ("total_tokens", Fill::Zero),
    ("cost", Fill::ZeroFloat),
    ("scores", Fill::EmptyList),
    ("trace_id", Fill::Id(Id::Trace)),
    ("parent_trace_id", Fill::Id(Id::Parent)),
    ("root_trace_id", Fill::Id(Id::Root)),
    ("start_timestamp", Fill::Id(Id::Start)),
    ("organization_id", Fill::Null),
    ("project_uuid", Fill::Null),
    ("error", Fill::Null),
    ("status", Fill::Null),
    ("deployment_id", Fill::Null),
    ("cache_hit", Fill::False),
    ("output_for_eval_metrics", Fill::Null),
    ("evaluation_metric_names", Fill::EmptyList),
    ("apply_eval_frac", Fill::OneFloat),
    ("log_sample_rate", Fill::OneFloat),
    ("feedback_score", Fill::Null),
    ("trace_name", Fill::Null),
    ("children", Fill::EmptyList),
    ("end_timestamp", Fill::Null),
    ("end_user_identifier", Fill::Null),
    ("session_id", Fill::Null),
    ("metadata", Fill::Null),
    ("tags", Fill::EmptyList),
    ("experiment_uuid", Fill::Null),
    ("images", Fill::EmptyList),
    ("comments", Fill::EmptyList),
    ("annotations", Fill::EmptyMap),
    ("depth", Fill::Zero),
    ("execution_order", Fill::Zero),
    ("children_logs", Fill::Children),
];

/// What a `TraceLogTree` field holds when the record has no value for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fill {
    Null,
    /// `[]`: the SDK iterates it (or defaults it to a list).
    EmptyList,
    /// `{}`: the SDK reads it as a map (`configuration` becomes its default `LLMInputs()`).
    EmptyMap,
    Zero,
    ZeroFloat,
    OneFloat,
    False,
    /// A string the SDK requires.
    Id(Id),
    /// The children found in the spool.
    Children,
    /// The record's `configuration` without its null entries (the SDK's parser iterates
    /// `messages` and reads `model_params` whenever they are present, and the SDK itself sends
    /// them as null), `{}` if it is not an object.
    Configuration,
}

/// The strings the SDK requires, and where they come from when the record lacks them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Id {
    Trace,
    Parent,
    Root,
    Start,
}

/// A trace held in the spool, with the children of it that are held too.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceTree {
    pub trace: HeldTrace,
    /// In the order the record lists them.
    pub children: Vec<TraceTree>,
    /// On the tree's root: how many trace ids listed in `children`, at any depth, are not in
    /// the tree (see [`gather`]). 0 on the nodes below it.
    pub children_missing: usize,
}

/// A trace found, waiting for its children.
struct Node {
    trace: HeldTrace,
    children: Vec<usize>,
}

/// The tree of `trace_id` as the spool holds it, `None` if the trace itself is not held.
/// Blocking: one pass over the spool per level.
pub fn gather(shared: &Shared, trace_id: &str) -> Result<Option<TraceTree>, SpoolError> {
    let Some(root) = held(trace_id, &lookup::find_trace(shared, trace_id)?)? else {
        return Ok(None);
    };
    let mut nodes = vec![Node {
        trace: root,
        children: Vec::new(),
    }];
    let mut seen = HashSet::from([trace_id.to_owned()]);
    let mut missing = 0;
    let mut level = vec![0];
    for depth in 0..=MAX_CHILD_LEVELS {
        // (parent node, child id) of every child listed on this level, new ones only.
        let mut wanted = Vec::new();
        for &parent in &level {
            for child in listed_children(&nodes[parent].trace.record) {
                if depth < MAX_CHILD_LEVELS && seen.insert(child.to_owned()) {
                    wanted.push((parent, child.to_owned()));
                } else {
                    missing += 1;
                }
            }
        }
        if wanted.is_empty() {
            break;
        }
        let ids: HashSet<&str> = wanted.iter().map(|(_, id)| id.as_str()).collect();
        let found = lookup::find_traces(shared, &ids)?;
        let mut next = Vec::new();
        for (parent, id) in wanted {
            let trace = match found.get(&id) {
                Some(entries) if nodes.len() < MAX_NODES => held(&id, entries)?,
                _ => None,
            };
            let Some(trace) = trace else {
                missing += 1;
                continue;
            };
            nodes.push(Node {
                trace,
                children: Vec::new(),
            });
            let index = nodes.len() - 1;
            nodes[parent].children.push(index);
            next.push(index);
        }
        level = next;
    }
    let mut nodes: Vec<Option<Node>> = nodes.into_iter().map(Some).collect();
    Ok(assemble(&mut nodes, 0).map(|tree| TraceTree {
        children_missing: missing,
        ..tree
    }))
}

fn held(trace_id: &str, found: &lookup::TraceEntries) -> Result<Option<HeldTrace>, SpoolError> {
    HeldTrace::from_entries(trace_id, found).map_err(|source: EntryError| SpoolError::BadEntry {
        trace_id: trace_id.to_owned(),
        source,
    })
}

/// The child trace ids a record lists; anything in `children` but a string is passed over.
fn listed_children(record: &Map<String, Value>) -> impl Iterator<Item = &str> {
    record
        .get("children")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|id| !id.is_empty())
}

/// Node `index` and its descendants, taken out of `nodes`. `gather` gives every node but the
/// first one parent, so each is there when asked for.
fn assemble(nodes: &mut [Option<Node>], index: usize) -> Option<TraceTree> {
    let Node { trace, children } = nodes.get_mut(index)?.take()?;
    Some(TraceTree {
        trace,
        children: children
            .into_iter()
            .filter_map(|c| assemble(nodes, c))
            .collect(),
        children_missing: 0,
    })
}

/// Where a tree node sits: the ids its missing parent and root come from.
#[derive(Clone, Copy)]
struct Place<'a> {
    parent: Option<&'a str>,
    root: Option<&'a str>,
}

impl TraceTree {
    /// The SDK's `TraceLogTree` of this tree (see the module header).
    pub fn to_trace_log_tree(&self) -> Value {
        self.render(Place {
            parent: None,
            root: None,
        })
    }

    fn render(&self, place: Place<'_>) -> Value {
        let record = &self.trace.record;
        let text = |field: &str| {
            record
                .get(field)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        let own = self.trace.trace_id.as_str();
        let parent = text("parent_trace_id").or(place.parent).unwrap_or(own);
        let root = text("root_trace_id").or(place.root).unwrap_or(own);
        let start = text("start_timestamp")
            .or_else(|| text("end_timestamp"))
            .unwrap_or("");
        let below = Place {
            parent: Some(own),
            root: Some(root),
        };
        let mut out = Map::with_capacity(TRACE_LOG_TREE_FIELDS.len());
        for &(field, fill) in TRACE_LOG_TREE_FIELDS {
            let value = match fill {
                Fill::Id(id) => Value::from(match id {
                    Id::Trace => own,
                    Id::Parent => parent,
                    Id::Root => root,
                    Id::Start => start,
                }),
                Fill::Children => self.children.iter().map(|c| c.render(below)).collect(),
                Fill::Configuration => configuration(record.get(field)),
                _ => match record.get(field) {
                    Some(value) if !value.is_null() => value.clone(),
                    _ => fill.default_value(),
                },
            };
            out.insert(field.to_owned(), value);
        }
        Value::Object(out)
    }
}

/// See [`Fill::Configuration`].
fn configuration(value: Option<&Value>) -> Value {
    let set = value
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.clone(), v.clone()));
    Value::Object(set.collect())
}

impl Fill {
    fn default_value(self) -> Value {
        match self {
            Fill::Null | Fill::Id(_) => Value::Null,
            Fill::EmptyList | Fill::Children => Value::Array(Vec::new()),
            Fill::EmptyMap | Fill::Configuration => Value::Object(Map::new()),
            Fill::Zero => Value::from(0),
            Fill::ZeroFloat => Value::from(0.0),
            Fill::OneFloat => Value::from(1.0),
            Fill::False => Value::Bool(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::Delivery;
    use serde_json::json;

    fn trace(id: &str, record: Value) -> HeldTrace {
        HeldTrace {
            trace_id: id.to_owned(),
            delivery: Delivery::Waiting,
            spool_id: 1,
            updates_applied: 0,
            record: record.as_object().cloned().unwrap_or_default(),
        }
    }

    fn leaf(id: &str, record: Value) -> TraceTree {
        TraceTree {
            trace: trace(id, record),
            children: Vec::new(),
            children_missing: 0,
        }
    }

    #[test]
    fn every_field_once_with_the_sdks_defaults_for_nulls() {
        let record = json!({"trace_id": "t", "comments": null, "scores": null, "cost": 0.25,
            "eval_metric_ids": [3], "future": 1,
            "configuration": {"model": "m", "messages": null, "model_params": {"max_length": null}}});
        let tree = leaf("t", record).to_trace_log_tree();
        let mut got: Vec<&str> = tree
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        let mut want: Vec<&str> = TRACE_LOG_TREE_FIELDS.iter().map(|(f, _)| *f).collect();
        got.sort_unstable();
        want.sort_unstable();
        assert_eq!(got, want, "no field of the record outside TraceLogTree");
        assert_eq!(tree["comments"], json!([]));
        assert_eq!(tree["scores"], json!([]));
        assert_eq!(tree["annotations"], json!({}));
        assert_eq!(
            tree["configuration"],
            json!({"model": "m", "model_params": {"max_length": null}}),
            "the SDK parses every entry present: none of them null"
        );
        assert_eq!(tree["cost"], 0.25);
        assert_eq!(tree["apply_eval_frac"], 1.0);
        assert_eq!(tree["output"], Value::Null);
        assert_eq!(tree["start_timestamp"], "", "a string even without a time");
    }

    #[test]
    fn ids_come_from_the_record_else_from_the_place_in_the_tree() {
        let mut root = leaf(
            "r",
            json!({"trace_id": "r", "parent_trace_id": null,
            "end_timestamp": "2024-01-01T00:00:01Z"}),
        );
        root.children
            .push(leaf("c", json!({"trace_id": "c", "parent_trace_id": ""})));
        root.children.push(leaf(
            "d",
            json!({"parent_trace_id": "elsewhere", "root_trace_id": 7}),
        ));
        let tree = root.to_trace_log_tree();
        assert_eq!(
            (&tree["parent_trace_id"], &tree["root_trace_id"]),
            (&json!("r"), &json!("r"))
        );
        assert_eq!(tree["start_timestamp"], "2024-01-01T00:00:01Z");
        let c = &tree["children_logs"][0];
        assert_eq!(
            (&c["parent_trace_id"], &c["root_trace_id"]),
            (&json!("r"), &json!("r"))
        );
        let d = &tree["children_logs"][1];
        assert_eq!(d["trace_id"], "d");
        assert_eq!(
            (&d["parent_trace_id"], &d["root_trace_id"]),
            (&json!("elsewhere"), &json!("r")),
            "a root id that is not a string is replaced"
        );
    }
}
