//! The daemon's tasks and its one shutdown signal: every long-lived task is spawned through a
//! [`Tasks`] group, which tracks it (a drop guard per task) and hands it the group's stop
//! signal. Stopping a group cancels the signal and waits until every task of it has ended: no
//! polling, and nothing left holding the store or the spool when the daemon returns.
//!
//! Groups nest ([`Tasks::child`]): stopping a parent stops its children, and a child (the log
//! flusher, replaced on a reload) can be stopped alone.

use std::future::Future;

use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tokio_util::task::TaskTracker;

/// A group of tracked tasks sharing one stop signal.
#[derive(Debug, Clone, Default)]
pub struct Tasks {
    tracker: TaskTracker,
    stop: CancellationToken,
}

impl Tasks {
    pub fn new() -> Tasks {
        Tasks::default()
    }

    /// A group stopped with this one, or on its own.
    pub fn child(&self) -> Tasks {
        Tasks {
            tracker: TaskTracker::new(),
            stop: self.stop.child_token(),
        }
    }

    /// Run `task`, dropped where it waits when the group stops (for work that may be cut
    /// anywhere: a provider call nobody waits for any more, a status line).
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let stop = self.stop.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                () = task => {}
                () = stop.cancelled() => {}
            }
        });
    }

    /// Run the task `start` makes from the group's stop signal: it ends itself when the signal
    /// resolves (for work that must finish what it started: the flusher, the watcher).
    pub fn spawn_graceful<F>(&self, start: impl FnOnce(WaitForCancellationFutureOwned) -> F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tracker
            .spawn(start(self.stop.clone().cancelled_owned()));
    }

    /// Run `task` to its own end, tracked but deaf to the stop signal (a reload's re-read of
    /// the prompts directory, which must finish and say READY even when a stop comes first).
    pub fn spawn_to_end(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.tracker.spawn(task);
    }

    /// The group's stop signal, for a loop that selects on it.
    pub fn stopped(&self) -> WaitForCancellationFutureOwned {
        self.stop.clone().cancelled_owned()
    }

    /// Signal every task to stop (children's too) and wait until this group's tasks have ended
    /// (a child's are waited for by whoever owns the child).
    pub async fn stop(&self) {
        self.stop.cancel();
        self.wait().await;
    }

    /// Wait until every task spawned so far has ended, without signalling them.
    pub async fn wait(&self) {
        self.tracker.close();
        self.tracker.wait().await;
        self.tracker.reopen();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    #[tokio::test]
    async fn stop_waits_for_graceful_tasks_and_drops_the_others() {
        let tasks = Tasks::new();
        let finished = Arc::new(AtomicBool::new(false));
        let done = Arc::clone(&finished);
        tasks.spawn_graceful(|stop| async move {
            stop.await;
            tokio::task::yield_now().await;
            done.store(true, Ordering::SeqCst);
        });
        tasks.spawn(std::future::pending());
        tasks.stop().await;
        assert!(finished.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn a_child_stops_alone_or_with_its_parent() {
        let parent = Tasks::new();
        let child = parent.child();
        child.spawn(std::future::pending());
        child.stop().await;
        let again = parent.child();
        again.spawn(std::future::pending());
        parent.stop().await;
        // Stopped by the parent's signal: nothing to wait for beyond the task's own end.
        again.wait().await;
    }
}
