//! Anthropic request bodies <-> the model's [`Request`] (the rules are in the parent's header).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::de::DeserializeOwned;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::config::ProviderKind;
use crate::model::support::{self, Param};
use crate::model::{
    Block, Error, ErrorKind, ImageSource, Message, Params, Request, Role, Tool, ToolChoice, Wire,
};

/// The text of the user turn put before a conversation that starts with the assistant:
/// Anthropic wants the user first and rejects empty text, and one character says the least.
const LEADING_USER_TURN: &str = ".";

/// Image types Anthropic accepts in a `base64` source.
const IMAGE_TYPES: [&str; 4] = ["image/jpeg", "image/png", "image/gif", "image/webp"];

/// Top-level fields that are hints: they change cost or speed, not what the answer means.
/// (`output_config` is one only when it holds nothing but `effort`: see [`is_hint`].)
const HINTS: [&str; 7] = [
    "metadata",
    "thinking",
    "context_management",
    "service_tier",
    "container",
    "mcp_servers",
    "cache_control",
];

/// The hint name of `cache_control` on blocks and tools, which the model has no place for.
const BLOCK_CACHE_CONTROL: &str = "cache_control";

/// The fields [`encode_request`] writes itself: extras by these names are never sent beside.
const ENCODED_FIELDS: [&str; 12] = [
    "model",
    "max_tokens",
    "system",
    "messages",
    "tools",
    "tool_choice",
    "stop_sequences",
    "temperature",
    "top_p",
    "top_k",
    "metadata",
    "stream",
];

/// An InvalidRequest error naming `param`.
fn invalid(param: impl Into<String>, why: impl fmt::Display) -> Error {
    let param = param.into();
    let mut error = Error::new(ErrorKind::InvalidRequest, format!("{param}: {why}"));
    error.param = Some(param);
    error
}

// ------------------------------------------------------------------------------------------
// Decoding (the Anthropic door).

/// A decoded Anthropic request: the model's request, and which of its extras are hints.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub request: Request,
    /// The names of the hint fields the request carried: the keys of `request.extras` that are
    /// hints, and `cache_control` when blocks or tools carried one (the model has no place for
    /// it: it is lost in any re-encoding and listed as dropped). Sorted, each once.
    pub hints: Vec<String>,
}

/// The body's fields, a wrong one named by its path.
fn read_request<'de, R: serde_json::de::Read<'de>>(
    mut de: serde_json::Deserializer<R>,
) -> Result<InRequest, Error> {
    let wire: InRequest = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let param = if path == "." { "body".to_owned() } else { path };
        invalid(param, e.into_inner())
    })?;
    de.end().map_err(|e| invalid("body", e))?;
    Ok(wire)
}

/// An Anthropic Messages request body as the model (see the parent's header for the table).
/// A wrong shape is an [`ErrorKind::InvalidRequest`] whose `param` is the field's path
/// (`messages[2].content[0].type`).
pub fn decode_request(body: &[u8]) -> Result<Decoded, Error> {
    // The body's UTF-8 checked once, not string by string (see `wire::json::from_bytes`).
    let wire = match std::str::from_utf8(body) {
        Ok(text) => read_request(serde_json::Deserializer::from_str(text)),
        Err(_) => read_request(serde_json::Deserializer::from_slice(body)),
    }?;
    let mut hints = Vec::new();
    let mut request = Request::new(wire.model, Wire::AnthropicMessages);
    let mut cache_control = false;
    if let Some(system) = wire.system {
        request.system = match system {
            OneOrMany::One(text) => vec![Block::Text(text)],
            OneOrMany::Many(blocks) => blocks
                .into_iter()
                .enumerate()
                .map(|(j, b)| block(b, &format!("system[{j}]"), &mut cache_control))
                .collect::<Result<_, _>>()?,
        };
    }
    request.messages = wire
        .messages
        .into_iter()
        .enumerate()
        .map(|(i, m)| message(m, i, &mut cache_control))
        .collect::<Result<_, _>>()?;
    for (i, t) in wire.tools.unwrap_or_default().into_iter().enumerate() {
        match t.get("type").and_then(Value::as_str) {
            None | Some("custom") => {
                let t: InTool = typed(t, &format!("tools[{i}]"))?;
                cache_control |= t.cache_control.is_some();
                request.tools.push(Tool {
                    name: t.name,
                    description: t.description,
                    parameters: required(t.input_schema, &format!("tools[{i}]"), "input_schema")?,
                    strict: t.strict,
                });
            }
            // A server tool (web search, code execution, ...), kept as it came.
            Some(_) => request.hosted_tools.push(Value::Object(t)),
        }
    }
    if let Some(choice) = wire.tool_choice {
        request.tool_choice = Some(match choice.kind.as_str() {
            "auto" => ToolChoice::Auto,
            "any" => ToolChoice::Required,
            "none" => ToolChoice::None,
            "tool" => ToolChoice::Tool(
                choice
                    .name
                    .ok_or_else(|| invalid("tool_choice.name", "expected a string"))?,
            ),
            other => {
                return Err(invalid(
                    "tool_choice.type",
                    format!("unknown tool choice {other:?}: expected auto, any, tool or none"),
                ))
            }
        });
        if choice.disable_parallel_tool_use == Some(true) {
            request.params.parallel_tool_calls = Some(false);
        }
    }
    request.params = Params {
        temperature: wire.temperature,
        top_p: wire.top_p,
        top_k: wire.top_k,
        max_output_tokens: wire.max_tokens,
        stop: wire.stop_sequences.unwrap_or_default(),
        ..request.params
    };
    request.stream = wire.stream.unwrap_or(false);
    request.user = wire
        .rest
        .get("metadata")
        .and_then(|m| m.get("user_id"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    for (key, value) in &wire.rest {
        if is_hint(key, value) {
            hints.push(key.clone());
        }
    }
    if cache_control && !hints.iter().any(|h| h == BLOCK_CACHE_CONTROL) {
        hints.push(BLOCK_CACHE_CONTROL.to_owned());
    }
    hints.sort();
    request.extras = wire.rest;
    Ok(Decoded { request, hints })
}

/// Whether a top-level field the model has no place for is a hint.
fn is_hint(key: &str, value: &Value) -> bool {
    match key {
        // `effort` is a hint; a `format` asks for the answer's shape.
        "output_config" => value
            .as_object()
            .is_some_and(|o| o.keys().all(|k| k == "effort")),
        _ => HINTS.contains(&key),
    }
}

fn message(m: InMessage, i: usize, cache_control: &mut bool) -> Result<Message, Error> {
    let role = match m.role.as_str() {
        "user" => Role::User,
        "assistant" => Role::Assistant,
        "system" => Role::System,
        other => {
            return Err(invalid(
                format!("messages[{i}].role"),
                format!("unknown role {other:?}: expected user, assistant or system"),
            ))
        }
    };
    let content = match m.content {
        OneOrMany::One(text) => vec![Block::Text(text)],
        OneOrMany::Many(blocks) => blocks
            .into_iter()
            .enumerate()
            .map(|(j, b)| block(b, &format!("messages[{i}].content[{j}]"), cache_control))
            .collect::<Result<_, _>>()?,
    };
    Ok(Message {
        role,
        content,
        name: None,
    })
}

fn required<T>(value: Option<T>, at: &str, key: &str) -> Result<T, Error> {
    value.ok_or_else(|| invalid(format!("{at}.{key}"), "required"))
}

/// Content block types the model has a type for.
const TYPED_BLOCKS: [&str; 6] = [
    "text",
    "image",
    "tool_use",
    "tool_result",
    "thinking",
    "redacted_thinking",
];

/// One content block at `at`: a block of a type the model has no type for (`document`,
/// `search_result`, server tool blocks, ...) is kept verbatim as [`Block::Opaque`].
fn block(raw: RawBlock, at: &str, cache_control: &mut bool) -> Result<Block, Error> {
    match raw.get("type") {
        Some(Value::String(kind)) if TYPED_BLOCKS.contains(&kind.as_str()) => {}
        Some(Value::String(_)) => {
            return Ok(Block::Opaque {
                wire: Wire::AnthropicMessages,
                json: Value::Object(raw),
            })
        }
        _ => return Err(invalid(format!("{at}.type"), "expected a string")),
    }
    let b: InBlock = typed(raw, at)?;
    *cache_control |= b.cache_control.is_some();
    Ok(match b.kind.as_str() {
        "text" => Block::Text(required(b.text, at, "text")?),
        "image" => {
            let source = required(b.source, at, "source")?;
            let at = format!("{at}.source");
            let source = match source.kind.as_str() {
                "base64" => ImageSource::Base64 {
                    media_type: required(source.media_type, &at, "media_type")?,
                    data: required(source.data, &at, "data")?,
                },
                "url" => ImageSource::Url(required(source.url, &at, "url")?),
                other => {
                    return Err(invalid(
                        format!("{at}.type"),
                        format!(
                            "image sources of type {other:?} are not supported: use base64 or url"
                        ),
                    ))
                }
            };
            Block::Image {
                source,
                detail: None,
            }
        }
        "tool_use" => Block::ToolCall {
            id: required(b.id, at, "id")?,
            name: required(b.name, at, "name")?,
            arguments: b.input.map_or_else(|| "{}".to_owned(), |v| v.to_string()),
        },
        "tool_result" => {
            let content = match b.content {
                None => Vec::new(),
                Some(OneOrMany::One(text)) if text.is_empty() => Vec::new(),
                Some(OneOrMany::One(text)) => vec![Block::Text(text)],
                Some(OneOrMany::Many(parts)) => parts
                    .into_iter()
                    .enumerate()
                    .map(|(k, part)| {
                        let at = format!("{at}.content[{k}]");
                        match block(part, &at, cache_control)? {
                            b @ (Block::Text(_) | Block::Image { .. } | Block::Opaque { .. }) => {
                                Ok(b)
                            }
                            _ => Err(invalid(
                                format!("{at}.type"),
                                "a tool result holds text, images and documents only",
                            )),
                        }
                    })
                    .collect::<Result<_, _>>()?,
            };
            Block::ToolResult {
                call_id: required(b.tool_use_id, at, "tool_use_id")?,
                content,
                is_error: b.is_error.unwrap_or(false),
            }
        }
        "thinking" => Block::Reasoning {
            text: b.thinking.unwrap_or_default(),
            signature: b.signature,
            encrypted: None,
            redacted: None,
        },
        "redacted_thinking" => Block::Reasoning {
            text: String::new(),
            signature: None,
            encrypted: None,
            redacted: Some(required(b.data, at, "data")?),
        },
        other => {
            return Err(invalid(
                format!("{at}.type"),
                format!("unknown block type {other:?}"),
            ))
        }
    })
}

/// A JSON object at `at` as `T`, a wrong shape named by its path under `at`.
fn typed<T: DeserializeOwned>(object: RawBlock, at: &str) -> Result<T, Error> {
    serde_path_to_error::deserialize(Value::Object(object))
        .map_err(|e| invalid(format!("{at}.{}", e.path()), e.into_inner()))
}

/// The top-level body: known fields typed, the others kept as they came.
struct InRequest {
    model: String,
    system: Option<OneOrMany<RawBlock>>,
    messages: Vec<InMessage>,
    max_tokens: Option<u64>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    top_k: Option<u64>,
    stop_sequences: Option<Vec<String>>,
    stream: Option<bool>,
    tools: Option<Vec<RawBlock>>,
    tool_choice: Option<InToolChoice>,
    rest: Map<String, Value>,
}

impl<'de> Deserialize<'de> for InRequest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(InRequestVisitor)
    }
}

