//! A model [`Request`] as an OpenAI chat completions body ([`encode_request`]): for a request
//! from another door (Anthropic Messages, OpenAI Responses) to an OpenAI-kind provider —
//! OpenAI, or a local server speaking its API (vLLM, llama.cpp, Ollama).
//!
//! | the model | OpenAI |
//! |---|---|
//! | system part | one leading `system` message (its text blocks joined by a blank line) |
//! | `system` / `developer` messages | `system` messages (local servers know no `developer`) |
//! | user text and images | `content`: a string for one text block, else parts (`text`, `image_url` with a `data:` URL for base64 images, `detail`) |
//! | assistant text and tool calls | `content` (text joined, `null` with only calls) and `tool_calls` |
//! | tool results (a tool message, or results in a user turn) | one `tool` message each, before the turn's other content; an error result's text is prefixed `Error: ` |
//! | reasoning blocks | left out: another provider's reasoning and its signature mean nothing here (listed as dropped) |
//! | tools, tool choice, `parallel_tool_calls` | function tools, `tool_choice`, `parallel_tool_calls` |
//! | `max_output_tokens`, `temperature`, `top_p`, `top_k`, `stop`, `seed`, penalties, response format, `reasoning_effort` | `max_tokens` (what every OpenAI-compatible server takes), the same names |
//! | the end user | `user` |
//! | stream | `stream: true` with `stream_options.include_usage` (promptd counts tokens) |
//!
//! A request of the OpenAI chat wire sends its extras as they came. From another wire, its
//! hints are left out and listed; any other extra, an opaque block of another wire and a
//! hosted tool are what an OpenAI-kind server cannot honour: a hosted tool is left out and
//! listed (`tools.<type>`), the others refused by name.

use serde_json::{json, Map, Value};

use crate::model::{
    Block, Error, ErrorKind, ImageSource, Message, Request, ResponseFormat, Role, ToolChoice, Wire,
};

/// How to encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodeOptions {
    pub stream: bool,
}

/// An encoded request: the body, and what was left out of it (for `x-promptd-dropped`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub body: Vec<u8>,
    pub dropped: Vec<String>,
}

fn refuse(param: impl Into<String>, why: &str) -> Error {
    let param = param.into();
    let mut error = Error::new(ErrorKind::InvalidRequest, format!("{param}: {why}"));
    error.param = Some(param);
    error
}

/// The OpenAI chat body of `req`; `hints` are the keys of its extras that do not change the
/// answer.
pub fn encode_request(
    req: &Request,
    hints: &[String],
    opts: &EncodeOptions,
) -> Result<Encoded, Error> {
    let same_wire = req.wire.sent_as() == Wire::OpenAiChat;
    let mut dropped: Vec<String> = Vec::new();
    let mut drop = |name: String| {
        if !dropped.contains(&name) {
            dropped.push(name);
        }
    };
    let mut messages = Vec::with_capacity(req.messages.len() + 1);
    if let Some(system) = req.system_text() {
        messages.push(json!({"role": "system", "content": system}));
    }
    for (i, m) in req.messages.iter().enumerate() {
        encode_message(m, i, same_wire, &mut messages, &mut drop)?;
    }
    // A tool of another type (`custom`, ...) that came in this wire goes back as it came.
    let own_hosted = same_wire && !req.hosted_tools.is_empty();
    let mut tools: Vec<Value> = req
        .tools
        .iter()
        .map(|t| {
            let mut function = Map::new();
            function.insert("name".into(), Value::from(t.name.as_str()));
            if let Some(d) = &t.description {
                function.insert("description".into(), Value::from(d.as_str()));
            }
            function.insert("parameters".into(), t.parameters.clone());
            if let Some(strict) = t.strict {
                function.insert("strict".into(), Value::Bool(strict));
            }
            json!({"type": "function", "function": function})
        })
        .collect();
    if own_hosted {
        tools.extend(req.hosted_tools.iter().cloned());
    }
    for tool in req.hosted_tools.iter().filter(|_| !same_wire) {
        let kind = tool
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("unknown");
        drop(format!("tools.{kind}"));
    }
    let tool_choice = req.tool_choice.as_ref().map(|choice| match choice {
        ToolChoice::Auto => json!("auto"),
        ToolChoice::None => json!("none"),
        ToolChoice::Required => json!("required"),
        ToolChoice::Tool(name) => json!({"type": "function", "function": {"name": name}}),
    });
    let mut extras = Vec::new();
    for (key, value) in &req.extras {
        if same_wire {
            if !Body::FIELDS.contains(&key.as_str()) {
                extras.push((key.as_str(), value));
            }
        } else if hints.contains(key) {
            drop(key.clone());
        } else {
            return Err(refuse(
                key.as_str(),
                "unrecognized request argument: it has no OpenAI chat translation",
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
    }
    let body = Body {
        req,
        messages,
        tools,
        tool_choice,
        extras,
        stream: opts.stream,
    };
    let body = serde_json::to_vec(&body)
        .map_err(|e| Error::new(ErrorKind::Upstream, format!("encoding the body: {e}")))?;
    Ok(Encoded { body, dropped })
}

/// The body, written straight from the request and its encoded parts.
struct Body<'a> {
    req: &'a Request,
    messages: Vec<Value>,
    tools: Vec<Value>,
    tool_choice: Option<Value>,
    /// The extras sent as they came (a same-wire request's).
    extras: Vec<(&'a str, &'a Value)>,
    stream: bool,
}

impl Body<'_> {
    /// The members the body writes itself: an extra of one of these names is not sent again.
    const FIELDS: &'static [&'static str] = &[
        "model",
        "messages",
        "tools",
        "tool_choice",
        "max_tokens",
        "temperature",
        "top_p",
        "top_k",
        "stop",
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "response_format",
        "reasoning_effort",
        "parallel_tool_calls",
        "user",
        "stream",
        "stream_options",
    ];
}

