//! Checks that span files, and checking a whole prompts directory without serving it (what
//! `promptd validate` and systemd's `ExecReload` check run before a reload).

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use super::loader::{self, LoadError, Problem};
use super::scan;

/// The outcome of [`validate_dir`].
#[derive(Debug)]
pub struct Validation {
    /// Prompt files found (loadable or not).
    pub files: usize,
    /// Sub-folders that cannot be read (the first of `errors`).
    pub unreadable_folders: usize,
    /// Every folder that cannot be read and every file that would be refused; empty when the
    /// directory is fine.
    pub errors: Vec<LoadError>,
}

/// Check every prompt file under `dir` as a reload would, without touching any registry or
/// store. Fails only when `dir` itself cannot be read; a sub-folder that cannot be read is an
/// error of its own (a reload would keep serving what it last loaded from there, but this
/// check cannot know whether the files in it are fine).
pub fn validate_dir(dir: &Path, providers: &[String]) -> io::Result<Validation> {
    let scanned = scan::scan(dir)?;
    let mut results: Vec<(PathBuf, Result<loader::Parsed, LoadError>)> = scanned
        .files
        .into_iter()
        .map(|file| {
            let result = file
                .bytes
                .and_then(|bytes| loader::parse(&file.path, &bytes, providers));
            (file.path, result)
        })
        .collect();
    refuse_duplicate_ids(&mut results, |parsed| &parsed.content.id);
    let folder_errors = scanned.unreadable_folders.iter().map(|f| f.to_load_error());
    Ok(Validation {
        files: results.len(),
        unreadable_folders: scanned.unreadable_folders.len(),
        errors: folder_errors
            .chain(results.into_iter().filter_map(|(_, r)| r.err()))
            .collect(),
    })
}

/// Turn every loaded file whose id another loaded file declares too into a
/// [`Problem::DuplicateId`] error naming both paths: neither may serve, as neither is
/// obviously the one meant.
pub fn refuse_duplicate_ids<T>(
    results: &mut [(PathBuf, Result<T, LoadError>)],
    id_of: impl Fn(&T) -> &str,
) {
    let mut paths_by_id: HashMap<String, Vec<PathBuf>> = HashMap::new();
    for (path, result) in results.iter() {
        if let Ok(loaded) = result {
            paths_by_id
                .entry(id_of(loaded).to_owned())
                .or_default()
                .push(path.clone());
        }
    }
    for (path, result) in results.iter_mut() {
        let Ok(loaded) = result else { continue };
        let id = id_of(loaded).to_owned();
        let Some(paths) = paths_by_id.get(&id).filter(|paths| paths.len() > 1) else {
            continue;
        };
        let other = paths
            .iter()
            .find(|p| *p != path)
            .cloned()
            .unwrap_or_default();
        *result = Err(LoadError {
            path: path.clone(),
            line: None,
            problem: Problem::DuplicateId {
                id,
                this: path.clone(),
                other,
            },
        });
    }
}