struct InRequestVisitor;

impl<'de> Visitor<'de> for InRequestVisitor {
    type Value = InRequest;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an Anthropic Messages request object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<InRequest, A::Error> {
        let mut model: Option<String> = None;
        let mut messages: Option<Vec<InMessage>> = None;
        let mut r = InRequest {
            model: String::new(),
            system: None,
            messages: Vec::new(),
            max_tokens: None,
            temperature: None,
            top_p: None,
            top_k: None,
            stop_sequences: None,
            stream: None,
            tools: None,
            tool_choice: None,
            rest: Map::new(),
        };
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match key.as_ref() {
                "model" => model = Some(map.next_value()?),
                "messages" => messages = Some(map.next_value()?),
                "system" => r.system = map.next_value()?,
                "max_tokens" => r.max_tokens = map.next_value()?,
                "temperature" => r.temperature = map.next_value()?,
                "top_p" => r.top_p = map.next_value()?,
                "top_k" => r.top_k = map.next_value()?,
                "stop_sequences" => r.stop_sequences = map.next_value()?,
                "stream" => r.stream = map.next_value()?,
                "tools" => r.tools = map.next_value()?,
                "tool_choice" => r.tool_choice = map.next_value()?,
                _ => {
                    let value: Value = map.next_value()?;
                    if !value.is_null() {
                        r.rest.insert(key.into_owned(), value);
                    }
                }
            }
        }
        r.model = model.ok_or_else(|| de::Error::missing_field("model"))?;
        r.messages = messages.ok_or_else(|| de::Error::missing_field("messages"))?;
        Ok(r)
    }
}

/// A content that is a string or a list (`system`, a message's and a tool result's content).
enum OneOrMany<T> {
    One(String),
    Many(Vec<T>),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = OneOrMany<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a list of content blocks")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                Ok(OneOrMany::One(s.to_owned()))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Self::Value, E> {
                Ok(OneOrMany::One(s))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(OneOrMany::Many(items))
            }
        }
        deserializer.deserialize_any(V(std::marker::PhantomData))
    }
}

#[derive(Deserialize)]
struct InMessage {
    role: String,
    content: OneOrMany<RawBlock>,
}

/// A content block (or a tool) as it came, before its type is known.
type RawBlock = Map<String, Value>;

