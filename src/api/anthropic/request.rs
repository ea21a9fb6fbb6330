//! A `POST /v1/messages` body as the engine's request: the model's request (with its hints),
//! the client's body and its `anthropic-*` headers for a provider of Anthropic's own wire, and
//! a Parea view of it for the log record.

use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue};

use crate::api::openai::Target;
use crate::api::{
    ApiError, CompletionRequest, FunctionCallSpec, LlmConfiguration, Message, ModelCall,
    ModelParams, Role,
};
use crate::model::{Block, Request, Role as ModelRole, ToolChoice};
use crate::wire::anthropic::{self as wire, Decoded};

/// A decoded Messages call, its model not yet resolved.
#[derive(Debug)]
pub struct MessagesCall {
    /// The model the client asked for.
    pub model: String,
    pub stream: bool,
    decoded: Decoded,
    body: Bytes,
    headers: Vec<(HeaderName, HeaderValue)>,
}

/// Decode a Messages body; `headers` are the client's `anthropic-*` headers a call to an
/// Anthropic-kind provider forwards. A wrong shape is a 400 naming the field's path.
pub fn decode_messages(
    body: Bytes,
    headers: Vec<(HeaderName, HeaderValue)>,
) -> Result<MessagesCall, ApiError> {
    let decoded = wire::decode_request(&body).map_err(|e| ApiError::InvalidRequest {
        field: e.param.clone().map(Into::into),
        message: e.message,
    })?;
    if decoded.request.model.is_empty() {
        return Err(ApiError::invalid("model", "model: Field required"));
    }
    if decoded.request.messages.is_empty() {
        return Err(ApiError::invalid(
            "messages",
            "messages: at least one message is required",
        ));
    }
    Ok(MessagesCall {
        model: decoded.request.model.clone(),
        stream: decoded.request.stream,
        decoded,
        body,
        headers,
    })
}

impl MessagesCall {
    /// The engine's request for `target` ([`MessagesCall::route`]), starting from `base`
    /// (what promptd's own headers said), with a Parea view of the call for the log record.
    pub fn into_request(
        self,
        target: Target,
        base: CompletionRequest,
    ) -> Result<CompletionRequest, ApiError> {
        let Routed {
            provider,
            call:
                ModelCall {
                    request,
                    hints,
                    sent,
                    headers,
                },
        } = self.route(target)?;
        let model = request.model.clone();
        let configuration = LlmConfiguration {
            model: Some(model),
            provider: Some(provider),
            model_params: Some(ModelParams {
                temp: request.params.temperature,
                top_p: request.params.top_p,
                max_length: request
                    .params
                    .max_output_tokens
                    .and_then(|n| u32::try_from(n).ok()),
                ..ModelParams::default()
            }),
            messages: Some(parea_messages(&request)),
            history: None,
            functions: (!request.tools.is_empty()).then(|| {
                request
                    .tools
                    .iter()
                    .map(|t| {
                        serde_json::json!({"name": t.name, "description": t.description,
                            "parameters": t.parameters})
                    })
                    .collect()
            }),
            function_call: request.tool_choice.as_ref().map(|c| match c {
                ToolChoice::Auto => FunctionCallSpec::Mode("auto".into()),
                ToolChoice::None => FunctionCallSpec::Mode("none".into()),
                ToolChoice::Required => FunctionCallSpec::Mode("required".into()),
                ToolChoice::Tool(name) => FunctionCallSpec::Named { name: name.clone() },
            }),
        };
        Ok(CompletionRequest {
            llm_configuration: Some(configuration),
            end_user_identifier: request.user.clone(),
            modeled: Some(ModelCall {
                request,
                hints,
                sent,
                headers,
            }),
            ..base
        })
    }
}

/// A call routed to a provider: its name, and the call with the provider's model.
#[derive(Debug)]
pub struct Routed {
    pub provider: String,
    pub call: ModelCall,
}

impl MessagesCall {
    /// The call for `target`, its model the provider's, and the client's body rewritten to
    /// match: `model` set, `stream` left out (each call asks for what it needs), every other
    /// member's bytes as sent. A deployment is refused: deployed prompts are not served here.
    pub fn route(self, target: Target) -> Result<Routed, ApiError> {
        let (provider, model) = match target {
            Target::Provider { provider, model } => (provider, model),
            Target::Deployment(id) => {
                return Err(ApiError::invalid(
                    "model",
                    format!(
                        "deployment/{id}: deployed prompts are served on the Parea route and \
                         /v1/chat/completions, not on /v1/messages"
                    ),
                ))
            }
        };
        let MessagesCall {
            decoded: Decoded { mut request, hints },
            body,
            headers,
            ..
        } = self;
        let model_json = serde_json::to_string(&model).unwrap_or_default();
        let sent = crate::wire::json::rewrite_members(&body, "stream", ("model", &model_json))
            .map_err(|e| ApiError::InvalidJson(e.to_string()))?;
        request.model = model;
        Ok(Routed {
            provider,
            call: ModelCall {
                request,
                hints,
                sent: Bytes::from(sent),
                headers,
            },
        })
    }
}

