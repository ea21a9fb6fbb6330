//! The log spool against real files in temp dirs: group commit (and `sync`), ordered reads, acknowledgement
//! over a contiguous prefix, rotation and deletion, the byte bound, the lock, and recovery from
//! a torn tail, a flipped byte and a lost ledger, and reading a trace back (read-only), with its
//! children. Every wait is bounded.

#[path = "common/spool.rs"]
mod test_spool;
#[path = "common/wait.rs"]
mod wait;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use promptd::logs::spool::fs::{FileLock, LockError, RealFs, SpoolFile, SpoolFs};
use promptd::logs::{
    encode_json_text, trace_tree, Delivery, Dropped, EntryKind, HeldTrace, Spool, SpoolError,
    SpoolOptions, SpoolRecord,
};
use serde_json::{json, Value};
use test_spool::spool_options;
use wait::wait_until;

const WAIT: Duration = Duration::from_secs(10);

async fn bounded<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, fut)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {WAIT:?}"))
}

fn payload(i: usize) -> Vec<u8> {
    format!("record-{i:05}-{}", "x".repeat(43)).into_bytes()
}

/// Append `range` and wait until all are durable; returns their ids.
async fn append_durably(spool: &Spool, range: std::ops::Range<usize>) -> Vec<u64> {
    let handles: Vec<_> = range
        .map(|i| spool.append(payload(i)).expect("accepted"))
        .collect();
    let mut ids = Vec::new();
    for h in handles {
        ids.push(bounded("durable", h).await.expect("durable"));
    }
    ids
}

/// Read exactly `n` records (several batches if needed).
async fn read_n(spool: &Spool, n: usize) -> Vec<SpoolRecord> {
    let mut out = Vec::new();
    while out.len() < n {
        let batch = bounded("read_batch", spool.read_batch(n - out.len())).await;
        out.extend(batch.expect("read"));
    }
    assert_eq!(out.len(), n, "read more than asked");
    out
}

/// Nothing more to read right now.
async fn assert_nothing_to_read(spool: &Spool) {
    let more = tokio::time::timeout(Duration::from_millis(150), spool.read_batch(10)).await;
    assert!(more.is_err(), "unexpected records: {more:?}");
}

fn texts(records: &[SpoolRecord]) -> Vec<String> {
    records
        .iter()
        .map(|r| String::from_utf8_lossy(&r.payload).into_owned())
        .collect()
}

fn expected(range: impl IntoIterator<Item = usize>) -> Vec<String> {
    range
        .into_iter()
        .map(|i| String::from_utf8_lossy(&payload(i)).into_owned())
        .collect()
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("list spool")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    files.sort();
    files
}

#[tokio::test]
async fn append_durable_read_ack_then_segment_is_deleted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = Spool::open(spool_options(dir.path())).expect("open");
    let ids = append_durably(&spool, 0..10).await;
    assert_eq!(ids, (1..=10).collect::<Vec<u64>>());
    let stats = spool.stats();
    assert_eq!(
        (stats.appended, stats.committed, stats.waiting_records),
        (10, 10, 10)
    );
    assert!(stats.bytes_on_disk > 0);
    assert!(stats.oldest_waiting_age.is_some());
    assert_eq!(segments(dir.path()).len(), 1);

    let records = read_n(&spool, 10).await;
    assert_eq!(texts(&records), expected(0..10));
    assert_eq!(records.iter().map(|r| r.id).collect::<Vec<_>>(), ids);
    assert_nothing_to_read(&spool).await;

    for r in &records {
        assert!(spool.ack(r.id));
    }
    assert!(!spool.ack(3), "a second ack of the same id is refused");
    let stats = spool.stats();
    assert_eq!((stats.acked_through, stats.waiting_records), (10, 0));
    assert_eq!(stats.oldest_waiting_age, None);
    wait_until("segment deletion", || segments(dir.path()).is_empty()).await;
    wait_until("bytes freed", || spool.stats().bytes_on_disk == 0).await;
    spool.close().await;
}

