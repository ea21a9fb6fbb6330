//! Coalescing of identical cacheable requests in flight: the first request for a key becomes the
//! leader and starts one provider call (driven by its own task, so it finishes and is cached
//! even if every client leaves); later identical requests join as followers. Everyone
//! subscribes to the same flight: a stream subscriber gets the deltas so far, then the rest
//! live; a whole-answer subscriber waits for the outcome.
//!
//! A flight holds its deltas for late subscribers and the cache entry only while they fit the
//! budget its driver gives (`cache.max_entry_bytes`); past it the answer cannot be cached, the
//! flight stops taking followers (an identical request starts its own call) and keeps only a
//! window of that many bytes for its subscribers: one that falls further behind fails
//! ([`FellBehind`]). Its memory is O(budget), not O(answer).
//!
//! A failed flight carries the caller's error type `E` (the engine's request error): the cache
//! knows nothing of HTTP. `E` says, through `From<`[`Abandoned`]`>`, how it tells a flight whose
//! driver went away without an outcome.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::watch;

use super::{CacheEntry, CacheKey};
use crate::providers::Piece;

/// How a flight ended.
#[derive(Debug, Clone)]
pub enum Outcome<E> {
    /// A fresh, complete answer (already stored in the cache when cacheable).
    Done(Arc<CacheEntry>),
    /// The provider failed and an expired entry answered instead.
    Stale(Arc<CacheEntry>),
    Failed(E),
}

/// A flight whose driver went away (panicked, cancelled) without publishing an outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the provider call was abandoned")]
pub struct Abandoned;

/// A subscriber that fell more than the flight's budget behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "this client read the shared stream more slowly than it came and fell more than \
     cache.max_entry_bytes behind it"
)]
pub struct FellBehind;

#[derive(Debug)]
struct FlightState<E> {
    /// The deltas from number `base` on.
    deltas: VecDeque<Piece>,
    base: usize,
    /// Bytes of `deltas`.
    bytes: usize,
    /// The deltas outgrew the budget: some are gone, the answer is not cached.
    overflowed: bool,
    outcome: Option<Outcome<E>>,
}

/// The bytes a piece holds.
fn piece_bytes(piece: &Piece) -> usize {
    piece.text.as_ref().map_or(0, String::len) + piece.chunk.as_ref().map_or(0, String::len)
}

/// One provider call shared by every identical request.
#[derive(Debug)]
pub struct Flight<E> {
    state: Mutex<FlightState<E>>,
    version: watch::Sender<u64>,
}

impl<E> Flight<E> {
    fn new() -> Self {
        Flight {
            state: Mutex::new(FlightState {
                deltas: VecDeque::new(),
                base: 0,
                bytes: 0,
                overflowed: false,
                outcome: None,
            }),
            version: watch::Sender::new(0),
        }
    }

    fn bump(&self) {
        self.version.send_modify(|v| *v += 1);
    }

    /// Publish a stream delta to every subscriber, holding at most `budget` bytes of deltas
    /// once they outgrew it (and at least the newest).
    pub fn push_delta(&self, delta: Piece, budget: usize) {
        {
            let mut state = self.state.lock();
            state.bytes += piece_bytes(&delta);
            state.deltas.push_back(delta);
            if state.bytes > budget {
                state.overflowed = true;
                while state.bytes > budget && state.deltas.len() > 1 {
                    if let Some(old) = state.deltas.pop_front() {
                        state.bytes -= piece_bytes(&old);
                        state.base += 1;
                    }
                }
            }
        }
        self.bump();
    }

    /// How many deltas were published so far.
    pub fn deltas_published(&self) -> usize {
        let state = self.state.lock();
        state.base + state.deltas.len()
    }

    /// The deltas outgrew the budget: the answer is not cached.
    pub fn overflowed(&self) -> bool {
        self.state.lock().overflowed
    }

    /// Subscriptions alive.
    pub fn subscribers(&self) -> usize {
        self.version.receiver_count()
    }

    /// Every delta published, for the cache entry; `None` once they outgrew the budget.
    pub fn deltas(&self) -> Option<Vec<Piece>> {
        let state = self.state.lock();
        (!state.overflowed).then(|| state.deltas.iter().cloned().collect())
    }

    /// Publish the outcome (the first one wins).
    pub fn complete(&self, outcome: Outcome<E>) {
        {
            let mut state = self.state.lock();
            if state.outcome.is_some() {
                return;
            }
            state.outcome = Some(outcome);
        }
        self.bump();
    }

    pub fn subscribe(self: &Arc<Self>) -> Subscription<E> {
        Subscription {
            flight: Arc::clone(self),
            next: 0,
            rx: self.version.subscribe(),
        }
    }
}

/// What a subscriber sees next.
#[derive(Debug, Clone)]
pub enum Event<E> {
    Delta(Piece),
    Outcome(Outcome<E>),
}

/// One request's view of a flight.
#[derive(Debug)]
pub struct Subscription<E> {
    flight: Arc<Flight<E>>,
    next: usize,
    rx: watch::Receiver<u64>,
}

impl<E: Clone + From<Abandoned> + From<FellBehind>> Subscription<E> {
    /// The next delta, or the outcome once every delta was seen.
    pub async fn next(&mut self) -> Event<E> {
        loop {
            // Mark the current version seen *before* reading the state, so a change made after
            // the read wakes `changed()` below.
            self.rx.borrow_and_update();
            {
                let state = self.flight.state.lock();
                if self.next < state.base {
                    return Event::Outcome(Outcome::Failed(E::from(FellBehind)));
                }
                if let Some(delta) = state.deltas.get(self.next - state.base) {
                    self.next += 1;
                    return Event::Delta(delta.clone());
                }
                if let Some(outcome) = &state.outcome {
                    return Event::Outcome(outcome.clone());
                }
            }
            if self.rx.changed().await.is_err() {
                return Event::Outcome(Outcome::Failed(E::from(Abandoned)));
            }
        }
    }

