//! Binding the listeners: the Unix socket (parent directory created, a stale socket file from a
//! dead daemon replaced, a live daemon refused, permissions set to `socket_mode`) and the
//! optional loopback TCP listener.

use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::net::{TcpListener, UnixListener};

use super::systemd::ActivatedSockets;
use super::StartupError;
use crate::config::Config;

/// The bound listeners a daemon serves on.
#[derive(Debug)]
pub struct Listeners {
    pub unix: UnixListener,
    /// Path of a Unix socket promptd bound itself, removed again at clean shutdown (`None` for
    /// a socket passed by systemd, which owns it).
    pub unix_path: Option<PathBuf>,
    pub tcp: Option<TcpListener>,
}

impl Listeners {
    /// Bind everything the config asks for. Must run inside a Tokio runtime.
    pub async fn bind(config: &Config) -> Result<Listeners, StartupError> {
        let unix = bind_unix(&config.socket, config.socket_mode)?;
        let tcp = match config.tcp {
            Some(addr) => {
                Some(
                    TcpListener::bind(addr)
                        .await
                        .map_err(|source| StartupError::Bind {
                            what: format!("tcp {addr}"),
                            source,
                        })?,
                )
            }
            None => None,
        };
        Ok(Listeners {
            unix,
            unix_path: Some(config.socket.clone()),
            tcp,
        })
    }

    /// Serve on the sockets systemd passed instead of binding. Must run inside a Tokio runtime.
    pub fn from_activated(sockets: ActivatedSockets) -> Result<Listeners, StartupError> {
        let err = |what: &str, source: io::Error| StartupError::Bind {
            what: format!("socket-activated {what}"),
            source,
        };
        let unix = sockets
            .unix
            .ok_or_else(|| err("unix socket", io::Error::other("none was passed")))?;
        unix.set_nonblocking(true)
            .map_err(|e| err("unix socket", e))?;
        let unix = UnixListener::from_std(unix).map_err(|e| err("unix socket", e))?;
        let tcp = match sockets.tcp {
            Some(tcp) => {
                tcp.set_nonblocking(true)
                    .map_err(|e| err("tcp socket", e))?;
                Some(TcpListener::from_std(tcp).map_err(|e| err("tcp socket", e))?)
            }
            None => None,
        };
        Ok(Listeners {
            unix,
            unix_path: None,
            tcp,
        })
    }

    /// Under socket activation the unit's `ListenStream=` and `SocketMode=` decide where and how
    /// promptd listens; say so when the config asks for something else, rather than ignore
    /// `socket`, `tcp` or `socket_mode` without a word.
    pub fn warn_unused_config(&self, config: &Config) {
        let unix_path = self
            .unix
            .local_addr()
            .ok()
            .and_then(|a| a.as_pathname().map(Path::to_owned));
        let set = config.listen_keys_set;
        if let Some(path) = &unix_path {
            if set.socket && *path != config.socket {
                tracing::warn!(
                    activated = %path.display(),
                    configured = %config.socket.display(),
                    "socket activation: serving on the socket systemd passed; the config's `socket` is not used"
                );
            }
            if let Ok(meta) = std::fs::metadata(path) {
                let mode = meta.permissions().mode() & 0o7777;
                if set.socket_mode && mode != config.socket_mode {
                    tracing::warn!(
                        mode = %format!("{mode:04o}"),
                        configured = %format!("{:04o}", config.socket_mode),
                        "socket activation: the socket's mode is the unit's SocketMode=; the config's `socket_mode` is not applied"
                    );
                }
            }
        }
        let activated_tcp = self.tcp.as_ref().and_then(|t| t.local_addr().ok());
        if config.tcp.is_some() && config.tcp != activated_tcp {
            tracing::warn!(
                activated = ?activated_tcp,
                configured = ?config.tcp,
                "socket activation: TCP comes from the unit's ListenStream= only; the config's `tcp` is not used"
            );
        }
    }

    /// Where the listeners are, for logs and status.
    pub fn describe(&self) -> String {
        let unix = self
            .unix
            .local_addr()
            .ok()
            .and_then(|a| a.as_pathname().map(|p| p.display().to_string()))
            .unwrap_or_else(|| "?".into());
        match self.tcp.as_ref().and_then(|t| t.local_addr().ok()) {
            Some(tcp) => format!("unix {unix}, tcp {tcp}"),
            None => format!("unix {unix}"),
        }
    }
}

/// Bind a Unix socket at `path` with permissions `mode`.
pub fn bind_unix(path: &Path, mode: u32) -> Result<UnixListener, StartupError> {
    let bind_err = |source: io::Error| StartupError::Bind {
        what: format!("unix socket {}", path.display()),
        source,
    };
    // The directory is made when missing, and refused when another user could swap the socket.
    super::socket_dir::prepare(path)?;
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            match std::os::unix::net::UnixStream::connect(path) {
                Ok(_) => return Err(StartupError::AlreadyRunning(path.to_owned())),
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    tracing::info!(path = %path.display(), "replacing stale socket file of a daemon that is gone");
                    std::fs::remove_file(path).map_err(bind_err)?;
                }
                Err(e) => return Err(bind_err(e)),
            }
        }
        Ok(_) => return Err(StartupError::NotASocket(path.to_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(bind_err(e)),
    }
    let listener = UnixListener::bind(path).map_err(bind_err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(bind_err)?;
    Ok(listener)
}
