//! OpenAI chat completions (`POST {base_url}/chat/completions`), also spoken by
//! OpenAI-compatible servers: the request body, and the answers decoded by the OpenAI chat
//! wire ([`crate::wire::openai_chat`]) into the model — a whole one kept with its body as
//! received, a stream's chunks assembled within bounds and forwarded as received.

use super::sse::SseEvent;
use super::{Completion, Decoded, ProviderError};
use crate::model::{Assembler, BlockKind, StreamEvent};
use crate::wire::openai_chat::{self as wire, EventDecoder};

/// The model's finish reason of an OpenAI `finish_reason` (the wire's mapping).
pub use crate::wire::openai_chat::finish_reason_of as finish_reason;

/// Parse a whole (non-stream) answer: the model's response, and the body kept as received.
pub fn parse_response(body: &[u8]) -> Result<Completion, ProviderError> {
    let response = wire::decode_response(body).map_err(|e| ProviderError::Protocol(e.message))?;
    Ok(Completion {
        response,
        raw: std::str::from_utf8(body).ok().map(str::to_owned),
        truncated: false,
    })
}

/// The state of an OpenAI stream: its decoder, and the answer assembled from its events within
/// `held` bytes (its head; `truncated` when more came). Tool calls whose ids, names and
/// arguments are longer than `held` fail the stream. Each chunk is parsed once; its JSON goes
/// on as received (the OpenAI route forwards it), its events feed the assembler and, for a
/// door that renders the model ([`StreamState::keeping_events`]), go on with the chunk.
#[derive(Debug)]
pub struct StreamState {
    decoder: EventDecoder,
    assembler: Assembler,
    /// The events of the chunk being read (kept to reuse its allocation).
    events: Vec<StreamEvent>,
    /// Each chunk's events go on with it ([`Decoded::chunk_events`]).
    keep_events: bool,
    /// Bytes of the tool calls' ids, names and arguments.
    tool_bytes: usize,
    held: usize,
}

impl Default for StreamState {
    /// Holding everything: for tests.
    fn default() -> Self {
        StreamState::new(usize::MAX)
    }
}

impl StreamState {
    /// A stream's state, holding at most `held` bytes of the answer.
    pub fn new(held: usize) -> Self {
        StreamState {
            decoder: EventDecoder::new(),
            assembler: Assembler::new(held),
            events: Vec::new(),
            keep_events: false,
            tool_bytes: 0,
            held,
        }
    }

    /// Each chunk's model events go on with it, for a door that renders the model (Anthropic's
    /// Messages, OpenAI's Responses): decoded here once, not again by the door.
    pub fn keeping_events(mut self) -> Self {
        self.keep_events = true;
        self
    }

    pub fn on_event(&mut self, event: &SseEvent) -> Result<Decoded, ProviderError> {
        let data = event.data.trim();
        if data == "[DONE]" {
            return Ok(Decoded {
                done: true,
                ..Decoded::default()
            });
        }
        if data.is_empty() {
            return Ok(Decoded::default());
        }
        let facts = self
            .decoder
            .on_chunk(data, &mut self.events)
            .map_err(|e| ProviderError::Stream(e.message))?;
        let mut delta = None;
        for event in &self.events {
            let tool_bytes = match &event {
                StreamEvent::BlockStart {
                    kind: BlockKind::ToolCall { id, name },
                    ..
                } => id.len() + name.len(),
                StreamEvent::ToolArgsDelta { json, .. } => json.len(),
                _ => 0,
            };
            self.tool_bytes = self.tool_bytes.saturating_add(tool_bytes);
            if self.tool_bytes > self.held {
                return Err(super::tool_calls_too_long(self.held));
            }
            self.assembler
                .push_ref(event)
                .map_err(|e| ProviderError::Stream(e.message))?;
        }
        // The text once: in the events when they go on, else on its own (moved, not copied).
        let events = if self.keep_events {
            std::mem::take(&mut self.events)
        } else {
            for event in self.events.drain(..) {
                if let StreamEvent::TextDelta { text, .. } = event {
                    delta = Some(text);
                }
            }
            Vec::new()
        };
        Ok(Decoded {
            delta,
            chunk: Some(data.to_owned()),
            usage_only: facts.usage_only,
            chunk_events: self.keep_events,
            events,
            done: false,
        })
    }

