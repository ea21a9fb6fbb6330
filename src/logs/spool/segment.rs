//! Segment files and the frame format (see the layout in the spool's header, [`super`]).
//!
//! Pure functions over byte slices: encoding a frame, parsing one, and scanning a whole region
//! into valid frames and corrupt regions, resynchronising after damage. Nothing here panics on
//! bad input: every length is checked before it is used.

use std::path::{Path, PathBuf};

/// `len` (4) + `crc` (4) + `id` (8) + `appended_at_ms` (8).
pub const FRAME_HEADER: usize = 24;
/// Largest payload one frame carries: the largest entry (the record format sets it). Also
/// bounds what a damaged `len` field can make the reader try to read.
pub use crate::logs::record::entry::MAX_PAYLOAD;

const SEGMENT_SUFFIX: &str = ".seg";

/// The file name of the segment whose first record is `first_id`.
pub fn segment_path(dir: &Path, first_id: u64) -> PathBuf {
    dir.join(format!("{first_id:020}{SEGMENT_SUFFIX}"))
}

/// The first id encoded in a segment file name, `None` for any other file.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Append one frame to `out`.
pub fn encode_frame(out: &mut Vec<u8>, id: u64, appended_at_ms: u64, payload: &[u8]) {
    out.reserve(FRAME_HEADER + payload.len());
    out.extend_from_slice(&frame_header(id, appended_at_ms, payload));
    out.extend_from_slice(payload);
}

/// Write one frame into `out`, which is exactly `FRAME_HEADER + payload.len()` bytes (a slot of
/// a mapped segment).
pub fn place_frame(out: &mut [u8], id: u64, appended_at_ms: u64, payload: &[u8]) {
    let (header, body) = out.split_at_mut(FRAME_HEADER);
    header.copy_from_slice(&frame_header(id, appended_at_ms, payload));
    body.copy_from_slice(payload);
}

fn frame_header(id: u64, appended_at_ms: u64, payload: &[u8]) -> [u8; FRAME_HEADER] {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&id.to_le_bytes());
    hasher.update(&appended_at_ms.to_le_bytes());
    hasher.update(payload);
    let mut header = [0u8; FRAME_HEADER];
    header[0..4].copy_from_slice(&len.to_le_bytes());
    header[4..8].copy_from_slice(&hasher.finalize().to_le_bytes());
    header[8..16].copy_from_slice(&id.to_le_bytes());
    header[16..24].copy_from_slice(&appended_at_ms.to_le_bytes());
    header
}

/// A valid frame found in a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    pub id: u64,
    pub appended_at_ms: u64,
    pub payload: &'a [u8],
    /// Whole frame length (header + payload).
    pub len: usize,
}

/// What the bytes at the start of a buffer are.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed<'a> {
    Frame(Frame<'a>),
    /// Possibly a frame, but the buffer ends first: `need` bytes make the whole frame.
    Incomplete {
        need: usize,
    },
    /// Not a frame: the length is impossible or the checksum fails.
    Invalid,
}

fn le_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

/// Parse the frame at the start of `buf`.
pub fn parse_frame(buf: &[u8]) -> Parsed<'_> {
    if buf.len() < FRAME_HEADER {
        return Parsed::Incomplete { need: FRAME_HEADER };
    }
    let len = le_u32(&buf[0..4]) as usize;
    if len > MAX_PAYLOAD {
        return Parsed::Invalid;
    }
    let total = FRAME_HEADER + len;
    if buf.len() < total {
        return Parsed::Incomplete { need: total };
    }
    let crc = le_u32(&buf[4..8]);
    if crc32fast::hash(&buf[8..total]) != crc {
        return Parsed::Invalid;
    }
    Parsed::Frame(Frame {
        id: le_u64(&buf[8..16]),
        appended_at_ms: le_u64(&buf[16..24]),
        payload: &buf[FRAME_HEADER..total],
        len: total,
    })
}

/// One piece of a scanned region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece {
    /// A valid frame at `offset`.
    Frame {
        offset: usize,
        len: usize,
        id: u64,
        appended_at_ms: u64,
    },
    /// Bytes `from..to` hold no valid frame (damage, a torn write, or stale data).
    Corrupt { from: usize, to: usize },
}

/// Split `buf` into valid frames and corrupt regions. A frame counts only if its id is greater
/// than the previous valid one (starting from `after_id`), so stale or duplicated data is
/// treated as damage. After damage the scan looks, byte by byte, for the next valid frame; an
/// incomplete frame at the end becomes a trailing corrupt region.
pub fn scan(buf: &[u8], after_id: u64) -> Vec<Piece> {
    // No frame starts in the zeros the buffer ends with (room a mapped segment allocated
    // ahead, or a torn write of zeros): an all-zero header fails its checksum. Resynchronising
    // stops where they start instead of trying every offset of them. A frame before them may
    // still end in them.
    let zeros_from = buf.len() - buf.iter().rev().take_while(|&&b| b == 0).count();
    let mut pieces = Vec::new();
    let mut last_id = after_id;
    let mut offset = 0;
    while offset < buf.len() {
        match parse_frame(&buf[offset..]) {
            Parsed::Frame(frame) if frame.id > last_id => {
                pieces.push(Piece::Frame {
                    offset,
                    len: frame.len,
                    id: frame.id,
                    appended_at_ms: frame.appended_at_ms,
                });
                last_id = frame.id;
                offset += frame.len;
            }
            _ => {
                let next = resync(buf, offset + 1..zeros_from, last_id).unwrap_or(buf.len());
                pieces.push(Piece::Corrupt {
                    from: offset,
                    to: next,
                });
                offset = next;
            }
        }
    }
    pieces
}

