//! Whole Responses answers (`response` objects) <-> the model's [`Response`].
//!
//! | `output` item | model |
//! |---|---|
//! | `message`: `output_text` parts; `refusal` parts | one Text block (the parts' texts joined); a refusal's text, and Refusal as the finish when no other text came |
//! | `function_call` (`call_id`, `name`, `arguments`) | ToolCall (`id` the `call_id`) |
//! | `reasoning` (`summary[].text`, `encrypted_content`) | Reasoning: the summary texts joined by a blank line, `encrypted` kept |
//! | other items (`web_search_call`, `file_search_call`, ...) | skipped: the provider's own work, no answer of the model's |
//!
//! Rendered ([`render_response`]): text blocks in a row are one `message` item (one
//! `output_text` part, `annotations: []`), a ToolCall a `function_call`, Reasoning with text or
//! encrypted content a `reasoning` item (`summary` one `summary_text` part, or none); each item
//! has an id made from the response's (`msg_<id>_<n>`, `fc_...`, `rs_...`: the same on every
//! rendering of one answer) and `status: completed`. Reasoning that is only an Anthropic
//! signature, images and tool results are left out. The `response` object has
//! every field OpenAI's has, at promptd's values (`store: false` unless the door says it kept
//! the answer), overridden by [`ResponseHeader::echo`].

use serde::Deserialize;
use serde_json::{Map, Value};

use super::error::error_of;
use super::render::{ItemJson, ResponseObject};
use super::{incomplete_reason, status_of, WireUsage};
use crate::model::{Block, Error, ErrorKind, FinishReason, Response, Usage, MAX_TOOL_CALLS};

/// What every rendered `response` object says of itself.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseHeader {
    /// `resp_...` (see [`response_id`]).
    pub id: String,
    /// Unix seconds.
    pub created_at: i64,
    /// The model as the door shows it.
    pub model: String,
    /// Request fields to repeat in the object, as OpenAI does (`instructions`, `tools`,
    /// `tool_choice`, `temperature`, `metadata`, `previous_response_id`, ...): each replaces
    /// promptd's default value. The answer's own fields (`id`, `object`, `created_at`, `model`,
    /// `status`, `output`, `usage`, `error`, `incomplete_details`) are never replaced.
    pub echo: Map<String, Value>,
}

impl ResponseHeader {
    /// A header with nothing echoed.
    pub fn new(id: impl Into<String>, created_at: i64, model: impl Into<String>) -> Self {
        ResponseHeader {
            id: id.into(),
            created_at,
            model: model.into(),
            echo: Map::new(),
        }
    }

    /// The id the output items' ids are made from: the response's without its `resp_`.
    fn item_base(&self) -> &str {
        self.id.strip_prefix("resp_").unwrap_or(&self.id)
    }

    /// The id of output item `n` of `prefix` (`msg`, `fc`, `rs`).
    pub(super) fn item_id(&self, prefix: &str, n: usize) -> String {
        format!("{prefix}_{}_{n}", self.item_base())
    }
}

/// The id of an answer shown on the Responses wire: `id` when it is one (`resp_...`), else a
/// fresh one.
pub fn response_id(id: Option<&str>) -> String {
    match id {
        Some(id) if id.starts_with("resp_") => id.to_owned(),
        _ => format!("resp_{}", uuid::Uuid::new_v4().simple()),
    }
}

/// An output item as the renderers hold it.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Item {
    Message {
        text: String,
    },
    Call {
        call_id: String,
        name: String,
        arguments: String,
    },
    Reasoning {
        text: String,
        encrypted: Option<String>,
    },
}

impl Item {
    /// The item's id prefix.
    pub(super) fn prefix(&self) -> &'static str {
        match self {
            Item::Message { .. } => "msg",
            Item::Call { .. } => "fc",
            Item::Reasoning { .. } => "rs",
        }
    }
}

/// The output items of a whole answer (see the header).
fn items_of(blocks: &[Block]) -> Vec<Item> {
    let mut items: Vec<Item> = Vec::new();
    for block in blocks {
        match block {
            Block::Text(piece) => match items.last_mut() {
                Some(Item::Message { text }) => text.push_str(piece),
                _ => items.push(Item::Message {
                    text: piece.clone(),
                }),
            },
            Block::ToolCall {
                id,
                name,
                arguments,
            } => items.push(Item::Call {
                call_id: id.clone(),
                name: name.clone(),
                arguments: arguments.clone(),
            }),
            Block::Reasoning {
                text, encrypted, ..
            } if !text.is_empty() || encrypted.is_some() => items.push(Item::Reasoning {
                text: text.clone(),
                encrypted: encrypted.clone(),
            }),
            Block::Reasoning { .. }
            | Block::Image { .. }
            | Block::ToolResult { .. }
            | Block::Opaque { .. } => {}
        }
    }
    items
}

