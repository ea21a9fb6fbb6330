//! OpenAI chat completions (`POST {base_url}/chat/completions`), also spoken by
//! OpenAI-compatible servers: request body, whole-answer parse, stream decoder.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::sse::SseEvent;
use super::{ChatRequest, Completion, Decoded, ProviderError, ToolCall, Usage};
use crate::api::{FunctionCallSpec, ModelParams, Role};
use crate::model::FinishReason;

/// The model's finish reason of an OpenAI `finish_reason`: the one place this provider kind's
/// word becomes the model's. `function_call` (the deprecated functions API) is a tool call; a
/// word OpenAI adds later is kept as [`FinishReason::Other`].
pub fn finish_reason(reason: &str) -> FinishReason {
    match reason {
        "stop" => FinishReason::Stop,
        "length" => FinishReason::Length,
        "tool_calls" | "function_call" => FinishReason::ToolCalls,
        "content_filter" => FinishReason::ContentFilter,
        other => FinishReason::Other(other.to_owned()),
    }
}

/// The JSON body for `chat/completions`, borrowed from the request and serialized as it is:
/// unset parameters are left out.
#[derive(Debug, Serialize)]
pub struct RequestBody<'a> {
    model: &'a str,
    messages: Messages<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    frequency_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    presence_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    safe_prompt: Option<bool>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
    /// An OpenAI-route request's fields promptd does not know, forwarded as sent.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    passthrough: Option<&'a Map<String, Value>>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    unkeyed: Option<&'a Map<String, Value>>,
}

/// The messages: promptd's turns, or an OpenAI-route request's own, as sent.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Messages<'a> {
    Turns(Vec<Turn<'a>>),
    AsSent(&'a [Value]),
}

/// One message as OpenAI names roles.
#[derive(Debug, Serialize)]
struct Turn<'a> {
    role: &'static str,
    content: &'a str,
}

#[derive(Debug, Serialize)]
struct StreamOptions {
    include_usage: bool,
}

/// The body for `chat/completions`.
pub fn request_body(req: &ChatRequest, stream: bool) -> RequestBody<'_> {
    let ModelParams {
        temp,
        top_p,
        frequency_penalty,
        presence_penalty,
        max_length,
        response_format,
        safe_prompt,
    } = &req.params;
    let passthrough = req.passthrough.as_ref();
    let messages = match passthrough.and_then(|p| p.messages.as_deref()) {
        Some(sent) => Messages::AsSent(sent),
        None => Messages::Turns(
            req.messages
                .iter()
                .map(|m| Turn {
                    role: role_name(m.role),
                    content: m.content.as_deref().unwrap_or(""),
                })
                .collect(),
        ),
    };
    RequestBody {
        model: &req.model,
        messages,
        temperature: *temp,
        top_p: *top_p,
        frequency_penalty: *frequency_penalty,
        presence_penalty: *presence_penalty,
        max_tokens: *max_length,
        response_format: response_format.as_ref(),
        safe_prompt: *safe_prompt,
        tools: req.functions.iter().map(tool).collect(),
        tool_choice: req.function_call.as_ref().map(tool_choice),
        stream: stream.then_some(true),
        stream_options: stream.then_some(StreamOptions {
            include_usage: true,
        }),
        passthrough: passthrough.map(|p| &p.fields).filter(|f| !f.is_empty()),
        unkeyed: passthrough.map(|p| &p.unkeyed).filter(|f| !f.is_empty()),
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::System => "system",
        Role::User | Role::ExampleUser => "user",
        Role::Assistant | Role::ExampleAssistant => "assistant",
        Role::Tool => "tool",
    }
}

/// A Parea function definition (`{name, description, parameters}`) as an OpenAI tool; one
/// already in tool shape passes unchanged.
pub(crate) fn tool(function: &Value) -> Value {
    if function.get("type").is_some() && function.get("function").is_some() {
        function.clone()
    } else {
        json!({"type": "function", "function": function})
    }
}

