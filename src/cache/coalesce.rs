//! Coalescing of identical cacheable requests in flight: the first request for a key becomes the
//! leader and starts one provider call (driven by its own task, so it finishes and is cached
//! even if every client leaves); later identical requests join as followers. Everyone
//! subscribes to the same flight: a stream subscriber gets the deltas so far, then the rest
//! live; a whole-answer subscriber waits for the outcome.
//!
//! A flight holds its deltas for late subscribers and the cache entry only while they fit the
//! budget its driver gives (`cache.max_entry_bytes`); past it the answer cannot be cached, the
//! flight stops taking followers (an identical request starts its own call) and drops each
//! delta once every subscriber has read it. While the unread deltas are over the budget the
//! driver waits for its slowest subscriber ([`Flight::make_room`]: the flight goes at the pace
//! of its clients, as a proxy does); a subscriber that reads nothing for the driver's grace is
//! left behind and fails ([`FellBehind`]). Its memory is O(budget), not O(answer).
//!
//! A failed flight carries the caller's error type `E` (the engine's request error): the cache
//! knows nothing of HTTP. `E` says, through `From<`[`Abandoned`]`>`, how it tells a flight whose
//! driver went away without an outcome.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;

use super::{CacheEntry, CacheKey, KeyMap};
use crate::providers::{Piece, RawEvent};

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
    /// The next delta of each subscription, by its id.
    positions: HashMap<u64, usize>,
    next_id: u64,
    outcome: Option<Outcome<E>>,
}

impl<E> FlightState<E> {
    /// Past the budget: drop the deltas every subscriber has read.
    fn drop_read(&mut self) {
        let end = self.base + self.deltas.len();
        let read = self.positions.values().copied().min().unwrap_or(end);
        while self.base < read {
            let Some(old) = self.deltas.pop_front() else {
                break;
            };
            self.bytes -= piece_bytes(&old);
            self.base += 1;
        }
    }
}

/// The bytes a piece holds.
fn piece_bytes(piece: &Piece) -> usize {
    piece.text.as_ref().map_or(0, String::len)
        + piece.chunk.as_ref().map_or(0, String::len)
        + piece.raw_event.as_ref().map_or(0, RawEvent::len)
        + piece
            .events
            .iter()
            .map(crate::model::StreamEvent::held_bytes)
            .sum::<usize>()
}

/// One provider call shared by every identical request.
#[derive(Debug)]
pub struct Flight<E> {
    state: Mutex<FlightState<E>>,
    version: watch::Sender<u64>,
    /// Bumped when a subscriber of a flight past its budget reads a delta or leaves.
    progress: watch::Sender<u64>,
}

impl<E> Flight<E> {
    fn new() -> Self {
        Flight {
            state: Mutex::new(FlightState {
                deltas: VecDeque::new(),
                base: 0,
                bytes: 0,
                overflowed: false,
                positions: HashMap::new(),
                next_id: 0,
                outcome: None,
            }),
            version: watch::Sender::new(0),
            progress: watch::Sender::new(0),
        }
    }

    fn bump(&self) {
        self.version.send_modify(|v| *v += 1);
    }

    /// Publish a stream delta to every subscriber. Once the deltas outgrow `budget` the
    /// answer is not cached, and a delta is dropped when every subscriber has read it.
    pub fn push_delta(&self, delta: Piece, budget: usize) {
        {
            let mut state = self.state.lock();
            state.bytes += piece_bytes(&delta);
            state.deltas.push_back(delta);
            if state.bytes > budget {
                state.overflowed = true;
            }
            if state.overflowed {
                state.drop_read();
            }
        }
        self.bump();
    }

    /// Wait until the unread deltas fit `budget` (its subscribers read on or leave); after
    /// `grace` without that, drop the oldest beyond it: a subscriber that needed them fails
    /// with [`FellBehind`]. At once for a flight within its budget.
    pub async fn make_room(&self, budget: usize, grace: Duration) {
        let mut progress = self.progress.subscribe();
        let until = tokio::time::Instant::now() + grace;
        loop {
            progress.borrow_and_update();
            {
                let mut state = self.state.lock();
                if !state.overflowed {
                    return;
                }
                state.drop_read();
                if state.bytes <= budget {
                    return;
                }
            }
            match tokio::time::timeout_at(until, progress.changed()).await {
                Ok(Ok(())) => continue,
                Ok(Err(_)) | Err(_) => break,
            }
        }
        let mut state = self.state.lock();
        while state.bytes > budget && state.deltas.len() > 1 {
            if let Some(old) = state.deltas.pop_front() {
                state.bytes -= piece_bytes(&old);
                state.base += 1;
            }
        }
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
        let id = {
            let mut state = self.state.lock();
            let id = state.next_id;
            state.next_id += 1;
            state.positions.insert(id, 0);
            id
        };
        Subscription {
            id,
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
    /// Its key in the flight's positions.
    id: u64,
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
                let mut state = self.flight.state.lock();
                if self.next < state.base {
                    return Event::Outcome(Outcome::Failed(E::from(FellBehind)));
                }
                if let Some(delta) = state.deltas.get(self.next - state.base) {
                    let delta = delta.clone();
                    self.next += 1;
                    state.positions.insert(self.id, self.next);
                    let overflowed = state.overflowed;
                    drop(state);
                    if overflowed {
                        self.flight.progress.send_modify(|v| *v += 1);
                    }
                    return Event::Delta(delta);
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

impl<E> Drop for Subscription<E> {
    fn drop(&mut self) {
        self.flight.state.lock().positions.remove(&self.id);
        self.flight.progress.send_modify(|v| *v += 1);
    }
}

/// The flights in progress, by cache key.
#[derive(Debug)]
pub struct Flights<E> {
    map: Arc<Mutex<KeyMap<Arc<Flight<E>>>>>,
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
    async fn a_flight_past_its_budget_waits_for_its_readers_and_takes_no_followers() {
        use futures_util::FutureExt;
        let flights = Flights::<Abandoned>::default();
        let key = CacheKey([3; 32]);
        let Joined::Leader(leader) = flights.join(key) else {
            panic!("leader")
        };
        let flight = Arc::clone(leader.flight());
        let mut slow = flight.subscribe();
        let grace = Duration::from_secs(3600);
        for _ in 0..10 {
            flight.push_delta("0123456789".into(), 50);
        }
        assert!(flight.overflowed());
        assert!(flight.deltas().is_none(), "not for the cache");
        assert!(
            flight.make_room(50, grace).now_or_never().is_none(),
            "waits for the reader"
        );
        for _ in 0..6 {
            assert!(matches!(slow.next().await, Event::Delta(_)));
        }
        assert!(flight.make_room(50, grace).now_or_never().is_some(), "room");
        assert!(flight.state.lock().bytes <= 50);
        // A reader that does not read on is left behind after the grace.
        for _ in 0..10 {
            flight.push_delta("0123456789".into(), 50);
        }
        flight.make_room(50, Duration::ZERO).await;
        assert!(flight.state.lock().bytes <= 50);
        assert!(matches!(
            slow.next().await,
            Event::Outcome(Outcome::Failed(Abandoned))
        ));
        assert_eq!(flight.deltas_published(), 20);
        assert!(
            matches!(flights.join(key), Joined::Leader(_)),
            "an identical request leads its own call"
        );
    }
}
