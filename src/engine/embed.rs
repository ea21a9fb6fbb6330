//! Embeddings, cached per input item: each item of a call has its own key
//! ([`embedding_key`]); the items the cache knows are answered from it, only the others go to
//! the provider, in one call, and the answer is put back together in the caller's order.
//!
//! ```text
//! items -> keys -> fresh entries                     [hit: no provider call]
//!               -> some missing -> provider(missing) [partial / miss] -> entries stored
//! bypass (header or cache disabled) -> provider(all) [bypass], nothing read or stored
//! ```
//!
//! Identical calls in flight are not shared (no coalescing), and an expired entry does not
//! answer while the provider fails: embeddings are cheap to ask again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::Engine;
use crate::cache::embed_key::{embedding_key, EmbeddingKeyParts};
use crate::cache::{CacheEntry, CacheKey, CacheStatus, Lookup};
use crate::call::ApiError;
use crate::call::EmbeddingsCall;
use crate::model::{Block, Response, Usage};
use crate::providers::{Provider, ProviderKind};

/// What the caller asked of the cache (`x-promptd-cache`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbedCacheMode {
    /// Read known items, store new ones.
    Normal,
    /// Neither read nor store.
    Bypass,
    /// Ask the provider for every item and store the answers.
    Refresh,
}

/// What the cache did for a call (sent as `x-promptd-cache`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbedCacheStatus {
    /// Every item was known: no provider call.
    Hit,
    /// No item was known.
    Miss,
    /// Some items were known, the provider was asked for the others.
    Partial,
    /// The cache was not used.
    Bypass,
}

impl EmbedCacheStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EmbedCacheStatus::Hit => "hit",
            EmbedCacheStatus::Miss => "miss",
            EmbedCacheStatus::Partial => "partial",
            EmbedCacheStatus::Bypass => "bypass",
        }
    }
}

/// The embeddings of a call, in the caller's order.
#[derive(Debug)]
pub struct Embedded {
    /// One embedding per item, as the provider sent it (floats or a base64 string).
    pub embeddings: Vec<Value>,
    /// The model the provider says answered (of the first item when all were cached).
    pub model: String,
    pub prompt_tokens: u64,
    pub cache: EmbedCacheStatus,
    /// How long the call waited for the provider (zero when all items were cached).
    pub provider_wait: Duration,
}

/// One item's answer: its embedding and its share of the prompt tokens.
struct ItemAnswer {
    embedding: Value,
    tokens: u64,
    model: String,
}

impl Engine {
    /// Embed the items of `call` with `model` of the provider named `provider`.
    pub async fn embed(
        &self,
        call: &EmbeddingsCall,
        provider: &str,
        model: &str,
        mode: EmbedCacheMode,
    ) -> Result<Embedded, ApiError> {
        let upstreams = self.upstreams();
        let provider = upstreams.providers.get(provider).cloned().ok_or_else(|| {
            ApiError::UnknownProvider {
                requested: provider.to_owned(),
                configured: upstreams.providers.keys().cloned().collect(),
            }
        })?;
        check_provider(&provider)?;
        let use_cache = self.cache.config().enabled && mode != EmbedCacheMode::Bypass;
        let parts = EmbeddingKeyParts {
            provider: provider.name(),
            model,
            dimensions: call.dimensions,
            encoding_format: call.encoding_format.as_deref(),
            keyed: &call.keyed,
        };
        let keys: Vec<Option<CacheKey>> = call
            .items
            .iter()
            .map(|item| use_cache.then(|| embedding_key(&parts, item)))
            .collect();
        let mut answers: Vec<Option<ItemAnswer>> = keys
            .iter()
            .map(|key| match key {
                Some(key) if mode == EmbedCacheMode::Normal => self.cached(key),
                _ => None,
            })
            .collect();
        let missing: Vec<usize> = (0..answers.len())
            .filter(|&i| answers[i].is_none())
            .collect();
        let mut provider_wait = Duration::ZERO;
        if !missing.is_empty() {
            let items: Vec<&Value> = missing.iter().map(|&i| &call.items[i]).collect();
            let started = Instant::now();
            let answer = provider
                .embed(&call.upstream_body(model, &items), None)
                .await
                .map_err(|e| super::provider_error(&provider, e, None))?;
            provider_wait = started.elapsed();
            let fetched = read_answer(&provider, answer, missing.len(), model)?;
            for (&i, item) in missing.iter().zip(fetched) {
                if let Some(key) = &keys[i] {
                    self.store_item(key, provider.name(), &item);
                    self.cache.record(CacheStatus::Miss);
                }
                answers[i] = Some(item);
            }
        }
        let answers: Vec<ItemAnswer> = answers.into_iter().flatten().collect();
        let cache = if !use_cache {
            self.cache.record(CacheStatus::Bypass);
            EmbedCacheStatus::Bypass
        } else if missing.is_empty() {
            EmbedCacheStatus::Hit
        } else if missing.len() == answers.len() {
            EmbedCacheStatus::Miss
        } else {
            EmbedCacheStatus::Partial
        };
        let answered_model = missing
            .first()
            .or(Some(&0))
            .and_then(|&i| answers.get(i))
            .map_or_else(|| model.to_owned(), |a| a.model.clone());
        Ok(Embedded {
            prompt_tokens: answers.iter().map(|a| a.tokens).sum(),
            embeddings: answers.into_iter().map(|a| a.embedding).collect(),
            model: answered_model,
            cache,
            provider_wait,
        })
    }

