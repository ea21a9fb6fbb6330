//! Responses request bodies <-> the model's [`Request`] (the rules are in the parent's header).

use std::fmt;

use serde_json::{json, Map, Value};

use crate::model::{
    Block, Error, ErrorKind, ImageSource, Message, Request, ResponseFormat, Role, Tool, ToolChoice,
    Wire,
};

/// An InvalidRequest error naming `param`.
fn invalid(param: impl Into<String>, why: impl fmt::Display) -> Error {
    let param = param.into();
    let mut error = Error::new(ErrorKind::InvalidRequest, format!("{param}: {why}"));
    error.param = Some(param);
    error
}

/// Top-level fields that are always hints (see the parent's header for why each is).
const HINTS: [&str; 9] = [
    "prompt_cache_key",
    "prompt_cache_retention",
    "include",
    "store",
    "metadata",
    "client_metadata",
    "reasoning",
    "service_tier",
    "stream_options",
];

/// Whether an extras field is a hint: the fields of [`HINTS`], and others at their neutral
/// value.
fn is_hint(key: &str, value: &Value) -> bool {
    match key {
        "truncation" => value == "disabled",
        "text" => value
            .as_object()
            .is_some_and(|o| o.iter().all(|(k, v)| k == "verbosity" && v == "medium")),
        "background" => value == false,
        "top_logprobs" => value == 0,
        _ => HINTS.contains(&key),
    }
}

// ------------------------------------------------------------------------------------------
// Decoding (the Responses door).

/// A decoded Responses request: the model's request, and which of its extras are hints.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub request: Request,
    /// The keys of `request.extras` that are hints. Sorted, each once.
    pub hints: Vec<String>,
}

/// A Responses request body as the model (see the parent's header for the table). A wrong
/// shape is an [`ErrorKind::InvalidRequest`] whose `param` is the field's path
/// (`input[2].content[0].type`).
pub fn decode_request(body: &[u8]) -> Result<Decoded, Error> {
    let value: Value = crate::wire::json::from_bytes(body)
        .map_err(|e| invalid("body", format!("invalid JSON: {e}")))?;
    let Value::Object(object) = value else {
        return Err(invalid("body", "expected a JSON object"));
    };
    let mut request = Request::new(String::new(), Wire::OpenAiResponses);
    let mut model = None;
    let mut user = None;
    let mut safety_identifier = None;
    for (key, value) in object {
        if value.is_null() {
            continue;
        }
        let at = key.as_str();
        match at {
            "model" => model = Some(string(at, value)?),
            "instructions" => {
                let text = string(at, value)?;
                if !text.is_empty() {
                    request.system = vec![Block::Text(text)];
                }
            }
            "input" => request.messages = input(value)?,
            "tools" => tools(value, &mut request)?,
            "tool_choice" => match tool_choice(&value)? {
                Some(choice) => request.tool_choice = Some(choice),
                None => {
                    request.extras.insert(key, value);
                }
            },
            "parallel_tool_calls" => {
                request.params.parallel_tool_calls = Some(boolean(at, &value)?)
            }
            "max_output_tokens" => request.params.max_output_tokens = Some(count(at, &value)?),
            "temperature" => request.params.temperature = Some(number(at, &value)?),
            "top_p" => request.params.top_p = Some(number(at, &value)?),
            "stream" => request.stream = boolean(at, &value)?,
            "user" => user = Some(string(at, value)?),
            "safety_identifier" => safety_identifier = Some(string(at, value)?),
            "text" => {
                let mut text = object_of(at, value)?;
                if let Some(format) = text.remove("format").filter(|f| !f.is_null()) {
                    request.params.response_format = Some(response_format(&format)?);
                }
                if !text.is_empty() {
                    request.extras.insert(key, Value::Object(text));
                }
            }
            "reasoning" => {
                let mut reasoning = object_of(at, value)?;
                if let Some(effort) = reasoning.remove("effort").filter(|e| !e.is_null()) {
                    request.params.reasoning_effort = Some(string("reasoning.effort", effort)?);
                }
                if !reasoning.is_empty() {
                    request.extras.insert(key, Value::Object(reasoning));
                }
            }
            _ => {
                request.extras.insert(key, value);
            }
        }
    }
    request.model = model.ok_or_else(|| invalid("model", "required"))?;
    request.user = safety_identifier.or(user);
    let mut hints: Vec<String> = request
        .extras
        .iter()
        .filter(|(k, v)| is_hint(k, v))
        .map(|(k, _)| k.clone())
        .collect();
    hints.sort();
    Ok(Decoded { request, hints })
}

fn string(at: &str, value: Value) -> Result<String, Error> {
    match value {
        Value::String(s) => Ok(s),
        _ => Err(invalid(at, "expected a string")),
    }
}

fn boolean(at: &str, value: &Value) -> Result<bool, Error> {
    value
        .as_bool()
        .ok_or_else(|| invalid(at, "expected a boolean"))
}

fn number(at: &str, value: &Value) -> Result<f64, Error> {
    value
        .as_f64()
        .ok_or_else(|| invalid(at, "expected a number"))
}

fn count(at: &str, value: &Value) -> Result<u64, Error> {
    value
        .as_u64()
        .ok_or_else(|| invalid(at, "expected a non-negative integer"))
}

fn object_of(at: &str, value: Value) -> Result<Map<String, Value>, Error> {
    match value {
        Value::Object(o) => Ok(o),
        _ => Err(invalid(at, "expected an object")),
    }
}

