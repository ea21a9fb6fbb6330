//! A [`ChatRequest`] as the internal model ([`ChatRequest::to_model`]): what a provider of
//! another wire than the request's encodes in its own.
//!
//! A request from the OpenAI route keeps the client's messages and fields as sent (its
//! [`Passthrough`](super::Passthrough)): they are decoded by the OpenAI chat wire
//! ([`crate::wire::openai_chat`]) from the values the route kept, never re-serialised. A Parea
//! request's messages are plain text turns: a leading `system` turn is the system part,
//! `example_*` turns are user and assistant turns, and a `tool` turn (Parea's carries no call
//! id to answer) is a tool message of its text (Anthropic's wire makes it a user turn). Its
//! functions and function call are OpenAI tools and a tool choice. The cache key of a
//! request is of this model ([`crate::cache::cache_key`]).

use serde_json::Value;

use super::{openai, ChatRequest};
use crate::call::Role as PareaRole;
use crate::model::{Block, Error, Message, Request, Role, Wire};
use crate::wire::openai_chat::{Decoded, Decoder};

impl ChatRequest {
    /// The model's request of this call (not streamed: the caller says so), with the keys of
    /// its extras that are only hints (a translation leaves them out). A malformed field of
    /// what an OpenAI client sent is an invalid-request error naming its OpenAI path.
    pub fn to_model(&self) -> Result<Decoded, Error> {
        let mut decoder = Decoder::default();
        let p = &self.params;
        let numbers = [
            ("temperature", p.temp),
            ("top_p", p.top_p),
            ("frequency_penalty", p.frequency_penalty),
            ("presence_penalty", p.presence_penalty),
        ];
        for (key, value) in numbers {
            if let Some(value) = value {
                decoder.field(key.into(), Value::from(value))?;
            }
        }
        if let Some(max) = p.max_length {
            decoder.field("max_tokens".into(), Value::from(max))?;
        }
        if let Some(format) = &p.response_format {
            decoder.field("response_format".into(), format.clone())?;
        }
        if let Some(safe) = p.safe_prompt {
            decoder.field("safe_prompt".into(), Value::Bool(safe))?;
        }
        if !self.functions.is_empty() {
            let tools = self.functions.iter().map(openai::tool).collect();
            decoder.field("tools".into(), Value::Array(tools))?;
        }
        if let Some(spec) = &self.function_call {
            decoder.field("tool_choice".into(), openai::tool_choice(spec))?;
        }
        match &self.passthrough {
            Some(passthrough) => {
                let fields = passthrough.fields.iter().chain(&passthrough.unkeyed);
                for (key, value) in fields {
                    decoder.field(key.clone(), value.clone())?;
                }
                match &passthrough.messages {
                    Some(sent) => decoder.messages(sent)?,
                    None => parea_messages(&self.messages, decoder.request()),
                }
            }
            None => parea_messages(&self.messages, decoder.request()),
        }
        let request = decoder.request();
        self.model.clone_into(&mut request.model);
        request.wire = if self.passthrough.is_some() {
            Wire::OpenAiChat
        } else {
            Wire::Parea
        };
        decoder.finish()
    }
}

/// Parea's plain text turns into `request` (empty turns left out).
fn parea_messages(messages: &[crate::call::Message], request: &mut Request) {
    for m in messages {
        let text = m.content.as_deref().unwrap_or("");
        let role = match m.role {
            PareaRole::System if request.messages.is_empty() => {
                if !text.is_empty() {
                    request.system.push(Block::Text(text.to_owned()));
                }
                continue;
            }
            PareaRole::System => Role::System,
            PareaRole::User | PareaRole::ExampleUser => Role::User,
            PareaRole::Tool => Role::Tool,
            PareaRole::Assistant | PareaRole::ExampleAssistant => Role::Assistant,
        };
        if !text.is_empty() {
            request.messages.push(Message::text(role, text));
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::call::{FunctionCallSpec, Message as PareaMessage, ModelParams, Passthrough};
    use crate::model::{ToolChoice, Wire};

    fn parea(role: PareaRole, text: &str) -> PareaMessage {
        PareaMessage {
            role,
            content: Some(text.into()),
        }
    }

    fn chat(messages: Vec<PareaMessage>) -> ChatRequest {
        ChatRequest {
            model: "m".into(),
            messages,
            params: ModelParams::default(),
            functions: Vec::new(),
            function_call: None,
            passthrough: None,
            translated: None,
            modeled: None,
            forward: Vec::new(),
        }
    }

    #[test]
    fn a_parea_request_is_plain_turns_with_tools() {
        let mut c = chat(vec![
            parea(PareaRole::System, "be brief"),
            parea(PareaRole::ExampleUser, "q"),
            parea(PareaRole::ExampleAssistant, "a"),
            parea(PareaRole::Tool, "42"),
            parea(PareaRole::User, ""),
        ]);
        c.params.temp = Some(0.5);
        c.params.max_length = Some(9);
        c.functions = vec![json!({"name": "f", "parameters": {"type": "object"}})];
        c.function_call = Some(FunctionCallSpec::Named { name: "f".into() });
        let d = c.to_model().expect("a model request");
        let r = d.request;
        assert_eq!(r.wire, Wire::Parea);
        assert_eq!(r.model, "m");
        assert_eq!(r.system_text().as_deref(), Some("be brief"));
        let roles: Vec<Role> = r.messages.iter().map(|m| m.role).collect();
        assert_eq!(roles, [Role::User, Role::Assistant, Role::Tool]);
        assert_eq!(r.params.temperature, Some(0.5));
        assert_eq!(r.params.max_output_tokens, Some(9));
        assert_eq!(r.tools[0].name, "f");
        assert_eq!(r.tool_choice, Some(ToolChoice::Tool("f".into())));
        assert!(d.hints.is_empty());
    }

    #[test]
    fn an_openai_request_is_decoded_from_what_the_client_sent() {
        let mut c = chat(vec![parea(PareaRole::User, "described only")]);
        let mut fields = serde_json::Map::new();
        fields.insert("seed".into(), json!(7));
        fields.insert("logprobs".into(), json!(true));
        let mut unkeyed = serde_json::Map::new();
        unkeyed.insert("user".into(), json!("u1"));
        c.passthrough = Some(Passthrough {
            messages: Some(vec![
                json!({"role": "developer", "content": "d"}),
                json!({"role": "user", "content": [{"type": "text", "text": "hi"}]}),
            ]),
            fields,
            unkeyed,
        });
        let d = c.to_model().expect("a model request");
        assert_eq!(d.request.wire, Wire::OpenAiChat);
        assert_eq!(d.request.system_text().as_deref(), Some("d"));
        assert_eq!(d.request.messages[0].joined_text(), "hi");
        assert_eq!(d.request.params.seed, Some(7));
        assert!(d.request.extras.contains_key("logprobs"));
        assert_eq!(d.request.user.as_deref(), Some("u1"));
        assert!(d.hints.is_empty());
        c.passthrough = Some(Passthrough {
            messages: Some(vec![json!({"role": "user", "content": 5})]),
            ..Passthrough::default()
        });
        let err = c.to_model().unwrap_err();
        assert_eq!(err.param.as_deref(), Some("messages[0].content"));
    }
}
