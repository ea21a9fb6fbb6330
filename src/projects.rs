//! Projects for `POST /project`: create-or-get by name, so the Parea SDK's start-up call works
//! offline. The uuid is derived from the name (UUIDv5 in promptd's namespace), so it is the same
//! on every machine; the creation time is remembered in `state_dir/projects.json`.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A project by name, and whether this call created it (`POST /project`'s answer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectResponse {
    pub name: String,
    pub uuid: String,
    pub created_at: String,
    pub was_created: bool,
}

/// promptd's UUIDv5 namespace for project names.
const PROJECT_NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_2a4e_9b7d_4c1e_8a3f_5d2b_7e9c_1a04);

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Project {
    uuid: String,
    created_at: String,
}

/// Known projects, persisted as a small JSON file (rewritten atomically on change).
#[derive(Debug)]
pub struct ProjectStore {
    path: PathBuf,
    projects: Mutex<BTreeMap<String, Project>>,
}

impl ProjectStore {
    /// Open the store in `state_dir`. A file that does not parse is moved aside to
    /// `projects.json.corrupt` (not overwritten by the next save) and the store starts afresh;
    /// the uuids do not depend on it, only the remembered creation times.
    pub fn open(state_dir: &Path) -> ProjectStore {
        let path = state_dir.join("projects.json");
        let projects = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                let aside = path.with_extension("json.corrupt");
                let moved = std::fs::rename(&path, &aside);
                tracing::warn!(path = %path.display(), error = %e, kept_as = %aside.display(), moved = moved.is_ok(), "projects file unreadable; starting with none");
                BTreeMap::new()
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read projects file; starting with none");
                BTreeMap::new()
            }
        };
        ProjectStore {
            path,
            projects: Mutex::new(projects),
        }
    }

    /// The uuid of a project name.
    pub fn uuid_for(name: &str) -> String {
        Uuid::new_v5(&PROJECT_NAMESPACE, name.as_bytes()).to_string()
    }

    /// Get the project `name`, creating it on first use.
    pub fn get_or_create(&self, name: &str) -> io::Result<ProjectResponse> {
        let mut projects = self.projects.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = projects.get(name) {
            return Ok(ProjectResponse {
                name: name.to_owned(),
                uuid: p.uuid.clone(),
                created_at: p.created_at.clone(),
                was_created: false,
            });
        }
        let project = Project {
            uuid: Self::uuid_for(name),
            created_at: crate::timestamp::now_iso(),
        };
        projects.insert(name.to_owned(), project.clone());
        if let Err(e) = self.save(&projects) {
            projects.remove(name);
            return Err(e);
        }
        Ok(ProjectResponse {
            name: name.to_owned(),
            uuid: project.uuid,
            created_at: project.created_at,
            was_created: true,
        })
    }

    fn save(&self, projects: &BTreeMap<String, Project>) -> io::Result<()> {
        let tmp = self.path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(projects).map_err(io::Error::other)?;
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, &self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_corrupt_file_is_kept_aside_not_overwritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("projects.json"), b"{not json").expect("write");
        let store = ProjectStore::open(dir.path());
        store.get_or_create("p").expect("created");
        assert_eq!(
            std::fs::read(dir.path().join("projects.json.corrupt")).expect("kept"),
            b"{not json"
        );
    }

    #[test]
    fn uuid_is_stable_and_creation_is_remembered_across_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ProjectStore::open(dir.path());
        let first = store.get_or_create("demo").expect("create");
        assert!(first.was_created);
        assert_eq!(first.uuid, ProjectStore::uuid_for("demo"));
        let again = store.get_or_create("demo").expect("get");
        assert!(!again.was_created);
        let reopened = ProjectStore::open(dir.path())
            .get_or_create("demo")
            .expect("get");
        assert!(!reopened.was_created);
        assert_eq!(reopened.created_at, first.created_at);
        assert_ne!(ProjectStore::uuid_for("other"), first.uuid);
    }
}
