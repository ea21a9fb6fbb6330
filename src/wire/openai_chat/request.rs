//! An OpenAI chat completions request body as the model ([`decode_request`]).
//!
//! | OpenAI | the model |
//! |---|---|
//! | leading `system` / `developer` messages | [`Request::system`] (their texts, in order) |
//! | later `system` / `developer` messages | messages of those roles, where they stand |
//! | `user` content: a string, `text` parts, `image_url` parts (`data:` base64 or `http(s)` URL, `detail`) | text and image blocks (empty texts left out) |
//! | other `user` parts (`input_audio`, `file`, ...) | opaque blocks, the part as it came |
//! | `assistant` content (string, `text` or `refusal` parts) and `tool_calls` | text blocks, then tool call blocks (`arguments` kept as the text the model wrote) |
//! | `tool` messages | a tool message holding one tool result block |
//! | `tools` (`type: function`), `tool_choice`, `parallel_tool_calls` | tools, the tool choice, `parallel_tool_calls` |
//! | `tools` of other types (`custom`, ...) | hosted tools, as they came |
//! | `max_completion_tokens`, else `max_tokens` | `max_output_tokens` |
//! | `temperature`, `top_p`, `stop`, `seed`, penalties, `response_format`, `reasoning_effort` | the same parameters |
//! | `stream` | [`Request::stream`] |
//! | `safety_identifier`, else `user` | [`Request::user`] |
//!
//! Every other field is kept verbatim in [`Request::extras`]. Those that cannot change what the
//! answer means are also listed as [`Decoded::hints`] (a translated call leaves them out and
//! says so): `model`, `stream_options`, `metadata`, `store`, `service_tier`,
//! `prompt_cache_key`, `prediction`, and fields at their OpenAI
//! default (`n: 1`, `logprobs: false`, `top_logprobs: 0`, `logit_bias: {}`,
//! `modalities: ["text"]`, `verbosity: "medium"`, `safe_prompt: false`). The rest (`n: 3`, `logprobs: true`,
//! `audio`, the deprecated `functions`, a field promptd does not know...) changes the answer:
//! a provider of another wire refuses it by name. `null` is absent for every field.

use serde_json::{Map, Value};

use crate::model::{
    Block, Error, ErrorKind, ImageSource, Message, Request, ResponseFormat, Role, Tool, ToolChoice,
    Wire,
};

/// A decoded request and the keys of its extras that are only hints.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub request: Request,
    pub hints: Vec<String>,
}

/// Fields kept as extras that cannot change what the answer means.
const HINTS: &[&str] = &[
    "stream_options",
    "metadata",
    "store",
    "service_tier",
    "prompt_cache_key",
    "prediction",
];

fn bad(param: impl Into<String>, message: impl Into<String>) -> Error {
    let mut error = Error::new(ErrorKind::InvalidRequest, message);
    error.param = Some(param.into());
    error
}

/// An OpenAI chat request body as the model; a malformed field is an invalid-request error
/// whose `param` is its OpenAI path (`messages[2].tool_calls[0].function.name`).
pub fn decode_request(body: &[u8]) -> Result<Decoded, Error> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| Error::new(ErrorKind::InvalidRequest, format!("invalid JSON: {e}")))?;
    let Value::Object(object) = value else {
        return Err(bad("body", "expected a JSON object"));
    };
    decode_object(object)
}

/// [`decode_request`] of a body already parsed.
fn decode_object(object: Map<String, Value>) -> Result<Decoded, Error> {
    let mut decoder = Decoder::default();
    for (key, value) in object {
        decoder.field(key, value)?;
    }
    decoder.finish()
}

/// Decodes a request field by field: for a request whose fields are not one JSON object, or
/// whose door reads some of them itself (the OpenAI chat door's `promptd`).
#[derive(Debug)]
pub struct Decoder {
    decoded: Decoded,
    max_tokens: Option<u64>,
    max_completion_tokens: Option<u64>,
}

impl Default for Decoder {
    fn default() -> Decoder {
        Decoder {
            decoded: Decoded {
                request: Request::new(String::new(), Wire::OpenAiChat),
                hints: Vec::new(),
            },
            max_tokens: None,
            max_completion_tokens: None,
        }
    }
}

impl Decoder {
    /// The request so far (its messages and system part, to fill directly).
    pub fn request(&mut self) -> &mut Request {
        &mut self.decoded.request
    }

