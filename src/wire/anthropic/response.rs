//! Whole Anthropic answers (`message` objects) <-> the model's [`Response`].

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::WireUsage;
use crate::model::{Block, Error, ErrorKind, FinishReason, Response, Wire, MAX_TOOL_CALLS};

/// The model's finish reason of an Anthropic `stop_reason`: the one place this wire's word
/// becomes the model's. `model_context_window_exceeded` (the context, not `max_tokens`, ran
/// out) is a length stop too; `pause_turn` (a server tool's long turn paused, to be continued)
/// and any word Anthropic adds later are kept as [`FinishReason::Other`].
pub fn finish_reason(stop_reason: &str) -> FinishReason {
    match stop_reason {
        "end_turn" => FinishReason::Stop,
        "stop_sequence" => FinishReason::StopSequence,
        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
        "tool_use" => FinishReason::ToolCalls,
        "refusal" => FinishReason::Refusal,
        other => FinishReason::Other(other.to_owned()),
    }
}

/// Anthropic's `stop_reason` for a model finish reason. A content filter is a `refusal` (the
/// nearest Anthropic word); a reason kept from another wire that Anthropic has no word for is
/// `end_turn` (the model stopped of its own accord), and `pause_turn` stays itself.
pub fn stop_reason(f: &FinishReason) -> &'static str {
    match f {
        FinishReason::Stop => "end_turn",
        FinishReason::StopSequence => "stop_sequence",
        FinishReason::Length => "max_tokens",
        FinishReason::ToolCalls => "tool_use",
        FinishReason::ContentFilter | FinishReason::Refusal => "refusal",
        FinishReason::Other(word) => match word.as_str() {
            "pause_turn" => "pause_turn",
            "model_context_window_exceeded" => "model_context_window_exceeded",
            _ => "end_turn",
        },
    }
}

/// The id of an answer shown on the Anthropic wire: `id` when it is Anthropic's (`msg_...`),
/// else a fresh one (Anthropic clients expect the prefix).
pub fn message_id(id: Option<&str>) -> String {
    match id {
        Some(id) if id.starts_with("msg_") => id.to_owned(),
        _ => format!("msg_{}", uuid::Uuid::new_v4().simple()),
    }
}

/// A whole Anthropic answer as the model's response: text, tool calls (`arguments` the compact
/// JSON text of `input`), thinking with its signature and redacted thinking, in order; other
/// blocks (server tool use and results) carry no answer of the model's and are skipped. An
/// unreadable body, or more than [`MAX_TOOL_CALLS`] tool calls, is an [`ErrorKind::Upstream`].
pub fn decode_response(body: &[u8]) -> Result<Response, Error> {
    let m: InMessage = crate::wire::json::from_bytes(body).map_err(|e| {
        Error::new(
            ErrorKind::Upstream,
            format!("unreadable messages body: {e}"),
        )
    })?;
    let mut blocks = Vec::with_capacity(m.content.len());
    let mut tool_calls = 0;
    for block in m.content {
        blocks.push(match block {
            InBlock::Text { text } => Block::Text(text),
            InBlock::ToolUse { id, name, input } => {
                tool_calls += 1;
                if tool_calls > MAX_TOOL_CALLS {
                    return Err(Error::new(
                        ErrorKind::Upstream,
                        format!("more than promptd's bound of {MAX_TOOL_CALLS} tool calls"),
                    ));
                }
                Block::ToolCall {
                    id,
                    name,
                    arguments: input.map_or_else(|| "{}".to_owned(), |v| v.to_string()),
                }
            }
            InBlock::Thinking {
                thinking,
                signature,
            } => Block::Reasoning {
                text: thinking,
                signature,
                encrypted: None,
                redacted: None,
            },
            InBlock::RedactedThinking { data } => Block::Reasoning {
                text: String::new(),
                signature: None,
                encrypted: None,
                redacted: Some(data),
            },
            InBlock::Other => continue,
        });
    }
    Ok(Response {
        id: m.id,
        model: m.model,
        blocks,
        finish: m.stop_reason.as_deref().map(finish_reason),
        usage: m.usage.into(),
    })
}

/// A model response as Anthropic's `message` JSON, showing `model`. Tool calls' `input` is
/// their arguments parsed (`""` is `{}`; text that is not JSON is kept as a JSON string, so the
/// client sees what the model wrote); reasoning is a `thinking` block (signature `""` when it
/// has none) or `redacted_thinking`, and reasoning with only encrypted content (another wire's)
/// is left out.
pub fn render_response(resp: &Response, model: &str) -> Vec<u8> {
    let message = OutMessage {
        id: message_id(resp.id.as_deref()),
        kind: "message",
        role: "assistant",
        model,
        content: resp.blocks.iter().filter_map(OutBlock::of).collect(),
        stop_reason: resp.finish.as_ref().map(stop_reason),
        stop_sequence: None,
        usage: resp.usage.into(),
    };
    serde_json::to_vec(&message).unwrap_or_default()
}

