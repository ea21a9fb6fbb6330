//! What the Responses wire renders — the `response` object, its output items, the typed
//! events — as `Serialize` types written straight into the output: no `Value` tree is built per
//! answer or per event (a text delta is the hot case: one per upstream chunk).
//!
//! Keys come in the order OpenAI sends them (`type` and `sequence_number` first in an event).

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::{Map, Value};

use super::response::{Item, ResponseHeader};
use crate::model::Usage;

/// `[]`.
pub(super) const EMPTY: [(); 0] = [];

/// One event's data: its `type` and `sequence_number`, then its own fields.
#[derive(Serialize)]
pub(super) struct Event<'a, T> {
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub sequence_number: u64,
    #[serde(flatten)]
    pub body: T,
}

/// An event's place: the item it is about.
#[derive(Serialize)]
pub(super) struct At<'a, T> {
    pub item_id: &'a str,
    pub output_index: usize,
    #[serde(flatten)]
    pub rest: T,
}

/// `response.output_text.delta`'s own fields.
#[derive(Serialize)]
pub(super) struct TextDelta<'a> {
    pub content_index: u32,
    pub delta: &'a str,
    pub logprobs: [(); 0],
}

/// `response.output_text.done`'s own fields.
#[derive(Serialize)]
pub(super) struct TextDone<'a> {
    pub content_index: u32,
    pub text: &'a str,
    pub logprobs: [(); 0],
}

/// A `delta` (function call arguments).
#[derive(Serialize)]
pub(super) struct Delta<'a> {
    pub delta: &'a str,
}

/// `response.function_call_arguments.done`'s own fields.
#[derive(Serialize)]
pub(super) struct ArgumentsDone<'a> {
    pub arguments: &'a str,
}

/// A reasoning summary's `delta` or whole `text`.
#[derive(Serialize)]
pub(super) struct Summary<'a> {
    pub summary_index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<&'a str>,
}

/// A reasoning summary part (added or done).
#[derive(Serialize)]
pub(super) struct SummaryPart<'a> {
    pub summary_index: u32,
    pub part: Part<'a>,
}

/// A message's content part (added or done).
#[derive(Serialize)]
pub(super) struct ContentPart<'a> {
    pub content_index: u32,
    pub part: Part<'a>,
}

/// A content or summary part: `output_text` (with its annotations) or `summary_text`.
pub(super) struct Part<'a> {
    pub summary: bool,
    pub text: &'a str,
}

impl Serialize for Part<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        if self.summary {
            map.serialize_entry("type", "summary_text")?;
            map.serialize_entry("text", self.text)?;
        } else {
            map.serialize_entry("type", "output_text")?;
            map.serialize_entry("text", self.text)?;
            map.serialize_entry("annotations", &EMPTY)?;
        }
        map.end()
    }
}

/// `response.output_item.added` / `.done`'s own fields.
#[derive(Serialize)]
pub(super) struct ItemEvent<'a> {
    pub output_index: usize,
    pub item: ItemJson<'a>,
}

/// The `response` of `response.created`, `.completed`, `.failed`, ...
#[derive(Serialize)]
pub(super) struct ResponseEvent<'a> {
    pub response: ResponseObject<'a>,
}

/// An output item as `output` holds it (and `response.output_item.done`) with `status`; as
/// `response.output_item.added` opens it when `opening` (its content empty).
pub(super) struct ItemJson<'a> {
    pub item: &'a Item,
    pub id: &'a str,
    pub status: &'a str,
    pub opening: bool,
}

impl Serialize for ItemJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("id", self.id)?;
        match self.item {
            Item::Message { text } => {
                map.serialize_entry("type", "message")?;
                map.serialize_entry("status", self.status)?;
                map.serialize_entry("role", "assistant")?;
                if self.opening {
                    map.serialize_entry("content", &EMPTY)?;
                } else {
                    let part = Part {
                        summary: false,
                        text,
                    };
                    map.serialize_entry("content", &[part])?;
                }
            }
            Item::Call {
                call_id,
                name,
                arguments,
            } => {
                map.serialize_entry("type", "function_call")?;
                map.serialize_entry("status", self.status)?;
                map.serialize_entry("call_id", call_id)?;
                map.serialize_entry("name", name)?;
                let arguments = if self.opening { "" } else { arguments };
                map.serialize_entry("arguments", arguments)?;
            }
            Item::Reasoning { text, encrypted } => {
                map.serialize_entry("type", "reasoning")?;
                if self.opening || text.is_empty() {
                    map.serialize_entry("summary", &EMPTY)?;
                } else {
                    let part = Part {
                        summary: true,
                        text,
                    };
                    map.serialize_entry("summary", &[part])?;
                }
                if let (Some(encrypted), false) = (encrypted, self.opening) {
                    map.serialize_entry("encrypted_content", encrypted)?;
                }
            }
        }
        map.end()
    }
}

