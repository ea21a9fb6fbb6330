//! The spool's recovery and reader over arbitrary segment bytes: a spool directory holding one
//! segment file of the input opens (a torn or damaged tail repaired, damaged records skipped)
//! or is refused with an error, and reading it ends: never a panic, never a loop.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use promptd::logs::{Spool, SpoolOptions};

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let spool_dir = dir.path().join("spool");
    if std::fs::create_dir_all(&spool_dir).is_err() {
        return;
    }
    let _ = std::fs::write(spool_dir.join("00000000000000000001.seg"), data);
    let options = SpoolOptions {
        dir: spool_dir,
        max_bytes: 64 * 1024 * 1024,
        segment_bytes: 1024 * 1024,
        flush_interval: Duration::from_millis(1),
        max_batch: 64,
    };
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    runtime.block_on(async {
        let Ok(spool) = Spool::open(options) else {
            return;
        };
        // Every record the segment yields is read once, then the reader is dry (it waits for
        // new records: a short wait with nothing is the end).
        for _ in 0..10_000 {
            let read = tokio::time::timeout(Duration::from_millis(20), spool.read_batch(256));
            match read.await {
                Err(_) => break,
                Ok(Ok(batch)) if batch.is_empty() => break,
                Ok(Ok(batch)) => {
                    for record in batch {
                        spool.ack(record.id);
                    }
                }
                Ok(Err(_)) => break,
            }
        }
        spool.close().await;
    });
});
