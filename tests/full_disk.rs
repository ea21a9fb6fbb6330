//! A full disk under `state_dir`, on the real binary: every request is still answered, the
//! cache and the log spool each count their write errors and log them once, the spool writes
//! again once there is room, and after a restart the database opens and caches again.
//!
//! The disk is a small tmpfs mounted on the daemon's state dir, so the test needs the right to
//! mount (root, as in CI). Without it the test says so and passes without checking anything.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::fake_upstream::{fixtures, refused_base_url, FakeUpstream};
use common::process::{Daemon, Setup, EXIT_TIMEOUT};
use common::{providers_toml, raw_get, raw_post, RawResponse, PREFIX};
use nix::sys::signal::Signal;
use serde_json::{json, Value};

/// A tmpfs mounted for the test, unmounted (lazily) when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).expect("create mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "promptd-test"])
            .arg(at)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        matches!(status, Ok(s) if s.success()).then(|| Tmpfs(at.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fill the file system holding `path` until a write fails for lack of space.
fn fill(path: &Path) {
    let mut file = std::fs::File::create(path).expect("create filler");
    let chunk = vec![0u8; 64 * 1024];
    loop {
        if let Err(e) = file.write_all(&chunk).and_then(|()| file.sync_data()) {
            assert_eq!(e.raw_os_error(), Some(nix::libc::ENOSPC), "filling: {e}");
            return;
        }
    }
}

/// A completion of `text` (padded, so that every answer has something to write).
async fn ask(socket: &Path, text: &str) -> RawResponse {
    let body = json!({
        "llm_configuration": {
            "model": "gpt-4o-mini",
            "provider": "openai",
            "messages": [{"role": "user", "content": format!("{text} {}", "x".repeat(2000))}]
        }
    });
    raw_post(socket, &format!("{PREFIX}/completion"), &body).await
}

/// Answered, with the provider's content, and whether the cache had it.
fn answered(response: &RawResponse) -> &str {
    assert_eq!(response.status(), 200, "{}", response.head);
    let body: Value = serde_json::from_slice(&response.chunks.concat()).expect("JSON body");
    assert_eq!(body["content"], fixtures::HELLO);
    response
        .header("x-promptd-cache")
        .expect("x-promptd-cache header")
}

async fn json_of(socket: &Path, path: &str) -> Value {
    let response = raw_get(socket, path).await;
    assert_eq!(response.status(), 200, "{}", response.head);
    serde_json::from_slice(&response.chunks.concat()).expect("JSON body")
}

/// A daemon (`name`) whose state directory is an 8 MiB tmpfs, with a fake OpenAI; `None` (the
/// test skipped) where no tmpfs can be mounted.
struct OnTmpfs {
    chat: FakeUpstream,
    setup: Setup,
    state: PathBuf,
    _tmpfs: Tmpfs,
    socket: PathBuf,
    daemon: Daemon,
}

async fn on_a_small_tmpfs(name: &str) -> Option<OnTmpfs> {
    let chat = FakeUpstream::always(fixtures::openai_chat()).await;
    // Small segments: the spool writes into room it allocated ahead (a segment's map, at most
    // `segment_bytes`) and fails only once that is used, a few records into a full disk.
    let setup = Setup::new(
        "[spool]\nsegment_bytes = \"64KiB\"\n",
        &providers_toml(&chat.base_url(), &refused_base_url()),
    );
    let state = setup.path().join("state");
    let Some(tmpfs) = Tmpfs::mount(&state, "8m") else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return None;
    };
    let socket = setup.socket.clone();
    let daemon = tokio::task::block_in_place(|| setup.serve(name));
    Some(OnTmpfs {
        chat,
        setup,
        state,
        _tmpfs: tmpfs,
        socket,
        daemon,
    })
}

fn occurrences(text: &str, needle: &str) -> usize {
    text.matches(needle).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_loses_no_answer_and_is_reported_once() {
    let Some(OnTmpfs {
        chat,
        setup,
        state,
        _tmpfs,
        socket,
        mut daemon,
    }) = on_a_small_tmpfs("full").await
    else {
        return;
    };

    // One answer cached (and flushed) while there is room.
    assert_eq!(answered(&ask(&socket, "before").await), "miss");
    assert_eq!(answered(&ask(&socket, "before").await), "hit");
    common::wait::sled_has_written(&state, fixtures::HELLO).await;

    fill(&state.join("filler"));
    // sled writes in the background: its first failed flush makes later writes fail. The
    // spool fails once the room its segment allocated before the disk filled is used.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut asked = 0;
    loop {
        assert_eq!(
            answered(&ask(&socket, &format!("full {asked}")).await),
            "miss"
        );
        asked += 1;
        let stats = json_of(&socket, "/cache/stats").await;
        let spool = json_of(&socket, "/logs/status").await;
        if stats["write_errors"].as_u64() > Some(0)
            && spool["write_errors"].as_u64() > Some(0)
            && asked >= 20
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no cache and spool write errors after {asked} answers on a full disk: {stats} {spool}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Still serving, the earlier answer from the cache too, unless sled had to write to read it
    // (it finishes a node split on the way down, which its sticky I/O error refuses): then the
    // lookup is logged as failed and answered from the provider.
    let read_errors = || async { json_of(&socket, "/cache/stats").await["read_errors"].as_u64() };
    let read_errors_before = read_errors().await.expect("read_errors");
    let before = answered(&ask(&socket, "before").await).to_owned();
    let this_read_failed = read_errors().await > Some(read_errors_before);
    assert!(
        before == "hit" || (before == "miss" && this_read_failed),
        "{before}: {}",
        daemon.stderr()
    );
    let refetched = usize::from(before == "miss");
    assert_eq!(json_of(&socket, "/health").await["status"], "ok");
    let logs = json_of(&socket, "/logs/status").await;
    assert!(logs["write_errors"].as_u64() > Some(0), "{logs}");
    let stderr = daemon.stderr();
    assert_eq!(
        occurrences(&stderr, "cannot write to the cache"),
        1,
        "{stderr}"
    );
    // Once per failure run, not per failed write: a write can slip into the room a failed
    // one freed, which ends the run (and says so) before the next failure starts another.
    let failure_runs = occurrences(&stderr, "log spool write failed");
    let recoveries = occurrences(&stderr, "log spool writes again");
    assert!(
        failure_runs >= 1 && failure_runs.checked_sub(recoveries).is_some_and(|d| d <= 1),
        "{failure_runs} failure runs, {recoveries} recoveries: {stderr}"
    );

    // Room again: the spool writes again (and says so); the cache stays read-only until the
    // restart (sled keeps its I/O error).
    std::fs::remove_file(state.join("filler")).expect("remove filler");
    let committed = logs["committed"].as_u64().expect("committed");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        answered(&ask(&socket, &format!("room {asked}")).await);
        asked += 1;
        let logs = json_of(&socket, "/logs/status").await;
        if logs["committed"].as_u64() > Some(committed) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the spool never wrote again: {logs}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(daemon.stderr().contains("log spool writes again"));
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait_exit(EXIT_TIMEOUT).code(), Some(0));

    // After a restart the database opens, keeps what was flushed, and caches again.
    let _daemon = tokio::task::block_in_place(|| setup.serve("after"));
    assert_eq!(answered(&ask(&socket, "before").await), "hit");
    assert_eq!(answered(&ask(&socket, "after").await), "miss");
    assert_eq!(answered(&ask(&socket, "after").await), "hit");
    assert_eq!(chat.calls(), 1 + asked + refetched + 1);
}

/// A restart (or a watchdog kill) on a full disk: the daemon starts and answers, from its
/// cache (the database's reserve gives sled the room it writes at open) and from the provider,
/// and writes records again once there is room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_starts_and_serves_on_a_full_disk() {
    start_on_a_full_disk(true).await;
}

/// The same without the reserve (a state dir from before it, or full at the very first start):
/// the cache runs empty in memory, every answer is still served, the records that find no room
/// are counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_starts_and_serves_on_a_full_disk_without_a_reserve() {
    start_on_a_full_disk(false).await;
}