/// Any content block: its `type` says which of the fields it has.
#[derive(Deserialize)]
struct InBlock {
    #[serde(rename = "type")]
    kind: String,
    text: Option<String>,
    source: Option<InImageSource>,
    id: Option<String>,
    name: Option<String>,
    input: Option<Value>,
    tool_use_id: Option<String>,
    content: Option<OneOrMany<RawBlock>>,
    is_error: Option<bool>,
    thinking: Option<String>,
    signature: Option<String>,
    data: Option<String>,
    cache_control: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct InImageSource {
    #[serde(rename = "type")]
    kind: String,
    media_type: Option<String>,
    data: Option<String>,
    url: Option<String>,
}

#[derive(Deserialize)]
struct InTool {
    name: String,
    description: Option<String>,
    input_schema: Option<Value>,
    strict: Option<bool>,
    cache_control: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct InToolChoice {
    #[serde(rename = "type")]
    kind: String,
    name: Option<String>,
    disable_parallel_tool_use: Option<bool>,
}

// ------------------------------------------------------------------------------------------
// Encoding (an Anthropic-kind provider).

/// How to encode a request for an Anthropic-kind provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodeOptions {
    /// Ask for a stream (`stream: true`).
    pub stream: bool,
    /// `max_tokens` when the request sets no `max_output_tokens` (Anthropic requires one).
    pub default_max_tokens: u32,
}

/// An encoded request: the body, and the hints left out of it (for `x-promptd-dropped`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub body: Vec<u8>,
    pub dropped: Vec<String>,
}

/// The body for an Anthropic-kind provider from a model request of any wire (see the parent's
/// header for the table). `hints` are the names of `req.extras` (and of block-level fields)
/// that are hints, as the request's door decoded them. Refuses, as an
/// [`ErrorKind::InvalidRequest`] naming the parameter, what would change the answer and has no
/// Anthropic translation.
pub fn encode_request(
    req: &Request,
    hints: &[String],
    opts: &EncodeOptions,
) -> Result<Encoded, Error> {
    let params = &req.params;
    support::check(ProviderKind::Anthropic, params)
        .map_err(|refusal| invalid(param_name(refusal.param), refusal.why))?;
    if params.reasoning_effort.is_some() {
        return Err(invalid(
            "reasoning_effort",
            "not translated to Anthropic's extended thinking; leave it unset",
        ));
    }
    let same_wire = req.wire == Wire::AnthropicMessages;
    let mut extras: BTreeMap<&str, &Value> = BTreeMap::new();
    let mut dropped: Vec<String> = Vec::new();
    for (key, value) in &req.extras {
        if same_wire {
            if !ENCODED_FIELDS.contains(&key.as_str()) || key == "metadata" {
                extras.insert(key, value);
            }
        } else if hints.iter().any(|h| h == key) {
            dropped.push(key.clone());
        } else {
            return Err(invalid(
                key.as_str(),
                "unrecognized request argument: it has no Anthropic translation",
            ));
        }
    }
    for hint in hints {
        if !req.extras.contains_key(hint) && !dropped.contains(hint) {
            dropped.push(hint.clone()); // block-level hints: no place in the model
        }
    }

    let max_tokens = match params.max_output_tokens {
        Some(0) => return Err(invalid("max_tokens", "expected a positive integer")),
        Some(n) => n,
        None => u64::from(opts.default_max_tokens),
    };
    let temperature = unit("temperature", params.temperature)?;
    let top_p = unit("top_p", params.top_p)?;

    let (system, messages) = turns(req)?;
    let mut tools: Vec<OutTool> = req
        .tools
        .iter()
        .map(|t| OutTool::Custom {
            name: &t.name,
            description: t.description.as_deref(),
            input_schema: match &t.parameters {
                Value::Null => Cow::Owned(serde_json::json!({"type": "object", "properties": {}})),
                schema => Cow::Borrowed(schema),
            },
            strict: t.strict.filter(|_| same_wire),
        })
        .collect();
    if !same_wire && req.tools.iter().any(|t| t.strict == Some(true)) {
        dropped.push("strict".to_owned());
    }
    for hosted in &req.hosted_tools {
        if same_wire {
            tools.push(OutTool::Hosted(hosted));
        } else {
            let kind = hosted
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("hosted");
            dropped.push(format!("tools.{kind}"));
        }
    }
    let tool_choice = tool_choice(req, !tools.is_empty())?;
    let metadata = match (&req.user, extras.contains_key("metadata")) {
        (Some(user), false) => Some(OutMetadata { user_id: user }),
        _ => None,
    };
    let body = OutBody {
        model: &req.model,
        max_tokens,
        system,
        messages,
        tools,
        tool_choice,
        stop_sequences: params
            .stop
            .iter()
            .map(String::as_str)
            .filter(|s| !s.is_empty())
            .collect(),
        temperature,
        top_p,
        top_k: params.top_k,
        metadata,
        stream: opts.stream.then_some(true),
        extras,
    };
    let body = serde_json::to_vec(&body).map_err(|e| invalid("body", e))?;
    Ok(Encoded { body, dropped })
}

/// The name of a model parameter, as OpenAI and Anthropic both call it.
fn param_name(param: Param) -> &'static str {
    match param {
        Param::PresencePenalty => "presence_penalty",
        Param::FrequencyPenalty => "frequency_penalty",
        Param::ResponseFormat => "response_format",
        Param::Seed => "seed",
    }
}

/// A number in 0..=1 (Anthropic's range for `temperature` and `top_p`).
fn unit(param: &str, value: Option<f64>) -> Result<Option<f64>, Error> {
    match value {
        Some(x) if !(0.0..=1.0).contains(&x) => {
            Err(invalid(param, "Anthropic accepts values from 0 to 1"))
        }
        other => Ok(other),
    }
}

fn tool_choice(req: &Request, have_tools: bool) -> Result<Option<OutToolChoice<'_>>, Error> {
    let choice = req.tool_choice.as_ref().map(|c| match c {
        ToolChoice::Auto => OutToolChoice::new("auto", None),
        ToolChoice::None => OutToolChoice::new("none", None),
        ToolChoice::Required => OutToolChoice::new("any", None),
        ToolChoice::Tool(name) => OutToolChoice::new("tool", Some(name.as_str())),
    });
    if !have_tools {
        return match choice {
            Some(c) if c.kind != "auto" && c.kind != "none" => {
                Err(invalid("tool_choice", "requires tools to choose from"))
            }
            _ => Ok(None), // with no tools there is nothing to choose
        };
    }
    if req.params.parallel_tool_calls != Some(false) {
        return Ok(choice);
    }
    Ok(match choice {
        Some(c) if c.kind == "none" => Some(c),
        c => {
            let mut c = c.unwrap_or_else(|| OutToolChoice::new("auto", None));
            c.disable_parallel_tool_use = Some(true);
            Some(c)
        }
    })
}

/// One Anthropic turn under construction.
struct Turn<'a> {
    role: &'static str,
    blocks: Vec<OutBlock<'a>>,
    /// One message of one text block: sent as a string.
    plain: bool,
}

