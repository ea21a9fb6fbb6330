//! Anthropic Messages (`POST /v1/messages`) <-> the model, in all four directions:
//!
//! - [`decode_request`]: an Anthropic request body (the Anthropic front door) as a model
//!   [`Request`](crate::model::Request), with the names of the fields that are only hints;
//! - [`encode_request`]: a model request of any wire as the body for an Anthropic-kind provider
//!   (a translated call), refusing what would change the answer and cannot be said, and listing
//!   the hints it leaves out;
//! - [`decode_response`] and [`EventDecoder`]: an Anthropic answer, whole or streamed, as a model
//!   [`Response`](crate::model::Response) or [`StreamEvent`](crate::model::StreamEvent)s;
//! - [`render_response`] and [`EventRenderer`]: a model answer, whole or streamed, as Anthropic's
//!   `message` or its SSE events (for the Anthropic door when another kind answered, or on a
//!   cache hit), and [`render_error`] for its error body.
//!
//! Field paths in errors are those of the JSON they name, dotted with indexes in brackets
//! (`messages[2].content[0].type`). Everything an upstream controls is bounded before it sizes
//! an allocation (block indexes under [`MAX_BLOCKS`](crate::model::MAX_BLOCKS), at most
//! [`MAX_TOOL_CALLS`](crate::model::MAX_TOOL_CALLS) tool calls).
//!
//! # Requests from the Anthropic door ([`decode_request`])
//!
//! | Anthropic | model |
//! |---|---|
//! | `system`: a string, or `text` blocks | [`Request::system`](crate::model::Request): text blocks, in order |
//! | `messages[]` with role `user`, `assistant` or `system` (Claude Code sends one among the others) | messages of role User, Assistant, System, in place |
//! | content: a string, or blocks | one text block, or the blocks |
//! | `text` | Text |
//! | `image` with a `base64` or a `url` source | Image (`Base64` / `Url`) |
//! | `tool_use` (`input` an object) | ToolCall, `arguments` the compact JSON text of `input` |
//! | `tool_result` (content a string or `text`/`image` blocks; `is_error`) | ToolResult, kept in its user message (the model's Tool role is OpenAI's; Anthropic's tool results are user content, and keeping them there keeps a same-wire body's turns as they came) |
//! | `thinking` (`thinking`, `signature`) and `redacted_thinking` (`data`) | Reasoning with its signature, or with `redacted` |
//! | other blocks (`document`, `search_result`, server tool use and results, ...) | Opaque, the block's JSON as it came (sent back only to an Anthropic-kind provider) |
//! | `tools[]` (custom tools: `name`, `description`, `input_schema`, `strict`) | Tool |
//! | server tools (`web_search_20250305`, `code_execution_...`: a `type` other than `custom`) | `Request::hosted_tools`, as they came |
//! | `tool_choice` `auto` / `any` / `tool` / `none`; `disable_parallel_tool_use: true` | ToolChoice; `parallel_tool_calls: Some(false)` |
//! | `max_tokens` (absent: accepted, a translated call uses its default), `temperature`, `top_p`, `top_k`, `stop_sequences` | Params |
//! | `stream` | `Request::stream` |
//! | `metadata.user_id` | `Request::user` (and `metadata` kept as a hint) |
//!
//! Hints (they change cost or speed, not what the answer means) are kept verbatim in
//! `Request::extras` and named in [`Decoded::hints`]: `metadata`, `thinking`,
//! `context_management`, `output_config` when it holds only `effort` (a `format` in it asks for
//! a shape: not a hint), `service_tier`, `container`, `mcp_servers`, a top-level
//! `cache_control`; and `cache_control` on blocks and tools (which the model has no place for:
//! named `cache_control` in the hints, not in the extras). Every other unknown top-level field is
//! kept in the extras as one that may change the answer (a translated call refuses it).
//! Unknown fields inside typed blocks are ignored. Refused with the path of the field: a block
//! without a `type`, an image source other than `base64` / `url`, a missing required field, a
//! wrong JSON type.
//!
//! # Requests to an Anthropic-kind provider ([`encode_request`])
//!
//! The rules every door's call to an Anthropic-kind provider follows (the Parea route's and
//! the OpenAI route's alike), on the model:
//!
//! | model | Anthropic |
//! |---|---|
//! | `system` blocks, and System / Developer messages anywhere | top-level `system`: their texts in order joined by a blank line (a non-text block there is refused) |
//! | User and Tool messages; Assistant messages | `user` turns; `assistant` turns |
//! | consecutive turns of one role | merged into one turn, a block list, `tool_result` blocks first |
//! | a turn of one message holding one text block | its content as a string |
//! | empty text blocks, turns left empty | left out (Anthropic rejects empty turns) |
//! | a conversation that starts with the assistant | a `"."` user turn first |
//! | Image: `data:<type>;base64,` URL or Base64 source; `http(s)` URL | `image` with a `base64` source (jpeg, png, gif, webp; `image/jpg` is jpeg); with a `url` source; `detail` is a resolution hint: ignored |
//! | ToolCall | `tool_use`, `input` parsed from `arguments` (`""` is `{}`; not a JSON object: refused, naming the block) |
//! | ToolResult | `tool_result`: `tool_use_id`, `content` (one text block as a string; none: left out), `is_error` when true |
//! | Reasoning with a signature; with `redacted` | `thinking` with its signature; `redacted_thinking`; without either: left out (Anthropic rejects thinking it did not sign) |
//! | Opaque of the Anthropic wire; of another wire | the block as it came; refused |
//! | tools | `{name, description, input_schema}` (`parameters`, an empty object schema when null); `strict` only from the Anthropic wire (another wire's `strict` is named in `dropped`) |
//! | hosted tools | from the Anthropic wire, appended to `tools` as they came; from another, left out and named `tools.<type>` in `dropped` |
//! | tool choice Auto / None / Required / Tool | `{type: auto}` / `{type: none}` / `{type: any}` / `{type: tool, name}`; with no tools, Auto and None are left out and the others refused |
//! | `parallel_tool_calls: false` (with tools, choice not None) | `disable_parallel_tool_use: true` on the choice (`auto` if none) |
//! | `max_output_tokens`, else `EncodeOptions::default_max_tokens` | `max_tokens` (0 refused) |
//! | `temperature`, `top_p` (0..=1, else refused), `top_k` | the same |
//! | `stop` | `stop_sequences` (empty strings left out) |
//! | `user` | `metadata.user_id` (unless the extras carry Anthropic's own `metadata`) |
//! | `EncodeOptions::stream` | `stream: true` |
//!
//! Refused (a 400 naming the parameter): what [`crate::model::support::check`] refuses for an
//! Anthropic-kind provider (penalties, a JSON response format, a seed), `reasoning_effort`
//! (extended thinking is a different contract), and, for a request of another wire, every
//! extras key not named in the hints. A request of the Anthropic wire sends its extras as they
//! came (they are Anthropic fields).
//!
//! # Answers
//!
//! `stop_reason` <-> [`FinishReason`](crate::model::FinishReason): [`finish_reason`] and
//! [`stop_reason`]. Usage: `input_tokens` excludes the prompt tokens read from or written to
//! the prompt cache (`cache_read_input_tokens`, `cache_creation_input_tokens`), as the model's
//! [`Usage`](crate::model::Usage) does.

