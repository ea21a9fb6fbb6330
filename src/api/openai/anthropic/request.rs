//! OpenAI chat request -> Anthropic Messages request (the rules are in the parent's header).

use serde_json::{json, Map, Value};

use super::TranslateError;
use crate::config::ProviderKind;
use crate::model::support;
use crate::model::{Params, ResponseFormat};

/// The text of the user turn put before a conversation that starts with the assistant:
/// Anthropic wants the user first and rejects empty text, and one character says the least.
const LEADING_USER_TURN: &str = ".";

/// Image types Anthropic accepts in a `base64` source.
const IMAGE_TYPES: [&str; 4] = ["image/jpeg", "image/png", "image/gif", "image/webp"];

/// Whether the client asked for a usage chunk at the end of a stream
/// (`stream_options.include_usage: true`).
pub fn include_usage(openai: &Value) -> bool {
    openai.pointer("/stream_options/include_usage") == Some(&Value::Bool(true))
}

/// OpenAI chat request body -> Anthropic Messages request body. `model` is the provider's
/// model name (resolved by the caller); `default_max_tokens` applies when the client gave none.
pub fn request_to_anthropic(
    openai: &Value,
    model: &str,
    default_max_tokens: u64,
) -> Result<Value, TranslateError> {
    let req = openai
        .as_object()
        .ok_or_else(|| TranslateError::new("body", "expected a JSON object"))?;
    for (key, value) in req {
        if !value.is_null() {
            check_field(key, value)?;
        }
    }
    let field = |key: &str| req.get(key).filter(|v| !v.is_null());

    let mut body = Map::new();
    body.insert("model".into(), Value::from(model));
    let max_tokens = match field("max_completion_tokens").map(|v| ("max_completion_tokens", v)) {
        Some(given) => Some(given),
        None => field("max_tokens").map(|v| ("max_tokens", v)),
    };
    let max_tokens = match max_tokens {
        Some((param, v)) => v
            .as_u64()
            .filter(|n| *n > 0)
            .ok_or_else(|| TranslateError::new(param, "expected a positive integer"))?,
        None => default_max_tokens,
    };
    body.insert("max_tokens".into(), Value::from(max_tokens));

    let (system, messages) = messages(field("messages"))?;
    if !system.is_empty() {
        body.insert("system".into(), Value::from(system.join("\n\n")));
    }
    body.insert("messages".into(), Value::Array(messages));

    let tools = match field("tools") {
        Some(tools) => translate_tools(tools)?,
        None => Vec::new(),
    };
    let choice = tool_choice(field("tool_choice"), !tools.is_empty())?;
    let choice = match field("parallel_tool_calls") {
        None => choice,
        Some(Value::Bool(true)) => choice,
        Some(Value::Bool(false)) if tools.is_empty() => choice,
        Some(Value::Bool(false)) => match choice {
            Some(c) if c["type"] == "none" => Some(c),
            c => {
                let mut c = c.unwrap_or_else(|| json!({"type": "auto"}));
                c["disable_parallel_tool_use"] = Value::Bool(true);
                Some(c)
            }
        },
        Some(_) => {
            return Err(TranslateError::new(
                "parallel_tool_calls",
                "expected a boolean",
            ))
        }
    };
    if !tools.is_empty() {
        body.insert("tools".into(), Value::Array(tools));
    }
    if let Some(choice) = choice {
        body.insert("tool_choice".into(), choice);
    }

    if let Some(stop) = field("stop") {
        let sequences = stop_sequences(stop)?;
        if !sequences.is_empty() {
            body.insert("stop_sequences".into(), Value::Array(sequences));
        }
    }
    if let Some(t) = field("temperature") {
        body.insert("temperature".into(), unit_number("temperature", t)?);
    }
    if let Some(p) = field("top_p") {
        body.insert("top_p".into(), unit_number("top_p", p)?);
    }
    let user = match field("safety_identifier") {
        Some(id) => Some(("safety_identifier", id)),
        None => field("user").map(|u| ("user", u)),
    };
    if let Some((param, user)) = user {
        let user = user
            .as_str()
            .ok_or_else(|| TranslateError::new(param, "expected a string"))?;
        body.insert("metadata".into(), json!({"user_id": user}));
    }
    match field("stream") {
        None | Some(Value::Bool(false)) => {}
        Some(Value::Bool(true)) => {
            body.insert("stream".into(), Value::Bool(true));
        }
        Some(_) => return Err(TranslateError::new("stream", "expected a boolean")),
    }
    Ok(Value::Object(body))
}

