//! `promptd install-units`: put the systemd units (system or user), the sysusers entry and a
//! default config in place, with `ExecStart=` pointing at this binary.
//!
//! The unit files are the ones under `systemd/` in the repository, embedded at build time.
//! Existing config files are never overwritten; unit files are (they are ours).

use std::io;
use std::path::{Path, PathBuf};

use crate::config::DEFAULT_CONFIG_TOML;

const SYSTEM_SERVICE: &str = include_str!("../systemd/promptd.service");
const SYSTEM_SOCKET: &str = include_str!("../systemd/promptd.socket");
const SYSUSERS: &str = include_str!("../systemd/promptd.sysusers");
const USER_SERVICE: &str = include_str!("../systemd/user/promptd.service");
const USER_SOCKET: &str = include_str!("../systemd/user/promptd.socket");

/// Where and what to install.
#[derive(Debug, Clone)]
pub struct InstallOptions {
    /// User units (`$XDG_CONFIG_HOME/systemd/user`) instead of system units.
    pub user: bool,
    /// Root prepended to every path (packaging, tests); `/` normally.
    pub prefix: PathBuf,
    /// The promptd binary the units run.
    pub binary: PathBuf,
    /// The user's configuration directory (`$XDG_CONFIG_HOME`, else `~/.config`), for user
    /// units: systemd reads user units from its `systemd/user`, and the unit's `%E` is it.
    pub config_home: Option<PathBuf>,
}

/// One file written or kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    pub path: PathBuf,
    pub kept_existing: bool,
}

fn under(prefix: &Path, path: &Path) -> PathBuf {
    prefix.join(path.strip_prefix("/").unwrap_or(path))
}

/// Install the units; returns every file written (or kept).
pub fn install_units(opts: &InstallOptions) -> io::Result<Vec<Installed>> {
    let binary = opts.binary.display().to_string();
    let mut files: Vec<(PathBuf, String, bool)> = Vec::new();
    if opts.user {
        let config_home = opts.config_home.clone().ok_or_else(|| {
            io::Error::other(
                "neither XDG_CONFIG_HOME nor HOME is set; cannot find the user's systemd/user",
            )
        })?;
        let units = config_home.join("systemd/user");
        let config = config_home.join("promptd/promptd.toml");
        files.push((
            units.join("promptd.service"),
            USER_SERVICE.replace("%h/.cargo/bin/promptd", &binary),
            true,
        ));
        files.push((units.join("promptd.socket"), USER_SOCKET.to_owned(), true));
        files.push((config, DEFAULT_CONFIG_TOML.to_owned(), false));
    } else {
        let units = Path::new("/etc/systemd/system");
        files.push((
            units.join("promptd.service"),
            SYSTEM_SERVICE.replace("/usr/local/bin/promptd", &binary),
            true,
        ));
        files.push((units.join("promptd.socket"), SYSTEM_SOCKET.to_owned(), true));
        files.push((
            PathBuf::from("/etc/sysusers.d/promptd.conf"),
            SYSUSERS.to_owned(),
            true,
        ));
        files.push((
            PathBuf::from("/etc/promptd/promptd.toml"),
            system_config(),
            false,
        ));
    }
    let mut done = Vec::new();
    for (path, text, overwrite) in files {
        let path = under(&opts.prefix, &path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        if !overwrite && path.exists() {
            done.push(Installed {
                path,
                kept_existing: true,
            });
            continue;
        }
        std::fs::write(&path, text)?;
        done.push(Installed {
            path,
            kept_existing: false,
        });
    }
    Ok(done)
}

/// The default config with the paths systemd's directories give the service.
fn system_config() -> String {
    format!(
        "# promptd's config for the system service (see `promptd default-config` for every key).\n\
         socket = \"/run/promptd/promptd.sock\"\n\
         state_dir = \"/var/lib/promptd\"\n\
         prompts_dir = \"/etc/promptd/prompts\"\n\
         # uids of the programs that may use the socket (besides promptd itself and root):\n\
         # allowed_uids = [1000]\n\n{}",
        DEFAULT_CONFIG_TOML
            .lines()
            .filter(|l| !l.starts_with("allowed_uids"))
            .collect::<Vec<_>>()
            .join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_units_point_at_the_binary_and_config_is_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let opts = InstallOptions {
            user: false,
            prefix: dir.path().to_owned(),
            binary: PathBuf::from("/opt/promptd/bin/promptd"),
            config_home: None,
        };
        let files = install_units(&opts).expect("install");
        assert_eq!(files.len(), 4);
        let service =
            std::fs::read_to_string(dir.path().join("etc/systemd/system/promptd.service"))
                .expect("service");
        assert!(service.contains("ExecStart=/opt/promptd/bin/promptd serve"));
        assert!(!service.contains("/usr/local/bin"));
        let config_path = dir.path().join("etc/promptd/promptd.toml");
        let config = std::fs::read_to_string(&config_path).expect("config");
        crate::config::Config::from_toml(&config, "installed", &Default::default())
            .expect("valid config");
        std::fs::write(&config_path, "# mine").expect("edit");
        let again = install_units(&opts).expect("install again");
        assert!(again
            .iter()
            .any(|f| f.path == config_path && f.kept_existing));
        assert_eq!(
            std::fs::read_to_string(&config_path).expect("config"),
            "# mine"
        );
    }

    #[test]
    fn user_units_go_to_the_users_config_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let opts = InstallOptions {
            user: true,
            prefix: PathBuf::from("/"),
            binary: PathBuf::from("/home/u/.cargo/bin/promptd"),
            config_home: Some(dir.path().join("xdg-config")),
        };
        install_units(&opts).expect("install");
        let service =
            std::fs::read_to_string(dir.path().join("xdg-config/systemd/user/promptd.service"))
                .expect("service");
        assert!(service.contains("ExecStart=/home/u/.cargo/bin/promptd serve"));
        assert!(dir.path().join("xdg-config/promptd/promptd.toml").exists());
    }
}
