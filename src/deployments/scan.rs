//! Walk the prompts directory and read every prompt file in it, refusing what must not be
//! loaded: files over [`MAX_FILE_BYTES`], symlink loops, links that resolve outside the
//! directory, directory links that cycle back to an ancestor.
//!
//! Hidden entries (names starting with `.`) are skipped: editors keep swap files, backups and
//! lock links there (`.x.yaml.swp`, emacs' dangling `.#x.yaml` links), and `.git` is not ours.
//! Files without a prompt extension are skipped silently. A refused entry becomes a
//! [`ScannedFile`] whose `bytes` is the error, so it shows in the registry's status like any
//! other broken file.
//!
//! A sub-folder that cannot be listed (permission denied, an I/O error, nested too deep) is an
//! [`UnreadableFolder`] of the [`Scan`], and the walk goes on with the rest: the files in that
//! folder are unknown, not deleted, so the registry keeps serving what it last loaded from
//! there.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::loader::{Format, LoadError, Problem};

/// Largest prompt file read. Real prompts with function schemas are tens of KiB; 1 MiB leaves
/// ample room while refusing a misplaced log or data set that would stall every reload.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Deepest directory nesting followed; deeper trees are someone's mistake, not prompts.
const MAX_DEPTH: usize = 32;

/// One prompt file found by [`scan`]: its path (as reached from the root, links unresolved)
/// and its bytes, or why it cannot be read.
#[derive(Debug)]
pub struct ScannedFile {
    pub path: PathBuf,
    pub bytes: Result<Vec<u8>, LoadError>,
}

/// What [`scan`] found under the prompts directory.
#[derive(Debug, Default)]
pub struct Scan {
    /// Every prompt file found, sorted by path.
    pub files: Vec<ScannedFile>,
    /// Sub-folders that could not be listed (or not fully), sorted by path: files in them may
    /// be missing from `files` although they still exist.
    pub unreadable_folders: Vec<UnreadableFolder>,
}

/// A sub-folder [`scan`] could not list, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadableFolder {
    /// As reached from the root, links unresolved (like [`ScannedFile::path`]).
    pub path: PathBuf,
    pub reason: String,
}

impl UnreadableFolder {
    /// Whether `file` (a path as [`scan`] reports it) lies in this folder, at any depth.
    pub(crate) fn contains(&self, file: &Path) -> bool {
        file.starts_with(&self.path)
    }

    /// The folder as an error of its own, for `promptd validate` and reload reports.
    pub(crate) fn to_load_error(&self) -> LoadError {
        LoadError {
            path: self.path.clone(),
            line: None,
            problem: Problem::UnreadableFolder(self.reason.clone()),
        }
    }

    /// The error of `file`, one of the files in this folder that could not be seen.
    pub(crate) fn error_of(&self, file: &Path) -> LoadError {
        LoadError {
            path: file.to_owned(),
            line: None,
            problem: Problem::InUnreadableFolder {
                folder: self.path.clone(),
                reason: self.reason.clone(),
            },
        }
    }
}

/// Every prompt file under `root`, sorted by path. Fails only when `root` itself cannot be
/// read; problems with single entries are reported per entry, and sub-folders that cannot be
/// listed in [`Scan::unreadable_folders`].
pub fn scan(root: &Path) -> io::Result<Scan> {
    let canonical_root = fs::canonicalize(root)?;
    if !fs::metadata(&canonical_root)?.is_dir() {
        return Err(io::Error::other("not a directory"));
    }
    // Read the root once here so an unreadable root is an error of the whole scan.
    fs::read_dir(root)?;
    let mut walker = Walker {
        canonical_root,
        found: Scan::default(),
    };
    let ancestors = vec![walker.canonical_root.clone()];
    walker.walk(root, &ancestors);
    let mut found = walker.found;
    found.files.sort_by(|a, b| a.path.cmp(&b.path));
    found.unreadable_folders.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(found)
}

struct Walker {
    canonical_root: PathBuf,
    found: Scan,
}