/// Accept a top-level field (translated later, or ignored because it cannot change the
/// answer) or refuse it. `value` is not null.
fn check_field(key: &str, value: &Value) -> Result<(), TranslateError> {
    let refuse = |why: &str| Err(TranslateError::new(key, why));
    let is_zero = || value.as_f64() == Some(0.0);
    match key {
        // Translated by request_to_anthropic.
        "messages"
        | "tools"
        | "tool_choice"
        | "parallel_tool_calls"
        | "max_tokens"
        | "max_completion_tokens"
        | "stop"
        | "temperature"
        | "top_p"
        | "user"
        | "safety_identifier"
        | "stream" => Ok(()),
        // Cannot change the answer (see the module header for each).
        "model" | "stream_options" | "metadata" | "store" | "service_tier" | "prompt_cache_key"
        | "prediction" => Ok(()),
        "n" if value.as_u64() == Some(1) => Ok(()),
        "n" => refuse("Anthropic models give one choice per request; use n: 1"),
        "logprobs" if value == &Value::Bool(false) => Ok(()),
        "top_logprobs" if is_zero() => Ok(()),
        "logprobs" | "top_logprobs" => refuse("Anthropic models do not return log probabilities"),
        "logit_bias" if value.as_object().is_some_and(Map::is_empty) => Ok(()),
        "logit_bias" => refuse("Anthropic models take no logit bias"),
        "presence_penalty" | "frequency_penalty" | "response_format" | "seed" => {
            honoured(key, value)
        }
        "modalities"
            if value
                .as_array()
                .is_some_and(|m| m.iter().all(|m| m == "text")) =>
        {
            Ok(())
        }
        "modalities" | "audio" => refuse("Anthropic models answer in text only"),
        "verbosity" if value == "medium" => Ok(()),
        "verbosity" => refuse("Anthropic models have no verbosity setting"),
        "reasoning_effort" => {
            refuse("not translated to Anthropic's extended thinking; leave it unset")
        }
        "web_search_options" => refuse("web search is not available through this provider"),
        "functions" | "function_call" => {
            refuse("the deprecated functions API is not translated; use tools and tool_choice")
        }
        _ => refuse("unrecognized request argument"),
    }
}

/// A field the model has a parameter for, asked of what Anthropic-kind providers can honour
/// ([`support`], the one check every door asks).
fn honoured(key: &str, value: &Value) -> Result<(), TranslateError> {
    let mut params = Params::default();
    match key {
        "presence_penalty" => params.presence_penalty = value.as_f64().or(Some(f64::NAN)),
        "frequency_penalty" => params.frequency_penalty = value.as_f64().or(Some(f64::NAN)),
        "seed" => params.seed = Some(value.as_i64().unwrap_or_default()),
        _ => {
            params.response_format = Some(match value.get("type").and_then(Value::as_str) {
                Some("text") => ResponseFormat::Text,
                _ => ResponseFormat::JsonObject,
            })
        }
    }
    support::check(ProviderKind::Anthropic, &params).map_err(|r| TranslateError::new(key, r.why))
}

/// One Anthropic turn under construction.
struct Turn {
    role: &'static str,
    blocks: Vec<Value>,
    /// The turn is one message whose content was a string: send it as a string.
    plain: bool,
}