/// A tool call's `input` object from its arguments text.
pub(super) fn tool_input(arguments: &str) -> Value {
    if arguments.trim().is_empty() {
        return Value::Object(Map::new());
    }
    serde_json::from_str(arguments).unwrap_or_else(|_| Value::String(arguments.to_owned()))
}

#[derive(Deserialize)]
struct InMessage {
    id: Option<String>,
    model: Option<String>,
    #[serde(default)]
    content: Vec<InBlock>,
    stop_reason: Option<String>,
    #[serde(default)]
    usage: WireUsage,
}

/// A content block of an answer, or one a stream starts (whose text begins empty).
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum InBlock {
    Text {
        #[serde(default)]
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Option<Value>,
    },
    Thinking {
        #[serde(default)]
        thinking: String,
        #[serde(default)]
        signature: Option<String>,
    },
    RedactedThinking {
        data: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Serialize)]
struct OutMessage<'a> {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: Vec<OutBlock<'a>>,
    stop_reason: Option<&'static str>,
    stop_sequence: Option<&'a str>,
    usage: WireUsage,
}

/// A content block of an answer, as a `message` holds it and a `content_block_start` opens it.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum OutBlock<'a> {
    Text {
        text: &'a str,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: Value,
    },
    Thinking {
        thinking: &'a str,
        signature: &'a str,
    },
    RedactedThinking {
        data: &'a str,
    },
    /// A block of the Anthropic wire the model keeps verbatim.
    #[serde(untagged)]
    Raw(&'a Value),
}

