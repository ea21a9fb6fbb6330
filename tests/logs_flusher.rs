//! The flusher against a fake Parea collector (in-process hyper on 127.0.0.1:0, recording every
//! request, scripted to fail): exact payloads and order, retry then success, Retry-After,
//! rejection without blocking, slow and refused collectors, idempotency keys across a restart,
//! concurrency without reordering a trace, and no shipping without a key.

mod common;

use std::time::{Duration, Instant};

use common::fake_upstream::{refused_base_url, Behavior, FakeUpstream, Gate, RecordedRequest};
use common::spool::spool_options;
use common::wait::wait_until;
use promptd::config::Secret;
use promptd::logs::{
    Feedback, Flusher, FlusherState, FlusherTask, LogRecord, Spool, SpoolEntry, SpoolOptions,
    TraceLogUpdate, UpstreamConfig,
};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(15);
const KEY: &str = "pk-test-collector";

fn upstream(base_url: Option<String>, max_in_flight: usize) -> UpstreamConfig {
    let mut config = UpstreamConfig::from_raw_with_env(None, |_| None).expect("defaults");
    config.base_url = base_url;
    config.api_key = Some(Secret::new(KEY));
    config.max_in_flight = max_in_flight;
    config.batch_size = 10;
    config.timeout = Duration::from_secs(5);
    config.retry_initial = Duration::from_millis(20);
    config.retry_max = Duration::from_millis(200);
    config
}

fn collector_url(fake: &FakeUpstream) -> Option<String> {
    Some(format!("http://{}/api/parea/v1", fake.addr()))
}

/// Start a flusher of `spool` with `config`.
fn start(spool: &Spool, config: UpstreamConfig) -> FlusherTask {
    FlusherTask::start(Flusher::new(spool.clone(), config).expect("flusher"))
}

/// Stop `running` within [`WAIT`]: it must not have panicked, and it says it stopped.
async fn stop(running: FlusherTask) {
    let handle = running.handle().clone();
    tokio::time::timeout(WAIT, running.stop())
        .await
        .expect("flusher stops in time")
        .expect("flusher task did not panic");
    assert_eq!(handle.stats().state, FlusherState::Stopped);
}

fn trace_log(trace_id: &str, output: &str) -> SpoolEntry {
    let record: LogRecord = serde_json::from_value(json!({
        "trace_id": trace_id,
        "root_trace_id": trace_id,
        "trace_name": "llm-openai",
        "output": output,
        "latency": 0.5,
        "status": "success"
    }))
    .expect("record");
    SpoolEntry::TraceLog(Box::new(record))
}