/// The system text pieces and the Anthropic `messages` of the OpenAI `messages`.
fn messages(messages: Option<&Value>) -> Result<(Vec<String>, Vec<Value>), TranslateError> {
    let list = messages
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| TranslateError::new("messages", "expected a non-empty list of messages"))?;
    let mut system = Vec::new();
    let mut turns: Vec<Turn> = Vec::new();
    for (i, m) in list.iter().enumerate() {
        let at = format!("messages[{i}]");
        let role = m
            .get("role")
            .and_then(Value::as_str)
            .ok_or_else(|| TranslateError::new(format!("{at}.role"), "expected a string"))?;
        let content = m.get("content").filter(|c| !c.is_null());
        let (role, blocks, plain) = match role {
            "system" | "developer" => {
                let content = content.ok_or_else(|| missing(&at))?;
                system.extend(texts(content, &at)?.into_iter().filter(|t| !t.is_empty()));
                continue;
            }
            "user" => {
                let content = content.ok_or_else(|| missing(&at))?;
                ("user", user_blocks(content, &at)?, content.is_string())
            }
            "assistant" => {
                let blocks = assistant_blocks(m, content, &at)?;
                let plain = content.is_some_and(Value::is_string) && blocks.len() == 1;
                ("assistant", blocks, plain)
            }
            "tool" => ("user", vec![tool_result(m, content, &at)?], false),
            "function" => {
                return Err(TranslateError::new(
                    format!("{at}.role"),
                    "the deprecated function role is not translated; use tool messages",
                ))
            }
            other => {
                return Err(TranslateError::new(
                    format!("{at}.role"),
                    format!("unknown role {other:?}"),
                ))
            }
        };
        if blocks.is_empty() {
            continue; // Anthropic rejects empty turns; an empty message says nothing
        }
        match turns.last_mut() {
            Some(last) if last.role == role => {
                last.blocks.extend(blocks);
                last.plain = false;
            }
            _ => turns.push(Turn {
                role,
                blocks,
                plain,
            }),
        }
    }
    if turns.is_empty() {
        return Err(TranslateError::new(
            "messages",
            "Anthropic needs at least one non-empty user or assistant message",
        ));
    }
    let mut out = Vec::with_capacity(turns.len() + 1);
    if turns[0].role == "assistant" {
        out.push(json!({"role": "user", "content": LEADING_USER_TURN}));
    }
    for mut turn in turns {
        let content = match turn.blocks.as_slice() {
            [only] if turn.plain => only["text"].clone(),
            _ => {
                // Anthropic wants a turn's tool results before its other content.
                turn.blocks.sort_by_key(|b| b["type"] != "tool_result");
                Value::Array(turn.blocks)
            }
        };
        out.push(json!({"role": turn.role, "content": content}));
    }
    Ok((system, out))
}

fn missing(at: &str) -> TranslateError {
    TranslateError::new(format!("{at}.content"), "expected content")
}

fn text_block(text: &str) -> Value {
    json!({"type": "text", "text": text})
}

/// The texts of a content that may only hold text: a string, or a list of `text` parts.
fn texts(content: &Value, at: &str) -> Result<Vec<String>, TranslateError> {
    match content {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(parts) => parts
            .iter()
            .enumerate()
            .map(|(j, part)| {
                let at = format!("{at}.content[{j}]");
                match part_type(part, &at)? {
                    "text" => part_text(part, "text", &at),
                    other => Err(unsupported_part(other, &at)),
                }
            })
            .collect(),
        _ => Err(TranslateError::new(
            format!("{at}.content"),
            "expected a string or a list of content parts",
        )),
    }
}

fn part_type<'a>(part: &'a Value, at: &str) -> Result<&'a str, TranslateError> {
    part.get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| TranslateError::new(format!("{at}.type"), "expected a string"))
}

fn part_text(part: &Value, key: &str, at: &str) -> Result<String, TranslateError> {
    part.get(key)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| TranslateError::new(format!("{at}.{key}"), "expected a string"))
}

fn unsupported_part(kind: &str, at: &str) -> TranslateError {
    TranslateError::new(
        format!("{at}.type"),
        format!("content parts of type {kind:?} are not translated here"),
    )
}