async fn start_on_a_full_disk(reserve: bool) {
    let Some(OnTmpfs {
        chat,
        setup,
        state,
        _tmpfs,
        socket,
        mut daemon,
    }) = on_a_small_tmpfs("before").await
    else {
        return;
    };
    assert_eq!(answered(&ask(&socket, "before").await), "miss");
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait_exit(EXIT_TIMEOUT).code(), Some(0));
    if !reserve {
        std::fs::remove_file(state.join("db.reserve")).expect("the database's reserve");
    }

    fill(&state.join("filler"));
    let daemon = tokio::task::block_in_place(|| setup.serve("full"));
    let cached = if reserve { "hit" } else { "miss" };
    assert_eq!(answered(&ask(&socket, "before").await), cached);
    assert_eq!(answered(&ask(&socket, "full").await), "miss");
    assert_eq!(json_of(&socket, "/health").await["status"], "ok");
    let stats = json_of(&socket, "/cache/stats").await;
    assert_eq!(stats["db_in_memory"], !reserve, "{stats}");
    let logs = json_of(&socket, "/logs/status").await;
    let appended = logs["appended"].as_u64().expect("appended");
    let write_errors = logs["write_errors"].as_u64().expect("write_errors");
    assert!(
        appended + write_errors >= 2,
        "every record written or counted: {logs}"
    );
    if !reserve {
        assert!(write_errors > 0, "{logs}");
    }
    let stderr = daemon.stderr();
    assert!(stderr.contains("state_dir has no space left"), "{stderr}");

    // Room again: records are written again.
    std::fs::remove_file(state.join("filler")).expect("remove filler");
    let mut asked = 0;
    loop {
        answered(&ask(&socket, &format!("room {asked}")).await);
        asked += 1;
        let logs = json_of(&socket, "/logs/status").await;
        if logs["appended"].as_u64() > Some(appended) {
            break;
        }
        assert!(asked < 100, "the spool never wrote again: {logs}");
    }
    assert_eq!(chat.calls(), 2 + usize::from(!reserve) + asked);
}