/// The top-level system text and the turns of a request.
fn turns(req: &Request) -> Result<(Option<String>, Vec<OutTurn<'_>>), Error> {
    let mut system: Vec<&str> = Vec::new();
    for (j, b) in req.system.iter().enumerate() {
        system_text(b, &format!("system[{j}]"), &mut system)?;
    }
    let mut turns: Vec<Turn> = Vec::new();
    for (i, m) in req.messages.iter().enumerate() {
        let at = format!("messages[{i}]");
        let role = match m.role {
            Role::System | Role::Developer => {
                for (j, b) in m.content.iter().enumerate() {
                    system_text(b, &format!("{at}.content[{j}]"), &mut system)?;
                }
                continue;
            }
            Role::User | Role::Tool => "user",
            Role::Assistant => "assistant",
        };
        let mut blocks = Vec::with_capacity(m.content.len());
        for (j, b) in m.content.iter().enumerate() {
            if let Some(b) = out_block(b, &format!("{at}.content[{j}]"))? {
                blocks.push(b);
            }
        }
        if blocks.is_empty() {
            continue; // Anthropic rejects empty turns; an empty message says nothing
        }
        match turns.last_mut() {
            Some(last) if last.role == role => {
                last.blocks.extend(blocks);
                last.plain = false;
            }
            _ => {
                let plain = matches!(blocks.as_slice(), [OutBlock::Text { .. }]);
                turns.push(Turn {
                    role,
                    blocks,
                    plain,
                })
            }
        }
    }
    if turns.is_empty() {
        return Err(invalid(
            "messages",
            "Anthropic needs at least one non-empty user or assistant message",
        ));
    }
    let mut out = Vec::with_capacity(turns.len() + 1);
    if turns[0].role == "assistant" {
        out.push(OutTurn {
            role: "user",
            content: OutContent::Text(LEADING_USER_TURN),
        });
    }
    for mut turn in turns {
        let content = match turn.blocks.as_slice() {
            [OutBlock::Text { text }] if turn.plain => OutContent::Text(text),
            _ => {
                // Anthropic wants a turn's tool results before its other content.
                turn.blocks
                    .sort_by_key(|b| !matches!(b, OutBlock::ToolResult { .. }));
                OutContent::Blocks(turn.blocks)
            }
        };
        out.push(OutTurn {
            role: turn.role,
            content,
        });
    }
    let system = (!system.is_empty()).then(|| system.join("\n\n"));
    Ok((system, out))
}

/// A system block's text (empty texts left out); anything else is refused.
fn system_text<'a>(b: &'a Block, at: &str, system: &mut Vec<&'a str>) -> Result<(), Error> {
    match b {
        Block::Text(text) if text.is_empty() => Ok(()),
        Block::Text(text) => {
            system.push(text);
            Ok(())
        }
        _ => Err(invalid(
            at,
            "Anthropic's system prompt holds text only; move other content to a user message",
        )),
    }
}

/// A model block as an Anthropic block, or `None` when it is left out.
fn out_block<'a>(b: &'a Block, at: &str) -> Result<Option<OutBlock<'a>>, Error> {
    Ok(match b {
        Block::Text(text) if text.is_empty() => None,
        Block::Text(text) => Some(OutBlock::Text { text }),
        Block::Image { source, .. } => Some(OutBlock::Image {
            source: image(source, at)?,
        }),
        Block::ToolCall {
            id,
            name,
            arguments,
        } => {
            let input = if arguments.trim().is_empty() {
                Value::Object(Map::new()) // some clients send "" for a call without arguments
            } else {
                serde_json::from_str::<Value>(arguments)
                    .ok()
                    .filter(Value::is_object)
                    .ok_or_else(|| {
                        invalid(
                            format!("{at}.arguments"),
                            "expected the JSON text of an object",
                        )
                    })?
            };
            Some(OutBlock::ToolUse { id, name, input })
        }
        Block::ToolResult {
            call_id,
            content,
            is_error,
        } => {
            let mut parts = Vec::with_capacity(content.len());
            for (k, part) in content.iter().enumerate() {
                let at = format!("{at}.content[{k}]");
                match part {
                    Block::Text(_) | Block::Image { .. } | Block::Opaque { .. } => {
                        parts.extend(out_block(part, &at)?)
                    }
                    _ => {
                        return Err(invalid(
                            at,
                            "a tool result holds text, images and documents only for Anthropic",
                        ))
                    }
                }
            }
            let content = match parts.as_slice() {
                [] => None,
                [OutBlock::Text { text }] => Some(OutContent::Text(text)),
                _ => Some(OutContent::Blocks(parts)),
            };
            Some(OutBlock::ToolResult {
                tool_use_id: call_id,
                content,
                is_error: *is_error,
            })
        }
        Block::Reasoning {
            redacted: Some(data),
            ..
        } => Some(OutBlock::RedactedThinking { data }),
        Block::Reasoning {
            text,
            signature: Some(signature),
            ..
        } => Some(OutBlock::Thinking {
            thinking: text,
            signature,
        }),
        // Thinking Anthropic did not sign is rejected by it; the answer does not depend on it.
        Block::Reasoning { .. } => None,
        Block::Opaque {
            wire: Wire::AnthropicMessages,
            json,
        } => Some(OutBlock::Raw(json)),
        Block::Opaque { wire, .. } => {
            return Err(invalid(
                at,
                format!("a block of the {wire:?} wire that has no Anthropic translation"),
            ))
        }
    })
}

/// An image source as Anthropic takes it.
fn image<'a>(source: &'a ImageSource, at: &str) -> Result<OutSource<'a>, Error> {
    let base64 = |media_type: &str, data: &'a str, param: &str| {
        let media_type = match media_type.to_ascii_lowercase().as_str() {
            "image/jpg" => "image/jpeg".to_owned(),
            t => t.to_owned(),
        };
        if !IMAGE_TYPES.contains(&media_type.as_str()) {
            return Err(invalid(
                param,
                format!("image type {media_type:?}: Anthropic takes jpeg, png, gif or webp"),
            ));
        }
        Ok(OutSource::Base64 { media_type, data })
    };
    match source {
        ImageSource::Base64 { media_type, data } => {
            base64(media_type, data, &format!("{at}.media_type"))
        }
        ImageSource::Url(url) => {
            let param = format!("{at}.url");
            if let Some(rest) = url.strip_prefix("data:") {
                let (meta, data) = rest
                    .split_once(',')
                    .ok_or_else(|| invalid(&*param, "a data: URL without a comma"))?;
                let media_type = meta
                    .strip_suffix(";base64")
                    .ok_or_else(|| invalid(&*param, "only base64 data: URLs are translated"))?;
                return base64(media_type, data, &param);
            }
            if url.starts_with("https://") || url.starts_with("http://") {
                return Ok(OutSource::Url { url });
            }
            Err(invalid(
                param,
                "expected an http(s) URL or a base64 data: URL",
            ))
        }
    }
}

#[derive(Serialize)]
struct OutBody<'a> {
    model: &'a str,
    max_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<String>,
    messages: Vec<OutTurn<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<OutTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<OutToolChoice<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    stop_sequences: Vec<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_k: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<OutMetadata<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream: Option<bool>,
    #[serde(flatten)]
    extras: BTreeMap<&'a str, &'a Value>,
}

#[derive(Serialize)]
struct OutMetadata<'a> {
    user_id: &'a str,
}

