//! Building answers: a provider's [`Completion`] becomes a [`CacheEntry`] (the one shape of a
//! complete answer, fresh or stored), and an entry becomes the [`CompletionResponse`] of one
//! request (its own trace id, latency and timestamps).
//!
//! The entry keeps the model's answer as the provider kind decoded it (its blocks, reasoning
//! signatures included, and a [`FinishReason`](crate::model::FinishReason), no wire's word):
//! each door renders it in its own vocabulary, whichever door stored the entry. Parea's
//! response has no field for the finish reason; its `content` is derived (the text, or the
//! tool calls' JSON).

use super::log::Timing;
use super::Prepared;
use crate::cache::entry::RawWire;
use crate::cache::CacheEntry;
use crate::call::CompletionResponse;
use crate::model::Wire;
use crate::providers::{Completion, Piece, PriceTable};
use crate::timestamp::{iso, now_iso};

/// Turn a finished completion into an entry. `pieces` are the stream's pieces, or `None` for a
/// whole answer (then the replay delta is the text): their texts are the replay deltas, their
/// chunks (OpenAI kind) kept for OpenAI-route replays. The piece the engine adds after a stream
/// whose model called tools (their JSON, for Parea: it has neither a chunk nor events) is not a
/// delta: a replay derives it from the entry's blocks.
pub fn entry_from_completion(
    prepared: &Prepared,
    completion: Completion,
    pieces: Option<Vec<Piece>>,
    prices: &PriceTable,
    times: (u64, u64),
) -> CacheEntry {
    let Completion {
        mut response, raw, ..
    } = completion;
    let model = response
        .model
        .get_or_insert_with(|| prepared.chat.model().to_owned());
    // The entry keeps the cached prompt tokens apart (an OpenAI client sees them in
    // `prompt_tokens_details`); the record counts every prompt token; the cost prices the
    // cached ones at their own rates.
    let cost = prices.cost_of_either(
        model,
        prepared.chat.model(),
        prepared.provider.kind(),
        &response.usage,
    );
    let mut chunks = Vec::new();
    let deltas = match pieces {
        Some(pieces) => pieces
            .into_iter()
            .filter(|p| p.chunk.is_some() || !p.events.is_empty())
            .filter_map(|piece| {
                let text = piece.text_ref().map(std::borrow::Cow::into_owned);
                chunks.extend(piece.chunk);
                text
            })
            .collect(),
        None => {
            let text = response.text();
            if text.is_empty() {
                Vec::new()
            } else {
                vec![text]
            }
        }
    };
    CacheEntry {
        response,
        deltas,
        cost,
        provider: prepared.provider.name().to_owned(),
        raw_response: raw,
        chunks,
        raw_wire: match prepared.provider.call_wire(&prepared.chat) {
            Wire::OpenAiChat | Wire::Parea => RawWire::OpenAiChat,
            Wire::AnthropicMessages => RawWire::AnthropicMessages,
            Wire::OpenAiResponses => RawWire::OpenAiResponses,
        },
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
    let usage = &entry.response.usage;
    CompletionResponse {
        inference_id: prepared.trace_id.clone(),
        content: entry.content(),
        latency: timing.elapsed(),
        input_tokens: usage.total_input(),
        output_tokens: usage.output,
        total_tokens: usage.total_input() + usage.output,
        cost: entry.cost,
        model: entry.model().to_owned(),
        provider: prepared.provider.name().to_owned(),
        cache_hit,
        status: "success".to_owned(),
        start_timestamp: iso(timing.start_ts),
        end_timestamp: now_iso(),
        error: None,
    }
}
