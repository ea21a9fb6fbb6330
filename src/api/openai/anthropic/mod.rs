//! OpenAI chat completions <-> Anthropic Messages, on `serde_json::Value` bodies.
//!
//! Three pure translations, each with golden tests over recorded wire shapes
//! (`tests/fixtures/openai_compat_*`, `tests/openai_anthropic_translation.rs`):
//! [`request_to_anthropic`] (OpenAI request -> Anthropic request), [`response_from_anthropic`]
//! (Anthropic answer -> `chat.completion`) and [`StreamTranslator`] (Anthropic SSE events ->
//! `chat.completion.chunk`s). [`assemble`] folds chunks back into a `chat.completion`, which
//! the tests use to check that a stream and its non-stream twin say the same thing.
//!
//! # Requests
//!
//! The rule: **a field that can change the answer is translated or refused** (a
//! [`TranslateError`], a 400 naming the parameter), never dropped. A field is ignored only when
//! it cannot change the answer. `null` means absent for every field, and a field set to its
//! OpenAI default (`n: 1`, `logprobs: false`, penalties `0`, `response_format: {type: text}`,
//! `logit_bias: {}`, `modalities: ["text"]`, `verbosity: "medium"`) is accepted.
//!
//! | OpenAI | Anthropic |
//! |---|---|
//! | `system` / `developer` messages (anywhere) | top-level `system`: their texts, in order, joined by a blank line |
//! | `user` content string | the same string |
//! | `user` parts: `text`; `image_url` with a `data:<type>;base64,` URL; with an `http(s)` URL | `text` block; `image` with a `base64` source and its `media_type` (jpeg, png, gif, webp); `image` with a `url` source (`detail` is a resolution hint: ignored) |
//! | `assistant` `content` (string, `text` or `refusal` parts) and `tool_calls` | `text` blocks, then `tool_use` blocks (`arguments` parsed into the `input` object; `""` is `{}`) |
//! | `tool` messages | `tool_result` blocks (`tool_call_id` -> `tool_use_id`) in a user turn |
//! | consecutive turns of one role (e.g. several `tool` results, or `tool` then `user`) | merged into one turn; a merged turn is a block list |
//! | a merged user turn holding tool results and text | the `tool_result` blocks first (Anthropic's order) |
//! | a message with no text and no tool calls | left out (Anthropic rejects empty turns) |
//! | a conversation that starts with `assistant` | a `"."` user turn is put first (Anthropic starts with user) |
//! | `tools` (`type: function`) | `{name, description, input_schema}` (`parameters`, default an empty object schema) |
//! | `tool_choice`: `auto`, `none`, `required`, `{type: function, function: {name}}` | `{type: auto}`, `{type: none}` (tools are kept: the history may hold `tool_use` blocks), `{type: any}`, `{type: tool, name}` |
//! | `parallel_tool_calls: false` | `disable_parallel_tool_use: true` on the tool choice (`auto` if none given) |
//! | `max_completion_tokens`, else `max_tokens`, else the caller's default | `max_tokens` |
//! | `stop` (string or list) | `stop_sequences` |
//! | `temperature` (0..=1; above 1 refused: Anthropic's range ends at 1), `top_p` | the same |
//! | `user`, `safety_identifier` (preferred when both) | `metadata.user_id` |
//! | `stream: true` | `stream: true` |
//!
//! Refused when set to anything but the default: `n > 1`, `logprobs`, `top_logprobs`, `audio`,
//! `modalities` with `audio`, `logit_bias`, `presence_penalty`, `frequency_penalty`,
//! `response_format` other than `text` (Anthropic has no JSON mode), `seed` (a client that sets
//! it asks for reproducible sampling, which Anthropic cannot give), `reasoning_effort` (extended
//! thinking is a different contract: budgets and thinking blocks), `verbosity`,
//! `web_search_options`, the deprecated `functions` / `function_call` and `function`-role
//! messages (use `tools`), tools of a type other than `function`, content parts other than the
//! ones above (`input_audio`, `file`), and any field this module does not know (OpenAI itself
//! answers an unrecognized argument with a 400).
//!
//! Ignored, because they cannot change the answer: `model` (the caller resolved it and passes
//! it in), `stream_options` (only how usage is reported; the caller reads it with
//! [`include_usage`]), `metadata` and `store` (OpenAI's stored-completions dashboard),
//! `service_tier` (price and latency class), `prompt_cache_key` (a routing hint for OpenAI's
//! prompt cache), `prediction` (predicted outputs only speed the answer up; it is the same
//! answer), a message's `name` (Anthropic has no participant names; it is dropped), and a
//! tool's `strict` (the model still gets the schema; only OpenAI's adherence guarantee is lost).
//!
//! # Answers
//!
//! `text` blocks are joined into `message.content` (`null` when the answer is only tool
//! calls), `tool_use` blocks become `message.tool_calls` (`arguments` is the JSON text of
//! `input`), `thinking` and other blocks carry no answer and are skipped. `finish_reason` comes
//! from `stop_reason` ([`finish_reason`]). `usage.prompt_tokens` counts the input tokens
//! including those read from or written to Anthropic's prompt cache
//! (`prompt_tokens_details.cached_tokens` is the read part). `system_fingerprint` is `null`.
//!
//! # Streams
//!
//! The first chunk carries `delta: {role: assistant, content: ""}`; text deltas become
//! `delta.content`. Tool calls are numbered 0, 1, ... in the order their `tool_use` blocks start
//! (the Anthropic block index also counts text blocks, so it is not the OpenAI `index`); a
//! call's first delta carries its `id`, `type: function`, `function.name` and `arguments: ""`,
//! and every non-empty `partial_json` fragment follows as an `arguments` piece. The chunk with
//! `finish_reason` is sent on `message_delta`; [`StreamTranslator::finish`] adds the usage
//! chunk (`choices: []`) when the client asked for `stream_options.include_usage`, with input
//! tokens from `message_start` and the cumulative output tokens of the last `message_delta`.
//! `ping`, `content_block_stop`, thinking deltas and unknown events yield nothing; an `error`
//! event ends the stream with an OpenAI error body ([`error_from_anthropic`]).

