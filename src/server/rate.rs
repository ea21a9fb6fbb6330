//! The per-peer request rate (`rate_limit`, requests per second per uid; `rate_limit_burst`):
//! a token bucket per peer uid (the TCP listener's clients share one), over which a request is
//! a 429 with `Retry-After`. `/health` and `/metrics` are not counted, so monitoring never
//! competes with the peer it watches.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// The key of the TCP listener's clients, which have no uid.
pub const TCP_PEER: u32 = u32::MAX;

/// The buckets of every peer.
#[derive(Debug)]
pub struct PeerRate {
    limiter: DefaultKeyedRateLimiter<u32>,
    clock: DefaultClock,
}

impl PeerRate {
    /// `per_second` requests per peer, bursts of `burst`; `None` when `per_second` is 0 (off).
    pub fn new(per_second: u32, burst: u32) -> Option<PeerRate> {
        let rate = NonZeroU32::new(per_second)?;
        let burst = NonZeroU32::new(burst).unwrap_or(rate);
        Some(PeerRate {
            limiter: RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)),
            clock: DefaultClock::default(),
        })
    }

    /// `Ok` when `peer` may make a request now, else how long until it may.
    pub fn check(&self, peer: u32) -> Result<(), Duration> {
        self.limiter
            .check_key(&peer)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_over_its_burst_waits_and_others_do_not() {
        let rate = PeerRate::new(1, 2).expect("on");
        assert!(rate.check(7).is_ok());
        assert!(rate.check(7).is_ok());
        let wait = rate.check(7).expect_err("over the burst");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert!(rate.check(8).is_ok(), "another peer has its own bucket");
        assert!(PeerRate::new(0, 5).is_none(), "0 turns it off");
    }
}
