//! Who is on the other end of a Unix-socket connection (`SO_PEERCRED`), and whether that uid
//! may use the daemon.

use std::os::fd::AsFd;

use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};

/// Who may connect over the Unix socket.
#[derive(Debug, Clone)]
pub struct PeerPolicy {
    allowed: Vec<u32>,
    own_uid: u32,
}

impl PeerPolicy {
    /// `allowed_uids` from the config; empty means the daemon's own uid and root.
    pub fn new(allowed_uids: &[u32]) -> Self {
        PeerPolicy {
            allowed: allowed_uids.to_vec(),
            own_uid: nix::unistd::geteuid().as_raw(),
        }
    }

    pub fn allows(&self, uid: u32) -> bool {
        if self.allowed.is_empty() {
            uid == self.own_uid || uid == 0
        } else {
            self.allowed.contains(&uid)
        }
    }
}

/// The uid of the process that connected, if the kernel tells.
pub fn peer_uid(stream: &impl AsFd) -> Option<u32> {
    getsockopt(stream, PeerCredentials).ok().map(|c| c.uid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_list_allows_self_and_root_only() {
        let policy = PeerPolicy::new(&[]);
        let me = nix::unistd::geteuid().as_raw();
        assert!(policy.allows(me));
        assert!(policy.allows(0));
        assert!(!policy.allows(me.wrapping_add(4242)) || me.wrapping_add(4242) == 0);
        let policy = PeerPolicy::new(&[1000]);
        assert!(policy.allows(1000));
        assert!(!policy.allows(0));
    }

    #[test]
    fn reads_our_own_uid_from_a_socket_pair() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().expect("pair");
        assert_eq!(peer_uid(&a), Some(nix::unistd::geteuid().as_raw()));
    }
}