mod request;
mod response;
mod stream;

use serde_json::{json, Value};

use super::response::finish_reason as openai_finish_reason;
use crate::model::FinishReason;

pub use request::{include_usage, request_to_anthropic};
pub use response::response_from_anthropic;
pub use stream::{assemble, StreamTranslator};

/// A request field with no Anthropic translation, or a malformed one: a 400 naming the
/// parameter (`param` is the OpenAI path, e.g. `messages[2].tool_calls[0].function.arguments`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{param}: {message}")]
pub struct TranslateError {
    pub param: String,
    pub message: String,
}

impl TranslateError {
    pub fn new(param: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            param: param.into(),
            message: message.into(),
        }
    }

    /// The OpenAI error body of this error (`type: invalid_request_error`, `param` set).
    pub fn to_openai(&self) -> Value {
        json!({"error": {
            "message": format!("{}: {}", self.param, self.message),
            "type": "invalid_request_error",
            "param": self.param,
            "code": null,
        }})
    }
}

/// The model's finish reason of an Anthropic `stop_reason`: the one place this provider kind's
/// word becomes the model's. `model_context_window_exceeded` (the context, not `max_tokens`,
/// ran out) is a length stop too; `pause_turn` (a server tool's long turn paused, to be
/// continued) and any word Anthropic adds later are kept as [`FinishReason::Other`].
pub fn stop_reason(reason: &str) -> FinishReason {
    match reason {
        "end_turn" => FinishReason::Stop,
        "stop_sequence" => FinishReason::StopSequence,
        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
        "tool_use" => FinishReason::ToolCalls,
        "refusal" => FinishReason::Refusal,
        other => FinishReason::Other(other.to_owned()),
    }
}

