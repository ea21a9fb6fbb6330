//! The cost of prompts that used the provider's prompt cache, through the real daemon against
//! fake providers: Anthropic's cache reads and writes and OpenAI's cached input priced at their
//! own rates (built-in ratios, and `[prices]` rates set in the config), whole and streamed, in
//! the Parea answer and the log record; the token counts keep counting every prompt token.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::fake_upstream::{Behavior, FakeUpstream, RecordedRequest};
use common::{hello_request, TestDaemon};
use hyper::Method;
use serde_json::{json, Value};

/// An Anthropic answer that read 1,000 prompt tokens from the cache and wrote 200 to it.
const ANTHROPIC_CACHED: &str = r#"{"id":"msg_1","type":"message","role":"assistant",
"model":"claude-sonnet-4-20250514","content":[{"type":"text","text":"Hi"}],
"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":10,
"cache_creation_input_tokens":200,"cache_read_input_tokens":1000,"output_tokens":20}}"#;

/// The same counts, streamed.
const ANTHROPIC_CACHED_SSE: &str = "event: message_start\n\
data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-20250514\",\"content\":[],\"usage\":{\"input_tokens\":10,\"cache_creation_input_tokens\":200,\"cache_read_input_tokens\":1000,\"output_tokens\":1}}}\n\n\
event: content_block_start\n\
data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n\
event: content_block_stop\n\
data: {\"type\":\"content_block_stop\",\"index\":0}\n\n\
event: message_delta\n\
data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":20}}\n\n\
event: message_stop\n\
data: {\"type\":\"message_stop\"}\n\n";

/// An OpenAI answer of 1,200 prompt tokens, 1,000 of them cached, and 50 completion tokens,
/// 10 of them reasoning.
const OPENAI_CACHED: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1,
"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant",
"content":"Hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1200,
"completion_tokens":50,"total_tokens":1250,"prompt_tokens_details":{"cached_tokens":1000},
"completion_tokens_details":{"reasoning_tokens":10}}}"#;

/// The same counts, streamed (the usage in its own chunk, as `include_usage` asks).
const OPENAI_CACHED_SSE: &str = "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hi\"},\"finish_reason\":null}],\"usage\":null}\n\n\
data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n\
data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[],\"usage\":{\"prompt_tokens\":1200,\"completion_tokens\":50,\"total_tokens\":1250,\"prompt_tokens_details\":{\"cached_tokens\":1000},\"completion_tokens_details\":{\"reasoning_tokens\":10}}}\n\n\
data: [DONE]\n\n";

/// claude-sonnet-4: $3 / $15 per million; reads at 0.1x, writes at 1.25x the input rate.
const ANTHROPIC_COST: f64 = (10.0 * 3.0 + 1000.0 * 0.30 + 200.0 * 3.75 + 20.0 * 15.0) / 1e6;
/// gpt-4o-mini: $0.15 / $0.60 per million; cached input at half the input rate.
const OPENAI_COST: f64 = (200.0 * 0.15 + 1000.0 * 0.075 + 50.0 * 0.60) / 1e6;

struct Fakes {
    anthropic: FakeUpstream,
    anthropic_stream: FakeUpstream,
    openai: FakeUpstream,
    openai_stream: FakeUpstream,
    collector: FakeUpstream,
}

impl Fakes {
    async fn start() -> Fakes {
        Fakes {
            anthropic: FakeUpstream::always(Behavior::json(200, ANTHROPIC_CACHED)).await,
            anthropic_stream: FakeUpstream::always(Behavior::sse(ANTHROPIC_CACHED_SSE)).await,
            openai: FakeUpstream::always(Behavior::json(200, OPENAI_CACHED)).await,
            openai_stream: FakeUpstream::always(Behavior::sse(OPENAI_CACHED_SSE)).await,
            collector: FakeUpstream::always(Behavior::json(200, "{}")).await,
        }
    }

    /// A daemon with one provider per fake, logging to the collector, then `rest`.
    async fn daemon(&self, rest: &str) -> TestDaemon {
        let provider = |name: &str, kind: &str, fake: &FakeUpstream| {
            format!(
                "[providers.{name}]\nkind = \"{kind}\"\nbase_url = \"{}\"\napi_key = \"sk-test\"\n\
                 max_retries = 0\ntimeout = \"5s\"\n",
                fake.base_url()
            )
        };
        let toml = [
            provider("anthropic", "anthropic", &self.anthropic),
            provider("anthropic_stream", "anthropic", &self.anthropic_stream),
            provider("openai", "openai", &self.openai),
            provider("openai_stream", "openai", &self.openai_stream),
            rest.to_owned(),
        ]
        .concat();
        TestDaemon::start(&common::shipping_to(&self.collector, &toml)).await
    }

