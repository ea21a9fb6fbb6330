//! An in-memory file system for the spool ([`SpoolFs`]) that loses power on demand.
//!
//! It keeps, per file, the bytes written and the bytes the last fsync made durable, and, per
//! directory, its entries as they are and as the last directory fsync left them. A
//! [`FaultFs::crash`] keeps everything durable and, for the rest, does what its [`Fault`] says:
//! - file data written since the last fsync is kept, lost, or torn: cut at a 512-byte or 4 KiB
//!   boundary between the durable and the written length, with or without a garbage tail
//!   (random bytes or zeroes, up to a sector) after the cut; or it has a hole: pages written
//!   back out of order, one sector of it reads as zeroes and what follows is kept;
//! - each directory change not made durable by a directory fsync is kept or lost: a created
//!   file vanishes, a rename is undone (the old file is back under the name), a removal is
//!   undone (the file is back, with its durable content).
//!
//! With [`DataFault::Mixed`] and [`DirFault::Mixed`] each file and entry gets its own fate
//! from the fault's seed, so one crash can tear one segment, keep the next and lose a rename.
//! Everything is deterministic for a given fault.
//!
//! A crash ends a life: the handle given to the spool ([`FaultFs::life`]) and every file it
//! opened fail with EIO from then on, as if its process were gone, so a spool still running on
//! it can do no more harm; its lock is free again. [`FaultFs::crash_after`] arms a crash for a
//! later change (a create, write, truncation, fsync, rename or removal): the power fails in
//! the middle of a group commit or a ledger write. [`FaultFs::fail_after`] makes a later
//! change fail with ENOSPC instead, and nothing else happens (a write writes half its bytes
//! first, as on a full disk): the spool lives on and must recover from the error itself.
//! [`FaultFs::kill`] ends a life as a SIGKILL does: the page cache stays, durable or not.
//!
//! Directory entries are kept or lost each on its own, more harshly than a journaling file
//! system, which keeps metadata changes in order; the spool fsyncs the directory wherever
//! order matters, so it must not care. Simplifications, none of which the spool relies on: a
//! directory is created durably at once;
//! `sync_data` and `sync_all` are the same; a file truncated since its last fsync (so what it
//! holds does not extend its durable content) comes back as durable or as written, not torn.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use promptd::logs::spool::fs::{FileLock, LockError, SpoolFile, SpoolFs};

/// What a crash does to file data that was written but not fsynced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataFault {
    KeepWritten,
    LoseUnsynced,
    /// Cut at a `sector` boundary between the durable and the written length (at the durable
    /// length if there is none), then maybe a garbage tail.
    Torn {
        sector: u64,
        garbage: bool,
    },
    /// The unsynced part of one `sector` (chosen between the durable and the written length)
    /// reads as zeroes; the rest of what was written is kept.
    Hole {
        sector: u64,
    },
    /// One of the above per file.
    Mixed,
}

/// What a crash does to directory changes not made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirFault {
    KeepAll,
    LoseUnsynced,
    /// Each change kept or lost on its own.
    Mixed,
}

/// One power loss: what happens to data and to entries, and the seed of every choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    pub data: DataFault,
    pub dir: DirFault,
    pub seed: u64,
}

/// The file system; clones share it.
#[derive(Clone, Default)]
pub struct FaultFs {
    world: Arc<Mutex<World>>,
}

#[derive(Default)]
struct World {
    /// Bumped by every crash: handles of an older life are dead.
    life: u64,
    inodes: BTreeMap<u64, Inode>,
    next_inode: u64,
    dirs: BTreeMap<PathBuf, Dir>,
    locks: BTreeSet<PathBuf>,
    /// Changes left before an armed crash, and its fault.
    armed: Option<(u64, Fault)>,
    /// Changes made in this life, counted from 0.
    changes: u64,
    /// The changes (by count) that fail, and how many did.
    failing: BTreeSet<u64>,
    failed: usize,
    /// What the last crash did, for failure messages.
    last_crash: Vec<String>,
}

#[derive(Default)]
struct Inode {
    data: Vec<u8>,
    durable: Vec<u8>,
}

#[derive(Default)]
struct Dir {
    live: BTreeMap<OsString, u64>,
    durable: BTreeMap<OsString, u64>,
}

fn lock(world: &Mutex<World>) -> MutexGuard<'_, World> {
    world.lock().unwrap_or_else(PoisonError::into_inner)
}

fn eio() -> io::Error {
    io::Error::other("simulated power loss: this process is gone")
}

/// The error of [`FaultFs::fail_after`].
fn enospc() -> io::Error {
    io::Error::from(io::ErrorKind::StorageFull)
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{}", path.display()))
}

