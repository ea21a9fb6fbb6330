//! The body of `POST /v1/chat/completions` (and promptd's `x-promptd-*` request headers) as the
//! engine's [`Call`]: the body decoded into the model by the OpenAI chat wire
//! ([`crate::wire::openai_chat`], which keeps what the model has no place for as the wire's
//! extras), and the body itself, which a provider of this wire is sent as it came.
//!
//! Read here, not forwarded: `stream`, `stream_options` (promptd asks upstreams for usage
//! itself), `promptd` (`{"inputs": {...}}` for templates and deployments). Forwarded but not in
//! the cache key: `user`, `metadata` (the wire's hints). Everything else is forwarded as sent
//! and is in the key; a plain request has the same key as the same Parea request.

use std::borrow::Cow;

use bytes::Bytes;
use serde_json::{Map, Value};

use super::Target;
use crate::call::{ApiError, Call};
use crate::frontends::door_call::DoorCall;
use crate::wire::openai_chat::{Decoded, Decoder};

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
    /// `stream_options.include_usage`: end the stream with a usage chunk.
    pub include_usage: bool,
    /// The request as the model, and the client's body.
    call: DoorCall,
    /// What promptd's headers and the body's `promptd` member said.
    base: Call,
}

impl ChatCall {
    /// The model the client asked for.
    pub fn model(&self) -> &str {
        self.call.model()
    }

    /// Whether the client asked for a stream.
    pub fn stream(&self) -> bool {
        self.call.stream()
    }

    /// The engine's request for `target`: a provider's model, or a deployment the request is
    /// laid over.
    pub fn into_request(self, target: Target) -> Result<Call, ApiError> {
        match target {
            Target::Deployment(id) => Ok(self.call.into_deployment_request(id, self.base)),
            target @ Target::Provider { .. } => self.call.into_request(target, self.base),
        }
    }
}

pub(super) fn bad(param: impl Into<Cow<'static, str>>, message: impl Into<String>) -> ApiError {
    ApiError::InvalidRequest {
        field: Some(param.into()),
        message: message.into(),
    }
}

/// The start of every `/v1` body: a JSON object with a non-empty string `model`; the model and
/// the rest of the object.
pub(super) fn object_with_model(body: &[u8]) -> Result<(String, Map<String, Value>), ApiError> {
    let value: Value = crate::wire::json::from_bytes(body)
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

/// Decode a chat completion body (into the model, by the OpenAI chat wire) and promptd's
/// headers.
pub fn decode_chat(body: Bytes, headers: &RequestHeaders<'_>) -> Result<ChatCall, ApiError> {
    let (model, mut object) = object_with_model(&body)?;
    let is_deployment = model.starts_with(super::models::DEPLOYMENT_PREFIX);
    match object.get("messages") {
        Some(Value::Array(m)) if m.is_empty() && !is_deployment => {
            return Err(bad(
                "messages",
                "messages must hold at least one message (`[]` is too short)",
            ))
        }
        Some(Value::Array(_)) => {}
        None | Some(Value::Null) if is_deployment => {}
        None | Some(Value::Null) => {
            return Err(bad("messages", "you must provide a messages parameter"))
        }
        Some(_) => return Err(bad("messages", "messages must be an array")),
    }
    if object
        .get("stream")
        .is_some_and(|s| !s.is_null() && !s.is_boolean())
    {
        return Err(bad("stream", "stream must be a boolean"));
    }
    let include_usage = match object.get("stream_options") {
        None | Some(Value::Null) => false,
        Some(Value::Object(o)) => o.get("include_usage").and_then(Value::as_bool) == Some(true),
        Some(_) => return Err(bad("stream_options", "stream_options must be an object")),
    };
    let inputs = read_inputs(&object, headers)?;
    object.remove("promptd");
    let mut decoder = Decoder::default();
    for (key, value) in object {
        decoder.field(key, value).map_err(invalid)?;
    }
    let Decoded { mut request, hints } = if is_deployment {
        decoder.finish_any()
    } else {
        decoder.finish().map_err(invalid)?
    };
    request.model = model;
    Ok(ChatCall {
        include_usage,
        call: DoorCall::new(request, hints, body, Vec::new()),
        base: Call {
            inputs,
            ..headers.request()?
        },
    })
}

/// A field the wire could not read, named by its path.
fn invalid(e: crate::model::Error) -> ApiError {
    let message = match &e.param {
        Some(param) => format!("{param}: {}", e.message),
        None => e.message,
    };
    ApiError::InvalidRequest {
        field: e.param.map(Into::into),
        message,
    }
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
    use crate::model::ToolChoice;
    use serde_json::json;

    fn decode(body: Value) -> Result<ChatCall, ApiError> {
        decode_chat(Bytes::from(body.to_string()), &RequestHeaders::default())
    }

    fn param_of(body: &'static [u8]) -> Option<String> {
        match decode_chat(Bytes::from_static(body), &RequestHeaders::default()) {
            Err(ApiError::InvalidRequest { field, .. }) => field.map(|f| f.into_owned()),
            Err(ApiError::InvalidJson(_)) => Some("<json>".into()),
            other => panic!("{other:?}"),
        }
    }

    fn provider(model: &str) -> Target {
        Target::Provider {
            provider: "openai".into(),
            model: model.into(),
        }
    }

    #[test]
    fn a_request_is_the_model_and_its_body_is_sent_as_it_came() {
        let body = json!({
            "model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}],
            "temperature": 0.2, "max_tokens": 5, "stream": true, "seed": 3,
            "stream_options": {"include_usage": true}, "user": "u1",
            "tools": [{"type": "function", "function": {"name": "f"}}],
            "tool_choice": {"type": "function", "function": {"name": "f"}},
            "promptd": {"inputs": {"x": 1}}
        });
        let call = decode(body).expect("decodes");
        assert!(call.stream() && call.include_usage);
        assert_eq!(
            call.base.inputs,
            Some(json!({"x": 1}).as_object().cloned().unwrap_or_default())
        );
        let request = call
            .into_request(provider("upstream-model"))
            .expect("a call");
        assert_eq!(request.provider.as_deref(), Some("openai"));
        assert_eq!(request.end_user_identifier.as_deref(), Some("u1"));
        let call = request.request.expect("the model request");
        let r = &call.request;
        assert_eq!(r.model, "upstream-model");
        assert_eq!(r.params.temperature, Some(0.2));
        assert_eq!(r.params.max_output_tokens, Some(5));
        assert_eq!(r.params.seed, Some(3));
        assert_eq!(r.tools[0].name, "f");
        assert_eq!(r.tool_choice, Some(ToolChoice::Tool("f".into())));
        assert!(!r.extras.contains_key("promptd"), "promptd's own member");
        let sent: Value =
            serde_json::from_slice(&call.same_wire_body().expect("kept").expect("json"))
                .expect("json");
        assert_eq!(sent["model"], "upstream-model");
        assert_eq!(sent["seed"], 3);
        assert_eq!(sent["user"], "u1");
        for read in ["stream", "stream_options", "promptd"] {
            assert!(sent.get(read).is_none(), "{read} is promptd's to set");
        }
    }

    #[test]
    fn a_deployment_may_bring_the_messages() {
        let call = decode(json!({"model": "deployment/greet"})).expect("decodes");
        let request = call
            .into_request(Target::Deployment("greet".into()))
            .expect("a call");
        assert_eq!(request.deployment_id.as_deref(), Some("greet"));
        let call = request.request.expect("the model request");
        assert!(call.request.model.is_empty() && call.request.messages.is_empty());
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
            param_of(
                br#"{"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}"#
            ),
            Some("temperature".into())
        );
    }
}
