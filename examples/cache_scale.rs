//! The cache at scale (issue 20, item 11): fill a cache of `ENTRIES` short chat answers (about
//! 600 characters of English-like text and their deltas; `SHAPE=openai` adds the stream chunks
//! an OpenAI-route answer keeps) in a temp dir, then, in a fresh process, open it
//! again and answer hits. Prints RSS, open time, hit CPU, and the database's size on disk
//! against the live bytes of the entries.
//!
//! ```text
//! cargo run --example cache_scale                    # 200,000 entries, 1 GiB bound
//! MAX_BYTES=33554432 cargo run --example cache_scale # churn under a 32 MiB bound
//! ```
//!
//! Environment: `ENTRIES` (200000), `SHAPE` (`parea`, or `openai`), `MAX_BYTES` (1 GiB),
//! `PAGE_CACHE` (promptd's default),
//! `MAINTAIN_EVERY` (10000 inserts: the daemon's background pass runs every 10 s), `HOT`
//! (5000: the newest entries the hits go to).

use std::path::Path;
use std::time::{Duration, Instant};

use promptd::cache::{Cache, CacheConfig, CacheEntry, CacheKey, Lookup};

/// The daemon's allocator (src/main.rs), so that RSS is the daemon's.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
/// ... with the daemon's options (how soon freed memory goes back).
#[allow(non_upper_case_globals)]
#[export_name = "_rjem_malloc_conf"]
pub static malloc_conf: &[u8; 60] = promptd::memory::JEMALLOC_CONF;
use promptd::store::{Store, StoreOptions};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// User + system CPU time of this process.
fn cpu_seconds() -> f64 {
    use nix::sys::resource::{getrusage, UsageWho};
    let Ok(usage) = getrusage(UsageWho::RUSAGE_SELF) else {
        return 0.0;
    };
    let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    secs(usage.user_time()) + secs(usage.system_time())
}

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

fn config() -> CacheConfig {
    CacheConfig {
        enabled: true,
        ttl: Duration::from_secs(3600),
        max_bytes: env_u64("MAX_BYTES", 1 << 30),
        serve_stale_on_error: true,
        max_entry_bytes: u64::MAX,
        page_cache: env_u64("PAGE_CACHE", 16 << 20),
    }
}

fn open(state: &Path) -> (Store, Cache) {
    let options = StoreOptions {
        page_cache: config().page_cache,
    };
    let store = Store::open(state, options).expect("open store");
    let cache = Cache::open(store.cache_trees().expect("trees"), config());
    (store, cache)
}

fn key(i: u64) -> CacheKey {
    CacheKey(*blake3::hash(&i.to_le_bytes()).as_bytes())
}

/// Words an answer is made of: English-like text compresses about as real answers do
/// (a repeated phrase would compress far better than any answer).
const WORDS: &[&str] = &[
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "you",
    "that",
    "it",
    "for",
    "on",
    "are",
    "with",
    "as",
    "be",
    "this",
    "was",
    "have",
    "or",
    "by",
    "not",
    "can",
    "an",
    "but",
    "from",
    "which",
    "use",
    "function",
    "return",
    "value",
    "request",
    "server",
    "cache",
    "answer",
    "model",
    "token",
    "error",
    "file",
    "data",
    "example",
    "because",
    "should",
    "would",
    "first",
    "then",
    "when",
    "each",
    "other",
    "number",
    "string",
    "list",
    "map",
    "thread",
    "memory",
    "disk",
    "time",
    "client",
    "provider",
    "stream",
    "response",
    "message",
    "system",
    "user",
    "prompt",
    "output",
    "input",
    "python",
    "rust",
    "config",
    "option",
    "default",
    "query",
    "table",
    "index",
    "row",
    "column",
    "update",
    "delete",
    "create",
    "simple",
    "different",
    "important",
    "however",
    "therefore",
    "instead",
    "usually",
    "between",
    "through",
    "without",
    "under",
    "above",
];

/// The text of answer `i`: 90 words drawn by a small linear congruential generator.
fn text(i: u64) -> String {
    let mut state = i
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut out = format!("Answer {i}:");
    for _ in 0..90 {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        out.push(' ');
        out.push_str(WORDS[(state >> 33) as usize % WORDS.len()]);
    }
    out
}