mod error;
mod request;
mod response;
mod stream;

pub use error::{decode_error, error_kind, error_type, render_error};
pub use request::{decode_request, encode_request, Decoded, EncodeOptions, Encoded};
pub use response::{decode_response, finish_reason, message_id, render_response, stop_reason};
pub use stream::{EventDecoder, EventRenderer};

use serde::{Deserialize, Serialize};

use crate::model::Usage;

/// Anthropic's `usage` object, as it comes and as it is rendered. Absent counts are `None`.
#[derive(Debug, Default, Clone, Copy, Deserialize, Serialize)]
struct WireUsage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cache_read_input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    output_tokens: Option<u64>,
}

impl From<WireUsage> for Usage {
    fn from(u: WireUsage) -> Usage {
        Usage {
            input: u.input_tokens.unwrap_or(0),
            output: u.output_tokens.unwrap_or(0),
            cache_read: u.cache_read_input_tokens.unwrap_or(0),
            cache_write: u.cache_creation_input_tokens.unwrap_or(0),
            // Anthropic counts thinking in `output_tokens` and reports no part of it apart.
            reasoning: 0,
        }
    }
}

impl From<Usage> for WireUsage {
    /// Every count, zeros included: Anthropic's answers always carry the four.
    fn from(u: Usage) -> WireUsage {
        WireUsage {
            input_tokens: Some(u.input),
            cache_creation_input_tokens: Some(u.cache_write),
            cache_read_input_tokens: Some(u.cache_read),
            output_tokens: Some(u.output),
        }
    }
}