/// A user message's content as Anthropic blocks (empty texts left out).
fn user_blocks(content: &Value, at: &str) -> Result<Vec<Value>, TranslateError> {
    let Value::Array(parts) = content else {
        return Ok(texts(content, at)?
            .iter()
            .filter(|t| !t.is_empty())
            .map(|t| text_block(t))
            .collect());
    };
    let mut blocks = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        let at = format!("{at}.content[{j}]");
        match part_type(part, &at)? {
            "text" => {
                let text = part_text(part, "text", &at)?;
                if !text.is_empty() {
                    blocks.push(text_block(&text));
                }
            }
            "image_url" => blocks.push(image(part, &at)?),
            other => return Err(unsupported_part(other, &at)),
        }
    }
    Ok(blocks)
}

/// An `image_url` part as an Anthropic `image` block.
fn image(part: &Value, at: &str) -> Result<Value, TranslateError> {
    let param = format!("{at}.image_url.url");
    let url = part
        .pointer("/image_url/url")
        .and_then(Value::as_str)
        .ok_or_else(|| TranslateError::new(&param, "expected a string"))?;
    if let Some(rest) = url.strip_prefix("data:") {
        let (meta, data) = rest
            .split_once(',')
            .ok_or_else(|| TranslateError::new(&param, "a data: URL without a comma"))?;
        let media_type = meta
            .strip_suffix(";base64")
            .ok_or_else(|| TranslateError::new(&param, "only base64 data: URLs are translated"))?;
        let media_type = match media_type.to_ascii_lowercase().as_str() {
            "image/jpg" => "image/jpeg".to_owned(),
            t => t.to_owned(),
        };
        if !IMAGE_TYPES.contains(&media_type.as_str()) {
            return Err(TranslateError::new(
                &param,
                format!("image type {media_type:?}: Anthropic takes jpeg, png, gif or webp"),
            ));
        }
        return Ok(json!({"type": "image", "source":
            {"type": "base64", "media_type": media_type, "data": data}}));
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(json!({"type": "image", "source": {"type": "url", "url": url}}));
    }
    Err(TranslateError::new(
        &param,
        "expected an http(s) URL or a base64 data: URL",
    ))
}

/// An assistant message as blocks: its text, then a `tool_use` block per tool call.
fn assistant_blocks(
    m: &Value,
    content: Option<&Value>,
    at: &str,
) -> Result<Vec<Value>, TranslateError> {
    for deprecated in ["function_call", "audio"] {
        if m.get(deprecated).is_some_and(|v| !v.is_null()) {
            return Err(TranslateError::new(
                format!("{at}.{deprecated}"),
                "not translated to Anthropic; use tool_calls and text content",
            ));
        }
    }
    let mut blocks = Vec::new();
    match content {
        None => {}
        Some(Value::Array(parts)) => {
            for (j, part) in parts.iter().enumerate() {
                let at = format!("{at}.content[{j}]");
                let text = match part_type(part, &at)? {
                    "text" => part_text(part, "text", &at)?,
                    "refusal" => part_text(part, "refusal", &at)?,
                    other => return Err(unsupported_part(other, &at)),
                };
                if !text.is_empty() {
                    blocks.push(text_block(&text));
                }
            }
        }
        Some(other) => blocks.extend(
            texts(other, at)?
                .iter()
                .filter(|t| !t.is_empty())
                .map(|t| text_block(t)),
        ),
    }
    let calls = match m.get("tool_calls") {
        None | Some(Value::Null) => return Ok(blocks),
        Some(Value::Array(calls)) => calls,
        Some(_) => {
            return Err(TranslateError::new(
                format!("{at}.tool_calls"),
                "expected a list",
            ))
        }
    };
    for (j, call) in calls.iter().enumerate() {
        let at = format!("{at}.tool_calls[{j}]");
        let string = |pointer: &str, name: &str| {
            call.pointer(pointer)
                .and_then(Value::as_str)
                .ok_or_else(|| TranslateError::new(format!("{at}.{name}"), "expected a string"))
        };
        if let Some(kind) = call.get("type").and_then(Value::as_str) {
            if kind != "function" {
                return Err(TranslateError::new(
                    format!("{at}.type"),
                    format!("tool calls of type {kind:?} are not translated"),
                ));
            }
        }
        let id = string("/id", "id")?;
        let name = string("/function/name", "function.name")?;
        let arguments = string("/function/arguments", "function.arguments")?;
        let input = if arguments.trim().is_empty() {
            json!({}) // some clients send "" for a call without arguments
        } else {
            serde_json::from_str::<Value>(arguments)
                .ok()
                .filter(Value::is_object)
                .ok_or_else(|| {
                    TranslateError::new(
                        format!("{at}.function.arguments"),
                        "expected the JSON text of an object",
                    )
                })?
        };
        blocks.push(json!({"type": "tool_use", "id": id, "name": name, "input": input}));
    }
    Ok(blocks)
}

