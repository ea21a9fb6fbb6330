//! The daemon-wide budget of memory held on behalf of requests (`max_request_memory`).
//!
//! Per-request limits (`max_body`, `max_rendered`) bound one request, not many: 300 clients each
//! holding most of a 4 MiB body took 1.26 GiB, and 100 templates rendering 16 MiB each 3.15 GiB.
//! Every byte a request makes the daemon hold before it is answered — the body being read, the
//! messages its templates render to — is reserved here first, and a request that would pass the
//! budget is refused at once with 503 `server_busy` and `Retry-After` (never queued: a queue of
//! waiting bodies is the memory this bounds). A [`Reservation`] gives its bytes back when
//! dropped, so a request that fails, is cancelled or whose client goes away returns them too.
//!
//! It is a tokio [`Semaphore`] whose permits are KiB (a request's bytes rounded up), taken
//! with `try_acquire`: no waiting, no fairness to keep.

use std::sync::Arc;

/// jemalloc's options for the daemon (exported as `_rjem_malloc_conf` by `main.rs`, and by the
/// examples that measure its memory): memory freed after a burst goes back to the OS instead of
/// staying with the daemon (1.1 GiB stayed after 300 clients with large bodies left):
/// - `background_thread:true`: a jemalloc thread purges while the daemon is idle; without it
///   purging only happens on later allocations, so an idle daemon kept its peak;
/// - `dirty_decay_ms:1000`: freed pages are returned over about a second (jemalloc's default is
///   10 s) — a burst's memory is back within seconds, and a busy daemon reuses pages before then;
/// - `muzzy_decay_ms:0`: pages are released outright, not kept lazily freed.
///
/// `_RJEM_MALLOC_CONF` in the environment still overrides these.
pub const JEMALLOC_CONF: &[u8; 60] =
    b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes per permit.
const UNIT: u64 = 1024;

/// The budget; clones share it.
#[derive(Debug, Clone)]
pub struct MemoryBudget {
    permits: Arc<Semaphore>,
    /// Permits when nothing is held.
    units: u32,
}

/// Bytes reserved from a [`MemoryBudget`]; given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    budget: MemoryBudget,
    held: Option<OwnedSemaphorePermit>,
}

/// A reservation that does not fit the budget now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("requests in flight hold {held} of the {limit} bytes of max_request_memory; {wanted} more do not fit")]
pub struct OverBudget {
    pub wanted: u64,
    pub held: u64,
    pub limit: u64,
}

impl MemoryBudget {
    /// A budget of `bytes` (rounded up to a KiB; at most 4 TiB).
    pub fn new(bytes: u64) -> MemoryBudget {
        let units = u32::try_from(units_of(bytes))
            .unwrap_or(u32::MAX)
            .min(u32::try_from(Semaphore::MAX_PERMITS).unwrap_or(u32::MAX));
        MemoryBudget {
            permits: Arc::new(Semaphore::new(units as usize)),
            units,
        }
    }

    /// The budget, in bytes.
    pub fn limit(&self) -> u64 {
        u64::from(self.units) * UNIT
    }

    /// Bytes reserved now.
    pub fn held(&self) -> u64 {
        let free = self.permits.available_permits() as u64;
        u64::from(self.units).saturating_sub(free) * UNIT
    }

    /// An empty reservation, to grow as bytes arrive.
    pub fn reservation(&self) -> Reservation {
        Reservation {
            budget: self.clone(),
            held: None,
        }
    }

    /// Reserve `bytes`, or say why not.
    pub fn try_reserve(&self, bytes: u64) -> Result<Reservation, OverBudget> {
        let mut reservation = self.reservation();
        reservation.grow_to(bytes)?;
        Ok(reservation)
    }
}

impl Reservation {
    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        self.held
            .as_ref()
            .map_or(0, |p| p.num_permits() as u64 * UNIT)
    }

    /// Hold at least `bytes` in all (more is kept); on error nothing changes.
    pub fn grow_to(&mut self, bytes: u64) -> Result<(), OverBudget> {
        let have = self.held.as_ref().map_or(0, |p| p.num_permits() as u64);
        let more = units_of(bytes).saturating_sub(have);
        if more == 0 {
            return Ok(());
        }
        let over = || OverBudget {
            wanted: more * UNIT,
            held: self.budget.held(),
            limit: self.budget.limit(),
        };
        let Ok(more_u32) = u32::try_from(more) else {
            return Err(over());
        };
        match Arc::clone(&self.budget.permits).try_acquire_many_owned(more_u32) {
            Ok(permit) => {
                match &mut self.held {
                    Some(held) => held.merge(permit),
                    None => self.held = Some(permit),
                }
                Ok(())
            }
            Err(_) => Err(over()),
        }
    }

    /// Take `other`'s bytes into this one (both must be of the same budget).
    pub fn absorb(&mut self, mut other: Reservation) {
        if let Some(permit) = other.held.take() {
            match &mut self.held {
                Some(held) if Arc::ptr_eq(&self.budget.permits, &other.budget.permits) => {
                    held.merge(permit)
                }
                Some(_) => drop(permit),
                None => self.held = Some(permit),
            }
        }
    }
}

fn units_of(bytes: u64) -> u64 {
    bytes.div_ceil(UNIT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserves_until_full_and_returns_on_drop() {
        let budget = MemoryBudget::new(10 * 1024);
        let a = budget.try_reserve(6 * 1024).expect("fits");
        let err = budget.try_reserve(5 * 1024).expect_err("over");
        assert_eq!((err.wanted, err.limit), (5 * 1024, 10 * 1024));
        let mut b = budget.try_reserve(1).expect("a KiB fits");
        assert_eq!(b.bytes(), 1024);
        b.grow_to(4 * 1024).expect("grows");
        assert!(b.grow_to(5 * 1024).is_err());
        assert_eq!(budget.held(), 10 * 1024);
        drop(a);
        assert_eq!(budget.held(), 4 * 1024);
        let mut c = budget.reservation();
        c.absorb(b);
        assert_eq!(c.bytes(), 4 * 1024);
        drop(c);
        assert_eq!(budget.held(), 0);
    }
}
