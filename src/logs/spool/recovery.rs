//! Start-up recovery of a spool directory: lock, read the ledger, scan every segment, repair.
//!
//! The rules are in the spool's header ([`super`]). Recovery only refuses to go on when the
//! directory itself cannot be used (cannot be created, listed or locked); damaged data is
//! repaired, logged and counted.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};

use super::error::SpoolError;
use super::fs::SpoolFs;
use super::ledger::{self, LedgerRead};
use super::options::SpoolOptions;
use super::segment::{self, Piece};
use super::state::{note_age, Recovered, SegmentMeta};

/// Lock and recover `opts.dir` (creating it, mode 0700, if missing).
pub fn recover(fs: &dyn SpoolFs, opts: &SpoolOptions) -> Result<Recovered, SpoolError> {
    let dir = &opts.dir;
    fs.create_dir_all(dir)
        .map_err(|e| SpoolError::io(dir, "creating the directory", e))?;
    let lock = ledger::lock(fs, dir)?;
    ledger::remove_leftovers(fs, dir);
    // What is about to be read must be durable before anything is done on it: after a restart
    // without a power loss (a SIGKILL, say) a segment created since the last commit, or the
    // ledger renamed into place by a life killed before its directory fsync, may be an entry
    // in memory only.
    if let Err(e) = fs.sync_dir(dir) {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot fsync the log spool directory at start-up: a power loss may still undo its last changes");
    }
    let files = list_segments(fs, dir)?;
    let acked_through = match ledger::read(fs, dir) {
        LedgerRead::Ok(acked) => acked,
        LedgerRead::Missing => {
            if !files.is_empty() {
                tracing::warn!(dir = %dir.display(), "log spool ledger is missing; every record still on disk will be sent again");
            }
            0
        }
        LedgerRead::Corrupt(reason) => {
            tracing::warn!(dir = %dir.display(), %reason, "log spool ledger is damaged; every record still on disk will be sent again");
            0
        }
    };
    let mut scan = Scan {
        fs,
        acked_through,
        last_id: 0,
        name_taken: 0,
        gap_open: false,
        out: Recovered {
            lock,
            acked_through,
            next_id: 0,
            segments: BTreeMap::new(),
            waiting: 0,
            ages: VecDeque::new(),
            corrupt_skipped: 0,
            torn_bytes: 0,
        },
    };
    let count = files.len();
    for (i, (first_id, path)) in files.into_iter().enumerate() {
        scan.segment(first_id, path, i + 1 == count)?;
    }
    let mut out = scan.out;
    out.next_id = scan.last_id.max(acked_through).max(scan.name_taken) + 1;
    if out.corrupt_skipped > 0 || out.torn_bytes > 0 {
        tracing::warn!(
            dir = %dir.display(),
            corrupt_records_skipped = out.corrupt_skipped,
            torn_bytes_truncated = out.torn_bytes,
            "log spool repaired at start-up"
        );
    }
    Ok(out)
}

/// Segment files by first id, in order.
fn list_segments(fs: &dyn SpoolFs, dir: &Path) -> Result<BTreeMap<u64, PathBuf>, SpoolError> {
    let names = fs
        .list_dir(dir)
        .map_err(|e| SpoolError::io(dir, "listing", e))?;
    let mut files = BTreeMap::new();
    for name in names {
        if let Some(first_id) = name.to_str().and_then(segment::parse_segment_name) {
            files.insert(first_id, dir.join(&name));
        }
    }
    Ok(files)
}

struct Scan<'a> {
    fs: &'a dyn SpoolFs,
    acked_through: u64,
    /// Highest valid id seen so far, across segments.
    last_id: u64,
    /// The first id of the last segment that could not be deleted: new segments are named
    /// past it.
    name_taken: u64,
    /// A corrupt region was seen and the next valid frame tells how many records it held.
    gap_open: bool,
    out: Recovered,
}

