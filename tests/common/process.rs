//! The real `promptd` binary as a child process: a temp dir with a config ([`Setup`]), `serve`
//! ([`Daemon`], killed on drop), one-shot commands bounded in time ([`run`]).

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use tempfile::TempDir;

use super::fake_upstream::refused_base_url;
use super::providers_toml;

/// Longest a one-shot command (validate, complete, health, ...) may take.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest a daemon may take to start listening.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Longest a daemon may take to exit after SIGTERM (its stream takes about 2 s).
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(15);
pub const POLL: Duration = Duration::from_millis(10);

/// The binary with a clean environment for its config: no inherited socket or config, quiet
/// logs, no stdin.
pub fn promptd() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_promptd"));
    cmd.env("RUST_LOG", "warn")
        .env_remove("PROMPTD_SOCKET")
        .env_remove("PROMPTD_CONFIG")
        .stdin(Stdio::null());
    // No proxy from the test runner's environment: a test that wants one sets it.
    for name in [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
        "NO_PROXY",
        "no_proxy",
    ] {
        cmd.env_remove(name);
    }
    cmd
}

/// Run `cmd` to completion within [`COMMAND_TIMEOUT`] (killed and panicking otherwise).
pub fn run(cmd: Command) -> Output {
    run_fed(cmd, None)
}

/// [`run`] with `input` as the command's standard input (closed after it).
pub fn run_with_stdin(cmd: Command, input: &[u8]) -> Output {
    run_fed(cmd, Some(input.to_vec()))
}

fn run_fed(mut cmd: Command, input: Option<Vec<u8>>) -> Output {
    if input.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = ChildGuard(Some(
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn promptd"),
    ));
    let inner = child.0.as_mut().expect("child");
    // Written from a thread: a child that does not read its input must not block the test.
    let writer = input.map(|input| {
        let mut stdin = inner.stdin.take().expect("stdin pipe");
        std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        })
    });
    let mut stdout = inner.stdout.take().expect("stdout pipe");
    let mut stderr = inner.stderr.take().expect("stderr pipe");
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let status = wait_exit(inner, COMMAND_TIMEOUT)
        .unwrap_or_else(|| panic!("{cmd:?} did not finish within {COMMAND_TIMEOUT:?}"));
    child.0 = None;
    if let Some(writer) = writer {
        writer.join().expect("stdin writer");
    }
    Output {
        status,
        stdout: out_reader.join().expect("stdout reader"),
        stderr: err_reader.join().expect("stderr reader"),
    }
}

/// [`run`] from an async test without stalling the runtime that serves the fake providers.
pub fn run_blocking(cmd: Command) -> Output {
    tokio::task::block_in_place(|| run(cmd))
}

/// Poll until `child` exits or `timeout` passes.
pub fn wait_exit(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(POLL);
    }
}

/// Kills (SIGKILL) and reaps its child when dropped, unless it was already taken.
pub struct ChildGuard(pub Option<Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `p` as a TOML basic string.
pub fn toml_path(p: &Path) -> String {
    toml_string(&p.display().to_string())
}

pub fn toml_string(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

/// A temp dir with a config file whose socket, state_dir and prompts_dir live inside it.
pub struct Setup {
    pub dir: TempDir,
    pub config: PathBuf,
    pub socket: PathBuf,
}

impl Setup {
    /// `providers` is appended to the paths (plus `extra` top-level keys before them).
    pub fn new(extra: &str, providers: &str) -> Setup {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("promptd.sock");
        let config = dir.path().join("promptd.toml");
        let text = format!(
            "socket = {}\nstate_dir = {}\nprompts_dir = {}\nlog_level = \"warn\"\n{extra}\n{providers}",
            toml_path(&socket),
            toml_path(&dir.path().join("state")),
            toml_path(&dir.path().join("prompts")),
        );
        std::fs::write(&config, text).expect("write config");
        Setup {
            dir,
            config,
            socket,
        }
    }

    /// Providers where nothing listens (for tests that never complete).
    pub fn offline() -> Setup {
        Setup::new(
            "",
            &providers_toml(&refused_base_url(), &refused_base_url()),
        )
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `promptd serve --config FILE`, stderr to a file in the temp dir; waits until the socket
    /// accepts connections.
    pub fn serve(&self, name: &str) -> Daemon {
        self.serve_with_env(name, &[])
    }

    /// [`Setup::serve`] with `env` set in the daemon's environment.
    pub fn serve_with_env(&self, name: &str, env: &[(&str, &str)]) -> Daemon {
        let stderr_path = self.path().join(format!("{name}.stderr"));
        let child = promptd()
            .envs(env.iter().copied())
            .arg("serve")
            .arg("--config")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(File::create(&stderr_path).expect("create stderr file"))
            .spawn()
            .expect("spawn promptd serve");
        let mut daemon = Daemon {
            child: ChildGuard(Some(child)),
            socket: self.socket.clone(),
            stderr_path,
        };
        daemon.wait_ready();
        daemon
    }

    /// `promptd SUBCOMMAND [extra...] --model gpt-4o-mini --provider PROVIDER TEXT` against this
    /// setup's daemon, run to completion from an async test.
    pub fn ask(&self, subcommand: &str, provider: &str, extra: &[&str], text: &str) -> Output {
        let mut cmd = self.client(subcommand);
        cmd.args(extra)
            .args(["--model", "gpt-4o-mini", "--provider", provider, text]);
        run_blocking(cmd)
    }

    /// A client subcommand aimed at this setup's socket.
    pub fn client(&self, subcommand: &str) -> Command {
        let mut cmd = promptd();
        cmd.arg(subcommand).arg("--socket").arg(&self.socket);
        cmd
    }
}

/// A running `promptd serve`.
pub struct Daemon {
    pub child: ChildGuard,
    pub socket: PathBuf,
    pub stderr_path: PathBuf,
}

impl Daemon {
    pub fn child(&mut self) -> &mut Child {
        self.child.0.as_mut().expect("daemon child")
    }

    pub fn pid(&mut self) -> Pid {
        Pid::from_raw(i32::try_from(self.child().id()).expect("pid fits i32"))
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child().try_wait().expect("try_wait") {
                panic!(
                    "promptd serve exited ({status}) before listening; stderr:\n{}",
                    self.stderr()
                );
            }
            if UnixStream::connect(&self.socket).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "promptd serve did not listen on {} within {START_TIMEOUT:?}; stderr:\n{}",
                self.socket.display(),
                self.stderr()
            );
            std::thread::sleep(POLL);
        }
    }

    pub fn signal(&mut self, signal: Signal) {
        let pid = self.pid();
        kill(pid, signal).expect("send signal");
    }

    /// Wait (bounded) for the daemon to exit; it is then no longer killed on drop.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let status = wait_exit(self.child(), timeout).unwrap_or_else(|| {
            panic!(
                "promptd serve did not exit within {timeout:?}; stderr:\n{}",
                self.stderr()
            )
        });
        self.child.0 = None;
        status
    }
}