/// A model response as the Responses door's `response` object (see the header): `status`
/// `completed`, or `incomplete` with its reason for a length stop or a content filter.
pub fn render_response(resp: &Response, header: &ResponseHeader) -> Vec<u8> {
    let (status, incomplete) = status_of(resp.finish.as_ref());
    let items = items_of(&resp.blocks);
    let ids: Vec<String> = items
        .iter()
        .enumerate()
        .map(|(n, item)| header.item_id(item.prefix(), n))
        .collect();
    let object = ResponseObject {
        header,
        status,
        output: items
            .iter()
            .zip(&ids)
            .map(|(item, id)| ItemJson {
                item,
                id,
                status: "completed",
                opening: false,
            })
            .collect(),
        usage: Some(&resp.usage),
        incomplete,
        error: None,
    };
    serde_json::to_vec(&object).unwrap_or_default()
}

fn unreadable(message: String) -> Error {
    Error::new(ErrorKind::Upstream, message)
}

/// A whole Responses answer as the model's response (see the header). A `failed` response is
/// the error of its `error.code`; an unreadable body, or more than [`MAX_TOOL_CALLS`] function
/// calls, is an [`ErrorKind::Upstream`].
pub fn decode_response(body: &[u8]) -> Result<Response, Error> {
    let r: InResponse = crate::wire::json::from_bytes(body)
        .map_err(|e| unreadable(format!("unreadable responses body: {e}")))?;
    if r.status.as_deref() == Some("failed") {
        return Err(error_of(r.error.as_ref()));
    }
    let mut blocks = Vec::with_capacity(r.output.len());
    let mut calls = 0;
    let mut refused = false;
    let mut texts = false;
    for item in r.output {
        match item {
            InItem::Message { content } => {
                let (text, refusal) = message_text(&content);
                refused |= refusal;
                texts |= !refusal && !text.is_empty();
                if !text.is_empty() {
                    blocks.push(Block::Text(text));
                }
            }
            InItem::FunctionCall {
                call_id,
                name,
                arguments,
            } => {
                calls += 1;
                if calls > MAX_TOOL_CALLS {
                    return Err(unreadable(format!(
                        "more than promptd's bound of {MAX_TOOL_CALLS} tool calls"
                    )));
                }
                blocks.push(Block::ToolCall {
                    id: call_id,
                    name,
                    arguments,
                });
            }
            InItem::Reasoning {
                summary,
                encrypted_content,
            } => blocks.push(Block::Reasoning {
                text: summary_text(&summary),
                signature: None,
                encrypted: encrypted_content,
                redacted: None,
            }),
            InItem::Other => {}
        }
    }
    let finish = match r.status.as_deref() {
        Some("incomplete") => incomplete_reason(
            r.incomplete_details
                .as_ref()
                .and_then(|d| d.reason.as_deref()),
        ),
        None | Some("completed") => finished(calls > 0, refused && !texts),
        Some(other) => FinishReason::Other(other.to_owned()),
    };
    Ok(Response {
        id: r.id,
        model: r.model,
        blocks,
        finish: Some(finish),
        usage: r.usage.map(Usage::from).unwrap_or_default(),
    })
}

/// The finish reason of a completed answer.
pub(super) fn finished(called: bool, refused: bool) -> FinishReason {
    if called {
        FinishReason::ToolCalls
    } else if refused {
        FinishReason::Refusal
    } else {
        FinishReason::Stop
    }
}

/// A message item's text, and whether it is a refusal.
pub(super) fn message_text(content: &[InPart]) -> (String, bool) {
    let mut text = String::new();
    let mut refusal = false;
    for part in content {
        match part {
            InPart::OutputText { text: t } => text.push_str(t),
            InPart::Refusal { refusal: r } => {
                refusal = true;
                text.push_str(r);
            }
            InPart::Other => {}
        }
    }
    (text, refusal)
}

/// A reasoning item's summary texts joined by a blank line.
pub(super) fn summary_text(summary: &[InSummary]) -> String {
    let texts: Vec<&str> = summary.iter().map(|s| s.text.as_str()).collect();
    texts.join("\n\n")
}

#[derive(Deserialize)]
pub(super) struct InResponse {
    #[serde(default)]
    pub(super) id: Option<String>,
    #[serde(default)]
    pub(super) model: Option<String>,
    #[serde(default)]
    pub(super) status: Option<String>,
    #[serde(default)]
    output: Vec<InItem>,
    #[serde(default)]
    pub(super) usage: Option<WireUsage>,
    #[serde(default)]
    pub(super) incomplete_details: Option<InIncomplete>,
    #[serde(default)]
    pub(super) error: Option<Value>,
}

#[derive(Deserialize)]
pub(super) struct InIncomplete {
    #[serde(default)]
    pub(super) reason: Option<String>,
}

