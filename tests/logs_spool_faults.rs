//! The log spool on a file system that loses power (`tests/common/fault_fs.rs`), against a
//! simple model, the way vector tests its disk buffer: random sequences of append, commit
//! (`Spool::sync`), read, ack, clean restart, SIGKILL (the page cache stays), and power loss:
//! while idle, in the middle of a commit (its fsyncs, the ledger's tmp + rename, deletions) or
//! in the middle of the recovery after one, each with its own fault (torn writes at 512 B or
//! 4 KiB, garbage tails, holes, lost creations, renames and removals); and I/O errors
//! (ENOSPC, a short write; one or two at a time) in an append, a commit or a recovery, which
//! the spool lives through.
//!
//! After every reopen the spool is read dry at once and checked:
//! - it opens: damage is repaired, never a reason to refuse;
//! - its acknowledged position is at least what the last completed commit persisted and at
//!   most what was acknowledged in memory (reading may move it over ids lost to damage,
//!   never over a record);
//! - it delivers, in id order and each once, every record whose `Durable` resolved `Ok` above
//!   that position (acknowledged or not: a record acknowledged but not persisted comes again);
//! - everything it delivers was appended, byte for byte, under that id: records written but
//!   not durable at the crash may be missing, but what comes back is intact and in order;
//! - no `Durable` resolves `Ok` for a record the crash took.
//!
//! Within a life, reads hand out the committed records in order, never one twice, never one
//! not committed, and the next record appended gets the id the model expects. An I/O error
//! fails at most the records it concerns: a failed write fails its record at once (it gets
//! no id), a failed commit at most its batch (whose records never come back after one error;
//! after two the cut-off may have failed too and they may), and every later append and commit
//! succeeds.
//!
//! The writer thread only works when asked (`flush_interval` is an hour, batches unbounded), so
//! every case is deterministic: the same ops and faults give the same files.

#[path = "common/fault_fs.rs"]
mod fault_fs;
#[path = "common/spool.rs"]
mod test_spool;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use fault_fs::{DataFault, DirFault, Fault, FaultFs};
use promptd::logs::spool::fs::SpoolFs;
use promptd::logs::{Durable, Spool, SpoolOptions};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use test_spool::spool_options;

/// Generous: a wait this long means the spool is stuck.
const WAIT: Duration = Duration::from_secs(5);

fn options() -> SpoolOptions {
    SpoolOptions {
        // Past 4 KiB, so a torn write can fall on either boundary inside one segment, and
        // small enough that segments rotate and go often.
        segment_bytes: 6000,
        flush_interval: Duration::from_secs(3600),
        max_batch: 1_000_000,
        ..spool_options(Path::new("/fault/spool"))
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// `count` records of `size` filler bytes each; their `Durable`s are not awaited.
    Append {
        count: usize,
        size: usize,
    },
    /// `Spool::sync`: everything appended is durable, the acknowledged position persisted.
    Commit,
    Read(usize),
    /// Acknowledge the handed-out, unacknowledged record at this index (modulo their count).
    Ack(usize),
    /// Close (which commits) and reopen.
    Restart,
    /// End the process without a commit (SIGKILL) and reopen: what was written is still in the
    /// page cache, not durable.
    Kill,
    /// Lose power now.
    Crash(Fault),
    /// Lose power after `after` file system changes of a commit (its fsyncs, then the
    /// ledger's tmp + rename, then deletions), or once it is done if it makes no more.
    CrashInCommit {
        after: u64,
        fault: Fault,
    },
    /// Lose power now, and again after `after` changes of the recovery that follows (a
    /// leftover removed, a torn tail cut, a spent segment removed), if it makes more.
    CrashInRecovery {
        fault: Fault,
        after: u64,
        again: Fault,
    },
    /// Append with the changes after these many more failing (ENOSPC): creating a segment,
    /// a write, cutting a failed write off, deleting the segment it was the first of.
    FailInAppend {
        after: BTreeSet<u64>,
        count: usize,
        size: usize,
    },
    /// Commit with the changes after these many more failing: an fsync, cutting a failed
    /// batch off, the ledger, a deletion.
    FailInCommit {
        after: BTreeSet<u64>,
    },
    /// Lose power, then recover with the change after `after` more failing.
    FailInRecovery {
        fault: Fault,
        after: u64,
    },
}

/// How the pending `Durable`s must resolve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// `Ok`: the commit went through.
    Durable,
    /// `Err`, the record in doubt: the power went first.
    Lost,
    /// Either; after an `Err` the record is in doubt (the power went during the commit).
    EitherInDoubt,
    /// Either; after an `Err` the record is gone for good (the commit failed and the spool
    /// cut it off).
    EitherGone,
}

