//! Anthropic messages API (`POST {base_url}/messages`): request body, whole-answer parse,
//! stream decoder.
//!
//! Anthropic wants `system` at the top level, turns that alternate user/assistant, and a
//! `max_tokens`. Parea's messages are mapped so: every `system` turn (wherever it stands) joins
//! the top-level system text, `example_*` and `tool` turns become user/assistant turns, and
//! consecutive turns of the same role are merged. `frequency_penalty`, `presence_penalty` and
//! `response_format` have no Anthropic equivalent: a request that asks for one (not at its
//! neutral value) is refused before it gets here ([`crate::model::support`]); `safe_prompt`
//! (Mistral's) is not sent.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::sse::SseEvent;
use super::{ChatRequest, Completion, Decoded, ProviderError, ToolCall, Usage};
use crate::api::{FunctionCallSpec, Role};
use crate::model::FinishReason;

/// The `anthropic-version` header promptd speaks.
pub const API_VERSION: &str = "2023-06-01";

/// The JSON body for `messages`. `default_max_tokens` applies when the request has no
/// `max_length`.
pub fn request_body(req: &ChatRequest, stream: bool, default_max_tokens: u32) -> Value {
    let mut system: Vec<&str> = Vec::new();
    let mut turns: Vec<(&'static str, String)> = Vec::new();
    for m in &req.messages {
        let content = m.content.as_deref().unwrap_or("");
        let role = match m.role {
            Role::System => {
                system.push(content);
                continue;
            }
            Role::User | Role::ExampleUser | Role::Tool => "user",
            Role::Assistant | Role::ExampleAssistant => "assistant",
        };
        match turns.last_mut() {
            Some((last_role, text)) if *last_role == role => {
                text.push_str("\n\n");
                text.push_str(content);
            }
            _ => turns.push((role, content.to_owned())),
        }
    }
    let mut body = Map::new();
    body.insert("model".into(), Value::from(req.model.as_str()));
    body.insert(
        "max_tokens".into(),
        Value::from(req.params.max_length.unwrap_or(default_max_tokens)),
    );
    if !system.is_empty() {
        body.insert("system".into(), Value::from(system.join("\n\n")));
    }
    body.insert(
        "messages".into(),
        Value::Array(
            turns
                .into_iter()
                .map(|(role, content)| json!({"role": role, "content": content}))
                .collect(),
        ),
    );
    if let Some(t) = req.params.temp {
        body.insert("temperature".into(), Value::from(t));
    }
    if let Some(p) = req.params.top_p {
        body.insert("top_p".into(), Value::from(p));
    }
    if !req.functions.is_empty() {
        body.insert(
            "tools".into(),
            Value::Array(req.functions.iter().map(tool).collect()),
        );
    }
    if let Some(spec) = &req.function_call {
        body.insert("tool_choice".into(), tool_choice(spec));
    }
    if stream {
        body.insert("stream".into(), Value::Bool(true));
    }
    Value::Object(body)
}

/// A Parea/OpenAI function definition as an Anthropic tool (`parameters` -> `input_schema`).
fn tool(function: &Value) -> Value {
    let f = function.get("function").unwrap_or(function);
    let mut t = Map::new();
    if let Some(name) = f.get("name") {
        t.insert("name".into(), name.clone());
    }
    if let Some(d) = f.get("description") {
        t.insert("description".into(), d.clone());
    }
    let schema = f
        .get("parameters")
        .or_else(|| f.get("input_schema"))
        .cloned()
        .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
    t.insert("input_schema".into(), schema);
    Value::Object(t)
}

fn tool_choice(spec: &FunctionCallSpec) -> Value {
    match spec {
        FunctionCallSpec::Mode(mode) if mode == "auto" => json!({"type": "auto"}),
        FunctionCallSpec::Mode(mode) if mode == "none" => json!({"type": "none"}),
        FunctionCallSpec::Mode(mode) if mode == "required" || mode == "any" => {
            json!({"type": "any"})
        }
        FunctionCallSpec::Mode(name) | FunctionCallSpec::Named { name } => {
            json!({"type": "tool", "name": name})
        }
    }
}

/// Anthropic's `usage`: `input_tokens` excludes the prompt tokens read from or written to its
/// prompt cache, which it counts apart (as [`Usage`] does).
#[derive(Deserialize, Default, Clone, Copy)]
struct WireUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
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

/// The usage of an Anthropic `usage` object (absent or unreadable counts are 0).
pub(super) fn usage_of(usage: &Value) -> Usage {
    WireUsage::deserialize(usage)
        .map(Usage::from)
        .unwrap_or_default()
}

/// Fold a stream event's usage into `usage`: `message_start` carries the input counts,
/// `message_delta` running totals (output always, the input counts in newer API versions), so
/// each count keeps its largest value.
pub(super) fn stream_usage(usage: &mut Usage, kind: &str, data: &Value) {
    let reported = match kind {
        "message_start" => data.pointer("/message/usage"),
        "message_delta" => data.get("usage"),
        _ => None,
    };
    if let Some(reported) = reported {
        usage.max(usage_of(reported));
    }
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    content: Vec<Value>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: WireUsage,
}

/// The model's finish reason of an Anthropic `stop_reason` (kept beside the Anthropic
/// translation of the OpenAI routes, which this module's users import already: one mapping).
pub use crate::api::openai::anthropic::stop_reason as finish_reason;

/// Parse a whole (non-stream) answer.
pub fn parse_response(body: &[u8]) -> Result<Completion, ProviderError> {
    serde_json::from_slice(body)
        .map(completion_of)
        .map_err(|e| ProviderError::Protocol(format!("messages body: {e}")))
}

/// A whole answer already parsed as JSON (the translation renders it too).
pub fn parse_value(body: &Value) -> Result<Completion, ProviderError> {
    Message::deserialize(body)
        .map(completion_of)
        .map_err(|e| ProviderError::Protocol(format!("messages body: {e}")))
}

fn completion_of(m: Message) -> Completion {
    let mut completion = Completion {
        model: m.model,
        finish_reason: m.stop_reason.as_deref().map(finish_reason),
        usage: m.usage.into(),
        ..Completion::default()
    };
    for block in m.content {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => completion
                .text
                .push_str(block.get("text").and_then(Value::as_str).unwrap_or("")),
            Some("tool_use") => completion.tool_calls.push(ToolCall {
                id: str_field(&block, "id"),
                name: str_field(&block, "name"),
                arguments: block
                    .get("input")
                    .map(Value::to_string)
                    .unwrap_or_else(|| "{}".into()),
            }),
            _ => {} // thinking and other block types carry no answer text
        }
    }
    completion
}

