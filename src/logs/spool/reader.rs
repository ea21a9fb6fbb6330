//! The spool's reader: hands out durable records in id order, each once (until a rewind or a restart).
//!
//! It reads the segment files (not memory), only up to each segment's published durable length,
//! with `pread` on a blocking-pool thread. Records read but not yet handed out wait in `ready`,
//! which is what makes [`read_batch`] cancel-safe. A damaged frame found while reading (bit rot
//! after the write) is skipped and counted like at start-up.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::Mutex;

use super::error::SpoolError;
use super::fs::SpoolFile;
use super::segment::{parse_frame, scan, Parsed, Piece, FRAME_HEADER};
use super::state::{Handed, SegmentMeta, Shared};

/// One durable record handed to the reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolRecord {
    /// Monotonic spool id: pass it to [`super::Spool::ack`]; stable across restarts.
    pub id: u64,
    pub payload: Bytes,
}

/// Bytes read from a segment at a time (more when one frame is larger).
const READ_CHUNK: u64 = 256 * 1024;

/// Reader position and read-ahead.
pub struct Reader {
    /// Every id up to here was read (or skipped); the next record handed out is above it.
    position: u64,
    cursor: Option<Cursor>,
    ready: VecDeque<Item>,
    ready_records: usize,
}

struct Cursor {
    first_id: u64,
    file: Arc<dyn SpoolFile>,
    offset: u64,
}

enum Item {
    Record(SpoolRecord),
    Skipped { through: u64, records: u64 },
}

impl Reader {
    /// A reader that starts right after `acked_through`.
    pub fn new(acked_through: u64) -> Reader {
        Reader {
            position: acked_through,
            cursor: None,
            ready: VecDeque::new(),
            ready_records: 0,
        }
    }

    /// Hand out up to `max` records from `ready` (and the skipped runs before them).
    fn drain(&mut self, shared: &Shared, max: usize) -> Vec<SpoolRecord> {
        let mut out = Vec::new();
        let mut handed = Vec::new();
        while let Some(item) = self.ready.front() {
            if matches!(item, Item::Record(_)) && out.len() >= max {
                break;
            }
            match self.ready.pop_front() {
                Some(Item::Record(record)) => {
                    handed.push(Handed::Record(record.id));
                    out.push(record);
                    self.ready_records -= 1;
                }
                Some(Item::Skipped { through, records }) => {
                    handed.push(Handed::Skipped { through, records });
                }
                None => break,
            }
        }
        shared.hand_out(handed);
        out
    }

    /// Read ahead until `max` records are ready or every durable record was read.
    fn fill(&mut self, shared: &Shared, max: usize) -> Result<(), SpoolError> {
        let snapshot = shared.snapshot();
        for (first_id, meta) in &snapshot.segments {
            if meta.last_id <= self.position {
                continue;
            }
            if self.ready_records >= max {
                return Ok(());
            }
            self.read_segment(shared, *first_id, meta, max)?;
        }
        if self.ready_records < max {
            // All that was durable is read; ids up to the commit point that are in no file
            // belonged to a failed batch.
            self.position = self.position.max(snapshot.committed_id);
        }
        Ok(())
    }

    fn read_segment(
        &mut self,
        shared: &Shared,
        first_id: u64,
        meta: &SegmentMeta,
        max: usize,
    ) -> Result<(), SpoolError> {
        if self.cursor.as_ref().map(|c| c.first_id) != Some(first_id) {
            let file = shared
                .fs
                .open_read(&meta.path)
                .map_err(|e| SpoolError::io(&meta.path, "opening a segment", e))?;
            self.cursor = Some(Cursor {
                first_id,
                file,
                offset: 0,
            });
        }
        let Some(mut cursor) = self.cursor.take() else {
            return Ok(());
        };
        let result = self.read_frames(shared, &mut cursor, meta, max);
        self.cursor = Some(cursor);
        result
    }

