//! The flusher when a send task panics: the panic is injected through the test-only
//! `before_send` hook, against the fake collector of the integration tests (in-process hyper on
//! 127.0.0.1:0), which takes everything and records each request's idempotency key.

use std::sync::atomic::AtomicU32;

#[path = "../../../tests/common/fake_upstream.rs"]
mod fake_upstream;
#[path = "../../../tests/common/spool.rs"]
mod spool;
#[path = "../../../tests/common/wait.rs"]
mod wait;

use fake_upstream::{Behavior, FakeUpstream};
use spool::spool_options;
use wait::wait_until;

use super::*;
use crate::config::Secret;
use crate::logs::{Feedback, SpoolEntry};

const WAIT: Duration = Duration::from_secs(15);

/// A collector that answers 200 to everything.
async fn collector() -> FakeUpstream {
    FakeUpstream::always(Behavior::json(200, "{}")).await
}

/// The idempotency keys the collector got, in order.
fn keys(collector: &FakeUpstream) -> Vec<String> {
    collector
        .requests()
        .iter()
        .filter_map(|r| r.header("idempotency-key").map(str::to_owned))
        .collect()
}

fn config(collector: &FakeUpstream) -> UpstreamConfig {
    let mut config = UpstreamConfig::from_raw_with_env(None, |_| None).expect("defaults");
    config.base_url = Some(format!("http://{}", collector.addr()));
    config.api_key = Some(Secret::new("pk-test"));
    config.max_in_flight = 1;
    config.retry_initial = Duration::from_millis(20);
    config.retry_max = Duration::from_millis(100);
    config
}

async fn spool_with_feedback(dir: &std::path::Path, traces: &[&str]) -> (Spool, Vec<u64>) {
    let spool = Spool::open(spool_options(dir)).expect("spool");
    let mut ids = Vec::new();
    for trace in traces {
        let entry = SpoolEntry::Feedback(Feedback {
            score: 1.0,
            trace_id: (*trace).to_owned(),
            name: None,
            target: None,
            comment: None,
            extra: Default::default(),
        });
        let durable = spool
            .append(entry.encode().expect("encode"))
            .expect("accepted");
        let id = tokio::time::timeout(WAIT, durable)
            .await
            .expect("durable in time")
            .expect("durable");
        ids.push(id);
    }
    (spool, ids)
}

/// Stop `running` within [`WAIT`]; the flusher must not have panicked.
async fn stop(running: FlusherTask) {
    tokio::time::timeout(WAIT, running.stop())
        .await
        .expect("stops in time")
        .expect("flusher did not panic");
}

/// A hook that panics the first `panics` times a task starts on spool id `victim`; counts
/// every start on it.
fn panic_on(victim: u64, panics: u32) -> (BeforeSend, Arc<AtomicU32>) {
    let starts = Arc::new(AtomicU32::new(0));
    let counted = starts.clone();
    let hook: BeforeSend = Arc::new(move |out: &Outgoing| {
        if out.id == victim && counted.fetch_add(1, Ordering::SeqCst) < panics {
            panic!("injected panic in the send task of {victim}");
        }
    });
    (hook, starts)
}

#[tokio::test]
async fn an_entry_whose_send_task_panicked_is_sent_again_and_acknowledgements_go_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let collector = collector().await;
    let (spool, ids) = spool_with_feedback(dir.path(), &["t-0", "t-1", "t-2"]).await;
    let (hook, starts) = panic_on(ids[1], 1);
    let mut flusher = Flusher::new(spool.clone(), config(&collector)).expect("flusher");
    flusher.before_send = Some(hook);
    let running = FlusherTask::start(flusher);

    wait_until("every entry acknowledged", || {
        spool.stats().acked_through == ids[2]
    })
    .await;
    assert_eq!(starts.load(Ordering::SeqCst), 2, "one panic, one send");
    let expected: Vec<String> = ["t-0", "t-1", "t-2"]
        .iter()
        .zip(&ids)
        .map(|(trace, id)| idempotency_key(trace, *id))
        .collect();
    assert_eq!(keys(&collector), expected, "each entry once, in order");
    let stats = running.handle().stats();
    assert_eq!((stats.sent, stats.set_aside), (3, 0));

    stop(running).await;
}

#[tokio::test]
async fn an_entry_that_keeps_panicking_is_set_aside_unacknowledged_until_the_next_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let collector = collector().await;
    let (spool, ids) = spool_with_feedback(dir.path(), &["t-0", "t-1", "t-2"]).await;
    let (hook, starts) = panic_on(ids[0], u32::MAX);
    let mut flusher = Flusher::new(spool.clone(), config(&collector)).expect("flusher");
    flusher.before_send = Some(hook);
    let running = FlusherTask::start(flusher);

    wait_until("the entries after it sent and it set aside", || {
        let stats = running.handle().stats();
        stats.sent == 2 && stats.set_aside == 1
    })
    .await;
    // Well past the retry waits: no further attempt on it. (Real time: the spool's writer
    // thread and the collector's socket are real, so a paused tokio clock would jump past the
    // test's own timeouts while waiting on them.)
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(starts.load(Ordering::SeqCst), MAX_SEND_PANICS);
    assert!(
        spool.stats().acked_through < ids[0],
        "a set-aside entry is never acknowledged"
    );
    assert_eq!(running.handle().stats().state, FlusherState::Running);
    stop(running).await;

    // The next start (no fault now) sends it, and the prefix moves past it.
    let flusher = Flusher::new(spool.clone(), config(&collector)).expect("flusher");
    let running = FlusherTask::start(flusher);
    wait_until("every entry acknowledged after a restart", || {
        spool.stats().acked_through == ids[2]
    })
    .await;
    assert!(keys(&collector).contains(&idempotency_key("t-0", ids[0])));
    stop(running).await;
}
