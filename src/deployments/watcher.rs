//! Watch the prompts directory and reload the registry when something in it changes.
//!
//! - `notify` (inotify on Linux) watches the directory recursively; new sub-folders get
//!   watches as they appear. The parent directory is watched too (not recursively), so that a
//!   prompts directory that is deleted, created or replaced (`mv new prompts`) is noticed, and
//!   its watch re-added. A once-a-second check of the directory's identity (device, inode)
//!   re-arms the watch in the cases events cannot tell (parent missing at start, say).
//! - A watch that cannot be added (inotify needs read access to every folder, so one
//!   unreadable sub-folder fails the whole recursive watch) is retried at that check, which
//!   also reloads: the directory is then re-read once a second (folders watched before the
//!   failure still send events). The failure is logged once, not at every retry.
//! - Every relevant event leads to the same [`Registry::reload_all`] as SIGHUP: the whole
//!   directory is re-read, and only files whose bytes changed are re-parsed. That makes
//!   editors' atomic saves (write a temp file, rename it over the old one), deletes, moves
//!   and whole new folders one case, with no event bookkeeping to get wrong.
//! - Debouncing is our own, on a tokio channel, not `notify-debouncer-full`: we do not need
//!   its per-file event stitching (we rescan), and its tick-based timer adds up to a quarter
//!   of its timeout to every change. Ours waits until [`QUIET`] passed without an event (an
//!   editor's save is several events within a millisecond or two), at most [`MAX_DELAY`]
//!   after the first, so a change is served well within 500 ms of the save.
//! - Access events (open, read, close without writing) are ignored: reloading reads every
//!   file, and must not wake the watcher again.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, EventKind};
use notify::RecursiveMode;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::registry::Registry;

/// Quiet time after the last event before reloading: covers the burst of one editor save.
pub const QUIET: Duration = Duration::from_millis(40);
/// Longest wait after the first event of a burst (a large copy keeps producing events).
pub const MAX_DELAY: Duration = Duration::from_millis(250);
/// How often the directory's identity is checked to re-add a lost watch.
const REARM_EVERY: Duration = Duration::from_secs(1);
/// Events queued beyond this are dropped: one pending event already means "reload".
const QUEUE: usize = 1024;

