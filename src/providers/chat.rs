//! A Parea [`ChatRequest`] as the internal model ([`ChatRequest::to_model`]): what a provider
//! of another wire encodes in its own. Its messages are plain text turns
//! ([`crate::call::configuration::parea_turns`]); its functions and function call are OpenAI
//! tools and a tool choice. The cache key of a request is of this model
//! ([`crate::cache::cache_key`]).

use serde_json::Value;

use super::{openai, ChatRequest};
use crate::model::{Error, Wire};
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
        crate::call::configuration::parea_turns(&self.messages, decoder.request());
        let request = decoder.request();
        self.model.clone_into(&mut request.model);
        request.wire = Wire::Parea;
        decoder.finish()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::call::{FunctionCallSpec, Message as PareaMessage, ModelParams, Role as PareaRole};
    use crate::model::{Role, ToolChoice, Wire};

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
}