    /// One top-level field of the body (`null` is absent).
    pub fn field(&mut self, key: String, value: Value) -> Result<(), Error> {
        if value.is_null() {
            return Ok(());
        }
        let request = &mut self.decoded.request;
        match key.as_str() {
            "model" => {
                if let Value::String(model) = &value {
                    model.clone_into(&mut request.model);
                }
                self.decoded.hints.push(key.clone());
                request.extras.insert(key, value);
            }
            "messages" => {
                let list = value
                    .as_array()
                    .ok_or_else(|| bad("messages", "expected a list of messages"))?;
                messages(list, request)?;
            }
            "tools" => (request.tools, request.hosted_tools) = tools(value)?,
            "tool_choice" => request.tool_choice = Some(tool_choice(&value)?),
            "parallel_tool_calls" => {
                request.params.parallel_tool_calls = Some(
                    value
                        .as_bool()
                        .ok_or_else(|| bad(&key, "expected a boolean"))?,
                )
            }
            "max_tokens" => self.max_tokens = Some(positive(&key, &value)?),
            "max_completion_tokens" => self.max_completion_tokens = Some(positive(&key, &value)?),
            "temperature" => request.params.temperature = Some(number(&key, &value)?),
            "top_p" => request.params.top_p = Some(number(&key, &value)?),
            "presence_penalty" => request.params.presence_penalty = Some(number(&key, &value)?),
            "frequency_penalty" => request.params.frequency_penalty = Some(number(&key, &value)?),
            "seed" => {
                request.params.seed = Some(
                    value
                        .as_i64()
                        .ok_or_else(|| bad(&key, "expected an integer"))?,
                )
            }
            "stop" => request.params.stop = stop(&value)?,
            "response_format" => request.params.response_format = Some(response_format(&value)?),
            "reasoning_effort" => {
                request.params.reasoning_effort = Some(
                    value
                        .as_str()
                        .ok_or_else(|| bad(&key, "expected a string"))?
                        .to_owned(),
                )
            }
            "stream" => {
                request.stream = value
                    .as_bool()
                    .ok_or_else(|| bad(&key, "expected a boolean"))?
            }
            // The end user's id; `safety_identifier` is its newer name and wins.
            "user" | "safety_identifier" => {
                let user = value
                    .as_str()
                    .ok_or_else(|| bad(&key, "expected a string"))?
                    .to_owned();
                if key == "safety_identifier" || request.user.is_none() {
                    request.user = Some(user);
                }
            }
            _ => {
                if HINTS.contains(&key.as_str()) || at_default(&key, &value) {
                    self.decoded.hints.push(key.clone());
                }
                request.extras.insert(key, value);
            }
        }
        Ok(())
    }

    /// The request: refused when it holds no message.
    pub fn finish(self) -> Result<Decoded, Error> {
        let decoded = self.finish_any();
        if decoded.request.messages.is_empty() && decoded.request.system.is_empty() {
            return Err(bad("messages", "expected a non-empty list of messages"));
        }
        Ok(decoded)
    }

    /// The request, with or without messages (a deployed prompt may bring them).
    pub fn finish_any(mut self) -> Decoded {
        let request = &mut self.decoded.request;
        request.params.max_output_tokens = self.max_completion_tokens.or(self.max_tokens);
        self.decoded
    }
}

/// A field at its OpenAI default: it asks nothing.
fn at_default(key: &str, value: &Value) -> bool {
    match key {
        "n" => value.as_u64() == Some(1),
        "logprobs" => value == &Value::Bool(false),
        "top_logprobs" => value.as_f64() == Some(0.0),
        "logit_bias" => value.as_object().is_some_and(Map::is_empty),
        "modalities" => value
            .as_array()
            .is_some_and(|m| m.iter().all(|m| m == "text")),
        "verbosity" => value == "medium",
        // Mistral's prompt guard (a system prompt it adds), off.
        "safe_prompt" => value == &Value::Bool(false),
        _ => false,
    }
}

fn positive(param: &str, value: &Value) -> Result<u64, Error> {
    value
        .as_u64()
        .filter(|n| *n > 0)
        .ok_or_else(|| bad(param, "expected a positive integer"))
}

fn number(param: &str, value: &Value) -> Result<f64, Error> {
    value
        .as_f64()
        .ok_or_else(|| bad(param, "expected a number"))
}