/// A required string member `key` of `object` at `at`.
fn member(object: &Map<String, Value>, at: &str, key: &str) -> Result<String, Error> {
    match object.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        None | Some(Value::Null) => Err(invalid(format!("{at}.{key}"), "required")),
        Some(_) => Err(invalid(format!("{at}.{key}"), "expected a string")),
    }
}

/// An optional string member.
fn optional(object: &Map<String, Value>, at: &str, key: &str) -> Result<Option<String>, Error> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid(format!("{at}.{key}"), "expected a string")),
    }
}

/// The `type` of an item or part at `at`: `None` when absent.
fn kind_of<'a>(object: &'a Map<String, Value>, at: &str) -> Result<Option<&'a str>, Error> {
    match object.get("type") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid(format!("{at}.type"), "expected a string")),
    }
}

/// `input`: a string (one user message) or a list of items.
fn input(value: Value) -> Result<Vec<Message>, Error> {
    let items = match value {
        Value::String(text) => return Ok(vec![Message::text(Role::User, text)]),
        Value::Array(items) => items,
        _ => return Err(invalid("input", "expected a string or a list of items")),
    };
    let mut messages: Vec<Message> = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let at = format!("input[{i}]");
        let Value::Object(item) = item else {
            return Err(invalid(at, "expected an item object"));
        };
        let kind = kind_of(&item, &at)?.map(str::to_owned);
        match kind.as_deref() {
            None | Some("message") => {
                let role = match member(&item, &at, "role")?.as_str() {
                    "user" => Role::User,
                    "assistant" => Role::Assistant,
                    "system" => Role::System,
                    "developer" => Role::Developer,
                    other => {
                        return Err(invalid(
                            format!("{at}.role"),
                            format!(
                                "unknown role {other:?}: expected user, assistant, system or \
                                 developer"
                            ),
                        ))
                    }
                };
                let content = content(item.get("content"), &format!("{at}.content"))?;
                if role == Role::Assistant {
                    assistant(&mut messages, content);
                } else {
                    messages.push(Message {
                        role,
                        content,
                        name: None,
                    });
                }
            }
            Some("function_call") => {
                let call = Block::ToolCall {
                    id: member(&item, &at, "call_id")?,
                    name: member(&item, &at, "name")?,
                    arguments: optional(&item, &at, "arguments")?.unwrap_or_default(),
                };
                assistant(&mut messages, vec![call]);
            }
            Some("function_call_output") => {
                let call_id = member(&item, &at, "call_id")?;
                let content = content(item.get("output"), &format!("{at}.output"))?;
                messages.push(Message {
                    role: Role::Tool,
                    content: vec![Block::ToolResult {
                        call_id,
                        content,
                        is_error: false,
                    }],
                    name: None,
                });
            }
            Some("reasoning") => {
                let mut texts = Vec::new();
                if let Some(summary) = item.get("summary").filter(|s| !s.is_null()) {
                    let parts = summary
                        .as_array()
                        .ok_or_else(|| invalid(format!("{at}.summary"), "expected a list"))?;
                    for (k, part) in parts.iter().enumerate() {
                        let at = format!("{at}.summary[{k}]");
                        let part = part
                            .as_object()
                            .ok_or_else(|| invalid(&*at, "expected an object"))?;
                        texts.push(member(part, &at, "text")?);
                    }
                }
                let block = Block::Reasoning {
                    text: texts.join("\n\n"),
                    signature: None,
                    encrypted: optional(&item, &at, "encrypted_content")?,
                    redacted: None,
                };
                assistant(&mut messages, vec![block]);
            }
            Some(other) => {
                let role = if other.ends_with("_output") {
                    Role::Tool
                } else if other.ends_with("_call") {
                    Role::Assistant
                } else {
                    Role::User
                };
                let block = Block::Opaque {
                    wire: Wire::OpenAiResponses,
                    json: Value::Object(item),
                };
                if role == Role::Assistant {
                    assistant(&mut messages, vec![block]);
                } else {
                    messages.push(Message {
                        role,
                        content: vec![block],
                        name: None,
                    });
                }
            }
        }
    }
    Ok(messages)
}

/// Append assistant blocks: to the last message when it is the assistant's (one turn for the
/// reasoning, text and calls of one answer), else as a new assistant message.
fn assistant(messages: &mut Vec<Message>, blocks: Vec<Block>) {
    match messages.last_mut() {
        Some(last) if last.role == Role::Assistant => last.content.extend(blocks),
        _ => messages.push(Message {
            role: Role::Assistant,
            content: blocks,
            name: None,
        }),
    }
}

/// A message's `content` or a call output's `output`: a string, or a list of parts.
fn content(value: Option<&Value>, at: &str) -> Result<Vec<Block>, Error> {
    let parts = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::String(text)) if text.is_empty() => return Ok(Vec::new()),
        Some(Value::String(text)) => return Ok(vec![Block::Text(text.clone())]),
        Some(Value::Array(parts)) => parts,
        Some(_) => return Err(invalid(at, "expected a string or a list of parts")),
    };
    parts
        .iter()
        .enumerate()
        .map(|(j, part)| {
            let at = format!("{at}[{j}]");
            let part = part
                .as_object()
                .ok_or_else(|| invalid(&*at, "expected a part object"))?;
            let opaque = || Block::Opaque {
                wire: Wire::OpenAiResponses,
                json: Value::Object(part.clone()),
            };
            Ok(match kind_of(part, &at)? {
                Some("input_text" | "output_text") => Block::Text(member(part, &at, "text")?),
                Some("refusal") => Block::Text(member(part, &at, "refusal")?),
                Some("input_image") => match optional(part, &at, "image_url")? {
                    Some(url) => Block::Image {
                        source: ImageSource::Url(url),
                        detail: optional(part, &at, "detail")?,
                    },
                    None => opaque(), // by file_id: the model has no file ids
                },
                Some(_) => opaque(),
                None => return Err(invalid(format!("{at}.type"), "required")),
            })
        })
        .collect()
}

