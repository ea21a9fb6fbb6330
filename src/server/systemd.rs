//! systemd integration: socket activation (`LISTEN_FDS`, `LISTEN_FDNAMES`) and the notify
//! protocol (`READY=1`, `STATUS=`, `WATCHDOG=1`, `RELOADING=1`, `STOPPING=1`).
//!
//! Every notification is a no-op when `NOTIFY_SOCKET` is not set, so the daemon behaves the
//! same outside systemd. Activated sockets are taken before the async runtime starts (taking
//! them clears `LISTEN_FDS` from the environment, which must not race other threads).

use std::os::unix::net::UnixListener;
use std::time::Duration;

use sd_notify::NotifyState;

use super::StartupError;

/// Sockets passed by the service manager.
#[derive(Debug, Default)]
pub struct ActivatedSockets {
    pub unix: Option<UnixListener>,
    pub tcp: Option<std::net::TcpListener>,
}

/// Take the sockets systemd passed, by `LISTEN_FDNAMES` (`unix`, `tcp`) or else by their type.
/// `Ok(None)` when the process was not socket-activated.
pub fn take_activated_sockets() -> Result<Option<ActivatedSockets>, StartupError> {
    let names: Vec<String> = std::env::var("LISTEN_FDNAMES")
        .map(|v| v.split(':').map(str::to_owned).collect())
        .unwrap_or_default();
    let mut fds = listenfd::ListenFd::from_env();
    if fds.len() == 0 {
        return Ok(None);
    }
    let err = |what: String, source: std::io::Error| StartupError::Bind {
        what: format!("socket-activated {what}"),
        source,
    };
    let mut sockets = ActivatedSockets::default();
    for idx in 0..fds.len() {
        let name = names.get(idx).map(String::as_str).unwrap_or("");
        let as_tcp = name == "tcp";
        if !as_tcp {
            match fds.take_unix_listener(idx) {
                Ok(Some(listener)) => {
                    if sockets.unix.is_some() {
                        tracing::warn!(
                            fd = idx + 3,
                            "more than one Unix socket passed; using the first"
                        );
                    } else {
                        sockets.unix = Some(listener);
                    }
                    continue;
                }
                Ok(None) => continue,
                Err(e) if name == "unix" => return Err(err(format!("fd {} (unix)", idx + 3), e)),
                Err(_) => {}
            }
        }
        match fds.take_tcp_listener(idx) {
            Ok(Some(listener)) => sockets.tcp = Some(listener),
            Ok(None) => {}
            Err(e) => return Err(err(format!("fd {} ({name})", idx + 3), e)),
        }
    }
    if sockets.unix.is_none() {
        return Err(StartupError::Bind {
            what: "socket activation".into(),
            source: std::io::Error::other(
                "no Unix stream socket among the passed file descriptors",
            ),
        });
    }
    Ok(Some(sockets))
}

fn notify(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!(error = %e, "sd_notify failed");
    }
}

/// Startup finished: the store, the prompts and the listeners are ready.
pub fn ready(status: &str) {
    notify(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A one-line summary for `systemctl status`.
pub fn status(status: &str) {
    notify(&[NotifyState::Status(status)]);
}

/// A reload begins; [`ready`] ends it.
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => notify(&[NotifyState::Reloading, now]),
        Err(_) => notify(&[NotifyState::Reloading]),
    }
}

pub fn stopping() {
    notify(&[
        NotifyState::Stopping,
        NotifyState::Status("shutting down: finishing in-flight requests"),
    ]);
}

pub fn watchdog() {
    notify(&[NotifyState::Watchdog]);
}

/// How often to ping the watchdog: half of `WATCHDOG_USEC`, when the watchdog is on for us.
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled().map(|d| d / 2)
}
