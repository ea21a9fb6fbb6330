//! The process's signals: SIGTERM/SIGINT stop the daemon; SIGHUP reads the config again.

use std::path::PathBuf;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use crate::config::{Config, Overrides};
use crate::server::systemd;

/// Where the config came from: read again, the same way, on SIGHUP.
#[derive(Debug, Clone, Default)]
pub struct ConfigSource {
    /// The config file; `None` for the embedded default.
    pub path: Option<PathBuf>,
    /// The command line's flags, which beat the file.
    pub overrides: Overrides,
}

/// Resolves at the first SIGTERM or SIGINT. The handlers are installed when this is called,
/// not when the future is first polled: the daemon serves before its main loop first waits on
/// it, and a SIGTERM in between must stop it cleanly, not kill it by the default action.
/// Call it within the runtime.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    let handlers = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    );
    async move {
        let (Ok(mut term), Ok(mut int)) = handlers else {
            tracing::error!("cannot install signal handlers; stop promptd with SIGKILL");
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
    }
}

/// On every SIGHUP, read the config again from `source` and hand it to the daemon; a config
/// that does not load is reported and the running one kept.
pub async fn reload_on_sighup(source: ConfigSource, reloads: mpsc::Sender<Config>) {
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::error!("cannot install the SIGHUP handler; reload by restarting");
        return;
    };
    while hup.recv().await.is_some() {
        tracing::info!("SIGHUP received: reloading the config");
        systemd::reloading();
        match Config::load(source.path.as_deref(), &source.overrides) {
            Ok(config) => {
                if reloads.send(config).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "config reload failed; keeping the running config");
                systemd::ready(&format!("reload failed: {e}"));
            }
        }
    }
}