/// A `tool` message as a `tool_result` block.
fn tool_result(m: &Value, content: Option<&Value>, at: &str) -> Result<Value, TranslateError> {
    let id = m
        .get("tool_call_id")
        .and_then(Value::as_str)
        .ok_or_else(|| TranslateError::new(format!("{at}.tool_call_id"), "expected a string"))?;
    let mut block = json!({"type": "tool_result", "tool_use_id": id});
    match content {
        None => {}
        Some(Value::String(s)) if s.is_empty() => {}
        Some(Value::String(s)) => block["content"] = Value::from(s.as_str()),
        Some(parts) => {
            let parts: Vec<Value> = texts(parts, at)?
                .iter()
                .filter(|t| !t.is_empty())
                .map(|t| text_block(t))
                .collect();
            if !parts.is_empty() {
                block["content"] = Value::Array(parts);
            }
        }
    }
    Ok(block)
}

fn translate_tools(tools: &Value) -> Result<Vec<Value>, TranslateError> {
    let tools = tools
        .as_array()
        .ok_or_else(|| TranslateError::new("tools", "expected a list"))?;
    let mut out = Vec::with_capacity(tools.len());
    for (i, t) in tools.iter().enumerate() {
        let at = format!("tools[{i}]");
        match t.get("type").and_then(Value::as_str) {
            None | Some("function") => {}
            Some(kind) => {
                return Err(TranslateError::new(
                    format!("{at}.type"),
                    format!("tools of type {kind:?} are not translated; use function tools"),
                ))
            }
        }
        let f = t
            .get("function")
            .ok_or_else(|| TranslateError::new(format!("{at}.function"), "expected an object"))?;
        let name = f.get("name").and_then(Value::as_str).ok_or_else(|| {
            TranslateError::new(format!("{at}.function.name"), "expected a string")
        })?;
        let mut tool = Map::new();
        tool.insert("name".into(), Value::from(name));
        if let Some(d) = f.get("description").filter(|d| !d.is_null()) {
            tool.insert("description".into(), d.clone());
        }
        let schema = f
            .get("parameters")
            .filter(|p| !p.is_null())
            .cloned()
            .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
        tool.insert("input_schema".into(), schema);
        out.push(Value::Object(tool));
    }
    Ok(out)
}

