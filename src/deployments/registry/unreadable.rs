//! A reload whose scan could not read the prompts directory (missing, not mounted, no
//! permission): nothing is dropped. After a first load the live set keeps serving, its status
//! naming the error; at start-up the deployments stored in sled serve (status `from_store`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::report::{DeploymentStatus, ReloadReport, Status};
use super::snapshot::Snapshot;
use super::{Registry, ReloadState};
use crate::deployments::deployment::{Deployment, Source};

impl Registry {
    /// The scan failed with `error`: keep the last good set serving (at start-up, the store's)
    /// and show the error in the status.
    pub(super) fn dir_unreadable(
        &self,
        state: &mut ReloadState,
        previous: &Snapshot,
        error: std::io::Error,
    ) -> ReloadReport {
        let message = format!(
            "cannot read the prompts directory {}: {error}",
            self.prompts_dir.display()
        );
        let mut report = ReloadReport {
            dir_error: Some(message.clone()),
            ..ReloadReport::default()
        };
        if state.loaded_once {
            // Keep serving what we have; the directory may be being replaced.
            if state.logged_dir_error.as_deref() != Some(&message) {
                tracing::warn!("{message}; the loaded deployments keep serving");
            }
            self.live
                .store(Arc::new(previous.with_dir_error(message.clone())));
        } else {
            let stored = self.store.load_files();
            tracing::warn!(
                "{message}; serving {} deployments from the store",
                stored.len()
            );
            let mut deployments = HashMap::new();
            let mut rows = Vec::new();
            for d in stored {
                rows.push(DeploymentStatus {
                    id: d.id.clone(),
                    version: Some(d.version),
                    source: source_path(&d),
                    status: Status::FromStore,
                    serving: true,
                    last_error: None,
                });
                report.changed.push(d.id.clone());
                deployments.insert(d.id.clone(), Arc::new(d));
            }
            self.live.store(Arc::new(Snapshot::new(
                self.prompts_dir.clone(),
                Some(message.clone()),
                Vec::new(),
                deployments,
                rows,
            )));
        }
        state.logged_dir_error = Some(message);
        report
    }
}

fn source_path(d: &Deployment) -> PathBuf {
    match &d.source {
        Source::File(path) => path.clone(),
        Source::Upstream { base_url, .. } => PathBuf::from(base_url),
    }
}
