//! What the flusher is doing: its state and counters ([`Shared`], written by the dispatcher and
//! the send tasks), their snapshot ([`FlusherStats`]) and the handle that reads it
//! ([`FlusherHandle`], for status, metrics and `promptd logs flush`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use tokio::sync::Notify;

use crate::logs::spool::Spool;

/// Whether the flusher ships anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlusherState {
    /// Not started yet.
    Idle,
    Running,
    /// Not shipping; records stay in the spool. The reason says what to configure.
    Disabled {
        reason: String,
    },
    Stopped,
}

/// The last failed attempt to reach the collector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamError {
    pub message: String,
    pub at: SystemTime,
}

/// Counters since the flusher started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlusherStats {
    pub state: FlusherState,
    /// Entries the collector accepted (2xx).
    pub sent: u64,
    /// Entries the collector refused for good (a 4xx other than 401, 403, 404, 408 and 429),
    /// acknowledged anyway.
    pub rejected: u64,
    /// Attempts that failed in a retryable way and were tried again.
    pub retries: u64,
    /// Payloads that did not decode (unknown format version, damage), skipped and acknowledged.
    pub undecodable: u64,
    /// Entries whose send task panicked [`super::MAX_SEND_PANICS`] times: left unacknowledged and not
    /// sent again until the next start (the error log names their spool ids).
    pub set_aside: u64,
    pub in_flight: u64,
    /// The last failed attempt; kept after the collector recovers (see `failing_since`).
    pub last_error: Option<UpstreamError>,
    /// The last rejection: status and the collector's reason.
    pub last_rejection: Option<String>,
    /// When the collector last accepted an entry.
    pub last_success_at: Option<SystemTime>,
    /// When the current run of failed attempts began: `None` before the first failure and
    /// once the collector answered again (accepting or rejecting an entry).
    pub failing_since: Option<SystemTime>,
}

impl FlusherStats {
    /// Whether records are being shipped: the flusher runs and its last attempt got an answer
    /// from the collector (or there was none yet).
    pub fn healthy(&self) -> bool {
        self.state == FlusherState::Running && self.failing_since.is_none()
    }
}

/// A cheap handle for status and `promptd logs flush`.
#[derive(Clone)]
pub struct FlusherHandle {
    pub(super) shared: Arc<Shared>,
    pub(super) spool: Spool,
}

impl std::fmt::Debug for FlusherHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlusherHandle")
            .field("stats", &self.stats())
            .finish()
    }
}

impl FlusherHandle {
    pub fn stats(&self) -> FlusherStats {
        let s = &self.shared;
        let guarded = s.lock();
        FlusherStats {
            state: guarded.state.clone(),
            sent: s.sent.load(Ordering::Relaxed),
            rejected: s.rejected.load(Ordering::Relaxed),
            retries: s.retries.load(Ordering::Relaxed),
            undecodable: s.undecodable.load(Ordering::Relaxed),
            set_aside: s.set_aside.load(Ordering::Relaxed),
            in_flight: s.in_flight.load(Ordering::Relaxed),
            last_error: guarded.last_error.clone(),
            last_rejection: guarded.last_rejection.clone(),
            last_success_at: guarded.last_success_at,
            failing_since: guarded.failing_since,
        }
    }

    /// Commit the spool's queue now and cut every retry wait short.
    pub fn flush_now(&self) {
        self.spool.flush_now();
        self.shared.wake.notify_waiters();
    }
}

#[derive(Default)]
pub(super) struct Shared {
    pub(super) sent: AtomicU64,
    pub(super) rejected: AtomicU64,
    pub(super) retries: AtomicU64,
    pub(super) undecodable: AtomicU64,
    pub(super) set_aside: AtomicU64,
    pub(super) in_flight: AtomicU64,
    pub(super) wake: Notify,
    pub(super) guarded: Mutex<Guarded>,
}

pub(super) struct Guarded {
    pub(super) state: FlusherState,
    pub(super) last_error: Option<UpstreamError>,
    pub(super) last_rejection: Option<String>,
    pub(super) last_success_at: Option<SystemTime>,
    /// Set by the first failure of a run (which is logged as a warning, the others at debug),
    /// cleared by the next answer (logged as the recovery).
    pub(super) failing_since: Option<SystemTime>,
}

impl Default for Guarded {
    fn default() -> Self {
        Guarded {
            state: FlusherState::Idle,
            last_error: None,
            last_rejection: None,
            last_success_at: None,
            failing_since: None,
        }
    }
}

impl Shared {
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, Guarded> {
        self.guarded.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn set_state(&self, state: FlusherState) {
        self.lock().state = state;
    }

    /// An attempt failed in a way worth retrying (transport error, 408, 429, 5xx, a config
    /// the collector refuses).
    pub(super) fn upstream_failed(&self, message: String) {
        let now = SystemTime::now();
        let first = {
            let mut guarded = self.lock();
            let first = guarded.failing_since.is_none();
            guarded.failing_since.get_or_insert(now);
            guarded.last_error = Some(UpstreamError {
                message: message.clone(),
                at: now,
            });
            first
        };
        if first {
            tracing::warn!(error = %message, "log collector failing; retrying with backoff");
        } else {
            tracing::debug!(error = %message, "log collector still failing");
        }
    }

    /// The collector answered an attempt for good (`accepted` the entry, or refused it): it is
    /// reachable and the config right.
    pub(super) fn upstream_answered(&self, accepted: bool) {
        let was_failing = {
            let mut guarded = self.lock();
            if accepted {
                guarded.last_success_at = Some(SystemTime::now());
            }
            guarded.failing_since.take().is_some()
        };
        if was_failing {
            tracing::info!("log collector reachable again");
        }
    }
}
