//! The spool's write side: a record is framed and written to the active segment by the thread
//! that appends it, under one lock, before [`super::Spool::append`] returns.
//!
//! Written means in the kernel's page cache: the record then survives anything that ends the
//! process but not the machine (SIGKILL, an OOM kill, a panic with `panic = "abort"`), and a
//! caller that appends a record before it answers can never have answered something the spool
//! does not hold. Durable (fsynced) is the writer thread's part, once per group commit
//! ([`super::writer`]): only a power loss or a kernel crash can lose what was written since.
//!
//! **Mapped segments.** A record is copied into a shared map of the active segment file: the
//! map's pages are the file's pages in the page cache, so the copy is the write, with no
//! system call (a `write(2)` per record was about a tenth of a cache hit's CPU). The file is
//! mapped a window at a time ([`WINDOW`], or a record's size if larger), each window's blocks
//! allocated first (`fallocate`), so a store into it can never meet a full disk (that would be
//! a SIGBUS): a full disk is the `fallocate`'s error, a failed write like any other. The
//! file's length runs ahead of its records, by zeros, up to the window's end; sealing the
//! segment or closing the spool cuts them off, and recovery cuts them off a file a SIGKILL
//! left (an all-zero tail). The group commit's `fdatasync` writes the map's dirty pages like
//! any others. A segment whose first map cannot be made (a file system without `fallocate` or
//! without shared maps, a system call filter, a full disk) gets one `write(2)` of one frame per
//! record instead, from an empty file, as the tests' simulated file system does; a later map
//! refused fails its record (the file is then longer than its records), and the next record
//! starts a segment that decides anew.
//!
//! Rotation creates the next segment file here too; its directory entry is fsynced with the
//! next group commit, before any of its records counts as durable.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::oneshot;

use super::error::NotDurable;
use super::fs::{SpoolFile, MAP_ALIGN};
use super::segment::{encode_frame, place_frame, segment_path, FRAME_HEADER};
use super::state::{now_ms, SegmentMeta, Shared};
use super::write_state::{
    Appender, Batch, BatchFile, FailureRun, Segment, Unsynced, Window, Writes,
};

/// A frame buffer grown past this by one large record is given back after it.
const KEEP_BUFFER: usize = 256 * 1024;

/// How much of a segment is mapped (and allocated) at a time: a megabyte of pages held in the
/// daemon's resident memory and of disk ahead of the records, at most; a new map every
/// thousand or so records. Smaller for small segments.
pub const WINDOW: u64 = 1024 * 1024;

impl Appender {
    pub fn new(next_id: u64) -> Appender {
        Appender {
            next_id,
            active: None,
            sealed: Vec::new(),
            dir_dirty: false,
            unsynced: Vec::new(),
            unsynced_bytes: 0,
            first_at: None,
            flush: false,
            shutdown: false,
            sync_waiters: Vec::new(),
            acks: false,
            buf: Vec::new(),
            failing: None,
        }
    }

    /// Records written and waiting for their group commit.
    pub fn unsynced_len(&self) -> usize {
        self.unsynced.len()
    }

    /// Write `payload` as the next record (its `size` already reserved against the bound).
    /// `done` (if any) learns its id once it is durable, or why it is not: a failed write answers it at
    /// once and gives the reservation back. Returns whether the writer must be woken (the
    /// first record of a batch starts its interval; a full batch is due now).
    pub fn write(
        &mut self,
        shared: &Shared,
        payload: &[u8],
        size: u64,
        done: Option<oneshot::Sender<Result<u64, NotDurable>>>,
    ) -> bool {
        let id = self.next_id;
        let at_ms = now_ms();
        if let Err(message) = self.write_frame(shared, id, at_ms, payload) {
            shared.release(size);
            self.note_failure(shared, 1, &message);
            if let Some(done) = done {
                let _ = done.send(Err(NotDurable(message)));
            }
            return false;
        }
        self.note_success();
        self.next_id += 1;
        self.unsynced.push(Unsynced {
            id,
            at_ms,
            size,
            done,
        });
        self.unsynced_bytes += size;
        let first = self.first_at.is_none();
        if first {
            self.first_at = Some(Instant::now());
        }
        first || self.unsynced.len() == shared.opts.max_batch
    }

