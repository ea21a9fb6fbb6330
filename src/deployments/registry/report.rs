//! What the registry tells: a row per prompt file ([`DeploymentStatus`]), the whole status
//! ([`RegistryStatus`]) and its counts, and what one reload did ([`ReloadReport`]).

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::deployments::loader::LoadError;

/// How a deployment's file is doing, for `GET /deployments`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Loaded from its file, serving the file's content.
    Ok,
    /// The file is broken; the last good version serves if there is one (`serving`).
    Error,
    /// The prompts directory could not be read at start-up; served from the sled store.
    FromStore,
}

/// One row of `GET /deployments`: one prompt file (or one stored deployment).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeploymentStatus {
    pub id: String,
    /// Version being served, if any.
    pub version: Option<u64>,
    /// The file this row is about.
    pub source: PathBuf,
    pub status: Status,
    /// Whether requests for `id` are answered (by this file's current or last good version).
    pub serving: bool,
    /// What is wrong with the file: path, line and problem.
    pub last_error: Option<String>,
}

/// Counts for `/status` and `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DeploymentCounts {
    /// Deployments answering requests.
    pub serving: u64,
    /// Files refused at the last reload.
    pub failed: u64,
    /// Deployments served from the store (prompts directory unreadable at start-up).
    pub from_store: u64,
}

/// The whole status, for `GET /deployments` and `promptd status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegistryStatus {
    pub prompts_dir: PathBuf,
    /// Why the prompts directory could not be read at the last reload.
    pub dir_error: Option<String>,
    /// Sub-folders that could not be read at the last reload, each with why.
    pub folder_errors: Vec<String>,
    /// Sorted by id, then source.
    pub deployments: Vec<DeploymentStatus>,
}

impl RegistryStatus {
    pub fn counts(&self) -> DeploymentCounts {
        let mut c = DeploymentCounts::default();
        for d in &self.deployments {
            c.serving += u64::from(d.serving);
            c.failed += u64::from(d.status == Status::Error);
            c.from_store += u64::from(d.status == Status::FromStore);
        }
        c
    }
}

/// What one reload did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadReport {
    /// Deployments serving after the reload.
    pub serving: usize,
    /// Ids whose content (or version) changed or that are new.
    pub changed: Vec<String>,
    /// Ids no longer served (their file is gone).
    pub removed: Vec<String>,
    /// Sub-folders that could not be read, then files that failed to load.
    pub errors: Vec<LoadError>,
    /// The prompts directory could not be read: nothing changed.
    pub dir_error: Option<String>,
    pub elapsed: Duration,
}