#[tokio::test]
async fn sync_commits_and_persists_acknowledgements_without_waiting_for_the_interval() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = SpoolOptions {
        flush_interval: Duration::from_secs(3600),
        ..spool_options(dir.path())
    };
    let spool = Spool::open(opts).expect("open");
    // Twice: the second ledger write is one the interval alone would hold back for an hour.
    for id in 1..=2u64 {
        let handle = spool.append(payload(id as usize)).expect("accepted");
        bounded("sync", spool.sync()).await;
        assert_eq!(bounded("durable", handle).await, Ok(id));
        let records = read_n(&spool, 1).await;
        assert!(spool.ack(records[0].id));
        assert_eq!(
            segments(dir.path()).len(),
            1,
            "not deleted before the ledger says so"
        );
        bounded("sync", spool.sync()).await;
        let ledger = std::fs::read(dir.path().join("ledger")).expect("ledger written");
        assert_eq!(
            ledger[8..16],
            id.to_le_bytes(),
            "ledger holds acked_through"
        );
        assert!(
            segments(dir.path()).is_empty(),
            "the spent segment is deleted"
        );
    }
    spool.close().await;
    bounded("sync after close", spool.sync()).await;
}

#[tokio::test]
async fn out_of_order_acks_advance_only_the_contiguous_prefix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = Spool::open(spool_options(dir.path())).expect("open");
    append_durably(&spool, 0..6).await;
    read_n(&spool, 6).await;
    for id in [2, 3, 5] {
        assert!(spool.ack(id));
    }
    assert_eq!(spool.stats().acked_through, 0);
    assert!(spool.ack(1));
    assert_eq!(spool.stats().acked_through, 3);
    assert_eq!(spool.stats().waiting_records, 3);
    assert!(spool.ack(4));
    assert_eq!(spool.stats().acked_through, 5);
    assert!(!spool.ack(7), "never handed out");
    spool.close().await;

    // Only record 6 comes back after a restart.
    let spool = Spool::open(spool_options(dir.path())).expect("reopen");
    let again = read_n(&spool, 1).await;
    assert_eq!(again[0].id, 6);
    assert_eq!(texts(&again), expected([5]));
    assert_nothing_to_read(&spool).await;
    spool.close().await;
}

/// Records appended detached (nobody waits for their fsync) are written, committed, read and
/// recovered like any other, in order among awaited ones; a closed spool refuses them too.
#[tokio::test]
async fn detached_records_are_committed_read_and_recovered_like_awaited_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = Spool::open(spool_options(dir.path())).expect("open");
    for i in 0..6 {
        if i % 2 == 0 {
            spool.append_detached(payload(i)).expect("accepted");
        } else {
            drop(spool.append(payload(i)).expect("accepted"));
        }
    }
    bounded("sync", spool.sync()).await;
    assert_eq!(spool.stats().waiting_records, 6);
    assert_eq!(texts(&read_n(&spool, 6).await), expected(0..6));
    spool.close().await;
    assert_eq!(spool.append_detached(payload(9)), Err(Dropped::Closed));

    let spool = Spool::open(spool_options(dir.path())).expect("reopen");
    assert_eq!(texts(&read_n(&spool, 6).await), expected(0..6));
    spool.close().await;
}

#[tokio::test]
async fn restart_redelivers_exactly_the_unacked_records_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = Spool::open(spool_options(dir.path())).expect("open");
    append_durably(&spool, 0..20).await;
    let first = read_n(&spool, 15).await;
    for r in first.iter().take(8) {
        spool.ack(r.id);
    }
    spool.ack(first[10].id); // beyond the prefix: not persisted as done
    spool.close().await;
    assert!(matches!(
        spool.append(payload(99)).map(|_| ()),
        Err(Dropped::Closed)
    ));

    let spool = Spool::open(spool_options(dir.path())).expect("reopen");
    assert_eq!(spool.stats().waiting_records, 12);
    let again = read_n(&spool, 12).await;
    assert_eq!(texts(&again), expected(8..20));
    assert_eq!(again[0].id, 9);
    // New records continue the id sequence after the old ones.
    let ids = append_durably(&spool, 20..21).await;
    assert_eq!(ids, vec![21]);
    assert_eq!(texts(&read_n(&spool, 1).await), expected([20]));
    spool.close().await;
}

