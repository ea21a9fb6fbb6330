//! Default locations of the socket, the state and the prompts, following the XDG base
//! directories for a user daemon and the FHS for root (what systemd's `RuntimeDirectory=`,
//! `StateDirectory=` and `ConfigurationDirectory=` create).

use std::env;
use std::path::PathBuf;

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn env_dir(name: &str) -> Option<PathBuf> {
    env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

fn home_dir(rest: &str) -> Option<PathBuf> {
    env_dir("HOME").map(|h| h.join(rest))
}

/// The user's configuration directory, where systemd's `%E` points for user units:
/// `$XDG_CONFIG_HOME`, else `~/.config`.
pub fn user_config_home() -> Option<PathBuf> {
    env_dir("XDG_CONFIG_HOME").or_else(|| home_dir(".config"))
}

/// `$XDG_RUNTIME_DIR/promptd.sock`, else `/run/promptd/promptd.sock` for root, else a
/// per-user directory under `/tmp`.
pub fn default_socket() -> PathBuf {
    if let Some(dir) = env_dir("XDG_RUNTIME_DIR") {
        return dir.join("promptd.sock");
    }
    if is_root() {
        return PathBuf::from("/run/promptd/promptd.sock");
    }
    let uid = nix::unistd::geteuid().as_raw();
    env::temp_dir().join(format!("promptd-{uid}/promptd.sock"))
}

/// `$XDG_STATE_HOME/promptd`, else `/var/lib/promptd` for root, else `~/.local/state/promptd`.
pub fn default_state_dir() -> PathBuf {
    if let Some(dir) = env_dir("XDG_STATE_HOME") {
        return dir.join("promptd");
    }
    if is_root() {
        return PathBuf::from("/var/lib/promptd");
    }
    home_dir(".local/state/promptd").unwrap_or_else(|| PathBuf::from("/var/lib/promptd"))
}

/// `$XDG_CONFIG_HOME/promptd/prompts`, else `/etc/promptd/prompts` for root, else
/// `~/.config/promptd/prompts`.
pub fn default_prompts_dir() -> PathBuf {
    if let Some(dir) = env_dir("XDG_CONFIG_HOME") {
        return dir.join("promptd/prompts");
    }
    if is_root() {
        return PathBuf::from("/etc/promptd/prompts");
    }
    home_dir(".config/promptd/prompts").unwrap_or_else(|| PathBuf::from("/etc/promptd/prompts"))
}
