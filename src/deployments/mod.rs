//! Deployed prompts: prompt files in a watched directory, each a named deployment (provider,
//! model, params, `{{placeholder}}` messages, functions), served by id.
//!
//! - [`template`] — the `{{name}}` template engine, compiled once, rendered per request.
//! - [`deployment`] — one [`Deployment`], its rendering and its `/deployed-prompt` answer.
//! - [`loader`] — one file (YAML, TOML, JSON) to a validated deployment, or a [`LoadError`]
//!   naming the file, the line and the problem.
//! - [`scan`] — walking the directory: size limit, symlink rules, hidden files skipped.
//! - [`registry`] — the live set ([`Registry`]): lock-free reads, atomic reloads that keep
//!   the last good version of a broken file, persistence in sled, status rows.
//! - [`store`] — the sled `deployments` tree: versioned bincode values, version counters.
//! - [`upstream`] — fetching ids that are not local from the upstream Parea API, with a TTL.
//! - [`validate`] — checks across files (duplicate ids) and checking a directory without
//!   serving it (`promptd validate`).
//! - [`watcher`] — `notify` watching the directory, debounced, reloading through the same
//!   path as SIGHUP.

pub mod deployment;
pub mod loader;
pub mod registry;
pub mod scan;
pub mod store;
pub mod template;
pub mod upstream;
pub mod validate;
pub mod watcher;

pub use deployment::{
    ContentHash, DeployedPrompt, Deployment, DeploymentContent, DeploymentMessage, Source,
    UseDeployedPromptResponse,
};
pub use loader::{LoadError, Problem};
pub use registry::{
    DeploymentCounts, DeploymentStatus, Registry, RegistryStatus, ReloadReport, Status,
};
pub use template::{Template, TemplateError};
pub use upstream::{fetch_upstream, LookupError, Upstream, UpstreamError, DEFAULT_UPSTREAM_TTL};
pub use validate::{validate_dir, Validation};
pub use watcher::{spawn_watcher, watch, Watch, WatchError, WatcherHandle};
