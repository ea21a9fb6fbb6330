//! A folder that cannot be read, also when the tests run as root: [`Locked`] sets its mode to
//! 000, and [`Locked::unprivileged`] runs code on a thread whose file checks are an ordinary
//! user's.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::unistd::{geteuid, setfsuid, Uid};

use crate::Fixture;

/// A folder with mode 000 for as long as this lives.
pub struct Locked {
    folder: PathBuf,
}

/// Whom file checks run as in [`Locked::unprivileged`] when the tests run as root.
const NOBODY: u32 = 65534;

impl Locked {
    pub fn new(fx: &Fixture, folder: &Path) -> Locked {
        // An ordinary user must reach the fixture's files (tempdirs are created 0700).
        std::fs::set_permissions(fx.dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("open the fixture");
        std::fs::set_permissions(folder, std::fs::Permissions::from_mode(0o000))
            .expect("lock the folder");
        Locked {
            folder: folder.to_owned(),
        }
    }

    /// Run `f` on a thread whose file checks are an ordinary user's, for whom the folder is
    /// unreadable also when the tests run as root: the thread's fsuid becomes [`NOBODY`],
    /// which drops its CAP_DAC_OVERRIDE (and leaves every other thread as it is). `None`, with
    /// the reason printed, when the folder can still be read (the test is then skipped).
    /// Threads started inside inherit the fsuid: a tokio runtime built in `f` runs its
    /// workers and blocking pool unprivileged, and so does `notify`'s thread.
    pub fn unprivileged<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Option<T> {
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    if geteuid().is_root() {
                        setfsuid(Uid::from_raw(NOBODY));
                    }
                    if std::fs::read_dir(&self.folder).is_ok() {
                        println!(
                            "skipped: {} stays readable (cannot drop root's file access)",
                            self.folder.display()
                        );
                        return None;
                    }
                    Some(f())
                })
                .join()
                .expect("unprivileged thread")
        })
    }
}

impl Drop for Locked {
    fn drop(&mut self) {
        let _ = std::fs::set_permissions(&self.folder, std::fs::Permissions::from_mode(0o755));
    }
}