/// Function tools as the model's tools, every other tool as a hosted one.
fn tools(value: Value, request: &mut Request) -> Result<(), Error> {
    let Value::Array(list) = value else {
        return Err(invalid("tools", "expected a list of tools"));
    };
    for (i, tool) in list.into_iter().enumerate() {
        let at = format!("tools[{i}]");
        let Value::Object(tool) = tool else {
            return Err(invalid(at, "expected a tool object"));
        };
        match kind_of(&tool, &at)? {
            Some("function") => {
                let strict = match tool.get("strict") {
                    None | Some(Value::Null) => None,
                    Some(v) => Some(boolean(&format!("{at}.strict"), v)?),
                };
                request.tools.push(Tool {
                    name: member(&tool, &at, "name")?,
                    description: optional(&tool, &at, "description")?,
                    parameters: tool.get("parameters").cloned().unwrap_or(Value::Null),
                    strict,
                });
            }
            Some(_) => request.hosted_tools.push(Value::Object(tool)),
            None => return Err(invalid(format!("{at}.type"), "required")),
        }
    }
    Ok(())
}

/// The model's tool choice, or `None` for a choice it has no word for (kept in the extras).
fn tool_choice(value: &Value) -> Result<Option<ToolChoice>, Error> {
    Ok(Some(match value {
        Value::String(s) => match s.as_str() {
            "auto" => ToolChoice::Auto,
            "none" => ToolChoice::None,
            "required" => ToolChoice::Required,
            other => {
                return Err(invalid(
                    "tool_choice",
                    format!("unknown tool choice {other:?}: expected auto, none or required"),
                ))
            }
        },
        Value::Object(o) => match kind_of(o, "tool_choice")? {
            Some("function") => ToolChoice::Tool(member(o, "tool_choice", "name")?),
            Some(_) => return Ok(None),
            None => return Err(invalid("tool_choice.type", "required")),
        },
        _ => return Err(invalid("tool_choice", "expected a string or an object")),
    }))
}

/// `text.format` as the model's response format.
fn response_format(format: &Value) -> Result<ResponseFormat, Error> {
    let at = "text.format";
    let format = format
        .as_object()
        .ok_or_else(|| invalid(at, "expected an object"))?;
    match kind_of(format, at)? {
        Some("text") => Ok(ResponseFormat::Text),
        Some("json_object") => Ok(ResponseFormat::JsonObject),
        Some("json_schema") => Ok(ResponseFormat::JsonSchema {
            name: member(format, at, "name")?,
            schema: format
                .get("schema")
                .cloned()
                .ok_or_else(|| invalid("text.format.schema", "required"))?,
            strict: match format.get("strict") {
                None | Some(Value::Null) => None,
                Some(v) => Some(boolean("text.format.strict", v)?),
            },
        }),
        Some(other) => Err(invalid(
            "text.format.type",
            format!("unknown format {other:?}: expected text, json_object or json_schema"),
        )),
        None => Err(invalid("text.format.type", "required")),
    }
}

// ------------------------------------------------------------------------------------------
// Encoding (a provider serving the Responses API).

/// How to encode a request for a Responses provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodeOptions {
    /// Ask for a stream (`stream: true`).
    pub stream: bool,
}

/// An encoded request: the body, and the hints left out of it (for `x-promptd-dropped`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub body: Vec<u8>,
    pub dropped: Vec<String>,
}

/// Content part types of this wire: an Opaque block of one of these is a part of its message,
/// any other is an item of its own.
const PART_TYPES: [&str; 8] = [
    "input_text",
    "output_text",
    "input_image",
    "input_file",
    "input_audio",
    "refusal",
    "summary_text",
    "reasoning_text",
];

/// The fields [`encode_request`] writes itself: extras by these names are not sent beside
/// (but `text` and `reasoning` are merged with the format and effort).
const ENCODED_FIELDS: [&str; 15] = [
    "model",
    "instructions",
    "input",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "max_output_tokens",
    "temperature",
    "top_p",
    "text",
    "reasoning",
    "user",
    "safety_identifier",
    "stream",
    "store",
];

