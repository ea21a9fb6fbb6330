//! Binding the listeners: the Unix socket (parent directory created, a stale socket file from a
//! dead daemon replaced, a live daemon refused, permissions set to `socket_mode`) and the
//! optional loopback TCP listener.

use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::net::{TcpListener, UnixListener};

use super::StartupError;
use crate::config::Config;

/// The bound listeners a daemon serves on.
#[derive(Debug)]
pub struct Listeners {
    pub unix: UnixListener,
    /// Path of the Unix socket, removed again at clean shutdown.
    pub unix_path: PathBuf,
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
            unix_path: config.socket.clone(),
            tcp,
        })
    }
}

/// Bind a Unix socket at `path` with permissions `mode`.
pub fn bind_unix(path: &Path, mode: u32) -> Result<UnixListener, StartupError> {
    let bind_err = |source: io::Error| StartupError::Bind {
        what: format!("unix socket {}", path.display()),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(bind_err)?;
    }
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