fn update(trace_id: &str) -> SpoolEntry {
    SpoolEntry::TraceLogUpdate(TraceLogUpdate {
        trace_id: trace_id.into(),
        root_trace_id: Some(trace_id.into()),
        field_name_to_value_map: json!({"output": "edited"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    })
}

fn feedback(trace_id: &str) -> SpoolEntry {
    SpoolEntry::Feedback(Feedback {
        score: 0.75,
        trace_id: trace_id.into(),
        name: Some("thumbs".into()),
        target: None,
        comment: Some("good".into()),
        extra: Default::default(),
    })
}

/// Append entries and wait until they are durable; returns their spool ids.
async fn spool_entries(spool: &Spool, entries: &[SpoolEntry]) -> Vec<u64> {
    let mut ids = Vec::new();
    for entry in entries {
        let durable = spool
            .append(entry.encode().expect("encode"))
            .expect("accepted");
        ids.push(
            tokio::time::timeout(WAIT, durable)
                .await
                .expect("durable in time")
                .expect("durable"),
        );
    }
    ids
}

fn summary(r: &RecordedRequest) -> (String, String, Option<String>) {
    (
        r.method.clone(),
        r.path.clone(),
        r.header("idempotency-key").map(str::to_owned),
    )
}

fn ok() -> Behavior {
    Behavior::json(200, "{}")
}

#[tokio::test]
async fn ships_exact_payloads_in_order_with_key_and_idempotency_headers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = Spool::open(spool_options(dir.path())).expect("spool");
    let fake = FakeUpstream::always(ok()).await;
    let entries = [
        trace_log("t-1", "hello"),
        update("t-1"),
        feedback("t-1"),
        trace_log("t-2", "bye"),
    ];
    let ids = spool_entries(&spool, &entries).await;
    let flusher = start(&spool, upstream(collector_url(&fake), 1));
    wait_until("4 entries acknowledged", || {
        spool.stats().acked_through == ids[3]
    })
    .await;

    let requests = fake.requests();
    assert_eq!(requests.len(), 4, "each entry once");
    let got: Vec<_> = requests.iter().map(summary).collect();
    let key = |t: &str, id: u64| Some(format!("{t}-{id}"));
    assert_eq!(
        got,
        vec![
            (
                "POST".into(),
                "/api/parea/v1/trace_log".into(),
                key("t-1", ids[0])
            ),
            (
                "PUT".into(),
                "/api/parea/v1/trace_log".into(),
                key("t-1", ids[1])
            ),
            (
                "POST".into(),
                "/api/parea/v1/feedback".into(),
                key("t-1", ids[2])
            ),
            (
                "POST".into(),
                "/api/parea/v1/trace_log".into(),
                key("t-2", ids[3])
            ),
        ]
    );
    assert_eq!(
        requests[0].body,
        json!({"trace_id": "t-1", "root_trace_id": "t-1", "trace_name": "llm-openai",
               "output": "hello", "latency": 0.5, "status": "success"})
    );
    assert_eq!(
        requests[1].body,
        json!({"trace_id": "t-1", "root_trace_id": "t-1", "field_name_to_value_map": {"output": "edited"}})
    );
    assert_eq!(
        requests[2].body,
        json!({"score": 0.75, "trace_id": "t-1", "name": "thumbs", "comment": "good"})
    );
    for r in &requests {
        assert_eq!(r.header("x-api-key"), Some(KEY));
        assert_eq!(r.header("content-type"), Some("application/json"));
    }
    let stats = flusher.handle().stats();
    assert_eq!((stats.sent, stats.rejected, stats.retries), (4, 0, 0));
    assert_eq!(stats.state, FlusherState::Running);
    wait_until("segment freed", || spool.stats().segments == 0).await;
    stop(flusher).await;
}

#[tokio::test]
async fn retries_500s_and_429_honouring_retry_after_then_succeeds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = Spool::open(spool_options(dir.path())).expect("spool");
    let fake = FakeUpstream::start(|_, call| match call {
        0 | 1 => Behavior::json(500, r#"{"error": "boom"}"#),
        2 => Behavior::Json {
            status: 429,
            headers: vec![("retry-after".into(), "1".into())],
            body: r#"{"error": "slow down"}"#.into(),
        },
        _ => ok(),
    })
    .await;
    let ids = spool_entries(&spool, &[trace_log("t-r", "x")]).await;
    let flusher = start(&spool, upstream(collector_url(&fake), 2));
    wait_until("acknowledged", || spool.stats().acked_through == ids[0]).await;

    let requests = fake.requests();
    assert_eq!(requests.len(), 4);
    let keys: Vec<_> = requests
        .iter()
        .map(|r| r.header("idempotency-key").map(str::to_owned))
        .collect();
    assert!(
        keys.iter().all(|k| *k == Some(format!("t-r-{}", ids[0]))),
        "{keys:?}"
    );
    assert!(requests.iter().all(|r| r.body == requests[0].body));
    let stats = flusher.handle().stats();
    assert_eq!((stats.sent, stats.retries, stats.rejected), (1, 3, 0));
    assert!(stats.healthy(), "the collector took the entry: {stats:?}");
    assert_eq!(stats.failing_since, None);
    let sent_at = stats.last_success_at.expect("time of the success");
    let last = stats.last_error.as_ref().expect("last error kept");
    assert!(last.message.contains("429"), "{}", last.message);
    assert!(sent_at >= last.at, "{stats:?}");
    stop(flusher).await;
}

#[tokio::test]
async fn a_wrong_key_or_url_keeps_the_records_instead_of_dropping_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = Spool::open(spool_options(dir.path())).expect("spool");
    let fake = FakeUpstream::start(|_, call| match call {
        0 => Behavior::json(401, r#"{"detail": "invalid api key"}"#),
        1 => Behavior::json(404, r#"{"detail": "not found"}"#),
        2 => Behavior::Json {
            status: 307,
            headers: vec![("location".into(), "http://127.0.0.1:9/elsewhere".into())],
            body: String::new(),
        },
        _ => ok(),
    })
    .await;
    let ids = spool_entries(&spool, &[trace_log("t-k", "x")]).await;
    let flusher = start(&spool, upstream(collector_url(&fake), 1));
    wait_until("acknowledged", || spool.stats().acked_through == ids[0]).await;

    assert_eq!(fake.requests().len(), 4);
    let stats = flusher.handle().stats();
    assert_eq!((stats.sent, stats.retries, stats.rejected), (1, 3, 0));
    stop(flusher).await;
}

#[tokio::test]
async fn retry_after_is_waited_for() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = Spool::open(spool_options(dir.path())).expect("spool");
    let fake = FakeUpstream::start(|_, call| match call {
        0 => Behavior::Json {
            status: 429,
            headers: vec![("retry-after".into(), "1".into())],
            body: "{}".into(),
        },
        _ => ok(),
    })
    .await;
    let ids = spool_entries(&spool, &[trace_log("t-w", "x")]).await;
    let started = Instant::now();
    let flusher = start(&spool, upstream(collector_url(&fake), 1));
    wait_until("acknowledged", || spool.stats().acked_through == ids[0]).await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(950),
        "retried after {waited:?}, not after Retry-After: 1"
    );
    assert_eq!(fake.calls(), 2);
    stop(flusher).await;
}

