//! The body of `POST /v1/chat/completions` (and promptd's `x-promptd-*` request headers) as the
//! engine's [`Call`] plus a [`Passthrough`] of what promptd forwards unread.
//!
//! Read and mapped: `model`, `messages` (plain text turns become promptd's messages, so a
//! simple request has the same cache key as the same Parea request), `temperature`, `top_p`,
//! `frequency_penalty`, `presence_penalty`, `max_tokens`, `response_format`, function `tools`
//! and `tool_choice`. Read, not forwarded: `stream`, `stream_options` (promptd asks upstreams
//! for usage itself), `promptd` (`{"inputs": {...}}` for deployments). Forwarded but not in the
//! cache key: `user`, `metadata`. Everything else is forwarded as sent and is in the key.

use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::call::{
    ApiError, Call, FunctionCallSpec, LlmConfiguration, Message, ModelParams, Passthrough, Role,
};

use super::Target;

/// promptd's request headers on the `/v1` routes, as sent.
#[derive(Debug, Clone, Default)]
pub struct RequestHeaders<'a> {
    /// `x-promptd-cache`: `bypass` or `refresh`.
    pub cache: Option<&'a str>,
    pub trace_id: Option<&'a str>,
    pub parent_trace_id: Option<&'a str>,
    pub root_trace_id: Option<&'a str>,
    pub project: Option<&'a str>,
    /// `x-promptd-tags`: a JSON array of strings.
    pub tags: Option<&'a str>,
    /// `x-promptd-metadata`: a JSON object.
    pub metadata: Option<&'a str>,
    /// `x-promptd-inputs`: a JSON object of deployment inputs.
    pub inputs: Option<&'a str>,
}

impl RequestHeaders<'_> {
    /// A request of what these headers say (cache mode, trace ids, project, tags, metadata):
    /// what every `/v1` door's request starts from.
    pub fn request(&self) -> Result<Call, ApiError> {
        Ok(Call {
            cache: match self.cache {
                None => None,
                Some("bypass") => Some(false),
                Some("refresh") => Some(true),
                Some(other) => {
                    return Err(bad(
                        "x-promptd-cache",
                        format!("x-promptd-cache is `bypass` or `refresh`, not `{other}`"),
                    ))
                }
            },
            cache_refresh: self.cache == Some("refresh"),
            trace_id: self.trace_id.map(str::to_owned),
            parent_trace_id: self.parent_trace_id.map(str::to_owned),
            root_trace_id: self.root_trace_id.map(str::to_owned),
            project_name: self.project.map(str::to_owned),
            tags: self
                .tags
                .map(|t| {
                    serde_json::from_str(t).map_err(|_| {
                        bad(
                            "x-promptd-tags",
                            "x-promptd-tags must be a JSON array of strings",
                        )
                    })
                })
                .transpose()?,
            metadata: Some(read_metadata(self.metadata)?),
            ..Call::default()
        })
    }
}

/// A decoded chat completion call, its model not yet resolved.
#[derive(Debug)]
pub struct ChatCall {
    pub model: String,
    pub stream: bool,
    /// `stream_options.include_usage`: end the stream with a usage chunk.
    pub include_usage: bool,
    /// Everything but the provider and model.
    pub request: Call,
}

impl ChatCall {
    /// The Parea request for `target`.
    pub fn into_request(self, target: Target) -> Call {
        let mut request = self.request;
        let config = request.configuration.get_or_insert_with(Default::default);
        match target {
            Target::Provider { provider, model } => {
                config.provider = Some(provider);
                config.model = Some(model);
            }
            Target::Deployment(id) => {
                // The deployment's messages unless the request brings some.
                if config.messages.as_ref().is_some_and(Vec::is_empty) {
                    config.messages = None;
                }
                request.deployment_id = Some(id);
            }
        }
        request
    }
}

/// Keys read here (and so not forwarded as unknown ones).
const READ: &[&str] = &[
    "model",
    "messages",
    "temperature",
    "top_p",
    "frequency_penalty",
    "presence_penalty",
    "max_tokens",
    "response_format",
    "tools",
    "tool_choice",
    "stream",
    "stream_options",
    "promptd",
];