pub(crate) fn tool_choice(spec: &FunctionCallSpec) -> Value {
    match spec {
        FunctionCallSpec::Mode(mode) if matches!(mode.as_str(), "auto" | "none" | "required") => {
            Value::from(mode.as_str())
        }
        FunctionCallSpec::Mode(name) | FunctionCallSpec::Named { name } => {
            json!({"type": "function", "function": {"name": name}})
        }
    }
}

#[derive(Deserialize)]
struct ChatCompletion {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct Choice {
    message: WireMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<WireToolCall>>,
}

#[derive(Deserialize)]
struct WireToolCall {
    #[serde(default)]
    id: String,
    function: WireFunction,
}

#[derive(Deserialize)]
struct WireFunction {
    #[serde(default)]
    name: String,
    #[serde(default)]
    arguments: String,
}

/// OpenAI's `usage`: `prompt_tokens` counts every prompt token, the cached ones
/// (`prompt_tokens_details.cached_tokens`) included; `completion_tokens` counts the reasoning
/// ones (`completion_tokens_details.reasoning_tokens`). The details may be absent or `null`.
#[derive(Deserialize, Clone, Copy)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
    #[serde(default)]
    completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Deserialize, Clone, Copy)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

#[derive(Deserialize, Clone, Copy)]
struct CompletionDetails {
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

impl From<WireUsage> for Usage {
    /// The cached part is taken out of `input` (never more than the prompt, so the total stays
    /// `prompt_tokens`); OpenAI reports no cache writes.
    fn from(u: WireUsage) -> Usage {
        let cached = u
            .prompt_tokens_details
            .and_then(|d| d.cached_tokens)
            .unwrap_or(0)
            .min(u.prompt_tokens);
        Usage {
            input: u.prompt_tokens - cached,
            output: u.completion_tokens,
            cache_read: cached,
            cache_write: 0,
            reasoning: u
                .completion_tokens_details
                .and_then(|d| d.reasoning_tokens)
                .unwrap_or(0),
        }
    }
}

/// Parse a whole (non-stream) answer.
pub fn parse_response(body: &[u8]) -> Result<Completion, ProviderError> {
    let parsed: ChatCompletion = serde_json::from_slice(body)
        .map_err(|e| ProviderError::Protocol(format!("chat completion body: {e}")))?;
    let choice = parsed
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| ProviderError::Protocol("chat completion has no choices".into()))?;
    Ok(Completion {
        text: choice.message.content.unwrap_or_default(),
        tool_calls: choice
            .message
            .tool_calls
            .unwrap_or_default()
            .into_iter()
            .map(|c| ToolCall {
                id: c.id,
                name: c.function.name,
                arguments: c.function.arguments,
            })
            .collect(),
        usage: parsed.usage.map(Usage::from).unwrap_or_default(),
        model: parsed.model,
        finish_reason: choice.finish_reason.as_deref().map(finish_reason),
        raw: std::str::from_utf8(body).ok().map(str::to_owned),
        truncated: false,
    })
}

/// Accumulated state of an OpenAI stream: at most `held` bytes of text (its head) and of tool
/// calls, which are kept by order of first appearance, never by the upstream's `index`.
#[derive(Debug)]
pub struct StreamState {
    text: String,
    truncated: bool,
    /// The upstream's index of each call, and the call.
    tool_calls: Vec<(u64, ToolCall)>,
    /// Bytes of the tool calls' names and arguments.
    tool_bytes: usize,
    held: usize,
    usage: Usage,
    model: Option<String>,
    pub(super) finish_reason: Option<FinishReason>,
}