    /// The log record of `trace_id`, once the collector has it.
    async fn record(&self, trace_id: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let found = self
                .collector
                .requests()
                .into_iter()
                .map(|r: RecordedRequest| r.body)
                .find(|body| body["trace_id"] == trace_id);
            if let Some(record) = found {
                return record;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no record of {trace_id}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn assert_cost(value: &Value, expected: f64) {
    let cost = value.as_f64().expect("cost is a number");
    assert!(
        (cost - expected).abs() < 1e-12,
        "cost {cost}, expected {expected}"
    );
}

fn request(provider: &str, model: &str, trace_id: &str) -> Value {
    let mut body = hello_request(provider, model);
    body["trace_id"] = json!(trace_id);
    body["cache"] = json!(false);
    body
}

#[tokio::test]
async fn cached_prompt_tokens_are_priced_at_their_rates() {
    let fakes = Fakes::start().await;
    let daemon = fakes.daemon("").await;
    let cases = [
        (
            "anthropic",
            "claude-sonnet-4-20250514",
            ANTHROPIC_COST,
            1210,
        ),
        ("openai", "gpt-4o-mini", OPENAI_COST, 1200),
    ];
    for (provider, model, cost, input_tokens) in cases {
        let whole = format!("{provider}-whole");
        let reply = daemon
            .post("/completion", &request(provider, model, &whole))
            .await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        let r = reply.json();
        assert_eq!(r["input_tokens"], input_tokens, "{provider}: {r}");
        assert_cost(&r["cost"], cost);

        let streamed = format!("{provider}-stream");
        let name = format!("{provider}_stream");
        let raw = daemon.stream(&request(&name, model, &streamed)).await;
        assert_eq!(raw.status(), 200);

        for trace_id in [whole, streamed] {
            let record = fakes.record(&trace_id).await;
            assert_eq!(record["status"], "success", "{record}");
            assert_eq!(record["input_tokens"], input_tokens, "{record}");
            assert_cost(&record["cost"], cost);
        }
    }
    daemon.stop().await;
}

#[tokio::test]
async fn config_prices_set_cache_rates() {
    let fakes = Fakes::start().await;
    let daemon = fakes
        .daemon(
            "[prices.\"claude-sonnet-4\"]\ninput = 3.0\noutput = 15.0\ncache_read = 0.5\n\
             cache_write = 6.0\n[prices.\"gpt-4o-mini\"]\ninput = 0.15\noutput = 0.60\n",
        )
        .await;
    let r = daemon
        .post(
            "/completion",
            &request("anthropic", "claude-sonnet-4-20250514", "a"),
        )
        .await
        .json();
    assert_cost(
        &r["cost"],
        (10.0 * 3.0 + 1000.0 * 0.5 + 200.0 * 6.0 + 20.0 * 15.0) / 1e6,
    );
    // No cache rate set: OpenAI's default ratio applies to the configured input rate.
    let r = daemon
        .post("/completion", &request("openai", "gpt-4o-mini", "o"))
        .await
        .json();
    assert_cost(&r["cost"], OPENAI_COST);
    daemon.stop().await;
}

#[tokio::test]
async fn openai_route_usage_counts_every_prompt_token() {
    let fakes = Fakes::start().await;
    let daemon = fakes.daemon("").await;
    let chat = |model: &str| {
        let body = json!({"model": model, "messages": [{"role": "user", "content": "Hello"}]});
        Bytes::from(serde_json::to_vec(&body).expect("encode"))
    };
    let reply = daemon
        .request(
            Method::POST,
            "/v1/chat/completions",
            Some(chat("openai/gpt-4o-mini")),
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let usage = &reply.json()["usage"];
    assert_eq!(usage["prompt_tokens"], 1200);
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 1000);

    let reply = daemon
        .request(
            Method::POST,
            "/v1/chat/completions",
            Some(chat("anthropic/claude-sonnet-4-20250514")),
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let usage = &reply.json()["usage"];
    assert_eq!(usage["prompt_tokens"], 1210);
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 1000);
    daemon.stop().await;
}

/// A cache entry keeps the cached prompt tokens apart: an OpenAI client answered from an entry
/// a Parea request filled (Anthropic kind: no OpenAI body to return as received) is told them
/// in `prompt_tokens_details`, and `prompt_tokens` still counts every prompt token.
#[tokio::test]
async fn an_entry_tells_openai_clients_its_cached_prompt_tokens() {
    let fakes = Fakes::start().await;
    let daemon = fakes.daemon("").await;
    let mut parea = hello_request("anthropic", "claude-sonnet-4-20250514");
    parea["trace_id"] = json!("filled");
    let reply = daemon.post("/completion", &parea).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.json()["input_tokens"], 1210, "every prompt token");
    let body = json!({"model": "anthropic/claude-sonnet-4-20250514",
        "messages": [{"role": "user", "content": "Hello"}]});
    let reply = daemon
        .request(
            Method::POST,
            "/v1/chat/completions",
            Some(Bytes::from(serde_json::to_vec(&body).expect("encode"))),
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(
        reply.headers.get("x-promptd-cache").map(|v| v.as_bytes()),
        Some(&b"hit"[..])
    );
    let usage = &reply.json()["usage"];
    assert_eq!(usage["prompt_tokens"], 1210, "{usage}");
    assert_eq!(
        usage["prompt_tokens_details"]["cached_tokens"], 1000,
        "{usage}"
    );
    assert_eq!(usage["completion_tokens"], 20, "{usage}");
    daemon.stop().await;
}
