//! A call a `/v1` chat door (OpenAI chat, Anthropic's Messages, OpenAI's Responses) decoded
//! into the model as the engine's request: the model's request (with its hints), and the
//! client's body and its wire's headers for a provider of that wire (a same-wire call sends
//! them as they came).

use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue};

use crate::call::{ApiError, Call, ModelCall};
use crate::frontends::openai::Target;
use crate::model::Request;

/// A call a door decoded into the model whole, its model not yet resolved.
#[derive(Debug)]
pub struct DoorCall {
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

    /// The model the client asked for.
    pub fn model(&self) -> &str {
        &self.request.model
    }

    /// Whether the client asked for a stream.
    pub fn stream(&self) -> bool {
        self.request.stream
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
            request,
            hints,
            body,
            headers,
        }
    }
}

impl DoorCall {
    /// The engine's request for `target` ([`DoorCall::route`]: a deployment is refused),
    /// starting from `base` (what promptd's own headers said).
    pub fn into_request(self, target: Target, base: Call) -> Result<Call, ApiError> {
        let Routed { provider, call } = self.route(target)?;
        Ok(Call {
            provider: Some(provider),
            end_user_identifier: call.request.user.clone(),
            request: Some(Box::new(call)),
            ..base
        })
    }

    /// The engine's request for deployment `id`: the engine lays the request over the
    /// deployment's configuration (its model and provider, and its messages when the request
    /// brings none).
    pub fn into_deployment_request(self, id: String, base: Call) -> Call {
        let call = self.into_call(String::new());
        Call {
            deployment_id: Some(id),
            end_user_identifier: call.request.user.clone(),
            request: Some(Box::new(call)),
            ..base
        }
    }

    /// The engine's call of this one, asking for `model` (the provider's name, or none yet).
    fn into_call(self, model: String) -> ModelCall {
        let DoorCall {
            mut request,
            hints,
            body,
            headers,
        } = self;
        request.model = model;
        ModelCall {
            request,
            hints,
            sent: Some(body),
            headers,
        }
    }
}

/// A call routed to a provider: its name, and the call with the provider's model.
#[derive(Debug)]
pub struct Routed {
    pub provider: String,
    pub call: ModelCall,
}

impl DoorCall {
    /// The call for `target`, its model the provider's (the client's body is rewritten to match
    /// when it is sent, [`ModelCall::same_wire_body`]). A deployment is refused: deployed
    /// prompts are not served on the doors that route here.
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
        Ok(Routed {
            provider,
            call: self.into_call(model),
        })
    }
}
