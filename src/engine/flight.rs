//! The leader's task of a coalesced request: one provider call whose deltas and outcome every
//! identical request shares. It runs on its own, so a stream is read to its end and cached even
//! when every client has left; only complete, successful answers are stored.

use std::sync::Arc;

use super::answer::entry_from_completion;
use super::read::read_into_flight;
use super::{provider_error, Engine, Prepared};
use crate::cache::coalesce::{Abandoned, FellBehind, Leader, Outcome};
use crate::cache::{CacheEntry, CacheKey};
use crate::call::ApiError;
use crate::providers::ProviderError;

/// A flight that ended without an outcome answers its requests with a 500.
impl From<Abandoned> for ApiError {
    fn from(abandoned: Abandoned) -> ApiError {
        ApiError::Internal(abandoned.to_string())
    }
}

/// A client that fell behind a shared stream past the flight's budget.
impl From<FellBehind> for ApiError {
    fn from(behind: FellBehind) -> ApiError {
        ApiError::Internal(behind.to_string())
    }
}

/// Whether a failure means the provider is down (then an expired entry may answer).
fn is_outage(err: &ProviderError) -> bool {
    match err {
        ProviderError::Refused | ProviderError::Unreachable(_) | ProviderError::Timeout(_) => true,
        ProviderError::Status { status, .. } => *status >= 500,
        // Saturated by promptd's own limit: an expired answer beats a 503.
        ProviderError::Busy { .. } => true,
        ProviderError::Protocol(_) | ProviderError::Stream(_) => false,
    }
}

/// Drive the provider call of `leader`'s flight to its outcome.
pub async fn drive(
    engine: Arc<Engine>,
    leader: Leader<ApiError>,
    prepared: Prepared,
    key: CacheKey,
    stream: bool,
    stale: Option<CacheEntry>,
) {
    let flight = Arc::clone(leader.flight());
    let provider = Arc::clone(&prepared.provider);
    let key_override = prepared.api_key.as_ref();
    let result = if stream {
        match provider.open_stream(&prepared.chat, key_override).await {
            Err(e) => Err(e),
            Ok(upstream) => {
                let budget =
                    usize::try_from(engine.cache.config().max_entry_bytes).unwrap_or(usize::MAX);
                read_into_flight(upstream, &flight, budget)
                    .await
                    .map(|(completion, deltas)| (completion, Some(deltas)))
            }
        }
    } else {
        provider
            .complete(&prepared.chat, key_override)
            .await
            .map(|c| (c, None))
    };
    let cache = &engine.cache;
    match result {
        Ok((completion, deltas)) => {
            // A stream whose deltas or text outgrew what is held is answered, not stored.
            let whole = !completion.truncated && deltas.as_ref().is_none_or(Option::is_some);
            let entry = entry_from_completion(
                &prepared,
                completion,
                deltas.map(Option::unwrap_or_default),
                &engine.upstreams().prices,
                cache.new_entry_times(),
            );
            if whole {
                cache.store(&key, &entry);
            } else {
                tracing::debug!(trace_id = %prepared.trace_id, "stream longer than what is held: answered, not cached");
            }
            flight.complete(Outcome::Done(Arc::new(entry)));
        }
        Err(e) => {
            let stale = stale.filter(|_| {
                cache.config().serve_stale_on_error
                    && flight.deltas_published() == 0
                    && is_outage(&e)
            });
            // Masked before anything shows it, the daemon's own log included.
            let err = provider_error(&provider, e, prepared.api_key.as_ref());
            match stale {
                Some(entry) => {
                    tracing::warn!(provider = %provider.name(), error = %err, "provider failed; answering from an expired cache entry");
                    flight.complete(Outcome::Stale(Arc::new(entry)));
                }
                None => {
                    if flight.deltas_published() > 0 {
                        tracing::warn!(trace_id = %prepared.trace_id, error = %err, "stream failed after it started");
                    }
                    flight.complete(Outcome::Failed(err));
                }
            }
        }
    }
    drop(leader);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_abandoned_flight_is_an_internal_error() {
        match ApiError::from(Abandoned) {
            ApiError::Internal(message) => assert_eq!(message, "the provider call was abandoned"),
            other => panic!("{other:?}"),
        }
    }
}