fn stop(stop: &Value) -> Result<Vec<String>, Error> {
    match stop {
        Value::String(s) if s.is_empty() => Ok(Vec::new()),
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(list) => list
            .iter()
            .enumerate()
            .map(|(i, s)| {
                s.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| bad(format!("stop[{i}]"), "expected a string"))
            })
            .collect(),
        _ => Err(bad("stop", "expected a string or a list of strings")),
    }
}

fn response_format(value: &Value) -> Result<ResponseFormat, Error> {
    match value.get("type").and_then(Value::as_str) {
        Some("text") => Ok(ResponseFormat::Text),
        Some("json_object") => Ok(ResponseFormat::JsonObject),
        Some("json_schema") => {
            let spec = value.get("json_schema").unwrap_or(&Value::Null);
            Ok(ResponseFormat::JsonSchema {
                name: spec
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                schema: spec.get("schema").cloned().unwrap_or(Value::Null),
                strict: spec.get("strict").and_then(Value::as_bool),
            })
        }
        _ => Err(bad(
            "response_format.type",
            "expected text, json_object or json_schema",
        )),
    }
}

/// Where in the body a value is, written out only for an error.
#[derive(Debug, Clone, Copy)]
enum At {
    Message(usize),
    Part(usize, usize),
    ToolCall(usize, usize),
    Tool(usize),
}

impl At {
    /// Content part `j` of a message.
    fn part(self, j: usize) -> At {
        match self {
            At::Message(i) | At::Part(i, _) | At::ToolCall(i, _) => At::Part(i, j),
            At::Tool(_) => self,
        }
    }

    /// Tool call `j` of a message.
    fn tool_call(self, j: usize) -> At {
        match self {
            At::Message(i) | At::Part(i, _) | At::ToolCall(i, _) => At::ToolCall(i, j),
            At::Tool(_) => self,
        }
    }
}

impl std::fmt::Display for At {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            At::Message(i) => write!(f, "messages[{i}]"),
            At::Part(i, j) => write!(f, "messages[{i}].content[{j}]"),
            At::ToolCall(i, j) => write!(f, "messages[{i}].tool_calls[{j}]"),
            At::Tool(i) => write!(f, "tools[{i}]"),
        }
    }
}

/// The messages into `request`: leading system and developer messages become its system part.
fn messages(list: &[Value], request: &mut Request) -> Result<(), Error> {
    for (i, m) in list.iter().enumerate() {
        let at = At::Message(i);
        let role = m
            .get("role")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(format!("{at}.role"), "expected a string"))?;
        let content = m.get("content").filter(|c| !c.is_null());
        let (role, blocks) = match role {
            "system" | "developer" => {
                let content = content.ok_or_else(|| missing(at))?;
                let blocks: Vec<Block> = texts(content, at)?
                    .into_iter()
                    .filter(|t| !t.is_empty())
                    .map(Block::Text)
                    .collect();
                if request.messages.is_empty() {
                    request.system.extend(blocks);
                    continue;
                }
                let role = if role == "system" {
                    Role::System
                } else {
                    Role::Developer
                };
                (role, blocks)
            }
            "user" => (
                Role::User,
                user_blocks(content.ok_or_else(|| missing(at))?, at)?,
            ),
            "assistant" => (Role::Assistant, assistant_blocks(m, content, at)?),
            "tool" => (Role::Tool, vec![tool_result(m, content, at)?]),
            "function" => {
                return Err(bad(
                    format!("{at}.role"),
                    "the deprecated function role is not supported here; use tool messages",
                ))
            }
            other => return Err(bad(format!("{at}.role"), format!("unknown role {other:?}"))),
        };
        let name = m.get("name").and_then(Value::as_str).map(str::to_owned);
        request.messages.push(Message {
            role,
            content: blocks,
            name,
        });
    }
    Ok(())
}

fn missing(at: At) -> Error {
    bad(format!("{at}.content"), "expected content")
}

/// The texts of a content that may only hold text: a string, or a list of `text` parts.
fn texts(content: &Value, at: At) -> Result<Vec<String>, Error> {
    match content {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(parts) => parts
            .iter()
            .enumerate()
            .map(|(j, part)| {
                let at = at.part(j);
                match part_type(part, at)? {
                    "text" => part_text(part, "text", at),
                    other => Err(unsupported_part(other, at)),
                }
            })
            .collect(),
        _ => Err(bad(
            format!("{at}.content"),
            "expected a string or a list of content parts",
        )),
    }
}

