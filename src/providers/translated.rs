//! An OpenAI-route request answered by an Anthropic-kind provider: the answer and the stream
//! translated into OpenAI's shapes with [`crate::api::openai::anthropic`].
//!
//! The request body was translated once, before any upstream call (`engine::prepare`, kept in
//! [`ChatRequest::translated`](super::ChatRequest)). Here the answer is decoded as Anthropic's
//! ([`anthropic`]: text, tool calls, usage with cache reads and writes apart, the finish reason
//! in Anthropic's own words) for the entry, the Parea rendering and the log record, and rendered
//! into OpenAI's shapes for the OpenAI-route client: a whole answer's `chat.completion` body (the
//! [`Completion`]'s `raw`, replayed as it is), a stream's chunks from a [`StreamTranslator`]. No
//! rendering is read back: each answer and event is parsed once. The translator always adds the
//! usage chunk (as promptd asks OpenAI-kind upstreams for it): the route drops it for a client
//! that did not ask.

use serde_json::Value;

use super::anthropic;
use super::sse::SseEvent;
use super::{Completion, Decoded, ProviderError};
use crate::api::openai::anthropic::{response_from_anthropic, StreamTranslator};

fn now_unix() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0)
}

/// An id for an answer: `chatcmpl-` and the Anthropic message id, or a fresh one.
fn answer_id(anthropic_id: Option<&str>) -> String {
    match anthropic_id {
        Some(id) if !id.is_empty() => format!("chatcmpl-{id}"),
        _ => format!("chatcmpl-{}", uuid::Uuid::new_v4().simple()),
    }
}

/// A whole Anthropic answer as a [`Completion`] (decoded as Anthropic's, [`anthropic`]) whose
/// `raw` is the `chat.completion` body rendered from it. `model` is shown when the answer names
/// none.
pub fn parse_response(body: &[u8], model: &str) -> Result<Completion, ProviderError> {
    let anthropic: Value = serde_json::from_slice(body)
        .map_err(|e| ProviderError::Protocol(format!("messages body: {e}")))?;
    let mut completion = anthropic::parse_value(&anthropic)?;
    let id = answer_id(anthropic.get("id").and_then(Value::as_str));
    let model = anthropic
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or(model);
    let openai_body = response_from_anthropic(&anthropic, &id, now_unix(), model);
    completion.raw = Some(openai_body.to_string());
    Ok(completion)
}

/// The state of one translated stream: each Anthropic event is parsed once, decoded as
/// Anthropic's (the text, tool calls, usage and finish reason of the completion) and
/// translated into the OpenAI chunks the client gets, which are not read again.
#[derive(Debug)]
pub struct StreamState {
    translator: StreamTranslator,
    anthropic: anthropic::StreamState,
    done: bool,
}

/// Whether a chunk only reports usage (`choices: []`): sent only to clients that asked.
fn is_usage_only(chunk: &Value) -> bool {
    chunk
        .get("choices")
        .and_then(Value::as_array)
        .is_some_and(Vec::is_empty)
        && chunk.get("usage").is_some_and(|u| !u.is_null())
}

impl StreamState {
    /// `model` goes into every chunk; at most `held` bytes of the answer are held.
    pub fn new(model: &str, held: usize) -> Self {
        StreamState {
            translator: StreamTranslator::new(&answer_id(None), now_unix(), model, true),
            anthropic: anthropic::StreamState::new(held),
            done: false,
        }
    }

    /// One Anthropic event: a [`Decoded`] per chunk it yields (the event's text on the first),
    /// then one with `done` after `message_stop`. An `error` event is a stream error with its
    /// message.
    pub fn on_event(&mut self, event: &SseEvent) -> Result<Vec<Decoded>, ProviderError> {
        let data: Value = serde_json::from_str(&event.data)
            .map_err(|e| ProviderError::Stream(format!("unreadable stream event: {e}")))?;
        let index = data.get("index").and_then(Value::as_u64).unwrap_or(0);
        if index >= super::MAX_CONTENT_BLOCKS {
            return Err(ProviderError::Stream(format!(
                "content block index {index} is beyond the limit of {} blocks in one answer",
                super::MAX_CONTENT_BLOCKS
            )));
        }
        let name = event.event.as_deref().unwrap_or("");
        let mut chunks = self.translator.event(name, &data).map_err(|body| {
            ProviderError::Stream(
                body.pointer("/error/message")
                    .and_then(Value::as_str)
                    .unwrap_or("the provider's stream failed")
                    .to_owned(),
            )
        })?;
        let decoded = self.anthropic.on_value(event.event.as_deref(), &data)?;
        if decoded.done {
            chunks.extend(self.translator.finish());
        }
        let mut text = decoded.delta;
        let mut out: Vec<Decoded> = chunks
            .into_iter()
            .map(|chunk| Decoded {
                delta: text.take(),
                usage_only: is_usage_only(&chunk),
                chunk: Some(chunk.to_string()),
                done: false,
                events: Vec::new(),
            })
            .collect();
        if let Some(text) = text {
            out.push(Decoded {
                delta: Some(text),
                ..Decoded::default()
            });
        }
        if decoded.done {
            self.done = true;
            out.push(Decoded {
                done: true,
                ..Decoded::default()
            });
        }
        Ok(out)
    }

