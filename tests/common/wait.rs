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

/// Poll an asynchronous `check` (one that asks the daemon) until it returns `Ok`; panics with
/// `what` and the last `Err` it said after [`DEADLINE`].
pub async fn wait_for_async<T, F>(what: &str, mut check: impl FnMut() -> F) -> T
where
    F: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        let last = match check().await {
            Ok(value) => return value,
            Err(last) => last,
        };
        if Instant::now() > deadline {
            panic!("timed out after {DEADLINE:?} waiting for {what}; last seen: {last}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Poll `cond` until it is true; panics with `what` after [`DEADLINE`].
pub async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    wait_for(what, || cond().then_some(())).await
}

/// Wait until sled has written `needle` (bytes of a value just stored) into the database file
/// under `state_dir` (`db/db`): the event a test waits for before a hard kill, instead of sleeping
/// a few of sled's flush intervals and hoping the machine kept up.
pub async fn sled_has_written(state_dir: &std::path::Path, needle: &str) {
    let file = state_dir.join("db").join("db");
    let needle = needle.as_bytes();
    wait_until(
        &format!(
            "`{}` in {}",
            String::from_utf8_lossy(needle),
            file.display()
        ),
        || std::fs::read(&file).is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle)),
    )
    .await
}
