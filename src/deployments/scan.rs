//! Walk the prompts directory and read every prompt file in it, refusing what must not be
//! loaded: files over [`MAX_FILE_BYTES`], symlink loops, links that resolve outside the
//! directory, directory links that cycle back to an ancestor.
//!
//! Hidden entries (names starting with `.`) are skipped: editors keep swap files, backups and
//! lock links there (`.x.yaml.swp`, emacs' dangling `.#x.yaml` links), and `.git` is not ours.
//! Files without a prompt extension are skipped silently. A refused entry becomes a
//! [`ScannedFile`] whose `bytes` is the error, so it shows in the registry's status like any
//! other broken file.

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

/// Every prompt file under `root`, sorted by path. Fails only when `root` itself cannot be
/// read; problems with single entries are reported per entry.
pub fn scan(root: &Path) -> io::Result<Vec<ScannedFile>> {
    let canonical_root = fs::canonicalize(root)?;
    if !fs::metadata(&canonical_root)?.is_dir() {
        return Err(io::Error::other("not a directory"));
    }
    // Read the root once here so an unreadable root is an error of the whole scan.
    fs::read_dir(root)?;
    let mut walker = Walker {
        canonical_root,
        found: Vec::new(),
    };
    let ancestors = vec![walker.canonical_root.clone()];
    walker.walk(root, &ancestors);
    walker.found.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(walker.found)
}

struct Walker {
    canonical_root: PathBuf,
    found: Vec<ScannedFile>,
}

impl Walker {
    fn refuse(&mut self, path: PathBuf, problem: Problem) {
        self.found.push(ScannedFile {
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
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) => return self.refuse(dir.to_owned(), Problem::Read(e.to_string())),
        };
        if ancestors.len() > MAX_DEPTH {
            return self.refuse(
                dir.to_owned(),
                Problem::Read(format!("nested deeper than {MAX_DEPTH} directories")),
            );
        }
        let canonical_dir = ancestors.last().cloned().unwrap_or_default();
        for entry in entries.flatten() {
            let name = entry.file_name();
            if name.to_string_lossy().starts_with('.') {
                continue;
            }
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
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
                self.found.push(ScannedFile { path, bytes });
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
            self.found.push(ScannedFile { path, bytes });
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
