//! Finding traces' entries among the records the spool still holds, for
//! `GET /logs/trace/{trace_id}` (one trace) and `GET /trace_log/{trace_id}` (a trace and, one
//! pass per level, its children).
//!
//! **Read-only.** Nothing here writes, truncates, deletes or acknowledges, and the reader's
//! position is not touched: the flusher sees exactly what it would have seen without a lookup.
//!
//! It reads the way the reader does: a [`Shared::snapshot`] of the segment table (the state
//! lock held only for that copy), then each segment with `pread`, only up to the durable length
//! published in the snapshot, so a frame being written is never seen half-done. A segment
//! deleted after the snapshot held only acknowledged records and is passed over; one opened
//! before its deletion stays readable. Frames are split by [`scan`], which passes over damage
//! (the reader counts it when it gets there, this does not); a payload that does not decode as
//! an entry is passed over too.
//!
//! Cost: every durable byte on disk is read and every payload decoded, one segment in memory at
//! a time, however many traces one pass looks for. Callers run it on the blocking pool.

use std::collections::{HashMap, HashSet};
use std::io::ErrorKind;

use super::error::SpoolError;
use super::fs::SpoolFs;
use super::reader::read_at;
use super::segment::{scan, Piece, FRAME_HEADER};
use super::state::{SegmentMeta, Shared};
use crate::logs::record::entry::{EntryKind, EntryRef};

/// One durable entry of the trace that was looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceEntry {
    /// Its spool id: entries come in id order, the order they were accepted in.
    pub id: u64,
    pub kind: EntryKind,
    /// The entry as JSON text, as it will be (or was) shipped.
    pub body: String,
}

/// What a lookup found, with the acknowledged position read after the scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceEntries {
    pub entries: Vec<TraceEntry>,
    /// Every record up to this id is acknowledged by the flusher (sent, or given up on).
    pub acked_through: u64,
}

/// Every durable entry whose envelope names `trace_id`, in id order. Blocking.
pub fn find_trace(shared: &Shared, trace_id: &str) -> Result<TraceEntries, SpoolError> {
    let found = find_traces(shared, &HashSet::from([trace_id]))?.remove(trace_id);
    Ok(found.unwrap_or_else(|| TraceEntries {
        entries: Vec::new(),
        acked_through: shared.acked_through(),
    }))
}

/// The entries of each of `trace_ids` that has any, in one pass over the spool. Blocking.
pub fn find_traces(
    shared: &Shared,
    trace_ids: &HashSet<&str>,
) -> Result<HashMap<String, TraceEntries>, SpoolError> {
    let snapshot = shared.snapshot();
    let mut found: HashMap<String, Vec<TraceEntry>> = HashMap::new();
    for (_, meta) in &snapshot.segments {
        collect_from_segment(&*shared.fs, meta, trace_ids, &mut found)?;
    }
    let acked_through = shared.acked_through();
    Ok(found
        .into_iter()
        .map(|(id, entries)| {
            let entries = TraceEntries {
                entries,
                acked_through,
            };
            (id, entries)
        })
        .collect())
}

fn collect_from_segment(
    fs: &dyn SpoolFs,
    meta: &SegmentMeta,
    trace_ids: &HashSet<&str>,
    out: &mut HashMap<String, Vec<TraceEntry>>,
) -> Result<(), SpoolError> {
    if meta.durable_len == 0 {
        return Ok(());
    }
    let file = match fs.open_read(&meta.path) {
        Ok(file) => file,
        // Deleted since the snapshot: every record in it was acknowledged.
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(SpoolError::io(&meta.path, "opening a segment", e)),
    };
    let buf = read_at(&*file, 0, meta.durable_len, meta)?;
    for piece in scan(&buf, 0) {
        let Piece::Frame {
            offset, len, id, ..
        } = piece
        else {
            continue;
        };
        // In place: only the matching entry's body is copied.
        let Ok(entry) = EntryRef::decode(&buf[offset + FRAME_HEADER..offset + len]) else {
            continue;
        };
        if trace_ids.contains(entry.trace_id) {
            out.entry(entry.trace_id.to_owned())
                .or_default()
                .push(TraceEntry {
                    id,
                    kind: entry.kind,
                    body: entry.body.to_owned(),
                });
        }
    }
    Ok(())
}
