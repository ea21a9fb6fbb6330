//! The spool's file system seam: every file operation the spool does goes through [`SpoolFs`]
//! (directories, whole files, the lock) and [`SpoolFile`] (an open file).
//!
//! [`RealFs`] is `std::fs` and `flock(2)`, what [`super::Spool::open`] uses. Tests open a spool
//! on another implementation with [`super::Spool::open_with`]: `tests/common/fault_fs.rs` keeps
//! files in memory, remembers what was fsynced and what was only written, and simulates a power
//! loss (torn writes, garbage tails, lost directory entries).
//!
//! The seam is only as wide as the spool needs: a file is appended to (a segment, a fresh
//! ledger), read at an offset or whole, truncated and synced; a directory is listed and synced;
//! entries are created, renamed and removed. A spool holds its file system once
//! (`Arc<dyn SpoolFs>`) and each open file as an `Arc<dyn SpoolFile>`.
//!
//! A segment being appended to is written through a shared mapping where the file system
//! allows it ([`SpoolFile::map_for_append`]: the file extended and its blocks allocated first,
//! then mapped), so an append is a copy into the page cache, not a `write(2)`; elsewhere (no
//! `fallocate`, or the in-memory file system of the tests) through [`SpoolFile::write_all`].

use std::ffi::OsString;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt};
use std::path::Path;
use std::sync::Arc;

use memmap2::MmapMut;
use nix::fcntl::{Flock, FlockArg};

/// The file operations of a spool (see the module header).
pub trait SpoolFs: Send + Sync + 'static {
    /// Create `dir` and its missing parents, mode 0700.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// The names of the entries of `dir`.
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<OsString>>;
    /// The whole content of a file.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// The length of a file.
    fn size(&self, path: &Path) -> io::Result<u64>;
    /// Open an existing file to read it at offsets.
    fn open_read(&self, path: &Path) -> io::Result<Arc<dyn SpoolFile>>;
    /// Open an existing file to truncate it.
    fn open_write(&self, path: &Path) -> io::Result<Arc<dyn SpoolFile>>;
    /// Create a file that must not exist yet; writes go to its end.
    fn create_new(&self, path: &Path) -> io::Result<Arc<dyn SpoolFile>>;
    /// Create a file, or empty an existing one, to write it once from its start.
    fn create(&self, path: &Path) -> io::Result<Arc<dyn SpoolFile>>;
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// fsync a directory: the entries created, renamed or removed in it become durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Take the exclusive lock held by the file at `path` (created if missing) without waiting,
    /// for as long as the returned guard lives.
    fn lock(&self, path: &Path) -> Result<FileLock, LockError>;
}

/// An open file of a spool.
pub trait SpoolFile: Send + Sync {
    /// Write all of `buf` at the file's position: its end for a file from
    /// [`SpoolFs::create_new`], its start for a fresh one from [`SpoolFs::create`].
    fn write_all(&self, buf: &[u8]) -> io::Result<()>;
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    fn set_len(&self, len: u64) -> io::Result<()>;
    fn size(&self) -> io::Result<u64>;
    /// `fdatasync`: the file's data (and length) is durable.
    fn sync_data(&self) -> io::Result<()>;
    /// `fsync`: the file's data and metadata are durable.
    fn sync_all(&self) -> io::Result<()>;
    /// Map `len` bytes from `offset` (a multiple of [`MAP_ALIGN`]) to write records into, the
    /// file first extended over them with their blocks allocated (`fallocate`), so a write into
    /// the map never meets a full disk: that is the `fallocate`'s error, returned here.
    /// `Ok(None)`: this file is not written through a map (a file system without `fallocate`,
    /// or one simulated in tests); its records go through [`SpoolFile::write_all`]. An error
    /// may leave the file extended (a map refused after its `fallocate`).
    fn map_for_append(&self, offset: u64, len: usize) -> io::Result<Option<MmapMut>> {
        let _ = (offset, len);
        Ok(None)
    }
}

/// What a mapping's offset in a file must be a multiple of: the largest page size Linux uses
/// (64 KiB, on some arm64 and ppc64 kernels), so no `sysconf` call is needed.
pub const MAP_ALIGN: u64 = 64 * 1024;

/// A held lock: released when dropped.
pub type FileLock = Box<dyn Send + Sync>;