/// A `response` object (see [`ResponseHeader::echo`] for the request fields it repeats).
pub(super) struct ResponseObject<'a> {
    pub header: &'a ResponseHeader,
    pub status: &'a str,
    pub output: Vec<ItemJson<'a>>,
    pub usage: Option<&'a Usage>,
    /// `incomplete_details.reason`.
    pub incomplete: Option<&'a str>,
    pub error: Option<Value>,
}

/// The fields of a response that are the answer's own: [`ResponseHeader::echo`] never
/// replaces them.
const OWN_FIELDS: [&str; 9] = [
    "id",
    "object",
    "created_at",
    "model",
    "status",
    "output",
    "usage",
    "error",
    "incomplete_details",
];

/// The request fields a response repeats, with their values when the request did not say.
const ECHOED: [&str; 16] = [
    "background",
    "instructions",
    "max_output_tokens",
    "parallel_tool_calls",
    "previous_response_id",
    "reasoning",
    "service_tier",
    "store",
    "temperature",
    "text",
    "tool_choice",
    "tools",
    "top_p",
    "truncation",
    "user",
    "metadata",
];

/// `{"reason": ...}`.
#[derive(Serialize)]
struct Reason<'a> {
    reason: &'a str,
}

/// `reasoning`'s default.
#[derive(Serialize)]
struct NoReasoning {
    effort: (),
    summary: (),
}

/// `text`'s default: `{"format": {"type": "text"}}`.
#[derive(Serialize)]
struct PlainText {
    format: TextFormat,
}

#[derive(Serialize)]
struct TextFormat {
    #[serde(rename = "type")]
    kind: &'static str,
}

/// `{}`.
#[derive(Serialize)]
struct Empty {}

/// The Responses API's `usage`: `input_tokens` counts every input token (cache reads and
/// writes too), the details are always there (Codex reads them).
#[derive(Serialize)]
pub(super) struct UsageJson {
    input_tokens: u64,
    input_tokens_details: Cached,
    output_tokens: u64,
    output_tokens_details: Reasoning,
    total_tokens: u64,
}

#[derive(Serialize)]
struct Cached {
    cached_tokens: u64,
}

#[derive(Serialize)]
struct Reasoning {
    reasoning_tokens: u64,
}

impl From<&Usage> for UsageJson {
    fn from(usage: &Usage) -> UsageJson {
        let (input, output) = (usage.total_input(), usage.output);
        UsageJson {
            input_tokens: input,
            input_tokens_details: Cached {
                cached_tokens: usage.cache_read,
            },
            output_tokens: output,
            output_tokens_details: Reasoning {
                reasoning_tokens: usage.reasoning,
            },
            total_tokens: input.saturating_add(output),
        }
    }
}

/// Write `key`: the echoed request's value when it has one, else `default`.
fn echoed<M: SerializeMap>(
    map: &mut M,
    echo: &Map<String, Value>,
    key: &str,
    default: &impl Serialize,
) -> Result<(), M::Error> {
    match echo.get(key) {
        Some(value) => map.serialize_entry(key, value),
        None => map.serialize_entry(key, default),
    }
}

