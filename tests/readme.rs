//! The README's examples, run as written: every `curl` and `promptd` client command of its
//! `sh` blocks, pasted into bash against a real daemon whose providers are fakes on loopback.
//!
//! A line `# => TEXT` right after a command says that its output (stdout and stderr) holds
//! TEXT; such a command may fail (the examples of error messages). Every other command must
//! exit 0 (curl with `--fail-with-body`, so an error answer fails it).
//!
//! Run twice: with `XDG_RUNTIME_DIR` set, and without it as a normal user (as `nobody` when the
//! tests run as root), where the socket falls back to `/tmp/promptd-$UID/`: the examples must be
//! true for both.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::fake_upstream::{fixtures, Behavior, FakeUpstream};
use common::process::{run_blocking, stderr, stdout, toml_path, toml_string, Daemon};

/// One example command of the README and what it is said to print.
#[derive(Debug)]
struct Example {
    /// The command as bash reads it (continuation lines and quoted newlines kept).
    script: String,
    /// The `# => TEXT` lines after it.
    expect: Vec<String>,
    /// Line of the README where it starts (1-based), for failure messages.
    line: usize,
}

/// Subcommands that are not client calls of a running daemon: the test starts the daemon
/// itself, and installing units needs systemd.
const NOT_CLIENT_CALLS: &[&str] = &["serve", "install-units"];

/// Every `curl` / `promptd` client command in the ```sh blocks of `readme`.
fn examples(readme: &str) -> Vec<Example> {
    let mut examples: Vec<Example> = Vec::new();
    let mut in_sh = false;
    let mut pending: Option<(String, usize)> = None;
    for (index, line) in readme.lines().enumerate() {
        let number = index + 1;
        if line.starts_with("```") {
            in_sh = !in_sh && line.trim() == "```sh";
            continue;
        }
        if !in_sh {
            continue;
        }
        if let Some((mut script, start)) = pending.take() {
            script.push('\n');
            script.push_str(line);
            if continues(&script) {
                pending = Some((script, start));
            } else {
                push_if_client_call(&mut examples, script, start);
            }
            continue;
        }
        let trimmed = line.trim_start();
        if let Some(text) = trimmed.strip_prefix("# => ") {
            let last = examples
                .last_mut()
                .unwrap_or_else(|| panic!("README line {number}: `# =>` without a command"));
            last.expect.push(text.trim().to_owned());
            continue;
        }
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if continues(line) {
            pending = Some((line.to_owned(), number));
        } else {
            push_if_client_call(&mut examples, line.to_owned(), number);
        }
    }
    examples
}

/// Whether bash would read another line: a trailing backslash or an open single quote.
fn continues(script: &str) -> bool {
    script.trim_end().ends_with('\\') || script.matches('\'').count() % 2 == 1
}

fn push_if_client_call(examples: &mut Vec<Example>, script: String, line: usize) {
    if script.contains("systemctl") {
        return;
    }
    // The first word of each pipeline segment, past `NAME=value` assignments.
    let mut programs = script.split(['|', ';', '&']).filter_map(|segment| {
        let mut words = segment.split_whitespace().skip_while(|w| is_assignment(w));
        Some((words.next()?, words.next()))
    });
    let is_example = programs.any(|(program, first_arg)| match program {
        "curl" => true,
        "promptd" => first_arg.is_some_and(|sub| !NOT_CLIENT_CALLS.contains(&sub)),
        _ => false,
    });
    if is_example {
        examples.push(Example {
            script,
            expect: Vec::new(),
            line,
        });
    }
}