fn fault() -> impl Strategy<Value = Fault> {
    let data = prop_oneof![
        1 => Just(DataFault::KeepWritten),
        1 => Just(DataFault::LoseUnsynced),
        1 => (prop_oneof![Just(512u64), Just(4096u64)], any::<bool>())
            .prop_map(|(sector, garbage)| DataFault::Torn { sector, garbage }),
        1 => prop_oneof![Just(512u64), Just(4096u64)]
            .prop_map(|sector| DataFault::Hole { sector }),
        2 => Just(DataFault::Mixed),
    ];
    let dir = prop_oneof![
        1 => Just(DirFault::KeepAll),
        1 => Just(DirFault::LoseUnsynced),
        2 => Just(DirFault::Mixed),
    ];
    (data, dir, any::<u64>()).prop_map(|(data, dir, seed)| Fault { data, dir, seed })
}

/// Which of the next changes fail: mostly one, sometimes a second (in the cleanup after the
/// first, say).
fn failures() -> impl Strategy<Value = BTreeSet<u64>> {
    proptest::collection::btree_set(0u64..10, 1..=2)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1usize..6, 0usize..1500).prop_map(|(count, size)| Op::Append { count, size }),
        3 => Just(Op::Commit),
        3 => (1usize..8).prop_map(Op::Read),
        5 => any::<usize>().prop_map(Op::Ack),
        1 => Just(Op::Restart),
        1 => Just(Op::Kill),
        2 => fault().prop_map(Op::Crash),
        2 => (0u64..12, fault()).prop_map(|(after, fault)| Op::CrashInCommit { after, fault }),
        1 => (fault(), 0u64..4, fault())
            .prop_map(|(fault, after, again)| Op::CrashInRecovery { fault, after, again }),
        1 => (failures(), 1usize..6, 0usize..1500)
            .prop_map(|(after, count, size)| Op::FailInAppend { after, count, size }),
        1 => failures().prop_map(|after| Op::FailInCommit { after }),
        1 => (fault(), 0u64..4).prop_map(|(fault, after)| Op::FailInRecovery { fault, after }),
    ]
}

/// A payload no other record has, of `size` filler bytes after its number.
fn payload(seq: usize, size: usize) -> Vec<u8> {
    let mut out = format!("{seq}:").into_bytes();
    out.extend((0..size).map(|i| (seq * 7 + i) as u8));
    out
}

struct Record {
    payload: Vec<u8>,
    /// Its `Durable` resolved `Ok` (or it came back after a crash).
    durable: bool,
}

/// What the spool should hold.
struct Model {
    /// Every record the spool may still hand out, by the id the spool gave it.
    records: BTreeMap<u64, Record>,
    next_id: u64,
    /// The spool's acknowledged position in memory, and the acknowledged ids above it.
    acked_through: u64,
    acked: BTreeSet<u64>,
    /// The ledger on disk holds at least this.
    persisted: u64,
    /// This life: every record up to this id was handed out.
    read_through: u64,
    handed_unacked: Vec<u64>,
    /// Appended, `Durable` not resolved yet.
    pending: Vec<(u64, Durable)>,
}

impl Model {
    fn new() -> Model {
        Model {
            records: BTreeMap::new(),
            next_id: 1,
            acked_through: 0,
            acked: BTreeSet::new(),
            persisted: 0,
            read_through: 0,
            handed_unacked: Vec::new(),
            pending: Vec::new(),
        }
    }

    /// Committed records not handed out yet in this life, in order (records a failed commit
    /// could not cut off may lie between: in doubt, not read in this life).
    fn readable(&self) -> Vec<u64> {
        self.records
            .range(self.read_through + 1..)
            .filter(|(_, r)| r.durable)
            .map(|(id, _)| *id)
            .collect()
    }
}

async fn bounded<T>(what: &str, fut: impl Future<Output = T>) -> Result<T, TestCaseError> {
    tokio::time::timeout(WAIT, fut)
        .await
        .map_err(|_| TestCaseError::fail(format!("{what} did not finish within {WAIT:?}")))
}