    /// Skip to the outcome (for whole-answer requests).
    pub async fn outcome(&mut self) -> Outcome<E> {
        loop {
            if let Event::Outcome(outcome) = self.next().await {
                return outcome;
            }
        }
    }
}

/// The flights in progress, by cache key.
#[derive(Debug)]
pub struct Flights<E> {
    map: Arc<Mutex<HashMap<CacheKey, Arc<Flight<E>>>>>,
}

impl<E> Default for Flights<E> {
    fn default() -> Self {
        Flights {
            map: Arc::default(),
        }
    }
}

impl<E> Clone for Flights<E> {
    fn clone(&self) -> Self {
        Flights {
            map: Arc::clone(&self.map),
        }
    }
}

/// Joining a flight: lead a new one or follow the one in progress.
#[derive(Debug)]
pub enum Joined<E: From<Abandoned>> {
    Leader(Leader<E>),
    Follower(Arc<Flight<E>>),
}

impl<E: From<Abandoned>> Flights<E> {
    pub fn join(&self, key: CacheKey) -> Joined<E> {
        let mut map = self.map.lock();
        // A flight past its budget cannot replay its start: the request leads a new one.
        if let Some(flight) = map.get(&key).filter(|f| !f.overflowed()) {
            return Joined::Follower(Arc::clone(flight));
        }
        let flight = Arc::new(Flight::new());
        map.insert(key, Arc::clone(&flight));
        Joined::Leader(Leader {
            flights: self.clone(),
            key,
            flight,
        })
    }
}

impl<E> Flights<E> {
    /// Flights in progress.
    pub fn len(&self) -> usize {
        self.map.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The leader's handle: owned by the task that drives the provider call. Dropping it ends the
/// flight — with `Failed` if no outcome was published (a panicked or cancelled driver never
/// leaves followers waiting) — and removes it, so the next request starts afresh.
#[derive(Debug)]
pub struct Leader<E: From<Abandoned>> {
    flights: Flights<E>,
    key: CacheKey,
    flight: Arc<Flight<E>>,
}

impl<E: From<Abandoned>> Leader<E> {
    pub fn flight(&self) -> &Arc<Flight<E>> {
        &self.flight
    }
}

impl<E: From<Abandoned>> Drop for Leader<E> {
    fn drop(&mut self) {
        {
            let mut map = self.flights.map.lock();
            if map
                .get(&self.key)
                .is_some_and(|f| Arc::ptr_eq(f, &self.flight))
            {
                map.remove(&self.key);
            }
        }
        self.flight.complete(Outcome::Failed(E::from(Abandoned)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    impl From<FellBehind> for Abandoned {
        fn from(_: FellBehind) -> Abandoned {
            Abandoned
        }
    }

    fn entry() -> Arc<CacheEntry> {
        Arc::new(crate::cache::entry::tests::sample())
    }

    #[tokio::test]
    async fn late_followers_get_the_deltas_so_far_then_the_rest() {
        let flights = Flights::<Abandoned>::default();
        let key = CacheKey([1; 32]);
        let Joined::Leader(leader) = flights.join(key) else {
            panic!("first is leader")
        };
        let mut early = leader.flight().subscribe();
        leader.flight().push_delta("a".into(), usize::MAX);
        leader.flight().push_delta("b".into(), usize::MAX);
        let Joined::Follower(flight) = flights.join(key) else {
            panic!("second follows")
        };
        let mut late = flight.subscribe();
        let driver = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            leader.flight().push_delta("c".into(), usize::MAX);
            leader.flight().complete(Outcome::Done(entry()));
            drop(leader);
        });
        for sub in [&mut early, &mut late] {
            let mut seen = Vec::new();
            loop {
                match sub.next().await {
                    Event::Delta(d) => seen.push(d.text.unwrap_or_default()),
                    Event::Outcome(Outcome::Done(_)) => break,
                    Event::Outcome(other) => panic!("{other:?}"),
                }
            }
            assert_eq!(seen, vec!["a", "b", "c"]);
        }
        driver.await.expect("driver");
        assert!(flights.is_empty(), "finished flight removed");
        assert!(
            matches!(flights.join(key), Joined::Leader(_)),
            "next request leads again"
        );
    }

    #[tokio::test]
    async fn a_dropped_leader_fails_its_followers() {
        let flights = Flights::<Abandoned>::default();
        let key = CacheKey([2; 32]);
        let Joined::Leader(leader) = flights.join(key) else {
            panic!("leader")
        };
        let mut sub = leader.flight().subscribe();
        drop(leader);
        assert!(matches!(sub.outcome().await, Outcome::Failed(Abandoned)));
        assert!(flights.is_empty());
    }

    #[tokio::test]
    async fn a_flight_past_its_budget_keeps_a_window_and_takes_no_followers() {
        let flights = Flights::<Abandoned>::default();
        let key = CacheKey([3; 32]);
        let Joined::Leader(leader) = flights.join(key) else {
            panic!("leader")
        };
        let mut slow = leader.flight().subscribe();
        for _ in 0..100 {
            leader.flight().push_delta("0123456789".into(), 50);
        }
        assert!(leader.flight().overflowed());
        assert_eq!(leader.flight().deltas_published(), 100);
        assert!(leader.flight().deltas().is_none(), "not for the cache");
        assert!(leader.flight().state.lock().bytes <= 50);
        assert!(matches!(
            slow.next().await,
            Event::Outcome(Outcome::Failed(Abandoned))
        ));
        assert!(
            matches!(flights.join(key), Joined::Leader(_)),
            "an identical request leads its own call"
        );
    }
}
