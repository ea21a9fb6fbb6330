//! Command-line interface: `serve` runs the daemon; the other subcommands are clients of a
//! running daemon (over its socket) or check a config without starting.
//!
//! - [`args`] — the clap types: [`Cli`], its [`Command`]s, their argument structs and
//!   subcommand enums.
//! - [`serve`] — `promptd serve`: the daemon in the foreground, SIGHUP reloads, SIGTERM/SIGINT.
//! - [`setup`] — `install-units` and `validate`, which need no running daemon.
//! - [`client`] — the subcommands that ask a running daemon over its socket: `complete`,
//!   `stream`, `health`, `socket`, `status`, `cache`, `deployments`, `logs`.
//! - [`render`] — their text: the deployment table, counts, ages, the shipping line, error
//!   messages.
//!
//! [`run`] dispatches a parsed [`Command`] to one of them; `default-config` is answered here.

use anyhow::Context;

use promptd::config::DEFAULT_CONFIG_TOML;

mod args;
mod client;
mod render;
mod serve;
mod setup;

pub use args::{Cli, Command};
use client::{cache, complete, deployments, health, logs, socket_path, status};
use serve::serve;
use setup::{install_units, validate};

/// Run a parsed command; returns the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Validate(args) => validate(args),
        Command::DefaultConfig => {
            print!("{DEFAULT_CONFIG_TOML}");
            Ok(0)
        }
        Command::Complete(args) => runtime()?.block_on(complete(args, false)),
        Command::Stream(args) => runtime()?.block_on(complete(args, true)),
        Command::Health(args) => runtime()?.block_on(health(args)),
        Command::Socket(args) => {
            println!("{}", socket_path(&args)?.display());
            Ok(0)
        }
        Command::Status(args) => runtime()?.block_on(status(args)),
        Command::Cache(command) => runtime()?.block_on(cache(command)),
        Command::Deployments(command) => runtime()?.block_on(deployments(command)),
        Command::Logs(command) => runtime()?.block_on(logs(command)),
        Command::InstallUnits(args) => install_units(args),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}