/// The Responses body of a model request of any wire (see the parent's header for the table).
/// `hints` are the names of `req.extras` that are hints, as the request's door decoded them.
/// Refuses, as an [`ErrorKind::InvalidRequest`] naming the parameter, what would change the
/// answer and has no Responses translation.
pub fn encode_request(
    req: &Request,
    hints: &[String],
    opts: &EncodeOptions,
) -> Result<Encoded, Error> {
    let same_wire = req.wire == Wire::OpenAiResponses;
    let p = &req.params;
    if !p.stop.is_empty() {
        return Err(invalid(
            "stop",
            "the Responses API has no stop sequences; leave them out",
        ));
    }
    if p.top_k.is_some() {
        return Err(invalid("top_k", "the Responses API has no top_k"));
    }
    if p.seed.is_some() {
        return Err(invalid(
            "seed",
            "the Responses API has no seed: sampling cannot be made reproducible",
        ));
    }
    for (name, value) in [
        ("presence_penalty", p.presence_penalty),
        ("frequency_penalty", p.frequency_penalty),
    ] {
        if value.is_some_and(|v| v != 0.0) {
            return Err(invalid(name, "the Responses API has no penalties; use 0"));
        }
    }

    let mut dropped: Vec<String> = Vec::new();
    let mut drop = |name: String| {
        if !dropped.contains(&name) {
            dropped.push(name);
        }
    };
    let mut body = Map::new();
    body.insert("model".into(), Value::from(req.model.as_str()));
    let mut system: Vec<&str> = Vec::new();
    for (j, b) in req.system.iter().enumerate() {
        match b {
            Block::Text(text) if text.is_empty() => {}
            Block::Text(text) => system.push(text),
            _ => {
                return Err(invalid(
                    format!("system[{j}]"),
                    "instructions hold text only; move other content to a message",
                ))
            }
        }
    }
    if !system.is_empty() {
        body.insert("instructions".into(), Value::from(system.join("\n\n")));
    }
    let mut items = Vec::with_capacity(req.messages.len());
    for (i, m) in req.messages.iter().enumerate() {
        encode_message(m, i, &mut items, &mut drop)?;
    }
    body.insert("input".into(), Value::Array(items));

    let mut tools: Vec<Value> = req
        .tools
        .iter()
        .map(|t| {
            let mut tool = Map::new();
            tool.insert("type".into(), Value::from("function"));
            tool.insert("name".into(), Value::from(t.name.as_str()));
            if let Some(d) = &t.description {
                tool.insert("description".into(), Value::from(d.as_str()));
            }
            let parameters = match &t.parameters {
                Value::Null => json!({"type": "object", "properties": {}}),
                schema => schema.clone(),
            };
            tool.insert("parameters".into(), parameters);
            // The Responses API reads an absent `strict` as true; other wires mean false.
            match (t.strict, same_wire) {
                (Some(strict), _) => {
                    tool.insert("strict".into(), Value::Bool(strict));
                }
                (None, false) => {
                    tool.insert("strict".into(), Value::Bool(false));
                }
                (None, true) => {}
            }
            Value::Object(tool)
        })
        .collect();
    for hosted in &req.hosted_tools {
        if same_wire {
            tools.push(hosted.clone());
        } else {
            let kind = hosted
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("hosted");
            drop(format!("tools.{kind}"));
        }
    }
    if !tools.is_empty() {
        body.insert("tools".into(), Value::Array(tools));
    }
    if let Some(choice) = &req.tool_choice {
        let choice = match choice {
            ToolChoice::Auto => json!("auto"),
            ToolChoice::None => json!("none"),
            ToolChoice::Required => json!("required"),
            ToolChoice::Tool(name) => json!({"type": "function", "name": name}),
        };
        body.insert("tool_choice".into(), choice);
    }
    let mut put = |key: &str, value: Option<Value>| {
        if let Some(value) = value {
            body.insert(key.into(), value);
        }
    };
    put(
        "parallel_tool_calls",
        p.parallel_tool_calls.map(Value::from),
    );
    put("max_output_tokens", p.max_output_tokens.map(Value::from));
    put("temperature", p.temperature.map(Value::from));
    put("top_p", p.top_p.map(Value::from));
    put("user", req.user.as_deref().map(Value::from));

    // `text` and `reasoning`: the model's format and effort, with this wire's other members.
    let mut text = match (same_wire, req.extras.get("text")) {
        (true, Some(Value::Object(o))) => o.clone(),
        _ => Map::new(),
    };
    if let Some(format) = &p.response_format {
        text.insert("format".into(), format_json(format));
    }
    if !text.is_empty() {
        body.insert("text".into(), Value::Object(text));
    }
    let mut reasoning = match (same_wire, req.extras.get("reasoning")) {
        (true, Some(Value::Object(o))) => o.clone(),
        _ => Map::new(),
    };
    if let Some(effort) = &p.reasoning_effort {
        reasoning.insert("effort".into(), Value::from(effort.as_str()));
    }
    if !reasoning.is_empty() {
        body.insert("reasoning".into(), Value::Object(reasoning));
    }

    for (key, value) in &req.extras {
        if same_wire {
            let stream_only = key == "stream_options" && !opts.stream;
            if key == "store" || !(ENCODED_FIELDS.contains(&key.as_str()) || stream_only) {
                body.insert(key.clone(), value.clone());
            }
        } else if hints.contains(key) {
            drop(key.clone());
        } else {
            return Err(invalid(
                key.as_str(),
                "unrecognized request argument: it has no Responses translation",
            ));
        }
    }
    if !same_wire {
        // Hints of the request's blocks and tools (`cache_control`): no place in the model.
        for hint in hints {
            if !req.extras.contains_key(hint) {
                drop(hint.clone());
            }
        }
        // Its client never asked OpenAI to keep the conversation.
        body.insert("store".into(), Value::Bool(false));
    }
    if opts.stream {
        body.insert("stream".into(), Value::Bool(true));
    }
    let body = serde_json::to_vec(&Value::Object(body))
        .map_err(|e| Error::new(ErrorKind::Upstream, format!("encoding the body: {e}")))?;
    Ok(Encoded { body, dropped })
}