struct Case {
    fs: FaultFs,
    spool: Spool,
    model: Model,
    seq: usize,
    /// What the crashes since the last recovery did, for failure messages.
    crashes: Vec<String>,
}

impl Case {
    fn open(fs: Arc<dyn SpoolFs>) -> Result<Spool, TestCaseError> {
        Spool::open_with(options(), fs)
            .map_err(|e| TestCaseError::fail(format!("the spool must open: {e}")))
    }

    /// Append `count` records; returns how many the spool could not write (their `Durable`
    /// failed at once: they got no id).
    fn append(&mut self, count: usize, size: usize) -> Result<usize, TestCaseError> {
        let mut failed = 0;
        for _ in 0..count {
            let payload = payload(self.seq, size);
            self.seq += 1;
            let mut durable = self
                .spool
                .append(&payload)
                .map_err(|e| TestCaseError::fail(format!("append refused: {e}")))?;
            let mut cx = Context::from_waker(Waker::noop());
            match Pin::new(&mut durable).poll(&mut cx) {
                Poll::Pending => {}
                Poll::Ready(Err(_)) => {
                    // No id spent, unless a segment file the failed write left behind takes
                    // the name of the next.
                    failed += 1;
                    self.model.next_id = self.model.next_id.max(self.last_segment_name() + 1);
                    continue;
                }
                Poll::Ready(Ok(id)) => prop_assert!(false, "record {} durable before a commit", id),
            }
            let id = self.model.next_id;
            self.model.next_id += 1;
            self.model.records.insert(
                id,
                Record {
                    payload,
                    durable: false,
                },
            );
            self.model.pending.push((id, durable));
        }
        Ok(failed)
    }

    /// Wait for every pending `Durable`, which must resolve as `expect` says. A record that
    /// resolves `Ok` is durable from then on.
    async fn settle(&mut self, expect: Expect) -> Result<(), TestCaseError> {
        for (id, durable) in std::mem::take(&mut self.model.pending) {
            let result = bounded("a Durable", durable).await?;
            match expect {
                Expect::Durable => prop_assert!(result.is_ok(), "record {}: {:?}", id, result),
                Expect::Lost => prop_assert!(result.is_err(), "record {}: {:?}", id, result),
                Expect::EitherInDoubt | Expect::EitherGone => {}
            }
            match result {
                Ok(got) => {
                    prop_assert_eq!(got, id, "the record's id");
                    if let Some(record) = self.model.records.get_mut(&id) {
                        record.durable = true;
                    }
                }
                Err(_) if expect == Expect::EitherGone => {
                    self.model.records.remove(&id);
                }
                Err(_) => {}
            }
        }
        Ok(())
    }

    async fn commit(&mut self) -> Result<(), TestCaseError> {
        bounded("sync", self.spool.sync()).await?;
        self.settle(Expect::Durable).await?;
        self.model.persisted = self.model.acked_through;
        Ok(())
    }

    async fn read(&mut self, max: usize) -> Result<(), TestCaseError> {
        let readable = self.model.readable();
        if readable.is_empty() {
            return Ok(()); // read_batch would (rightly) wait
        }
        let got = bounded("read_batch", self.spool.read_batch(max))
            .await?
            .map_err(|e| TestCaseError::fail(format!("read: {e}")))?;
        prop_assert!(!got.is_empty() && got.len() <= max.min(readable.len()));
        for (record, want) in got.iter().zip(&readable) {
            prop_assert_eq!(record.id, *want, "records come in id order, each once");
            prop_assert!(
                record.payload[..] == self.model.records[want].payload[..],
                "record {} comes back as appended",
                want
            );
            self.model.read_through = *want;
            self.model.handed_unacked.push(*want);
        }
        Ok(())
    }

    fn ack(&mut self, pick: usize) -> Result<(), TestCaseError> {
        let model = &mut self.model;
        if model.handed_unacked.is_empty() {
            return Ok(());
        }
        let id = model
            .handed_unacked
            .remove(pick % model.handed_unacked.len());
        prop_assert!(self.spool.ack(id), "ack of handed-out {} refused", id);
        model.acked.insert(id);
        let mut prefix = model.acked_through;
        for (&next, record) in model.records.range(model.acked_through + 1..) {
            if !record.durable {
                // Spent by a failed commit: nothing to acknowledge.
                continue;
            }
            if !model.acked.remove(&next) {
                break;
            }
            prefix = next;
        }
        // The spool's prefix may also pass ids lost to damage or spent by a failed commit:
        // never a committed record of the model's.
        let spool = self.spool.stats().acked_through;
        prop_assert!(
            spool >= prefix
                && model
                    .records
                    .range(prefix + 1..)
                    .find(|(_, r)| r.durable)
                    .is_none_or(|(id, _)| *id > spool),
            "acknowledged through {} by the spool, {} by the model",
            spool,
            prefix
        );
        model.acked_through = spool;
        Ok(())
    }

