//! The kept responses' files: append-only segments of framed entries under
//! `state_dir/responses/` (0700; files 0600), replayed at open to rebuild the index.
//!
//! ```text
//! responses/
//!   00000000000000000001.kept    segments, numbered in the order they were started
//!   00000000000000000002.kept    the last one is written; the others only read and deleted
//! ```
//!
//! **Framing.** `len: u32 LE | crc: u32 LE | payload (len bytes)`, `crc` the CRC-32 (IEEE) of
//! the payload; a payload is `kind: u8 | id_len: u16 LE | id | record`, kind [`PUT`] (the
//! record's bytes, [`super::Stored::encode`]) or [`REMOVE`] (no record: a deletion or an
//! eviction, so a replay ends where the store was).
//!
//! **Writes** are one `pwrite` per batch at the active segment's end: in the page cache when it
//! returns, so they survive a SIGKILL; [`Log::due`] hands the writer the segments to `fdatasync`, at most every
//! [`SYNC_EVERY`] (the writer calls it after a write and when idle), which bounds what a power
//! loss can take, as sled's flush interval did. A failed write is cut off again.
//!
//! **Space.** A segment counts the records it holds that the index still points at (`live`).
//! Only the oldest segments are deleted, once none of theirs is live: a `REMOVE` is always in
//! a later segment than the `PUT` it cancels, so deleting from the old end never brings a
//! removed record back at the next replay.
//!
//! **Replay.** Segments are read in order and each frame checked; a torn or damaged frame ends
//! its segment there (what a crash mid-write leaves at the last one's end). Nothing is cut: a
//! segment found damaged is not written again, the next write starts a new one.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A record put under an id.
pub const PUT: u8 = 1;
/// An id's record removed (deleted, expired or evicted).
pub const REMOVE: u8 = 2;

/// Frame header: length and CRC.
const FRAME_HEADER: usize = 8;
/// Payload header: kind and id length.
const PAYLOAD_HEADER: usize = 3;

/// How often written entries are made durable, at most.
pub const SYNC_EVERY: Duration = Duration::from_millis(500);

const SUFFIX: &str = ".kept";

/// Where a record's frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loc {
    pub segment: u64,
    pub offset: u64,
    /// The whole frame's length.
    pub len: u32,
}

/// An entry to append.
#[derive(Debug, Clone, Copy)]
pub enum Entry<'a> {
    Put { id: &'a str, record: &'a [u8] },
    Remove { id: &'a str },
}

/// An entry found by the replay, in the order written.
#[derive(Debug)]
pub struct Found<'a> {
    pub kind: u8,
    pub id: &'a str,
    pub record: &'a [u8],
    pub loc: Loc,
}

#[derive(Debug)]
struct Segment {
    file: Arc<File>,
    len: u64,
    /// Records of this segment the index points at.
    live: u64,
    /// A frame of it did not replay: written no more.
    damaged: bool,
}

/// The segments.
#[derive(Debug)]
pub struct Log {
    dir: PathBuf,
    segments: BTreeMap<u64, Segment>,
    /// Written since the last `fdatasync`: the segments to sync.
    unsynced: Vec<u64>,
    last_sync: Instant,
    /// Why nothing can be written ([`Log::unavailable`]).
    refused: Option<String>,
}

fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:020}{SUFFIX}"))
}

fn open_segment(path: &Path, create: bool) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(create)
        .mode(0o600)
        .open(path)
}

