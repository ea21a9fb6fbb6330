//! The command line as clap types: [`Cli`], its [`Command`]s, their argument structs and
//! subcommand enums. Parsing only; [`super::run`] acts on them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// promptd: a local LLM gateway daemon speaking Parea's completion API over a Unix socket.
#[derive(Debug, Parser)]
#[command(name = "promptd", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon (embedded defaults when no --config is given).
    Serve(ServeArgs),
    /// Check a config file and its prompts directory without starting; names the bad key or file.
    Validate(ValidateArgs),
    /// Print the embedded default config, a starting point for your own.
    DefaultConfig,
    /// Ask a running daemon for a completion and print the answer.
    Complete(CompleteArgs),
    /// Like `complete`, but print the answer as it streams.
    Stream(CompleteArgs),
    /// Check that a daemon is up and print its version.
    Health(SocketArg),
    /// Print the socket path the client commands use (for `curl --unix-socket "$(promptd socket)"`).
    Socket(SocketArg),
    /// Print a running daemon's state: version, uptime, listeners, providers, cache.
    Status(StatusArgs),
    /// Inspect or empty the completion cache of a running daemon.
    #[command(subcommand)]
    Cache(CacheCommand),
    /// Inspect the deployed prompts of a running daemon.
    #[command(subcommand)]
    Deployments(DeploymentsCommand),
    /// The log spool of a running daemon: what waits, what was shipped; flush now.
    #[command(subcommand)]
    Logs(LogsCommand),
    /// Install the systemd units (and a default config if there is none) for this binary.
    InstallUnits(InstallArgs),
}

#[derive(Debug, Args)]
pub struct InstallArgs {
    /// User units in ~/.config/systemd/user (for `systemctl --user`) instead of system units.
    #[arg(long)]
    pub user: bool,
    /// Install under this root instead of / (for packaging).
    #[arg(long, default_value = "/")]
    pub prefix: PathBuf,
    /// The binary the units run (default: this one).
    #[arg(long)]
    pub binary: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub target: SocketArg,
    /// Print the raw JSON of `GET /status`.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum DeploymentsCommand {
    /// Every deployment: id, version (`-`: none serving), status, whether it serves, source file,
    /// last error.
    List(SocketArg),
    /// One deployment as `POST /deployed-prompt` answers it (templates unfilled).
    Show {
        #[command(flatten)]
        target: SocketArg,
        id: String,
    },
    /// One deployment's messages with the inputs filled in.
    Render {
        #[command(flatten)]
        target: SocketArg,
        id: String,
        /// A template input, `name=value` (repeatable).
        #[arg(long = "input", short = 'i', value_parser = parse_input)]
        inputs: Vec<(String, String)>,
    },
}

#[derive(Debug, Subcommand)]
pub enum LogsCommand {
    /// Whether shipping is healthy (or failing since when), the last record sent and the last
    /// error with their times; records waiting, bytes on disk, oldest record's age, sent,
    /// rejected, dropped.
    Status(SocketArg),
    /// Commit the spool and ship to the collector now.
    Flush(SocketArg),
}

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Print entries, bytes, hits, misses, stale answers, evictions.
    Stats(SocketArg),
    /// Delete every entry, or only the entry KEY (as sent in `x-promptd-cache-key`).
    Purge {
        #[command(flatten)]
        target: SocketArg,
        /// One entry's key (64 hex digits).
        key: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct ConfigArg {
    /// Config file (TOML). Without it the embedded default is used.
    #[arg(long, short, env = "PROMPTD_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Also fail (exit 1) when a prompt file would be refused; by default those are warnings,
    /// since the daemon keeps serving the other deployments (and a file's last good version).
    #[arg(long)]
    pub strict: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Unix socket path (overrides `socket`).
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// Loopback TCP listener, e.g. 127.0.0.1:8787 (overrides `tcp`).
    #[arg(long)]
    pub tcp: Option<String>,
    /// State directory (overrides `state_dir`).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Prompts directory (overrides `prompts_dir`).
    #[arg(long)]
    pub prompts_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SocketArg {
    /// Socket of the daemon. Default: PROMPTD_SOCKET, else `socket` of --config, else the
    /// default socket path.
    #[arg(long, env = "PROMPTD_SOCKET")]
    pub socket: Option<PathBuf>,
    /// Read the socket path from this config file.
    #[arg(long, short, env = "PROMPTD_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CompleteArgs {
    #[command(flatten)]
    pub target: SocketArg,
    /// Model, e.g. gpt-4o-mini (required unless --deployment).
    #[arg(long, short)]
    pub model: Option<String>,
    /// Provider name as configured, e.g. openai (required unless --deployment).
    #[arg(long, short)]
    pub provider: Option<String>,
    /// A deployed prompt to use instead of --model/--provider.
    #[arg(long, short)]
    pub deployment: Option<String>,
    /// A template input, `name=value` (repeatable).
    #[arg(long = "input", short = 'i', value_parser = parse_input)]
    pub inputs: Vec<(String, String)>,
    /// A system message before the user's text.
    #[arg(long)]
    pub system: Option<String>,
    /// Sampling temperature.
    #[arg(long)]
    pub temp: Option<f64>,
    /// Maximum tokens of the answer.
    #[arg(long)]
    pub max_tokens: Option<u32>,
    /// Print the whole JSON response instead of the answer text (complete only).
    #[arg(long)]
    pub json: bool,
    /// Neither answer from the cache nor store the answer (`cache: false`).
    #[arg(long)]
    pub no_cache: bool,
    /// The user's message; `-` or nothing reads standard input (unless --deployment), less one
    /// trailing line end.
    pub text: Option<String>,
}

fn parse_input(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("`{s}` is not name=value"))
}
