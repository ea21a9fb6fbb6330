//! Building answers: a provider's [`Completion`] becomes a [`CacheEntry`] (the one shape of a
//! complete answer, fresh or stored), and an entry becomes the [`CompletionResponse`] of one
//! request (its own trace id, latency and timestamps).
//!
//! The entry keeps the model's finish reason as the provider kind decoded it (a
//! [`FinishReason`](crate::model::FinishReason), no wire's word): each door renders it in its
//! own vocabulary, whichever door stored the entry. Parea's response has no field for it.

use super::log::Timing;
use super::Prepared;
use crate::api::CompletionResponse;
use crate::cache::{CacheEntry, StoredToolCall};
use crate::providers::{tool_calls_json, Completion, Piece, PriceTable};
use crate::timestamp::{iso, now_iso};

/// Turn a finished completion into an entry. `pieces` are the stream's pieces, or `None` for a
/// whole answer (then the replay deltas are the text and the tool calls): their texts are the
/// replay deltas, their chunks (OpenAI kind) kept for OpenAI-route replays.
pub fn entry_from_completion(
    prepared: &Prepared,
    completion: Completion,
    pieces: Option<Vec<Piece>>,
    prices: &PriceTable,
    times: (u64, u64),
) -> CacheEntry {
    let content = completion.content();
    let model = completion
        .response
        .model
        .clone()
        .unwrap_or_else(|| prepared.chat.model.clone());
    // The entry keeps the cached prompt tokens apart (an OpenAI client sees them in
    // `prompt_tokens_details`); the record counts every prompt token; the cost prices the
    // cached ones at their own rates.
    let usage = completion.response.usage;
    let price_model = if prices.price(&model).is_some() {
        &model
    } else {
        &prepared.chat.model
    };
    let cost = prices.cost(price_model, prepared.provider.kind(), &usage);
    let mut chunks = Vec::new();
    let deltas = match pieces {
        Some(pieces) => pieces
            .into_iter()
            .filter_map(|Piece { text, chunk, .. }| {
                chunks.extend(chunk);
                text
            })
            .collect(),
        None => {
            let mut d = Vec::new();
            let text = completion.text();
            if !text.is_empty() {
                d.push(text);
            }
            if completion.tool_calls().next().is_some() {
                d.push(tool_calls_json(completion.tool_calls()));
            }
            d
        }
    };
    CacheEntry {
        content,
        deltas,
        tool_calls: completion
            .tool_calls()
            .map(|(id, name, arguments)| StoredToolCall {
                id: id.to_owned(),
                name: name.to_owned(),
                arguments: arguments.to_owned(),
            })
            .collect(),
        usage,
        cost,
        model,
        provider: prepared.provider.name().to_owned(),
        finish_reason: completion.response.finish,
        raw_response: completion.raw,
        chunks,
        created_ms: times.0,
        expires_ms: times.1,
        last_used_ms: times.0,
        hits: 0,
    }
}

/// The response of one request answered by `entry`.
pub fn response_from_entry(
    prepared: &Prepared,
    entry: &CacheEntry,
    timing: &Timing,
    cache_hit: bool,
) -> CompletionResponse {
    CompletionResponse {
        inference_id: prepared.trace_id.clone(),
        content: entry.content.clone(),
        latency: timing.elapsed(),
        input_tokens: entry.usage.total_input(),
        output_tokens: entry.usage.output,
        total_tokens: entry.usage.total_input() + entry.usage.output,
        cost: entry.cost,
        model: entry.model.clone(),
        provider: prepared.provider.name().to_owned(),
        cache_hit,
        status: "success".to_owned(),
        start_timestamp: iso(timing.start_ts),
        end_timestamp: now_iso(),
        error: None,
    }
}