fn format_json(format: &ResponseFormat) -> Value {
    match format {
        ResponseFormat::Text => json!({"type": "text"}),
        ResponseFormat::JsonObject => json!({"type": "json_object"}),
        ResponseFormat::JsonSchema {
            name,
            schema,
            strict,
        } => {
            let mut f = json!({"type": "json_schema", "name": name, "schema": schema});
            if let Some(strict) = strict {
                f["strict"] = Value::Bool(*strict);
            }
            f
        }
    }
}

/// The items of one model message, appended to `items`.
fn encode_message(
    m: &Message,
    i: usize,
    items: &mut Vec<Value>,
    drop: &mut impl FnMut(String),
) -> Result<(), Error> {
    let at = |j: usize| format!("messages[{i}].content[{j}]");
    let assistant = m.role == Role::Assistant;
    let role = match m.role {
        Role::System => "system",
        Role::Developer => "developer",
        Role::User | Role::Tool => "user",
        Role::Assistant => "assistant",
    };
    // Tool results go first (they answer the previous turn), then the message's parts; an
    // assistant's parts are flushed before each call or reasoning item to keep the order.
    let mut results: Vec<Value> = Vec::new();
    let mut rest: Vec<Value> = Vec::new();
    let mut parts: Vec<Value> = Vec::new();
    let flush = |parts: &mut Vec<Value>, rest: &mut Vec<Value>| {
        if !parts.is_empty() {
            rest.push(json!({"type": "message", "role": role, "content": std::mem::take(parts)}));
        }
    };
    for (j, block) in m.content.iter().enumerate() {
        match block {
            Block::Text(text) => {
                let kind = if assistant {
                    "output_text"
                } else {
                    "input_text"
                };
                let mut part = json!({"type": kind, "text": text});
                if assistant {
                    part["annotations"] = json!([]);
                }
                parts.push(part);
            }
            Block::Image { source, detail } => {
                if assistant {
                    return Err(invalid(
                        at(j),
                        "an assistant message of the Responses API holds no images",
                    ));
                }
                parts.push(image_json(source, detail.as_deref()));
            }
            Block::ToolCall {
                id,
                name,
                arguments,
            } => {
                flush(&mut parts, &mut rest);
                rest.push(json!({"type": "function_call", "call_id": id, "name": name,
                    "arguments": arguments}));
            }
            Block::ToolResult {
                call_id,
                content,
                is_error,
            } => {
                results.push(json!({"type": "function_call_output", "call_id": call_id,
                    "output": output_json(content, *is_error, &at(j))?}));
            }
            Block::Reasoning {
                text, encrypted, ..
            } => match encrypted {
                Some(encrypted) => {
                    flush(&mut parts, &mut rest);
                    let summary = if text.is_empty() {
                        json!([])
                    } else {
                        json!([{"type": "summary_text", "text": text}])
                    };
                    rest.push(json!({"type": "reasoning", "summary": summary,
                        "encrypted_content": encrypted}));
                }
                // Another provider's reasoning means nothing to this one.
                None => drop("reasoning".to_owned()),
            },
            Block::Opaque {
                wire: Wire::OpenAiResponses,
                json,
            } => {
                let kind = json.get("type").and_then(Value::as_str).unwrap_or("");
                if PART_TYPES.contains(&kind) {
                    parts.push(json.clone());
                } else {
                    flush(&mut parts, &mut rest);
                    rest.push(json.clone());
                }
            }
            Block::Opaque { wire, .. } => {
                return Err(invalid(
                    at(j),
                    format!("a block of the {wire:?} wire that has no Responses translation"),
                ))
            }
        }
    }
    flush(&mut parts, &mut rest);
    items.extend(results);
    items.extend(rest);
    Ok(())
}

fn image_json(source: &ImageSource, detail: Option<&str>) -> Value {
    let url = match source {
        ImageSource::Url(url) => url.clone(),
        ImageSource::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
    };
    json!({"type": "input_image", "image_url": url, "detail": detail.unwrap_or("auto")})
}