/// Forwarded, but they do not change the answer: not in the cache key.
const UNKEYED: &[&str] = &["user", "metadata"];

pub(super) fn bad(param: impl Into<Cow<'static, str>>, message: impl Into<String>) -> ApiError {
    ApiError::InvalidRequest {
        field: Some(param.into()),
        message: message.into(),
    }
}

/// The start of every `/v1` body: a JSON object with a non-empty string `model`; the model and
/// the rest of the object.
pub(super) fn object_with_model(body: &[u8]) -> Result<(String, Map<String, Value>), ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::InvalidJson(format!("{e} (send the request as a JSON object)")))?;
    let Value::Object(mut body) = value else {
        return Err(ApiError::InvalidRequest {
            field: None,
            message: "the request body must be a JSON object".into(),
        });
    };
    let model = match body.remove("model") {
        Some(Value::String(m)) if !m.is_empty() => m,
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err(bad("model", "you must provide a model parameter"))
        }
        Some(_) => return Err(bad("model", "model must be a string")),
    };
    Ok((model, body))
}

/// Decode a chat completion body and promptd's headers.
pub fn decode_chat(body: &[u8], headers: &RequestHeaders<'_>) -> Result<ChatCall, ApiError> {
    let (model, mut body) = object_with_model(body)?;
    let is_deployment = model.starts_with(super::models::DEPLOYMENT_PREFIX);
    let sent = match body.remove("messages") {
        Some(Value::Array(m)) => m,
        None | Some(Value::Null) if is_deployment => Vec::new(),
        None | Some(Value::Null) => {
            return Err(bad("messages", "you must provide a messages parameter"))
        }
        Some(_) => return Err(bad("messages", "messages must be an array")),
    };
    if sent.is_empty() && !is_deployment {
        return Err(bad(
            "messages",
            "messages must hold at least one message (`[]` is too short)",
        ));
    }
    let (messages, all_plain) = read_messages(&sent)?;
    let params = ModelParams {
        temp: number(&body, "temperature")?,
        top_p: number(&body, "top_p")?,
        frequency_penalty: number(&body, "frequency_penalty")?,
        presence_penalty: number(&body, "presence_penalty")?,
        max_length: match body.get("max_tokens") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| bad("max_tokens", "max_tokens must be a positive integer"))?,
            ),
        },
        response_format: body
            .get("response_format")
            .filter(|v| !v.is_null())
            .cloned(),
        safe_prompt: None,
    };
    let stream = match body.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(bad("stream", "stream must be a boolean")),
    };
    let include_usage = match body.get("stream_options") {
        None | Some(Value::Null) => false,
        Some(Value::Object(o)) => o.get("include_usage").and_then(Value::as_bool) == Some(true),
        Some(_) => return Err(bad("stream_options", "stream_options must be an object")),
    };
    let mut fields = Map::new();
    let (functions, function_call) = read_tools(&body, &mut fields)?;
    let inputs = read_inputs(&body, headers)?;
    let user = body.get("user").and_then(Value::as_str).map(str::to_owned);
    let mut unkeyed = Map::new();
    for (key, value) in body {
        if UNKEYED.contains(&key.as_str()) {
            unkeyed.insert(key, value);
        } else if !READ.contains(&key.as_str()) {
            fields.insert(key, value);
        }
    }
    let passthrough = Passthrough {
        messages: (!all_plain).then_some(sent),
        fields,
        unkeyed,
    };
    let request = Call {
        configuration: Some(LlmConfiguration {
            model_params: Some(params),
            messages: Some(messages),
            functions,
            function_call,
            ..LlmConfiguration::default()
        }),
        inputs,
        end_user_identifier: user,
        passthrough: Some(passthrough),
        ..headers.request()?
    };
    Ok(ChatCall {
        model,
        stream,
        include_usage,
        request,
    })
}

