//! Whether the directory of the Unix socket can be trusted, for the daemon that binds there and
//! the CLI that connects: a directory another local user created or can write lets that user
//! swap the socket, read every prompt sent to it and forge the answers (as ssh refuses a key
//! file others can touch).
//!
//! A directory is trusted when
//! - its owner is the caller, root, or anyone when only root could have created it there (its
//!   parent is root's and writable by nobody else: `/run/promptd` of a system service), and
//! - no one but its owner can write in it, unless it is sticky (`/tmp`: others cannot remove or
//!   rename what is not theirs) — then the socket file itself must be the caller's or root's.
//!
//! A symbolic link as the directory is followed only when the link is the caller's or root's.

use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why a socket directory is refused; the message says how to fix it.
#[derive(Debug, thiserror::Error)]
#[error("socket directory {} cannot be trusted: {reason}; {fix}", path.display())]
pub struct UnsafeSocketDir {
    pub path: PathBuf,
    pub reason: String,
    pub fix: String,
}

const STICKY: u32 = 0o1000;

/// The directory of `socket`, created when missing (mode 0700 inside a directory others can
/// write, such as `/tmp`), then checked ([`check`]).
pub fn prepare(socket: &Path) -> Result<(), UnsafeSocketDir> {
    let Some(dir) = parent(socket) else {
        return Ok(());
    };
    if std::fs::symlink_metadata(dir).is_err() {
        let shared_parent = parent(dir)
            .and_then(|p| std::fs::metadata(p).ok())
            .is_some_and(|m| m.mode() & 0o002 != 0);
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        if shared_parent {
            builder.mode(0o700);
        }
        // A failure here (no permission, a race) is told by the check or by bind.
        let _ = builder.create(dir);
    }
    check(socket)
}

/// Check the directory of `socket` for the current user (see the module header).
pub fn check(socket: &Path) -> Result<(), UnsafeSocketDir> {
    let Some(dir) = parent(socket) else {
        return Ok(());
    };
    let me = nix::unistd::geteuid().as_raw();
    let refuse = |reason: String, fix: String| UnsafeSocketDir {
        path: dir.to_owned(),
        reason,
        fix,
    };
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(meta) => meta,
        // Missing: nothing to trust or fear yet; connecting or binding says what is wrong.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(_) => return Ok(()),
    };
    let meta = if meta.file_type().is_symlink() {
        if !trusted_owner(meta.uid(), me) {
            return Err(refuse(
                format!("it is a symbolic link owned by uid {}", meta.uid()),
                remove_fix(dir),
            ));
        }
        match std::fs::metadata(dir) {
            Ok(meta) => meta,
            Err(_) => return Ok(()),
        }
    } else {
        meta
    };
    if !meta.is_dir() {
        return Ok(());
    }
    let owner = meta.uid();
    if !trusted_owner(owner, me) && !root_made(dir) {
        return Err(refuse(
            format!(
                "it belongs to uid {owner}, not to you (uid {me}) or root: another user may have \
                 made it to intercept requests"
            ),
            remove_fix(dir),
        ));
    }
    let mode = meta.permissions().mode();
    if mode & 0o022 != 0 {
        if mode & STICKY == 0 {
            return Err(refuse(
                format!(
                    "other users can write in it (mode {:04o}) and could replace the socket",
                    mode & 0o7777
                ),
                format!("run `chmod go-w {}`", dir.display()),
            ));
        }
        // A shared sticky directory: the socket in it must be ours (or root's).
        if let Ok(sock) = std::fs::symlink_metadata(socket) {
            if !trusted_owner(sock.uid(), me) {
                return Err(refuse(
                    format!(
                        "the socket {} in this shared directory belongs to uid {}",
                        socket.display(),
                        sock.uid()
                    ),
                    "choose a `socket` in a directory of your own (such as $XDG_RUNTIME_DIR)"
                        .to_owned(),
                ));
            }
        }
    }
    Ok(())
}

fn parent(socket: &Path) -> Option<&Path> {
    socket.parent().filter(|p| !p.as_os_str().is_empty())
}

fn trusted_owner(owner: u32, me: u32) -> bool {
    owner == me || owner == 0
}

/// Whether only root could have created `dir`: its parent is root's and no one else can write
/// in it (`/run`, `/var/lib`).
fn root_made(dir: &Path) -> bool {
    parent(dir)
        .and_then(|p| std::fs::metadata(p).ok())
        .is_some_and(|m| m.uid() == 0 && m.permissions().mode() & 0o022 == 0)
}

fn remove_fix(dir: &Path) -> String {
    format!(
        "remove it (`rm -r {}`, as its owner or root) and start promptd again, or set \
         XDG_RUNTIME_DIR or `socket` to a directory of your own",
        dir.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set_mode(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    #[test]
    fn a_directory_others_can_write_is_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("sock");
        std::fs::create_dir(&dir).expect("mkdir");
        let socket = dir.join("promptd.sock");
        set_mode(&dir, 0o700);
        assert!(check(&socket).is_ok());
        set_mode(&dir, 0o777);
        let err = check(&socket).expect_err("0777").to_string();
        assert!(
            err.contains("mode 0777") && err.contains("chmod go-w"),
            "{err}"
        );
        set_mode(&dir, 0o775);
        assert!(check(&socket).is_err(), "group-writable");
        set_mode(&dir, 0o1777);
        assert!(
            check(&socket).is_ok(),
            "sticky, and the socket is not there yet"
        );
    }

    #[test]
    fn a_missing_directory_is_made_private_inside_a_shared_one() {
        let tmp = tempfile::tempdir().expect("tempdir");
        set_mode(tmp.path(), 0o1777);
        let socket = tmp.path().join("promptd-1/promptd.sock");
        prepare(&socket).expect("prepared");
        let mode = std::fs::metadata(tmp.path().join("promptd-1"))
            .expect("made")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn a_directory_of_another_user_is_refused_unless_root_made_it() {
        if !nix::unistd::geteuid().is_root() {
            return; // Only root can give a directory to another user.
        }
        let tmp = tempfile::tempdir().expect("tempdir");
        let nobody = nix::unistd::Uid::from_raw(65534);
        // Inside a shared directory (like /tmp), anyone could have made it.
        set_mode(tmp.path(), 0o1777);
        let dir = tmp.path().join("promptd-0");
        std::fs::create_dir(&dir).expect("mkdir");
        nix::unistd::chown(&dir, Some(nobody), None).expect("chown");
        let err = check(&dir.join("promptd.sock"))
            .expect_err("squatted")
            .to_string();
        assert!(err.contains("uid 65534") && err.contains("rm -r"), "{err}");
        // Inside root's own directory, only root could have given it away (RuntimeDirectory=).
        set_mode(tmp.path(), 0o755);
        assert!(check(&dir.join("promptd.sock")).is_ok());
    }
}
