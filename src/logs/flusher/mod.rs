//! The flusher: ships spooled entries to the collector and acknowledges them.
//!
//! Reads batches from the spool in order and sends each entry to its endpoint under
//! `[upstream] base_url` (`POST /trace_log`, `PUT /trace_log`, `POST /feedback`,
//! `POST /trace_log/{vendor}`: the route the entry came in by) with
//! `x-api-key` and an `idempotency-key: {trace_id}-{spool id}` header, stable across resends and
//! restarts. Up to `max_in_flight` requests run at once, but two entries of the same trace never
//! do: an entry waits until the earlier one of its trace is done, so an update never overtakes
//! the record it updates (the entries behind it wait too: order is kept, throughput is not the
//! point when that happens).
//!
//! Outcomes: 2xx is sent; 408, 429, 5xx, the redirects, 401, 403 and 404 that say the config is
//! wrong (see [`crate::retry::Caller::Backlog`]) and transport errors are retried without limit,
//! with capped exponential backoff and jitter, or after `Retry-After` when the collector gives
//! one (logs wait, they are never dropped for being slow); any other status is a rejection,
//! counted, logged with the collector's reason, and acknowledged so it does not block the
//! entries after it. The spool acknowledges only over a contiguous prefix, so a crash while an
//! entry is in flight or retrying means it is sent again (same idempotency key).
//!
//! A send task that panics (a bug, in promptd or a library) has neither sent nor refused its
//! entry, and the acknowledged prefix cannot pass an entry that is never finished. So the entry
//! goes back to the front of the queue and is sent again after a backoff, up to
//! [`MAX_SEND_PANICS`] times. An entry that panics its task that often is set aside: logged at
//! error level with its spool id, counted in [`FlusherStats::set_aside`], not tried again in this
//! run, and never acknowledged. It stays on disk and is sent again after the next start; until
//! then the spool cannot free space past it, while the entries after it are still shipped.
//! Retrying it for ever would repeat a panic that has already repeated, holding its trace (and
//! so the queue behind it) meanwhile; acknowledging it would drop a record over a bug. Its trace
//! is released, so a later entry of that trace is sent without it (the collector may refuse an
//! update of a trace log it never got: a counted rejection like any other).
//!
//! With no base URL or no API key the flusher does not read the spool at all: records stay on
//! disk (bounded by `[spool] max_bytes`) and [`FlusherStats::state`] says why.

mod delivery;
mod status;

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::{Id as TaskId, JoinError, JoinHandle, JoinSet};

use super::record::entry::StoredEntry;
use super::spool::{Spool, SpoolError, SpoolRecord};
use crate::config::UpstreamConfig;
pub use delivery::idempotency_key;
#[cfg(test)]
use delivery::BeforeSend;
use delivery::{backoff, deliver, Ctx, Outcome, Outgoing};
use status::Shared;
pub use status::{FlusherHandle, FlusherState, FlusherStats, UpstreamError};

/// Wait after a failed spool read before trying again.
const READ_ERROR_PAUSE: Duration = Duration::from_secs(1);
/// Send tasks that may panic on one entry before it is set aside until the next start: enough
/// to ride out a panic that does not repeat, few enough that one that does is not a loop.
pub const MAX_SEND_PANICS: u32 = 3;

/// A flusher could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTP client for the log collector: {0}")]
pub struct FlusherError(String);

/// Ships one spool's entries; run it with [`Flusher::run`].
pub struct Flusher {
    spool: Spool,
    config: UpstreamConfig,
    http: reqwest::Client,
    shared: Arc<Shared>,
    #[cfg(test)]
    before_send: Option<BeforeSend>,
}

