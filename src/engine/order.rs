//! The order of a completion, written once for whole answers and streams: no cache → bypass;
//! a fresh entry → hit; else join the identical call in flight (or lead it, with an expired
//! entry kept for an outage), and what the flight's outcome means for this request.

use std::sync::Arc;

use super::{Engine, Prepared};
use crate::cache::coalesce::{Outcome, Subscription};
use crate::cache::{CacheEntry, CacheKey, CacheStatus, Lookup};
use crate::call::ApiError;

/// Where a request's answer comes from.
pub(super) enum Source {
    /// Not cached (`cache: false`, or the cache is off): a private provider call.
    Bypass,
    /// A fresh cache entry answers; no provider call.
    Fresh {
        key: CacheKey,
        entry: Arc<CacheEntry>,
    },
    /// The shared provider call of `key`, led by this request when `leader`.
    Flight {
        key: CacheKey,
        sub: Subscription<ApiError>,
        leader: bool,
    },
}

impl Engine {
    /// Decide where `prepared`'s answer comes from (`stream`: the flight reads a stream).
    pub(super) fn source(self: &Arc<Self>, prepared: &Prepared, stream: bool) -> Source {
        let Some(key) = self.cache_key_of(prepared) else {
            self.cache.record(CacheStatus::Bypass);
            return Source::Bypass;
        };
        let lookup = if prepared.refresh {
            Lookup::Miss
        } else {
            self.cache.lookup(&key)
        };
        let stale = match lookup {
            Lookup::Fresh(entry) => {
                self.cache.record_hit(&key);
                return Source::Fresh { key, entry };
            }
            Lookup::Expired(entry) => Some(*entry),
            Lookup::Miss => None,
        };
        let (sub, leader) = self.join_flight(key, prepared, stream, stale);
        Source::Flight { key, sub, leader }
    }
}

/// What a flight's outcome is for one of its requests: the entry and how the cache served it
/// (the leader's fresh answer is a miss, a follower's a hit), or the failure.
pub(super) fn settle(
    outcome: Outcome<ApiError>,
    leader: bool,
) -> Result<(Arc<CacheEntry>, CacheStatus), ApiError> {
    match outcome {
        Outcome::Done(entry) if leader => Ok((entry, CacheStatus::Miss)),
        Outcome::Done(entry) => Ok((entry, CacheStatus::Hit)),
        Outcome::Stale(entry) => Ok((entry, CacheStatus::Stale)),
        Outcome::Failed(e) => Err(e),
    }
}