    /// A finish reason came (a body that ends after it, without `[DONE]`, still holds a whole
    /// answer).
    pub fn ended_cleanly(&self) -> bool {
        self.assembler.response().finish.is_some()
    }

    pub fn into_completion(self) -> Completion {
        let truncated = self.assembler.truncated();
        Completion {
            // The decoder makes no error events: its errors fail `on_event`.
            response: self.assembler.finish().unwrap_or_default(),
            raw: None,
            truncated,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{FinishReason, Usage};

    fn event(data: &str) -> SseEvent {
        SseEvent {
            event: None,
            data: data.into(),
        }
    }

    #[test]
    fn stream_usage_chunk_with_no_choices_is_not_an_empty_answer() {
        let mut s = StreamState::default();
        let d = s
            .on_event(&event(r#"{"model":"gpt-x","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#))
            .expect("ok");
        assert_eq!(d.delta, None, "no text yet");
        assert!(
            d.chunk.is_some_and(|c| c.contains("\"role\"")),
            "the chunk as received"
        );
        let d = s
            .on_event(&event(
                r#"{"choices":[{"index":0,"delta":{"content":"Hi"}}]}"#,
            ))
            .expect("ok");
        assert_eq!(d.delta.as_deref(), Some("Hi"));
        s.on_event(&event(
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
        ))
        .expect("ok");
        s.on_event(&event(
            r#"{"choices":[],"usage":{"prompt_tokens":30,"completion_tokens":10,"total_tokens":40,
                "prompt_tokens_details":{"cached_tokens":20},
                "completion_tokens_details":{"reasoning_tokens":4}}}"#,
        ))
        .expect("ok");
        assert!(s.on_event(&event("[DONE]")).expect("ok").done);
        let c = s.into_completion();
        assert_eq!(c.text(), "Hi");
        assert_eq!(
            c.response.usage,
            Usage {
                input: 10,
                output: 10,
                cache_read: 20,
                cache_write: 0,
                reasoning: 4,
            }
        );
        assert_eq!(c.response.model.as_deref(), Some("gpt-x"));
        assert_eq!(c.response.finish, Some(FinishReason::Stop));
    }

    #[test]
    fn kept_events_go_on_with_their_chunk_and_hold_its_text_once() {
        let chunks = [
            r#"{"model":"gpt-x","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"Hi"}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
        ];
        let mut kept = StreamState::default().keeping_events();
        let mut plain = StreamState::default();
        let mut again = EventDecoder::new();
        for chunk in chunks {
            let k = kept.on_event(&event(chunk)).expect("ok");
            let p = plain.on_event(&event(chunk)).expect("ok");
            assert!(k.chunk_events && !p.chunk_events);
            assert_eq!(k.chunk, p.chunk, "the chunk goes on as received either way");
            assert!(p.events.is_empty());
            assert_eq!(k.delta, None, "the text is in the events, once");
            let piece = crate::providers::Piece {
                text: k.delta.clone(),
                events: k.events.clone(),
                ..crate::providers::Piece::default()
            };
            assert_eq!(piece.text_ref().map(|t| t.into_owned()), p.delta);
            // The same events the door would decode from the chunk itself.
            let mut decoded = Vec::new();
            again.on_chunk(chunk, &mut decoded).expect("decodes");
            assert_eq!(k.events, decoded);
        }
        assert_eq!(kept.into_completion(), plain.into_completion());
    }

    #[test]
    fn stream_tool_call_fragments_concatenate_by_index() {
        let mut s = StreamState::default();
        for data in [
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"c1","type":"function","function":{"name":"f","arguments":""}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"a\":"}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"1}"}}]}}]}"#,
        ] {
            assert_eq!(s.on_event(&event(data)).expect("ok").delta, None);
        }
        let c = s.into_completion();
        assert_eq!(
            c.tool_calls().collect::<Vec<_>>(),
            [("c1", "f", "{\"a\":1}")]
        );
        assert_eq!(
            c.content(),
            r#"[{"id":"c1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]"#
        );
    }

    #[test]
    fn stream_error_event_is_an_error() {
        let mut s = StreamState::default();
        let err = s
            .on_event(&event(
                r#"{"error":{"message":"boom","type":"server_error"}}"#,
            ))
            .unwrap_err();
        assert_eq!(err.to_string(), "boom");
    }

    #[test]
    fn whole_answer_with_null_content_and_tool_calls() {
        let body = br#"{"model":"gpt-4o","choices":[{"message":{"role":"assistant","content":null,
            "tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]},
            "finish_reason":"tool_calls"}],"usage":{"prompt_tokens":5,"completion_tokens":2,
            "prompt_tokens_details":null,"completion_tokens_details":null}}"#;
        let c = parse_response(body).expect("parses");
        assert_eq!(c.text(), "");
        assert_eq!(c.tool_calls().count(), 1);
        let usage = c.response.usage;
        assert_eq!((usage.total_input(), usage.output), (5, 2));
        assert_eq!(c.raw.as_deref().map(str::as_bytes), Some(&body[..]));
        assert!(parse_response(b"{\"choices\": []}").is_err());
        assert!(parse_response(b"<html>").is_err());
    }

    #[test]
    fn finish_reasons_become_the_models() {
        for (word, reason) in [
            ("stop", FinishReason::Stop),
            ("length", FinishReason::Length),
            ("tool_calls", FinishReason::ToolCalls),
            ("function_call", FinishReason::ToolCalls),
            ("content_filter", FinishReason::ContentFilter),
            ("something_new", FinishReason::Other("something_new".into())),
        ] {
            assert_eq!(finish_reason(word), reason, "{word}");
        }
        let body = br#"{"choices":[{"message":{"content":"x"},"finish_reason":"length"}]}"#;
        let c = parse_response(body).expect("parses");
        assert_eq!(c.response.finish, Some(FinishReason::Length));
    }

    #[test]
    fn what_is_held_is_bounded() {
        let call = |index: u64, args: &str| {
            event(&format!(
                r#"{{"choices":[{{"delta":{{"tool_calls":[{{"index":{index},"id":"c","function":{{"name":"f","arguments":{args:?}}}}}]}}}}]}}"#
            ))
        };
        let mut s = StreamState::default();
        let err = s.on_event(&call(1_000_000_000_000, "")).unwrap_err();
        assert!(err.to_string().contains("beyond the limit of 128"), "{err}");
        let mut s = StreamState::default();
        let failed = (0..200)
            .map(|i| s.on_event(&call(i, "{}")))
            .position(|r| r.is_err());
        assert_eq!(failed, Some(crate::model::MAX_TOOL_CALLS));
        let mut s = StreamState::new(8);
        s.on_event(&call(0, "")).expect("a call");
        let err = s.on_event(&call(0, "{\"long\": 12345}")).unwrap_err();
        assert!(err.to_string().contains("max_response_bytes"), "{err}");
        let mut s = StreamState::new(4);
        let d = s
            .on_event(&event(
                r#"{"choices":[{"delta":{"content":"Hello there"}}]}"#,
            ))
            .expect("text past the hold is forwarded");
        assert_eq!(d.delta.as_deref(), Some("Hello there"));
        let c = s.into_completion();
        assert_eq!((c.text().as_str(), c.truncated), ("Hell", true));
    }
}
