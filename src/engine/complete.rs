//! Whole answers: bypass, hit, or a (shared) provider call; every outcome logged (once: the
//! request's [`Record`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::answer::{entry_from_completion, response_from_entry};
use super::log::{Record, Timing};
use super::order::{settle, Source};
use super::{provider_error, Answer, Engine, Prepared, RequestCtx};
use crate::cache::CacheStatus;
use crate::call::ApiError;
use crate::call::Call;

impl Engine {
    /// Answer a completion request with a whole answer.
    pub async fn complete(
        self: &Arc<Self>,
        req: Call,
        ctx: RequestCtx,
    ) -> Result<Answer, ApiError> {
        let timing = Timing::now();
        let record = Record::new(self, self.prepare(req, ctx).await?, timing);
        let prepared = record.prepared();
        let result = match self.source(prepared, false) {
            Source::Bypass => self.complete_uncached(prepared, &timing).await,
            Source::Fresh { key, entry } => Ok(Answer {
                response: response_from_entry(prepared, &entry, &timing, true),
                entry,
                cache: CacheStatus::Hit,
                key: Some(key),
                provider_wait: Duration::ZERO,
                dropped: prepared.dropped.clone(),
            }),
            Source::Flight {
                key,
                mut sub,
                leader,
            } => {
                let waited = Instant::now();
                let outcome = sub.outcome().await;
                let provider_wait = waited.elapsed();
                settle(outcome, leader).map(|(entry, status)| {
                    self.cache.record(status);
                    Answer {
                        response: response_from_entry(
                            prepared,
                            &entry,
                            &timing,
                            status != CacheStatus::Miss,
                        ),
                        entry,
                        cache: status,
                        key: Some(key),
                        provider_wait,
                        dropped: prepared.dropped.clone(),
                    }
                })
            }
        };
        match &result {
            Ok(answer) => record.answered(&answer.response),
            Err(e) => record.failed(e),
        }
        result
    }

    async fn complete_uncached(
        &self,
        prepared: &Prepared,
        timing: &Timing,
    ) -> Result<Answer, ApiError> {
        // Boxed, like every HTTP call on a request's path: its state machine (the HTTP client's
        // included) is kilobytes, and inline it would make every request's future that big,
        // cache hits included, and copied whenever the future moves.
        let waited = Instant::now();
        let completion = Box::pin(
            prepared
                .provider
                .complete(&prepared.chat, prepared.api_key.as_ref()),
        )
        .await
        .map_err(|e| provider_error(&prepared.provider, e, prepared.api_key.as_ref()))?;
        let provider_wait = waited.elapsed();
        let entry =
            entry_from_completion(prepared, completion, None, &self.upstreams().prices, (0, 0));
        Ok(Answer {
            response: response_from_entry(prepared, &entry, timing, false),
            entry: Arc::new(entry),
            cache: CacheStatus::Bypass,
            key: None,
            provider_wait,
            dropped: prepared.dropped.clone(),
        })
    }
}