/// The OpenAI `finish_reason` of an Anthropic `stop_reason`, through the model: Anthropic's word
/// decoded by [`stop_reason`], rendered by the OpenAI door's
/// [`super::response::finish_reason`] (so `refusal` is `content_filter`, an unknown word `stop`).
pub fn finish_reason(reason: &str) -> &'static str {
    openai_finish_reason(Some(&stop_reason(reason)))
}

/// An Anthropic error body (`{"type": "error", "error": {"type", "message"}}`, the body of a
/// non-2xx answer or of an `event: error`) as an OpenAI error body
/// `{"error": {"message", "type", "code"}}`. `code` keeps Anthropic's error type
/// (`overloaded_error`), `type` is the nearest OpenAI one.
pub fn error_from_anthropic(anthropic: &Value) -> Value {
    let kind = anthropic
        .pointer("/error/type")
        .and_then(Value::as_str)
        .unwrap_or("api_error");
    let message = anthropic
        .pointer("/error/message")
        .and_then(Value::as_str)
        .unwrap_or("the provider reported an error without a message");
    let openai_type = match kind {
        "invalid_request_error" | "request_too_large" => "invalid_request_error",
        "authentication_error" => "authentication_error",
        "permission_error" => "permission_error",
        "not_found_error" => "not_found_error",
        "rate_limit_error" => "rate_limit_error",
        _ => "server_error", // api_error, overloaded_error, timeout_error
    };
    json!({"error": {"message": message, "type": openai_type, "param": null, "code": kind}})
}

/// Anthropic token counts as OpenAI `usage` (cache reads and writes count as prompt tokens).
fn usage(input: Option<u64>, cache_read: u64, cache_creation: u64, output: u64) -> Value {
    let prompt = input.unwrap_or(0) + cache_read + cache_creation;
    let mut usage = json!({
        "prompt_tokens": prompt,
        "completion_tokens": output,
        "total_tokens": prompt + output,
    });
    if cache_read > 0 {
        usage["prompt_tokens_details"] = json!({"cached_tokens": cache_read});
    }
    usage
}

/// The three input counts of an Anthropic `usage` object: plain, cache read, cache creation.
fn input_tokens(usage: &Value) -> (Option<u64>, u64, u64) {
    let n = |key: &str| usage.get(key).and_then(Value::as_u64);
    (
        n("input_tokens"),
        n("cache_read_input_tokens").unwrap_or(0),
        n("cache_creation_input_tokens").unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finish_reasons() {
        assert_eq!(finish_reason("end_turn"), "stop");
        assert_eq!(finish_reason("stop_sequence"), "stop");
        assert_eq!(finish_reason("max_tokens"), "length");
        assert_eq!(finish_reason("tool_use"), "tool_calls");
        assert_eq!(finish_reason("refusal"), "content_filter");
        assert_eq!(finish_reason("model_context_window_exceeded"), "length");
        assert_eq!(finish_reason("pause_turn"), "stop");
        assert_eq!(finish_reason("something_new"), "stop");
    }

    #[test]
    fn anthropic_errors_keep_their_type_as_code() {
        let body =
            json!({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}});
        assert_eq!(
            error_from_anthropic(&body),
            json!({"error": {"message": "Overloaded", "type": "server_error", "param": null,
                "code": "overloaded_error"}})
        );
        let body = json!({"type":"error","error":{"type":"invalid_request_error","message":"bad"}});
        assert_eq!(
            error_from_anthropic(&body)["error"]["type"],
            "invalid_request_error"
        );
    }

    #[test]
    fn usage_counts_cached_input() {
        let u = json!({"input_tokens": 5, "cache_read_input_tokens": 2, "cache_creation_input_tokens": 3});
        let (i, r, c) = input_tokens(&u);
        assert_eq!(
            usage(i, r, c, 7),
            json!({"prompt_tokens": 10, "completion_tokens": 7, "total_tokens": 17,
                "prompt_tokens_details": {"cached_tokens": 2}})
        );
    }
}
