//! Deployed prompts against real files: a temp prompts directory, a real sled database, the
//! real `notify` watcher, and a fake Parea server for upstream fetches. Waits are bounded
//! polls with deadlines, never fixed sleeps.

#[path = "../common/fake_upstream.rs"]
mod fake_upstream;
#[path = "../common/wait.rs"]
mod wait;

mod bad_input;
mod first_load;
mod load;
mod locked;
mod store;
mod upstream;
mod watch;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use promptd::deployments::{DeploymentStatus, Registry, Status};
use tempfile::TempDir;
pub use wait::wait_for;

/// Generous bound for anything the watcher must do; the latency test checks the 500 ms goal.
pub const DEADLINE: Duration = Duration::from_secs(10);

pub fn providers() -> Vec<String> {
    vec!["openai".into(), "anthropic".into()]
}

/// A temp dir holding `prompts/` and a sled database under `state/`.
#[derive(Debug)]
pub struct Fixture {
    pub dir: TempDir,
    pub prompts: PathBuf,
    db: Option<sled::Db>,
}

impl Default for Fixture {
    fn default() -> Self {
        Self::new()
    }
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let prompts = dir.path().join("prompts");
        std::fs::create_dir(&prompts).expect("create prompts dir");
        let db = sled::open(dir.path().join("state")).expect("open sled");
        Fixture {
            dir,
            prompts,
            db: Some(db),
        }
    }

    pub fn db(&self) -> &sled::Db {
        self.db.as_ref().expect("database open")
    }

    pub fn tree(&self) -> sled::Tree {
        self.db().open_tree("deployments").expect("open tree")
    }

    /// A registry on this fixture's directory and tree (loads the directory).
    pub fn registry(&self) -> Arc<Registry> {
        Arc::new(Registry::open(&self.prompts, providers(), self.tree()))
    }

    /// Close and reopen the database, as a daemon restart does.
    pub fn reopen_db(&mut self) {
        if let Some(db) = self.db.take() {
            db.flush().expect("flush");
            drop(db);
        }
        let path = self.dir.path().join("state");
        let deadline = Instant::now() + DEADLINE;
        loop {
            match sled::open(&path) {
                Ok(db) => {
                    self.db = Some(db);
                    return;
                }
                // sled's background thread may hold the lock a moment longer.
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("reopen sled: {e}"),
            }
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.prompts.join(name)
    }

    /// Write `text` to `name` in place (truncate and write).
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create parent");
        }
        std::fs::write(&path, text).expect("write prompt file");
        path
    }

    /// Save `text` to `name` as editors do: write a hidden temp file, then rename it over.
    pub fn save_atomically(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        let tmp = path.with_file_name(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).expect("write temp file");
        std::fs::rename(&tmp, &path).expect("rename over");
        path
    }
}

/// A minimal valid YAML prompt.
pub fn yaml(model: &str) -> String {
    format!(
        "provider: openai\nmodel: {model}\nmessages:\n  - role: system\n    content: You help {{{{who}}}}.\n  - role: user\n    content: \"{{{{question}}}}\"\n"
    )
}

/// The status row for the file at `path`.
pub fn row(registry: &Registry, path: &Path) -> Option<DeploymentStatus> {
    registry
        .status()
        .deployments
        .into_iter()
        .find(|r| r.source == path)
}

/// The model `id` is served with, if it is served.
pub fn model_of(registry: &Registry, id: &str) -> Option<String> {
    registry.get(id).map(|d| d.model.clone())
}

/// The row for `path` with status `status`, for `wait_for`.
pub fn row_with(registry: &Registry, path: &Path, status: Status) -> Option<DeploymentStatus> {
    row(registry, path).filter(|r| r.status == status)
}