    /// A fresh entry of `key` as an item's answer (a hit counted), else `None`.
    fn cached(&self, key: &CacheKey) -> Option<ItemAnswer> {
        let Lookup::Fresh(entry) = self.cache.lookup(key) else {
            return None;
        };
        let text = entry.response.blocks.first().and_then(Block::as_text)?;
        let embedding = serde_json::from_str(text).ok()?;
        self.cache.record_hit(key);
        Some(ItemAnswer {
            embedding,
            tokens: entry.response.usage.input,
            model: entry.model().to_owned(),
        })
    }

    fn store_item(&self, key: &CacheKey, provider: &str, item: &ItemAnswer) {
        let (created_ms, expires_ms) = self.cache.new_entry_times();
        let entry = CacheEntry {
            // The embedding's JSON as the answer's one text block.
            response: Response {
                model: Some(item.model.clone()),
                blocks: vec![Block::Text(item.embedding.to_string())],
                usage: Usage {
                    input: item.tokens,
                    ..Usage::default()
                },
                ..Response::default()
            },
            deltas: Vec::new(),
            cost: 0.0,
            provider: provider.to_owned(),
            raw_response: None,
            chunks: Vec::new(),
            raw_wire: crate::cache::entry::RawWire::OpenAiChat,
            created_ms,
            expires_ms,
            last_used_ms: created_ms,
            hits: 0,
        };
        self.cache.store(key, &entry);
    }
}

/// Embeddings are OpenAI's API: an Anthropic-kind provider has none; a provider that needs a
/// key and has none is refused before any call.
fn check_provider(provider: &Arc<Provider>) -> Result<(), ApiError> {
    if provider.kind() != ProviderKind::OpenAi {
        return Err(ApiError::invalid(
            "model",
            format!(
                "embeddings need an OpenAI-kind provider: `{}` is an Anthropic-kind provider \
                 (route the model to an OpenAI-kind provider, as PROVIDER/MODEL)",
                provider.name()
            ),
        ));
    }
    if let Some(remedy) = provider.missing_key_remedy() {
        return Err(ApiError::ProviderKeyMissing {
            provider: provider.name().to_owned(),
            remedy,
        });
    }
    Ok(())
}

/// The `asked` embeddings of a provider's answer, in the order asked (by each one's `index`),
/// each with its share of `usage.prompt_tokens` (split evenly: the provider counts a batch).
fn read_answer(
    provider: &Provider,
    answer: Value,
    asked: usize,
    model: &str,
) -> Result<Vec<ItemAnswer>, ApiError> {
    let protocol = |message: String| ApiError::ProviderProtocol {
        provider: provider.name().to_owned(),
        message,
    };
    let answered_model = answer
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or(model)
        .to_owned();
    let tokens = answer
        .pointer("/usage/prompt_tokens")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let Some(Value::Array(data)) = answer.get("data") else {
        return Err(protocol("the embeddings answer has no `data` array".into()));
    };
    if data.len() != asked {
        return Err(protocol(format!(
            "the embeddings answer has {} embeddings for {asked} inputs",
            data.len()
        )));
    }
    let mut slots: Vec<Option<Value>> = vec![None; asked];
    for (position, item) in data.iter().enumerate() {
        let index = item
            .get("index")
            .and_then(Value::as_u64)
            .map_or(position, |i| i as usize);
        let embedding = item.get("embedding").filter(|e| !e.is_null());
        match (slots.get_mut(index), embedding) {
            (Some(slot @ None), Some(e)) => *slot = Some(e.clone()),
            _ => {
                return Err(protocol(format!(
                    "the embeddings answer's item {position} (index {index}) is missing, \
                     repeated or out of range"
                )))
            }
        }
    }
    let (share, extra) = (tokens / asked as u64, tokens % asked as u64);
    Ok(slots
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, embedding)| ItemAnswer {
            embedding,
            tokens: share + u64::from((i as u64) < extra),
            model: answered_model.clone(),
        })
        .collect())
}