impl Scan<'_> {
    /// Take in one segment. One that cannot be read stops the start-up: skipping it would let
    /// acknowledgements pass its records, and a later start would delete it as spent.
    fn segment(&mut self, first_id: u64, path: PathBuf, is_last: bool) -> Result<(), SpoolError> {
        let bytes = self
            .fs
            .read(&path)
            .map_err(|e| SpoolError::io(&path, "reading a segment at start-up", e))?;
        let mut valid_end = 0;
        let mut seg_last = 0;
        for piece in segment::scan(&bytes, self.last_id) {
            match piece {
                Piece::Frame {
                    offset,
                    len,
                    id,
                    appended_at_ms,
                } => {
                    if self.gap_open {
                        let from = self.last_id.max(self.acked_through);
                        self.out.corrupt_skipped += id.saturating_sub(from + 1);
                        self.gap_open = false;
                    }
                    if id > self.acked_through {
                        self.out.waiting += 1;
                        note_age(&mut self.out.ages, id, appended_at_ms);
                    }
                    self.last_id = id;
                    seg_last = id;
                    valid_end = offset + len;
                }
                Piece::Corrupt { from, to } if is_last && to == bytes.len() => {
                    let unused = bytes[from..].iter().all(|&b| b == 0);
                    self.torn_tail(&path, from, bytes.len(), unused);
                }
                Piece::Corrupt { from, to } => {
                    tracing::warn!(path = %path.display(), from, to, "skipping a damaged region of a log spool segment");
                    self.gap_open = true;
                }
            }
        }
        if is_last && self.gap_open {
            // Damage with no valid record after it anywhere: at least one record was lost.
            if self.last_id >= self.acked_through {
                self.out.corrupt_skipped += 1;
            }
            self.gap_open = false;
        }
        if seg_last == 0 || seg_last <= self.acked_through {
            // Nothing left to deliver from this file.
            if let Err(e) = self.fs.remove_file(&path) {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove a spent log spool segment");
                // Its name stays taken (it may be the next id's, for a file of torn records).
                self.name_taken = first_id;
            }
            return Ok(());
        }
        // After a restart without a power loss (a SIGKILL, a crash of the process) what the
        // last life wrote may still be only in the page cache: it is handed out as durable
        // from now on, so it must be.
        if let Err(e) = self.fs.open_read(&path).and_then(|f| f.sync_data()) {
            tracing::warn!(path = %path.display(), error = %e, "cannot fsync a log spool segment at start-up: a power loss may still take its last records");
        }
        let file_bytes = self.fs.size(&path).unwrap_or(bytes.len() as u64);
        self.out.segments.insert(
            first_id,
            SegmentMeta {
                path,
                durable_len: valid_end as u64,
                file_bytes,
                last_id: seg_last,
            },
        );
        Ok(())
    }

    /// Cut the torn tail `from..len` off the last segment. A tail of zeros (`unused`) is most
    /// likely room the segment's map allocated ahead and no record reached (a daemon that
    /// stopped without trimming it: a SIGKILL), and is cut without a warning or a count: were
    /// it a torn write of zeros, it held no record either.
    fn torn_tail(&mut self, path: &Path, from: usize, len: usize, unused: bool) {
        if unused {
            tracing::debug!(path = %path.display(), offset = from, bytes = len - from, "cutting the unused room at the end of the log spool");
        } else {
            tracing::warn!(path = %path.display(), offset = from, bytes = len - from, "truncating a torn tail of the log spool");
        }
        let truncated = self
            .fs
            .open_write(path)
            .and_then(|f| f.set_len(from as u64).and_then(|()| f.sync_all()));
        match truncated {
            Ok(()) if unused => {}
            Ok(()) => self.out.torn_bytes += (len - from) as u64,
            Err(e) => {
                // The reader stops at the last valid frame anyway; the bytes just stay counted.
                tracing::warn!(path = %path.display(), error = %e, "cannot truncate the torn tail");
            }
        }
    }
}