impl serde::Serialize for Body<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let (req, p) = (self.req, &self.req.params);
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("model", &req.model)?;
        map.serialize_entry("messages", &self.messages)?;
        if !self.tools.is_empty() {
            map.serialize_entry("tools", &self.tools)?;
        }
        if let Some(choice) = &self.tool_choice {
            map.serialize_entry("tool_choice", choice)?;
        }
        if let Some(max) = p.max_output_tokens {
            map.serialize_entry("max_tokens", &max)?;
        }
        for (key, value) in [("temperature", p.temperature), ("top_p", p.top_p)] {
            if let Some(value) = value {
                map.serialize_entry(key, &value)?;
            }
        }
        if let Some(k) = p.top_k {
            map.serialize_entry("top_k", &k)?;
        }
        if !p.stop.is_empty() {
            map.serialize_entry("stop", &p.stop)?;
        }
        if let Some(seed) = p.seed {
            map.serialize_entry("seed", &seed)?;
        }
        let penalties = [
            ("presence_penalty", p.presence_penalty),
            ("frequency_penalty", p.frequency_penalty),
        ];
        for (key, value) in penalties {
            if let Some(value) = value {
                map.serialize_entry(key, &value)?;
            }
        }
        if let Some(format) = &p.response_format {
            map.serialize_entry("response_format", &response_format(format))?;
        }
        if let Some(effort) = &p.reasoning_effort {
            map.serialize_entry("reasoning_effort", effort)?;
        }
        if let Some(parallel) = p.parallel_tool_calls {
            map.serialize_entry("parallel_tool_calls", &parallel)?;
        }
        if let Some(user) = &req.user {
            map.serialize_entry("user", user)?;
        }
        for (key, value) in &self.extras {
            map.serialize_entry(key, value)?;
        }
        if self.stream {
            map.serialize_entry("stream", &true)?;
            map.serialize_entry("stream_options", &json!({"include_usage": true}))?;
        }
        map.end()
    }
}

/// The OpenAI messages of one model message, appended to `out`.
fn encode_message(
    m: &Message,
    i: usize,
    same_wire: bool,
    out: &mut Vec<Value>,
    drop: &mut impl FnMut(String),
) -> Result<(), Error> {
    let at = |j: usize| format!("messages[{i}].content[{j}]");
    let mut texts: Vec<&str> = Vec::new();
    let mut parts: Vec<Value> = Vec::new();
    let mut calls: Vec<Value> = Vec::new();
    let mut images = false;
    for (j, block) in m.content.iter().enumerate() {
        match block {
            Block::Text(text) => {
                texts.push(text);
                parts.push(json!({"type": "text", "text": text}));
            }
            Block::Image { source, detail } => {
                images = true;
                let url = match source {
                    ImageSource::Url(url) => url.clone(),
                    ImageSource::Base64 { media_type, data } => {
                        format!("data:{media_type};base64,{data}")
                    }
                };
                let mut image = json!({"url": url});
                if let Some(detail) = detail {
                    image["detail"] = Value::from(detail.as_str());
                }
                parts.push(json!({"type": "image_url", "image_url": image}));
            }
            Block::ToolCall {
                id,
                name,
                arguments,
            } => calls.push(json!({"id": id, "type": "function",
                "function": {"name": name, "arguments": arguments}})),
            Block::ToolResult {
                call_id,
                content,
                is_error,
            } => {
                let text: String = content.iter().filter_map(Block::as_text).collect();
                let text = if *is_error {
                    format!("Error: {text}")
                } else {
                    text
                };
                out.push(json!({"role": "tool", "tool_call_id": call_id, "content": text}));
            }
            Block::Reasoning { .. } => drop("reasoning".into()),
            Block::Opaque { wire, .. } if !same_wire || *wire != Wire::OpenAiChat => {
                return Err(refuse(
                    at(j),
                    "this kind of content has no OpenAI chat translation",
                ))
            }
            Block::Opaque { json, .. } => parts.push(json.clone()),
        }
    }
    let role = match m.role {
        Role::System | Role::Developer => "system",
        Role::User | Role::Tool => "user",
        Role::Assistant => "assistant",
    };
    if role == "assistant" {
        if texts.is_empty() && calls.is_empty() {
            return Ok(());
        }
        let content = if texts.is_empty() {
            Value::Null
        } else {
            Value::from(texts.concat())
        };
        let mut message = json!({"role": role, "content": content});
        if !calls.is_empty() {
            message["tool_calls"] = Value::Array(calls);
        }
        out.push(message);
        return Ok(());
    }
    if parts.is_empty() {
        return Ok(()); // a turn of tool results only
    }
    let content = match texts.as_slice() {
        [only] if !images && parts.len() == 1 => Value::from(*only),
        _ if role == "system" => Value::from(texts.join("\n\n")),
        _ => Value::Array(parts),
    };
    let mut message = json!({"role": role, "content": content});
    if let Some(name) = &m.name {
        message["name"] = Value::from(name.as_str());
    }
    out.push(message);
    Ok(())
}