/// promptd's messages of the turns sent, and whether every one is a plain text turn (then the
/// turns need not be forwarded as sent: promptd's are the same).
fn read_messages(sent: &[Value]) -> Result<(Vec<Message>, bool), ApiError> {
    let mut all_plain = true;
    let mut messages = Vec::with_capacity(sent.len());
    for (i, m) in sent.iter().enumerate() {
        let Some(m) = m.as_object() else {
            return Err(bad(format!("messages[{i}]"), "a message must be an object"));
        };
        let role_name = m.get("role").and_then(Value::as_str).unwrap_or("");
        let role = match role_name {
            "system" | "developer" => Role::System,
            "user" => Role::User,
            "assistant" => Role::Assistant,
            "tool" | "function" => Role::Tool,
            "" => return Err(bad(format!("messages[{i}].role"), "a message needs a role")),
            other => {
                return Err(bad(
                    format!("messages[{i}].role"),
                    format!(
                        "`{other}` is not a role: one of system, developer, user, assistant, \
                         tool, function"
                    ),
                ))
            }
        };
        let content = match m.get("content") {
            Some(Value::String(s)) => Some(s.clone()),
            None | Some(Value::Null) => None,
            Some(Value::Array(parts)) => Some(
                parts
                    .iter()
                    .filter_map(|p| p.get("text").and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join(""),
            ),
            Some(_) => {
                return Err(bad(
                    format!("messages[{i}].content"),
                    "content must be a string, an array of parts, or null",
                ))
            }
        };
        let plain = matches!(role_name, "system" | "user" | "assistant")
            && m.get("content").is_some_and(Value::is_string)
            && m.keys().all(|k| k == "role" || k == "content");
        all_plain &= plain;
        messages.push(Message { role, content });
    }
    Ok((messages, all_plain))
}

fn number(body: &Map<String, Value>, key: &'static str) -> Result<Option<f64>, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| bad(key, format!("{key} must be a number"))),
    }
}

/// `tools` as promptd's functions when each is a plain function tool (the same functions a
/// Parea request gives), else forwarded as sent; `tool_choice` likewise.
fn read_tools(
    body: &Map<String, Value>,
    fields: &mut Map<String, Value>,
) -> Result<(Option<Vec<Value>>, Option<FunctionCallSpec>), ApiError> {
    let functions = match body.get("tools") {
        None | Some(Value::Null) => None,
        Some(Value::Array(tools)) => {
            let plain: Option<Vec<Value>> = tools.iter().map(plain_function).collect();
            match plain {
                Some(functions) if !functions.is_empty() => Some(functions),
                _ => {
                    fields.insert("tools".into(), Value::Array(tools.clone()));
                    None
                }
            }
        }
        Some(_) => return Err(bad("tools", "tools must be an array")),
    };
    let function_call = match body.get("tool_choice") {
        None | Some(Value::Null) => None,
        Some(Value::String(mode)) => Some(FunctionCallSpec::Mode(mode.clone())),
        Some(choice) => match named_choice(choice) {
            Some(name) if functions.is_some() => Some(FunctionCallSpec::Named { name }),
            _ => {
                fields.insert("tool_choice".into(), choice.clone());
                None
            }
        },
    };
    Ok((functions, function_call))
}

/// The function of `{"type": "function", "function": {...}}` and nothing else.
fn plain_function(tool: &Value) -> Option<Value> {
    let tool = tool.as_object()?;
    (tool.len() == 2 && tool.get("type")?.as_str()? == "function")
        .then(|| tool.get("function").filter(|f| f.is_object()).cloned())
        .flatten()
}

/// The name of `{"type": "function", "function": {"name": N}}` and nothing else.
fn named_choice(choice: &Value) -> Option<String> {
    let choice = choice.as_object()?;
    let function = choice.get("function")?.as_object()?;
    (choice.len() == 2 && choice.get("type")?.as_str()? == "function" && function.len() == 1)
        .then(|| function.get("name")?.as_str().map(str::to_owned))
        .flatten()
}