/// The frame of `entry`, appended to `out`.
fn frame(entry: Entry<'_>, out: &mut Vec<u8>) {
    let (kind, id, record) = match entry {
        Entry::Put { id, record } => (PUT, id, record),
        Entry::Remove { id } => (REMOVE, id, &[][..]),
    };
    let start = out.len();
    let payload_len = PAYLOAD_HEADER + id.len() + record.len();
    out.extend_from_slice(&(payload_len as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.push(kind);
    out.extend_from_slice(&(id.len() as u16).to_le_bytes());
    out.extend_from_slice(id.as_bytes());
    out.extend_from_slice(record);
    let crc = crc32fast::hash(&out[start + FRAME_HEADER..]);
    out[start + 4..start + FRAME_HEADER].copy_from_slice(&crc.to_le_bytes());
}

/// The entry framed at the start of `bytes` and the frame's length; `None` when the bytes hold
/// no whole, intact frame.
fn unframe(bytes: &[u8]) -> Option<(u8, &str, &[u8], usize)> {
    let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(bytes.get(4..FRAME_HEADER)?.try_into().ok()?);
    let payload = bytes.get(FRAME_HEADER..FRAME_HEADER.checked_add(len)?)?;
    if len < PAYLOAD_HEADER || crc32fast::hash(payload) != crc {
        return None;
    }
    let kind = payload[0];
    let id_len = u16::from_le_bytes([payload[1], payload[2]]) as usize;
    let id = std::str::from_utf8(payload.get(PAYLOAD_HEADER..PAYLOAD_HEADER + id_len)?).ok()?;
    let record = &payload[PAYLOAD_HEADER + id_len..];
    matches!(kind, PUT | REMOVE).then_some((kind, id, record, FRAME_HEADER + len))
}

impl Log {
    /// Open (or create) the segments in `dir`, calling `found` with every entry in the order
    /// written. A damaged frame ends its segment's replay.
    pub fn open(dir: &Path, mut found: impl FnMut(Found<'_>)) -> io::Result<Log> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let mut numbers = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let name = entry?.file_name();
            let number = name
                .to_str()
                .and_then(|n| n.strip_suffix(SUFFIX))
                .and_then(|n| n.parse::<u64>().ok());
            numbers.extend(number);
        }
        numbers.sort_unstable();
        let mut segments = BTreeMap::new();
        for number in numbers {
            let path = segment_path(dir, number);
            let file = open_segment(&path, false)?;
            let bytes = std::fs::read(&path)?;
            let mut at = 0;
            while let Some((kind, id, record, len)) = unframe(&bytes[at..]) {
                let loc = Loc {
                    segment: number,
                    offset: at as u64,
                    len: len as u32,
                };
                found(Found {
                    kind,
                    id,
                    record,
                    loc,
                });
                at += len;
            }
            let damaged = at < bytes.len();
            if damaged {
                tracing::warn!(
                    segment = %path.display(),
                    offset = at,
                    bytes = bytes.len() - at,
                    "a kept responses' segment ends in a damaged or torn frame: read up to it"
                );
            }
            let len = bytes.len() as u64;
            segments.insert(
                number,
                Segment {
                    file: Arc::new(file),
                    len,
                    live: 0,
                    damaged,
                },
            );
        }
        Ok(Log {
            dir: dir.to_owned(),
            segments,
            unsynced: Vec::new(),
            last_sync: Instant::now(),
            refused: None,
        })
    }

    /// A log that holds nothing and refuses every write, saying `why` (its directory could not
    /// be opened: the daemon serves without keeping).
    pub fn unavailable(dir: &Path, why: String) -> Log {
        Log {
            dir: dir.to_owned(),
            segments: BTreeMap::new(),
            unsynced: Vec::new(),
            last_sync: Instant::now(),
            refused: Some(why),
        }
    }

    /// Whether writes can succeed at all.
    pub fn available(&self) -> bool {
        self.refused.is_none()
    }

    /// Append `entries` in one write, starting a new segment first when they would take the
    /// active one past `segment_bytes`; where each `Put`'s frame is (`None` for a `Remove`).
    pub fn append(
        &mut self,
        entries: &[Entry<'_>],
        segment_bytes: u64,
    ) -> io::Result<Vec<Option<Loc>>> {
        if let Some(why) = &self.refused {
            return Err(io::Error::other(why.clone()));
        }
        let mut bytes = Vec::new();
        let mut frames = Vec::with_capacity(entries.len());
        for entry in entries {
            let (id, record) = match entry {
                Entry::Put { id, record } => (id, record.len()),
                Entry::Remove { id } => (id, 0),
            };
            if id.len() > usize::from(u16::MAX)
                || PAYLOAD_HEADER + id.len() + record > u32::MAX as usize
            {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "a kept record or its id is too long to frame",
                ));
            }
            let start = bytes.len();
            frame(*entry, &mut bytes);
            frames.push((start, bytes.len() - start));
        }
        let active = self
            .segments
            .last_key_value()
            .map(|(n, s)| (*n, s.len, s.damaged));
        let number = match active {
            Some((n, len, false)) if len == 0 || len + bytes.len() as u64 <= segment_bytes => n,
            _ => {
                let next = match active {
                    None => 1,
                    Some((n, _, _)) => n.checked_add(1).ok_or_else(|| {
                        io::Error::other("kept responses' segments: no number left")
                    })?,
                };
                self.start_segment(next)?
            }
        };
        let segment = self
            .segments
            .get_mut(&number)
            .ok_or_else(|| io::Error::other("the active segment is gone"))?;
        let at = segment.len;
        if let Err(e) = segment.file.write_all_at(&bytes, at) {
            // Cut off whatever part was written: the next write starts at a frame's end (if
            // that fails too, the segment is written no more).
            if segment.file.set_len(at).is_err() {
                segment.damaged = true;
            }
            return Err(e);
        }
        segment.len += bytes.len() as u64;
        if !self.unsynced.contains(&number) {
            self.unsynced.push(number);
        }
        Ok(entries
            .iter()
            .zip(frames)
            .map(|(entry, (start, len))| {
                matches!(entry, Entry::Put { .. }).then_some(Loc {
                    segment: number,
                    offset: at + start as u64,
                    len: len as u32,
                })
            })
            .collect())
    }

    /// Start segment `number` (its directory entry made durable).
    fn start_segment(&mut self, number: u64) -> io::Result<u64> {
        let file = open_segment(&segment_path(&self.dir, number), true)?;
        File::open(&self.dir)?.sync_all()?;
        self.segments.insert(
            number,
            Segment {
                file: Arc::new(file),
                len: 0,
                live: 0,
                damaged: false,
            },
        );
        Ok(number)
    }

    /// The record of the `Put` framed at `loc`.
    pub fn read(&self, loc: Loc) -> io::Result<Vec<u8>> {
        let segment = self
            .segments
            .get(&loc.segment)
            .ok_or_else(|| io::Error::other("the record's segment is gone"))?;
        let mut bytes = vec![0; loc.len as usize];
        segment.file.read_exact_at(&mut bytes, loc.offset)?;
        match unframe(&bytes) {
            Some((PUT, _, record, _)) => Ok(record.to_vec()),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "a kept record's frame is damaged",
            )),
        }
    }

    /// Note that the index points at a record of `segment`.
    pub fn hold(&mut self, segment: u64) {
        if let Some(s) = self.segments.get_mut(&segment) {
            s.live += 1;
        }
    }

    /// Note that the index no longer points at a record of `segment`.
    pub fn release(&mut self, segment: u64) {
        if let Some(s) = self.segments.get_mut(&segment) {
            s.live = s.live.saturating_sub(1);
        }
    }

    /// Delete the oldest segments (never the active one) while none of their records is live.
    pub fn drop_dead_head(&mut self) {
        while self.segments.len() > 1 {
            let Some(entry) = self.segments.first_entry() else {
                return;
            };
            if entry.get().live > 0 {
                return;
            }
            let number = *entry.key();
            if let Err(e) = std::fs::remove_file(segment_path(&self.dir, number)) {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::warn!(segment = number, error = %e, "cannot delete a spent kept responses' segment");
                    return;
                }
            }
            entry.remove();
            self.unsynced.retain(|n| *n != number);
        }
    }

    /// The oldest segment that is not the active one.
    pub fn oldest_sealed(&self) -> Option<u64> {
        (self.segments.len() > 1)
            .then(|| self.segments.first_key_value().map(|(n, _)| *n))
            .flatten()
    }

    /// The bytes of every segment.
    pub fn disk_bytes(&self) -> u64 {
        self.segments.values().map(|s| s.len).sum()
    }

    /// The files to `fdatasync` when [`SYNC_EVERY`] has passed since the last time (taken: they
    /// count as synced), for the caller to sync without holding the store's lock: a sync can
    /// take milliseconds, and requests read under that lock. Empty when nothing is due.
    pub fn due(&mut self) -> Unsynced {
        if self.unsynced.is_empty() || self.last_sync.elapsed() < SYNC_EVERY {
            return Unsynced(Vec::new());
        }
        self.take_unsynced()
    }

    /// Whether something written is not synced yet.
    pub fn unsynced(&self) -> bool {
        !self.unsynced.is_empty()
    }

    fn take_unsynced(&mut self) -> Unsynced {
        self.last_sync = Instant::now();
        let files = std::mem::take(&mut self.unsynced)
            .into_iter()
            .filter_map(|n| self.segments.get(&n).map(|s| (n, Arc::clone(&s.file))))
            .collect();
        Unsynced(files)
    }

    /// Make what was written durable now.
    pub fn sync(&mut self) {
        self.take_unsynced().sync();
    }
}