    /// `message_stop` was seen.
    pub fn ended_cleanly(&self) -> bool {
        self.done
    }

    /// The completion, as Anthropic's events told it.
    pub fn into_completion(self) -> Completion {
        self.anthropic.into_completion()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{FinishReason, Usage};

    fn event(name: &str, data: &str) -> SseEvent {
        SseEvent {
            event: Some(name.into()),
            data: data.into(),
        }
    }

    #[test]
    fn a_whole_answer_is_an_openai_body_with_the_completion_filled() {
        let body = br#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-x",
            "content":[{"type":"text","text":"Hi"}],"stop_reason":"end_turn",
            "usage":{"input_tokens":3,"output_tokens":1,"cache_creation_input_tokens":5,
            "cache_read_input_tokens":7}}"#;
        let c = parse_response(body, "asked").expect("parses");
        assert_eq!(c.text, "Hi");
        assert_eq!(c.finish_reason, Some(FinishReason::Stop));
        assert_eq!(
            c.usage,
            Usage {
                input: 3,
                output: 1,
                cache_read: 7,
                cache_write: 5,
                reasoning: 0,
            }
        );
        let raw: Value = serde_json::from_str(c.raw.as_deref().unwrap_or("")).expect("json");
        assert_eq!(raw["object"], "chat.completion");
        assert_eq!(raw["id"], "chatcmpl-msg_1");
        assert!(parse_response(b"[1]", "m").is_err());
    }

    #[test]
    fn a_stream_yields_chunks_then_done_and_errors_carry_the_message() {
        let mut s = StreamState::new("m", usize::MAX);
        let d = s
            .on_event(&event(
                "message_start",
                r#"{"type":"message_start","message":{"usage":{"input_tokens":2,"cache_creation_input_tokens":4}}}"#,
            ))
            .expect("ok");
        assert!(d.iter().all(|d| !d.done));
        let d = s
            .on_event(&event(
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Yo"}}"#,
            ))
            .expect("ok");
        assert!(d.iter().any(|d| d.delta.as_deref() == Some("Yo")));
        let d = s
            .on_event(&event("message_stop", r#"{"type":"message_stop"}"#))
            .expect("ok");
        assert!(d.last().is_some_and(|d| d.done));
        assert!(s.ended_cleanly());
        let c = s.into_completion();
        assert_eq!(c.text, "Yo");
        assert_eq!(
            c.finish_reason, None,
            "no message_delta: no reason (the OpenAI door renders it `stop`)"
        );
        assert_eq!((c.usage.input, c.usage.cache_write), (2, 4));
        let mut s = StreamState::new("m", usize::MAX);
        let err = s
            .on_event(&event(
                "error",
                r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            ))
            .unwrap_err();
        assert_eq!(err.to_string(), "Overloaded");
    }

    #[test]
    fn the_finish_reason_is_anthropics_not_the_openai_bodys() {
        let body = br#"{"content":[{"type":"text","text":"Hi"}],"stop_reason":"stop_sequence"}"#;
        let c = parse_response(body, "m").expect("parses");
        assert_eq!(c.finish_reason, Some(FinishReason::StopSequence));
        let raw: Value = serde_json::from_str(c.raw.as_deref().unwrap_or("")).expect("json");
        assert_eq!(
            raw["choices"][0]["finish_reason"], "stop",
            "the OpenAI body's word"
        );
        let mut s = StreamState::new("m", usize::MAX);
        for (name, data) in [
            (
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":"refusal"}}"#,
            ),
            ("message_stop", r#"{"type":"message_stop"}"#),
        ] {
            s.on_event(&event(name, data)).expect("ok");
        }
        assert_eq!(
            s.into_completion().finish_reason,
            Some(FinishReason::Refusal)
        );
    }
}
