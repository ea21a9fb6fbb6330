//! Real client programs for the tests that drive them against the daemon: a Python venv with
//! the SDKs of `tests/sdk/requirements.txt`, and npm packages (Claude Code), each installed from
//! its package registry under `target/tmp` by the first test that needs it (a lock file keeps
//! parallel test binaries from installing twice; an install already at the pinned version is
//! kept), and [`run_for`]: a child process bounded in time.
//!
//! `PROMPTD_TEST_PYTHON` names an interpreter that already has the SDKs;
//! `PROMPTD_TEST_CLAUDE` a `claude` binary of the pinned version.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use nix::fcntl::{Flock, FlockArg};

use super::process::{stderr, stdout};

/// The Python packages the SDK tests need, pinned.
pub const REQUIREMENTS: &str = include_str!("../sdk/requirements.txt");
const REQUIREMENTS_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/requirements.txt");
/// Longest an install may take (a venv of about 100 packages; an npm package of ~80 MB).
pub const INSTALL_TIMEOUT: Duration = Duration::from_secs(600);

/// Claude Code's npm package and the version whose requests `tests/fixtures/agents` holds.
pub const CLAUDE_CODE_PACKAGE: &str = "@anthropic-ai/claude-code";
pub const CLAUDE_CODE_VERSION: &str = "2.1.197";

/// The dir under `target/` where the clients are installed.
fn target_tmp() -> &'static Path {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(dir).expect("target tmp dir");
    dir
}

/// Hold an exclusive lock on `<path>.lock` while `install` runs (once per process).
fn locked<T>(path: &Path, install: impl FnOnce() -> T) -> T {
    let lock_file = File::create(path.with_extension("lock")).expect("install lock file");
    let _lock = Flock::lock(lock_file, FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .expect("lock the install");
    install()
}

/// The Python interpreter with the SDKs installed, building the venv on first use.
pub fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        if let Some(python) = std::env::var_os("PROMPTD_TEST_PYTHON") {
            return PathBuf::from(python);
        }
        let venv = target_tmp().join("sdk-venv");
        locked(&venv, || install_venv(&venv));
        venv.join("bin/python")
    })
}

/// A command running `script` with the venv's Python, with no proxy from the environment.
pub fn python_script(script: &str) -> Command {
    let mut cmd = Command::new(python());
    cmd.arg(script);
    for name in [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        cmd.env_remove(name);
    }
    cmd
}

fn install_venv(venv: &Path) {
    let marker = venv.join("promptd-requirements.txt");
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(REQUIREMENTS) {
        return;
    }
    let mut create = Command::new("python3");
    create.args(["-m", "venv", "--clear"]).arg(venv);
    let mut pip = Command::new(venv.join("bin/pip"));
    pip.args([
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-input",
        "-r",
        REQUIREMENTS_PATH,
    ]);
    for (step, cmd) in [("venv", create), ("pip", pip)] {
        let out = run_for(cmd, INSTALL_TIMEOUT);
        assert!(
            out.status.success(),
            "building the SDK venv ({step}) failed; the tests need the package registry once \
             (or PROMPTD_TEST_PYTHON): {}{}",
            stdout(&out),
            stderr(&out)
        );
    }
    std::fs::write(&marker, REQUIREMENTS).expect("write the venv marker");
}

/// Claude Code's `claude` binary at [`CLAUDE_CODE_VERSION`], installed on first use.
pub fn claude() -> &'static Path {
    static CLAUDE: OnceLock<PathBuf> = OnceLock::new();
    CLAUDE.get_or_init(|| {
        if let Some(claude) = std::env::var_os("PROMPTD_TEST_CLAUDE") {
            return PathBuf::from(claude);
        }
        let dir = npm_package(CLAUDE_CODE_PACKAGE, CLAUDE_CODE_VERSION);
        // The native binary of the platform package (an optional dependency): what
        // `.bin/claude` becomes once the package's postinstall has linked it, and there even
        // where npm did not run that script.
        let arch = match std::env::consts::ARCH {
            "x86_64" => "x64",
            "aarch64" => "arm64",
            other => other,
        };
        let native = dir.join(format!(
            "node_modules/{CLAUDE_CODE_PACKAGE}-linux-{arch}/claude"
        ));
        if native.exists() {
            native
        } else {
            dir.join("node_modules/.bin/claude")
        }
    })
}

/// The `npm --prefix` dir (`target/tmp/agents`) holding `package` at `version`, installing it
/// unless it is there already.
pub fn npm_package(package: &str, version: &str) -> PathBuf {
    let dir = target_tmp().join("agents");
    let manifest = dir.join("node_modules").join(package).join("package.json");
    let installed = |manifest: &Path| {
        std::fs::read_to_string(manifest)
            .ok()
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
            .is_some_and(|v| v["version"] == version)
    };
    locked(&dir, || {
        if installed(&manifest) {
            return;
        }
        std::fs::create_dir_all(&dir).expect("npm prefix dir");
        let mut npm = Command::new("npm");
        npm.args(["install", "--no-audit", "--no-fund", "--prefix"])
            .arg(&dir)
            .arg(format!("{package}@{version}"));
        let out = run_for(npm, INSTALL_TIMEOUT);
        assert!(
            out.status.success() && installed(&manifest),
            "npm install {package}@{version} failed; the tests need node, npm and the package \
             registry once: {}{}",
            stdout(&out),
            stderr(&out)
        );
    });
    dir
}

/// Run `cmd` (stdin from /dev/null, output captured, in its own process group) to completion;
/// after `timeout` the whole group is killed and the test panics.
pub fn run_for(mut cmd: Command, timeout: Duration) -> Output {
    use std::os::unix::process::CommandExt;
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let group = nix::unistd::Pid::from_raw(-(child.id() as i32));
    let (done, waited) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let out = child.wait_with_output();
        let _ = done.send(());
        out
    });
    if waited.recv_timeout(timeout).is_err() {
        let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
        // What it printed, unless a process that left the group still holds its pipes.
        let printed = match waited.recv_timeout(Duration::from_secs(5)) {
            Ok(()) => match waiter.join().expect("waiter thread") {
                Ok(out) => format!("{}{}", stdout(&out), stderr(&out)),
                Err(e) => e.to_string(),
            },
            Err(_) => "(its output pipes are still open)".to_owned(),
        };
        panic!("{cmd:?} did not finish within {timeout:?}: {printed}");
    }
    waiter
        .join()
        .expect("waiter thread")
        .expect("wait for the child")
}