impl Flusher {
    /// A flusher for `spool` with `config`; nothing runs until [`Flusher::run`].
    pub fn new(spool: Spool, config: UpstreamConfig) -> Result<Flusher, FlusherError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("promptd/", env!("CARGO_PKG_VERSION")))
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .pool_idle_timeout(Duration::from_secs(90))
            // reqwest would carry `x-api-key` to wherever `Location` points, and turn a POST
            // into a GET whose 2xx would acknowledge the entry: a redirect is an upstream error.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| FlusherError(crate::error_chain(&e)))?;
        Ok(Flusher {
            spool,
            config,
            http,
            shared: Arc::new(Shared::default()),
            #[cfg(test)]
            before_send: None,
        })
    }

    pub fn handle(&self) -> FlusherHandle {
        FlusherHandle {
            shared: self.shared.clone(),
            spool: self.spool.clone(),
        }
    }

    /// Ship until `shutdown` completes (or the spool closes). Entries in flight at shutdown are
    /// abandoned unacknowledged: they are sent again after the next start.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let shared = self.shared.clone();
        let (base_url, key) = match (&self.config.base_url, &self.config.api_key) {
            (Some(url), Some(key)) => (url.clone(), key.clone()),
            (None, _) => {
                let reason =
                    "shipping is off ([upstream] base_url = \"\"); records stay in the spool"
                        .to_owned();
                return disabled(&shared, reason, shutdown).await;
            }
            (Some(_), None) => {
                let reason = format!(
                    "no API key for the log collector ({}); records stay in the spool",
                    self.config.api_key_source
                );
                return disabled(&shared, reason, shutdown).await;
            }
        };
        shared.set_state(FlusherState::Running);
        // Whatever an earlier consumer was handed but did not acknowledge is ours to send.
        self.spool.rewind().await;
        let ctx = Arc::new(Ctx {
            http: self.http,
            base_url,
            key,
            config: self.config,
            shared: shared.clone(),
            #[cfg(test)]
            before_send: self.before_send,
        });
        Dispatcher {
            spool: self.spool,
            ctx,
            queue: VecDeque::new(),
            tasks: JoinSet::new(),
            running: HashMap::new(),
            busy: HashSet::new(),
        }
        .run(shutdown)
        .await;
        shared.in_flight.store(0, Ordering::Relaxed);
        shared.set_state(FlusherState::Stopped);
    }
}

/// A flusher running on a task of its own, and the means to stop it: what the daemon keeps
/// while it ships, and what tests start and stop.
pub struct FlusherTask {
    handle: FlusherHandle,
    stop: oneshot::Sender<()>,
    join: JoinHandle<()>,
}

impl FlusherTask {
    /// Run `flusher` on a new task until [`FlusherTask::stop`].
    pub fn start(flusher: Flusher) -> FlusherTask {
        let handle = flusher.handle();
        let (stop, stopped) = oneshot::channel::<()>();
        let join = tokio::spawn(flusher.run(async move {
            let _ = stopped.await;
        }));
        FlusherTask { handle, stop, join }
    }

    /// The running flusher's stats and flush trigger.
    pub fn handle(&self) -> &FlusherHandle {
        &self.handle
    }

    /// Stop shipping and wait until the task has ended (an error if it panicked); entries in
    /// flight are sent again by the next flusher.
    pub async fn stop(self) -> Result<(), JoinError> {
        let _ = self.stop.send(());
        self.join.await
    }
}

async fn disabled(shared: &Shared, reason: String, shutdown: impl Future<Output = ()>) {
    tracing::warn!(%reason, "log flusher not shipping");
    shared.set_state(FlusherState::Disabled { reason });
    shutdown.await;
    shared.set_state(FlusherState::Stopped);
}

/// The dispatch loop's state.
struct Dispatcher {
    spool: Spool,
    ctx: Arc<Ctx>,
    /// Read from the spool, not yet sent; in spool order.
    queue: VecDeque<Outgoing>,
    tasks: JoinSet<Outcome>,
    /// Task -> what it sends, kept to send it again if the task panics.
    running: HashMap<TaskId, Outgoing>,
    /// Traces with an entry in flight.
    busy: HashSet<String>,
}