    async fn restart(&mut self) -> Result<(), TestCaseError> {
        self.spool.close().await;
        self.settle(Expect::Durable).await?;
        // So the position must come back exactly.
        self.model.persisted = self.model.acked_through;
        self.reopen().await
    }

    async fn kill(&mut self) -> Result<(), TestCaseError> {
        self.fs.kill();
        self.crashes.push(self.fs.last_crash());
        self.spool.close().await;
        // Nothing was committed: the process was gone first.
        self.settle(Expect::Lost).await?;
        self.reopen().await
    }

    /// Lose power while the spool is idle: nothing written since the last commit is durable.
    async fn power_loss(&mut self, fault: Fault) -> Result<(), TestCaseError> {
        self.fs.crash(fault);
        self.crashes.push(self.fs.last_crash());
        self.spool.close().await;
        self.settle(Expect::Lost).await
    }

    async fn crash(&mut self, fault: Fault) -> Result<(), TestCaseError> {
        self.power_loss(fault).await?;
        self.reopen().await
    }

    async fn crash_in_recovery(
        &mut self,
        fault: Fault,
        after: u64,
        again: Fault,
    ) -> Result<(), TestCaseError> {
        self.power_loss(fault).await?;
        self.fs.crash_after(after, again);
        let opened = Spool::open_with(options(), self.fs.life());
        let crashed = self.fs.disarm().is_none();
        if crashed {
            self.crashes
                .push(format!("in recovery: {}", self.fs.last_crash()));
        }
        match opened {
            Ok(spool) if !crashed => {
                self.spool = spool;
                return self.check_recovered().await;
            }
            // Opened, but on a file system that is gone since.
            Ok(spool) => spool.close().await,
            Err(e) => prop_assert!(crashed, "the spool must open: {}", e),
        }
        self.reopen().await
    }

    async fn crash_in_commit(&mut self, after: u64, fault: Fault) -> Result<(), TestCaseError> {
        self.fs.crash_after(after, fault);
        bounded("sync", self.spool.sync()).await?;
        match self.fs.disarm() {
            Some(fault) => {
                // The commit finished first.
                self.settle(Expect::Durable).await?;
                self.model.persisted = self.model.acked_through;
                self.fs.crash(fault);
            }
            None => self.settle(Expect::EitherInDoubt).await?,
        }
        self.crashes
            .push(format!("in a commit: {}", self.fs.last_crash()));
        self.spool.close().await;
        self.reopen().await
    }

    /// Append with failing changes among the next ones (creating the next segment, a write,
    /// cutting a failed write off): the records concerned fail at once (without an id).
    fn fail_in_append(
        &mut self,
        after: &BTreeSet<u64>,
        count: usize,
        size: usize,
    ) -> Result<(), TestCaseError> {
        for &n in after {
            self.fs.fail_after(n);
        }
        let records = self.append(count, size)?;
        let failures = self.fs.failed();
        prop_assert!(
            records <= failures && (records == 0) == (failures == 0),
            "{} records failed at once for {} failures",
            records,
            failures
        );
        Ok(())
    }

    /// Commit with failing changes among the next ones (an fsync, the ledger, a deletion).
    /// After one failure the records of a failed commit are cut off and never come back;
    /// after two, the cut may have failed too, and they may.
    async fn fail_in_commit(&mut self, after: &BTreeSet<u64>) -> Result<(), TestCaseError> {
        for &n in after {
            self.fs.fail_after(n);
        }
        bounded("sync", self.spool.sync()).await?;
        let failures = self.fs.failed();
        let expect = match failures {
            0 | 1 => Expect::EitherGone,
            _ => Expect::EitherInDoubt,
        };
        self.settle(expect).await?;
        if failures == 0 {
            self.model.persisted = self.model.acked_through;
        }
        Ok(())
    }