impl Walker {
    fn unreadable(&mut self, dir: &Path, reason: String) {
        if self.found.unreadable_folders.iter().any(|f| f.path == dir) {
            return;
        }
        self.found.unreadable_folders.push(UnreadableFolder {
            path: dir.to_owned(),
            reason,
        });
    }

    fn refuse(&mut self, path: PathBuf, problem: Problem) {
        self.found.files.push(ScannedFile {
            bytes: Err(LoadError {
                path: path.clone(),
                line: None,
                problem,
            }),
            path,
        });
    }

    /// Walk `dir` (as reached from the root), whose canonical path is the last of `ancestors`.
    fn walk(&mut self, dir: &Path, ancestors: &[PathBuf]) {
        if ancestors.len() > MAX_DEPTH {
            return self.unreadable(dir, format!("nested deeper than {MAX_DEPTH} directories"));
        }
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) => return self.unreadable(dir, e.to_string()),
        };
        let canonical_dir = ancestors.last().cloned().unwrap_or_default();
        for entry in entries {
            // Listing stops at an error: the entries after it are unknown, not deleted.
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => return self.unreadable(dir, e.to_string()),
            };
            let name = entry.file_name();
            if name.to_string_lossy().starts_with('.') {
                continue;
            }
            let path = entry.path();
            let kind = match entry.file_type() {
                Ok(kind) => kind,
                // Deleted since it was listed.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => {
                    self.unreadable(dir, format!("{}: {e}", name.to_string_lossy()));
                    continue;
                }
            };
            let is_prompt = Format::of(&path).is_some();
            if kind.is_dir() {
                let mut chain = ancestors.to_vec();
                chain.push(canonical_dir.join(&name));
                self.walk(&path, &chain);
            } else if kind.is_symlink() {
                self.follow_link(path, is_prompt, ancestors);
            } else if kind.is_file() && is_prompt {
                let bytes = read_limited(&path);
                self.found.files.push(ScannedFile { path, bytes });
            }
        }
    }

    fn follow_link(&mut self, path: PathBuf, is_prompt: bool, ancestors: &[PathBuf]) {
        let target = match fs::canonicalize(&path) {
            Ok(target) => target,
            Err(e) if e.raw_os_error() == Some(nix::errno::Errno::ELOOP as i32) => {
                return self.refuse(path, Problem::SymlinkLoop);
            }
            Err(e) => {
                if is_prompt {
                    self.refuse(path, Problem::DanglingLink(e.to_string()));
                } else if e.kind() == io::ErrorKind::PermissionDenied {
                    // Maybe a linked folder: what it holds is unknown, not deleted.
                    self.unreadable(&path, e.to_string());
                }
                return;
            }
        };
        let Ok(meta) = fs::metadata(&target) else {
            return;
        };
        if !meta.is_dir() && !is_prompt {
            return;
        }
        if !target.starts_with(&self.canonical_root) {
            return self.refuse(
                path,
                Problem::OutsideRoot {
                    target,
                    root: self.canonical_root.clone(),
                },
            );
        }
        if meta.is_dir() {
            if ancestors.contains(&target) {
                return self.refuse(path, Problem::DirectoryCycle(target));
            }
            let mut chain = ancestors.to_vec();
            chain.push(target);
            self.walk(&path, &chain);
        } else if meta.is_file() {
            let bytes = read_limited(&path);
            self.found.files.push(ScannedFile { path, bytes });
        }
    }
}

/// Read `path` if it is at most [`MAX_FILE_BYTES`] long (checked before reading, and again
/// while reading in case the file grows meanwhile).
fn read_limited(path: &Path) -> Result<Vec<u8>, LoadError> {
    let fail = |problem: Problem| LoadError {
        path: path.to_owned(),
        line: None,
        problem,
    };
    let too_large = |size: u64| {
        fail(Problem::TooLarge {
            size,
            limit: MAX_FILE_BYTES,
        })
    };
    let file = fs::File::open(path).map_err(|e| fail(Problem::Read(e.to_string())))?;
    let size = file
        .metadata()
        .map_err(|e| fail(Problem::Read(e.to_string())))?
        .len();
    if size > MAX_FILE_BYTES {
        return Err(too_large(size));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(Problem::Read(e.to_string())))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}