/// The first offset in `starts` where a valid frame of `buf` with an id above `after_id` starts.
pub fn resync(buf: &[u8], mut starts: std::ops::Range<usize>, after_id: u64) -> Option<usize> {
    starts
        .find(|&at| matches!(parse_frame(&buf[at..]), Parsed::Frame(frame) if frame.id > after_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(ids: &[u64]) -> Vec<u8> {
        let mut buf = Vec::new();
        for &id in ids {
            encode_frame(&mut buf, id, 1000 + id, format!("payload-{id}").as_bytes());
        }
        buf
    }

    fn ids(pieces: &[Piece]) -> Vec<Option<u64>> {
        pieces
            .iter()
            .map(|p| match p {
                Piece::Frame { id, .. } => Some(*id),
                Piece::Corrupt { .. } => None,
            })
            .collect()
    }

    #[test]
    fn round_trip() {
        let buf = frames(&[7]);
        match parse_frame(&buf) {
            Parsed::Frame(f) => {
                assert_eq!(
                    (f.id, f.appended_at_ms, f.payload),
                    (7, 1007, &b"payload-7"[..])
                );
                assert_eq!(f.len, buf.len());
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parse_frame(&buf[..10]),
            Parsed::Incomplete { need: FRAME_HEADER }
        );
        assert_eq!(
            parse_frame(&buf[..buf.len() - 1]),
            Parsed::Incomplete { need: buf.len() }
        );
    }

    #[test]
    fn any_flipped_byte_is_detected() {
        let buf = frames(&[1]);
        for at in 0..buf.len() {
            let mut bad = buf.clone();
            bad[at] ^= 0x40;
            assert!(
                !matches!(parse_frame(&bad), Parsed::Frame(f) if f.payload == b"payload-1"),
                "flip at {at} went unnoticed"
            );
        }
    }

    #[test]
    fn scan_skips_a_damaged_frame_even_with_a_broken_length() {
        let buf = frames(&[1, 2, 3]);
        let second = frames(&[1]).len();
        for at in [second, second + 5, second + 20] {
            let mut bad = buf.clone();
            bad[at] ^= 0xff;
            let pieces = scan(&bad, 0);
            assert_eq!(ids(&pieces), vec![Some(1), None, Some(3)], "flip at {at}");
        }
    }

    #[test]
    fn scan_reports_a_torn_tail_and_stale_ids() {
        let buf = frames(&[1, 2]);
        let pieces = scan(&buf[..buf.len() - 3], 0);
        assert_eq!(ids(&pieces), vec![Some(1), None]);
        assert!(matches!(pieces[1], Piece::Corrupt { to, .. } if to == buf.len() - 3));
        // Ids at or below `after_id` are not trusted.
        assert_eq!(ids(&scan(&buf, 1)), vec![None, Some(2)]);
        // Zeroes (a file extended but never written) are not a frame.
        assert_eq!(ids(&scan(&[0u8; 100], 0)), vec![None]);
    }

    /// The zeros a mapped segment allocated ahead: one corrupt region to the end, found without
    /// trying every offset; a frame whose payload ends in zeros is still read whole, and a
    /// frame torn before them is still found past damage.
    #[test]
    fn a_tail_of_zeros_is_one_region_and_frames_ending_in_zeros_survive() {
        let mut buf = frames(&[1]);
        encode_frame(&mut buf, 2, 1002, &[b'x', 0, 0, 0]);
        let whole = buf.len();
        buf.resize(whole + 64 * 1024, 0);
        let pieces = scan(&buf, 0);
        assert_eq!(ids(&pieces), vec![Some(1), Some(2), None]);
        assert_eq!(
            pieces[2],
            Piece::Corrupt {
                from: whole,
                to: buf.len()
            }
        );
        // Damage, then a frame ending in zeros, then zeros: resynchronising finds the frame
        // (read whole, into the zeros), and the zeros are the end.
        let mut damaged = frames(&[1, 2]);
        encode_frame(&mut damaged, 3, 1003, &[b'y', 0, 0]);
        let second = frames(&[1]).len();
        damaged[second + 10] ^= 0xff;
        let valid = damaged.len();
        damaged.resize(valid + 4096, 0);
        assert_eq!(ids(&scan(&damaged, 0)), vec![Some(1), None, Some(3), None]);
    }

    #[test]
    fn segment_names() {
        let path = segment_path(Path::new("/s"), 42);
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        assert_eq!(name, "00000000000000000042.seg");
        assert_eq!(parse_segment_name(name), Some(42));
        assert_eq!(parse_segment_name("ledger"), None);
        assert_eq!(parse_segment_name(".seg"), None);
        assert_eq!(parse_segment_name("-1.seg"), None);
    }
}