impl Dispatcher {
    async fn run(mut self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let batch_size = self.ctx.config.batch_size;
        loop {
            self.dispatch();
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                Some(done) = self.tasks.join_next_with_id(), if !self.tasks.is_empty() => {
                    self.finished(done);
                }
                read = self.spool.read_batch(batch_size), if self.queue.is_empty() => {
                    match read {
                        Ok(records) => self.enqueue(records),
                        Err(SpoolError::Closed) => break,
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot read the log spool; trying again");
                            tokio::time::sleep(READ_ERROR_PAUSE).await;
                        }
                    }
                }
            }
        }
        self.tasks.abort_all();
    }

    /// Start what may start: in order, while there is room and the front's trace is free.
    fn dispatch(&mut self) {
        while self.tasks.len() < self.ctx.config.max_in_flight {
            let Some(front) = self.queue.front() else {
                break;
            };
            let trace = &front.trace_id;
            if !trace.is_empty() && self.busy.contains(trace) {
                break;
            }
            let Some(out) = self.queue.pop_front() else {
                break;
            };
            if !out.trace_id.is_empty() {
                self.busy.insert(out.trace_id.clone());
            }
            let ctx = self.ctx.clone();
            let sending = out.clone();
            let handle = match out.panics {
                0 => self.tasks.spawn(deliver(ctx, sending)),
                panics => {
                    // Not at once: a panic that repeats must not become a hot loop.
                    let pause = backoff(&ctx.config, panics - 1, None);
                    self.tasks.spawn(async move {
                        tokio::time::sleep(pause).await;
                        deliver(ctx, sending).await
                    })
                }
            };
            self.running.insert(handle.id(), out);
        }
        self.ctx
            .shared
            .in_flight
            .store(self.tasks.len() as u64, Ordering::Relaxed);
    }

    fn enqueue(&mut self, records: Vec<SpoolRecord>) {
        for SpoolRecord { id, payload } in records {
            match StoredEntry::decode(&payload) {
                Ok(entry) => self.queue.push_back(Outgoing::new(id, entry)),
                Err(e) => {
                    tracing::warn!(spool_id = id, error = %e, "skipping a log spool entry that does not decode");
                    self.ctx.shared.undecodable.fetch_add(1, Ordering::Relaxed);
                    self.spool.ack(id);
                }
            }
        }
    }

    fn finished(&mut self, done: Result<(TaskId, Outcome), tokio::task::JoinError>) {
        let task = match &done {
            Ok((task, _)) => *task,
            Err(e) => e.id(),
        };
        let Some(out) = self.running.remove(&task) else {
            return;
        };
        self.busy.remove(&out.trace_id);
        let shared = &self.ctx.shared;
        match done {
            Ok((_, Outcome::Sent)) => {
                shared.sent.fetch_add(1, Ordering::Relaxed);
                self.spool.ack(out.id);
            }
            Ok((_, Outcome::Rejected)) => {
                shared.rejected.fetch_add(1, Ordering::Relaxed);
                self.spool.ack(out.id);
            }
            Err(e) if e.is_panic() => self.panicked(out, &e),
            Err(e) => {
                // Cancelled: only `abort_all` at shutdown does that, and nothing is joined
                // after it. Not acknowledged: the entry comes again after a restart.
                tracing::error!(spool_id = out.id, error = %e, "log send task cancelled");
            }
        }
    }

    /// A send task panicked: queue its entry again, in front (it comes before everything
    /// queued, and its trace's later entries must wait for it), or set it aside.
    fn panicked(&mut self, mut out: Outgoing, error: &tokio::task::JoinError) {
        out.panics += 1;
        if out.panics < MAX_SEND_PANICS {
            tracing::error!(
                spool_id = out.id,
                trace_id = %out.trace_id,
                panics = out.panics,
                %error,
                "log send task panicked; sending the entry again"
            );
            self.queue.push_front(out);
            return;
        }
        tracing::error!(
            spool_id = out.id,
            trace_id = %out.trace_id,
            panics = out.panics,
            %error,
            "log send task panicked again; setting the entry aside: it stays in the spool, \
             unacknowledged, and is sent again after the next start (until then the spool \
             cannot free space past it)"
        );
        self.ctx.shared.set_aside.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests;
