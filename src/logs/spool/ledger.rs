//! The spool's small files: the ledger (acknowledged position) and the lock file.
//!
//! The ledger is 20 bytes: magic `PDLEDGR1`, `acked_through` (u64 LE), CRC-32 of the first 16.
//! It is replaced atomically: written to `ledger.tmp`, fsynced, renamed over `ledger`, and the
//! directory fsynced, so a crash leaves either the old or the new position, never a mix. A ledger
//! that is missing or fails its check reads as position 0: records are delivered again rather
//! than lost.

use std::path::Path;

use super::error::SpoolError;
use super::fs::{FileLock, LockError, SpoolFs};

const LEDGER: &str = "ledger";
const LEDGER_TMP: &str = "ledger.tmp";
const LOCK: &str = "LOCK";
const MAGIC: &[u8; 8] = b"PDLEDGR1";

/// What was found in the ledger file.
#[derive(Debug, PartialEq, Eq)]
pub enum LedgerRead {
    Missing,
    /// Unreadable or damaged, with the reason.
    Corrupt(String),
    Ok(u64),
}

/// Read the acknowledged position.
pub fn read(fs: &dyn SpoolFs, dir: &Path) -> LedgerRead {
    let path = dir.join(LEDGER);
    let bytes = match fs.read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return LedgerRead::Missing,
        Err(e) => return LedgerRead::Corrupt(format!("cannot read it: {e}")),
    };
    if bytes.len() != 20 || &bytes[..8] != MAGIC {
        return LedgerRead::Corrupt(format!("unexpected content ({} bytes)", bytes.len()));
    }
    let mut crc = [0u8; 4];
    crc.copy_from_slice(&bytes[16..20]);
    if crc32fast::hash(&bytes[..16]) != u32::from_le_bytes(crc) {
        return LedgerRead::Corrupt("checksum mismatch".into());
    }
    let mut acked = [0u8; 8];
    acked.copy_from_slice(&bytes[8..16]);
    LedgerRead::Ok(u64::from_le_bytes(acked))
}

/// Persist `acked_through` atomically (tmp + fsync + rename + directory fsync).
pub fn write(fs: &dyn SpoolFs, dir: &Path, acked_through: u64) -> std::io::Result<()> {
    let mut bytes = Vec::with_capacity(20);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&acked_through.to_le_bytes());
    let crc = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    let tmp = dir.join(LEDGER_TMP);
    let file = fs.create(&tmp)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    drop(file);
    fs.rename(&tmp, &dir.join(LEDGER))?;
    fs.sync_dir(dir)
}

/// Remove a leftover `ledger.tmp` from a crash during [`write`].
pub fn remove_leftovers(fs: &dyn SpoolFs, dir: &Path) {
    let _ = fs.remove_file(&dir.join(LEDGER_TMP));
}

/// Take the spool's lock: an exclusive, non-blocking `flock` on `LOCK`, which then holds our pid
/// (only for the error message of the next one who tries).
pub fn lock(fs: &dyn SpoolFs, dir: &Path) -> Result<FileLock, SpoolError> {
    let path = dir.join(LOCK);
    fs.lock(&path).map_err(|e| match e {
        LockError::Held { holder } => SpoolError::Locked {
            dir: dir.to_owned(),
            holder,
        },
        LockError::Io { action, source } => SpoolError::io(&path, action, source),
    })
}

#[cfg(test)]
mod tests {
    use super::super::fs::RealFs;
    use super::*;

    #[test]
    fn ledger_round_trip_and_damage() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(read(&RealFs, dir.path()), LedgerRead::Missing);
        write(&RealFs, dir.path(), 42).expect("write");
        assert_eq!(read(&RealFs, dir.path()), LedgerRead::Ok(42));
        let path = dir.path().join(LEDGER);
        let mut bytes = std::fs::read(&path).expect("read");
        bytes[9] ^= 1;
        std::fs::write(&path, &bytes).expect("write");
        assert!(matches!(read(&RealFs, dir.path()), LedgerRead::Corrupt(_)));
        std::fs::write(&path, b"short").expect("write");
        assert!(matches!(read(&RealFs, dir.path()), LedgerRead::Corrupt(_)));
    }

    #[test]
    fn second_lock_names_the_dir_and_pid() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = lock(&RealFs, dir.path()).expect("first lock");
        let err = lock(&RealFs, dir.path())
            .err()
            .expect("second lock must fail");
        let text = err.to_string();
        assert!(text.contains(&dir.path().display().to_string()), "{text}");
        assert!(text.contains(&std::process::id().to_string()), "{text}");
        drop(first);
        lock(&RealFs, dir.path()).expect("free again");
    }
}