/// The Anthropic `tool_choice`, or `None` to send none (Anthropic's default is `auto`).
fn tool_choice(choice: Option<&Value>, have_tools: bool) -> Result<Option<Value>, TranslateError> {
    let Some(choice) = choice else {
        return Ok(None);
    };
    let translated = match choice {
        Value::String(mode) => match mode.as_str() {
            "auto" => json!({"type": "auto"}),
            "none" => json!({"type": "none"}),
            "required" => json!({"type": "any"}),
            other => {
                return Err(TranslateError::new(
                    "tool_choice",
                    format!("unknown mode {other:?}: expected auto, none, required or a function"),
                ))
            }
        },
        Value::Object(_) if choice.get("type").and_then(Value::as_str) == Some("function") => {
            let name = choice
                .pointer("/function/name")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    TranslateError::new("tool_choice.function.name", "expected a string")
                })?;
            json!({"type": "tool", "name": name})
        }
        _ => return Err(TranslateError::new(
            "tool_choice",
            "expected auto, none, required or {\"type\": \"function\", \"function\": {\"name\"}}",
        )),
    };
    if have_tools {
        return Ok(Some(translated));
    }
    match translated["type"].as_str() {
        Some("auto" | "none") => Ok(None), // with no tools there is nothing to choose
        _ => Err(TranslateError::new(
            "tool_choice",
            "requires tools to choose from",
        )),
    }
}

fn stop_sequences(stop: &Value) -> Result<Vec<Value>, TranslateError> {
    match stop {
        Value::String(s) if s.is_empty() => Ok(Vec::new()),
        Value::String(_) => Ok(vec![stop.clone()]),
        Value::Array(list) => list
            .iter()
            .enumerate()
            .map(|(i, s)| match s {
                Value::String(_) => Ok(s.clone()),
                _ => Err(TranslateError::new(
                    format!("stop[{i}]"),
                    "expected a string",
                )),
            })
            .collect(),
        _ => Err(TranslateError::new(
            "stop",
            "expected a string or a list of strings",
        )),
    }
}

