//! Bounded waits for tests: poll a condition every 5 ms until it holds, and panic naming what
//! was awaited after [`DEADLINE`]. The deadline is wall-clock time (`std::time::Instant`), so it
//! means the same under a paused tokio clock.
//!
//! Shared by the integration tests (`tests/common`, `tests/deployments`) and, included with
//! `#[path]`, by the crate's own unit tests; it needs nothing but tokio.

#![allow(dead_code)]

use std::time::{Duration, Instant};

/// Generous: a wait that takes this long has failed.
pub const DEADLINE: Duration = Duration::from_secs(15);

const POLL: Duration = Duration::from_millis(5);

/// Poll `check` until it returns `Some`; panics with `what` after [`DEADLINE`].
pub async fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check() {
            return value;
        }
        if Instant::now() > deadline {
            panic!("timed out after {DEADLINE:?} waiting for {what}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Poll `cond` until it is true; panics with `what` after [`DEADLINE`].
pub async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    wait_for(what, || cond().then_some(())).await
}
