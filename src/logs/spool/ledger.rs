//! The spool's small files: the ledger (acknowledged position) and the lock file.
//!
//! The ledger is 20 bytes: magic `PDLEDGR1`, `acked_through` (u64 LE), CRC-32 of the first 16.
//! It is replaced atomically: written to `ledger.tmp`, fsynced, renamed over `ledger`, and the
//! directory fsynced, so a crash leaves either the old or the new position, never a mix. A ledger
//! that is missing or fails its check reads as position 0: records are delivered again rather
//! than lost.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};

use super::error::SpoolError;

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
pub fn read(dir: &Path) -> LedgerRead {
    let path = dir.join(LEDGER);
    let bytes = match std::fs::read(&path) {
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
pub fn write(dir: &Path, acked_through: u64) -> std::io::Result<()> {
    let mut bytes = Vec::with_capacity(20);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&acked_through.to_le_bytes());
    let crc = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    let tmp = dir.join(LEDGER_TMP);
    let mut file = File::create(&tmp)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, dir.join(LEDGER))?;
    sync_dir(dir)
}

/// Remove a leftover `ledger.tmp` from a crash during [`write`].
pub fn remove_leftovers(dir: &Path) {
    let _ = std::fs::remove_file(dir.join(LEDGER_TMP));
}

/// fsync a directory so that created, renamed or removed entries in it are durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Take the spool's lock: an exclusive, non-blocking `flock` on `LOCK`, which then holds our pid
/// (only for the error message of the next one who tries).
pub fn lock(dir: &Path) -> Result<Flock<File>, SpoolError> {
    let path = dir.join(LOCK);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| SpoolError::io(&path, "opening the lock file", e))?;
    let mut locked = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(locked) => locked,
        Err((mut file, nix::errno::Errno::EWOULDBLOCK)) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            return Err(SpoolError::Locked {
                dir: dir.to_owned(),
                holder: text.trim().parse().ok(),
            });
        }
        Err((_, errno)) => {
            return Err(SpoolError::io(
                &path,
                "locking the lock file",
                std::io::Error::from(errno),
            ))
        }
    };
    let pid = std::process::id().to_string();
    let written = locked
        .set_len(0)
        .and_then(|()| locked.seek(SeekFrom::Start(0)))
        .and_then(|_| locked.write_all(pid.as_bytes()));
    if let Err(e) = written {
        // The lock itself is what matters; the pid is a courtesy.
        tracing::debug!(path = %path.display(), error = %e, "could not write our pid into the spool lock file");
    }
    Ok(locked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ledger_round_trip_and_damage() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(read(dir.path()), LedgerRead::Missing);
        write(dir.path(), 42).expect("write");
        assert_eq!(read(dir.path()), LedgerRead::Ok(42));
        let path = dir.path().join(LEDGER);
        let mut bytes = std::fs::read(&path).expect("read");
        bytes[9] ^= 1;
        std::fs::write(&path, &bytes).expect("write");
        assert!(matches!(read(dir.path()), LedgerRead::Corrupt(_)));
        std::fs::write(&path, b"short").expect("write");
        assert!(matches!(read(dir.path()), LedgerRead::Corrupt(_)));
    }

    #[test]
    fn second_lock_names_the_dir_and_pid() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = lock(dir.path()).expect("first lock");
        let err = lock(dir.path()).expect_err("second lock must fail");
        let text = err.to_string();
        assert!(text.contains(&dir.path().display().to_string()), "{text}");
        assert!(text.contains(&std::process::id().to_string()), "{text}");
        drop(first);
        lock(dir.path()).expect("free again");
    }
}