/// Why [`SpoolFs::lock`] did not take the lock.
#[derive(Debug)]
pub enum LockError {
    /// Someone else holds it; the pid the lock file names, if any.
    Held { holder: Option<u32> },
    Io {
        action: &'static str,
        source: io::Error,
    },
}

/// The machine's file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealFs;

impl SpoolFs for RealFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        DirBuilder::new().recursive(true).mode(0o700).create(dir)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        std::fs::read_dir(dir)?
            .map(|entry| entry.map(|e| e.file_name()))
            .collect()
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn size(&self, path: &Path) -> io::Result<u64> {
        std::fs::metadata(path).map(|m| m.len())
    }

    fn open_read(&self, path: &Path) -> io::Result<Arc<dyn SpoolFile>> {
        Ok(Arc::new(File::open(path)?))
    }

    fn open_write(&self, path: &Path) -> io::Result<Arc<dyn SpoolFile>> {
        Ok(Arc::new(OpenOptions::new().write(true).open(path)?))
    }

    fn create_new(&self, path: &Path) -> io::Result<Arc<dyn SpoolFile>> {
        // Readable too: a shared writable map needs a file open for reading and writing.
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create_new(true)
            .open(path)?;
        Ok(Arc::new(file))
    }

    fn create(&self, path: &Path) -> io::Result<Arc<dyn SpoolFile>> {
        Ok(Arc::new(File::create(path)?))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn lock(&self, path: &Path) -> Result<FileLock, LockError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|source| LockError::Io {
                action: "opening the lock file",
                source,
            })?;
        let mut locked = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(locked) => locked,
            Err((mut file, nix::errno::Errno::EWOULDBLOCK)) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(LockError::Held {
                    holder: text.trim().parse().ok(),
                });
            }
            Err((_, errno)) => {
                return Err(LockError::Io {
                    action: "locking the lock file",
                    source: io::Error::from(errno),
                })
            }
        };
        // The pid is only for the error message of the next one who tries.
        let pid = std::process::id().to_string();
        let written = locked
            .set_len(0)
            .and_then(|()| locked.seek(SeekFrom::Start(0)))
            .and_then(|_| locked.write_all(pid.as_bytes()));
        if let Err(e) = written {
            // The lock itself is what matters; the pid is a courtesy.
            tracing::debug!(path = %path.display(), error = %e, "could not write our pid into the spool lock file");
        }
        Ok(Box::new(locked))
    }
}

impl SpoolFile for File {
    fn write_all(&self, buf: &[u8]) -> io::Result<()> {
        Write::write_all(&mut &*self, buf)
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        FileExt::read_exact_at(self, buf, offset)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }

    fn size(&self) -> io::Result<u64> {
        self.metadata().map(|m| m.len())
    }

    fn sync_data(&self) -> io::Result<()> {
        File::sync_data(self)
    }

    fn sync_all(&self) -> io::Result<()> {
        File::sync_all(self)
    }

    #[cfg(target_os = "linux")]
    fn map_for_append(&self, offset: u64, len: usize) -> io::Result<Option<MmapMut>> {
        use nix::errno::Errno;
        use nix::fcntl::{fallocate, FallocateFlags};
        let too_far = || io::Error::new(io::ErrorKind::InvalidInput, "segment offset too large");
        let start = i64::try_from(offset).map_err(|_| too_far())?;
        let count = i64::try_from(len).map_err(|_| too_far())?;
        // Mode 0: allocate the blocks and extend the file's length over them. A page of the map
        // then always has its block: a store into it cannot fail for want of space (which would
        // be a SIGBUS, not an error).
        match fallocate(self, FallocateFlags::empty(), start, count) {
            Ok(()) => {}
            Err(Errno::EOPNOTSUPP | Errno::ENOSYS) => return Ok(None),
            Err(e) => return Err(io::Error::from(e)),
        }
        // SAFETY: the map is of a segment file in the spool's directory (mode 0700), which this
        // process holds the spool's `flock` on: no other process of ours writes or truncates it.
        // The spool stores into the map only below the length just allocated, and only the
        // active segment's appender (under the append lock) touches it; a file is cut shorter
        // (`set_len`) only once its map is no longer written to.
        let map = unsafe {
            memmap2::MmapOptions::new()
                .offset(offset)
                .len(len)
                .map_mut(self)?
        };
        Ok(Some(map))
    }
}
