//! The subcommands that work without a daemon: `promptd install-units` writes the systemd
//! units (and a default config if there is none); `promptd validate` checks a config and its
//! prompts directory without starting.

use anyhow::Context;

use promptd::config::{Config, Overrides};

use super::args::{InstallArgs, ValidateArgs};
use super::render::count;

pub(super) fn install_units(args: InstallArgs) -> anyhow::Result<i32> {
    let binary = match args.binary {
        Some(b) => b,
        None => std::env::current_exe().context("cannot find this binary's path; give --binary")?,
    };
    let opts = promptd::install::InstallOptions {
        user: args.user,
        prefix: args.prefix,
        binary,
        config_home: promptd::config::user_config_home(),
    };
    for file in promptd::install::install_units(&opts)? {
        let note = if file.kept_existing {
            " (exists, kept)"
        } else {
            ""
        };
        println!("{}{note}", file.path.display());
    }
    if args.user {
        println!(
            "next: systemctl --user daemon-reload && systemctl --user enable --now promptd.socket"
        );
    } else {
        println!("next: systemd-sysusers && systemctl daemon-reload && systemctl enable --now promptd.socket");
    }
    Ok(0)
}

pub(super) fn validate(args: ValidateArgs) -> anyhow::Result<i32> {
    let config = Config::load(args.config.config.as_deref(), &Overrides::default())?;
    let origin = args
        .config
        .config
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "embedded default config".to_owned());
    println!(
        "{origin}: ok (socket {}, {}: {})",
        config.socket.display(),
        count(config.providers.len() as u64, "provider", "providers"),
        config.provider_names().join(", ")
    );
    let dir = &config.prompts_dir;
    let bad = match promptd::deployments::validate_dir(dir, &config.provider_names()) {
        Ok(v) => {
            println!(
                "{}: {}, {} refused, {}",
                dir.display(),
                count(v.files as u64, "prompt file", "prompt files"),
                v.errors.len() - v.unreadable_folders,
                count(
                    v.unreadable_folders as u64,
                    "unreadable folder",
                    "unreadable folders"
                )
            );
            for e in &v.errors {
                eprintln!("warning: {e}");
            }
            !v.errors.is_empty()
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!("{}: does not exist (no deployed prompts)", dir.display());
            false
        }
        Err(e) => {
            eprintln!("warning: prompts directory {}: {e}", dir.display());
            true
        }
    };
    Ok(if bad && args.strict { 1 } else { 0 })
}