#[tokio::test]
async fn a_rejected_entry_is_acknowledged_and_does_not_block_the_next() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = Spool::open(spool_options(dir.path())).expect("spool");
    let fake = FakeUpstream::start(|req, _| {
        if req.body["trace_id"] == "bad" {
            Behavior::json(400, r#"{"detail": "trace_name too long"}"#)
        } else {
            ok()
        }
    })
    .await;
    let ids = spool_entries(
        &spool,
        &[
            trace_log("good-1", "a"),
            trace_log("bad", "b"),
            trace_log("good-2", "c"),
        ],
    )
    .await;
    let flusher = start(&spool, upstream(collector_url(&fake), 1));
    wait_until("all acknowledged", || spool.stats().acked_through == ids[2]).await;

    let traces: Vec<Value> = fake
        .requests()
        .iter()
        .map(|r| r.body["trace_id"].clone())
        .collect();
    assert_eq!(
        traces,
        vec![json!("good-1"), json!("bad"), json!("good-2")],
        "no retry of a 400"
    );
    let stats = flusher.handle().stats();
    assert_eq!((stats.sent, stats.rejected, stats.retries), (2, 1, 0));
    let rejection = stats.last_rejection.expect("reason kept");
    assert!(
        rejection.contains("400") && rejection.contains("trace_name too long"),
        "{rejection}"
    );
    stop(flusher).await;
}

#[tokio::test]
async fn a_slow_collector_times_out_and_is_retried() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = Spool::open(spool_options(dir.path())).expect("spool");
    let fake = FakeUpstream::start(|_, call| {
        if call == 0 {
            ok().after(Duration::from_secs(3))
        } else {
            ok()
        }
    })
    .await;
    let ids = spool_entries(&spool, &[trace_log("t-s", "x")]).await;
    let mut config = upstream(collector_url(&fake), 1);
    config.timeout = Duration::from_millis(300);
    let flusher = start(&spool, config);
    wait_until("acknowledged", || spool.stats().acked_through == ids[0]).await;
    assert_eq!(fake.calls(), 2);
    let stats = flusher.handle().stats();
    assert_eq!((stats.sent, stats.retries), (1, 1));
    stop(flusher).await;
}

