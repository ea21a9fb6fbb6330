//! Kept responses outlive the daemon: the real binary answers on the Responses door, is
//! SIGKILLed once what it kept is written (waited for on `/status`, not a time), and the next
//! start serves every kept response, continues one by `previous_response_id`, and keeps its
//! files private. A second kill in the middle of a load leaves files the next start reads (no
//! failed start) and whose count agrees with what it serves.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use common::fake_upstream::{fixtures, refused_base_url, FakeUpstream};
use common::process::{Setup, EXIT_TIMEOUT};
use common::wait::wait_for_async;
use common::{providers_toml, raw_get, raw_post};
use nix::sys::signal::Signal;
use serde_json::{json, Value};

const KEPT: usize = 24;
const CLIENTS: usize = 4;

fn json_of(bytes: &[Vec<u8>]) -> Value {
    serde_json::from_slice(&bytes.concat()).expect("a JSON body")
}

/// Ask the Responses door; the kept response's id.
async fn ask(socket: &Path, text: &str, previous: Option<&str>) -> Option<String> {
    let mut body = json!({"model": "openai/gpt-4o-mini", "input": text});
    if let Some(id) = previous {
        body["previous_response_id"] = json!(id);
    }
    let reply = raw_post(socket, "/v1/responses", &body).await;
    if reply.status() != 200 {
        return None;
    }
    json_of(&reply.chunks)["id"].as_str().map(str::to_owned)
}

/// How many responses the daemon says it has written.
async fn kept_count(socket: &Path) -> Result<u64, String> {
    let status = json_of(&raw_get(socket, "/status").await.chunks);
    status["responses"]["count"]
        .as_u64()
        .ok_or_else(|| format!("no responses count in {status}"))
}

async fn served(socket: &Path, id: &str) -> bool {
    raw_get(socket, &format!("/v1/responses/{id}"))
        .await
        .status()
        == 200
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_responses_survive_sigkill_and_their_files_are_private() {
    let chat = FakeUpstream::always(fixtures::openai_chat()).await;
    let setup = Setup::new("", &providers_toml(&chat.base_url(), &refused_base_url()));
    let mut daemon = tokio::task::block_in_place(|| setup.serve("first"));
    let mut ids = Vec::new();
    for n in 0..KEPT {
        ids.push(
            ask(&setup.socket, &format!("question {n}"), None)
                .await
                .expect("an answer"),
        );
    }
    wait_for_async("every answer written", || async {
        match kept_count(&setup.socket).await? {
            n if n >= KEPT as u64 => Ok(()),
            n => Err(format!("{n} written")),
        }
    })
    .await;
    daemon.signal(Signal::SIGKILL);
    tokio::task::block_in_place(|| daemon.wait_exit(EXIT_TIMEOUT));

    let mut daemon = tokio::task::block_in_place(|| setup.serve("second"));
    assert_eq!(kept_count(&setup.socket).await, Ok(KEPT as u64));
    for id in &ids {
        assert!(
            served(&setup.socket, id).await,
            "{id} is served after the kill"
        );
    }
    let next = ask(&setup.socket, "and then?", Some(&ids[3]))
        .await
        .expect("continued after the kill");
    let sent = chat.requests();
    let last = &sent.last().expect("a call").body;
    let said: Vec<&str> = last["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["content"].as_str())
        .collect();
    assert_eq!(said.first(), Some(&"question 3"), "{last}");
    assert_eq!(said.last(), Some(&"and then?"), "{last}");
    assert!(!ids.contains(&next));

    // Private: the directory 0700, every file 0600.
    let dir = setup.path().join("state").join("responses");
    let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    for entry in std::fs::read_dir(&dir).expect("dir").flatten() {
        assert_eq!(mode(&entry.path()), 0o600, "{}", entry.path().display());
    }

    // Killed in the middle of a load: the next start reads what is there.
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (socket, stop, answered) = (
                setup.socket.clone(),
                Arc::clone(&stop),
                Arc::clone(&answered),
            );
            tokio::spawn(async move {
                for n in 0.. {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    match ask(&socket, &format!("load {c} {n}"), None).await {
                        Some(id) => answered.lock().expect("lock").push(id),
                        None => return,
                    }
                }
            })
        })
        .collect();
    wait_for_async("answers under load", || async {
        match answered.lock().expect("lock").len() {
            n if n >= 40 => Ok(()),
            n => Err(format!("{n} answered")),
        }
    })
    .await;
    daemon.signal(Signal::SIGKILL);
    tokio::task::block_in_place(|| daemon.wait_exit(EXIT_TIMEOUT));
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        let _ = c.await;
    }
    let mut daemon = tokio::task::block_in_place(|| setup.serve("third"));
    let count = kept_count(&setup.socket).await.expect("a count");
    let answered = answered.lock().expect("lock").clone();
    let mut held = 0;
    for id in ids.iter().chain(&answered) {
        held += usize::from(served(&setup.socket, id).await);
    }
    for id in &ids {
        assert!(
            served(&setup.socket, id).await,
            "{id}: written before, still there"
        );
    }
    // What is served: the first answers, the continuation and the load's answers written
    // before the kill; the count may also hold answers written whose client the kill cut off
    // before it read them (one in flight per client at most).
    let served_count = held as u64 + 1;
    assert!(
        (served_count..=served_count + CLIENTS as u64).contains(&count),
        "{count} kept, {served_count} served"
    );
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait_exit(EXIT_TIMEOUT).code(), Some(0));
}
