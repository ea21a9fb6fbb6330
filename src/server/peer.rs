//! Who is on the other end of a Unix-socket connection (`SO_PEERCRED`), whether that uid may
//! use the daemon, and whether it may use the admin routes.

use std::os::fd::AsFd;

use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};

/// Who may connect over the Unix socket, and who of them may use the admin routes.
#[derive(Debug, Clone)]
pub struct PeerPolicy {
    allowed: Vec<u32>,
    admins: Vec<u32>,
    own_uid: u32,
}

impl PeerPolicy {
    /// `allowed_uids` and `admin_uids` from the config; an empty list means the daemon's own
    /// uid and root.
    pub fn new(allowed_uids: &[u32], admin_uids: &[u32]) -> Self {
        PeerPolicy {
            allowed: allowed_uids.to_vec(),
            admins: admin_uids.to_vec(),
            own_uid: nix::unistd::geteuid().as_raw(),
        }
    }

    pub fn allows(&self, uid: u32) -> bool {
        self.listed(&self.allowed, uid)
    }

    /// Whether `uid` may use the admin routes (cache writes, `/logs/*`, `/deployments`, reads
    /// of trace records).
    pub fn is_admin(&self, uid: u32) -> bool {
        self.listed(&self.admins, uid)
    }

    fn listed(&self, list: &[u32], uid: u32) -> bool {
        if list.is_empty() {
            uid == self.own_uid || uid == 0
        } else {
            list.contains(&uid)
        }
    }
}

/// The uid of the process that connected, if the kernel tells.
pub fn peer_credentials(stream: &impl AsFd) -> Option<(u32, u32)> {
    getsockopt(stream, PeerCredentials)
        .ok()
        .map(|c| (c.uid(), c.gid()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_list_allows_self_and_root_only() {
        let policy = PeerPolicy::new(&[], &[]);
        let me = nix::unistd::geteuid().as_raw();
        assert!(policy.allows(me) && policy.is_admin(me));
        assert!(policy.allows(0) && policy.is_admin(0));
        assert!(!policy.allows(me.wrapping_add(4242)) || me.wrapping_add(4242) == 0);
        let policy = PeerPolicy::new(&[1000, 1001], &[]);
        assert!(policy.allows(1000));
        assert!(!policy.allows(0));
        assert!(
            !policy.is_admin(1001) || me == 1001,
            "an allowed uid is not an admin"
        );
        let policy = PeerPolicy::new(&[1000, 1001], &[1001]);
        assert!(policy.is_admin(1001) && !policy.is_admin(1000));
    }

    #[test]
    fn reads_our_own_uid_from_a_socket_pair() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().expect("pair");
        let me = (
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        );
        assert_eq!(peer_credentials(&a), Some(me));
    }
}