#[tokio::test]
async fn a_down_collector_keeps_records_then_a_restart_resends_with_the_same_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = Spool::open(spool_options(dir.path())).expect("spool");
    // First a collector that answers 503 (records what it got), then one that refuses.
    let failing = FakeUpstream::always(Behavior::json(503, "{}")).await;
    let ids = spool_entries(&spool, &[trace_log("t-a", "1"), feedback("t-b")]).await;
    let flusher = start(&spool, upstream(collector_url(&failing), 2));
    wait_until("both tried", || failing.calls() >= 2).await;
    stop(flusher).await;
    let refused = start(&spool, upstream(Some(refused_base_url()), 2));
    wait_until("a refused attempt", || {
        refused.handle().stats().retries >= 2
    })
    .await;
    let stats = refused.handle().stats();
    assert_eq!(stats.sent, 0);
    assert!(!stats.healthy(), "{stats:?}");
    assert_eq!(stats.last_success_at, None);
    let since = stats
        .failing_since
        .expect("failing since the first attempt");
    assert!(since <= stats.last_error.expect("last error").at);
    assert_eq!(spool.stats().waiting_records, 2, "nothing acknowledged");
    stop(refused).await;
    spool.close().await;

    // Restart: the records are still there and go out with the keys of the first attempt.
    let spool = Spool::open(spool_options(dir.path())).expect("reopen");
    let healthy = FakeUpstream::always(ok()).await;
    let flusher = start(&spool, upstream(collector_url(&healthy), 2));
    wait_until("acknowledged after restart", || {
        spool.stats().acked_through == ids[1]
    })
    .await;
    let first: Vec<_> = failing
        .requests()
        .iter()
        .take(2)
        .map(|r| (summary(r), r.body.clone()))
        .collect();
    let mut again: Vec<_> = healthy
        .requests()
        .iter()
        .map(|r| (summary(r), r.body.clone()))
        .collect();
    let mut first_sorted = first.clone();
    first_sorted.sort_by(|a, b| a.0.cmp(&b.0));
    again.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(again, first_sorted, "same requests, same idempotency keys");
    stop(flusher).await;
    spool.close().await;
}

#[tokio::test]
async fn several_in_flight_but_a_trace_stays_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = Spool::open(spool_options(dir.path())).expect("spool");
    let gate = Gate::new();
    let held = gate.clone();
    let fake = FakeUpstream::start(move |request, _| {
        if request.body["trace_id"] == "p-1" {
            ok().held(&held)
        } else {
            ok()
        }
    })
    .await;
    let mut entries: Vec<SpoolEntry> = (0..8).map(|i| trace_log(&format!("p-{i}"), "x")).collect();
    entries.insert(1, update("p-0"));
    let ids = spool_entries(&spool, &entries).await;
    let flusher = start(&spool, upstream(collector_url(&fake), 4));
    // One record's answer (p-1) is held: the records after it reach the collector meanwhile
    // only if requests are sent concurrently (one at a time would stop at p-1).
    wait_until("the others sent while p-1 is held", || fake.calls() >= 9).await;
    gate.open();
    wait_until("all acknowledged", || {
        spool.stats().acked_through == *ids.last().unwrap_or(&0)
    })
    .await;
    let requests = fake.requests();
    assert_eq!(requests.len(), 9);
    let position = |method: &str, trace: &str| {
        requests
            .iter()
            .position(|r| r.method == method && r.body["trace_id"] == trace)
            .expect("request present")
    };
    assert!(
        position("POST", "p-0") < position("PUT", "p-0"),
        "update overtook its record"
    );
    stop(flusher).await;
}