impl FaultFs {
    pub fn new() -> FaultFs {
        FaultFs::default()
    }

    /// A handle for the spool of the current life.
    pub fn life(&self) -> Arc<dyn SpoolFs> {
        Arc::new(Life {
            world: self.world.clone(),
            life: lock(&self.world).life,
        })
    }

    /// Lose power now.
    pub fn crash(&self, fault: Fault) {
        lock(&self.world).crash(fault);
    }

    /// End the life without a crash, as a SIGKILL does: its handles fail from now on and its
    /// lock is free, but everything written stays, durable or not (the page cache lives on).
    pub fn kill(&self) {
        let mut w = lock(&self.world);
        w.life += 1;
        w.locks.clear();
        w.armed = None;
        w.failing.clear();
        w.last_crash = vec!["killed: the page cache stays".into()];
    }

    /// Lose power just before the change after the next `changes` ones.
    pub fn crash_after(&self, changes: u64, fault: Fault) {
        lock(&self.world).armed = Some((changes, fault));
    }

    /// Take back an armed crash: its fault if it has not happened.
    pub fn disarm(&self) -> Option<Fault> {
        lock(&self.world).armed.take().map(|(_, fault)| fault)
    }

    /// Make the change after the next `changes` ones fail (ENOSPC). Several may be set.
    pub fn fail_after(&self, changes: u64) {
        let mut w = lock(&self.world);
        let at = w.changes + changes;
        w.failing.insert(at);
    }

    /// Take back the failures to come: how many happened since the last call.
    pub fn failed(&self) -> usize {
        let mut w = lock(&self.world);
        w.failing.clear();
        std::mem::take(&mut w.failed)
    }

    /// What the last crash did to each file and entry it changed.
    pub fn last_crash(&self) -> String {
        lock(&self.world).last_crash.join("; ")
    }
}

/// A small deterministic generator (splitmix64) for the choices of one crash.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn coin(&mut self) -> bool {
        self.next() & 1 == 1
    }
}

impl World {
    fn alive(&self, life: u64) -> io::Result<()> {
        if life == self.life {
            Ok(())
        } else {
            Err(eio())
        }
    }

    /// Before every change: an armed crash may happen instead.
    fn change(&mut self, life: u64) -> io::Result<()> {
        self.alive(life)?;
        match &mut self.armed {
            Some((0, fault)) => {
                let fault = *fault;
                self.crash(fault);
                return Err(eio());
            }
            Some((left, _)) => *left -= 1,
            None => {}
        }
        let at = self.changes;
        self.changes += 1;
        if self.failing.remove(&at) {
            self.failed += 1;
            return Err(enospc());
        }
        Ok(())
    }

    fn dir(&mut self, path: &Path) -> io::Result<(&mut Dir, OsString)> {
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(not_found(path));
        };
        let dir = self.dirs.get_mut(parent).ok_or_else(|| not_found(path))?;
        Ok((dir, name.to_owned()))
    }

    fn inode_of(&mut self, path: &Path) -> io::Result<u64> {
        let (dir, name) = self.dir(path)?;
        dir.live.get(&name).copied().ok_or_else(|| not_found(path))
    }

    fn inode(&mut self, inode: u64) -> io::Result<&mut Inode> {
        self.inodes.get_mut(&inode).ok_or_else(eio)
    }

    fn new_inode(&mut self) -> u64 {
        self.next_inode += 1;
        self.inodes.insert(self.next_inode, Inode::default());
        self.next_inode
    }

    fn crash(&mut self, fault: Fault) {
        self.life += 1;
        self.locks.clear();
        self.armed = None;
        self.failing.clear();
        let mut rng = Rng(fault.seed);
        let mut report = Vec::new();
        for (path, dir) in &mut self.dirs {
            let names: BTreeSet<OsString> =
                dir.live.keys().chain(dir.durable.keys()).cloned().collect();
            let mut after = BTreeMap::new();
            for name in names {
                let (live, durable) = (dir.live.get(&name), dir.durable.get(&name));
                let keep = live == durable
                    || match fault.dir {
                        DirFault::KeepAll => true,
                        DirFault::LoseUnsynced => false,
                        DirFault::Mixed => rng.coin(),
                    };
                if live != durable {
                    let what = match (live, durable) {
                        (Some(_), None) => "created",
                        (None, Some(_)) => "removed",
                        _ => "replaced",
                    };
                    let fate = if keep { "kept" } else { "undone" };
                    report.push(format!("{}: {what}, {fate}", path.join(&name).display()));
                }
                if let Some(&inode) = if keep { live } else { durable } {
                    after.insert(name, inode);
                }
            }
            dir.durable = after.clone();
            dir.live = after;
        }
        let mut names = BTreeMap::new();
        for dir in self.dirs.values() {
            for (name, inode) in &dir.live {
                names.insert(*inode, name.clone());
            }
        }
        self.inodes.retain(|inode, _| names.contains_key(inode));
        for (inode, file) in &mut self.inodes {
            let name = names.get(inode).map(OsString::as_os_str);
            let content = fate(file, fault.data, &mut rng, name, &mut report);
            file.durable = content.clone();
            file.data = content;
        }
        self.last_crash = report;
    }
}

