//! The live set as readers see it: one immutable [`Snapshot`] behind the registry's `ArcSwap`,
//! never changed in place, replaced whole by a reload. The ways a reload builds one are here,
//! so its status rows are always sorted the same way.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::report::{DeploymentStatus, RegistryStatus};
use crate::deployments::deployment::Deployment;

/// An immutable view of the live set.
pub(super) struct Snapshot {
    pub(super) deployments: HashMap<String, Arc<Deployment>>,
    pub(super) status: RegistryStatus,
}

impl Snapshot {
    /// Nothing loaded yet: what a registry holds until its first reload swaps in a set.
    pub(super) fn empty(prompts_dir: PathBuf) -> Snapshot {
        Snapshot {
            deployments: HashMap::new(),
            status: RegistryStatus {
                prompts_dir,
                dir_error: None,
                folder_errors: Vec::new(),
                deployments: Vec::new(),
            },
        }
    }

    /// A set serving `deployments`, with the status `rows` sorted by id, then source.
    pub(super) fn new(
        prompts_dir: PathBuf,
        dir_error: Option<String>,
        folder_errors: Vec<String>,
        deployments: HashMap<String, Arc<Deployment>>,
        mut rows: Vec<DeploymentStatus>,
    ) -> Snapshot {
        rows.sort_by(|a, b| (&a.id, &a.source).cmp(&(&b.id, &b.source)));
        Snapshot {
            deployments,
            status: RegistryStatus {
                prompts_dir,
                dir_error,
                folder_errors,
                deployments: rows,
            },
        }
    }

    /// This set, still serving, with the prompts directory's error `message` in its status.
    pub(super) fn with_dir_error(&self, message: String) -> Snapshot {
        let mut status = self.status.clone();
        status.dir_error = Some(message);
        Snapshot {
            deployments: self.deployments.clone(),
            status,
        }
    }
}