fn part_type(part: &Value, at: At) -> Result<&str, Error> {
    part.get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| bad(format!("{at}.type"), "expected a string"))
}

fn part_text(part: &Value, key: &str, at: At) -> Result<String, Error> {
    part.get(key)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| bad(format!("{at}.{key}"), "expected a string"))
}

fn unsupported_part(kind: &str, at: At) -> Error {
    bad(
        format!("{at}.type"),
        format!("content parts of type {kind:?} are not supported here"),
    )
}

/// A user message's content as blocks (empty texts left out).
fn user_blocks(content: &Value, at: At) -> Result<Vec<Block>, Error> {
    let Value::Array(parts) = content else {
        return Ok(texts(content, at)?
            .into_iter()
            .filter(|t| !t.is_empty())
            .map(Block::Text)
            .collect());
    };
    let mut blocks = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        let at = at.part(j);
        match part_type(part, at)? {
            "text" => {
                let text = part_text(part, "text", at)?;
                if !text.is_empty() {
                    blocks.push(Block::Text(text));
                }
            }
            "image_url" => blocks.push(image(part, at)?),
            // `input_audio`, `file`, ...: sent as they came to a provider of this wire, refused
            // by a translation.
            _ => blocks.push(Block::Opaque {
                wire: Wire::OpenAiChat,
                json: part.clone(),
            }),
        }
    }
    Ok(blocks)
}

/// An `image_url` part as an image block: a base64 `data:` URL becomes its media type and
/// data, an `http(s)` URL stays a URL.
fn image(part: &Value, at: At) -> Result<Block, Error> {
    let param = || format!("{at}.image_url.url");
    let url = part
        .pointer("/image_url/url")
        .and_then(Value::as_str)
        .ok_or_else(|| bad(param(), "expected a string"))?;
    let detail = part
        .pointer("/image_url/detail")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let source = if let Some(rest) = url.strip_prefix("data:") {
        let (meta, data) = rest
            .split_once(',')
            .ok_or_else(|| bad(param(), "a data: URL without a comma"))?;
        let media_type = meta
            .strip_suffix(";base64")
            .ok_or_else(|| bad(param(), "only base64 data: URLs are supported"))?;
        let media_type = match media_type.to_ascii_lowercase().as_str() {
            "image/jpg" => "image/jpeg".to_owned(),
            t => t.to_owned(),
        };
        ImageSource::Base64 {
            media_type,
            data: data.to_owned(),
        }
    } else if url.starts_with("https://") || url.starts_with("http://") {
        ImageSource::Url(url.to_owned())
    } else {
        return Err(bad(
            param(),
            "expected an http(s) URL or a base64 data: URL",
        ));
    };
    Ok(Block::Image { source, detail })
}

/// An assistant message as blocks: its text, then a tool call block per tool call.
fn assistant_blocks(m: &Value, content: Option<&Value>, at: At) -> Result<Vec<Block>, Error> {
    for deprecated in ["function_call", "audio"] {
        if m.get(deprecated).is_some_and(|v| !v.is_null()) {
            return Err(bad(
                format!("{at}.{deprecated}"),
                "not supported here; use tool_calls and text content",
            ));
        }
    }
    let mut blocks = Vec::new();
    match content {
        None => {}
        Some(Value::Array(parts)) => {
            for (j, part) in parts.iter().enumerate() {
                let at = at.part(j);
                let text = match part_type(part, at)? {
                    "text" => part_text(part, "text", at)?,
                    "refusal" => part_text(part, "refusal", at)?,
                    other => return Err(unsupported_part(other, at)),
                };
                if !text.is_empty() {
                    blocks.push(Block::Text(text));
                }
            }
        }
        Some(other) => blocks.extend(
            texts(other, at)?
                .into_iter()
                .filter(|t| !t.is_empty())
                .map(Block::Text),
        ),
    }
    let calls = match m.get("tool_calls") {
        None | Some(Value::Null) => return Ok(blocks),
        Some(Value::Array(calls)) => calls,
        Some(_) => return Err(bad(format!("{at}.tool_calls"), "expected a list")),
    };
    for (j, call) in calls.iter().enumerate() {
        let at = at.tool_call(j);
        let string = |pointer: &str, name: &str| {
            call.pointer(pointer)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| bad(format!("{at}.{name}"), "expected a string"))
        };
        if let Some(kind) = call.get("type").and_then(Value::as_str) {
            if kind != "function" {
                return Err(bad(
                    format!("{at}.type"),
                    format!("tool calls of type {kind:?} are not supported"),
                ));
            }
        }
        blocks.push(Block::ToolCall {
            id: string("/id", "id")?,
            name: string("/function/name", "function.name")?,
            arguments: string("/function/arguments", "function.arguments")?,
        });
    }
    Ok(blocks)
}

