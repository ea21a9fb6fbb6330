//! A damaged cache database does not stop the start: the real binary finds junk in sled's
//! `conf`, or a garbage `db` file, moves the database aside (`state/db.damaged-*`, kept), logs
//! one line, counts it (`/cache/stats`, `/metrics`), starts with an empty cache and serves.
//! A database another promptd holds is not damaged: that start is refused, saying so.

mod common;

use std::path::Path;

use common::fake_upstream::{fixtures, refused_base_url, FakeUpstream};
use common::process::{promptd, run_blocking, stderr, Setup, EXIT_TIMEOUT};
use common::{providers_toml, raw_get, raw_post, RawResponse, PREFIX};
use nix::sys::signal::Signal;
use serde_json::{json, Value};

async fn ask(socket: &Path) -> RawResponse {
    let body = json!({
        "llm_configuration": {
            "model": "gpt-4o-mini",
            "provider": "openai",
            "messages": [{"role": "user", "content": "say hello"}]
        }
    });
    raw_post(socket, &format!("{PREFIX}/completion"), &body).await
}

fn cache_of(response: &RawResponse) -> String {
    assert_eq!(response.status(), 200, "{}", response.head);
    let body: Value = serde_json::from_slice(&response.chunks.concat()).expect("JSON body");
    assert_eq!(body["content"], fixtures::HELLO);
    response
        .header("x-promptd-cache")
        .expect("x-promptd-cache")
        .to_owned()
}

async fn json_of(socket: &Path, path: &str) -> Value {
    let response = raw_get(socket, path).await;
    assert_eq!(response.status(), 200, "{}", response.head);
    serde_json::from_slice(&response.chunks.concat()).expect("JSON body")
}

/// The entries of `state` named `db.damaged-*`.
fn set_aside(state: &Path) -> Vec<String> {
    std::fs::read_dir(state)
        .expect("read state dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("db.damaged-"))
        .collect()
}

/// Cache one answer, stop, `damage` the database, start again: it serves, with an empty cache,
/// and the damaged database is kept aside. With `torn_ok`, sled may instead take the damage for
/// a torn tail and recover what is before it (its own crash recovery): then nothing is set
/// aside, and the cache still serves.
async fn starts_after(torn_ok: bool, damage: impl FnOnce(&Path)) {
    let chat = FakeUpstream::always(fixtures::openai_chat()).await;
    let setup = Setup::new("", &providers_toml(&chat.base_url(), &refused_base_url()));
    let state = setup.path().join("state");
    let socket = setup.socket.clone();
    let mut daemon = tokio::task::block_in_place(|| setup.serve("first"));
    assert_eq!(cache_of(&ask(&socket).await), "miss");
    assert_eq!(cache_of(&ask(&socket).await), "hit");
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait_exit(EXIT_TIMEOUT).code(), Some(0));

    damage(&state.join("db"));
    let daemon = tokio::task::block_in_place(|| setup.serve("damaged"));
    assert_eq!(cache_of(&ask(&socket).await), "miss", "an empty cache");
    assert_eq!(cache_of(&ask(&socket).await), "hit", "caching again");
    let aside = set_aside(&state);
    if torn_ok && aside.is_empty() {
        let stats = json_of(&socket, "/cache/stats").await;
        assert_eq!(stats["db_damaged"], 0, "{stats}");
        return;
    }
    assert_eq!(aside.len(), 1, "{aside:?}");
    let stats = json_of(&socket, "/cache/stats").await;
    assert_eq!(stats["db_damaged"], 1, "{stats}");
    assert!(
        stats["db_damaged_path"]
            .as_str()
            .is_some_and(|p| p.ends_with(&aside[0])),
        "{stats}"
    );
    let metrics = raw_get(&socket, "/metrics").await;
    let metrics = String::from_utf8_lossy(&metrics.chunks.concat()).into_owned();
    assert!(
        metrics
            .lines()
            .any(|l| l.contains("cache_db_damaged") && l.ends_with(" 1")),
        "{metrics}"
    );
    let err = daemon.stderr();
    assert_eq!(
        err.matches("the cache database is damaged").count(),
        1,
        "{err}"
    );
    assert!(!err.contains("another promptd"), "{err}");
    assert_eq!(chat.calls(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_in_sleds_conf_moves_the_database_aside() {
    starts_after(false, |db| {
        std::fs::write(db.join("conf"), b"0123456789").expect("write conf")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbage_db_file_moves_the_database_aside() {
    starts_after(false, |db| {
        let garbage: Vec<u8> = (0..10_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        std::fs::write(db.join("db"), garbage).expect("write db");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_db_file_still_starts() {
    starts_after(true, |db| {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(db.join("db"))
            .expect("open db");
        file.set_len(100).expect("truncate");
    })
    .await;
}

/// A second daemon on the same state dir (its own socket): refused, naming the owner, even
/// with a `conf` it cannot read; the first one's database is left where it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_another_promptd_holds_is_not_damaged() {
    let setup = Setup::offline();
    let state = setup.path().join("state");
    let _first = tokio::task::block_in_place(|| setup.serve("first"));
    let second = setup.path().join("second.toml");
    let config = std::fs::read_to_string(&setup.config).expect("read config");
    let other_socket = setup.path().join("second.sock");
    std::fs::write(
        &second,
        config.replace(
            &setup.socket.display().to_string(),
            &other_socket.display().to_string(),
        ),
    )
    .expect("write config");
    for junk_conf in [false, true] {
        if junk_conf {
            std::fs::write(state.join("db").join("conf"), b"0123456789").expect("write conf");
        }
        let out = run_blocking({
            let mut cmd = promptd();
            cmd.arg("serve").arg("--config").arg(&second);
            cmd
        });
        assert_ne!(out.status.code(), Some(0), "{out:?}");
        let err = stderr(&out);
        assert!(err.contains("another promptd owns this state_dir"), "{err}");
        assert!(set_aside(&state).is_empty(), "junk conf {junk_conf}");
    }
}