/// The watcher could not be started.
#[derive(Debug, thiserror::Error)]
#[error("cannot watch the prompts directory: {0}")]
pub struct WatchError(#[from] notify::Error);

/// A running watcher. [`WatcherHandle::stop`] (or dropping the handle) ends it.
pub struct WatcherHandle {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl WatcherHandle {
    /// Stop watching and wait until the watcher task has ended.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for WatcherHandle {
    fn drop(&mut self) {
        // Dropping the sender wakes the task, which then ends.
        self.stop.take();
    }
}

/// Start watching `registry`'s prompts directory in a tokio task (call inside a runtime). A
/// directory that does not exist yet is picked up when it appears.
pub fn spawn_watcher(registry: Arc<Registry>) -> Result<WatcherHandle, WatchError> {
    let watch = watch(registry)?;
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(watch.run(async move {
        let _ = stop_rx.await;
    }));
    Ok(WatcherHandle {
        stop: Some(stop_tx),
        task: Some(task),
    })
}

/// A watch of the prompts directory, set up and ready to [`run`](Watch::run).
pub struct Watch {
    registry: Arc<Registry>,
    watcher: notify::RecommendedWatcher,
    events: Events,
}

/// Set up a watch of `registry`'s prompts directory (nothing is read until it runs).
pub fn watch(registry: Arc<Registry>) -> Result<Watch, WatchError> {
    let (tx, rx) = mpsc::channel(QUEUE);
    let root = registry.prompts_dir().to_owned();
    let watcher = notify::recommended_watcher(move |event| {
        // Filtered here, so that the queue holds only events that call for a reload (a
        // reload's own reads would otherwise fill it). Full queue: a reload is pending anyway.
        if relevant(&root, &event) {
            let _ = tx.try_send(event);
        }
    })?;
    Ok(Watch {
        registry,
        watcher,
        events: rx,
    })
}

impl Watch {
    /// Reload the registry on every relevant change until `stop` resolves.
    pub async fn run(self, stop: impl std::future::Future<Output = ()>) {
        run(self.registry, self.watcher, self.events, stop).await;
    }
}

/// Relevant events only (see [`relevant`]).
type Events = mpsc::Receiver<notify::Result<notify::Event>>;

/// What is being watched.
struct Armed {
    root: PathBuf,
    /// (device, inode) of the watched directory.
    identity: Option<(u64, u64)>,
    parent_watched: bool,
    /// Why the directory could not be watched at the last try, to log each reason once.
    watch_error: Option<String>,
}

fn identity(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path)
        .ok()
        .filter(|m| m.is_dir())
        .map(|m| (m.dev(), m.ino()))
}

impl Armed {
    /// (Re-)add the watches if the directory is not the one watched. Returns whether anything
    /// changed (the caller then reloads, as the directory's content may be new).
    fn rearm(&mut self, watcher: &mut impl notify::Watcher) -> bool {
        if !self.parent_watched {
            if let Some(parent) = self.root.parent().filter(|p| p.is_dir()) {
                self.parent_watched = watcher.watch(parent, RecursiveMode::NonRecursive).is_ok();
            }
        }
        let now = identity(&self.root);
        if now == self.identity {
            return false;
        }
        if self.identity.is_some() {
            let _ = watcher.unwatch(&self.root);
        }
        self.identity = None;
        if now.is_some() {
            match watcher.watch(&self.root, RecursiveMode::Recursive) {
                Ok(()) => {
                    self.identity = now;
                    if self.watch_error.take().is_some() {
                        tracing::info!("watching the prompts directory {}", self.root.display());
                    }
                }
                Err(e) => {
                    let message = e.to_string();
                    if self.watch_error.as_ref() != Some(&message) {
                        tracing::warn!(
                            "cannot watch the prompts directory {}: {message}; re-reading it \
                             every {REARM_EVERY:?} until it can be watched",
                            self.root.display()
                        );
                    }
                    self.watch_error = Some(message);
                }
            }
        }
        true
    }
}

/// Whether `event` may change what the directory holds.
fn relevant(root: &Path, event: &notify::Result<notify::Event>) -> bool {
    let Ok(event) = event else {
        return true; // e.g. queue overflow: rescan.
    };
    if event.need_rescan() {
        return true;
    }
    if let EventKind::Access(kind) = event.kind {
        if kind != AccessKind::Close(AccessMode::Write) {
            return false;
        }
    }
    event.paths.iter().any(|p| p.starts_with(root))
}

async fn run(
    registry: Arc<Registry>,
    mut watcher: notify::RecommendedWatcher,
    mut events: Events,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    let root = registry.prompts_dir().to_owned();
    let mut armed = Armed {
        root: root.clone(),
        identity: None,
        parent_watched: false,
        watch_error: None,
    };
    if armed.rearm(&mut watcher) {
        // Changes between the registry's first load and the watch being in place.
        reload(&registry).await;
    }
    let mut check = tokio::time::interval(REARM_EVERY);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            event = events.recv() => {
                if event.is_none() {
                    break;
                }
                if !debounce(&mut events, &mut stop).await {
                    break;
                }
                armed.rearm(&mut watcher);
                reload(&registry).await;
            }
            _ = check.tick() => {
                if armed.rearm(&mut watcher) {
                    reload(&registry).await;
                }
            }
        }
    }
    tracing::debug!("prompts watcher for {} stopped", root.display());
}

/// Wait out a burst of events. Returns false when asked to stop meanwhile.
async fn debounce(
    events: &mut Events,
    stop: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
) -> bool {
    let deadline = Instant::now() + MAX_DELAY;
    loop {
        let wait = (Instant::now() + QUIET).min(deadline);
        tokio::select! {
            () = stop.as_mut() => return false,
            event = tokio::time::timeout_at(wait, events.recv()) => match event {
                Ok(Some(_)) if Instant::now() < deadline => continue,
                _ => return true,
            },
        }
    }
}

async fn reload(registry: &Arc<Registry>) {
    let registry = registry.clone();
    if let Err(e) = tokio::task::spawn_blocking(move || registry.reload_all()).await {
        tracing::error!("prompts reload failed: {e}");
    }
}