#[tokio::test]
async fn segments_rotate_at_segment_bytes_and_go_when_acknowledged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = SpoolOptions {
        segment_bytes: 1000,
        ..spool_options(dir.path())
    };
    let spool = Spool::open(opts).expect("open");
    // 24-byte header + 56-byte payload = 80 bytes a frame: 12 fit in 1000.
    append_durably(&spool, 0..30).await;
    let files = segments(dir.path());
    assert_eq!(files.len(), 3, "{files:?}");
    // The sealed ones: the active one is longer while written, by room allocated ahead (a
    // mapped segment, see `a_mapped_segment_is_trimmed_when_closed_and_after_a_crash`).
    for file in &files[..2] {
        let len = std::fs::metadata(file).expect("stat").len();
        assert!(len <= 1000, "{} is {len} bytes", file.display());
    }
    assert!(files[1].ends_with("00000000000000000013.seg"), "{files:?}");

    let records = read_n(&spool, 30).await;
    for r in records.iter().take(12) {
        spool.ack(r.id);
    }
    wait_until("first segment deleted", || segments(dir.path()).len() == 2).await;
    for r in records.iter().skip(12) {
        spool.ack(r.id);
    }
    wait_until("all deleted", || segments(dir.path()).is_empty()).await;
    // The spool keeps working after its active segment went away.
    append_durably(&spool, 30..31).await;
    assert_eq!(texts(&read_n(&spool, 1).await), expected([30]));
    spool.close().await;
}

#[tokio::test]
async fn a_full_spool_drops_and_counts_without_blocking() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = SpoolOptions {
        max_bytes: 800, // ten 80-byte frames
        segment_bytes: 400,
        ..spool_options(dir.path())
    };
    let spool = Spool::open(opts).expect("open");
    // Nothing frees space here: an append that waited for it would never return.
    let appending = spool.clone();
    let (accepted, dropped) = bounded(
        "appending to a full spool",
        tokio::task::spawn_blocking(move || {
            let mut accepted = Vec::new();
            let mut dropped = 0;
            for i in 0..25 {
                match appending.append(payload(i)) {
                    Ok(durable) => accepted.push(durable),
                    Err(Dropped::Full) => dropped += 1,
                    Err(other) => panic!("unexpected {other:?}"),
                }
            }
            (accepted, dropped)
        }),
    )
    .await
    .expect("no panic");
    assert_eq!((accepted.len(), dropped), (10, 15));
    for d in accepted {
        bounded("durable", d).await.expect("durable");
    }
    let stats = spool.stats();
    assert_eq!((stats.dropped_full, stats.appended), (15, 10));
    assert!(stats.bytes_on_disk <= 800);

    // Acknowledging frees whole segments, and appends are accepted again.
    let records = read_n(&spool, 10).await;
    for r in records.iter().take(5) {
        spool.ack(r.id);
    }
    wait_until("space freed", || spool.stats().bytes_on_disk <= 400).await;
    assert!(spool.append(payload(100)).is_ok());
    assert!(matches!(
        spool.append(vec![0u8; 65 * 1024 * 1024]).map(|_| ()),
        Err(Dropped::TooLarge)
    ));
    assert_eq!(spool.stats().dropped_too_large, 1);
    spool.close().await;
}

/// A closed spool in `dir` holding records 0..5 (80 bytes each) in one segment, returned.
async fn five_records_closed(dir: &Path) -> PathBuf {
    let spool = Spool::open(spool_options(dir)).expect("open");
    append_durably(&spool, 0..5).await;
    spool.close().await;
    segments(dir).pop().expect("a segment")
}

/// Flip `mask` into byte `at` of `file`, as a bad disk would.
fn flip(file: &Path, at: usize, mask: u8) {
    let mut bytes = std::fs::read(file).expect("read");
    bytes[at] ^= mask;
    std::fs::write(file, &bytes).expect("write");
}

#[tokio::test]
async fn a_torn_tail_is_truncated_and_earlier_records_survive() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = five_records_closed(dir.path()).await;
    let len = std::fs::metadata(&file).expect("stat").len();
    // Cut the last record in half, as a crash mid-write would.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .and_then(|f| f.set_len(len - 30))
        .expect("truncate");

    let spool = Spool::open(spool_options(dir.path())).expect("reopen despite damage");
    let stats = spool.stats();
    assert_eq!(stats.torn_bytes, 80 - 30);
    assert_eq!(stats.waiting_records, 4);
    assert_eq!(std::fs::metadata(&file).expect("stat").len(), 4 * 80);
    assert_eq!(texts(&read_n(&spool, 4).await), expected(0..4));
    assert_nothing_to_read(&spool).await;
    // Ids are not reused: the torn record's id is never handed out for another record.
    assert_eq!(append_durably(&spool, 5..6).await, vec![5]);
    spool.close().await;
}

