//! `promptd serve`: load the config, set up logging, take the socket-activated listeners (before
//! any thread exists), and hand everything to the daemon ([`promptd::daemon::serve`]), which
//! runs until SIGTERM or SIGINT and reloads on SIGHUP.

use anyhow::Context;

use promptd::config::{Config, Overrides};
use promptd::daemon::ConfigSource;

use super::args::ServeArgs;

pub(super) fn serve(args: ServeArgs) -> anyhow::Result<i32> {
    let source = ConfigSource {
        path: args.config.config.clone(),
        overrides: Overrides {
            socket: args.socket,
            tcp: args.tcp,
            state_dir: args.state_dir,
            prompts_dir: args.prompts_dir,
        },
    };
    let config = Config::load(source.path.as_deref(), &source.overrides)?;
    promptd::telemetry::init(&config.log_level);
    // Before any thread exists: taking the sockets clears LISTEN_FDS from the environment.
    let activated = promptd::server::systemd::take_activated_sockets()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(promptd::daemon::serve(config, activated, source))?;
    Ok(0)
}
