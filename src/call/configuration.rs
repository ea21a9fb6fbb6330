//! A call's configuration in the words Parea's API gives it (`llm_configuration`): the model
//! and provider, plain text turns, model parameters, functions. The Parea door decodes it and
//! deployed prompts are written in it; both are turned into the internal model
//! ([`LlmConfiguration::into_model`], [`parea_turns`]), which the engine lays a request over a
//! deployment in and every provider kind encodes.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::{Block, Message as Turn, Request, Role as ModelRole, Wire};

/// `llm_configuration`: what to ask which model.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct LlmConfiguration {
    pub model: Option<String>,
    pub provider: Option<String>,
    pub model_params: Option<ModelParams>,
    pub messages: Option<Vec<Message>>,
    pub history: Option<Vec<Message>>,
    pub functions: Option<Vec<Value>>,
    pub function_call: Option<FunctionCallSpec>,
}

/// One chat turn.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Message {
    pub role: Role,
    #[serde(default)]
    pub content: Option<String>,
}

/// Chat roles as Parea names them; `example_*` turns are sent as user/assistant turns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    System,
    User,
    Assistant,
    Tool,
    ExampleUser,
    ExampleAssistant,
}

/// `model_params`, mapped to each provider's names by the provider layer.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct ModelParams {
    pub temp: Option<f64>,
    pub top_p: Option<f64>,
    pub frequency_penalty: Option<f64>,
    pub presence_penalty: Option<f64>,
    pub max_length: Option<u32>,
    pub response_format: Option<Value>,
    pub safe_prompt: Option<bool>,
}

impl ModelParams {
    /// The model's parameters these ask for. A `response_format` is the structure it names:
    /// `text` none, `json_schema` its schema, any other type a JSON object.
    pub fn to_model(&self) -> crate::model::Params {
        use crate::model::ResponseFormat;
        let response_format = self.response_format.as_ref().map(|format| {
            match format.get("type").and_then(Value::as_str) {
                Some("text") => ResponseFormat::Text,
                Some("json_schema") => {
                    let spec = format.get("json_schema");
                    let field = |name: &str| spec.and_then(|s| s.get(name));
                    ResponseFormat::JsonSchema {
                        name: field("name")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned(),
                        schema: field("schema").cloned().unwrap_or(Value::Null),
                        strict: field("strict").and_then(Value::as_bool),
                    }
                }
                _ => ResponseFormat::JsonObject,
            }
        });
        crate::model::Params {
            temperature: self.temp,
            top_p: self.top_p,
            max_output_tokens: self.max_length.map(u64::from),
            presence_penalty: self.presence_penalty,
            frequency_penalty: self.frequency_penalty,
            response_format,
            ..crate::model::Params::default()
        }
    }
}

impl LlmConfiguration {
    /// The request this configuration asks, as the model holds it (its wire
    /// [`Wire::Parea`](crate::model::Wire)), with the keys of its extras that are only hints:
    /// `model` empty when not given and no messages when there are none (a deployment may
    /// bring them); `provider` and `history` are the caller's to place (the engine places the
    /// history after a deployment's messages). Functions are OpenAI function tools (a
    /// function without a name is an error naming it), `safe_prompt` an extra.
    pub fn into_model(self) -> Result<(Request, Vec<String>), crate::model::Error> {
        let LlmConfiguration {
            model,
            provider: _,
            model_params,
            messages,
            history: _,
            functions,
            function_call,
        } = self;
        let mut request = Request::new(model.unwrap_or_default(), Wire::Parea);
        let mut hints = Vec::new();
        let params = model_params.unwrap_or_default();
        request.params = params.to_model();
        if let Some(safe) = params.safe_prompt {
            request
                .extras
                .insert("safe_prompt".into(), Value::Bool(safe));
            if !safe {
                hints.push("safe_prompt".into());
            }
        }
        parea_turns(messages.unwrap_or_default(), &mut request);
        if let Some(functions) = functions.filter(|f| !f.is_empty()) {
            request.tools = function_tools(functions)?;
        }
        request.tool_choice = function_call.as_ref().map(FunctionCallSpec::to_model);
        Ok((request, hints))
    }
}

/// Parea functions (`{name, description, parameters}`, or already in OpenAI's tool shape) as
/// the model's tools.
pub fn function_tools(
    functions: Vec<Value>,
) -> Result<Vec<crate::model::Tool>, crate::model::Error> {
    let tools = functions
        .into_iter()
        .map(|f| {
            if f.get("type").is_some() && f.get("function").is_some() {
                f
            } else {
                serde_json::json!({"type": "function", "function": f})
            }
        })
        .collect();
    let mut decoder = crate::wire::openai_chat::Decoder::default();
    decoder.field("tools".into(), Value::Array(tools))?;
    Ok(std::mem::take(&mut decoder.request().tools))
}