    /// Lose power, then fail a change of the recovery (removing a leftover or a spent
    /// segment, cutting a torn tail): it opens anyway.
    async fn fail_in_recovery(&mut self, fault: Fault, after: u64) -> Result<(), TestCaseError> {
        self.power_loss(fault).await?;
        self.fs.fail_after(after);
        let opened = Case::open(self.fs.life());
        if self.fs.failed() > 0 {
            self.crashes
                .push(format!("a change of the recovery failed (after {after})"));
        }
        self.spool = opened?;
        self.check_recovered().await
    }

    /// Open the next life and check it.
    async fn reopen(&mut self) -> Result<(), TestCaseError> {
        self.spool = Case::open(self.fs.life())?;
        self.check_recovered().await
    }

    /// The highest first id in the name of a segment file on disk, 0 if none.
    fn last_segment_name(&self) -> u64 {
        let names = self.fs.life().list_dir(&options().dir).unwrap_or_default();
        names
            .iter()
            .filter_map(|n| n.to_str()?.strip_suffix(".seg")?.parse::<u64>().ok())
            .max()
            .unwrap_or(0)
    }

    /// Read a life just opened dry, checking what comes back (see the header).
    async fn check_recovered(&mut self) -> Result<(), TestCaseError> {
        let last_name = self.last_segment_name();
        let crash = match std::mem::take(&mut self.crashes) {
            crashes if crashes.is_empty() => "none (a clean restart)".to_owned(),
            crashes => crashes.join(" | then "),
        };
        let model = &mut self.model;
        let stats = self.spool.stats();
        let at = stats.acked_through;
        prop_assert!(
            model.persisted <= at && at <= model.acked_through,
            "acknowledged through {} after recovery: not in [{}, {}]; crash: {}",
            at,
            model.persisted,
            model.acked_through,
            crash
        );
        let mut back = Vec::new();
        while back.len() < stats.waiting_records as usize {
            let batch = bounded("read_batch after recovery", self.spool.read_batch(100))
                .await?
                .map_err(|e| TestCaseError::fail(format!("read: {e}")))?;
            back.extend(batch);
        }
        let mut last = at;
        for record in &back {
            prop_assert!(
                record.id > last,
                "record {} after {}: not in order, or acknowledged; crash: {}",
                record.id,
                last,
                crash
            );
            last = record.id;
            let known = model.records.get(&record.id);
            prop_assert!(
                known.is_some_and(|r| r.payload[..] == record.payload[..]),
                "record {} is not one appended under that id; crash: {}",
                record.id,
                crash
            );
        }
        let back_ids: BTreeSet<u64> = back.iter().map(|r| r.id).collect();
        let lost: Vec<u64> = model
            .records
            .range(at + 1..)
            .filter(|(id, r)| r.durable && !back_ids.contains(id))
            .map(|(id, _)| *id)
            .collect();
        prop_assert!(
            lost.is_empty(),
            "durable records lost: {:?}; crash: {}",
            lost,
            crash
        );
        model
            .records
            .retain(|id, _| *id > at && back_ids.contains(id));
        for record in model.records.values_mut() {
            record.durable = true;
        }
        // Handing out passes ids lost to damage, which need no acknowledgement: the position
        // may move over them, never over a record.
        let passed = self.spool.stats().acked_through;
        prop_assert!(
            passed >= at && back.first().is_none_or(|r| r.id > passed),
            "acknowledged through {} after reading {:?}; crash: {}",
            passed,
            back_ids,
            crash
        );
        // Ids go on after the last record and the position, and past the name of a segment
        // file recovery could not delete.
        model.next_id = last.max(at).max(last_name) + 1;
        model.acked_through = passed;
        model.acked.clear();
        model.persisted = at;
        model.read_through = last;
        model.handed_unacked = back_ids.into_iter().collect();
        Ok(())
    }
}

async fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let fs = FaultFs::new();
    let spool = Case::open(fs.life())?;
    let mut case = Case {
        fs,
        spool,
        model: Model::new(),
        seq: 0,
        crashes: Vec::new(),
    };
    for op in ops {
        match op {
            Op::Append { count, size } => {
                let failed = case.append(count, size)?;
                prop_assert_eq!(failed, 0, "records failed with no fault");
            }
            Op::FailInAppend { after, count, size } => case.fail_in_append(&after, count, size)?,
            Op::FailInCommit { after } => case.fail_in_commit(&after).await?,
            Op::FailInRecovery { fault, after } => case.fail_in_recovery(fault, after).await?,
            Op::Commit => case.commit().await?,
            Op::Read(max) => case.read(max).await?,
            Op::Ack(pick) => case.ack(pick)?,
            Op::Restart => case.restart().await?,
            Op::Kill => case.kill().await?,
            Op::Crash(fault) => case.crash(fault).await?,
            Op::CrashInCommit { after, fault } => case.crash_in_commit(after, fault).await?,
            Op::CrashInRecovery {
                fault,
                after,
                again,
            } => case.crash_in_recovery(fault, after, again).await?,
        }
    }
    // One more clean restart, then one more record: the next one read, or the spool held
    // records the model does not know.
    case.restart().await?;
    let sentinel = case.model.next_id;
    prop_assert_eq!(case.append(1, 0)?, 0, "the sentinel failed");
    case.commit().await?;
    let next = bounded("read_batch", case.spool.read_batch(1))
        .await?
        .map_err(|e| TestCaseError::fail(format!("read: {e}")))?;
    prop_assert_eq!(
        next.first().map(|r| r.id),
        Some(sentinel),
        "records beyond the model's"
    );
    case.spool.close().await;
    Ok(())
}

proptest! {
    // PROPTEST_CASES=5000 for a longer hunt.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(512),
        ..ProptestConfig::default()
    })]

    #[test]
    fn spool_survives_power_losses(ops in proptest::collection::vec(op(), 1..60)) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(run(ops))?;
    }
}

/// Found by the proptest: a segment recovery could not delete (it held nothing to deliver)
/// kept its name, which was also the name of the next segment to create: every append failed
/// ("File exists") until a restart managed the deletion.
#[tokio::test]
async fn a_segment_recovery_cannot_delete_does_not_block_appends() {
    let fs = FaultFs::new();
    let spool = Case::open(fs.life()).expect("open");
    drop(spool.append(b"never durable").expect("accepted"));
    // The segment's entry survives, its data does not.
    fs.crash(Fault {
        data: DataFault::LoseUnsynced,
        dir: DirFault::KeepAll,
        seed: 0,
    });
    spool.close().await;
    // The recovery's changes: removing a leftover ledger.tmp, fsyncing the directory, then
    // removing the empty segment.
    fs.fail_after(2);
    let spool = Case::open(fs.life()).expect("opens anyway");
    assert_eq!(fs.failed(), 1, "a change failed");
    writes_past_a_leftover_first_segment(&fs, spool).await;
}

/// Found by the proptest: after a restart without a power loss (a SIGKILL), what the last life
/// wrote and did not fsync was still in the page cache; recovery handed it out as durable, and
/// a power loss then took it.
#[tokio::test]
async fn records_found_after_a_sigkill_are_made_durable_by_the_recovery() {
    let fs = FaultFs::new();
    let spool = Case::open(fs.life()).expect("open");
    drop(spool.append(b"written, not committed").expect("accepted"));
    fs.kill();
    spool.close().await;
    let spool = Case::open(fs.life()).expect("reopen");
    let records = bounded("read", spool.read_batch(10))
        .await
        .expect("read in time")
        .expect("read");
    assert_eq!(records.len(), 1, "the record is still there");
    spool.close().await;
    fs.crash(Fault {
        data: DataFault::LoseUnsynced,
        dir: DirFault::LoseUnsynced,
        seed: 0,
    });
    let spool = Case::open(fs.life()).expect("reopen after the power loss");
    assert_eq!(
        spool.stats().waiting_records,
        1,
        "the record handed out survives"
    );
    spool.close().await;
}

/// Found by the proptest: a life was killed after renaming a new ledger into place and before
/// the directory fsync made it durable (it failed); recovery read the new position, reported
/// it and deleted the segments it covered, and a power loss then brought the old ledger back.
#[tokio::test]
async fn a_ledger_read_at_start_up_is_made_durable_first() {
    let fs = FaultFs::new();
    let spool = Case::open(fs.life()).expect("open");
    drop(spool.append(b"one").expect("accepted"));
    bounded("sync", spool.sync()).await.expect("synced");
    let records = bounded("read", spool.read_batch(1))
        .await
        .expect("read in time")
        .expect("read");
    assert!(spool.ack(records[0].id));
    // The ledger's changes: create ledger.tmp, write, fsync, rename, fsync the directory.
    fs.fail_after(4);
    bounded("sync", spool.sync()).await.expect("synced");
    assert_eq!(fs.failed(), 1, "the directory fsync failed");
    fs.kill();
    spool.close().await;
    let spool = Case::open(fs.life()).expect("reopen");
    assert_eq!(spool.stats().acked_through, 1, "the new ledger is read");
    spool.close().await;
    fs.crash(Fault {
        data: DataFault::LoseUnsynced,
        dir: DirFault::LoseUnsynced,
        seed: 0,
    });
    let spool = Case::open(fs.life()).expect("reopen after the power loss");
    assert_eq!(spool.stats().acked_through, 1, "and it stays");
    spool.close().await;
}