/// Written segments to make durable ([`Log::due`]).
#[derive(Debug)]
pub struct Unsynced(Vec<(u64, Arc<File>)>);

impl Unsynced {
    /// `fdatasync` each (a failure is logged: the records stay in the page cache).
    pub fn sync(self) {
        for (number, file) in self.0 {
            if let Err(e) = file.sync_data() {
                tracing::warn!(segment = number, error = %e, "cannot sync kept responses");
            }
        }
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        self.sync();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An entry replayed: kind, id, record and where.
    type Replayed = (u8, String, Vec<u8>, Loc);

    fn replay(dir: &Path) -> (Log, Vec<Replayed>) {
        let mut found = Vec::new();
        let log = Log::open(dir, |f| {
            found.push((f.kind, f.id.to_owned(), f.record.to_vec(), f.loc));
        })
        .expect("open");
        (log, found)
    }

    #[test]
    fn entries_replay_in_order_and_records_read_back() {
        let dir = tempfile::tempdir().expect("dir");
        let (mut log, found) = replay(dir.path());
        assert!(found.is_empty());
        let locs = log
            .append(
                &[
                    Entry::Put {
                        id: "resp_a",
                        record: b"one",
                    },
                    Entry::Remove { id: "resp_z" },
                    Entry::Put {
                        id: "resp_b",
                        record: b"two",
                    },
                ],
                1 << 20,
            )
            .expect("append");
        assert!(locs[1].is_none());
        assert_eq!(log.read(locs[2].expect("a put")).expect("read"), b"two");
        drop(log);
        let (log, found) = replay(dir.path());
        let kinds: Vec<(u8, &str)> = found.iter().map(|f| (f.0, f.1.as_str())).collect();
        assert_eq!(
            kinds,
            [(PUT, "resp_a"), (REMOVE, "resp_z"), (PUT, "resp_b")]
        );
        assert_eq!(Some(found[0].3), locs[0]);
        assert_eq!(log.read(found[0].3).expect("read"), b"one");
    }

    #[test]
    fn a_torn_tail_ends_the_replay_and_writing_goes_on_in_a_new_segment() {
        let dir = tempfile::tempdir().expect("dir");
        let (mut log, _) = replay(dir.path());
        log.append(
            &[Entry::Put {
                id: "resp_a",
                record: b"whole",
            }],
            1 << 20,
        )
        .expect("append");
        drop(log);
        // A crash in the middle of the next write: half a frame.
        let path = segment_path(dir.path(), 1);
        let mut half = Vec::new();
        frame(
            Entry::Put {
                id: "resp_b",
                record: b"torn",
            },
            &mut half,
        );
        let mut bytes = std::fs::read(&path).expect("read");
        bytes.extend_from_slice(&half[..half.len() / 2]);
        std::fs::write(&path, &bytes).expect("write");
        let (mut log, found) = replay(dir.path());
        assert_eq!(found.len(), 1);
        let loc = log
            .append(
                &[Entry::Put {
                    id: "resp_c",
                    record: b"after",
                }],
                1 << 20,
            )
            .expect("append")[0]
            .expect("a put");
        assert_eq!(loc.segment, 2, "the damaged segment is written no more");
        assert_eq!(std::fs::read(&path).expect("read"), bytes, "nothing cut");
        drop(log);
        let (_, found) = replay(dir.path());
        let ids: Vec<&str> = found.iter().map(|f| f.1.as_str()).collect();
        assert_eq!(ids, ["resp_a", "resp_c"]);
    }

    #[test]
    fn segments_roll_over_and_only_the_oldest_dead_ones_are_deleted() {
        let dir = tempfile::tempdir().expect("dir");
        let (mut log, _) = replay(dir.path());
        let put = |log: &mut Log, id: &str| {
            log.append(
                &[Entry::Put {
                    id,
                    record: &[7; 40],
                }],
                100,
            )
            .expect("append")[0]
                .expect("a put")
        };
        let a = put(&mut log, "resp_a");
        log.hold(a.segment);
        let b = put(&mut log, "resp_b");
        log.hold(b.segment);
        let c = put(&mut log, "resp_c");
        log.hold(c.segment);
        assert_eq!((a.segment, b.segment, c.segment), (1, 2, 3), "one each");
        // The middle one dies first: kept until the oldest is dead too.
        log.release(b.segment);
        log.drop_dead_head();
        assert_eq!(log.oldest_sealed(), Some(1));
        log.release(a.segment);
        log.drop_dead_head();
        assert_eq!(
            log.oldest_sealed(),
            None,
            "1 and 2 gone, 3 is the active one"
        );
        assert!(!segment_path(dir.path(), 2).exists());
        log.release(c.segment);
        log.drop_dead_head();
        assert!(segment_path(dir.path(), 3).exists(), "the active one stays");
        assert!(log.read(b).is_err());
    }
}