/// Whether the file system under `dir` allocates (`fallocate`), so the spool maps its segments.
fn allocates(dir: &Path) -> bool {
    let probe = std::fs::File::create(dir.join("probe")).expect("probe file");
    let ok = nix::fcntl::fallocate(&probe, nix::fcntl::FallocateFlags::empty(), 0, 4096).is_ok();
    std::fs::remove_file(dir.join("probe")).expect("remove probe");
    ok
}

/// A mapped segment's file runs ahead of its records by zeros while it is written; closing the
/// spool cuts them off, and so does recovery when the daemon did not close it (a SIGKILL
/// leaves what the page cache has: the file as it is while open), quietly: they are no torn
/// record.
#[tokio::test]
async fn a_mapped_segment_is_trimmed_when_closed_and_after_a_crash() {
    let dir = tempfile::tempdir().expect("tempdir");
    if !allocates(dir.path()) {
        eprintln!("skipped: this file system has no fallocate, the spool writes with write(2)");
        return;
    }
    let spool = Spool::open(spool_options(dir.path())).expect("open");
    append_durably(&spool, 0..5).await;
    let files = segments(dir.path());
    let [file] = &files[..] else {
        panic!("one segment: {files:?}")
    };
    let open = std::fs::read(file).expect("read");
    assert!(
        open.len() > 5 * 80,
        "mapped room ahead: {} bytes",
        open.len()
    );
    assert!(open[5 * 80..].iter().all(|&b| b == 0));

    // What a SIGKILL would leave: the files as they are now, opened by the next life.
    let crashed = tempfile::tempdir().expect("tempdir");
    for entry in std::fs::read_dir(dir.path()).expect("list") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, crashed.path().join(path.file_name().expect("name"))).expect("copy");
    }
    let next = Spool::open(spool_options(crashed.path())).expect("reopen after a crash");
    let stats = next.stats();
    assert_eq!((stats.torn_bytes, stats.corrupt_skipped), (0, 0));
    assert_eq!(stats.waiting_records, 5);
    let [recovered] = &segments(crashed.path())[..] else {
        panic!("one segment")
    };
    assert_eq!(std::fs::metadata(recovered).expect("stat").len(), 5 * 80);
    assert_eq!(texts(&read_n(&next, 5).await), expected(0..5));
    // The next life goes on in a segment of its own, trimmed when it closes.
    assert_eq!(append_durably(&next, 5..7).await, vec![6, 7]);
    assert_eq!(texts(&read_n(&next, 2).await), expected(5..7));
    next.close().await;
    let lens: Vec<u64> = segments(crashed.path())
        .iter()
        .map(|f| std::fs::metadata(f).expect("stat").len())
        .collect();
    assert_eq!(lens, [5 * 80, 2 * 80]);

    spool.close().await;
    assert_eq!(std::fs::metadata(file).expect("stat").len(), 5 * 80);
}

/// The machine's file system, but every map refused after its `fallocate` extended the file
/// (as a system call filter or a file system that does not map would): `map_for_append`'s
/// error.
struct MapRefused;

struct MapRefusedFile(Arc<dyn SpoolFile>);

impl SpoolFile for MapRefusedFile {
    fn write_all(&self, buf: &[u8]) -> std::io::Result<()> {
        self.0.write_all(buf)
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.0.read_exact_at(buf, offset)
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.0.set_len(len)
    }
    fn size(&self) -> std::io::Result<u64> {
        self.0.size()
    }
    fn sync_data(&self) -> std::io::Result<()> {
        self.0.sync_data()
    }
    fn sync_all(&self) -> std::io::Result<()> {
        self.0.sync_all()
    }
    fn map_for_append(&self, offset: u64, len: usize) -> std::io::Result<Option<memmap2::MmapMut>> {
        self.0.set_len(offset + len as u64)?;
        Err(std::io::Error::from_raw_os_error(13))
    }
}