/// What a crash leaves of a file.
fn fate(
    file: &Inode,
    fault: DataFault,
    rng: &mut Rng,
    name: Option<&OsStr>,
    report: &mut Vec<String>,
) -> Vec<u8> {
    if file.data == file.durable {
        return file.data.clone();
    }
    let fault = match fault {
        DataFault::Mixed => match rng.below(8) {
            0 => DataFault::KeepWritten,
            1 => DataFault::LoseUnsynced,
            n @ 2..=5 => DataFault::Torn {
                sector: if n < 4 { 512 } else { 4096 },
                garbage: n % 2 == 0,
            },
            n => DataFault::Hole {
                sector: if n == 6 { 512 } else { 4096 },
            },
        },
        other => other,
    };
    let name = name.unwrap_or_default().to_string_lossy();
    let (durable, written) = (file.durable.len() as u64, file.data.len() as u64);
    let mut say = |what: String| {
        report.push(format!(
            "{name} (durable {durable}, written {written}): {what}"
        ));
    };
    if !file.data.starts_with(&file.durable) {
        return if fault == DataFault::KeepWritten {
            say("truncated, kept as written".into());
            file.data.clone()
        } else {
            say("truncated, back to durable".into());
            file.durable.clone()
        };
    }
    match fault {
        DataFault::KeepWritten | DataFault::Mixed => {
            say("kept".into());
            file.data.clone()
        }
        DataFault::LoseUnsynced => {
            say("unsynced lost".into());
            file.durable.clone()
        }
        DataFault::Torn { sector, garbage } => {
            let first = durable.div_ceil(sector) * sector;
            let cuts = if first > written {
                0
            } else {
                (written - first) / sector + 1
            };
            let cut = if cuts == 0 {
                durable
            } else {
                first + rng.below(cuts) * sector
            };
            let mut out = file.data[..cut as usize].to_vec();
            if garbage {
                let len = 1 + rng.below(sector);
                let zeroes = rng.coin();
                out.extend((0..len).map(|_| if zeroes { 0 } else { rng.next() as u8 }));
                let kind = if zeroes { "zeroes" } else { "random bytes" };
                say(format!("torn at {cut} ({sector}), then {len} {kind}"));
            } else {
                say(format!("torn at {cut} ({sector})"));
            }
            out
        }
        DataFault::Hole { sector } => {
            let first_page = durable / sector;
            let pages = (written - 1) / sector - first_page + 1;
            let page = first_page + rng.below(pages);
            let from = (page * sector).max(durable) as usize;
            let to = ((page + 1) * sector).min(written) as usize;
            let mut out = file.data.clone();
            out[from..to].fill(0);
            say(format!("hole of zeroes at {from}..{to}"));
            out
        }
    }
}

/// The spool's view of one life.
struct Life {
    world: Arc<Mutex<World>>,
    life: u64,
}

impl Life {
    fn file(&self, inode: u64, writable: bool) -> Arc<dyn SpoolFile> {
        Arc::new(FaultFile {
            world: self.world.clone(),
            life: self.life,
            inode,
            writable,
        })
    }
}