impl Default for StreamState {
    /// Holding everything: for tests.
    fn default() -> Self {
        StreamState::new(usize::MAX)
    }
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Vec<ChunkChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct ChunkChoice {
    #[serde(default)]
    delta: Option<Delta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<ToolCallDelta>>,
}

#[derive(Deserialize)]
struct ToolCallDelta {
    #[serde(default)]
    index: u64,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<FunctionDelta>,
}

#[derive(Deserialize)]
struct FunctionDelta {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}

impl StreamState {
    /// A stream's state, holding at most `held` bytes of the answer.
    pub fn new(held: usize) -> Self {
        StreamState {
            text: String::new(),
            truncated: false,
            tool_calls: Vec::new(),
            tool_bytes: 0,
            held,
            usage: Usage::default(),
            model: None,
            finish_reason: None,
        }
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
        let chunk: Chunk = serde_json::from_str(data)
            .map_err(|e| ProviderError::Stream(format!("unreadable stream event: {e}")))?;
        if let Some(error) = chunk.error {
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| error.to_string());
            return Err(ProviderError::Stream(message));
        }
        let usage_only = chunk.usage.is_some() && chunk.choices.is_empty();
        if chunk.model.is_some() && self.model.is_none() {
            self.model = chunk.model;
        }
        if let Some(usage) = chunk.usage {
            self.usage = usage.into();
        }
        let mut delta_text = None;
        // Only the first choice is used (promptd never asks for n > 1); the usage chunk has none.
        if let Some(choice) = chunk.choices.into_iter().next() {
            if let Some(reason) = choice.finish_reason {
                self.finish_reason = Some(finish_reason(&reason));
            }
            if let Some(delta) = choice.delta {
                for call in delta.tool_calls.unwrap_or_default() {
                    self.merge_tool_call(call)?;
                }
                if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
                    if !self.truncated && !super::push_within(&mut self.text, &text, self.held) {
                        self.truncated = true;
                    }
                    delta_text = Some(text);
                }
            }
        }
        Ok(Decoded {
            delta: delta_text,
            chunk: Some(data.to_owned()),
            usage_only,
            events: Vec::new(),
            done: false,
        })
    }

    /// Add a fragment to the call with its `index` (a new call at its first appearance): an
    /// index at or beyond [`MAX_TOOL_CALLS`](super::MAX_TOOL_CALLS), or calls longer than
    /// `held`, fail the stream.
    fn merge_tool_call(&mut self, call: ToolCallDelta) -> Result<(), ProviderError> {
        if call.index >= super::MAX_TOOL_CALLS as u64 {
            return Err(super::too_many_tool_calls(call.index));
        }
        let added = call.function.as_ref().map_or(0, |f| {
            f.name.as_ref().map_or(0, String::len) + f.arguments.as_ref().map_or(0, String::len)
        }) + call.id.as_ref().map_or(0, String::len);
        self.tool_bytes = self.tool_bytes.saturating_add(added);
        if self.tool_bytes > self.held {
            return Err(super::tool_calls_too_long(self.held));
        }
        let at = match self.tool_calls.iter().position(|(i, _)| *i == call.index) {
            Some(at) => at,
            None => {
                self.tool_calls.push((call.index, ToolCall::default()));
                self.tool_calls.len() - 1
            }
        };
        let slot = &mut self.tool_calls[at].1;
        if let Some(id) = call.id {
            slot.id = id;
        }
        if let Some(f) = call.function {
            if let Some(name) = f.name {
                slot.name.push_str(&name);
            }
            if let Some(args) = f.arguments {
                slot.arguments.push_str(&args);
            }
        }
        Ok(())
    }

    pub fn into_completion(self) -> Completion {
        Completion {
            text: self.text,
            tool_calls: self.tool_calls.into_iter().map(|(_, c)| c).collect(),
            usage: self.usage,
            model: self.model,
            finish_reason: self.finish_reason,
            raw: None,
            truncated: self.truncated,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Message, ModelParams};

    fn msg(role: Role, content: &str) -> Message {
        Message {
            role,
            content: Some(content.to_owned()),
        }
    }

    #[test]
    fn params_roles_and_functions_map_to_openai_names() {
        let req = ChatRequest {
            model: "gpt-4o-mini".into(),
            messages: vec![
                msg(Role::System, "s"),
                msg(Role::ExampleUser, "eu"),
                msg(Role::ExampleAssistant, "ea"),
                msg(Role::User, "u"),
            ],
            params: ModelParams {
                temp: Some(0.5),
                top_p: Some(0.9),
                frequency_penalty: Some(0.1),
                presence_penalty: Some(0.2),
                max_length: Some(100),
                response_format: Some(json!({"type": "json_object"})),
                safe_prompt: None,
            },
            functions: vec![json!({"name": "f", "parameters": {"type": "object"}})],
            function_call: Some(FunctionCallSpec::Named { name: "f".into() }),
            passthrough: None,
            translated: None,
        };
        let body = serde_json::to_value(request_body(&req, true)).expect("encodes");
        assert_eq!(
            body["messages"],
            json!([
                {"role": "system", "content": "s"},
                {"role": "user", "content": "eu"},
                {"role": "assistant", "content": "ea"},
                {"role": "user", "content": "u"}
            ])
        );
        assert_eq!(body["temperature"], 0.5);
        assert_eq!(body["top_p"], 0.9);
        assert_eq!(body["frequency_penalty"], 0.1);
        assert_eq!(body["presence_penalty"], 0.2);
        assert_eq!(body["max_tokens"], 100);
        assert_eq!(body["response_format"], json!({"type": "json_object"}));
        assert!(body.get("safe_prompt").is_none());
        assert_eq!(
            body["tools"],
            json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}])
        );
        assert_eq!(
            body["tool_choice"],
            json!({"type": "function", "function": {"name": "f"}})
        );
        assert_eq!(body["stream"], true);
        assert_eq!(body["stream_options"], json!({"include_usage": true}));
    }

    #[test]
    fn absent_params_are_not_sent_and_modes_stay_strings() {
        let req = ChatRequest {
            model: "m".into(),
            messages: vec![msg(Role::User, "u")],
            params: ModelParams::default(),
            functions: vec![],
            function_call: Some(FunctionCallSpec::Mode("auto".into())),
            passthrough: None,
            translated: None,
        };
        let body = serde_json::to_value(request_body(&req, false)).expect("encodes");
        assert_eq!(body["tool_choice"], "auto");
        for key in [
            "temperature",
            "top_p",
            "max_tokens",
            "stream",
            "stream_options",
            "tools",
        ] {
            assert!(body.get(key).is_none(), "{key}");
        }
    }

    #[test]
    fn passthrough_fields_and_messages_are_sent_as_they_came() {
        let fields = json!({"seed": 7, "logit_bias": {"50256": -100}})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let sent = vec![json!({"role": "user", "content": [{"type": "text", "text": "hi"}]})];
        let req = ChatRequest {
            model: "m".into(),
            messages: vec![msg(Role::User, "hi")],
            params: ModelParams::default(),
            functions: vec![],
            function_call: None,
            passthrough: Some(super::super::Passthrough {
                messages: Some(sent.clone()),
                fields,
                unkeyed: Map::new(),
            }),
            translated: None,
        };
        let body = serde_json::to_value(request_body(&req, false)).expect("encodes");
        assert_eq!(body["seed"], 7);
        assert_eq!(body["logit_bias"], json!({"50256": -100}));
        assert_eq!(body["messages"], Value::Array(sent));
    }

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
        assert_eq!(c.text, "Hi");
        assert_eq!(
            c.usage,
            Usage {
                input: 10,
                output: 10,
                cache_read: 20,
                cache_write: 0,
                reasoning: 4,
            }
        );
        assert_eq!(c.model.as_deref(), Some("gpt-x"));
        assert_eq!(c.finish_reason, Some(FinishReason::Stop));
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
            c.tool_calls,
            vec![ToolCall {
                id: "c1".into(),
                name: "f".into(),
                arguments: "{\"a\":1}".into()
            }]
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
        assert_eq!(c.text, "");
        assert_eq!(c.tool_calls.len(), 1);
        assert_eq!((c.usage.total_input(), c.usage.output), (5, 2));
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
        assert_eq!(c.finish_reason, Some(FinishReason::Length));
    }
}
