//! The cache's entry count and byte total are kept with the entries, not counted at start: the
//! real binary, SIGKILLed while it stores answers (after a number of answers, not a time),
//! starts again with counts that match what its database holds, entry for entry.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::fake_upstream::{fixtures, refused_base_url, FakeUpstream};
use common::process::{Setup, EXIT_TIMEOUT};
use common::wait::wait_until;
use common::{providers_toml, raw_get, raw_post, PREFIX};
use nix::sys::signal::Signal;
use serde_json::{json, Value};

const CLIENTS: usize = 8;

async fn ask(socket: &Path, text: &str) -> bool {
    let body = json!({
        "llm_configuration": {
            "model": "gpt-4o-mini",
            "provider": "openai",
            "messages": [{"role": "user", "content": text}]
        }
    });
    raw_post(socket, &format!("{PREFIX}/completion"), &body)
        .await
        .status()
        == 200
}

async fn stats(socket: &Path) -> Value {
    let response = raw_get(socket, "/cache/stats").await;
    serde_json::from_slice(&response.chunks.concat()).expect("JSON body")
}

/// (entries, bytes) of what the cache wrote, read from the database itself.
fn recount(state: &Path) -> (u64, u64) {
    let options = promptd::store::StoreOptions {
        page_cache: 1 << 24,
    };
    let store = promptd::store::Store::open(state, options).expect("open store");
    let trees = store.cache_trees().expect("trees");
    trees
        .entries()
        .iter()
        .flatten()
        .filter(|(_, v)| promptd::cache::entry::Header::read(v).is_some())
        .fold((0, 0), |(n, b), (k, v)| {
            (n + 1, b + (k.len() + v.len()) as u64)
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_match_the_database_after_sigkill_and_restart() {
    let chat = FakeUpstream::always(fixtures::openai_chat()).await;
    let setup = Setup::new("", &providers_toml(&chat.base_url(), &refused_base_url()));
    let state = setup.path().join("state");
    for round in 0..3 {
        let mut daemon = tokio::task::block_in_place(|| setup.serve(&format!("r{round}")));
        let answered = Arc::new(AtomicUsize::new(0));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let (socket, answered) = (setup.socket.clone(), Arc::clone(&answered));
                tokio::spawn(async move {
                    for n in 0.. {
                        if !ask(&socket, &format!("round {round} client {c} ask {n}")).await {
                            return;
                        }
                        answered.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        // Killed while storing: after some answers (some flushed by sled, some not).
        wait_until("answers", || {
            answered.load(Ordering::SeqCst) >= 40 * (round + 1)
        })
        .await;
        daemon.signal(Signal::SIGKILL);
        tokio::task::block_in_place(|| daemon.wait_exit(EXIT_TIMEOUT));
        for c in clients {
            let _ = c.await;
        }
        // What survived, counted from the database, is what the next start reports.
        let held = tokio::task::block_in_place(|| recount(&state));
        let mut daemon = tokio::task::block_in_place(|| setup.serve(&format!("after{round}")));
        let after = stats(&setup.socket).await;
        assert_eq!(
            (after["entries"].as_u64(), after["bytes"].as_u64()),
            (Some(held.0), Some(held.1)),
            "round {round}: {after}"
        );
        daemon.signal(Signal::SIGTERM);
        assert_eq!(daemon.wait_exit(EXIT_TIMEOUT).code(), Some(0));
    }
}
