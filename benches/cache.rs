//! Hot functions of the cache path: the key of a ~2 KB request, and a sled get + decode of a
//! ~4 KB entry. `cargo bench --bench cache`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use promptd::cache::{cache_key, Cache, CacheConfig, CacheEntry, CacheKey, Lookup};
use promptd::call::{LlmConfiguration, Message, ModelCall, ModelParams, Role};
use promptd::providers::ChatRequest;
use serde_json::json;

/// A Parea configuration of ~2 KB: four turns and a function.
fn configuration_of_about_2kb() -> LlmConfiguration {
    let text = "The quick brown fox jumps over the lazy dog. ".repeat(9);
    LlmConfiguration {
        model: Some("gpt-4o-mini".into()),
        messages: Some(
            (0..4)
                .map(|i| Message {
                    role: if i % 2 == 0 {
                        Role::User
                    } else {
                        Role::Assistant
                    },
                    content: Some(format!("{i}: {text}")),
                })
                .collect(),
        ),
        model_params: Some(ModelParams {
            temp: Some(0.2),
            max_length: Some(256),
            ..ModelParams::default()
        }),
        functions: Some(vec![
            json!({"name": "get_weather", "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}}, "required": ["city"]}}),
        ]),
        ..LlmConfiguration::default()
    }
}

fn request_of(configuration: LlmConfiguration) -> ChatRequest {
    let (request, hints) = configuration.into_model().expect("a model request");
    ChatRequest::new(ModelCall {
        request,
        hints,
        sent: None,
        headers: Vec::new(),
    })
}

fn entry_of_about_4kb() -> CacheEntry {
    let text = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. ".repeat(35);
    CacheEntry {
        deltas: text.split_inclusive(". ").map(str::to_owned).collect(),
        response: promptd::model::Response {
            model: Some("gpt-4o-mini-2024-07-18".into()),
            blocks: vec![promptd::model::Block::Text(text)],
            finish: Some(promptd::model::FinishReason::Stop),
            usage: promptd::model::Usage {
                input: 500,
                output: 400,
                ..Default::default()
            },
            ..Default::default()
        },
        cost: 0.001,
        provider: "openai".into(),
        raw_response: None,
        chunks: vec![],
        raw_wire: promptd::cache::entry::RawWire::OpenAiChat,
        created_ms: 1,
        expires_ms: u64::MAX,
        last_used_ms: 1,
        hits: 0,
    }
}

fn bench(c: &mut Criterion) {
    let configuration = configuration_of_about_2kb();
    let request = request_of(configuration.clone());
    let size: usize = request
        .call
        .request
        .messages
        .iter()
        .map(|m| m.joined_text().len())
        .sum();
    c.bench_function(
        &format!("cache_key ({size} B of messages + a function)"),
        |b| b.iter(|| cache_key(black_box("openai"), black_box(&request))),
    );
    c.bench_function(
        &format!("LlmConfiguration::into_model ({size} B of messages + a function)"),
        |b| b.iter(|| black_box(configuration.clone()).into_model()),
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let db = sled::Config::new()
        .path(dir.path().join("db"))
        .open()
        .expect("db");
    let cache = Cache::open(
        promptd::cache::CacheTrees::open(&db).expect("trees"),
        CacheConfig {
            enabled: true,
            ttl: Duration::from_secs(3600),
            max_bytes: 1 << 30,
            serve_stale_on_error: true,
            max_entry_bytes: u64::MAX,
            page_cache: 1 << 24,
        },
    );
    let entry = entry_of_about_4kb();
    let encoded = entry.encode().len();
    for i in 0..10_000u32 {
        let mut k = [0u8; 32];
        k[..4].copy_from_slice(&i.to_le_bytes());
        cache.store(&CacheKey(k), &entry);
    }
    let key = CacheKey([7; 32]);
    cache.store(&key, &entry);
    c.bench_function(
        &format!("sled get + decode of a {encoded} B entry (10k entries)"),
        |b| {
            b.iter(|| match cache.lookup(black_box(&key)) {
                Lookup::Fresh(e) => e.response.usage.output,
                _ => 0,
            })
        },
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
