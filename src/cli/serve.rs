//! `promptd serve`: load the config, take the socket-activated listeners or bind its own, and
//! run the daemon until SIGTERM or SIGINT; SIGHUP reloads the config.

use std::path::PathBuf;

use anyhow::Context;

use promptd::config::{Config, Overrides};
use promptd::server::Listeners;

use super::args::ServeArgs;

pub(super) fn serve(args: ServeArgs) -> anyhow::Result<i32> {
    let overrides = Overrides {
        socket: args.socket,
        tcp: args.tcp,
        state_dir: args.state_dir,
        prompts_dir: args.prompts_dir,
    };
    let config_path = args.config.config.clone();
    let config = Config::load(config_path.as_deref(), &overrides)?;
    promptd::telemetry::init(&config.log_level);
    // Before any thread exists: taking the sockets clears LISTEN_FDS from the environment.
    let activated = promptd::server::systemd::take_activated_sockets()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        promptd::server::prepare_state_dir(&config.state_dir)?;
        let listeners = match activated {
            Some(sockets) => {
                let listeners = Listeners::from_activated(sockets)?;
                listeners.warn_unused_config(&config);
                listeners
            }
            None => Listeners::bind(&config).await?,
        };
        let (reload_tx, reloads) = tokio::sync::mpsc::channel(1);
        tokio::spawn(reload_on_sighup(config_path, overrides, reload_tx));
        promptd::server::run_with_reload(config, listeners, shutdown_signal(), reloads).await
    })?;
    Ok(0)
}

/// On every SIGHUP, read the config again (same file, same flags) and hand it to the server;
/// a config that does not load is reported and the running one kept.
async fn reload_on_sighup(
    path: Option<PathBuf>,
    overrides: Overrides,
    reloads: tokio::sync::mpsc::Sender<Config>,
) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::error!("cannot install the SIGHUP handler; reload by restarting");
        return;
    };
    while hup.recv().await.is_some() {
        tracing::info!("SIGHUP received: reloading the config");
        promptd::server::systemd::reloading();
        match Config::load(path.as_deref(), &overrides) {
            Ok(config) => {
                if reloads.send(config).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "config reload failed; keeping the running config");
                promptd::server::systemd::ready(&format!("reload failed: {e}"));
            }
        }
    }
}

/// Resolves on the first SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop promptd with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
}
