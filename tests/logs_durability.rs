//! The record cap (`spool.max_record_bytes`) through the real daemon: with the collector away
//! and a small spool, clients whose requests render large cannot make other clients' records
//! get lost (every answered completion has its record, the large ones cut and marked), and an
//! answer over the cap reaches the collector as a head with its full length and hash.

mod common;

use common::fake_upstream::{fixtures, Behavior, FakeUpstream};
use common::wait::wait_for;
use common::{providers_toml, TestDaemon};
use serde_json::{json, Value};

const BIG: usize = 8;
const SMALL: usize = 24;

/// Renders to 50 copies of a 4,000-byte input: 200 KB, far within `max_rendered`.
fn big_request(i: usize) -> Value {
    json!({
        "trace_id": format!("big-{i}"),
        "cache": false,
        "llm_configuration": {"model": "gpt-4o-mini", "provider": "openai",
            "messages": [{"role": "user", "content": "{{x}}".repeat(50)}]},
        "llm_inputs": {"x": "y".repeat(4000)}
    })
}

fn small_request(i: usize) -> Value {
    json!({
        "trace_id": format!("small-{i}"),
        "cache": false,
        "llm_configuration": {"model": "gpt-4o-mini", "provider": "openai",
            "messages": [{"role": "user", "content": "Hello"}]}
    })
}

#[tokio::test]
async fn large_renderings_cannot_make_other_clients_records_get_lost() {
    let openai = FakeUpstream::always(fixtures::openai_chat()).await;
    // Shipping off: every record stays in the spool, as while the collector is down. Without
    // the cap the big records alone (8 x ~200 KB) would be more than the spool holds.
    let toml = format!(
        "[spool]\nmax_bytes = \"1MiB\"\nsegment_bytes = \"64KiB\"\nmax_record_bytes = \"16KiB\"\n\
         flush_interval = \"20ms\"\n[upstream]\nbase_url = \"\"\n{}",
        providers_toml(&openai.base_url(), &openai.base_url())
    );
    let daemon = TestDaemon::start(&toml).await;
    let requests: Vec<Value> = (0..BIG)
        .map(big_request)
        .chain((0..SMALL).map(small_request))
        .collect();
    let replies =
        futures_util::future::join_all(requests.iter().map(|r| daemon.post("/completion", r)))
            .await;
    for reply in &replies {
        assert_eq!(reply.status, 200, "{:?}", reply.body);
    }
    let status = spool_settled(&daemon, BIG + SMALL).await;
    assert_eq!(status["dropped"], 0, "no record lost: {status}");
    assert_eq!(status["waiting_records"], BIG + SMALL, "{status}");
    for i in 0..BIG {
        let held = daemon.get(&format!("/logs/trace/big-{i}")).await.json();
        let record = &held["record"];
        assert_eq!(record["status"], "success", "{held}");
        let mark = &record["truncated"]["configuration"];
        assert!(mark["len"].as_u64() > Some(200_000), "{record}");
        assert_eq!(mark["blake3"].as_str().map(str::len), Some(64), "{record}");
        let head = record["configuration"]["messages"][0]["content"]
            .as_str()
            .unwrap_or_default();
        assert!(!head.is_empty() && "y".repeat(200_000).starts_with(head));
    }
    for i in 0..SMALL {
        let held = daemon.get(&format!("/logs/trace/small-{i}")).await.json();
        assert!(held["record"].get("truncated").is_none(), "{held}");
    }
    daemon.stop().await;
}

/// `/logs/status` once the spool holds `n` records or has dropped one.
async fn spool_settled(daemon: &TestDaemon, n: usize) -> Value {
    let deadline = std::time::Instant::now() + common::wait::DEADLINE;
    loop {
        let status = daemon.get("/logs/status").await.json();
        if status["waiting_records"].as_u64() >= Some(n as u64)
            || status["dropped"].as_u64() > Some(0)
        {
            return status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the spool never held {n} records: {status}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Records shipped to `collector` (committed every 20 ms), capped at 64 KiB; providers at
/// `provider`.
fn shipping_with_a_64k_cap(collector: &FakeUpstream, provider: &FakeUpstream) -> String {
    format!(
        "[spool]\nflush_interval = \"20ms\"\nmax_record_bytes = \"64KiB\"\n[upstream]\n\
         base_url = \"{}\"\napi_key = \"pk-test\"\n{}",
        collector.base_url(),
        providers_toml(&provider.base_url(), &provider.base_url())
    )
}

#[tokio::test]
async fn an_answer_over_the_cap_is_delivered_cut_with_its_length_and_hash() {
    let output = "long answer ".repeat(20_000);
    let answer = json!({
        "id": "chatcmpl-long", "object": "chat.completion", "created": 1,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": output},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 40000, "total_tokens": 40003}
    });
    let openai = FakeUpstream::always(Behavior::json(200, answer.to_string())).await;
    let collector = FakeUpstream::always(Behavior::json(200, "{}")).await;
    let daemon = TestDaemon::start(&shipping_with_a_64k_cap(&collector, &openai)).await;
    let reply = daemon.post("/completion", &small_request(0)).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(
        reply.json()["content"],
        output,
        "the client gets the whole answer"
    );
    let sent = wait_for("the record at the collector", || {
        collector.requests().into_iter().next()
    })
    .await;
    let record = &sent.body;
    let head = record["output"].as_str().unwrap_or_default();
    assert!(
        head.len() > 32 * 1024 && output.starts_with(head),
        "{}",
        head.len()
    );
    assert_eq!(record["truncated"]["output"]["len"], output.len());
    assert_eq!(
        record["truncated"]["output"]["blake3"],
        blake3::hash(output.as_bytes()).to_hex().as_str()
    );
    assert_eq!(record["trace_id"], "small-0");
    daemon.stop().await;
}

/// A client's own record over the cap (`POST /trace_log`, up to `max_body`) is cut the same
/// way, its unknown fields kept, and delivered.
#[tokio::test]
async fn a_clients_record_over_the_cap_is_delivered_cut() {
    let collector = FakeUpstream::always(Behavior::json(200, "{}")).await;
    let daemon = TestDaemon::start(&shipping_with_a_64k_cap(&collector, &collector)).await;
    let output = "a traced answer ".repeat(131_072); // 2 MiB, within max_body
    let record = json!({
        "trace_id": "client-big", "project_name": "p", "status": "success",
        "output": output, "a_field_promptd_does_not_know": {"kept": true}
    });
    let reply = daemon.post("/trace_log", &record).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let sent = wait_for("the record at the collector", || {
        collector.requests().into_iter().next()
    })
    .await;
    let shipped = &sent.body;
    assert!(
        sent.raw.len() <= 64 * 1024,
        "{} bytes shipped",
        sent.raw.len()
    );
    assert_eq!(shipped["trace_id"], "client-big");
    assert_eq!(shipped["a_field_promptd_does_not_know"]["kept"], true);
    assert!(output.starts_with(shipped["output"].as_str().unwrap_or("-")));
    assert_eq!(shipped["truncated"]["output"]["len"], output.len());
    assert_eq!(
        shipped["truncated"]["output"]["blake3"],
        blake3::hash(output.as_bytes()).to_hex().as_str()
    );
    daemon.stop().await;
}