/// A `tool` message as a tool result block.
fn tool_result(m: &Value, content: Option<&Value>, at: At) -> Result<Block, Error> {
    let call_id = m
        .get("tool_call_id")
        .and_then(Value::as_str)
        .ok_or_else(|| bad(format!("{at}.tool_call_id"), "expected a string"))?
        .to_owned();
    let content = match content {
        None => Vec::new(),
        Some(c) => texts(c, at)?
            .into_iter()
            .filter(|t| !t.is_empty())
            .map(Block::Text)
            .collect(),
    };
    Ok(Block::ToolResult {
        call_id,
        content,
        is_error: false,
    })
}

/// Function tools as the model's tools, and tools of other types (`custom`, ...) as they came:
/// hosted tools, sent back to a provider of this wire, left out (and said) by a translation.
fn tools(tools: Value) -> Result<(Vec<Tool>, Vec<Value>), Error> {
    let Value::Array(tools) = tools else {
        return Err(bad("tools", "expected a list"));
    };
    let mut out = Vec::with_capacity(tools.len());
    let mut hosted = Vec::new();
    for (i, t) in tools.into_iter().enumerate() {
        let at = At::Tool(i);
        match t.get("type").and_then(Value::as_str) {
            None | Some("function") => {}
            Some(_) => {
                hosted.push(t);
                continue;
            }
        }
        let f = t
            .get("function")
            .ok_or_else(|| bad(format!("{at}.function"), "expected an object"))?;
        let name = f
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(format!("{at}.function.name"), "expected a string"))?;
        out.push(Tool {
            name: name.to_owned(),
            description: f
                .get("description")
                .and_then(Value::as_str)
                .map(str::to_owned),
            parameters: f
                .get("parameters")
                .filter(|p| !p.is_null())
                .cloned()
                .unwrap_or_else(|| serde_json::json!({"type": "object", "properties": {}})),
            strict: f.get("strict").and_then(Value::as_bool),
        });
    }
    Ok((out, hosted))
}