    fn read_frames(
        &mut self,
        shared: &Shared,
        cursor: &mut Cursor,
        meta: &SegmentMeta,
        max: usize,
    ) -> Result<(), SpoolError> {
        let end = meta.durable_len;
        let mut want = READ_CHUNK;
        while cursor.offset < end && self.ready_records < max {
            let len = want.min(end - cursor.offset);
            let buf = read_at(&*cursor.file, cursor.offset, len, meta)?;
            let mut at = 0;
            while at < buf.len() && self.ready_records < max {
                match parse_frame(&buf[at..]) {
                    Parsed::Frame(frame) => {
                        if frame.id > self.position {
                            self.push_record(frame.id, Bytes::copy_from_slice(frame.payload));
                        }
                        at += frame.len;
                    }
                    Parsed::Incomplete { need } if cursor.offset + (at + need) as u64 <= end => {
                        want = want.max(need as u64);
                        break;
                    }
                    Parsed::Incomplete { .. } | Parsed::Invalid => {
                        cursor.offset += at as u64;
                        return self.read_damaged(shared, cursor, meta);
                    }
                }
            }
            cursor.offset += at as u64;
        }
        Ok(())
    }

    /// The frame at `cursor.offset` is damaged: scan the rest of the durable region, hand out
    /// every valid frame in it and skip (and count) what is lost.
    fn read_damaged(
        &mut self,
        shared: &Shared,
        cursor: &mut Cursor,
        meta: &SegmentMeta,
    ) -> Result<(), SpoolError> {
        let end = meta.durable_len;
        let buf = read_at(&*cursor.file, cursor.offset, end - cursor.offset, meta)?;
        let mut damaged = false;
        for piece in scan(&buf, self.position) {
            match piece {
                Piece::Frame {
                    offset, len, id, ..
                } => {
                    if damaged {
                        self.skip_to(shared, id - 1, meta);
                        damaged = false;
                    }
                    let payload = Bytes::copy_from_slice(&buf[offset + FRAME_HEADER..offset + len]);
                    self.push_record(id, payload);
                }
                Piece::Corrupt { .. } => damaged = true,
            }
        }
        if damaged {
            self.skip_to(shared, meta.last_id, meta);
        }
        cursor.offset = end;
        Ok(())
    }

    /// Skip ids up to `through` as lost to damage.
    fn skip_to(&mut self, shared: &Shared, through: u64, meta: &SegmentMeta) {
        let records = through.saturating_sub(self.position);
        if records == 0 {
            return;
        }
        tracing::warn!(path = %meta.path.display(), records, through, "skipping damaged records in the log spool");
        shared
            .counters
            .corrupt_skipped
            .fetch_add(records, Ordering::Relaxed);
        self.position = through;
        self.ready.push_back(Item::Skipped { through, records });
    }

    fn push_record(&mut self, id: u64, payload: Bytes) {
        self.position = id;
        self.ready_records += 1;
        self.ready
            .push_back(Item::Record(SpoolRecord { id, payload }));
    }
}

/// Read `len` bytes at `offset` of a segment file (also used by [`super::lookup`]).
pub(super) fn read_at(
    file: &dyn SpoolFile,
    offset: u64,
    len: u64,
    meta: &SegmentMeta,
) -> Result<Vec<u8>, SpoolError> {
    let mut buf = vec![0; len as usize];
    file.read_exact_at(&mut buf, offset)
        .map_err(|e| SpoolError::io(&meta.path, "reading a segment", e))?;
    Ok(buf)
}

/// See [`super::Spool::read_batch`].
pub async fn read_batch(
    shared: &Arc<Shared>,
    reader: &Arc<Mutex<Reader>>,
    max: usize,
) -> Result<Vec<SpoolRecord>, SpoolError> {
    loop {
        // Subscribe before looking, so a commit in between still wakes us.
        let mut commits = shared.commits.subscribe();
        let must_read = {
            let mut r = reader.lock().await;
            if !r.ready.is_empty() {
                let out = r.drain(shared, max);
                if !out.is_empty() {
                    return Ok(out);
                }
                continue;
            }
            let (committed, closed) = shared.with_state(|s| (s.committed_id, s.closed));
            if committed > r.position {
                true
            } else if closed {
                return Err(SpoolError::Closed);
            } else {
                false
            }
        };
        if must_read {
            let (shared2, reader2) = (shared.clone(), reader.clone());
            tokio::task::spawn_blocking(move || reader2.blocking_lock().fill(&shared2, max))
                .await
                .map_err(|e| {
                    SpoolError::io(&shared.opts.dir, "reading", std::io::Error::other(e))
                })??;
            continue;
        }
        if commits.changed().await.is_err() {
            return Err(SpoolError::Closed);
        }
    }
}
