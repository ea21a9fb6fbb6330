//! OpenAI's chat completions wire and the model: a request decoded into the model
//! ([`decode_request`], [`Decoder`]) and the model encoded as one ([`encode_request`]), the
//! model's answer rendered as a `chat.completion`
//! ([`render_response`]) and its stream events as chunks ([`EventRenderer`]), an OpenAI-kind
//! provider's answer decoded into the model, whole ([`decode_response`]) or chunk by chunk
//! ([`EventDecoder`]), and the words and objects these share (the finish reason both ways,
//! `usage`).

mod decode;
mod encode;
mod request;
mod response;
mod stream;

use serde_json::{json, Value};

pub use decode::{decode_response, ChunkFacts, EventDecoder, REASONING_INDEX};
pub use encode::{encode_request, response_format, EncodeOptions, Encoded};
pub use request::{decode_request, Decoded, Decoder};
pub use response::render_response;
pub use stream::{ChunkHeader, EventRenderer};

use crate::model::{FinishReason, Usage};

/// OpenAI's `finish_reason` of the model's: one of `stop`, `length`, `tool_calls` and
/// `content_filter`, the words OpenAI clients know. A stop sequence is OpenAI's `stop`, a
/// refusal its `content_filter`; a reason no door has a word for, or none, is `stop` (the
/// answer is whole: promptd answers only complete ones).
pub fn finish_reason(reason: Option<&FinishReason>) -> &'static str {
    match reason {
        None | Some(FinishReason::Stop | FinishReason::StopSequence | FinishReason::Other(_)) => {
            "stop"
        }
        Some(FinishReason::Length) => "length",
        Some(FinishReason::ToolCalls) => "tool_calls",
        Some(FinishReason::ContentFilter | FinishReason::Refusal) => "content_filter",
    }
}

/// The model's finish reason of an OpenAI `finish_reason`: the one place this wire's word
/// becomes the model's. `function_call` (the deprecated functions API) is a tool call; a word
/// OpenAI adds later is kept as [`FinishReason::Other`].
pub fn finish_reason_of(reason: &str) -> FinishReason {
    match reason {
        "stop" => FinishReason::Stop,
        "length" => FinishReason::Length,
        "tool_calls" | "function_call" => FinishReason::ToolCalls,
        "content_filter" => FinishReason::ContentFilter,
        other => FinishReason::Other(other.to_owned()),
    }
}

/// OpenAI's `usage`: `prompt_tokens` counts every prompt token (cache reads and writes too);
/// the cached ones and the reasoning ones are told in the details when there are any.
pub fn usage_json(usage: &Usage) -> Value {
    let (input, output) = (usage.total_input(), usage.output);
    let mut body = json!({"prompt_tokens": input, "completion_tokens": output,
        "total_tokens": input.saturating_add(output)});
    if usage.cache_read > 0 {
        body["prompt_tokens_details"] = json!({"cached_tokens": usage.cache_read});
    }
    if usage.reasoning > 0 {
        body["completion_tokens_details"] = json!({"reasoning_tokens": usage.reasoning});
    }
    body
}