#[tokio::test]
async fn flush_now_cuts_a_backoff_short() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = Spool::open(spool_options(dir.path())).expect("spool");
    let fake = FakeUpstream::start(|_, call| {
        if call == 0 {
            Behavior::json(502, "{}")
        } else {
            ok()
        }
    })
    .await;
    let ids = spool_entries(&spool, &[trace_log("t-f", "x")]).await;
    let mut config = upstream(collector_url(&fake), 1);
    config.retry_initial = Duration::from_secs(60);
    config.retry_max = Duration::from_secs(60);
    let flusher = start(&spool, config);
    wait_until("first attempt", || fake.calls() == 1).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    flusher.handle().flush_now();
    wait_until("acknowledged long before the backoff ends", || {
        spool.stats().acked_through == ids[0]
    })
    .await;
    stop(flusher).await;
}

#[tokio::test]
async fn without_a_key_or_url_nothing_ships_and_stats_say_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = Spool::open(spool_options(dir.path())).expect("spool");
    let fake = FakeUpstream::always(ok()).await;
    spool_entries(&spool, &[trace_log("t-n", "x")]).await;

    let mut no_key = upstream(collector_url(&fake), 1);
    no_key.api_key = None;
    no_key.api_key_source = "env PAREA_API_KEY (not set)".into();
    let flusher = start(&spool, no_key);
    wait_until("disabled", || {
        matches!(
            flusher.handle().stats().state,
            FlusherState::Disabled { .. }
        )
    })
    .await;
    let FlusherState::Disabled { reason } = flusher.handle().stats().state else {
        unreachable!("checked above")
    };
    assert!(reason.contains("PAREA_API_KEY"), "{reason}");
    stop(flusher).await;

    let flusher = start(&spool, upstream(None, 1));
    wait_until("disabled", || {
        matches!(
            flusher.handle().stats().state,
            FlusherState::Disabled { .. }
        )
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop(flusher).await;
    assert_eq!(fake.calls(), 0);
    assert_eq!(spool.stats().waiting_records, 1, "the record stays on disk");
}

#[tokio::test]
async fn an_undecodable_payload_is_skipped_and_acknowledged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = Spool::open(spool_options(dir.path())).expect("spool");
    let fake = FakeUpstream::always(ok()).await;
    let future_version = spool.append(vec![9u8, 1, 2, 3]).expect("accepted");
    tokio::time::timeout(WAIT, future_version)
        .await
        .expect("in time")
        .expect("durable");
    let ids = spool_entries(&spool, &[trace_log("t-u", "x")]).await;
    let flusher = start(&spool, upstream(collector_url(&fake), 1));
    wait_until("acknowledged", || spool.stats().acked_through == ids[0]).await;
    assert_eq!(fake.calls(), 1);
    let stats = flusher.handle().stats();
    assert_eq!((stats.undecodable, stats.sent), (1, 1));
    stop(flusher).await;
}

/// Flush throughput against the in-process fake collector (a measurement, not a check):
/// `cargo test --release --test logs_flusher -- --ignored --nocapture flush_throughput`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; run by hand in release"]
async fn flush_throughput() {
    const N: usize = 20_000;
    let collector = FakeUpstream::always(ok()).await;
    for in_flight in [8usize, 32] {
        let dir = tempfile::tempdir().expect("tempdir");
        let spool = Spool::open(SpoolOptions {
            max_bytes: 256 * 1024 * 1024,
            segment_bytes: 8 * 1024 * 1024,
            flush_interval: Duration::from_millis(100),
            max_batch: 4096,
            ..spool_options(dir.path())
        })
        .expect("spool");
        let mut durables = Vec::with_capacity(N);
        for i in 0..N {
            let entry = trace_log(&format!("trace-{i}"), "Hello! How can I help you today?");
            durables.push(
                spool
                    .append(entry.encode().expect("encode"))
                    .expect("accepted"),
            );
        }
        for d in durables {
            d.await.expect("durable");
        }
        let target = collector.calls() + N;
        let mut config = upstream(collector_url(&collector), in_flight);
        config.batch_size = 100;
        let started = Instant::now();
        let running = start(&spool, config);
        wait_until("all sent", || collector.calls() >= target).await;
        let secs = started.elapsed().as_secs_f64();
        println!(
            "flushed {N} records with max_in_flight = {in_flight} in {secs:.2} s: {:.0} records/s",
            N as f64 / secs
        );
        stop(running).await;
    }
}
