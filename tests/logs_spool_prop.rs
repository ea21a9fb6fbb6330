//! Property test of the log spool against a simple in-memory model: random sequences of
//! append / read / ack (of a random delivered record) / restart. After every restart the spool
//! delivers exactly the records the model still counts as unacknowledged (everything above the
//! contiguous acknowledged prefix), in order; within one life, reads never skip or repeat.

#[path = "common/spool.rs"]
mod test_spool;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use promptd::logs::{Spool, SpoolOptions};
use proptest::prelude::*;
use test_spool::spool_options;

#[derive(Debug, Clone)]
enum Op {
    Append(usize),
    Read(usize),
    /// Acknowledge the delivered-but-unacknowledged record at this index (modulo their count).
    Ack(usize),
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1usize..6).prop_map(Op::Append),
        3 => (1usize..8).prop_map(Op::Read),
        4 => any::<usize>().prop_map(Op::Ack),
        1 => Just(Op::Restart),
    ]
}

/// What the spool should hold.
#[derive(Default)]
struct Model {
    /// Every durable record, in id order.
    records: Vec<(u64, Vec<u8>)>,
    /// Every record up to this id is acknowledged.
    prefix: u64,
    /// Acknowledged above the prefix (forgotten at a restart: those come again).
    acked: BTreeSet<u64>,
    /// Index in `records` of the next record a read must return (this life).
    next_read: usize,
    delivered_unacked: Vec<u64>,
}

impl Model {
    fn advance(&mut self) {
        for (id, _) in &self.records {
            if *id <= self.prefix {
                continue;
            }
            if self.acked.remove(id) {
                self.prefix = *id;
            } else {
                break;
            }
        }
    }

    fn restart(&mut self) {
        self.acked.clear();
        self.delivered_unacked.clear();
        self.next_read = self.records.partition_point(|(id, _)| *id <= self.prefix);
    }

    fn unacked(&self) -> usize {
        self.records.len() - self.records.partition_point(|(id, _)| *id <= self.prefix)
    }
}

fn options(dir: &Path) -> SpoolOptions {
    SpoolOptions {
        // Small segments: rotation and deletion happen often.
        segment_bytes: 400,
        flush_interval: Duration::from_millis(1),
        max_batch: 4,
        ..spool_options(dir)
    }
}

async fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spool = Spool::open(options(dir.path())).expect("open");
    let mut model = Model::default();
    let mut seq = 0usize;
    for op in ops {
        match op {
            Op::Append(n) => {
                let mut handles = Vec::new();
                for _ in 0..n {
                    let payload = format!("rec-{seq}-{}", "p".repeat(seq % 37)).into_bytes();
                    seq += 1;
                    handles.push((spool.append(payload.clone()).expect("accepted"), payload));
                }
                for (handle, payload) in handles {
                    let id = tokio::time::timeout(Duration::from_secs(5), handle)
                        .await
                        .expect("durable in time")
                        .expect("durable");
                    if let Some((last, _)) = model.records.last() {
                        prop_assert!(id > *last, "ids grow: {id} after {last}");
                    }
                    model.records.push((id, payload));
                }
            }
            Op::Read(max) => {
                if model.next_read == model.records.len() {
                    continue; // read_batch would (rightly) wait
                }
                let got = tokio::time::timeout(Duration::from_secs(5), spool.read_batch(max))
                    .await
                    .expect("records to read arrive")
                    .expect("read");
                prop_assert!(!got.is_empty() && got.len() <= max);
                for record in got {
                    let (id, payload) = &model.records[model.next_read];
                    prop_assert_eq!(record.id, *id);
                    prop_assert_eq!(&record.payload[..], &payload[..]);
                    model.next_read += 1;
                    model.delivered_unacked.push(record.id);
                }
            }
            Op::Ack(pick) => {
                if model.delivered_unacked.is_empty() {
                    continue;
                }
                let id = model
                    .delivered_unacked
                    .remove(pick % model.delivered_unacked.len());
                prop_assert!(spool.ack(id), "ack of delivered {id} refused");
                model.acked.insert(id);
                model.advance();
                prop_assert_eq!(spool.stats().acked_through, model.prefix);
            }
            Op::Restart => {
                spool.close().await;
                spool = Spool::open(options(dir.path())).expect("reopen");
                model.restart();
                let stats = spool.stats();
                prop_assert_eq!(stats.acked_through, model.prefix);
                prop_assert_eq!(stats.waiting_records, model.unacked() as u64);
                if model.unacked() == 0 {
                    prop_assert_eq!(stats.segments, 0, "fully acknowledged segments remain");
                }
            }
        }
    }
    // Restart once more and read everything: exactly the unacknowledged records, in order.
    spool.close().await;
    let spool = Spool::open(options(dir.path())).expect("reopen");
    model.restart();
    let mut rest = Vec::new();
    while rest.len() < model.unacked() {
        let batch = tokio::time::timeout(Duration::from_secs(5), spool.read_batch(100))
            .await
            .expect("records arrive")
            .expect("read");
        rest.extend(batch.into_iter().map(|r| (r.id, r.payload.to_vec())));
    }
    prop_assert_eq!(&rest[..], &model.records[model.next_read..]);
    let more = tokio::time::timeout(Duration::from_millis(20), spool.read_batch(1)).await;
    prop_assert!(more.is_err(), "extra records after the model's: {:?}", more);
    spool.close().await;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn spool_matches_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(run(ops))?;
    }
}