fn tool_choice(choice: &Value) -> Result<ToolChoice, Error> {
    match choice {
        Value::String(mode) => match mode.as_str() {
            "auto" => Ok(ToolChoice::Auto),
            "none" => Ok(ToolChoice::None),
            "required" => Ok(ToolChoice::Required),
            other => Err(bad(
                "tool_choice",
                format!("unknown mode {other:?}: expected auto, none, required or a function"),
            )),
        },
        Value::Object(_) if choice.get("type").and_then(Value::as_str) == Some("function") => {
            let name = choice
                .pointer("/function/name")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("tool_choice.function.name", "expected a string"))?;
            Ok(ToolChoice::Tool(name.to_owned()))
        }
        _ => Err(bad(
            "tool_choice",
            "expected auto, none, required or {\"type\": \"function\", \"function\": {\"name\"}}",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn decode(v: Value) -> Result<Decoded, Error> {
        decode_request(v.to_string().as_bytes())
    }

    fn param_of(v: Value) -> String {
        decode(v).unwrap_err().param.unwrap_or_default()
    }

    #[test]
    fn leading_system_messages_are_the_system_part_later_ones_stay() {
        let d = decode(json!({"model": "gpt-4o", "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "developer", "content": [{"type": "text", "text": "digits only"}]},
            {"role": "user", "content": "2+2?", "name": "ann"},
            {"role": "system", "content": "later"},
            {"role": "assistant", "content": "4"},
        ]}))
        .expect("decodes");
        let r = d.request;
        assert_eq!(r.system_text().as_deref(), Some("be brief\n\ndigits only"));
        assert_eq!(r.messages.len(), 3);
        assert_eq!(r.messages[0].name.as_deref(), Some("ann"));
        assert_eq!(r.messages[1], Message::text(Role::System, "later"));
        assert_eq!(r.wire, Wire::OpenAiChat);
        assert_eq!(d.hints, vec!["model".to_owned()]);
        assert_eq!(r.extras["model"], "gpt-4o");
    }

    #[test]
    fn tool_loop_images_and_params() {
        let d = decode(json!({"messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/jpg;base64,AAAA", "detail": "high"}},
                {"type": "image_url", "image_url": {"url": "https://e.x/cat.png"}}]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "42"},
        ],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        "tool_choice": {"type": "function", "function": {"name": "f"}},
        "parallel_tool_calls": false, "max_tokens": 5, "max_completion_tokens": 7,
        "temperature": 0.5, "stop": "END", "seed": 3, "response_format": {"type": "json_object"},
        "stream": true, "n": 1, "logprobs": true, "metadata": {"k": "v"}}))
        .expect("decodes");
        let r = &d.request;
        assert_eq!(
            r.messages[0].content[1],
            Block::Image {
                source: ImageSource::Base64 {
                    media_type: "image/jpeg".into(),
                    data: "AAAA".into()
                },
                detail: Some("high".into())
            }
        );
        assert_eq!(
            r.messages[1].content,
            vec![Block::ToolCall {
                id: "c1".into(),
                name: "f".into(),
                arguments: "{\"a\":1}".into()
            }]
        );
        assert_eq!(r.messages[2].role, Role::Tool);
        assert_eq!(r.tool_choice, Some(ToolChoice::Tool("f".into())));
        assert_eq!(
            r.params.max_output_tokens,
            Some(7),
            "max_completion_tokens wins"
        );
        assert_eq!(r.params.stop, vec!["END".to_owned()]);
        assert_eq!(r.params.parallel_tool_calls, Some(false));
        assert_eq!(r.params.response_format, Some(ResponseFormat::JsonObject));
        assert!(r.stream);
        let mut hints = d.hints.clone();
        hints.sort();
        assert_eq!(hints, vec!["metadata".to_owned(), "n".to_owned()]);
        assert!(r.extras.contains_key("logprobs"), "kept, and not a hint");
    }

    #[test]
    fn parts_and_tools_the_model_has_no_type_for_are_kept_as_they_came() {
        let audio =
            json!({"type": "input_audio", "input_audio": {"data": "AA==", "format": "wav"}});
        let custom = json!({"type": "custom", "custom": {"name": "grammar"}});
        let body = json!({"messages": [{"role": "user", "content": [audio]}],
            "tools": [custom, {"type": "function", "function": {"name": "f"}}]});
        let r = decode_request(body.to_string().as_bytes())
            .expect("decodes")
            .request;
        assert_eq!(
            r.messages[0].content,
            vec![Block::Opaque {
                wire: Wire::OpenAiChat,
                json: audio
            }]
        );
        assert_eq!(r.hosted_tools, vec![custom]);
        assert_eq!(r.tools[0].name, "f");
    }

    #[test]
    fn malformed_fields_name_their_path() {
        let user = |content: Value| json!({"messages": [{"role": "user", "content": content}]});
        assert_eq!(param_of(json!({"messages": []})), "messages");
        assert_eq!(
            param_of(user(json!([{"text": "no type"}]))),
            "messages[0].content[0].type"
        );
        assert_eq!(
            param_of(user(
                json!([{"type": "image_url", "image_url": {"url": "data:image/png,raw"}}])
            )),
            "messages[0].content[0].image_url.url"
        );
        assert_eq!(
            param_of(json!({"messages": [{"role": "assistant",
                "tool_calls": [{"id": "c", "function": {"arguments": "{}"}}]}]})),
            "messages[0].tool_calls[0].function.name"
        );
        assert_eq!(
            param_of(json!({"messages": [{"role": "function", "content": "x"}]})),
            "messages[0].role"
        );
        assert_eq!(
            param_of(json!({"messages": [{"role": "user", "content": "q"}], "max_tokens": 0})),
            "max_tokens"
        );
        assert_eq!(
            param_of(json!({"messages": [{"role": "user", "content": "q"}], "tool_choice": "x"})),
            "tool_choice"
        );
        assert!(decode_request(b"[1]").is_err());
        assert!(decode_request(b"{").is_err());
    }
}