    /// Frame and write one record, rotating first if it would take the active segment past
    /// `segment_bytes` (a record larger than that gets a segment of its own).
    fn write_frame(
        &mut self,
        shared: &Shared,
        id: u64,
        at_ms: u64,
        payload: &[u8],
    ) -> Result<(), String> {
        let frame = (FRAME_HEADER + payload.len()) as u64;
        if let Some(active) = self
            .active
            .take_if(|a| a.written > 0 && a.written + frame > shared.opts.segment_bytes)
        {
            self.seal(active);
        }
        if self.active.is_none() {
            self.active = Some(open_segment(shared, id)?);
            self.dir_dirty = true;
        }
        let Some(active) = self.active.as_mut() else {
            return Err("no active segment".into());
        };
        let written = match active.slot(frame, shared.opts.segment_bytes) {
            Ok(Some(slot)) => {
                place_frame(slot, id, at_ms, payload);
                Ok(frame)
            }
            Ok(None) => {
                self.buf.clear();
                encode_frame(&mut self.buf, id, at_ms, payload);
                let written = active.file.write_all(&self.buf);
                if self.buf.capacity() > KEEP_BUFFER {
                    self.buf = Vec::new();
                }
                written.map(|()| frame)
            }
            Err(e) => Err(e),
        };
        let frame_len = match written {
            Ok(len) => len,
            Err(e) => {
                let message = format!(
                    "writing {}: {e}",
                    segment_path(&shared.opts.dir, active.first_id).display()
                );
                self.give_up_active(shared);
                return Err(message);
            }
        };
        active.written += frame_len;
        active.last_id = id;
        Ok(())
    }

    /// Stop appending to `segment`; it is fsynced whole with the next group commit.
    fn seal(&mut self, mut segment: Segment) {
        segment.trim();
        if segment.written > segment.synced {
            self.sealed.push(segment);
        }
    }

    /// A write to the active segment failed: whatever it left after the last whole frame is
    /// cut off if possible, and the file gets no more records (its frames already written
    /// still become durable with the next group commit). A file left with no record is
    /// deleted; if it stays, its name is that of the next id, which is then spent (ids may
    /// have gaps), or the next record would try to create the same file again, and so would
    /// every one after it.
    fn give_up_active(&mut self, shared: &Shared) {
        let Some(mut active) = self.active.take() else {
            return;
        };
        active.unmap();
        let left = cut_back(shared, &*active.file, active.first_id, active.written);
        if active.last_id != 0 {
            self.seal(active);
        } else if left != 0 || !forget_segment(shared, active.first_id) {
            self.next_id = self.next_id.max(active.first_id + 1);
        }
    }

    /// The spool closes: the active segment's unused room is cut off (its records are all
    /// written; the writer's last commit makes them durable).
    pub fn close(&mut self) {
        if let Some(active) = self.active.as_mut() {
            active.trim();
        }
    }

    /// Take what the next group commit makes durable.
    pub fn take_batch(&mut self) -> Batch {
        let mut files: Vec<BatchFile> = self.sealed.drain(..).map(Segment::batch_file).collect();
        if let Some(active) = self.active.as_ref().filter(|a| a.written > a.synced) {
            files.push(active.batch_file_ref());
        }
        self.first_at = None;
        self.unsynced_bytes = 0;
        Batch {
            files,
            dir: std::mem::take(&mut self.dir_dirty),
            records: std::mem::take(&mut self.unsynced),
        }
    }

    /// A group commit fsynced `batch`: the active segment is durable up to what it had then.
    fn synced(&mut self, batch: &Batch) {
        for f in &batch.files {
            if let Some(active) = self.active.as_mut().filter(|a| a.first_id == f.first_id) {
                active.synced = active.synced.max(f.written);
            }
        }
        self.note_success();
    }

    /// A group commit failed: nothing written since the last one can be trusted to reach the
    /// disk. Every file is cut back to what was fsynced, and every record written since, in
    /// `batch` or after it, fails. Their ids are spent (the reader passes them).
    fn lose_unsynced(&mut self, shared: &Shared, batch: Batch, message: &str) {
        let mut cut: BTreeMap<u64, (Arc<dyn SpoolFile>, u64, u64)> = BTreeMap::new();
        for f in batch.files {
            cut.insert(f.first_id, (f.file, f.synced, f.last_id));
        }
        for s in self.sealed.drain(..).chain(self.active.take()) {
            cut.entry(s.first_id)
                .or_insert((s.file, s.synced, s.last_id));
        }
        for (first_id, (file, synced, _)) in cut {
            let left = cut_back(shared, &*file, first_id, synced);
            let durable = shared.with_state(|s| s.segments.get(&first_id).map_or(0, |m| m.last_id));
            if durable == 0 && left == 0 {
                forget_segment(shared, first_id);
            }
        }
        let mut failed = batch.records;
        failed.append(&mut self.unsynced);
        self.unsynced_bytes = 0;
        self.first_at = None;
        shared.release(failed.iter().map(|r| r.size).sum());
        self.note_failure(shared, failed.len() as u64, message);
        let spent = self.next_id - 1;
        shared.with_state(|s| s.committed_id = s.committed_id.max(spent));
        for record in failed {
            record.failed(message);
        }
        shared.notify_commit(spent);
    }