/// Parea's plain text turns into `request` as the model holds them: a leading `system` turn is
/// the system part, `example_*` turns are user and assistant turns, and a `tool` turn (Parea's
/// carries no call id to answer) is a tool message of its text. A turn without content says
/// nothing and is left out; an empty text is sent as it is (an empty prompt is a prompt).
pub fn parea_turns(messages: impl IntoIterator<Item = Message>, request: &mut Request) {
    for m in messages {
        let Some(text) = m.content else {
            continue;
        };
        if m.role == Role::System && request.messages.is_empty() {
            if !text.is_empty() {
                request.system.push(Block::Text(text));
            }
            continue;
        }
        request.messages.push(Turn::text(m.role.to_model(), text));
    }
}

impl Role {
    /// The model's role of a Parea turn.
    pub fn to_model(self) -> ModelRole {
        match self {
            Role::System => ModelRole::System,
            Role::User | Role::ExampleUser => ModelRole::User,
            Role::Tool => ModelRole::Tool,
            Role::Assistant | Role::ExampleAssistant => ModelRole::Assistant,
        }
    }
}

/// `function_call`: a mode (`"auto"`, `"none"`, a function name) or `{"name": ...}`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum FunctionCallSpec {
    Named { name: String },
    Mode(String),
}

impl FunctionCallSpec {
    /// The model's tool choice: a mode, or the function a name names.
    pub fn to_model(&self) -> crate::model::ToolChoice {
        use crate::model::ToolChoice;
        match self {
            FunctionCallSpec::Mode(m) if m == "auto" => ToolChoice::Auto,
            FunctionCallSpec::Mode(m) if m == "none" => ToolChoice::None,
            FunctionCallSpec::Mode(m) if m == "required" => ToolChoice::Required,
            FunctionCallSpec::Mode(name) | FunctionCallSpec::Named { name } => {
                ToolChoice::Tool(name.clone())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::wire::openai_chat::{encode_request, EncodeOptions};

    fn turn(role: Role, content: &str) -> Message {
        Message {
            role,
            content: Some(content.to_owned()),
        }
    }

    /// A Parea configuration as the model, then as an OpenAI-kind provider is sent it.
    fn sent(config: LlmConfiguration, stream: bool) -> Value {
        let (request, hints) = config.into_model().expect("a model request");
        let body = encode_request(&request, &hints, &EncodeOptions { stream })
            .expect("encodes")
            .body;
        serde_json::from_slice(&body).expect("json")
    }

    #[test]
    fn params_roles_and_functions_reach_openai_in_its_names() {
        let body = sent(
            LlmConfiguration {
                model: Some("gpt-4o-mini".into()),
                messages: Some(vec![
                    turn(Role::System, "s"),
                    turn(Role::ExampleUser, "eu"),
                    turn(Role::ExampleAssistant, "ea"),
                    Message {
                        role: Role::User,
                        content: None,
                    },
                    turn(Role::User, "u"),
                ]),
                model_params: Some(ModelParams {
                    temp: Some(0.5),
                    top_p: Some(0.9),
                    frequency_penalty: Some(0.1),
                    presence_penalty: Some(0.2),
                    max_length: Some(100),
                    response_format: Some(json!({"type": "json_object"})),
                    safe_prompt: Some(true),
                }),
                functions: Some(vec![json!({"name": "f", "parameters": {"type": "object"}})]),
                function_call: Some(FunctionCallSpec::Named { name: "f".into() }),
                ..LlmConfiguration::default()
            },
            true,
        );
        assert_eq!(body["model"], "gpt-4o-mini");
        assert_eq!(
            body["messages"],
            json!([
                {"role": "system", "content": "s"},
                {"role": "user", "content": "eu"},
                {"role": "assistant", "content": "ea"},
                {"role": "user", "content": "u"}
            ]),
            "a turn without content says nothing"
        );
        assert_eq!(body["temperature"], 0.5);
        assert_eq!(body["top_p"], 0.9);
        assert_eq!(body["frequency_penalty"], 0.1);
        assert_eq!(body["presence_penalty"], 0.2);
        assert_eq!(body["max_tokens"], 100);
        assert_eq!(body["response_format"], json!({"type": "json_object"}));
        assert_eq!(body["safe_prompt"], true, "Mistral's, sent as given");
        assert_eq!(
            body["tools"],
            json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}])
        );
        assert_eq!(
            body["tool_choice"],
            json!({"type": "function", "function": {"name": "f"}})
        );
        assert_eq!(body["stream"], true);
        assert_eq!(body["stream_options"], json!({"include_usage": true}));
    }

    #[test]
    fn absent_params_are_not_sent_and_modes_stay_strings() {
        let body = sent(
            LlmConfiguration {
                model: Some("m".into()),
                messages: Some(vec![turn(Role::User, "u")]),
                function_call: Some(FunctionCallSpec::Mode("auto".into())),
                ..LlmConfiguration::default()
            },
            false,
        );
        assert_eq!(body["tool_choice"], "auto");
        for key in [
            "temperature",
            "top_p",
            "max_tokens",
            "stream",
            "stream_options",
            "tools",
        ] {
            assert!(body.get(key).is_none(), "{key}");
        }
    }

    #[test]
    fn a_function_without_a_name_is_named_in_the_error() {
        let config = LlmConfiguration {
            functions: Some(vec![json!({"parameters": {}})]),
            ..LlmConfiguration::default()
        };
        let err = config.into_model().unwrap_err();
        assert_eq!(err.param.as_deref(), Some("tools[0].function.name"));
    }
}