/// Found by the proptest: a write failed on the first record of a new segment and so did
/// cutting its half frame off; the file stayed, with the name of the next id, which the failed
/// record had not spent: every later append tried to create that file again and failed.
#[tokio::test]
async fn a_new_segment_left_behind_by_a_failed_write_does_not_block_appends() {
    let fs = FaultFs::new();
    let spool = Case::open(fs.life()).expect("open");
    // Creating the segment works; the write fails, then truncating what it left.
    fs.fail_after(1);
    fs.fail_after(2);
    let failed = spool.append(b"first").expect("accepted");
    assert!(bounded("failed", failed).await.expect("at once").is_err());
    assert_eq!(fs.failed(), 2, "the write and the cut failed");
    writes_past_a_leftover_first_segment(&fs, spool).await;
}

/// With the first segment's file left behind (a change to it failed), the next record is
/// written and made durable under a later id: the file's name is not taken again.
async fn writes_past_a_leftover_first_segment(fs: &FaultFs, spool: Spool) {
    let names = fs.life().list_dir(&options().dir).expect("list");
    assert!(
        names.iter().any(|n| n == "00000000000000000001.seg"),
        "the first segment is still there: {names:?}"
    );
    let durable = spool.append(b"next").expect("accepted");
    bounded("sync", spool.sync()).await.expect("synced");
    let id = bounded("durable", durable).await.expect("resolved");
    assert!(
        matches!(id, Ok(id) if id > 1),
        "written past the taken name: {id:?}"
    );
    spool.close().await;
}

/// The fault file system itself: what a crash keeps, so the property above means something.
mod fault_fs_checks {
    use std::path::Path;

    use super::fault_fs::{DataFault, DirFault, Fault, FaultFs};

    const DIR: &str = "/d";

    fn fault(data: DataFault, dir: DirFault, seed: u64) -> Fault {
        Fault { data, dir, seed }
    }

    /// A file with `durable` bytes fsynced and `more` written after, then a crash.
    fn after_crash(durable: usize, more: usize, data: DataFault, seed: u64) -> (Vec<u8>, Vec<u8>) {
        let fs = FaultFs::new();
        let life = fs.life();
        life.create_dir_all(Path::new(DIR)).expect("dir");
        let path = Path::new(DIR).join("f");
        let file = life.create_new(&path).expect("create");
        life.sync_dir(Path::new(DIR)).expect("sync dir");
        let written: Vec<u8> = (0..durable + more).map(|i| (i % 251) as u8 + 1).collect();
        file.write_all(&written[..durable]).expect("write");
        file.sync_data().expect("sync");
        file.write_all(&written[durable..]).expect("write");
        fs.crash(fault(data, DirFault::KeepAll, seed));
        let after = fs.life().read(&path).expect("the file is durable");
        (written, after)
    }

    #[test]
    fn unsynced_data_is_kept_lost_or_torn_at_a_sector_boundary() {
        let (written, kept) = after_crash(3000, 6000, DataFault::KeepWritten, 1);
        assert_eq!(kept, written);
        let (_, lost) = after_crash(3000, 6000, DataFault::LoseUnsynced, 1);
        assert_eq!(lost, written[..3000]);
        let mut cuts = std::collections::BTreeSet::new();
        for seed in 0..64 {
            for sector in [512, 4096] {
                let torn = DataFault::Torn {
                    sector,
                    garbage: false,
                };
                let (written, after) = after_crash(3000, 6000, torn, seed);
                let len = after.len() as u64;
                assert!(
                    len.is_multiple_of(sector) && (3000..=9000).contains(&len),
                    "{len}"
                );
                assert_eq!(after, written[..after.len()]);
                cuts.insert((sector, len));
            }
        }
        // Every 4 KiB boundary in range, and many 512-byte ones, come up.
        assert!(cuts.contains(&(4096, 4096)) && cuts.contains(&(4096, 8192)));
        assert!(
            cuts.iter().filter(|(s, _)| *s == 512).count() > 5,
            "{cuts:?}"
        );
        // No boundary between the lengths: the cut is at the durable length.
        let torn = DataFault::Torn {
            sector: 4096,
            garbage: false,
        };
        assert_eq!(after_crash(100, 200, torn, 3).1.len(), 100);
    }