fn str_field(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or("").to_owned()
}

/// Accumulated state of an Anthropic stream: at most `held` bytes of text (its head) and of
/// tool calls, which are kept with their content-block index, never at it.
#[derive(Debug)]
pub struct StreamState {
    text: String,
    truncated: bool,
    /// Each `tool_use` block's index and call, in order.
    blocks: Vec<(u64, ToolCall)>,
    /// Bytes of the tool calls' ids, names and arguments.
    tool_bytes: usize,
    held: usize,
    usage: Usage,
    model: Option<String>,
    pub(super) stop_reason: Option<FinishReason>,
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
            text: String::new(),
            truncated: false,
            blocks: Vec::new(),
            tool_bytes: 0,
            held,
            usage: Usage::default(),
            model: None,
            stop_reason: None,
        }
    }

    /// Count `added` bytes of tool calls against `held`.
    fn hold_tool_bytes(&mut self, added: usize) -> Result<(), ProviderError> {
        self.tool_bytes = self.tool_bytes.saturating_add(added);
        if self.tool_bytes > self.held {
            return Err(super::tool_calls_too_long(self.held));
        }
        Ok(())
    }

    pub fn on_event(&mut self, event: &SseEvent) -> Result<Decoded, ProviderError> {
        let data: Value = serde_json::from_str(&event.data)
            .map_err(|e| ProviderError::Stream(format!("unreadable stream event: {e}")))?;
        self.on_value(event.event.as_deref(), &data)
    }

    /// One event already parsed: its name (`event:`, else the data's `type`) and data.
    pub fn on_value(&mut self, name: Option<&str>, data: &Value) -> Result<Decoded, ProviderError> {
        let kind = name
            .filter(|n| !n.is_empty())
            .or_else(|| data.get("type").and_then(Value::as_str))
            .unwrap_or("");
        let mut decoded = Decoded::default();
        stream_usage(&mut self.usage, kind, data);
        match kind {
            "message_start" => {
                let message = &data["message"];
                self.model = message
                    .get("model")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
            }
            "content_block_start" => {
                let index = index_of(data)?;
                let block = &data["content_block"];
                match block.get("type").and_then(Value::as_str) {
                    Some("tool_use") => {
                        if self.blocks.len() >= super::MAX_TOOL_CALLS {
                            return Err(super::too_many_tool_calls(index));
                        }
                        let call = ToolCall {
                            id: str_field(block, "id"),
                            name: str_field(block, "name"),
                            arguments: String::new(),
                        };
                        self.hold_tool_bytes(call.id.len() + call.name.len())?;
                        match self.blocks.iter_mut().find(|(i, _)| *i == index) {
                            Some((_, slot)) => *slot = call,
                            None => self.blocks.push((index, call)),
                        }
                    }
                    Some("text") => decoded.delta = self.push_text(block.get("text")),
                    _ => {}
                }
            }
            "content_block_delta" => {
                let delta = &data["delta"];
                match delta.get("type").and_then(Value::as_str) {
                    Some("text_delta") => decoded.delta = self.push_text(delta.get("text")),
                    Some("input_json_delta") => {
                        let index = index_of(data)?;
                        let piece = delta
                            .get("partial_json")
                            .and_then(Value::as_str)
                            .unwrap_or("");
                        self.hold_tool_bytes(piece.len())?;
                        if let Some((_, call)) = self.blocks.iter_mut().find(|(i, _)| *i == index) {
                            call.arguments.push_str(piece);
                        }
                    }
                    _ => {} // thinking / signature deltas are not answer text
                }
            }
            "message_delta" => {
                if let Some(reason) = data.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    self.stop_reason = Some(finish_reason(reason));
                }
            }
            "message_stop" => decoded.done = true,
            "error" => {
                let message = data
                    .pointer("/error/message")
                    .and_then(Value::as_str)
                    .unwrap_or("error event from provider");
                let kind = data
                    .pointer("/error/type")
                    .and_then(Value::as_str)
                    .unwrap_or("error");
                return Err(ProviderError::Stream(format!("{kind}: {message}")));
            }
            _ => {} // ping, content_block_stop, unknown future events
        }
        Ok(decoded)
    }

    fn push_text(&mut self, text: Option<&Value>) -> Option<String> {
        let text = text.and_then(Value::as_str).filter(|t| !t.is_empty())?;
        if !self.truncated && !super::push_within(&mut self.text, text, self.held) {
            self.truncated = true;
        }
        Some(text.to_owned())
    }

    pub fn into_completion(self) -> Completion {
        Completion {
            text: self.text,
            tool_calls: self
                .blocks
                .into_iter()
                .map(|(_, mut c)| {
                    if c.arguments.is_empty() {
                        c.arguments = "{}".into();
                    }
                    c
                })
                .collect(),
            usage: self.usage,
            model: self.model,
            finish_reason: self.stop_reason,
            raw: None,
            truncated: self.truncated,
        }
    }
}