/// Deployment inputs: `promptd.inputs` of the body, with `x-promptd-inputs` laid over them.
fn read_inputs(
    body: &Map<String, Value>,
    headers: &RequestHeaders<'_>,
) -> Result<Option<Map<String, Value>>, ApiError> {
    let mut inputs = match body.get("promptd") {
        None | Some(Value::Null) => None,
        Some(Value::Object(p)) => match p.get("inputs") {
            None | Some(Value::Null) => None,
            Some(Value::Object(i)) => Some(i.clone()),
            Some(_) => return Err(bad("promptd.inputs", "promptd.inputs must be an object")),
        },
        Some(_) => {
            return Err(bad(
                "promptd",
                "promptd must be an object like {\"inputs\": {}}",
            ))
        }
    };
    if let Some(text) = headers.inputs {
        let Ok(Value::Object(from_header)) = serde_json::from_str::<Value>(text) else {
            return Err(bad(
                "x-promptd-inputs",
                "x-promptd-inputs must be a JSON object",
            ));
        };
        inputs.get_or_insert_with(Map::new).extend(from_header);
    }
    Ok(inputs)
}

/// The log's metadata: `x-promptd-metadata` (the engine notes the client and route).
fn read_metadata(header: Option<&str>) -> Result<Map<String, Value>, ApiError> {
    match header {
        None => Ok(Map::new()),
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(m)) => Ok(m),
            _ => Err(bad(
                "x-promptd-metadata",
                "x-promptd-metadata must be a JSON object",
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn decode(body: Value) -> Result<ChatCall, ApiError> {
        decode_chat(body.to_string().as_bytes(), &RequestHeaders::default())
    }

    fn param_of(body: &[u8]) -> Option<String> {
        match decode_chat(body, &RequestHeaders::default()) {
            Err(ApiError::InvalidRequest { field, .. }) => field.map(|f| f.into_owned()),
            Err(ApiError::InvalidJson(_)) => Some("<json>".into()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn plain_requests_map_to_promptd_fields_and_forward_nothing_keyed() {
        let call = decode(json!({
            "model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}],
            "temperature": 0.2, "max_tokens": 5, "stream": true,
            "stream_options": {"include_usage": true}, "user": "u1",
            "tools": [{"type": "function", "function": {"name": "f"}}],
            "tool_choice": {"type": "function", "function": {"name": "f"}}
        }))
        .expect("decodes");
        assert!(call.stream && call.include_usage);
        let config = call.request.configuration.as_ref().expect("config");
        assert_eq!(config.model_params.as_ref().and_then(|p| p.temp), Some(0.2));
        assert_eq!(config.functions, Some(vec![json!({"name": "f"})]));
        assert_eq!(
            config.function_call,
            Some(FunctionCallSpec::Named { name: "f".into() })
        );
        let p = call.request.passthrough.as_ref().expect("passthrough");
        assert!(p.messages.is_none() && p.fields.is_empty(), "{p:?}");
        assert_eq!(p.unkeyed.get("user"), Some(&json!("u1")));
        assert_eq!(call.request.end_user_identifier.as_deref(), Some("u1"));
    }

    #[test]
    fn unknown_fields_and_rich_messages_are_forwarded() {
        let call = decode(json!({
            "model": "m", "seed": 3, "logprobs": true,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "a"}]}]
        }))
        .expect("decodes");
        let p = call.request.passthrough.as_ref().expect("passthrough");
        assert_eq!(p.fields.get("seed"), Some(&json!(3)));
        assert!(p.messages.is_some());
        let messages = call.request.configuration.and_then(|c| c.messages);
        assert_eq!(
            messages.map(|m| m[0].content.clone()),
            Some(Some("a".into()))
        );
    }

    #[test]
    fn bad_input_names_the_parameter() {
        assert_eq!(param_of(b"{nope"), Some("<json>".into()));
        assert_eq!(param_of(br#"{"messages": []}"#), Some("model".into()));
        assert_eq!(param_of(br#"{"model": "m"}"#), Some("messages".into()));
        assert_eq!(
            param_of(br#"{"model": "m", "messages": []}"#),
            Some("messages".into())
        );
        assert_eq!(
            param_of(br#"{"model": "m", "messages": [{"role": "wizard", "content": "x"}]}"#),
            Some("messages[0].role".into())
        );
        assert_eq!(
            param_of(br#"{"model": "m", "messages": [{"role": "user"}], "temperature": "hot"}"#),
            Some("temperature".into())
        );
    }
}
