//! The cache's database stays near its live size under churn: many more answers than
//! `max_bytes` holds are stored and evicted, and the files on disk stay within a small multiple
//! of the bound (a size bound, not a time). Before sled ran in `LowSpace` mode, a 32 MiB cache
//! took 388 MB on disk.

use std::path::Path;
use std::time::Duration;

use promptd::cache::{now_ms, Cache, CacheConfig, CacheEntry, CacheKey};
use promptd::store::{Store, StoreOptions};

/// Bytes allocated on disk under `dir` (blocks, as `du` counts them).
fn disk_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        total += if meta.is_dir() {
            disk_bytes(&entry.path())
        } else {
            meta.blocks() * 512
        };
    }
    total
}

fn entry(i: u64) -> CacheEntry {
    let now = now_ms();
    // Hex of hashes: text the cache cannot compress, so the bytes stored are the bytes sent.
    let text: Vec<String> = (0..9u64)
        .map(|j| {
            blake3::hash(&[i, j].map(u64::to_le_bytes).concat())
                .to_hex()
                .to_string()
        })
        .collect();
    CacheEntry {
        response: promptd::model::Response {
            model: Some("gpt-4o-mini".into()),
            blocks: vec![promptd::model::Block::Text(text.join(" "))],
            finish: Some(promptd::model::FinishReason::Stop),
            usage: promptd::model::Usage {
                input: 12,
                output: 90,
                ..Default::default()
            },
            ..Default::default()
        },
        deltas: text,
        cost: 0.0001,
        provider: "openai".into(),
        raw_response: None,
        chunks: Vec::new(),
        raw_wire: promptd::cache::entry::RawWire::OpenAiChat,
        created_ms: now,
        expires_ms: now + 3_600_000,
        last_used_ms: now,
        hits: 0,
    }
}

#[test]
fn churn_keeps_the_database_near_its_bound() {
    const MAX: u64 = 2 * 1024 * 1024;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(
        dir.path(),
        StoreOptions {
            page_cache: 1 << 22,
        },
    )
    .expect("store");
    let config = CacheConfig {
        enabled: true,
        ttl: Duration::from_secs(3600),
        max_bytes: MAX,
        serve_stale_on_error: true,
        max_entry_bytes: u64::MAX,
        page_cache: 1 << 22,
    };
    let cache = Cache::open(store.cache_trees().expect("trees"), config);
    // 20,000 answers of ~1.1 KB: ten times what the bound holds goes through the cache.
    let mut peak = 0;
    for i in 0..20_000u64 {
        let key = CacheKey(*blake3::hash(&i.to_le_bytes()).as_bytes());
        cache.store(&key, &entry(i));
        if (i + 1) % 500 == 0 {
            cache.maintain();
            store.flush();
            peak = peak.max(disk_bytes(&dir.path().join("db")));
        }
    }
    let stats = cache.stats();
    assert!(stats.bytes <= MAX, "{stats:?}");
    assert!(stats.evictions > 15_000, "{stats:?}");
    // sled's floor: a few 512 KiB segments per kind of page, whatever the data.
    let bound = 3 * MAX + 4 * 1024 * 1024;
    eprintln!("disk: peak {peak} bytes for at most {MAX} live (bound {bound})");
    assert!(peak <= bound, "peak {peak} bytes on disk for {MAX} live");
}

/// `cache.page_cache`: a size, 16 MiB by default, at least 1 MiB; errors name the key.
#[test]
fn page_cache_is_a_size_with_a_floor() {
    use promptd::config::{Config, Overrides};
    let page_cache = |text: &str| {
        Config::from_toml(text, "t", &Overrides::default()).map(|c| c.cache.page_cache)
    };
    assert_eq!(page_cache("").expect("default"), 16 * 1024 * 1024);
    assert_eq!(
        page_cache("[cache]\npage_cache = \"64MiB\"").expect("64MiB"),
        64 * 1024 * 1024
    );
    for bad in ["\"100KiB\"", "\"lots\""] {
        let err = page_cache(&format!("[cache]\npage_cache = {bad}")).expect_err(bad);
        assert!(err.to_string().contains("cache.page_cache"), "{err}");
    }
}