    #[test]
    fn a_garbage_tail_follows_the_cut_and_a_hole_keeps_what_follows() {
        for seed in 0..16 {
            let torn = DataFault::Torn {
                sector: 512,
                garbage: true,
            };
            let (written, after) = after_crash(1000, 3000, torn, seed);
            let cut = (1024..=4000)
                .step_by(512)
                .filter(|&at| at <= after.len() && after[..at] == written[..at])
                .last()
                .expect("a cut at a boundary");
            assert!(
                after.len() > cut && after.len() <= cut + 512,
                "tail of {}",
                after.len() - cut
            );
            let (written, after) = after_crash(1000, 3000, DataFault::Hole { sector: 512 }, seed);
            assert_eq!(after.len(), written.len());
            assert_eq!(after[..1000], written[..1000], "the durable part is intact");
            let zeroed: Vec<usize> = (0..after.len())
                .filter(|&i| after[i] != written[i])
                .collect();
            let (first, last) = (zeroed[0], zeroed[zeroed.len() - 1]);
            assert!(zeroed.iter().all(|&i| after[i] == 0));
            assert_eq!(first / 512, last / 512, "one sector: {first}..{last}");
        }
    }

    #[test]
    fn directory_changes_last_only_after_a_directory_fsync() {
        let setup = |fs: &FaultFs| {
            let life = fs.life();
            let dir = Path::new(DIR);
            life.create_dir_all(dir).expect("dir");
            for name in ["kept", "renamed", "removed"] {
                let file = life.create_new(&dir.join(name)).expect("create");
                file.write_all(name.as_bytes()).expect("write");
                file.sync_all().expect("sync");
            }
            life.sync_dir(dir).expect("sync dir");
            life.create_new(&dir.join("new")).expect("create");
            life.rename(&dir.join("renamed"), &dir.join("kept"))
                .expect("rename");
            life.remove_file(&dir.join("removed")).expect("remove");
        };
        let names = |fs: &FaultFs| {
            let mut names = fs.life().list_dir(Path::new(DIR)).expect("list");
            names.sort();
            names
        };
        let fs = FaultFs::new();
        setup(&fs);
        fs.crash(fault(DataFault::KeepWritten, DirFault::KeepAll, 0));
        assert_eq!(names(&fs), ["kept", "new"]);
        assert_eq!(
            fs.life().read(&Path::new(DIR).join("kept")).expect("read"),
            b"renamed"
        );
        let fs = FaultFs::new();
        setup(&fs);
        fs.crash(fault(DataFault::KeepWritten, DirFault::LoseUnsynced, 0));
        assert_eq!(names(&fs), ["kept", "removed", "renamed"]);
        assert_eq!(
            fs.life().read(&Path::new(DIR).join("kept")).expect("read"),
            b"kept"
        );
        assert_eq!(
            fs.life()
                .read(&Path::new(DIR).join("removed"))
                .expect("read"),
            b"removed"
        );
    }

    #[test]
    fn a_crash_ends_the_life_and_frees_its_lock() {
        let fs = FaultFs::new();
        let life = fs.life();
        let dir = Path::new(DIR);
        life.create_dir_all(dir).expect("dir");
        let _lock = life.lock(&dir.join("LOCK")).expect("lock");
        assert!(life.lock(&dir.join("LOCK")).is_err(), "held");
        let file = life.create_new(&dir.join("f")).expect("create");
        fs.crash_after(1, fault(DataFault::KeepWritten, DirFault::LoseUnsynced, 0));
        file.write_all(b"one").expect("the change before the crash");
        assert!(file.write_all(b"two").is_err(), "the crash happens instead");
        assert!(fs.disarm().is_none(), "it happened");
        assert!(life.list_dir(dir).is_err(), "the old life is gone");
        let next = fs.life();
        let _lock = next.lock(&dir.join("LOCK")).expect("free after the crash");
        assert_eq!(
            next.list_dir(dir).expect("list"),
            Vec::<std::ffi::OsString>::new()
        );
    }
}