impl SpoolFs for MapRefused {
    fn create_dir_all(&self, dir: &Path) -> std::io::Result<()> {
        RealFs.create_dir_all(dir)
    }
    fn list_dir(&self, dir: &Path) -> std::io::Result<Vec<std::ffi::OsString>> {
        RealFs.list_dir(dir)
    }
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        RealFs.read(path)
    }
    fn size(&self, path: &Path) -> std::io::Result<u64> {
        RealFs.size(path)
    }
    fn open_read(&self, path: &Path) -> std::io::Result<Arc<dyn SpoolFile>> {
        RealFs.open_read(path)
    }
    fn open_write(&self, path: &Path) -> std::io::Result<Arc<dyn SpoolFile>> {
        RealFs.open_write(path)
    }
    fn create_new(&self, path: &Path) -> std::io::Result<Arc<dyn SpoolFile>> {
        Ok(Arc::new(MapRefusedFile(RealFs.create_new(path)?)))
    }
    fn create(&self, path: &Path) -> std::io::Result<Arc<dyn SpoolFile>> {
        RealFs.create(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        RealFs.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        RealFs.remove_file(path)
    }
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        RealFs.sync_dir(dir)
    }
    fn lock(&self, path: &Path) -> Result<FileLock, LockError> {
        RealFs.lock(path)
    }
}

/// A segment whose first map is refused is written with `write(2)` from an empty file: no
/// zeros left by the refused map's `fallocate`, every record read back, nothing counted torn.
#[tokio::test]
async fn a_segment_whose_map_is_refused_is_written_with_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = Spool::open_with(spool_options(dir.path()), Arc::new(MapRefused)).expect("open");
    append_durably(&spool, 0..5).await;
    let [file] = &segments(dir.path())[..] else {
        panic!("one segment")
    };
    assert_eq!(std::fs::metadata(file).expect("stat").len(), 5 * 80);
    assert_eq!(texts(&read_n(&spool, 5).await), expected(0..5));
    assert_eq!(spool.stats().write_errors, 0);
    spool.close().await;
    let reopened = Spool::open(spool_options(dir.path())).expect("reopen");
    assert_eq!(reopened.stats().torn_bytes, 0);
    assert_eq!(texts(&read_n(&reopened, 5).await), expected(0..5));
    reopened.close().await;
}

#[tokio::test]
async fn a_flipped_byte_skips_that_record_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = five_records_closed(dir.path()).await;
    flip(&file, 2 * 80 + 40, 0x20); // inside the payload of the third record

    let spool = Spool::open(spool_options(dir.path())).expect("reopen despite damage");
    assert_eq!(spool.stats().corrupt_skipped, 1);
    let records = read_n(&spool, 4).await;
    assert_eq!(texts(&records), expected([0, 1, 3, 4]));
    // The skipped id does not hold back acknowledgement.
    for r in &records {
        spool.ack(r.id);
    }
    assert_eq!(spool.stats().acked_through, 5);
    spool.close().await;
}

#[tokio::test]
async fn a_flipped_length_byte_is_resynchronised() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = five_records_closed(dir.path()).await;
    flip(&file, 80 + 1, 0x01); // the length field of the second record

    let spool = Spool::open(spool_options(dir.path())).expect("reopen");
    assert_eq!(spool.stats().corrupt_skipped, 1);
    assert_eq!(texts(&read_n(&spool, 4).await), expected([0, 2, 3, 4]));
    spool.close().await;
}

#[tokio::test]
async fn a_second_open_fails_while_the_first_holds_the_lock() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = Spool::open(spool_options(dir.path())).expect("open");
    let err = Spool::open(spool_options(dir.path())).expect_err("second open must fail");
    assert!(matches!(err, SpoolError::Locked { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&dir.path().display().to_string()), "{text}");
    assert!(text.contains("in use"), "{text}");
    spool.close().await;
    Spool::open(spool_options(dir.path()))
        .expect("free after close")
        .close()
        .await;
}

#[tokio::test]
async fn a_lost_or_damaged_ledger_means_redelivery_not_loss() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = Spool::open(spool_options(dir.path())).expect("open");
    append_durably(&spool, 0..6).await;
    for r in read_n(&spool, 3).await {
        spool.ack(r.id);
    }
    spool.close().await;
    let ledger = dir.path().join("ledger");
    assert!(ledger.exists());

    std::fs::write(&ledger, b"garbage").expect("damage ledger");
    let spool = Spool::open(spool_options(dir.path())).expect("reopen with a damaged ledger");
    assert_eq!(texts(&read_n(&spool, 6).await), expected(0..6));
    spool.close().await;

    std::fs::remove_file(&ledger).expect("remove ledger");
    let spool = Spool::open(spool_options(dir.path())).expect("reopen without a ledger");
    let all = read_n(&spool, 6).await;
    assert_eq!(texts(&all), expected(0..6));
    // And new ids still do not collide with ids on disk.
    assert_eq!(append_durably(&spool, 6..7).await, vec![7]);
    spool.close().await;
}