/// A tool result's `output`: its text when it is text only, else parts.
fn output_json(content: &[Block], is_error: bool, at: &str) -> Result<Value, Error> {
    let prefix = if is_error { "Error: " } else { "" };
    if content.iter().all(|b| matches!(b, Block::Text(_))) {
        let text: String = content.iter().filter_map(Block::as_text).collect();
        return Ok(Value::from(format!("{prefix}{text}")));
    }
    let mut parts = Vec::with_capacity(content.len() + 1);
    if is_error {
        parts.push(json!({"type": "input_text", "text": prefix}));
    }
    for (k, b) in content.iter().enumerate() {
        parts.push(match b {
            Block::Text(text) => json!({"type": "input_text", "text": text}),
            Block::Image { source, detail } => image_json(source, detail.as_deref()),
            Block::Opaque {
                wire: Wire::OpenAiResponses,
                json,
            } => json.clone(),
            _ => {
                return Err(invalid(
                    format!("{at}.content[{k}]"),
                    "a tool result holds text and images only for the Responses API",
                ))
            }
        });
    }
    Ok(Value::Array(parts))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bodies of a captured Codex run (one JSON line per request).
    fn codex_bodies(fixture: &str) -> Vec<Value> {
        fixture
            .lines()
            .map(|line| {
                let record: Value = serde_json::from_str(line).unwrap();
                serde_json::from_str(record["body"].as_str().unwrap()).unwrap()
            })
            .collect()
    }

    fn decode(body: Value) -> Result<Decoded, Error> {
        decode_request(body.to_string().as_bytes())
    }

    fn param_of_decode(body: Value) -> String {
        decode(body).unwrap_err().param.unwrap_or_default()
    }

    fn encode(req: &Request, hints: &[&str]) -> Result<(Value, Vec<String>), Error> {
        let hints: Vec<String> = hints.iter().map(|h| h.to_string()).collect();
        let encoded = encode_request(req, &hints, &EncodeOptions { stream: false })?;
        Ok((
            serde_json::from_slice(&encoded.body).unwrap(),
            encoded.dropped,
        ))
    }

    #[test]
    fn codex_requests_decode_with_their_hints_and_tools() {
        let first = codex_bodies(include_str!(
            "../../../tests/fixtures/agents/codex_0.171.0.jsonl"
        ));
        let tool = codex_bodies(include_str!(
            "../../../tests/fixtures/agents/codex_0.171.0_tool.jsonl"
        ));
        for body in first.iter().chain(&tool) {
            let Decoded { request, hints } = decode(body.clone()).unwrap();
            assert_eq!(request.model, "gpt-5-codex");
            assert!(request.stream);
            assert!(request.system.is_empty(), "Codex sends no instructions");
            assert_eq!(
                hints,
                [
                    "client_metadata",
                    "include",
                    "prompt_cache_key",
                    "reasoning",
                    "store"
                ]
            );
            assert_eq!(request.extras["reasoning"], json!({"summary": "auto"}));
            assert_eq!(request.params.reasoning_effort, None);
            assert_eq!(request.tool_choice, Some(ToolChoice::Auto));
            assert_eq!(request.params.parallel_tool_calls, Some(true));
            let names: Vec<&str> = request.tools.iter().map(|t| t.name.as_str()).collect();
            assert_eq!(
                names,
                [
                    "exec_command",
                    "write_stdin",
                    "request_user_input",
                    "view_image",
                    "get_goal",
                    "create_goal",
                    "update_goal"
                ]
            );
            assert!(request.tools.iter().all(|t| t.strict == Some(false)));
            assert_eq!(request.tools[0].parameters["type"], "object");
            let hosted: Vec<&str> = request
                .hosted_tools
                .iter()
                .map(|t| t["type"].as_str().unwrap())
                .collect();
            assert_eq!(hosted, ["namespace", "web_search"]);
            let roles: Vec<Role> = request.messages.iter().map(|m| m.role).collect();
            assert_eq!(
                roles[..4],
                [Role::Developer, Role::Developer, Role::User, Role::User]
            );
            assert_eq!(request.messages[1].content.len(), 2, "two input_text parts");
            assert_eq!(request.messages[3].joined_text(), "Say hello");
        }
        let turn = decode(tool[1].clone()).unwrap().request;
        assert_eq!(turn.messages.len(), 6);
        assert_eq!(turn.messages[4].role, Role::Assistant);
        assert!(matches!(
            &turn.messages[4].content[..],
            [Block::ToolCall { id, name, arguments }]
                if id == "call_fake2d60754e02704508" && name == "exec_command"
                    && arguments == r#"{"cmd": "echo hi-from-tool"}"#
        ));
        assert_eq!(turn.messages[5].role, Role::Tool);
        assert!(matches!(
            &turn.messages[5].content[..],
            [Block::ToolResult { call_id, content, is_error: false }]
                if call_id == "call_fake2d60754e02704508"
                    && content[0].as_text().is_some_and(|t| t.ends_with("hi-from-tool\n"))
        ));

        // The same wire: everything goes back, hints and hosted tools included.
        let Decoded { request, hints } = decode(tool[1].clone()).unwrap();
        let (body, dropped) = encode(&request, &[]).unwrap();
        assert!(dropped.is_empty());
        for key in [
            "store",
            "include",
            "prompt_cache_key",
            "client_metadata",
            "reasoning",
            "tool_choice",
            "parallel_tool_calls",
        ] {
            assert_eq!(body[key], tool[1][key], "{key}");
        }
        assert_eq!(body["tools"].as_array().unwrap().len(), 9);
        assert_eq!(body["tools"][7]["type"], "namespace");
        assert_eq!(body["input"].as_array().unwrap().len(), 6);
        assert_eq!(body["input"][4]["type"], "function_call");
        assert_eq!(body["input"][5]["output"], tool[1]["input"][5]["output"]);
        let mut again = decode_request(&serde_json::to_vec(&body).unwrap()).unwrap();
        assert!(!again.request.stream, "the options say whether to stream");
        again.request.stream = true;
        assert!(again.request == request, "the same request again");
        assert_eq!(again.hints, hints);

        // Another provider: the hints and hosted tools are left out and named.
        let mut translated = request.clone();
        translated.wire = Wire::AnthropicMessages;
        let hints: Vec<&str> = hints.iter().map(String::as_str).collect();
        let (body, dropped) = encode(&translated, &hints).unwrap();
        assert_eq!(
            dropped,
            [
                "tools.namespace",
                "tools.web_search",
                "client_metadata",
                "include",
                "prompt_cache_key",
                "reasoning",
                "store"
            ]
        );
        assert_eq!(body["store"], false);
        assert!(body.get("include").is_none());
    }

    #[test]
    fn items_parts_and_roles_decode_in_place() {
        let Decoded { request, hints } = decode(json!({
            "model": "gpt-x",
            "instructions": "be brief",
            "input": [
                {"role": "system", "content": "sys"},
                {"type": "message", "role": "user", "content": [
                    {"type": "input_text", "text": "look"},
                    {"type": "input_image", "image_url": "https://e/i.png", "detail": "low"},
                    {"type": "input_image", "file_id": "file_1"},
                    {"type": "input_file", "file_id": "file_2"}]},
                {"type": "reasoning", "id": "rs_1", "summary": [
                    {"type": "summary_text", "text": "a"}, {"type": "summary_text", "text": "b"}],
                    "encrypted_content": "gAAA"},
                {"type": "message", "role": "assistant", "content": [
                    {"type": "output_text", "text": "calling"}, {"type": "refusal", "refusal": "no"}]},
                {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
                {"type": "web_search_call", "id": "ws_1", "status": "completed"},
                {"type": "function_call_output", "call_id": "c1", "output": [
                    {"type": "input_text", "text": "ok"}]},
                {"type": "custom_tool_call_output", "call_id": "c2", "output": "x"},
                {"type": "item_reference", "id": "msg_9"},
            ],
            "text": {"format": {"type": "json_schema", "name": "s", "schema": {"type": "object"},
                "strict": true}, "verbosity": "medium"},
            "reasoning": {"effort": "high"},
            "tool_choice": {"type": "function", "name": "f"},
            "max_output_tokens": 99, "temperature": 0.5, "top_p": 0.9,
            "user": "u", "safety_identifier": "s-1",
            "previous_response_id": "resp_1", "truncation": "disabled",
            "background": false, "metadata": null,
        }))
        .unwrap();
        assert_eq!(request.system, [Block::Text("be brief".into())]);
        let roles: Vec<Role> = request.messages.iter().map(|m| m.role).collect();
        assert_eq!(
            roles,
            [
                Role::System,
                Role::User,
                Role::Assistant,
                Role::Tool,
                Role::Tool,
                Role::User
            ]
        );
        let user = &request.messages[1].content;
        assert_eq!(user[0], Block::Text("look".into()));
        assert_eq!(
            user[1],
            Block::Image {
                source: ImageSource::Url("https://e/i.png".into()),
                detail: Some("low".into())
            }
        );
        assert!(matches!(&user[2], Block::Opaque { json, .. } if json["file_id"] == "file_1"));
        let turn = &request.messages[2].content;
        assert_eq!(
            turn.len(),
            5,
            "reasoning, two texts, a call and a web search"
        );
        assert_eq!(
            turn[0],
            Block::Reasoning {
                text: "a\n\nb".into(),
                signature: None,
                encrypted: Some("gAAA".into()),
                redacted: None
            }
        );
        assert_eq!(turn[2], Block::Text("no".into()));
        assert!(
            matches!(&turn[4], Block::Opaque { json, .. } if json["type"] == "web_search_call")
        );
        assert_eq!(request.tool_choice, Some(ToolChoice::Tool("f".into())));
        assert_eq!(
            request.params.response_format,
            Some(ResponseFormat::JsonSchema {
                name: "s".into(),
                schema: json!({"type": "object"}),
                strict: Some(true)
            })
        );
        assert_eq!(request.params.reasoning_effort.as_deref(), Some("high"));
        assert_eq!(request.params.max_output_tokens, Some(99));
        assert_eq!(
            request.user.as_deref(),
            Some("s-1"),
            "safety_identifier first"
        );
        assert!(!request.extras.contains_key("reasoning"), "only the effort");
        assert_eq!(hints, ["background", "text", "truncation"]);
        assert_eq!(request.extras["previous_response_id"], "resp_1");

        // Round trip on the same wire: the model comes back as it was.
        let (body, _) = encode(&request, &[]).unwrap();
        let again = decode_request(&serde_json::to_vec(&body).unwrap()).unwrap();
        assert_eq!(again.request.messages, request.messages);
        assert_eq!(again.request.params, request.params);
        assert_eq!(body["text"]["verbosity"], "medium");
        assert_eq!(body["input"][6]["type"], "function_call_output");

        // Another wire refuses what changes the answer, by name.
        let mut other = request.clone();
        other.wire = Wire::OpenAiChat;
        let err = encode(&other, &["background", "text", "truncation"]).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("previous_response_id"));

        let hints = decode(
            json!({"model": "m", "input": "hi", "text": {"verbosity": "low"},
            "truncation": "auto", "conversation": "conv_1"}),
        )
        .unwrap()
        .hints;
        assert!(hints.is_empty(), "{hints:?}");
    }

    #[test]
    fn wrong_shapes_are_named_by_path() {
        for (body, param) in [
            (json!({"input": "x"}), "model"),
            (json!({"model": 1, "input": "x"}), "model"),
            (json!({"model": "m", "input": 5}), "input"),
            (json!({"model": "m", "input": [5]}), "input[0]"),
            (
                json!({"model": "m", "input": [{"role": "robot", "content": "x"}]}),
                "input[0].role",
            ),
            (
                json!({"model": "m", "input": ["x", {"role": "user", "content": [{"type": 1}]}]}),
                "input[0]",
            ),
            (
                json!({"model": "m", "input": [{"role": "user", "content": [{"text": "a"}, {"type": 1}]}]}),
                "input[0].content[0].type",
            ),
            (
                json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_text", "text": "a"}, {"type": 1}]}]}),
                "input[0].content[1].type",
            ),
            (
                json!({"model": "m", "input": [{"type": "function_call", "name": "f"}]}),
                "input[0].call_id",
            ),
            (
                json!({"model": "m", "input": [{"type": "reasoning", "summary": [{"type": "summary_text"}]}]}),
                "input[0].summary[0].text",
            ),
            (
                json!({"model": "m", "input": "x", "tools": [{"type": "function"}]}),
                "tools[0].name",
            ),
            (
                json!({"model": "m", "input": "x", "tool_choice": "sometimes"}),
                "tool_choice",
            ),
            (
                json!({"model": "m", "input": "x", "text": {"format": {"type": "xml"}}}),
                "text.format.type",
            ),
            (
                json!({"model": "m", "input": "x", "max_output_tokens": -1}),
                "max_output_tokens",
            ),
            (
                json!({"model": "m", "input": "x", "stream": "yes"}),
                "stream",
            ),
        ] {
            assert_eq!(param_of_decode(body.clone()), param, "{body}");
        }
        let err = decode_request(b"[1]").unwrap_err();
        assert_eq!(err.param.as_deref(), Some("body"));
        assert_eq!(err.kind, ErrorKind::InvalidRequest);
    }

    #[test]
    fn another_wires_request_encodes_with_refusals_by_name() {
        let mut req = Request::new("gpt-x", Wire::AnthropicMessages);
        req.system = vec![Block::Text("s1".into()), Block::Text("s2".into())];
        req.messages = vec![
            Message::text(Role::User, "q"),
            Message {
                role: Role::Assistant,
                content: vec![
                    Block::Reasoning {
                        text: "think".into(),
                        signature: Some("sig".into()),
                        encrypted: None,
                        redacted: None,
                    },
                    Block::Text("let me".into()),
                    Block::ToolCall {
                        id: "toolu_1".into(),
                        name: "f".into(),
                        arguments: "{\"a\":1}".into(),
                    },
                ],
                name: None,
            },
            Message {
                role: Role::User,
                content: vec![
                    Block::Text("and?".into()),
                    Block::ToolResult {
                        call_id: "toolu_1".into(),
                        content: vec![
                            Block::Text("boom".into()),
                            Block::Image {
                                source: ImageSource::Base64 {
                                    media_type: "image/png".into(),
                                    data: "AAAA".into(),
                                },
                                detail: None,
                            },
                        ],
                        is_error: true,
                    },
                ],
                name: None,
            },
        ];
        req.tools = vec![Tool {
            name: "f".into(),
            description: None,
            parameters: Value::Null,
            strict: None,
        }];
        req.hosted_tools = vec![json!({"type": "web_search_20250305", "name": "web_search"})];
        req.params.parallel_tool_calls = Some(false);
        req.params.response_format = Some(ResponseFormat::JsonObject);
        req.params.reasoning_effort = Some("low".into());
        req.params.presence_penalty = Some(0.0);
        req.user = Some("u-1".into());
        req.extras
            .insert("thinking".into(), json!({"type": "adaptive"}));
        let hints: Vec<String> = vec!["thinking".into(), "cache_control".into()];
        let encoded = encode_request(&req, &hints, &EncodeOptions { stream: true }).unwrap();
        let body: Value = serde_json::from_slice(&encoded.body).unwrap();
        assert_eq!(
            body,
            json!({
                "model": "gpt-x",
                "instructions": "s1\n\ns2",
                "input": [
                    {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "q"}]},
                    {"type": "message", "role": "assistant", "content": [
                        {"type": "output_text", "text": "let me", "annotations": []}]},
                    {"type": "function_call", "call_id": "toolu_1", "name": "f", "arguments": "{\"a\":1}"},
                    {"type": "function_call_output", "call_id": "toolu_1", "output": [
                        {"type": "input_text", "text": "Error: "},
                        {"type": "input_text", "text": "boom"},
                        {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "auto"}]},
                    {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "and?"}]},
                ],
                "tools": [{"type": "function", "name": "f",
                    "parameters": {"type": "object", "properties": {}}, "strict": false}],
                "parallel_tool_calls": false,
                "user": "u-1",
                "text": {"format": {"type": "json_object"}},
                "reasoning": {"effort": "low"},
                "store": false,
                "stream": true,
            })
        );
        assert_eq!(
            encoded.dropped,
            [
                "reasoning",
                "tools.web_search_20250305",
                "thinking",
                "cache_control"
            ]
        );

        let refused = |f: &dyn Fn(&mut Request)| {
            let mut r = Request::new("m", Wire::OpenAiChat);
            r.messages = vec![Message::text(Role::User, "q")];
            f(&mut r);
            encode(&r, &[]).unwrap_err().param.unwrap_or_default()
        };
        assert_eq!(refused(&|r| r.params.stop = vec!["x".into()]), "stop");
        assert_eq!(refused(&|r| r.params.top_k = Some(3)), "top_k");
        assert_eq!(refused(&|r| r.params.seed = Some(1)), "seed");
        assert_eq!(
            refused(&|r| r.params.frequency_penalty = Some(0.5)),
            "frequency_penalty"
        );
        assert_eq!(
            refused(&|r| r
                .extras
                .insert("logit_bias".into(), json!({}))
                .map_or((), |_| ())),
            "logit_bias"
        );
        assert_eq!(
            refused(&|r| r.system = vec![Block::Image {
                source: ImageSource::Url("https://e/i.png".into()),
                detail: None
            }]),
            "system[0]"
        );
        assert_eq!(
            refused(&|r| r.messages[0].content.push(Block::Opaque {
                wire: Wire::AnthropicMessages,
                json: json!({"type": "document"})
            })),
            "messages[0].content[1]"
        );
    }
}
