//! Log spool throughput: records/s made durable (group commit + fdatasync) for ~300-byte
//! payloads with many concurrent appenders, and the cost of `append` on the request path.
//!
//! `cargo bench --bench spool` (release). The spool lives in a temp dir on the machine's disk
//! with the default `[spool]` settings (100 ms interval, batches of 4096) and a consumer task
//! that reads and acknowledges, as the flusher would, so segments are deleted and the disk
//! stays bounded. Prints a records/s line per case after criterion's own report.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use promptd::logs::{Spool, SpoolConfig, SpoolOptions};
use tokio::runtime::Runtime;

const PAYLOAD_BYTES: usize = 300;

/// Records and nanoseconds measured per case, for the summary lines.
#[derive(Default)]
struct Tally {
    records: AtomicU64,
    nanos: AtomicU64,
}

impl Tally {
    fn add(&self, records: u64, took: Duration) {
        self.records.fetch_add(records, Ordering::Relaxed);
        self.nanos
            .fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
    }

    fn per_second(&self) -> f64 {
        let nanos = self.nanos.load(Ordering::Relaxed).max(1);
        self.records.load(Ordering::Relaxed) as f64 * 1e9 / nanos as f64
    }
}

fn payload() -> Bytes {
    let mut text = br#"{"trace_id":"6f1c1e9e-2b7a-4d43-9a3e-0c1d2e3f4a5b","output":""#.to_vec();
    text.resize(PAYLOAD_BYTES - 2, b'x');
    text.extend_from_slice(b"\"}");
    Bytes::from(text)
}

/// `appenders` tasks append `total` records between them, each awaiting every record's
/// durability before appending its next (like `POST /trace_log`).
async fn await_each(spool: &Spool, total: u64, appenders: u64) -> Duration {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for a in 0..appenders {
        let spool = spool.clone();
        let share = total / appenders + u64::from(a < total % appenders);
        tasks.push(tokio::spawn(async move {
            let payload = payload();
            for _ in 0..share {
                match spool.append(payload.clone()) {
                    Ok(durable) => {
                        let _ = durable.await;
                    }
                    Err(e) => panic!("append refused: {e}"),
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    started.elapsed()
}

/// `appenders` tasks append `total` records between them without waiting (like completions),
/// then wait until all are durable.
async fn pipelined(spool: &Spool, total: u64, appenders: u64) -> Duration {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for a in 0..appenders {
        let spool = spool.clone();
        let share = total / appenders + u64::from(a < total % appenders);
        tasks.push(tokio::spawn(async move {
            let payload = payload();
            let mut last = None;
            for _ in 0..share {
                match spool.append(payload.clone()) {
                    Ok(durable) => last = Some(durable),
                    Err(e) => panic!("append refused: {e}"),
                }
            }
            if let Some(last) = last {
                let _ = last.await; // batches commit in order: the last one covers the rest
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    started.elapsed()
}

/// A consumer that reads and acknowledges everything, as the flusher does.
fn spawn_consumer(rt: &Runtime, spool: &Spool) {
    let spool = spool.clone();
    rt.spawn(async move {
        while let Ok(batch) = spool.read_batch(1000).await {
            for r in batch {
                spool.ack(r.id);
            }
        }
    });
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut options = SpoolOptions::from_config(&SpoolConfig::default(), dir.path().join("spool"));
    options.max_bytes = 2 * 1024 * 1024 * 1024;
    let spool = Spool::open(options).expect("open spool");
    spawn_consumer(&rt, &spool);

    let mut summary = Vec::new();
    let mut group = c.benchmark_group("spool");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(2));
    group.measurement_time(Duration::from_secs(8));

    for (name, appenders) in [
        ("durable_pipelined_8_appenders", 8u64),
        ("durable_pipelined_64_appenders", 64),
    ] {
        let tally = Arc::new(Tally::default());
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let took = rt.block_on(pipelined(&spool, iters, appenders));
                tally.add(iters, took);
                took
            })
        });
        summary.push((name, tally));
    }
    for (name, appenders) in [
        ("durable_await_each_4096_appenders", 4096u64),
        ("durable_await_each_256_appenders", 256),
    ] {
        let tally = Arc::new(Tally::default());
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                // At least one round per appender so every task does something.
                let total = iters.max(appenders);
                let took = rt.block_on(await_each(&spool, total, appenders));
                tally.add(total, took);
                took.mul_f64(iters as f64 / total as f64)
            })
        });
        summary.push((name, tally));
    }

    // The request path: what one `append` costs the caller (enqueue only, no disk).
    group.measurement_time(Duration::from_secs(1));
    let tally = Arc::new(Tally::default());
    group.bench_function("append_call_only", |b| {
        b.iter_custom(|iters| {
            let payload = payload();
            let mut took = Duration::ZERO;
            let mut last = None;
            for _ in 0..iters {
                let started = Instant::now();
                let durable = spool.append(payload.clone());
                took += started.elapsed();
                last = durable.ok();
            }
            if let Some(last) = last {
                let _ = rt.block_on(last); // let the writer catch up, untimed
            }
            tally.add(iters, took);
            took
        })
    });
    summary.push(("append_call_only", tally));
    group.finish();

    let stats = spool.stats();
    for (name, tally) in summary {
        println!("spool/{name}: {:.0} records/s", tally.per_second());
    }
    println!(
        "spool stats: committed {}, dropped_full {}, write_errors {}",
        stats.committed, stats.dropped_full, stats.write_errors
    );
    rt.block_on(spool.close());
}

criterion_group!(benches, bench);
criterion_main!(benches);