fn is_assignment(word: &str) -> bool {
    word.split_once('=').is_some_and(|(name, _)| {
        !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

/// Where the daemon and the examples run, and as whom.
struct Environment {
    dir: tempfile::TempDir,
    /// `XDG_RUNTIME_DIR` of the daemon and the examples; `None` leaves it unset.
    runtime_dir: Option<PathBuf>,
    /// Run as this uid/gid (root running the test as a normal user).
    user: Option<(u32, u32)>,
}

impl Environment {
    fn new(with_runtime_dir: bool) -> Environment {
        let dir = tempfile::tempdir().expect("tempdir");
        let runtime_dir = with_runtime_dir.then(|| dir.path().join("run"));
        let root = nix::unistd::geteuid().is_root();
        let user = (root && !with_runtime_dir).then_some((65534, 65534));
        for sub in ["run", "home", "bin", "state", "prompts"] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("create dir");
        }
        // The binary where any user can run it, wherever the checkout lives: a hard link (a
        // copy would be a file just written, which a child forked meanwhile by another test
        // thread holds open for writing until it execs: "Text file busy"); a copy only across
        // filesystems, made executable for everyone.
        let binary = dir.path().join("bin/promptd");
        if std::fs::hard_link(env!("CARGO_BIN_EXE_promptd"), &binary).is_err() {
            std::fs::copy(env!("CARGO_BIN_EXE_promptd"), &binary).expect("copy promptd");
            std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755))
                .expect("chmod promptd");
        }
        for entry in std::fs::read_dir("examples/prompts").expect("examples/prompts") {
            let path = entry.expect("entry").path();
            let name = path.file_name().expect("file name");
            std::fs::copy(&path, dir.path().join("prompts").join(name)).expect("copy prompt");
        }
        Environment {
            dir,
            runtime_dir,
            user,
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The config: the defaults but for providers pointing at the fakes (keys from the
    /// environment, as the embedded default takes them) and directories in the temp dir.
    /// No `socket`: the examples must find the default one.
    fn write_config(&self, openai: &str, anthropic: &str) -> PathBuf {
        let text = format!(
            "state_dir = {}\nprompts_dir = {}\nlog_level = \"warn\"\n\n\
             [providers.openai]\nkind = \"openai\"\nbase_url = {}\napi_key_env = \"OPENAI_API_KEY\"\nmax_retries = 0\n\n\
             [providers.anthropic]\nkind = \"anthropic\"\nbase_url = {}\napi_key_env = \"ANTHROPIC_API_KEY\"\nmax_retries = 0\n",
            toml_path(&self.path().join("state")),
            toml_path(&self.path().join("prompts")),
            toml_string(openai),
            toml_string(anthropic),
        );
        let config = self.path().join("promptd.toml");
        std::fs::write(&config, text).expect("write config");
        if let Some((uid, gid)) = self.user {
            // Not the binary: a hard link of the build's own.
            chown_tree(self.path(), &self.path().join("bin/promptd"), uid, gid);
        }
        config
    }

    /// `program` with this environment: a clean `PATH` with the binary first, its own home,
    /// the provider keys of the README's `export` lines, as the chosen user.
    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        let path = format!(
            "{}:/usr/local/bin:/usr/bin:/bin",
            self.path().join("bin").display()
        );
        cmd.env_clear()
            .env("PATH", path)
            .env("HOME", self.path().join("home"))
            .env("RUST_LOG", "warn")
            .env("OPENAI_API_KEY", "sk-test-openai")
            .env("ANTHROPIC_API_KEY", "sk-ant-test")
            .current_dir(self.path())
            .stdin(Stdio::null());
        if let Some(dir) = &self.runtime_dir {
            cmd.env("XDG_RUNTIME_DIR", dir);
        }
        if let Some((uid, gid)) = self.user {
            cmd.uid(uid).gid(gid);
        }
        cmd
    }

    /// Where the daemon's socket is expected: the documented default for this environment.
    fn expected_socket(&self) -> PathBuf {
        match (&self.runtime_dir, self.user) {
            (Some(dir), _) => dir.join("promptd.sock"),
            (None, Some((uid, _))) => PathBuf::from(format!("/tmp/promptd-{uid}/promptd.sock")),
            (None, None) => PathBuf::from(format!(
                "/tmp/promptd-{}/promptd.sock",
                nix::unistd::geteuid().as_raw()
            )),
        }
    }
}

/// Give `path` and everything under it to `uid`/`gid`, except `skip`.
fn chown_tree(path: &Path, skip: &Path, uid: u32, gid: u32) {
    if path == skip {
        return;
    }
    let owner = (
        Some(nix::unistd::Uid::from_raw(uid)),
        Some(nix::unistd::Gid::from_raw(gid)),
    );
    nix::unistd::chown(path, owner.0, owner.1).expect("chown");
    if path.is_dir() {
        for entry in std::fs::read_dir(path).expect("read_dir") {
            chown_tree(&entry.expect("entry").path(), skip, uid, gid);
        }
    }
}

/// A fake provider that answers a stream request with `stream` and any other with `whole`.
async fn fake(whole: Behavior, stream: Behavior) -> FakeUpstream {
    FakeUpstream::start(move |req, _| {
        if req.body["stream"] == true {
            stream.clone()
        } else {
            whole.clone()
        }
    })
    .await
}

async fn run_the_readme(with_runtime_dir: bool) {
    let readme = std::fs::read_to_string("README.md").expect("README.md");
    let examples = examples(&readme);
    let curls = examples
        .iter()
        .filter(|e| e.script.starts_with("curl"))
        .count();
    assert!(
        curls >= 1 && examples.len() >= 4,
        "the README's examples were not found: {examples:#?}"
    );

    let openai = fake(fixtures::openai_chat(), fixtures::openai_stream()).await;
    let anthropic = fake(fixtures::anthropic_message(), fixtures::anthropic_stream()).await;
    let env = Environment::new(with_runtime_dir);
    let config = env.write_config(&openai.base_url(), &anthropic.base_url());

    let socket = env.expected_socket();
    let stderr_path = env.path().join("serve.stderr");
    let child = env
        .command(&env.path().join("bin/promptd").display().to_string())
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
        .spawn()
        .expect("spawn promptd serve");
    let mut daemon = Daemon {
        child: common::process::ChildGuard(Some(child)),
        socket: socket.clone(),
        stderr_path,
    };
    tokio::task::block_in_place(|| daemon.wait_ready());

    for example in &examples {
        let mut script = example.script.clone();
        if script.starts_with("curl") {
            script.push_str(" --fail-with-body --silent --show-error --max-time 20");
        }
        let mut cmd = env.command("bash");
        cmd.arg("-c").arg(&script);
        let out = run_blocking(cmd);
        let printed = format!("{}{}", stdout(&out), stderr(&out));
        let place = format!("README line {}: `{}`", example.line, example.script);
        if example.expect.is_empty() {
            assert!(
                out.status.success(),
                "{place} failed ({}): {printed}",
                out.status
            );
        }
        for text in &example.expect {
            assert!(
                printed.contains(text),
                "{place} should print `{text}`, printed: {printed}"
            );
        }
    }
    assert!(
        openai.calls() >= 1 && anthropic.calls() >= 1,
        "the examples reached the providers ({} openai, {} anthropic calls)",
        openai.calls(),
        anthropic.calls()
    );
    drop(daemon);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_examples_work_with_xdg_runtime_dir() {
    run_the_readme(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_examples_work_as_a_normal_user_without_xdg_runtime_dir() {
    run_the_readme(false).await;
}

#[test]
fn examples_are_found_with_their_continuations_and_expectations() {
    let readme = "text\n```sh\ncargo install --path .\ncurl --unix-socket x \\\n  -d '{\"a\":\n 1}'\n\
                  # => done\npromptd serve &\npromptd health\nsystemctl --user start promptd; promptd status\n\
                  usermod -aG promptd alice\nX=1 promptd status | cat\n```\n```json\npromptd health\n```\n";
    let found = examples(readme);
    assert_eq!(found.len(), 3, "{found:#?}");
    assert_eq!(
        found[0].script,
        "curl --unix-socket x \\\n  -d '{\"a\":\n 1}'"
    );
    assert_eq!(found[0].expect, vec!["done"]);
    assert_eq!(found[0].line, 4);
    assert_eq!(found[1].script, "promptd health");
    assert_eq!(found[2].script, "X=1 promptd status | cat");
}