#[tokio::test]
async fn read_batch_waits_for_new_records_and_is_cancel_safe() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = Spool::open(spool_options(dir.path())).expect("open");
    let reader = {
        let spool = spool.clone();
        tokio::spawn(async move { spool.read_batch(10).await })
    };
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert!(
        !reader.is_finished(),
        "read_batch returned with nothing to read"
    );
    append_durably(&spool, 0..3).await;
    let got = bounded("reader", reader)
        .await
        .expect("task")
        .expect("read");
    assert_eq!(texts(&got), expected(0..3));

    // Reads cancelled half-way (by a timeout) lose nothing and repeat nothing.
    let mut seen: Vec<SpoolRecord> = Vec::new();
    for i in 3..40 {
        drop(spool.append(payload(i)));
        if let Ok(batch) =
            tokio::time::timeout(Duration::from_micros(50), spool.read_batch(1)).await
        {
            seen.extend(batch.expect("read"));
        }
    }
    spool.flush_now();
    while seen.len() < 37 {
        seen.extend(bounded("read", spool.read_batch(100)).await.expect("read"));
    }
    let ids: Vec<u64> = seen.iter().map(|r| r.id).collect();
    assert_eq!(ids, (4..=40).collect::<Vec<u64>>());
    assert_nothing_to_read(&spool).await;
    spool.close().await;
}

#[tokio::test]
async fn rewind_hands_out_the_unacknowledged_records_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = Spool::open(spool_options(dir.path())).expect("open");
    append_durably(&spool, 0..4).await;
    let first = read_n(&spool, 3).await;
    spool.ack(first[0].id);
    spool.ack(first[2].id);
    spool.rewind().await;
    assert!(!spool.ack(first[1].id), "handed out before the rewind");
    assert_eq!(texts(&read_n(&spool, 3).await), expected(1..4));
    assert_nothing_to_read(&spool).await;
    spool.close().await;
}

/// A segment that cannot be read stops the start-up with its path, rather than being passed
/// over (its records would then be acknowledged past and deleted by a later start).
#[tokio::test]
async fn an_unreadable_segment_stops_the_start_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = five_records_closed(dir.path()).await;
    // Root reads any file: a directory in the segment's place cannot be read by anyone.
    std::fs::remove_file(&file).expect("remove");
    std::fs::create_dir(&file).expect("dir in its place");
    let err = Spool::open(spool_options(dir.path())).expect_err("refused");
    let text = err.to_string();
    assert!(
        text.contains(&file.display().to_string()) && text.contains("reading a segment"),
        "{text}"
    );
    assert!(file.exists(), "left for the operator");
}

/// An entry payload whose JSON body is padded to a fixed length, so that (with one-letter trace
/// ids) every frame has the same size.
fn padded_entry(kind: EntryKind, trace_id: &str, mut body: Value) -> Vec<u8> {
    const BODY_LEN: usize = 120;
    body["pad"] = json!("");
    let short = BODY_LEN - body.to_string().len();
    body["pad"] = json!("x".repeat(short));
    let text = body.to_string();
    assert_eq!(text.len(), BODY_LEN);
    encode_json_text(kind, trace_id, &text).expect("encodes")
}

fn update(trace_id: &str, fields: Value) -> Vec<u8> {
    let body = json!({"trace_id": trace_id, "field_name_to_value_map": fields});
    padded_entry(EntryKind::TraceLogUpdate, trace_id, body)
}

fn trace_log(trace_id: &str, fields: Value) -> Vec<u8> {
    let mut body = fields;
    body["trace_id"] = json!(trace_id);
    padded_entry(EntryKind::TraceLog, trace_id, body)
}

async fn held(spool: &Spool, trace_id: &str) -> Option<HeldTrace> {
    bounded("find_trace", spool.find_trace(trace_id))
        .await
        .expect("lookup reads the spool")
}

