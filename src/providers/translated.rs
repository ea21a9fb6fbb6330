//! An OpenAI-route request answered by an Anthropic-kind provider: the answer and the stream
//! translated into OpenAI's shapes with [`crate::api::openai::anthropic`].
//!
//! The request body was translated once, before any upstream call (`engine::prepare`, kept in
//! [`ChatRequest::translated`](super::ChatRequest)). Here a whole Anthropic answer becomes a
//! `chat.completion` body, read back with [`openai::parse_response`] so the [`Completion`]'s
//! `raw` is that OpenAI body (replayed as it is by the OpenAI route) and its text, tool calls,
//! usage and finish reason are filled for the Parea rendering and the log record. A stream's
//! events go through a [`StreamTranslator`]; each chunk it yields is one piece, decoded by
//! [`openai::StreamState`] as an OpenAI-kind upstream's chunk would be. The translator always
//! adds the usage chunk (as promptd asks OpenAI-kind upstreams for it): the route drops it for
//! a client that did not ask.
//!
//! The finish reason and the usage are the exceptions. The finish reason is decoded from Anthropic's own `stop_reason` by
//! [`anthropic::finish_reason`], not read back from the OpenAI body, whose `stop` says both
//! `end_turn` and `stop_sequence` (and `content_filter` a `refusal`): the entry keeps what the
//! model said, for any door to render.
//!
//! The usage is read from the Anthropic side, never from the OpenAI rendering: OpenAI's shape
//! has no field for cache writes (they are part of its `prompt_tokens`), and they are priced
//! at their own rate.

use serde_json::Value;

use super::sse::SseEvent;
use super::{anthropic, openai};
use super::{Completion, Decoded, ProviderError, Usage};
use crate::api::openai::anthropic::{response_from_anthropic, StreamTranslator};
use crate::model::FinishReason;

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

/// A whole Anthropic answer as a [`Completion`] whose `raw` is the `chat.completion` body.
/// `model` is shown when the answer names none.
pub fn parse_response(body: &[u8], model: &str) -> Result<Completion, ProviderError> {
    let anthropic: Value = serde_json::from_slice(body)
        .map_err(|e| ProviderError::Protocol(format!("messages body: {e}")))?;
    if !anthropic.is_object() {
        return Err(ProviderError::Protocol(
            "messages body is not a JSON object".into(),
        ));
    }
    let id = answer_id(anthropic.get("id").and_then(Value::as_str));
    let model = anthropic
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or(model);
    let openai_body = response_from_anthropic(&anthropic, &id, now_unix(), model);
    let mut completion = openai::parse_response(openai_body.to_string().as_bytes())?;
    if let Some(reason) = anthropic.get("stop_reason").and_then(Value::as_str) {
        completion.finish_reason = Some(anthropic::finish_reason(reason));
    }
    completion.usage = anthropic::usage_of(&anthropic["usage"]);
    Ok(completion)
}

/// The state of one translated stream.
#[derive(Debug)]
pub struct StreamState {
    translator: StreamTranslator,
    /// Accumulates the completion from the chunks, as for an OpenAI-kind upstream.
    chunks: openai::StreamState,
    /// The `stop_reason` of `message_delta`, decoded as Anthropic's.
    stop_reason: Option<FinishReason>,
    /// The usage as the Anthropic events report it.
    usage: Usage,
    done: bool,
}

impl StreamState {
    /// `model` goes into every chunk; at most `held` bytes of the answer are held.
    pub fn new(model: &str, held: usize) -> Self {
        StreamState {
            translator: StreamTranslator::new(&answer_id(None), now_unix(), model, true),
            chunks: openai::StreamState::new(held),
            stop_reason: None,
            usage: Usage::default(),
            done: false,
        }
    }

    /// One Anthropic event: a [`Decoded`] per chunk it yields, then one with `done` after
    /// `message_stop`. An `error` event is a stream error with its message.
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
        let kind = match name {
            "" => data.get("type").and_then(Value::as_str).unwrap_or(""),
            name => name,
        };
        if let Some(reason) = data.pointer("/delta/stop_reason").and_then(Value::as_str) {
            self.stop_reason = Some(anthropic::finish_reason(reason));
        }
        anthropic::stream_usage(&mut self.usage, kind, &data);
        let stop = kind == "message_stop";
        if stop {
            chunks.extend(self.translator.finish());
        }
        let mut out = Vec::with_capacity(chunks.len() + 1);
        for chunk in chunks {
            let piece = SseEvent {
                event: None,
                data: chunk.to_string(),
            };
            out.push(self.chunks.on_event(&piece)?);
        }
        if stop {
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

    /// The completion; its finish reason Anthropic's, when `message_delta` gave one.
    pub fn into_completion(self) -> Completion {
        let mut completion = self.chunks.into_completion();
        if self.stop_reason.is_some() {
            completion.finish_reason = self.stop_reason;
        }
        completion.usage = self.usage;
        completion
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            c.finish_reason,
            Some(FinishReason::Stop),
            "no message_delta"
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
