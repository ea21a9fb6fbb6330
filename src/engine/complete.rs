//! Whole answers: bypass, hit, or a (shared) provider call; every outcome logged.

use std::sync::Arc;

use super::answer::{entry_from_completion, response_from_entry};
use super::log::Timing;
use super::{provider_error, Answer, Engine, Prepared};
use crate::api::{ApiError, CompletionRequest};
use crate::cache::coalesce::Outcome;
use crate::cache::{CacheKey, CacheStatus, Lookup};

impl Engine {
    /// Answer a completion request with a whole answer.
    pub async fn complete(self: &Arc<Self>, req: CompletionRequest) -> Result<Answer, ApiError> {
        let timing = Timing::now();
        let prepared = self.prepare(req).await?;
        let result = match self.cache_key_of(&prepared) {
            None => self.complete_uncached(&prepared, &timing).await,
            Some(key) => self.complete_cached(&prepared, key, &timing).await,
        };
        match &result {
            Ok(answer) => self.log_answer(&prepared, &answer.response, None),
            Err(e) => self.log_failure(&prepared, e, &timing, None),
        }
        result
    }

    async fn complete_uncached(
        &self,
        prepared: &Prepared,
        timing: &Timing,
    ) -> Result<Answer, ApiError> {
        self.cache.record(CacheStatus::Bypass);
        // Boxed, like every HTTP call on a request's path: its state machine (reqwest's
        // included) is kilobytes, and inline it would make every request's future that big,
        // cache hits included, and copied whenever the future moves.
        let completion = Box::pin(
            prepared
                .provider
                .complete(&prepared.chat, prepared.api_key.as_ref()),
        )
        .await
        .map_err(|e| provider_error(&prepared.provider, e))?;
        let entry =
            entry_from_completion(prepared, completion, None, &self.upstreams().prices, (0, 0));
        Ok(Answer {
            response: response_from_entry(prepared, &entry, timing, false),
            cache: CacheStatus::Bypass,
            key: None,
        })
    }

    async fn complete_cached(
        self: &Arc<Self>,
        prepared: &Prepared,
        key: CacheKey,
        timing: &Timing,
    ) -> Result<Answer, ApiError> {
        let stale = match self.cache.lookup(&key) {
            Lookup::Fresh(entry) => {
                self.cache.record_hit(&key);
                return Ok(Answer {
                    response: response_from_entry(prepared, &entry, timing, true),
                    cache: CacheStatus::Hit,
                    key: Some(key),
                });
            }
            Lookup::Expired(entry) => Some(entry),
            Lookup::Miss => None,
        };
        let (mut sub, leader) = self.join_flight(key, prepared, false, stale);
        let (entry, status) = match sub.outcome().await {
            Outcome::Done(entry) if leader => (entry, CacheStatus::Miss),
            Outcome::Done(entry) => (entry, CacheStatus::Hit),
            Outcome::Stale(entry) => (entry, CacheStatus::Stale),
            Outcome::Failed(e) => return Err(e),
        };
        self.cache.record(status);
        Ok(Answer {
            response: response_from_entry(prepared, &entry, timing, status != CacheStatus::Miss),
            cache: status,
            key: Some(key),
        })
    }
}