impl SpoolFs for Life {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut w = lock(&self.world);
        w.alive(self.life)?;
        w.dirs.entry(dir.to_owned()).or_default();
        Ok(())
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        let w = lock(&self.world);
        w.alive(self.life)?;
        let dir = w.dirs.get(dir).ok_or_else(|| not_found(dir))?;
        Ok(dir.live.keys().cloned().collect())
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let mut w = lock(&self.world);
        w.alive(self.life)?;
        let inode = w.inode_of(path)?;
        Ok(w.inode(inode)?.data.clone())
    }

    fn size(&self, path: &Path) -> io::Result<u64> {
        let mut w = lock(&self.world);
        w.alive(self.life)?;
        let inode = w.inode_of(path)?;
        Ok(w.inode(inode)?.data.len() as u64)
    }

    fn open_read(&self, path: &Path) -> io::Result<Arc<dyn SpoolFile>> {
        let mut w = lock(&self.world);
        w.alive(self.life)?;
        let inode = w.inode_of(path)?;
        Ok(self.file(inode, false))
    }

    fn open_write(&self, path: &Path) -> io::Result<Arc<dyn SpoolFile>> {
        let mut w = lock(&self.world);
        w.alive(self.life)?;
        let inode = w.inode_of(path)?;
        Ok(self.file(inode, true))
    }

    fn create_new(&self, path: &Path) -> io::Result<Arc<dyn SpoolFile>> {
        let mut w = lock(&self.world);
        w.change(self.life)?;
        let (dir, name) = w.dir(path)?;
        if dir.live.contains_key(&name) {
            return Err(io::Error::from(io::ErrorKind::AlreadyExists));
        }
        let inode = w.new_inode();
        w.dir(path)?.0.live.insert(name, inode);
        Ok(self.file(inode, true))
    }

    fn create(&self, path: &Path) -> io::Result<Arc<dyn SpoolFile>> {
        let mut w = lock(&self.world);
        w.change(self.life)?;
        let inode = match w.inode_of(path) {
            Ok(inode) => {
                w.inode(inode)?.data.clear();
                inode
            }
            Err(_) => {
                let (_, name) = w.dir(path)?;
                let inode = w.new_inode();
                w.dir(path)?.0.live.insert(name, inode);
                inode
            }
        };
        Ok(self.file(inode, true))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut w = lock(&self.world);
        w.change(self.life)?;
        let inode = w.inode_of(from)?;
        let (dir, name) = w.dir(from)?;
        dir.live.remove(&name);
        let (dir, name) = w.dir(to)?;
        dir.live.insert(name, inode);
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut w = lock(&self.world);
        w.change(self.life)?;
        let (dir, name) = w.dir(path)?;
        dir.live
            .remove(&name)
            .map(|_| ())
            .ok_or_else(|| not_found(path))
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut w = lock(&self.world);
        w.change(self.life)?;
        let dir = w.dirs.get_mut(dir).ok_or_else(|| not_found(dir))?;
        dir.durable = dir.live.clone();
        Ok(())
    }

    fn lock(&self, path: &Path) -> Result<FileLock, LockError> {
        let mut w = lock(&self.world);
        w.alive(self.life).map_err(|source| LockError::Io {
            action: "locking the lock file",
            source,
        })?;
        if !w.locks.insert(path.to_owned()) {
            return Err(LockError::Held { holder: None });
        }
        Ok(Box::new(HeldLock {
            world: self.world.clone(),
            life: self.life,
            path: path.to_owned(),
        }))
    }
}

/// A lock of one life: a crash frees it, and dropping it afterwards changes nothing.
struct HeldLock {
    world: Arc<Mutex<World>>,
    life: u64,
    path: PathBuf,
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        let mut w = lock(&self.world);
        if w.life == self.life {
            w.locks.remove(&self.path);
        }
    }
}

/// An open file of one life.
struct FaultFile {
    world: Arc<Mutex<World>>,
    life: u64,
    inode: u64,
    writable: bool,
}

/// What an operation on an open file does.
#[derive(PartialEq)]
enum Access {
    Read,
    Sync,
    Write,
}

impl FaultFile {
    fn with<R>(
        &self,
        access: Access,
        f: impl FnOnce(&mut Inode) -> io::Result<R>,
    ) -> io::Result<R> {
        let mut w = lock(&self.world);
        if access == Access::Write && !self.writable {
            return Err(io::Error::other("file not open for writing"));
        }
        if access == Access::Read {
            w.alive(self.life)?;
        } else {
            w.change(self.life)?;
        }
        f(w.inode(self.inode)?)
    }
}

impl SpoolFile for FaultFile {
    fn write_all(&self, buf: &[u8]) -> io::Result<()> {
        let mut w = lock(&self.world);
        if !self.writable {
            return Err(io::Error::other("file not open for writing"));
        }
        let changed = w.change(self.life);
        let failed = matches!(&changed, Err(e) if e.kind() == io::ErrorKind::StorageFull);
        if changed.is_ok() || failed {
            // A failed write is a short one.
            let len = if failed { buf.len() / 2 } else { buf.len() };
            w.inode(self.inode)?.data.extend_from_slice(&buf[..len]);
        }
        changed
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.with(Access::Read, |file| {
            let from = offset as usize;
            let bytes = file
                .data
                .get(from..from + buf.len())
                .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
            buf.copy_from_slice(bytes);
            Ok(())
        })
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.with(Access::Write, |file| {
            file.data.resize(len as usize, 0);
            Ok(())
        })
    }

    fn size(&self) -> io::Result<u64> {
        self.with(Access::Read, |file| Ok(file.data.len() as u64))
    }

    fn sync_data(&self) -> io::Result<()> {
        self.with(Access::Sync, |file| {
            file.durable = file.data.clone();
            Ok(())
        })
    }

    fn sync_all(&self) -> io::Result<()> {
        self.sync_data()
    }
}