    /// Every record not yet durable fails (the writer is gone); who waits in
    /// [`super::Spool::sync`] stops waiting.
    pub fn fail_unsynced(&mut self, message: &str) {
        self.sync_waiters.clear();
        for record in self.unsynced.drain(..) {
            record.failed(message);
        }
        self.unsynced_bytes = 0;
        self.first_at = None;
    }

    /// Whether the segment from `first_id`, durable and acknowledged through `acked`, may be
    /// deleted: not while records written to it are not fsynced or not acknowledged. A spent
    /// active segment is given up (the next record starts a new one).
    pub fn release_if_spent(&mut self, first_id: u64, acked: u64) -> bool {
        if self.sealed.iter().any(|s| s.first_id == first_id) {
            return false;
        }
        match &self.active {
            Some(a) if a.first_id == first_id => {
                let spent = a.last_id != 0 && a.last_id <= acked && a.synced == a.written;
                if spent {
                    self.active = None;
                }
                spent
            }
            _ => true,
        }
    }

    fn note_failure(&mut self, shared: &Shared, records: u64, message: &str) {
        match &mut self.failing {
            Some(run) => {
                run.failures += 1;
                run.records += records;
                tracing::debug!(error = %message, records, "log spool write failed");
            }
            None => {
                tracing::error!(
                    error = %message,
                    records,
                    "log spool write failed: records are not stored until it can write again \
                     (further failures are counted in /logs/status)"
                );
                self.failing = Some(FailureRun {
                    since: Instant::now(),
                    failures: 1,
                    records,
                });
            }
        }
        shared.counters.write_errors.fetch_add(1, Ordering::Relaxed);
        shared.with_state(|s| s.last_write_error = Some(message.to_owned()));
    }

    fn note_success(&mut self) {
        if let Some(run) = self.failing.take() {
            tracing::warn!(
                failed_writes = run.failures,
                records_lost = run.records,
                after = ?run.since.elapsed(),
                "log spool writes again"
            );
        }
    }
}

impl Segment {
    /// Where the next frame, `len` bytes, goes in the map, mapping the next part of the file if
    /// this one is full; `None` for a file written with `write(2)`. A map is [`WINDOW`] bytes
    /// (or the frame's, if larger), ending no further than `segment_bytes` (rounded up to
    /// [`MAP_ALIGN`]) unless the frame does: the zeros ahead stay within the segment.
    fn slot(&mut self, len: u64, segment_bytes: u64) -> std::io::Result<Option<&mut [u8]>> {
        let end = self.written + len;
        if let Writes::Mapped(Some(w)) = &self.writes {
            if end > w.start + w.map.len() as u64 {
                self.writes = Writes::Mapped(None);
            }
        }
        if let Writes::Undecided | Writes::Mapped(None) = self.writes {
            let start = self.written - self.written % MAP_ALIGN;
            let room = segment_bytes
                .next_multiple_of(MAP_ALIGN)
                .saturating_sub(start);
            let size = (end - start)
                .max(WINDOW.min(room))
                .next_multiple_of(MAP_ALIGN);
            let size = usize::try_from(size).map_err(std::io::Error::other)?;
            let first = matches!(self.writes, Writes::Undecided);
            self.writes = match self.file.map_for_append(start, size) {
                Ok(Some(map)) => Writes::Mapped(Some(Window { start, map })),
                Ok(None) if first => Writes::Appended,
                // The first map refused (a system call filter, a file system that does not map,
                // a full disk): this segment's records go through `write(2)`, which says what is
                // wrong if anything is, from an empty file (a map refused after its `fallocate`
                // leaves zeros).
                Err(e) if first => {
                    tracing::debug!(first_id = self.first_id, error = %e, "a log spool segment is not mapped; its records are written with write(2)");
                    self.file.set_len(0)?;
                    Writes::Appended
                }
                // Mapped before, not now: its length is past its records, so `write(2)` at its
                // end would leave a gap of zeros. The record fails; the next segment decides anew.
                Ok(None) => {
                    return Err(std::io::Error::other(
                        "the segment file can no longer be mapped",
                    ))
                }
                Err(e) => return Err(e),
            };
        }
        let Writes::Mapped(Some(w)) = &mut self.writes else {
            return Ok(None);
        };
        let at = usize::try_from(self.written - w.start).map_err(std::io::Error::other)?;
        let len = usize::try_from(len).map_err(std::io::Error::other)?;
        match w.map.get_mut(at..at + len) {
            Some(slot) => Ok(Some(slot)),
            None => Err(std::io::Error::other("a frame outside its segment's map")),
        }
    }