impl Serialize for ResponseObject<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let h = self.header;
        let echo = &h.echo;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("id", &h.id)?;
        map.serialize_entry("object", "response")?;
        map.serialize_entry("created_at", &h.created_at)?;
        map.serialize_entry("status", self.status)?;
        echoed(&mut map, echo, "background", &false)?;
        map.serialize_entry("error", &self.error)?;
        map.serialize_entry(
            "incomplete_details",
            &self.incomplete.map(|reason| Reason { reason }),
        )?;
        echoed(&mut map, echo, "instructions", &())?;
        echoed(&mut map, echo, "max_output_tokens", &())?;
        map.serialize_entry("model", &h.model)?;
        map.serialize_entry("output", &self.output)?;
        echoed(&mut map, echo, "parallel_tool_calls", &true)?;
        echoed(&mut map, echo, "previous_response_id", &())?;
        let no_reasoning = NoReasoning {
            effort: (),
            summary: (),
        };
        echoed(&mut map, echo, "reasoning", &no_reasoning)?;
        echoed(&mut map, echo, "service_tier", &"default")?;
        echoed(&mut map, echo, "store", &false)?;
        echoed(&mut map, echo, "temperature", &())?;
        let text = PlainText {
            format: TextFormat { kind: "text" },
        };
        echoed(&mut map, echo, "text", &text)?;
        echoed(&mut map, echo, "tool_choice", &"auto")?;
        echoed(&mut map, echo, "tools", &EMPTY)?;
        echoed(&mut map, echo, "top_p", &())?;
        echoed(&mut map, echo, "truncation", &"disabled")?;
        map.serialize_entry("usage", &self.usage.map(UsageJson::from))?;
        echoed(&mut map, echo, "user", &())?;
        echoed(&mut map, echo, "metadata", &Empty {})?;
        for (key, value) in echo {
            if !OWN_FIELDS.contains(&key.as_str()) && !ECHOED.contains(&key.as_str()) {
                map.serialize_entry(key, value)?;
            }
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_response_object_has_every_field_and_the_echo_replaces_only_the_requests() {
        let mut header = ResponseHeader::new("resp_1", 7, "gpt-x");
        header.echo.insert("store".into(), json!(true));
        header
            .echo
            .insert("model".into(), json!("not the answer's"));
        header.echo.insert("prompt_cache_key".into(), json!("k"));
        let item = Item::Message { text: "Hi".into() };
        let usage = Usage {
            input: 3,
            output: 2,
            cache_read: 4,
            ..Usage::default()
        };
        let object = ResponseObject {
            header: &header,
            status: "incomplete",
            output: vec![ItemJson {
                item: &item,
                id: "msg_1_0",
                status: "completed",
                opening: false,
            }],
            usage: Some(&usage),
            incomplete: Some("max_output_tokens"),
            error: None,
        };
        let got: Value = serde_json::to_value(&object).expect("serialises");
        assert_eq!(
            got,
            json!({"id": "resp_1", "object": "response", "created_at": 7,
                "status": "incomplete", "background": false, "error": null,
                "incomplete_details": {"reason": "max_output_tokens"}, "instructions": null,
                "max_output_tokens": null, "model": "gpt-x",
                "output": [{"id": "msg_1_0", "type": "message", "status": "completed",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": "Hi", "annotations": []}]}],
                "parallel_tool_calls": true, "previous_response_id": null,
                "reasoning": {"effort": null, "summary": null}, "service_tier": "default",
                "store": true, "temperature": null, "text": {"format": {"type": "text"}},
                "tool_choice": "auto", "tools": [], "top_p": null, "truncation": "disabled",
                "usage": {"input_tokens": 7, "input_tokens_details": {"cached_tokens": 4},
                    "output_tokens": 2, "output_tokens_details": {"reasoning_tokens": 0},
                    "total_tokens": 9},
                "user": null, "metadata": {}, "prompt_cache_key": "k"})
        );
        let text = serde_json::to_string(&object).expect("serialises");
        assert!(
            text.starts_with(r#"{"id":"resp_1","object":"response""#),
            "{text}"
        );
        assert_eq!(text.matches("\"model\"").count(), 1, "{text}");
    }

    #[test]
    fn an_event_is_its_type_and_number_then_its_fields() {
        let event = Event {
            kind: "response.output_text.delta",
            sequence_number: 4,
            body: At {
                item_id: "msg_1_0",
                output_index: 0,
                rest: TextDelta {
                    content_index: 0,
                    delta: "Hi \"there\"",
                    logprobs: EMPTY,
                },
            },
        };
        assert_eq!(
            serde_json::to_string(&event).expect("serialises"),
            r#"{"type":"response.output_text.delta","sequence_number":4,"item_id":"msg_1_0","output_index":0,"content_index":0,"delta":"Hi \"there\"","logprobs":[]}"#
        );
    }
}