/// The conversation as Parea's text turns, for the log record: the system part, then each
/// message's text (a turn of tool calls or results only is an empty turn of its role).
fn parea_messages(request: &Request) -> Vec<Message> {
    let mut messages = Vec::with_capacity(request.messages.len() + 1);
    if let Some(system) = request.system_text() {
        messages.push(Message {
            role: Role::System,
            content: Some(system),
        });
    }
    messages.extend(request.messages.iter().map(|m| Message {
        role: match m.role {
            ModelRole::System | ModelRole::Developer => Role::System,
            ModelRole::User => Role::User,
            ModelRole::Assistant => Role::Assistant,
            ModelRole::Tool => Role::Tool,
        },
        content: Some(text_of(&m.content)),
    }));
    messages
}

/// A message's text: its text blocks, and the text of the tool results it carries.
fn text_of(blocks: &[Block]) -> String {
    let mut text = String::new();
    for block in blocks {
        match block {
            Block::Text(t) => text.push_str(t),
            Block::ToolResult { content, .. } => text.push_str(&text_of(content)),
            _ => {}
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(body: &str) -> MessagesCall {
        decode_messages(Bytes::from(body.to_owned()), Vec::new()).expect("a call")
    }

    #[test]
    fn the_body_goes_on_with_the_providers_model_and_a_parea_view_for_the_log() {
        let c = call(
            r#"{"model":"claude-x","max_tokens":64,"stream":true,"system":"be brief",
                "messages":[{"role":"user","content":[{"type":"text","text":"hi",
                "cache_control":{"type":"ephemeral"}}]}],"temperature":0.5}"#,
        );
        assert!(c.stream);
        assert_eq!(c.model, "claude-x");
        let target = Target::Provider {
            provider: "local".into(),
            model: "qwen".into(),
        };
        let req = c
            .into_request(target, CompletionRequest::default())
            .expect("a request");
        let config = req.llm_configuration.expect("a view");
        assert_eq!(config.provider.as_deref(), Some("local"));
        let messages = config.messages.expect("messages");
        assert_eq!(messages[0].content.as_deref(), Some("be brief"));
        assert_eq!(messages[1].content.as_deref(), Some("hi"));
        let params = config.model_params.expect("params");
        assert_eq!((params.temp, params.max_length), (Some(0.5), Some(64)));
        let call = req.modeled.expect("the model call");
        assert_eq!(call.request.model, "qwen");
        assert_eq!(call.hints, ["cache_control"]);
        let sent: serde_json::Value = serde_json::from_slice(&call.sent).expect("json");
        assert_eq!(sent["model"], "qwen");
        assert!(sent.get("stream").is_none());
        assert_eq!(
            sent["messages"][0]["content"][0]["cache_control"]["type"],
            "ephemeral"
        );
    }

    #[test]
    fn bad_bodies_name_the_field_and_deployments_are_refused() {
        let err = decode_messages(
            Bytes::from_static(b"{\"model\":\"m\",\"messages\":[]}"),
            Vec::new(),
        )
        .unwrap_err();
        assert!(matches!(err, ApiError::InvalidRequest { field: Some(f), .. } if f == "messages"));
        let err = decode_messages(
            Bytes::from_static(
                br#"{"model":"m","messages":[{"role":"user","content":[{"text":"x"}]}]}"#,
            ),
            Vec::new(),
        )
        .unwrap_err();
        assert!(
            matches!(&err, ApiError::InvalidRequest { field: Some(f), .. } if f.starts_with("messages[0].content[0]")),
            "{err:?}"
        );
        let c = call(
            r#"{"model":"deployment/greet","max_tokens":5,"messages":[{"role":"user","content":"x"}]}"#,
        );
        let err = c
            .into_request(
                Target::Deployment("greet".into()),
                CompletionRequest::default(),
            )
            .unwrap_err();
        assert!(err.to_string().contains("not on /v1/messages"));
    }
}