/// An output item, as a response holds it and the stream's item events carry it.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum InItem {
    Message {
        #[serde(default)]
        content: Vec<InPart>,
    },
    FunctionCall {
        call_id: String,
        name: String,
        #[serde(default)]
        arguments: String,
    },
    Reasoning {
        #[serde(default)]
        summary: Vec<InSummary>,
        #[serde(default)]
        encrypted_content: Option<String>,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum InPart {
    OutputText {
        #[serde(default)]
        text: String,
    },
    Refusal {
        #[serde(default)]
        refusal: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
pub(super) struct InSummary {
    #[serde(default)]
    text: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answer() -> Response {
        Response {
            id: Some("resp_abc".into()),
            model: Some("gpt-x".into()),
            blocks: vec![
                Block::Reasoning {
                    text: "think".into(),
                    signature: None,
                    encrypted: Some("gAAAA".into()),
                    redacted: None,
                },
                Block::Text("Hel".into()),
                Block::Text("lo".into()),
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
                cache_write: 0,
                reasoning: 4,
            },
        }
    }

    #[test]
    fn a_rendered_answer_reads_back_as_itself() {
        let mut header = ResponseHeader::new("resp_abc", 1_700_000_000, "gpt-x");
        header.echo.insert("metadata".into(), json!({"k": "v"}));
        header.echo.insert("status".into(), json!("hijacked"));
        let body = render_response(&answer(), &header);
        let json: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["object"], "response");
        assert_eq!(json["status"], "completed");
        assert_eq!(json["metadata"], json!({"k": "v"}));
        assert_eq!(
            json["usage"],
            json!({"input_tokens": 103, "input_tokens_details": {"cached_tokens": 100},
                "output_tokens": 9, "output_tokens_details": {"reasoning_tokens": 4},
                "total_tokens": 112})
        );
        assert_eq!(
            json["output"],
            json!([
                {"id": "rs_abc_0", "type": "reasoning",
                    "summary": [{"type": "summary_text", "text": "think"}],
                    "encrypted_content": "gAAAA"},
                {"id": "msg_abc_1", "type": "message", "status": "completed", "role": "assistant",
                    "content": [{"type": "output_text", "text": "Hello", "annotations": []}]},
                {"id": "fc_abc_2", "type": "function_call", "status": "completed",
                    "call_id": "call_1", "name": "get", "arguments": "{\"a\":[1,2]}"},
            ])
        );
        let back = decode_response(&body).unwrap();
        let mut expected = answer();
        expected.blocks.remove(2);
        expected.blocks[1] = Block::Text("Hello".into());
        assert_eq!(back, expected);
    }

    #[test]
    fn statuses_and_finish_reasons() {
        let mut resp = Response {
            blocks: vec![Block::Text("cut".into())],
            finish: Some(FinishReason::Length),
            ..Response::default()
        };
        let header = ResponseHeader::new(response_id(None), 1, "m");
        assert!(header.id.starts_with("resp_") && header.id.len() > 20);
        let json: Value = serde_json::from_slice(&render_response(&resp, &header)).unwrap();
        assert_eq!(json["status"], "incomplete");
        assert_eq!(
            json["incomplete_details"],
            json!({"reason": "max_output_tokens"})
        );
        let back = decode_response(&serde_json::to_vec(&json).unwrap()).unwrap();
        assert_eq!(back.finish, Some(FinishReason::Length));
        resp.finish = Some(FinishReason::Stop);
        let back = decode_response(&render_response(&resp, &header)).unwrap();
        assert_eq!(back.finish, Some(FinishReason::Stop));

        let body = json!({"id": "resp_1", "status": "completed", "output": [
            {"type": "web_search_call", "id": "ws_1", "status": "completed"},
            {"type": "message", "content": [{"type": "refusal", "refusal": "I can't."}]}]});
        let r = decode_response(body.to_string().as_bytes()).unwrap();
        assert_eq!(r.text(), "I can't.");
        assert_eq!(r.finish, Some(FinishReason::Refusal));
        let body =
            json!({"status": "incomplete", "incomplete_details": {"reason": "content_filter"}});
        let r = decode_response(body.to_string().as_bytes()).unwrap();
        assert_eq!(r.finish, Some(FinishReason::ContentFilter));

        let body = json!({"status": "failed", "error": {"code": "rate_limit_exceeded",
            "message": "Please try again in 2s."}});
        let err = decode_response(body.to_string().as_bytes()).unwrap_err();
        assert_eq!(err.kind, ErrorKind::RateLimited);
        assert_eq!(err.code.as_deref(), Some("rate_limit_exceeded"));
        assert_eq!(
            decode_response(b"{\"output\": 5}").unwrap_err().kind,
            ErrorKind::Upstream
        );
        let many: Vec<Value> = (0..=MAX_TOOL_CALLS)
            .map(|i| json!({"type": "function_call", "call_id": format!("c{i}"), "name": "f"}))
            .collect();
        let err = decode_response(json!({"output": many}).to_string().as_bytes()).unwrap_err();
        assert!(err.message.contains("128 tool calls"), "{err}");
    }
}
