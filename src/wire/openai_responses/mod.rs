//! OpenAI Responses (`POST /v1/responses`) <-> the model, in all four directions:
//!
//! - [`decode_request`]: a Responses request body (the Responses front door: Codex, the OpenAI
//!   Agents SDK) as a model [`Request`](crate::model::Request), with the names of its hints;
//! - [`encode_request`]: a model request of any wire as the body for a provider that serves the
//!   Responses API, refusing what would change the answer and cannot be said, and listing the
//!   hints it leaves out;
//! - [`decode_response`] and [`EventDecoder`]: a Responses answer, whole or streamed (typed
//!   events), as a model [`Response`](crate::model::Response) or
//!   [`StreamEvent`](crate::model::StreamEvent)s;
//! - [`render_response`] and [`EventRenderer`]: a model answer, whole or streamed, as a
//!   `response` object or its typed events with `sequence_number` (for the Responses door when
//!   another kind answered, or on a cache hit), and [`render_error`] for its error body.
//!
//! Field paths in errors are those of the JSON they name (`input[2].content[0].type`).
//! Everything an upstream controls is bounded before it sizes an allocation (`output_index`
//! under [`MAX_BLOCKS`](crate::model::MAX_BLOCKS), at most
//! [`MAX_TOOL_CALLS`](crate::model::MAX_TOOL_CALLS) function calls).
//!
//! # Requests from the Responses door ([`decode_request`])
//!
//! | Responses | model |
//! |---|---|
//! | `instructions` (a string) | [`Request::system`](crate::model::Request): one text block |
//! | `input`: a string | one user message |
//! | `input[]` `message` items (and items with a `role` but no `type`), role `user` / `assistant` / `system` / `developer` | messages of that role, in place (`system` and `developer` are not moved up: they stand where the client put them) |
//! | content: a string; `input_text` / `output_text` parts; `refusal` parts | text blocks (a refusal is what the assistant said: its text) |
//! | `input_image` with `image_url` (`https:` or `data:`), `detail` | Image (`Url`), `detail` kept |
//! | `input_image` by `file_id`, `input_file`, `input_audio`, other parts | Opaque, the part as it came |
//! | `function_call` (`call_id`, `name`, `arguments`) | an assistant ToolCall (`id` is the `call_id`; `arguments` the text as it came) |
//! | `function_call_output` (`output` a string, or `input_text` / `input_image` / other parts) | a Tool message holding one ToolResult |
//! | `reasoning` (`summary[].text`, `encrypted_content`) | an assistant Reasoning block: the summary texts joined by a blank line, `encrypted` kept opaque; `content` (raw reasoning text of open-weight servers) is not kept |
//! | other items (`item_reference`, `custom_tool_call`, `web_search_call`, `mcp_*`, `*_output`, ...) | Opaque, the item as it came: a `*_call` item in the assistant's turn, a `*_output` item in a Tool message, any other in a user message |
//! | consecutive assistant-side items (`message` of role assistant, `function_call`, `reasoning`, `*_call`) | one assistant message, blocks in order (parallel calls are one turn for every other wire) |
//! | item `id` and `status` | not kept (Codex does not send them back either; OpenAI takes items without them) |
//! | `tools[]` of type `function` (`name`, `description`, `parameters`, `strict`) | Tool (`strict` as sent: absent is `None`, which the Responses API reads as `true`) |
//! | every other tool (`web_search`, `file_search`, `mcp`, `custom`, Codex's `namespace`, ...) | `Request::hosted_tools`, as they came |
//! | `tool_choice` `auto` / `none` / `required` / `{type: function, name}` | ToolChoice; any other choice (`allowed_tools`, a hosted tool's) is kept in the extras (it changes the answer) |
//! | `parallel_tool_calls`, `max_output_tokens`, `temperature`, `top_p` | Params |
//! | `text.format` `text` / `json_object` / `json_schema` (`name`, `schema`, `strict`) | `Params::response_format` (a schema's `description` is not kept) |
//! | `reasoning.effort` | `Params::reasoning_effort` |
//! | `safety_identifier`, else `user` | `Request::user` |
//! | `stream` | `Request::stream` |
//!
//! **Namespace tools.** Codex sends a `namespace` tool grouping function tools
//! (`multi_agent_v1`: `spawn_agent`, `wait_agent`, ...). It is kept whole as a hosted tool, not
//! flattened into the model's tools: the model calls a namespaced function by the namespace and
//! its name, and a flattened call would come back under a bare name the client cannot route.
//! A call to a Responses provider sends it as it came; a translated call leaves it out and
//! names it (`tools.namespace`) in the dropped list, like a hosted tool: the agent keeps
//! working without those functions. `custom` (free-form grammar) tools go the same way.
//!
//! **Hints** (they change cost, speed, retention or what is shown, never what the answer means)
//! are kept verbatim in `Request::extras` and named in [`Decoded::hints`]:
//!
//! | field | why a hint |
//! |---|---|
//! | `prompt_cache_key`, `prompt_cache_retention` | prompt-cache routing: cost and speed |
//! | `include` | extra output data (encrypted reasoning, sources, logprobs), not another answer |
//! | `store` | whether OpenAI keeps the response: retention |
//! | `metadata`, `client_metadata` | labels for the client's own use |
//! | `reasoning` without its `effort` (`summary`, `generate_summary`) | whether a summary of the reasoning is shown |
//! | `service_tier` | priority and price |
//! | `stream_options` | event framing (`include_obfuscation`) |
//! | `truncation: "disabled"` (the default) | neutral; `"auto"` drops the head of the conversation: not a hint |
//! | `text` without its `format` when it holds only `verbosity: "medium"` (the default) | neutral; another verbosity asks for a shorter or longer answer: not a hint |
//! | `background: false`, `top_logprobs: 0` | neutral values |
//!
//! **Not hints, kept in the extras**: `previous_response_id` and `conversation` (they put
//! earlier turns before the input: the door must resolve them or refuse them, and a translated
//! call refuses them by name), and every other field (`prompt`, `max_tool_calls`,
//! `background: true`, a non-function `tool_choice`, ...). `null` is absent for every field.
//! Refused with the path of the field: a wrong JSON type, a missing required field, an unknown
//! role, a `type` that is not a string.
//!
//! # Requests to a Responses provider ([`encode_request`])
//!
//! | model | Responses |
//! |---|---|
//! | `system` text blocks | `instructions`, joined by a blank line (another block there is refused) |
//! | System / Developer / User messages | `message` items of that role: `input_text` and `input_image` parts (`image_url` a URL, or a `data:` URL of a base64 image; `detail` `auto` when unset) |
//! | Assistant messages | their blocks in order: texts as one `message` item (role assistant, `output_text` parts), ToolCall as `function_call`, Reasoning with encrypted content as `reasoning` (`summary` its text); reasoning without it (another provider's) is left out and named `reasoning` in the dropped list |
//! | ToolResult (in a Tool message or, Anthropic-style, in a user message) | `function_call_output` before the message's other content: `output` the text when it is text only, else `input_text` / `input_image` parts; an error result's text is prefixed `Error: ` |
//! | Opaque of this wire | a content part when its `type` is one (`input_file`, ...), else an item, as it came; of another wire: refused |
//! | tools | `{type: function, name, description, parameters, strict}`: `strict` as the request said on this wire; from another wire `false` when unset (the Responses API's default is `true`, which other wires' schemas do not meet) |
//! | hosted tools | from this wire, appended as they came; from another, left out and named `tools.<type>` |
//! | tool choice, `parallel_tool_calls`, `max_output_tokens`, `temperature`, `top_p` | the same names |
//! | response format | `text.format` |
//! | `reasoning_effort` | `reasoning.effort` |
//! | `user` | `user` |
//! | `EncodeOptions::stream` | `stream: true` |
//!
//! Refused (a 400 naming the parameter): `stop`, `top_k`, `seed`, and presence or frequency
//! penalties other than 0 (the Responses API has none of them), and, for a request of another
//! wire, every extras key not named in the hints. A request of this wire sends its extras as
//! they came (`reasoning` and `text` merged with the effort and format the model holds); one of
//! another wire is sent with `store: false` (its client never asked OpenAI to keep anything).
//!
//! # Answers
//!
//! `status` <-> [`FinishReason`]: `completed` is Stop, or
//! ToolCalls when the output holds a `function_call`, or Refusal when its only text is a
//! refusal; `incomplete` with `incomplete_details.reason` `max_output_tokens` is Length,
//! `content_filter` ContentFilter; `failed` is the error of its `error.code`. Usage:
//! `input_tokens` counts every input token, the cached ones
//! (`input_tokens_details.cached_tokens`, the model's `cache_read`) included; the model's
//! `input` excludes them. `output_tokens_details.reasoning_tokens` is the model's `reasoning`.
//! The stream events, decoded and rendered, are tabled in `stream.rs`.