/// A response format as OpenAI's `response_format`.
pub fn response_format(format: &ResponseFormat) -> Value {
    match format {
        ResponseFormat::Text => json!({"type": "text"}),
        ResponseFormat::JsonObject => json!({"type": "json_object"}),
        ResponseFormat::JsonSchema {
            name,
            schema,
            strict,
        } => {
            let mut spec = json!({"name": name, "schema": schema});
            if let Some(strict) = strict {
                spec["strict"] = Value::Bool(*strict);
            }
            json!({"type": "json_schema", "json_schema": spec})
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::anthropic;

    fn encode(anthropic_body: Value, stream: bool) -> (Value, Vec<String>) {
        let d = anthropic::decode_request(anthropic_body.to_string().as_bytes()).expect("decodes");
        let e = encode_request(&d.request, &d.hints, &EncodeOptions { stream }).expect("encodes");
        (serde_json::from_slice(&e.body).expect("json"), e.dropped)
    }

    #[test]
    fn an_anthropic_tool_loop_is_an_openai_conversation() {
        let (body, dropped) = encode(
            json!({"model": "local-model", "max_tokens": 512, "stream": true,
            "system": [{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}],
            "thinking": {"type": "enabled", "budget_tokens": 1024},
            "metadata": {"user_id": "u"},
            "tools": [{"name": "weather", "description": "w", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "auto", "disable_parallel_tool_use": true},
            "stop_sequences": ["END"], "temperature": 0.5,
            "messages": [
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "look it up", "signature": "sig"},
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                    {"type": "text", "text": "And tomorrow?"}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_2", "is_error": true,
                     "content": [{"type": "text", "text": "timeout"}]}]}
            ]}),
            true,
        );
        assert_eq!(
            body["messages"],
            json!([
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": "Checking.", "tool_calls": [
                    {"id": "toolu_1", "type": "function",
                     "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
                {"role": "user", "content": "And tomorrow?"},
                {"role": "tool", "tool_call_id": "toolu_2", "content": "Error: timeout"},
            ])
        );
        assert_eq!(body["max_tokens"], 512);
        assert_eq!(body["stop"], json!(["END"]));
        assert_eq!(body["parallel_tool_calls"], false);
        assert_eq!(body["tool_choice"], "auto");
        assert_eq!(body["tools"][0]["function"]["name"], "weather");
        assert_eq!(body["stream_options"]["include_usage"], true);
        assert_eq!(body["user"], "u");
        assert!(body.get("thinking").is_none() && body.get("metadata").is_none());
        for hint in ["thinking", "reasoning"] {
            assert!(dropped.iter().any(|d| d == hint), "{hint} in {dropped:?}");
        }
    }

    #[test]
    fn images_and_refusals() {
        let (body, _) = encode(
            json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [
                {"type": "text", "text": "what is it?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}]}]}),
            false,
        );
        assert_eq!(
            body["messages"][0]["content"][1],
            json!({"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}})
        );
        assert!(body.get("stream").is_none());
        let d = anthropic::decode_request(
            json!({"model": "m", "max_tokens": 5, "some_new_field": 1,
                "messages": [{"role": "user", "content": "q"}]})
            .to_string()
            .as_bytes(),
        )
        .expect("decodes");
        let err =
            encode_request(&d.request, &d.hints, &EncodeOptions { stream: false }).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("some_new_field"));
    }
}