/// Entry `i`: a short answer with its stream deltas (one per word); with `SHAPE=openai` also
/// the OpenAI stream chunks an OpenAI-route answer keeps (one JSON envelope per delta).
fn entry(i: u64) -> CacheEntry {
    let now = promptd::cache::now_ms();
    let content = text(i);
    let deltas: Vec<String> = content.split_inclusive(' ').map(str::to_string).collect();
    let chunks = if std::env::var("SHAPE").as_deref() == Ok("openai") {
        deltas
            .iter()
            .map(|d| {
                format!(
                    r#"{{"id":"chatcmpl-{i}","object":"chat.completion.chunk","created":{},"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_0aa8d3e20b","choices":[{{"index":0,"delta":{{"content":{d:?}}},"logprobs":null,"finish_reason":null}}]}}"#,
                    now / 1000
                )
            })
            .collect()
    } else {
        Vec::new()
    };
    CacheEntry {
        response: promptd::model::Response {
            model: Some("gpt-4o-mini".into()),
            blocks: vec![promptd::model::Block::Text(content)],
            finish: Some(promptd::model::FinishReason::Stop),
            usage: promptd::model::Usage {
                input: 12,
                output: 90,
                ..Default::default()
            },
            ..Default::default()
        },
        deltas,
        cost: 0.0001,
        provider: "openai".into(),
        raw_response: None,
        chunks,
        raw_wire: promptd::cache::entry::RawWire::OpenAiChat,
        created_ms: now,
        expires_ms: now + 3_600_000,
        last_used_ms: now,
        hits: 0,
    }
}

fn fill(state: &Path) {
    let n = env_u64("ENTRIES", 200_000);
    let every = env_u64("MAINTAIN_EVERY", 10_000).max(1);
    let rss0 = rss_mib();
    let (store, cache) = open(state);
    let started = Instant::now();
    for i in 0..n {
        cache.store(&key(i), &entry(i));
        if (i + 1) % every == 0 {
            cache.maintain();
        }
    }
    cache.maintain();
    store.flush();
    let stats = cache.stats();
    println!(
        "fill: {n} entries in {:.1} s; RSS {rss0:.0} -> {:.0} MiB; entries {} bytes {} ({:.1} MiB live)",
        started.elapsed().as_secs_f64(),
        rss_mib(),
        stats.entries,
        stats.bytes,
        stats.bytes as f64 / 1048576.0
    );
}

fn reopen(state: &Path) {
    let n = env_u64("ENTRIES", 200_000);
    let rss0 = rss_mib();
    let started = Instant::now();
    let (store, cache) = open(state);
    let opened = started.elapsed();
    let stats = cache.stats();
    println!(
        "open: {:.1} ms; RSS {rss0:.0} -> {:.0} MiB; entries {} bytes {}",
        opened.as_secs_f64() * 1000.0,
        rss_mib(),
        stats.entries,
        stats.bytes
    );
    // Hits: 20,000 lookups over a hot set of the `HOT` newest entries (those a bounded cache
    // still holds).
    let lookups = 20_000u64;
    let hot = env_u64("HOT", 5_000).clamp(1, n);
    let cpu = cpu_seconds();
    let mut hits = 0;
    for j in 0..lookups {
        let i = n - 1 - (j * 7919) % hot;
        if matches!(cache.lookup(&key(i)), Lookup::Fresh(_)) {
            hits += 1;
        }
    }
    let spent = cpu_seconds() - cpu;
    let rss_busy = rss_mib();
    // The daemon's allocator gives freed pages back over about a second.
    std::thread::sleep(Duration::from_secs(3));
    println!(
        "hits: {hits} of {lookups} lookups, {:.1} us CPU each; RSS {rss_busy:.0} MiB, {:.0} MiB \
         3 s later",
        spent * 1e6 / lookups as f64,
        rss_mib()
    );
    drop(cache);
    store.flush();
    let db = state.join("db");
    println!(
        "disk: {:.1} MiB under {} ({:.2}x the live bytes)",
        disk_bytes(&db) as f64 / 1048576.0,
        db.display(),
        disk_bytes(&db) as f64 / stats.bytes.max(1) as f64
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let [_, phase, dir] = args.as_slice() {
        let state = Path::new(dir);
        match phase.as_str() {
            "fill" => fill(state),
            _ => reopen(state),
        }
        return;
    }
    // Each phase in its own process, so that RSS and open time are those of a fresh start.
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("current_exe");
    for phase in ["fill", "open", "open"] {
        let status = std::process::Command::new(&exe)
            .arg(phase)
            .arg(dir.path())
            .status()
            .expect("run phase");
        assert!(status.success(), "{phase} failed");
    }
}