mod error;
mod render;
mod request;
mod response;
mod stream;

pub use error::{error_code, error_kind, render_error};
pub use request::{decode_request, encode_request, Decoded, EncodeOptions, Encoded};
pub use response::{decode_response, render_response, response_id, ResponseHeader};
pub use stream::{EventDecoder, EventRenderer};

use serde::Deserialize;

use crate::model::{FinishReason, Usage};

/// The Responses API's `usage`, as it comes. Absent counts are 0.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
struct WireUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    input_tokens_details: Option<InputDetails>,
    #[serde(default)]
    output_tokens_details: Option<OutputDetails>,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
struct InputDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
struct OutputDetails {
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

impl From<WireUsage> for Usage {
    /// The cached part is taken out of `input` (never more than the input, so the total stays
    /// `input_tokens`); the Responses API reports no cache writes.
    fn from(u: WireUsage) -> Usage {
        let cached = u
            .input_tokens_details
            .and_then(|d| d.cached_tokens)
            .unwrap_or(0)
            .min(u.input_tokens);
        Usage {
            input: u.input_tokens - cached,
            output: u.output_tokens,
            cache_read: cached,
            cache_write: 0,
            reasoning: u
                .output_tokens_details
                .and_then(|d| d.reasoning_tokens)
                .unwrap_or(0),
        }
    }
}

/// The `status` of a response that ended for `reason`, and its `incomplete_details.reason`:
/// a length stop is `incomplete` (`max_output_tokens`), a content filter `incomplete`
/// (`content_filter`); every other reason (a refusal, a stop sequence, another wire's word) is
/// `completed`: the answer is whole.
fn status_of(reason: Option<&FinishReason>) -> (&'static str, Option<&'static str>) {
    match reason {
        Some(FinishReason::Length) => ("incomplete", Some("max_output_tokens")),
        Some(FinishReason::ContentFilter) => ("incomplete", Some("content_filter")),
        _ => ("completed", None),
    }
}

/// The model's finish reason of an `incomplete_details.reason`.
fn incomplete_reason(reason: Option<&str>) -> FinishReason {
    match reason {
        Some("max_output_tokens") => FinishReason::Length,
        Some("content_filter") => FinishReason::ContentFilter,
        Some(other) => FinishReason::Other(other.to_owned()),
        None => FinishReason::Other("incomplete".to_owned()),
    }
}