/// A content block's `index`, refused at or beyond [`MAX_CONTENT_BLOCKS`](super::MAX_CONTENT_BLOCKS).
fn index_of(data: &Value) -> Result<u64, ProviderError> {
    let index = data.get("index").and_then(Value::as_u64).unwrap_or(0);
    if index >= super::MAX_CONTENT_BLOCKS {
        return Err(ProviderError::Stream(format!(
            "content block index {index} is beyond the limit of {} blocks in one answer",
            super::MAX_CONTENT_BLOCKS
        )));
    }
    Ok(index)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Message as Turn, ModelParams};

    fn msg(role: Role, content: &str) -> Turn {
        Turn {
            role,
            content: Some(content.to_owned()),
        }
    }

    #[test]
    fn system_moves_up_and_same_role_turns_merge() {
        let req = ChatRequest {
            model: "claude-3-5-sonnet-20241022".into(),
            messages: vec![
                msg(Role::System, "be brief"),
                msg(Role::ExampleUser, "2+2?"),
                msg(Role::ExampleAssistant, "4"),
                msg(Role::User, "3+3?"),
                msg(Role::System, "answer in digits"),
                msg(Role::User, "really"),
            ],
            params: ModelParams {
                temp: Some(0.2),
                frequency_penalty: Some(1.0),
                ..ModelParams::default()
            },
            functions: vec![
                json!({"name": "f", "description": "d", "parameters": {"type": "object"}}),
            ],
            function_call: Some(FunctionCallSpec::Mode("f".into())),
            passthrough: None,
            translated: None,
        };
        let body = request_body(&req, true, 1024);
        assert_eq!(body["system"], "be brief\n\nanswer in digits");
        assert_eq!(
            body["messages"],
            json!([
                {"role": "user", "content": "2+2?"},
                {"role": "assistant", "content": "4"},
                {"role": "user", "content": "3+3?\n\nreally"}
            ])
        );
        assert_eq!(body["max_tokens"], 1024);
        assert_eq!(body["temperature"], 0.2);
        assert!(body.get("frequency_penalty").is_none());
        assert_eq!(
            body["tools"],
            json!([{"name": "f", "description": "d", "input_schema": {"type": "object"}}])
        );
        assert_eq!(body["tool_choice"], json!({"type": "tool", "name": "f"}));
        assert_eq!(body["stream"], true);
    }

    #[test]
    fn max_length_beats_the_default() {
        let req = ChatRequest {
            model: "c".into(),
            messages: vec![msg(Role::User, "u")],
            params: ModelParams {
                max_length: Some(7),
                ..ModelParams::default()
            },
            functions: vec![],
            function_call: Some(FunctionCallSpec::Mode("required".into())),
            passthrough: None,
            translated: None,
        };
        let body = request_body(&req, false, 4096);
        assert_eq!(body["max_tokens"], 7);
        assert_eq!(body["tool_choice"], json!({"type": "any"}));
        assert!(body.get("system").is_none());
    }

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
            .filter_map(|e| s.on_event(e).expect("ok").delta)
            .collect();
        assert_eq!(deltas, vec!["Hi"]);
        assert!(
            s.on_event(&ev("message_stop", json!({"type":"message_stop"})))
                .expect("ok")
                .done
        );
        let c = s.into_completion();
        assert_eq!(
            c.usage,
            Usage {
                input: 10,
                output: 30,
                cache_read: 100,
                cache_write: 20,
                reasoning: 0,
            }
        );
        assert_eq!(
            c.tool_calls,
            vec![ToolCall {
                id: "t1".into(),
                name: "f".into(),
                arguments: "{\"a\": 1}".into()
            }]
        );
        assert_eq!(c.finish_reason, Some(FinishReason::ToolCalls));
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
        assert_eq!(c.text, "Let me check.");
        assert_eq!(c.tool_calls[0].arguments, "{\"city\":\"Paris\"}");
        assert_eq!(
            c.usage,
            Usage {
                input: 5,
                output: 6,
                cache_read: 2,
                ..Usage::default()
            }
        );
    }

    #[test]
    fn stop_reasons_become_the_models_finish_reasons() {
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
        let body = json!({"content": [], "stop_reason": "max_tokens"});
        let c = parse_response(body.to_string().as_bytes()).expect("parses");
        assert_eq!(c.finish_reason, Some(FinishReason::Length));
        let mut s = StreamState::default();
        s.on_event(&ev(
            "message_delta",
            json!({"type":"message_delta","delta":{"stop_reason":"stop_sequence"}}),
        ))
        .expect("ok");
        assert_eq!(
            s.into_completion().finish_reason,
            Some(FinishReason::StopSequence)
        );
    }
}
