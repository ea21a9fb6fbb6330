//! A call a door decoded into the model whole (Anthropic's Messages, OpenAI's Responses) as
//! the engine's request: the model's request (with its hints), the client's body and its
//! wire's headers for a provider of that wire (a same-wire call sends them as they came), and
//! a Parea view of it for the log record.

use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue};

use crate::call::{
    ApiError, Call, FunctionCallSpec, LlmConfiguration, Message, ModelCall, ModelParams, Role,
};
use crate::frontends::openai::Target;
use crate::model::{Block, Request, Role as ModelRole, ToolChoice};

/// A call a door decoded into the model whole, its model not yet resolved.
#[derive(Debug)]
pub struct DoorCall {
    /// The model the client asked for.
    pub model: String,
    pub stream: bool,
    request: Request,
    hints: Vec<String>,
    body: Bytes,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl DoorCall {
    /// The model's request of the call.
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// The call of a body a door's wire decoded into `request` (its `hints` named), with the
    /// client's headers of that wire a same-wire call forwards.
    pub fn new(
        request: Request,
        hints: Vec<String>,
        body: Bytes,
        headers: Vec<(HeaderName, HeaderValue)>,
    ) -> DoorCall {
        DoorCall {
            model: request.model.clone(),
            stream: request.stream,
            request,
            hints,
            body,
            headers,
        }
    }
}

impl DoorCall {
    /// The engine's request for `target` ([`DoorCall::route`]), starting from `base`
    /// (what promptd's own headers said), with a Parea view of the call for the log record.
    pub fn into_request(self, target: Target, base: Call) -> Result<Call, ApiError> {
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
        Ok(Call {
            configuration: Some(configuration),
            end_user_identifier: request.user.clone(),
            modeled: Some(Box::new(ModelCall {
                request,
                hints,
                sent,
                headers,
            })),
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

impl DoorCall {
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
                         /v1/chat/completions, not on this route"
                    ),
                ))
            }
        };
        let DoorCall {
            mut request,
            hints,
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
