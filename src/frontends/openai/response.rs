//! OpenAI's answers: the `chat.completion` object and the `chat.completion.chunk` events of a
//! stream. An OpenAI-kind upstream's own body and chunks go back as received (fields promptd
//! does not know included); an answer promptd only has in parts (from a stream, a Parea-made
//! entry) is rendered from them, taking `id`, `created` and `system_fingerprint` from the
//! upstream's first chunk when there is one. A rendered answer's `finish_reason` is always one
//! of OpenAI's four words ([`finish_reason`]), whichever provider kind answered.

use bytes::Bytes;
use serde::Deserialize;

use crate::model::Response;
use crate::wire::openai_chat::{render_response, ChunkHeader};

pub use crate::wire::openai_chat::finish_reason;

/// The end of an OpenAI stream.
pub const DONE_EVENT: &[u8] = b"data: [DONE]\n\n";

/// What an answer is rendered from.
#[derive(Debug, Clone)]
pub struct AnswerView<'a> {
    /// The upstream's whole body as received, when it answered whole.
    pub raw_response: Option<&'a str>,
    /// The upstream's first stream chunk, when it streamed.
    pub first_chunk: Option<&'a str>,
    /// The id when the upstream gave none (`chatcmpl-` + the trace id).
    pub fallback_id: String,
    /// Unix seconds when the upstream gave none.
    pub created: i64,
    /// The answer as the model holds it (its model the one shown).
    pub response: &'a Response,
}

#[derive(Deserialize, Default)]
struct Ids {
    id: Option<String>,
    created: Option<i64>,
    system_fingerprint: Option<String>,
}

/// The fields every rendered object carries: `id`, `created`, `model`, `system_fingerprint`
/// (the upstream's, from its first chunk or its body, when it gave them).
pub fn chunk_header(view: &AnswerView<'_>) -> ChunkHeader {
    let ids: Ids = view
        .first_chunk
        .or(view.raw_response)
        .and_then(|c| serde_json::from_str(c).ok())
        .unwrap_or_default();
    ChunkHeader {
        id: ids.id.unwrap_or_else(|| view.fallback_id.clone()),
        created: ids.created.unwrap_or(view.created),
        model: view.response.model.clone().unwrap_or_default(),
        system_fingerprint: ids.system_fingerprint,
    }
}

/// The `chat.completion` body of an answer: the upstream's own when it answered whole, else
/// rendered from its parts by the OpenAI chat wire.
pub fn completion(view: &AnswerView<'_>) -> Bytes {
    if let Some(raw) = view.raw_response {
        return Bytes::from(raw.to_owned());
    }
    Bytes::from(render_response(view.response, &chunk_header(view)).to_string())
}

/// One SSE event of a chunk's JSON text.
pub fn chunk_event(json_text: &str) -> Bytes {
    let mut out = Vec::with_capacity(json_text.len() + 8);
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(json_text.as_bytes());
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

#[derive(Deserialize)]
struct UsageProbe {
    #[serde(default)]
    choices: Vec<serde::de::IgnoredAny>,
    #[serde(default)]
    usage: Option<serde::de::IgnoredAny>,
}

/// Whether an upstream chunk is the usage chunk (`choices: []` and a usage), which only a
/// client that asked for `include_usage` gets.
pub fn is_usage_chunk(json_text: &str) -> bool {
    serde_json::from_str::<UsageProbe>(json_text)
        .is_ok_and(|p| p.choices.is_empty() && p.usage.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Block, FinishReason, Usage};

    fn view(response: &Response) -> AnswerView<'_> {
        AnswerView {
            raw_response: None,
            first_chunk: Some(r#"{"id":"chatcmpl-1","created":5,"system_fingerprint":"fp"}"#),
            fallback_id: "chatcmpl-t".into(),
            created: 9,
            response,
        }
    }

    fn answer() -> Response {
        Response {
            model: Some("m".into()),
            blocks: vec![Block::ToolCall {
                id: "c".into(),
                name: "f".into(),
                arguments: "{}".into(),
            }],
            finish: Some(FinishReason::ToolCalls),
            usage: Usage {
                input: 1,
                output: 2,
                cache_read: 2,
                ..Usage::default()
            },
            ..Response::default()
        }
    }

    #[test]
    fn a_rendered_completion_has_openais_fields() {
        let body: serde_json::Value =
            serde_json::from_slice(&completion(&view(&answer()))).unwrap_or_default();
        assert_eq!(body["id"], "chatcmpl-1");
        assert_eq!(body["created"], 5);
        assert_eq!(body["system_fingerprint"], "fp");
        assert_eq!(body["object"], "chat.completion");
        assert!(body["choices"][0]["message"]["content"].is_null());
        assert_eq!(
            body["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
            "f"
        );
        assert_eq!(body["usage"]["total_tokens"], 5);
        assert_eq!(body["usage"]["prompt_tokens"], 3, "cached ones included");
        assert_eq!(body["usage"]["prompt_tokens_details"]["cached_tokens"], 2);
        assert!(
            body["usage"]["completion_tokens_details"].is_null(),
            "no reasoning"
        );
        assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
    }

    #[test]
    fn every_finish_reason_is_one_of_openais_words() {
        let other = FinishReason::Other("pause_turn".into());
        for (reason, word) in [
            (None, "stop"),
            (Some(&FinishReason::Stop), "stop"),
            (Some(&FinishReason::StopSequence), "stop"),
            (Some(&FinishReason::Length), "length"),
            (Some(&FinishReason::ToolCalls), "tool_calls"),
            (Some(&FinishReason::ContentFilter), "content_filter"),
            (Some(&FinishReason::Refusal), "content_filter"),
            (Some(&other), "stop"),
        ] {
            assert_eq!(finish_reason(reason), word, "{reason:?}");
        }
    }

    #[test]
    fn usage_chunks_are_told_apart() {
        assert!(is_usage_chunk(
            r#"{"choices":[],"usage":{"prompt_tokens":1}}"#
        ));
        assert!(!is_usage_chunk(
            r#"{"choices":[{"delta":{}}],"usage":null}"#
        ));
    }
}