/// A number in 0..=1 (Anthropic's range for `temperature` and `top_p`).
fn unit_number(param: &str, v: &Value) -> Result<Value, TranslateError> {
    match v.as_f64() {
        Some(x) if (0.0..=1.0).contains(&x) => Ok(v.clone()),
        Some(_) => Err(TranslateError::new(
            param,
            "Anthropic accepts values from 0 to 1",
        )),
        None => Err(TranslateError::new(param, "expected a number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn translate(openai: Value) -> Result<Value, TranslateError> {
        request_to_anthropic(&openai, "claude-x", 1024)
    }

    fn param_of(openai: Value) -> String {
        translate(openai).unwrap_err().param
    }

    #[test]
    fn system_and_developer_move_up_and_same_role_turns_merge() {
        let body = translate(json!({"model": "gpt-4o", "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "2+2?"},
            {"role": "developer", "content": [{"type": "text", "text": "digits only"}]},
            {"role": "user", "content": "really"},
            {"role": "assistant", "content": "4"},
        ]}))
        .unwrap();
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
        let body = translate(json!({"messages": [
            {"role": "system", "content": "s"},
            {"role": "assistant", "content": "Hi! How can I help?"},
            {"role": "user", "content": "hello"},
        ]}))
        .unwrap();
        assert_eq!(body["messages"][0], json!({"role": "user", "content": "."}));
        assert_eq!(body["messages"][1]["role"], "assistant");
        assert_eq!(
            param_of(json!({"messages": [{"role": "system", "content": "only"}]})),
            "messages"
        );
        assert_eq!(param_of(json!({"messages": []})), "messages");
    }

    #[test]
    fn images_from_data_and_http_urls() {
        let body = translate(json!({"messages": [{"role": "user", "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "high"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
        ]}]}))
        .unwrap();
        assert_eq!(
            body["messages"][0]["content"],
            json!([
                {"type": "text", "text": "what is this?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
            ])
        );
        let image = |url: &str| {
            json!({"messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": url}}]}]})
        };
        assert_eq!(
            param_of(image("data:image/tiff;base64,AAAA")),
            "messages[0].content[0].image_url.url"
        );
        assert_eq!(
            param_of(image("data:image/png,rawbytes")),
            "messages[0].content[0].image_url.url"
        );
        assert_eq!(
            param_of(image("ftp://example.com/a.png")),
            "messages[0].content[0].image_url.url"
        );
        let audio = json!({"messages": [{"role": "user", "content": [
            {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}]}]});
        assert_eq!(param_of(audio), "messages[0].content[0].type");
    }

    #[test]
    fn tool_calls_and_results_round_trip_with_merged_results() {
        let body = translate(json!({"messages": [
            {"role": "user", "content": "weather in Paris and Rome?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}},
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "21C"}]},
            {"role": "user", "content": "thanks, and which is warmer?"},
        ]}))
        .unwrap();
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
                    {"type": "tool_result", "tool_use_id": "call_2", "content": [{"type": "text", "text": "21C"}]},
                    {"type": "text", "text": "thanks, and which is warmer?"},
                ]},
            ])
        );
    }

    #[test]
    fn tool_results_go_before_text_in_a_merged_turn() {
        let body = translate(json!({"messages": [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": "let me look", "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "f", "arguments": ""}}]},
            {"role": "user", "content": "hurry"},
            {"role": "tool", "tool_call_id": "c", "content": ""},
        ]}))
        .unwrap();
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
    fn unparseable_arguments_name_their_path() {
        let call = |arguments: &str| {
            json!({"messages": [
                {"role": "user", "content": "q"},
                {"role": "assistant", "tool_calls": [
                    {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                    {"id": "b", "type": "function", "function": {"name": "f", "arguments": arguments}}]},
            ]})
        };
        assert_eq!(
            param_of(call("{\"city\": ")),
            "messages[1].tool_calls[1].function.arguments"
        );
        assert_eq!(
            param_of(call("[1, 2]")),
            "messages[1].tool_calls[1].function.arguments"
        );
        let no_id = json!({"messages": [{"role": "tool", "content": "x"}]});
        assert_eq!(param_of(no_id), "messages[0].tool_call_id");
    }

    #[test]
    fn tools_and_tool_choice() {
        let tools = json!([
            {"type": "function", "function": {"name": "get_weather", "description": "Weather of a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
                "strict": true}},
            {"type": "function", "function": {"name": "now"}},
        ]);
        let with = |choice: Value, parallel: Value| {
            translate(
                json!({"messages": [{"role": "user", "content": "q"}], "tools": tools,
                "tool_choice": choice, "parallel_tool_calls": parallel}),
            )
            .unwrap()
        };
        let body = with(Value::Null, Value::Null);
        assert_eq!(
            body["tools"],
            json!([
                {"name": "get_weather", "description": "Weather of a city",
                    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
                {"name": "now", "input_schema": {"type": "object", "properties": {}}},
            ])
        );
        assert!(body.get("tool_choice").is_none());
        assert_eq!(
            with(json!("auto"), Value::Null)["tool_choice"],
            json!({"type": "auto"})
        );
        assert_eq!(
            with(json!("none"), Value::Null)["tool_choice"],
            json!({"type": "none"})
        );
        assert_eq!(
            with(json!("none"), json!(false))["tool_choice"],
            json!({"type": "none"})
        );
        assert_eq!(
            with(json!("required"), Value::Null)["tool_choice"],
            json!({"type": "any"})
        );
        assert_eq!(
            with(
                json!({"type": "function", "function": {"name": "now"}}),
                json!(false)
            )["tool_choice"],
            json!({"type": "tool", "name": "now", "disable_parallel_tool_use": true})
        );
        assert_eq!(
            with(Value::Null, json!(false))["tool_choice"],
            json!({"type": "auto", "disable_parallel_tool_use": true})
        );
        assert!(with(Value::Null, json!(true)).get("tool_choice").is_none());

        let no_tools = |choice: Value| {
            translate(
                json!({"messages": [{"role": "user", "content": "q"}], "tool_choice": choice,
                "parallel_tool_calls": false}),
            )
        };
        assert!(no_tools(json!("none"))
            .unwrap()
            .get("tool_choice")
            .is_none());
        assert_eq!(
            no_tools(json!("required")).unwrap_err().param,
            "tool_choice"
        );
        let custom = json!({"messages": [{"role": "user", "content": "q"}],
            "tools": [{"type": "custom", "custom": {"name": "x"}}]});
        assert_eq!(param_of(custom), "tools[0].type");
    }

    #[test]
    fn sampling_limits_user_and_stream() {
        let body = translate(json!({"messages": [{"role": "user", "content": "q"}],
            "max_tokens": 50, "max_completion_tokens": 77, "stop": "END", "temperature": 0.5,
            "top_p": 0.9, "user": "u-1", "stream": true,
            "stream_options": {"include_usage": true}, "n": 1, "logprobs": false,
            "presence_penalty": 0, "frequency_penalty": 0.0, "response_format": {"type": "text"},
            "metadata": {"k": "v"}, "store": false, "service_tier": "auto", "seed": null}))
        .unwrap();
        assert_eq!(
            body,
            json!({"model": "claude-x", "max_tokens": 77,
                "messages": [{"role": "user", "content": "q"}],
                "stop_sequences": ["END"], "temperature": 0.5, "top_p": 0.9,
                "metadata": {"user_id": "u-1"}, "stream": true})
        );
        let body = translate(json!({"messages": [{"role": "user", "content": "q"}],
            "max_tokens": 50, "stop": ["a", "b"], "stream": false,
            "user": "u-1", "safety_identifier": "s-1"}))
        .unwrap();
        assert_eq!(body["max_tokens"], 50);
        assert_eq!(body["stop_sequences"], json!(["a", "b"]));
        assert_eq!(body["metadata"], json!({"user_id": "s-1"}));
        assert!(body.get("stream").is_none());
        assert_eq!(
            param_of(json!({"messages": [{"role": "user", "content": "q"}],
            "temperature": 1.5})),
            "temperature"
        );
        assert_eq!(
            param_of(json!({"messages": [{"role": "user", "content": "q"}],
            "max_completion_tokens": 0})),
            "max_completion_tokens"
        );
        assert!(include_usage(
            &json!({"stream_options": {"include_usage": true}})
        ));
        assert!(!include_usage(&json!({"stream": true})));
    }

    #[test]
    fn fields_without_a_translation_are_refused_by_name() {
        let refused = [
            ("n", json!(2)),
            ("logprobs", json!(true)),
            ("top_logprobs", json!(3)),
            ("audio", json!({"voice": "alloy", "format": "wav"})),
            ("modalities", json!(["text", "audio"])),
            ("logit_bias", json!({"1234": -100})),
            ("presence_penalty", json!(0.5)),
            ("frequency_penalty", json!(-1)),
            ("response_format", json!({"type": "json_object"})),
            (
                "response_format",
                json!({"type": "json_schema", "json_schema": {"name": "x"}}),
            ),
            ("seed", json!(42)),
            ("reasoning_effort", json!("low")),
            ("verbosity", json!("low")),
            ("web_search_options", json!({})),
            ("functions", json!([{"name": "f"}])),
            ("function_call", json!("auto")),
            ("top_k", json!(5)),
        ];
        for (field, value) in refused {
            let mut req = json!({"messages": [{"role": "user", "content": "q"}]});
            req[field] = value.clone();
            let err = translate(req).unwrap_err();
            assert_eq!(err.param, field, "{field}: {value}");
            assert!(!err.message.is_empty());
        }
        let defaults = json!({"messages": [{"role": "user", "content": "q"}], "n": 1,
            "logprobs": false, "top_logprobs": 0, "logit_bias": {}, "modalities": ["text"],
            "verbosity": "medium", "prediction": {"type": "content", "content": "x"},
            "prompt_cache_key": "k", "audio": null, "seed": null});
        assert!(translate(defaults).is_ok());
        let function_role =
            json!({"messages": [{"role": "function", "name": "f", "content": "x"}]});
        assert_eq!(param_of(function_role), "messages[0].role");
        let err =
            translate(json!({"messages": [{"role": "user", "content": "q"}], "n": 3})).unwrap_err();
        assert_eq!(err.to_openai()["error"]["param"], "n");
        assert_eq!(err.to_openai()["error"]["type"], "invalid_request_error");
    }
}
