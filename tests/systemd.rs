//! systemd integration with the real binary: unit files pass `systemd-analyze verify`, socket
//! activation through `systemd-socket-activate`, and the notify protocol against a fake
//! `NOTIFY_SOCKET`. Tests that need a systemd tool skip with a message where it is absent
//! (`.ci/run` installs it).

mod common;

use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::fake_upstream::refused_base_url;
use common::providers_toml;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const DEADLINE: Duration = Duration::from_secs(20);

fn promptd() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_promptd"));
    cmd.env("RUST_LOG", "warn")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("LISTEN_FDS");
    cmd
}

fn tool(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(name))
        .find(|p| p.is_file())
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn write_config(dir: &Path, socket: &Path) -> PathBuf {
    let config = dir.join("promptd.toml");
    let text = format!(
        "socket = \"{}\"\nstate_dir = \"{}\"\nprompts_dir = \"{}\"\n{}",
        socket.display(),
        dir.join("state").display(),
        dir.join("prompts").display(),
        providers_toml(&refused_base_url(), &refused_base_url())
    );
    std::fs::write(&config, text).expect("write config");
    config
}

/// `GET /health` over a Unix socket, with retries until the deadline.
fn health_over(socket: &Path) -> String {
    use std::io::{Read, Write};
    let start = Instant::now();
    loop {
        if let Ok(mut s) = UnixStream::connect(socket) {
            s.set_read_timeout(Some(Duration::from_secs(10)))
                .expect("timeout");
            if s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .is_ok()
            {
                let mut out = String::new();
                if s.read_to_string(&mut out).is_ok() && !out.is_empty() {
                    return out;
                }
            }
        }
        assert!(
            start.elapsed() < DEADLINE,
            "no health answer on {}",
            socket.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn installed_units_pass_systemd_analyze_verify() {
    let Some(analyze) = tool("systemd-analyze") else {
        eprintln!("SKIPPED: systemd-analyze not installed (apt-get install systemd)");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let out = promptd()
        .args(["install-units", "--prefix"])
        .arg(dir.path())
        .output()
        .expect("install-units");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let units = dir.path().join("etc/systemd/system");
    let out = Command::new(&analyze)
        .args(["verify", "--man=no"])
        .arg(units.join("promptd.socket"))
        .arg(units.join("promptd.service"))
        .output()
        .expect("systemd-analyze");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "system units: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let home = dir.path().join("home");
    let runtime = dir.path().join("run");
    std::fs::create_dir_all(&runtime).expect("runtime dir");
    let out = promptd()
        .args(["install-units", "--user"])
        .env("HOME", &home)
        .output()
        .expect("install-units --user");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let units = home.join(".config/systemd/user");
    let out = Command::new(&analyze)
        .args(["--user", "verify", "--man=no"])
        .arg(units.join("promptd.socket"))
        .arg(units.join("promptd.service"))
        .env("XDG_RUNTIME_DIR", &runtime)
        .env("HOME", &home)
        .output()
        .expect("systemd-analyze --user");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "user units: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn serves_on_sockets_passed_by_systemd_socket_activate() {
    let Some(activate) = tool("systemd-socket-activate") else {
        eprintln!("SKIPPED: systemd-socket-activate not installed (apt-get install systemd)");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let passed = dir.path().join("activated.sock");
    let configured = dir.path().join("configured.sock");
    let config = write_config(dir.path(), &configured);
    let log = dir.path().join("promptd.log");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let child = Command::new(activate)
        .arg("-l")
        .arg(&passed)
        .arg("-l")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--fdname=unix:tcp")
        .arg("-E")
        .arg("RUST_LOG=warn")
        .arg(env!("CARGO_BIN_EXE_promptd"))
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("systemd-socket-activate");
    let _guard = Killed(child);
    let answer = health_over(&passed);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // The config's `socket` is not applied, and says so; `socket_mode` was not set, so no word
    // about it (the unit's SocketMode= differing from a default is no news).
    let logged = std::fs::read_to_string(&log).expect("log");
    assert!(
        logged.contains("the config's `socket` is not used"),
        "{logged}"
    );
    assert!(!logged.contains("socket_mode"), "{logged}");
    assert!(
        !configured.exists(),
        "the configured socket is not bound when sockets are passed"
    );
    // The TCP socket passed as `tcp` serves the same routes.
    use std::io::{Read, Write};
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port)).expect("tcp connect");
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    tcp.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("write");
    let mut out = String::new();
    tcp.read_to_string(&mut out).expect("read");
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
}

/// Datagrams received on the fake notify socket until `want` shows up.
fn wait_for(notify: &UnixDatagram, seen: &mut Vec<String>, want: &str) {
    let start = Instant::now();
    let mut buf = vec![0u8; 4096];
    while !seen.iter().any(|m| m.lines().any(|l| l == want)) {
        assert!(start.elapsed() < DEADLINE, "never got {want}; got {seen:?}");
        if let Ok(n) = notify.recv(&mut buf) {
            seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
}

#[test]
fn notifies_ready_status_watchdog_and_stopping() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("p.sock");
    let config = write_config(dir.path(), &socket);
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).expect("notify socket");
    notify
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let child = promptd()
        .args(["serve", "--config"])
        .arg(&config)
        .env("NOTIFY_SOCKET", &notify_path)
        .env("WATCHDOG_USEC", "200000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let pid = Pid::from_raw(child.id() as i32);
    let mut guard = Killed(child);
    let mut seen = Vec::new();
    wait_for(&notify, &mut seen, "READY=1");
    // READY=1 comes only once the listener serves.
    let ready = seen
        .iter()
        .find(|m| m.contains("READY=1"))
        .cloned()
        .unwrap_or_default();
    assert!(ready.contains("STATUS=serving on unix"), "{ready}");
    assert!(
        UnixStream::connect(&socket).is_ok(),
        "socket accepts when READY=1 is sent"
    );
    // Half of WATCHDOG_USEC: it keeps pinging (three pings, however long the machine takes).
    let start = Instant::now();
    let mut pings = 0;
    let mut buf = vec![0u8; 4096];
    while pings < 3 {
        assert!(
            start.elapsed() < DEADLINE,
            "watchdog pings every 100 ms, got {pings}"
        );
        if let Ok(n) = notify.recv(&mut buf) {
            pings += String::from_utf8_lossy(&buf[..n])
                .lines()
                .filter(|l| *l == "WATCHDOG=1")
                .count();
        }
    }
    // A reload is bracketed by RELOADING=1 ... READY=1.
    seen.clear();
    kill(pid, Signal::SIGHUP).expect("SIGHUP");
    wait_for(&notify, &mut seen, "RELOADING=1");
    let reloading_at = seen.len();
    wait_for(&notify, &mut seen, "READY=1");
    assert!(
        seen[reloading_at - 1..]
            .iter()
            .any(|m| m.contains("READY=1")),
        "READY=1 after RELOADING=1: {seen:?}"
    );
    assert!(
        UnixStream::connect(&socket).is_ok(),
        "still serving after the reload"
    );
    kill(pid, Signal::SIGTERM).expect("SIGTERM");
    wait_for(&notify, &mut seen, "STOPPING=1");
    let status = guard.0.wait().expect("wait");
    assert_eq!(status.code(), Some(0));
}