#[tokio::test]
async fn find_trace_reads_records_across_segments_without_consuming_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let entries = [
        trace_log("a", json!({"output": "a0", "tags": ["t"]})), // 1
        update("b", json!({"output": "before its record"})),    // 2
        update("a", json!({"output": "a1", "latency": 1.5})),   // 3
        trace_log("b", json!({"output": "b0"})),                // 4
        update("a", json!({"output": "a2"})),                   // 5
        trace_log("c", json!({"output": "c0"})),                // 6
        trace_log("d", json!({"output": "d0"})),                // 7
        update("c", json!({"output": "c1"})),                   // 8
    ];
    let frame = (24 + entries[0].len()) as u64;
    assert!(entries.iter().all(|e| e.len() == entries[0].len()));
    // Two records per segment: [1, 2], [3, 4], [5, 6], [7, 8].
    let mut opts = spool_options(dir.path());
    opts.segment_bytes = 2 * frame;
    let spool = Spool::open(opts).expect("open");
    for payload in entries {
        bounded("durable", spool.append(payload).expect("accepted"))
            .await
            .expect("durable");
    }
    assert_eq!(segments(dir.path()).len(), 4);

    let a = held(&spool, "a").await.expect("a is held");
    assert_eq!((a.spool_id, a.updates_applied), (1, 2));
    assert_eq!(a.delivery, Delivery::Waiting);
    assert_eq!(a.trace_id, "a");
    assert_eq!(a.record["output"], "a2", "the later update wins");
    assert_eq!(a.record["latency"], 1.5);
    assert_eq!(a.record["tags"], json!(["t"]));
    let b = held(&spool, "b").await.expect("b is held");
    assert_eq!((b.spool_id, b.updates_applied), (4, 0));
    assert_eq!(
        b.record["output"], "b0",
        "an update before the record is not applied"
    );
    let c = held(&spool, "c").await.expect("c is held");
    assert_eq!((c.spool_id, c.updates_applied), (6, 1));
    assert_eq!(c.record["output"], "c1");
    assert_eq!(held(&spool, "nobody").await, None);

    // The lookups consumed nothing: the reader hands out every record, in order.
    let records = read_n(&spool, 7).await;
    assert_eq!(
        records.iter().map(|r| r.id).collect::<Vec<_>>(),
        (1..=7).collect::<Vec<u64>>()
    );
    for r in &records {
        assert!(spool.ack(r.id));
    }
    wait_until("acknowledged segments deleted", || {
        segments(dir.path()).len() == 1
    })
    .await;
    assert_eq!(held(&spool, "a").await, None, "only an update of a is left");
    assert_eq!(held(&spool, "b").await, None);
    assert_eq!(held(&spool, "c").await, None, "only an update of c is left");
    let d = held(&spool, "d")
        .await
        .expect("d is held: its segment waits for 8");
    assert_eq!(d.spool_id, 7);
    assert_eq!(d.delivery, Delivery::Acknowledged);
    assert_eq!(spool.stats().waiting_records, 1);
    spool.close().await;
}

#[tokio::test]
async fn a_trace_tree_is_bounded_in_depth_and_passes_over_cycles_and_absent_children() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = Spool::open(spool_options(dir.path())).expect("open");
    // A chain 0 -> 1 -> ... -> 11, deeper than the tree goes; 0 also lists an absent child
    // and, from 2, a cycle back to the root.
    let last = trace_tree::MAX_CHILD_LEVELS + 3;
    for level in 0..=last {
        let mut children = vec![json!(format!("n{}", level + 1))];
        match level {
            0 => children.push(json!("absent")),
            2 => children.push(json!("n0")),
            _ => {}
        }
        if level == last {
            children.clear();
        }
        let body = json!({"trace_id": format!("n{level}"), "children": children});
        let payload =
            encode_json_text(EntryKind::TraceLog, &format!("n{level}"), &body.to_string())
                .expect("encodes");
        bounded("durable", spool.append(payload).expect("accepted"))
            .await
            .expect("durable");
    }
    let tree = bounded("find_trace_tree", spool.find_trace_tree("n0"))
        .await
        .expect("reads the spool")
        .expect("n0 is held");
    let mut depth = 0;
    let mut node = &tree;
    while let Some(child) = node.children.first() {
        assert_eq!(node.children.len(), 1, "{}", node.trace.trace_id);
        depth += 1;
        node = child;
        assert_eq!(node.trace.trace_id, format!("n{depth}"));
    }
    assert_eq!(depth, trace_tree::MAX_CHILD_LEVELS);
    assert_eq!(
        tree.children_missing, 3,
        "`absent`, the cycle back to n0, and the child below the deepest level"
    );
    assert!(bounded("find_trace_tree", spool.find_trace_tree("absent"))
        .await
        .expect("reads the spool")
        .is_none());
    spool.close().await;
}