#[derive(Serialize)]
struct OutTurn<'a> {
    role: &'static str,
    content: OutContent<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum OutContent<'a> {
    Text(&'a str),
    Blocks(Vec<OutBlock<'a>>),
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum OutBlock<'a> {
    Text {
        text: &'a str,
    },
    Image {
        source: OutSource<'a>,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: Value,
    },
    ToolResult {
        tool_use_id: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        content: Option<OutContent<'a>>,
        #[serde(skip_serializing_if = "is_false")]
        is_error: bool,
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

fn is_false(b: &bool) -> bool {
    !b
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum OutSource<'a> {
    Base64 { media_type: String, data: &'a str },
    Url { url: &'a str },
}

#[derive(Serialize)]
#[serde(untagged)]
enum OutTool<'a> {
    Custom {
        name: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        description: Option<&'a str>,
        input_schema: Cow<'a, Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        strict: Option<bool>,
    },
    /// A server tool of the Anthropic wire, as it came.
    Hosted(&'a Value),
}

#[derive(Serialize)]
struct OutToolChoice<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    disable_parallel_tool_use: Option<bool>,
}

impl<'a> OutToolChoice<'a> {
    fn new(kind: &'static str, name: Option<&'a str>) -> Self {
        OutToolChoice {
            kind,
            name,
            disable_parallel_tool_use: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ResponseFormat;
    use serde_json::json;

    fn decode(body: Value) -> Result<Decoded, Error> {
        decode_request(body.to_string().as_bytes())
    }

    fn param_of_decode(body: Value) -> String {
        decode(body).unwrap_err().param.unwrap_or_default()
    }

    const OPTS: EncodeOptions = EncodeOptions {
        stream: false,
        default_max_tokens: 1024,
    };

    fn encode(req: &Request, hints: &[&str]) -> Result<(Value, Vec<String>), Error> {
        let hints: Vec<String> = hints.iter().map(|h| h.to_string()).collect();
        let encoded = encode_request(req, &hints, &OPTS)?;
        Ok((
            serde_json::from_slice(&encoded.body).unwrap(),
            encoded.dropped,
        ))
    }

    fn body_of(req: &Request) -> Value {
        encode(req, &[]).unwrap().0
    }

    fn param_of(req: &Request) -> String {
        encode(req, &[]).unwrap_err().param.unwrap_or_default()
    }

    /// A request of the OpenAI wire, as its door would decode it.
    fn openai(messages: Vec<Message>) -> Request {
        let mut req = Request::new("claude-x", Wire::OpenAiChat);
        req.messages = messages;
        req
    }

    fn text(role: Role, text: &str) -> Message {
        Message::text(role, text)
    }

    fn msg(role: Role, content: Vec<Block>) -> Message {
        Message {
            role,
            content,
            name: None,
        }
    }

    fn call(id: &str, name: &str, arguments: &str) -> Block {
        Block::ToolCall {
            id: id.into(),
            name: name.into(),
            arguments: arguments.into(),
        }
    }

    fn result(id: &str, content: &str) -> Block {
        Block::ToolResult {
            call_id: id.into(),
            content: if content.is_empty() {
                vec![]
            } else {
                vec![Block::Text(content.into())]
            },
            is_error: false,
        }
    }

    fn url_image(url: &str) -> Block {
        Block::Image {
            source: ImageSource::Url(url.into()),
            detail: None,
        }
    }

    /// What Claude Code 2.1 sends (API.md, "What coding agents send").
    fn claude_code_body() -> Value {
        json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 128000,
            "stream": true,
            "thinking": {"type": "adaptive"},
            "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
            "output_config": {"effort": "medium"},
            "metadata": {"user_id": "{\"device_id\":\"d\",\"session_id\":\"s\"}"},
            "system": [
                {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1"},
                {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": "Be concise.", "cache_control": {"type": "ephemeral"}}
            ],
            "tools": [
                {"name": "Bash", "description": "Run a command",
                 "input_schema": {"type": "object", "properties": {"command": {"type": "string"}},
                    "required": ["command"]}},
                {"name": "Read", "description": "Read a file", "strict": true,
                 "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}},
                 "cache_control": {"type": "ephemeral"}},
                {"type": "web_search_20250305", "name": "web_search", "max_uses": 5}
            ],
            "tool_choice": {"type": "auto", "disable_parallel_tool_use": true},
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "list the files"}]},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "I should run ls.", "signature": "EqQBCkYIBxgCKkB"},
                    {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va"},
                    {"type": "tool_use", "id": "toolu_01", "name": "Bash",
                        "input": {"command": "ls", "description": "list"}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_01", "content": "a.rs\nb.rs"},
                    {"type": "tool_result", "tool_use_id": "toolu_02", "is_error": true,
                        "content": [{"type": "text", "text": "denied"},
                            {"type": "image", "source": {"type": "url", "url": "https://e/x.png"}}]},
                    {"type": "text", "text": "go on", "cache_control": {"type": "ephemeral"}}
                ]},
                {"role": "system", "content": "The user changed directory."},
                {"role": "user", "content": [
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                    {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "notes"},
                        "title": "notes.txt", "citations": {"enabled": true}},
                    {"type": "text", "text": "and this?"}
                ]}
            ],
            "temperature": 1,
            "top_k": 40,
            "stop_sequences": ["\n\nHuman:"],
            "anthropic_future_field": {"x": 1}
        })
    }

    #[test]
    fn a_claude_code_body_decodes_to_the_model_with_its_hints() {
        let Decoded { request: r, hints } = decode(claude_code_body()).unwrap();
        assert_eq!(r.wire, Wire::AnthropicMessages);
        assert_eq!(r.model, "claude-sonnet-4-5");
        assert!(r.stream);
        assert_eq!(
            r.system,
            vec![
                Block::Text("x-anthropic-billing-header: cc_version=2.1".into()),
                Block::Text("You are Claude Code.".into()),
                Block::Text("Be concise.".into()),
            ]
        );
        assert_eq!(
            r.tools[1],
            Tool {
                name: "Read".into(),
                description: Some("Read a file".into()),
                parameters: json!({"type": "object", "properties": {"path": {"type": "string"}}}),
                strict: Some(true),
            }
        );
        assert_eq!(r.tool_choice, Some(ToolChoice::Auto));
        assert_eq!(
            r.params,
            Params {
                temperature: Some(1.0),
                top_k: Some(40),
                max_output_tokens: Some(128000),
                stop: vec!["\n\nHuman:".into()],
                parallel_tool_calls: Some(false),
                ..Params::default()
            }
        );
        let roles: Vec<Role> = r.messages.iter().map(|m| m.role).collect();
        assert_eq!(
            roles,
            [
                Role::User,
                Role::Assistant,
                Role::User,
                Role::System,
                Role::User
            ]
        );
        assert_eq!(
            r.messages[1].content,
            vec![
                Block::Reasoning {
                    text: "I should run ls.".into(),
                    signature: Some("EqQBCkYIBxgCKkB".into()),
                    encrypted: None,
                    redacted: None
                },
                Block::Reasoning {
                    text: String::new(),
                    signature: None,
                    encrypted: None,
                    redacted: Some("EmwKAhgBEgy3va".into())
                },
                call(
                    "toolu_01",
                    "Bash",
                    r#"{"command":"ls","description":"list"}"#
                ),
            ]
        );
        assert_eq!(
            r.messages[2].content,
            vec![
                result("toolu_01", "a.rs\nb.rs"),
                Block::ToolResult {
                    call_id: "toolu_02".into(),
                    content: vec![Block::Text("denied".into()), url_image("https://e/x.png")],
                    is_error: true
                },
                Block::Text("go on".into()),
            ]
        );
        assert_eq!(
            r.messages[3],
            text(Role::System, "The user changed directory.")
        );
        assert_eq!(
            r.messages[4].content[0],
            Block::Image {
                source: ImageSource::Base64 {
                    media_type: "image/png".into(),
                    data: "iVBORw0KGgo=".into()
                },
                detail: None
            }
        );
        assert_eq!(
            r.messages[4].content[1],
            Block::Opaque {
                wire: Wire::AnthropicMessages,
                json: claude_code_body()["messages"][4]["content"][1].clone()
            }
        );
        assert_eq!(r.tools.len(), 2);
        assert_eq!(
            r.hosted_tools,
            [json!({"type": "web_search_20250305", "name": "web_search", "max_uses": 5})]
        );
        assert_eq!(
            r.user.as_deref(),
            Some("{\"device_id\":\"d\",\"session_id\":\"s\"}")
        );
        assert_eq!(
            hints,
            [
                "cache_control",
                "context_management",
                "metadata",
                "output_config",
                "thinking"
            ]
        );
        let keys: Vec<&str> = r.extras.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "anthropic_future_field",
                "context_management",
                "metadata",
                "output_config",
                "thinking"
            ]
        );
    }

    #[test]
    fn a_decoded_body_encodes_back_for_an_anthropic_provider() {
        let Decoded { request, hints } = decode(claude_code_body()).unwrap();
        let hints: Vec<&str> = hints.iter().map(String::as_str).collect();
        let (body, dropped) = encode(&request, &hints).unwrap();
        // Block-level cache_control has no place in the model: listed as dropped.
        assert_eq!(dropped, ["cache_control"]);
        let original = claude_code_body();
        for same in [
            "model",
            "max_tokens",
            "thinking",
            "context_management",
            "output_config",
            "metadata",
            "tools",
            "tool_choice",
            "stop_sequences",
            "top_k",
            "anthropic_future_field",
        ] {
            let mut expected = original[same].clone();
            if same == "tools" {
                expected[1].as_object_mut().unwrap().remove("cache_control");
            }
            assert_eq!(body[same], expected, "{same}");
        }
        assert_eq!(body["temperature"].as_f64(), Some(1.0));
        assert!(body.get("stream").is_none(), "only when the options ask");
        assert_eq!(
            body["system"],
            "x-anthropic-billing-header: cc_version=2.1\n\nYou are Claude Code.\n\nBe concise.\n\n\
             The user changed directory."
        );
        let messages = body["messages"].as_array().unwrap();
        assert_eq!(
            messages.len(),
            3,
            "the system turn moved up, the user turns around it merged"
        );
        assert_eq!(messages[1], original["messages"][1]);
        assert_eq!(
            messages[2]["content"],
            json!([
                {"type": "tool_result", "tool_use_id": "toolu_01", "content": "a.rs\nb.rs"},
                {"type": "tool_result", "tool_use_id": "toolu_02", "is_error": true,
                    "content": [{"type": "text", "text": "denied"},
                        {"type": "image", "source": {"type": "url", "url": "https://e/x.png"}}]},
                {"type": "text", "text": "go on"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                original["messages"][4]["content"][1],
                {"type": "text", "text": "and this?"}
            ])
        );
        // The same request from another wire: its extras are refused unless they are hints.
        let mut other = request.clone();
        other.wire = Wire::OpenAiResponses;
        let refused = |req: &Request| encode(req, &hints).unwrap_err().param.unwrap();
        assert_eq!(refused(&other), "anthropic_future_field");
        other.extras.remove("anthropic_future_field");
        // A block kept verbatim is sent only to a provider of its own wire.
        other.messages[4].content[1] = Block::Opaque {
            wire: Wire::OpenAiResponses,
            json: json!({"type": "input_file", "file_id": "f"}),
        };
        assert_eq!(refused(&other), "messages[4].content[1]");
        other.messages[4].content.remove(1);
        let (body, dropped) = encode(&other, &hints).unwrap();
        assert_eq!(
            dropped,
            [
                "context_management",
                "metadata",
                "output_config",
                "thinking",
                "cache_control",
                "strict",
                "tools.web_search_20250305"
            ]
        );
        assert_eq!(body["tools"].as_array().unwrap().len(), 2);
        assert!(body.get("thinking").is_none());
        assert_eq!(body["metadata"], json!({"user_id": request.user.unwrap()}));
        assert!(body["tools"][1].get("strict").is_none());
    }

    #[test]
    fn bad_shapes_name_their_path() {
        let with_messages = |messages: Value| {
            param_of_decode(json!({"model": "m", "max_tokens": 1, "messages": messages}))
        };
        let ok = json!({"role": "user", "content": "hi"});
        assert_eq!(
            with_messages(json!([ok, ok, {"role": "user", "content": [{"text": "no type"}]}])),
            "messages[2].content[0].type"
        );
        assert_eq!(
            with_messages(json!([{"role": "user", "content": [{"type": "image",
                "source": {"type": 7}}]}])),
            "messages[0].content[0].source.type"
        );
        assert_eq!(
            with_messages(json!([{"role": "user", "content": [{"type": "text", "text": 5}]}])),
            "messages[0].content[0].text"
        );
        assert_eq!(
            with_messages(json!([{"role": "user", "content": [{"type": "text"}]}])),
            "messages[0].content[0].text"
        );
        assert_eq!(
            with_messages(json!([{"role": "tool", "content": "x"}])),
            "messages[0].role"
        );
        assert_eq!(
            with_messages(json!([{"role": "user", "content": [{"type": "image",
                "source": {"type": "file", "file_id": "f"}}]}])),
            "messages[0].content[0].source.type"
        );
        assert_eq!(
            with_messages(json!([{"role": "user", "content": [{"type": "tool_result",
                "tool_use_id": "t", "content": [{"type": "tool_use", "id": "i", "name": "n"}]}]}])),
            "messages[0].content[0].content[0].type"
        );
        assert_eq!(with_messages(json!("hi")), "messages");
        assert_eq!(
            param_of_decode(json!({"max_tokens": 1, "messages": []})),
            "body"
        );
        assert_eq!(
            param_of_decode(json!({"model": "m", "messages": [], "temperature": "hot"})),
            "temperature"
        );
        assert_eq!(
            param_of_decode(json!({"model": "m", "messages": [],
                "tools": [{"name": "f", "input_schema": {}, "strict": "yes"}]})),
            "tools[0].strict"
        );
        assert_eq!(
            param_of_decode(json!({"model": "m", "messages": [], "tool_choice": {"type": "tool"}})),
            "tool_choice.name"
        );
        assert_eq!(
            decode_request(b"{").unwrap_err().kind,
            ErrorKind::InvalidRequest
        );
        assert_eq!(
            decode_request(b"{} x").unwrap_err().param.as_deref(),
            Some("body")
        );
        let hints = decode(json!({"model": "m", "messages": [],
            "output_config": {"effort": "low", "format": {"type": "json_schema"}}}))
        .unwrap()
        .hints;
        assert!(
            hints.is_empty(),
            "a format asks for the answer's shape: not a hint"
        );
    }

    #[test]
    fn the_openai_tool_loop_encodes_to_the_recorded_anthropic_body() {
        // tests/fixtures/openai_compat_request_tool_loop.json as the OpenAI door decodes it.
        let mut req = openai(vec![
            text(Role::System, "You are a weather assistant."),
            text(Role::Developer, "Answer in Celsius."),
            msg(
                Role::User,
                vec![
                    Block::Text("Weather in Paris and Rome? Here is the map.".into()),
                    Block::Image {
                        source: ImageSource::Url("data:image/jpeg;base64,/9j/4AAQSkZJRg==".into()),
                        detail: Some("low".into()),
                    },
                ],
            ),
            msg(
                Role::Assistant,
                vec![
                    Block::Text("I'll look up both cities at once.".into()),
                    call(
                        "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
                        "get_weather",
                        "{\"city\": \"Paris\", \"unit\": \"c\"}",
                    ),
                    call(
                        "toolu_01XJ3bMh6v9bQ8kZz2Wd4rKf",
                        "get_weather",
                        "{\"city\":\"Rome\",\"unit\":\"c\"}",
                    ),
                ],
            ),
            msg(
                Role::Tool,
                vec![result("toolu_01T1x1fJ34qAmk2tNTrN7Up6", "{\"temp\": 18}")],
            ),
            msg(
                Role::Tool,
                vec![result("toolu_01XJ3bMh6v9bQ8kZz2Wd4rKf", "{\"temp\": 24}")],
            ),
        ]);
        req.model = "claude-sonnet-4-20250514".into();
        req.tools = vec![Tool {
            name: "get_weather".into(),
            description: Some("Current weather of a city".into()),
            parameters: json!({"type": "object", "properties": {"city": {"type": "string"},
                "unit": {"type": "string", "enum": ["c", "f"]}}, "required": ["city"],
                "additionalProperties": false}),
            strict: Some(true),
        }];
        req.tool_choice = Some(ToolChoice::Auto);
        req.params = Params {
            max_output_tokens: Some(512),
            temperature: Some(0.2),
            stop: vec!["\n\nHuman:".into()],
            presence_penalty: Some(0.0),
            frequency_penalty: Some(0.0),
            parallel_tool_calls: Some(false),
            ..Params::default()
        };
        req.user = Some("user-1234".into());
        req.stream = true;
        req.extras
            .insert("metadata".into(), json!({"session": "s-1"}));
        req.extras.insert("store".into(), json!(false));
        let hints = ["metadata".to_owned(), "store".to_owned()];
        let encoded = encode_request(
            &req,
            &hints,
            &EncodeOptions {
                stream: true,
                default_max_tokens: 4096,
            },
        )
        .unwrap();
        let body: Value = serde_json::from_slice(&encoded.body).unwrap();
        let expected: Value = serde_json::from_str(include_str!(
            "../../../tests/fixtures/openai_compat_request_tool_loop.anthropic.json"
        ))
        .unwrap();
        assert_eq!(body, expected);
        assert_eq!(encoded.dropped, ["metadata", "store", "strict"]);
    }

    #[test]
    fn system_and_developer_move_up_and_same_role_turns_merge() {
        let body = body_of(&openai(vec![
            text(Role::System, "be brief"),
            text(Role::User, "2+2?"),
            text(Role::Developer, "digits only"),
            text(Role::User, "really"),
            text(Role::Assistant, "4"),
        ]));
        assert_eq!(
            body,
            json!({"model": "claude-x", "max_tokens": 1024,
            "system": "be brief\n\ndigits only",
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "2+2?"}, {"type": "text", "text": "really"}]},
                {"role": "assistant", "content": "4"},
            ]})
        );
    }

    #[test]
    fn a_conversation_starting_with_the_assistant_gets_a_user_turn_first() {
        let body = body_of(&openai(vec![
            text(Role::System, "s"),
            text(Role::Assistant, "Hi! How can I help?"),
            text(Role::User, "hello"),
        ]));
        assert_eq!(body["messages"][0], json!({"role": "user", "content": "."}));
        assert_eq!(body["messages"][1]["role"], "assistant");
        assert_eq!(
            param_of(&openai(vec![text(Role::System, "only")])),
            "messages"
        );
        assert_eq!(param_of(&openai(vec![])), "messages");
        assert_eq!(
            param_of(&openai(vec![
                text(Role::User, ""),
                msg(Role::Assistant, vec![])
            ])),
            "messages"
        );
    }

    #[test]
    fn images_from_data_and_http_urls() {
        let body = body_of(&openai(vec![msg(
            Role::User,
            vec![
                Block::Text("what is this?".into()),
                url_image("data:image/png;base64,iVBORw0KGgo="),
                url_image("https://example.com/cat.jpg"),
                Block::Image {
                    source: ImageSource::Base64 {
                        media_type: "image/jpg".into(),
                        data: "AAAA".into(),
                    },
                    detail: None,
                },
            ],
        )]));
        assert_eq!(
            body["messages"][0]["content"],
            json!([
                {"type": "text", "text": "what is this?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
                {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "AAAA"}},
            ])
        );
        let image = |url: &str| openai(vec![msg(Role::User, vec![url_image(url)])]);
        for bad in [
            "data:image/tiff;base64,AAAA",
            "data:image/png,rawbytes",
            "ftp://example.com/a.png",
        ] {
            assert_eq!(param_of(&image(bad)), "messages[0].content[0].url", "{bad}");
        }
    }

    #[test]
    fn tool_calls_and_results_round_trip_with_merged_results() {
        let body = body_of(&openai(vec![
            text(Role::User, "weather in Paris and Rome?"),
            msg(
                Role::Assistant,
                vec![
                    call("call_1", "get_weather", "{\"city\":\"Paris\"}"),
                    call("call_2", "get_weather", "{\"city\":\"Rome\"}"),
                ],
            ),
            msg(Role::Tool, vec![result("call_1", "18C")]),
            msg(Role::Tool, vec![result("call_2", "21C")]),
            text(Role::User, "thanks, and which is warmer?"),
        ]));
        assert_eq!(
            body["messages"],
            json!([
                {"role": "user", "content": "weather in Paris and Rome?"},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {"city": "Rome"}},
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
                    {"type": "tool_result", "tool_use_id": "call_2", "content": "21C"},
                    {"type": "text", "text": "thanks, and which is warmer?"},
                ]},
            ])
        );
    }

    #[test]
    fn tool_results_go_before_text_in_a_merged_turn() {
        let body = body_of(&openai(vec![
            text(Role::User, "q"),
            msg(
                Role::Assistant,
                vec![Block::Text("let me look".into()), call("c", "f", "")],
            ),
            text(Role::User, "hurry"),
            msg(Role::Tool, vec![result("c", "")]),
        ]));
        assert_eq!(
            body["messages"][1]["content"],
            json!([{"type": "text", "text": "let me look"},
                {"type": "tool_use", "id": "c", "name": "f", "input": {}}])
        );
        assert_eq!(
            body["messages"][2]["content"],
            json!([{"type": "tool_result", "tool_use_id": "c"}, {"type": "text", "text": "hurry"}])
        );
    }

    #[test]
    fn unparseable_arguments_name_their_block() {
        let with = |arguments: &str| {
            openai(vec![
                text(Role::User, "q"),
                msg(
                    Role::Assistant,
                    vec![call("a", "f", "{}"), call("b", "f", arguments)],
                ),
            ])
        };
        assert_eq!(
            param_of(&with("{\"city\": ")),
            "messages[1].content[1].arguments"
        );
        assert_eq!(
            param_of(&with("[1, 2]")),
            "messages[1].content[1].arguments"
        );
    }

    #[test]
    fn reasoning_is_sent_back_only_when_anthropic_signed_it() {
        let reasoning = |signature: Option<&str>, redacted: Option<&str>| Block::Reasoning {
            text: "hmm".into(),
            signature: signature.map(str::to_owned),
            encrypted: Some("opaque".into()),
            redacted: redacted.map(str::to_owned),
        };
        let body = body_of(&openai(vec![
            text(Role::User, "q"),
            msg(
                Role::Assistant,
                vec![
                    reasoning(Some("sig"), None),
                    reasoning(None, Some("data")),
                    reasoning(None, None),
                    Block::Text("a".into()),
                ],
            ),
        ]));
        assert_eq!(
            body["messages"][1]["content"],
            json!([{"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "redacted_thinking", "data": "data"},
                {"type": "text", "text": "a"}])
        );
    }

    #[test]
    fn tools_and_tool_choice() {
        let tools = vec![
            Tool {
                name: "get_weather".into(),
                description: Some("Weather of a city".into()),
                parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}}),
                strict: None,
            },
            Tool {
                name: "now".into(),
                description: None,
                parameters: Value::Null,
                strict: None,
            },
        ];
        let with = |choice: Option<ToolChoice>, parallel: Option<bool>, tools: &[Tool]| {
            let mut req = openai(vec![text(Role::User, "q")]);
            req.tools = tools.to_vec();
            req.tool_choice = choice;
            req.params.parallel_tool_calls = parallel;
            encode(&req, &[]).map(|(body, _)| body)
        };
        let choice = |c: Option<ToolChoice>, p: Option<bool>| {
            with(c, p, &tools).unwrap().get("tool_choice").cloned()
        };
        let body = with(None, None, &tools).unwrap();
        assert_eq!(
            body["tools"],
            json!([
                {"name": "get_weather", "description": "Weather of a city",
                    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}},
                {"name": "now", "input_schema": {"type": "object", "properties": {}}},
            ])
        );
        assert_eq!(choice(None, None), None);
        assert_eq!(
            choice(Some(ToolChoice::Auto), None),
            Some(json!({"type": "auto"}))
        );
        assert_eq!(
            choice(Some(ToolChoice::None), None),
            Some(json!({"type": "none"}))
        );
        assert_eq!(
            choice(Some(ToolChoice::None), Some(false)),
            Some(json!({"type": "none"}))
        );
        assert_eq!(
            choice(Some(ToolChoice::Required), None),
            Some(json!({"type": "any"}))
        );
        assert_eq!(
            choice(Some(ToolChoice::Tool("now".into())), Some(false)),
            Some(json!({"type": "tool", "name": "now", "disable_parallel_tool_use": true}))
        );
        assert_eq!(
            choice(None, Some(false)),
            Some(json!({"type": "auto", "disable_parallel_tool_use": true}))
        );
        assert_eq!(choice(None, Some(true)), None);
        let none = with(Some(ToolChoice::None), Some(false), &[]).unwrap();
        assert!(none.get("tool_choice").is_none());
        let err = with(Some(ToolChoice::Required), None, &[]).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("tool_choice"));
    }

    #[test]
    fn sampling_limits_user_and_stream() {
        let mut req = openai(vec![text(Role::User, "q")]);
        req.params = Params {
            max_output_tokens: Some(77),
            stop: vec!["END".into(), String::new()],
            temperature: Some(0.5),
            top_p: Some(0.9),
            top_k: Some(5),
            presence_penalty: Some(0.0),
            frequency_penalty: Some(0.0),
            response_format: Some(ResponseFormat::Text),
            ..Params::default()
        };
        req.user = Some("u-1".into());
        let encoded = encode_request(
            &req,
            &[],
            &EncodeOptions {
                stream: true,
                default_max_tokens: 4096,
            },
        )
        .unwrap();
        let body: Value = serde_json::from_slice(&encoded.body).unwrap();
        assert_eq!(
            body,
            json!({"model": "claude-x", "max_tokens": 77,
                "messages": [{"role": "user", "content": "q"}],
                "stop_sequences": ["END"], "temperature": 0.5, "top_p": 0.9, "top_k": 5,
                "metadata": {"user_id": "u-1"}, "stream": true})
        );
        req.params.max_output_tokens = None;
        assert_eq!(body_of(&req)["max_tokens"], 1024, "the default");
        for (param, params) in [
            (
                "temperature",
                Params {
                    temperature: Some(1.5),
                    ..Params::default()
                },
            ),
            (
                "top_p",
                Params {
                    top_p: Some(-0.1),
                    ..Params::default()
                },
            ),
            (
                "max_tokens",
                Params {
                    max_output_tokens: Some(0),
                    ..Params::default()
                },
            ),
        ] {
            req.params = params;
            assert_eq!(param_of(&req), param);
        }
    }

    #[test]
    fn what_anthropic_cannot_honour_is_refused_by_name() {
        let refused = [
            (
                "presence_penalty",
                Params {
                    presence_penalty: Some(0.5),
                    ..Params::default()
                },
            ),
            (
                "frequency_penalty",
                Params {
                    frequency_penalty: Some(-1.0),
                    ..Params::default()
                },
            ),
            (
                "response_format",
                Params {
                    response_format: Some(ResponseFormat::JsonObject),
                    ..Params::default()
                },
            ),
            (
                "seed",
                Params {
                    seed: Some(42),
                    ..Params::default()
                },
            ),
            (
                "reasoning_effort",
                Params {
                    reasoning_effort: Some("low".into()),
                    ..Params::default()
                },
            ),
        ];
        for (param, params) in refused {
            let mut req = openai(vec![text(Role::User, "q")]);
            req.params = params;
            let err = encode(&req, &[]).unwrap_err();
            assert_eq!(err.kind, ErrorKind::InvalidRequest);
            assert_eq!(err.param.as_deref(), Some(param));
            assert!(err.message.starts_with(param), "{}", err.message);
        }
        let mut req = openai(vec![text(Role::User, "q")]);
        req.extras.insert("logit_bias".into(), json!({"1": 2}));
        req.extras.insert("prompt_cache_key".into(), json!("k"));
        assert_eq!(param_of(&req), "logit_bias");
        let (_, dropped) = encode(&req, &["logit_bias", "prompt_cache_key"]).unwrap();
        assert_eq!(dropped, ["logit_bias", "prompt_cache_key"]);
        let mut req = openai(vec![
            text(Role::User, "q"),
            msg(Role::System, vec![url_image("https://e/i.png")]),
        ]);
        assert_eq!(param_of(&req), "messages[1].content[0]");
        req.messages.pop();
        req.system = vec![url_image("https://e/i.png")];
        assert_eq!(param_of(&req), "system[0]");
    }
}