    /// Drop the map (the file is no longer written through it).
    fn unmap(&mut self) {
        if let Writes::Mapped(window) = &mut self.writes {
            *window = None;
        }
    }

    /// No more records: unmap, and cut off the zeros allocated ahead of the records. Should
    /// that fail, recovery cuts them off after the next start.
    fn trim(&mut self) {
        if let Writes::Mapped(_) = self.writes {
            self.unmap();
            if let Err(e) = self.file.set_len(self.written) {
                tracing::debug!(first_id = self.first_id, error = %e, "cannot cut the unused room off a log spool segment");
            }
        }
    }

    fn batch_file(self) -> BatchFile {
        BatchFile {
            first_id: self.first_id,
            file: self.file,
            written: self.written,
            synced: self.synced,
            last_id: self.last_id,
        }
    }

    fn batch_file_ref(&self) -> BatchFile {
        BatchFile {
            first_id: self.first_id,
            file: Arc::clone(&self.file),
            written: self.written,
            synced: self.synced,
            last_id: self.last_id,
        }
    }
}

/// Create the segment file for records from `first_id` and enter it in the segment table.
fn open_segment(shared: &Shared, first_id: u64) -> Result<Segment, String> {
    let path = segment_path(&shared.opts.dir, first_id);
    let file = shared
        .fs
        .create_new(&path)
        .map_err(|e| format!("creating {}: {e}", path.display()))?;
    shared.with_state(|s| {
        s.segments.insert(
            first_id,
            SegmentMeta {
                path,
                durable_len: 0,
                file_bytes: 0,
                last_id: 0,
            },
        )
    });
    Ok(Segment {
        first_id,
        file,
        written: 0,
        synced: 0,
        last_id: 0,
        writes: Writes::Undecided,
    })
}

/// Truncate a segment file to `len` (whole frames). What cannot be cut off stays counted
/// against the bound. Returns the file's length after.
fn cut_back(shared: &Shared, file: &dyn SpoolFile, first_id: u64, len: u64) -> u64 {
    let file_len = match file.set_len(len).and_then(|()| file.sync_all()) {
        Ok(()) => len,
        Err(_) => file.size().unwrap_or(len),
    };
    let extra = file_len.saturating_sub(len);
    shared.add_reserved(extra);
    shared.with_state(|s| {
        if let Some(meta) = s.segments.get_mut(&first_id) {
            meta.file_bytes = meta.durable_len.max(len) + extra;
        }
    });
    file_len
}

/// Delete a segment file that holds no record, and its entry; whether the file is gone.
fn forget_segment(shared: &Shared, first_id: u64) -> bool {
    let path = segment_path(&shared.opts.dir, first_id);
    let removed = shared.with_state(|s| s.segments.remove(&first_id));
    if shared.fs.remove_file(&path).is_err() {
        return false;
    }
    if let Some(meta) = removed {
        shared.release(meta.file_bytes);
    }
    true
}

/// Make `batch` durable: fsync its files (and the directory, for a new segment), then publish
/// the new durable lengths and answer its records.
pub fn commit(shared: &Shared, batch: Batch) {
    if batch.is_empty() {
        return;
    }
    let synced = batch
        .files
        .iter()
        .try_for_each(|f| {
            f.file.sync_data().map_err(|e| {
                format!(
                    "syncing {}: {e}",
                    segment_path(&shared.opts.dir, f.first_id).display()
                )
            })
        })
        .and_then(|()| {
            if batch.dir {
                shared
                    .fs
                    .sync_dir(&shared.opts.dir)
                    .map_err(|e| format!("syncing {}: {e}", shared.opts.dir.display()))
            } else {
                Ok(())
            }
        });
    if let Err(message) = synced {
        shared.appender().lose_unsynced(shared, batch, &message);
        return;
    }
    shared.appender().synced(&batch);
    let Some(last) = batch.records.last().map(|r| r.id) else {
        return;
    };
    let count = batch.records.len() as u64;
    shared.with_state(|s| {
        for f in &batch.files {
            if let Some(meta) = s.segments.get_mut(&f.first_id) {
                meta.durable_len = meta.durable_len.max(f.written);
                meta.file_bytes = meta.file_bytes.max(f.written);
                meta.last_id = meta.last_id.max(f.last_id);
            }
        }
        s.committed_id = s.committed_id.max(last);
        s.waiting += count;
        for r in &batch.records {
            s.note_age(r.id, r.at_ms);
        }
    });
    shared
        .counters
        .committed
        .fetch_add(count, Ordering::Relaxed);
    for r in batch.records {
        r.durable();
    }
    shared.notify_commit(last);
}