impl<'a> OutBlock<'a> {
    fn of(block: &'a Block) -> Option<OutBlock<'a>> {
        match block {
            Block::Text(text) => Some(OutBlock::Text { text }),
            Block::ToolCall {
                id,
                name,
                arguments,
            } => Some(OutBlock::ToolUse {
                id,
                name,
                input: tool_input(arguments),
            }),
            Block::Reasoning {
                redacted: Some(data),
                ..
            } => Some(OutBlock::RedactedThinking { data }),
            Block::Reasoning {
                text, signature, ..
            } if signature.is_some() || !text.is_empty() => Some(OutBlock::Thinking {
                thinking: text,
                signature: signature.as_deref().unwrap_or(""),
            }),
            Block::Opaque {
                wire: Wire::AnthropicMessages,
                json,
            } => Some(OutBlock::Raw(json)),
            // Encrypted reasoning and blocks of another wire; images and tool results are no
            // answer.
            Block::Reasoning { .. }
            | Block::Opaque { .. }
            | Block::Image { .. }
            | Block::ToolResult { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Usage;
    use serde_json::json;

    #[test]
    fn a_whole_answer_with_tool_use_input_as_json_text() {
        let body = include_bytes!("../../../tests/fixtures/anthropic_tool_use.json");
        let r = decode_response(body).unwrap();
        assert_eq!(r.id.as_deref(), Some("msg_01Aq9w938a90dw8q"));
        assert_eq!(r.model.as_deref(), Some("claude-3-5-sonnet-20241022"));
        assert_eq!(r.text(), "I'll check the weather.");
        assert_eq!(
            r.tool_calls().collect::<Vec<_>>(),
            [(
                "toolu_01A09q90qw90lq917835lq9",
                "get_weather",
                r#"{"city":"Paris","unit":"c"}"#
            )]
        );
        assert_eq!(r.finish, Some(FinishReason::ToolCalls));
        assert_eq!((r.usage.input, r.usage.output), (60, 40));

        let body = json!({"model":"claude-x","content":[{"type":"text","text":"Let me check."},
            {"type":"server_tool_use","id":"srvtoolu_1","name":"web_search","input":{"q":"x"}},
            {"type":"thinking","thinking":"t","signature":"s"},
            {"type":"redacted_thinking","data":"r"},
            {"type":"tool_use","id":"t","name":"f"}],
            "stop_reason":"tool_use","usage":{"input_tokens":5,"output_tokens":6,
            "cache_read_input_tokens":2,"cache_creation_input_tokens":3}});
        let r = decode_response(body.to_string().as_bytes()).unwrap();
        assert_eq!(
            r.blocks,
            vec![
                Block::Text("Let me check.".into()),
                Block::Reasoning {
                    text: "t".into(),
                    signature: Some("s".into()),
                    encrypted: None,
                    redacted: None
                },
                Block::Reasoning {
                    text: String::new(),
                    signature: None,
                    encrypted: None,
                    redacted: Some("r".into())
                },
                Block::ToolCall {
                    id: "t".into(),
                    name: "f".into(),
                    arguments: "{}".into()
                },
            ]
        );
        assert_eq!(
            r.usage,
            Usage {
                input: 5,
                output: 6,
                cache_read: 2,
                cache_write: 3,
                reasoning: 0
            }
        );
        let err = decode_response(b"{\"content\": 5}").unwrap_err();
        assert_eq!(err.kind, ErrorKind::Upstream);
        let many: Vec<Value> = (0..=MAX_TOOL_CALLS)
            .map(|i| json!({"type": "tool_use", "id": format!("t{i}"), "name": "f", "input": {}}))
            .collect();
        let err = decode_response(json!({"content": many}).to_string().as_bytes()).unwrap_err();
        assert!(err.message.contains("128 tool calls"), "{err}");
    }

    #[test]
    fn stop_reasons_and_finish_reasons() {
        for (word, reason) in [
            ("end_turn", FinishReason::Stop),
            ("stop_sequence", FinishReason::StopSequence),
            ("max_tokens", FinishReason::Length),
            ("model_context_window_exceeded", FinishReason::Length),
            ("tool_use", FinishReason::ToolCalls),
            ("refusal", FinishReason::Refusal),
            ("pause_turn", FinishReason::Other("pause_turn".into())),
            ("something_new", FinishReason::Other("something_new".into())),
        ] {
            assert_eq!(finish_reason(word), reason, "{word}");
        }
        for word in [
            "end_turn",
            "stop_sequence",
            "max_tokens",
            "tool_use",
            "refusal",
            "pause_turn",
        ] {
            assert_eq!(stop_reason(&finish_reason(word)), word);
        }
        assert_eq!(stop_reason(&FinishReason::ContentFilter), "refusal");
        assert_eq!(
            stop_reason(&FinishReason::Other("function_call".into())),
            "end_turn"
        );
    }

    #[test]
    fn a_rendered_answer_reads_back_as_itself() {
        let response = Response {
            id: Some("msg_abc".into()),
            model: Some("claude-x-2025".into()),
            blocks: vec![
                Block::Reasoning {
                    text: "think".into(),
                    signature: Some("sig".into()),
                    encrypted: None,
                    redacted: None,
                },
                Block::Text("Hello".into()),
                Block::ToolCall {
                    id: "call_1".into(),
                    name: "get".into(),
                    arguments: r#"{"a":[1,2]}"#.into(),
                },
            ],
            finish: Some(FinishReason::ToolCalls),
            usage: Usage {
                input: 3,
                output: 9,
                cache_read: 100,
                cache_write: 7,
                reasoning: 0,
            },
        };
        let body = render_response(&response, "claude-x");
        let json: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["type"], "message");
        assert_eq!(json["role"], "assistant");
        assert_eq!(json["stop_sequence"], Value::Null);
        assert_eq!(
            json["usage"],
            json!({"input_tokens": 3, "output_tokens": 9, "cache_creation_input_tokens": 7,
                "cache_read_input_tokens": 100})
        );
        let back = decode_response(&body).unwrap();
        assert_eq!(
            back,
            Response {
                model: Some("claude-x".into()),
                ..response.clone()
            }
        );

        // Another wire's answer: a fresh msg_ id, unparsable arguments kept as text, encrypted
        // reasoning left out, a content filter as a refusal.
        let other = Response {
            id: Some("chatcmpl-1".into()),
            blocks: vec![
                Block::Reasoning {
                    text: String::new(),
                    signature: None,
                    encrypted: Some("opaque".into()),
                    redacted: None,
                },
                Block::ToolCall {
                    id: "c".into(),
                    name: "f".into(),
                    arguments: "{\"a\": ".into(),
                },
                Block::ToolCall {
                    id: "d".into(),
                    name: "f".into(),
                    arguments: String::new(),
                },
            ],
            finish: Some(FinishReason::ContentFilter),
            ..Response::default()
        };
        let json: Value = serde_json::from_slice(&render_response(&other, "m")).unwrap();
        let id = json["id"].as_str().unwrap();
        assert!(id.starts_with("msg_") && id.len() > 20, "{id}");
        assert_eq!(
            json["content"],
            json!([{"type": "tool_use", "id": "c", "name": "f", "input": "{\"a\": "},
                {"type": "tool_use", "id": "d", "name": "f", "input": {}}])
        );
        assert_eq!(json["stop_reason"], "refusal");
        assert_eq!(message_id(Some("msg_x")), "msg_x");
    }
}
