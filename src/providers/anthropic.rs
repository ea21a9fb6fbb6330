//! Anthropic messages API (`POST {base_url}/messages`): the body is the call encoded by the
//! Anthropic wire ([`crate::wire::anthropic`], once, before any upstream call: it refuses what
//! Anthropic cannot honour, `engine::prepare`), and its answers are decoded by that wire into the
//! model: a whole answer into a [`Completion`], a stream's events into the model's events
//! (which each door renders in its own wire) and, assembled, the completion.
//!
//! What is held of a stream is bounded ([`EventsState`]).

use super::events::{whole, EventsState};
use super::{Completion, ProviderError};
use crate::wire::anthropic::{self as wire, EventDecoder};

/// The model's finish reason of an Anthropic `stop_reason`.
pub use crate::wire::anthropic::finish_reason;

/// The `anthropic-version` header promptd speaks.
pub const API_VERSION: &str = "2023-06-01";

/// Parse a whole (non-stream) answer.
pub fn parse_response(body: &[u8]) -> Result<Completion, ProviderError> {
    // Returned as it came to a client of Anthropic's wire (the Messages door).
    whole(body, wire::decode_response(body), "messages")
}

/// The state of an Anthropic stream: its decoder, and the answer assembled from its events
/// within `held` bytes ([`EventsState`]).
pub type StreamState = EventsState<EventDecoder>;

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::model::Block;
    use crate::model::{FinishReason, Usage};
    use crate::providers::sse::SseEvent;
    use crate::providers::Piece;

    fn ev(name: &str, data: Value) -> SseEvent {
        SseEvent {
            event: Some(name.into()),
            data: data.to_string(),
        }
    }

    #[test]
    fn stream_text_tool_use_and_usage() {
        let mut s = StreamState::default();
        let events = [
            ev(
                "message_start",
                json!({"type":"message_start","message":{"model":"claude-x","usage":{"input_tokens":10,
                    "cache_read_input_tokens":100,"cache_creation_input_tokens":20,"output_tokens":1}}}),
            ),
            ev(
                "content_block_start",
                json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}),
            ),
            ev("ping", json!({"type":"ping"})),
            ev(
                "content_block_delta",
                json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}),
            ),
            ev(
                "content_block_stop",
                json!({"type":"content_block_stop","index":0}),
            ),
            ev(
                "content_block_start",
                json!({"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"t1","name":"f","input":{}}}),
            ),
            ev(
                "content_block_delta",
                json!({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"a\": "}}),
            ),
            ev(
                "content_block_delta",
                json!({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"1}"}}),
            ),
            ev(
                "message_delta",
                json!({"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":30}}),
            ),
        ];
        let deltas: Vec<String> = events
            .iter()
            .filter_map(|e| {
                let d = s.on_event(e).expect("ok");
                assert!(d.delta.is_none(), "the text is in the events, once");
                Piece {
                    events: d.events,
                    ..Piece::default()
                }
                .text_ref()
                .map(|t| t.into_owned())
            })
            .collect();
        assert_eq!(deltas, vec!["Hi"]);
        assert!(
            s.on_event(&ev("message_stop", json!({"type":"message_stop"})))
                .expect("ok")
                .done
        );
        let c = s.into_completion();
        assert_eq!(
            c.response.usage,
            Usage {
                input: 10,
                output: 30,
                cache_read: 100,
                cache_write: 20,
                reasoning: 0,
            }
        );
        assert_eq!(
            c.tool_calls().collect::<Vec<_>>(),
            [("t1", "f", "{\"a\": 1}")]
        );
        assert_eq!(c.response.finish, Some(FinishReason::ToolCalls));
    }

    #[test]
    fn stream_error_event() {
        let mut s = StreamState::default();
        let err = s
            .on_event(&ev(
                "error",
                json!({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}),
            ))
            .unwrap_err();
        assert_eq!(err.to_string(), "overloaded_error: Overloaded");
    }

    #[test]
    fn whole_answer_with_tool_use_input_as_json_text() {
        let body = json!({"model":"claude-x","content":[{"type":"text","text":"Let me check."},
            {"type":"tool_use","id":"t","name":"f","input":{"city":"Paris"}}],
            "stop_reason":"tool_use","usage":{"input_tokens":5,"output_tokens":6,"cache_read_input_tokens":2}});
        let c = parse_response(body.to_string().as_bytes()).expect("parses");
        assert_eq!(c.text(), "Let me check.");
        assert_eq!(
            c.tool_calls().next().map(|(_, _, args)| args),
            Some("{\"city\":\"Paris\"}")
        );
        assert_eq!(
            c.response.usage,
            Usage {
                input: 5,
                output: 6,
                cache_read: 2,
                ..Usage::default()
            }
        );
    }

    #[test]
    fn thinking_blocks_keep_their_signatures_in_the_completion() {
        let body = json!({"model":"claude-x","content":[
            {"type":"thinking","thinking":"Let me see.","signature":"EqQBsig"},
            {"type":"redacted_thinking","data":"EmwKred"},
            {"type":"text","text":"Yes."}],
            "stop_reason":"end_turn","usage":{"input_tokens":5,"output_tokens":6}});
        let c = parse_response(body.to_string().as_bytes()).expect("parses");
        assert_eq!(c.text(), "Yes.");
        assert!(matches!(&c.response.blocks[0],
            Block::Reasoning { text, signature: Some(sig), .. } if text == "Let me see." && sig == "EqQBsig"));
        assert!(matches!(&c.response.blocks[1],
            Block::Reasoning { redacted: Some(data), .. } if data == "EmwKred"));
    }

    #[test]
    fn stop_reasons_become_the_models_finish_reasons() {
        // The words' mapping is the wire's (wire::anthropic's tests); here, that the provider
        // kind's answers and streams carry it.
        let body = json!({"content": [], "stop_reason": "max_tokens"});
        let c = parse_response(body.to_string().as_bytes()).expect("parses");
        assert_eq!(c.response.finish, Some(FinishReason::Length));
        let mut s = StreamState::default();
        s.on_event(&ev(
            "message_delta",
            json!({"type":"message_delta","delta":{"stop_reason":"stop_sequence"}}),
        ))
        .expect("ok");
        assert_eq!(
            s.into_completion().response.finish,
            Some(FinishReason::StopSequence)
        );
    }

    #[test]
    fn what_is_held_is_bounded() {
        let start = |index: u64| {
            ev(
                "content_block_start",
                json!({"type":"content_block_start","index":index,
                    "content_block":{"type":"tool_use","id":"t","name":"f","input":{}}}),
            )
        };
        let mut s = StreamState::default();
        assert!(s.on_event(&start(1_000_000_000_000)).is_err());
        let mut s = StreamState::default();
        let failed = (0..200)
            .map(|i| s.on_event(&start(i)))
            .position(|r| r.is_err());
        assert_eq!(failed, Some(crate::model::MAX_TOOL_CALLS));
        let mut s = StreamState::new(8);
        s.on_event(&start(0)).expect("a call");
        let args = ev(
            "content_block_delta",
            json!({"type":"content_block_delta","index":0,
                "delta":{"type":"input_json_delta","partial_json":"{\"long\": 12345}"}}),
        );
        let err = s.on_event(&args).unwrap_err();
        assert!(err.to_string().contains("max_response_bytes"), "{err}");
        let mut s = StreamState::new(4);
        let text = ev(
            "content_block_delta",
            json!({"type":"content_block_delta","index":0,
                "delta":{"type":"text_delta","text":"Hello there"}}),
        );
        let d = s.on_event(&text).expect("text past the hold is forwarded");
        let piece = Piece {
            events: d.events,
            ..Piece::default()
        };
        assert_eq!(piece.text_ref().as_deref(), Some("Hello there"));
        let c = s.into_completion();
        assert_eq!((c.text().as_str(), c.truncated), ("Hell", true));
    }
}
