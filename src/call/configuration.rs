//! A call's configuration in the words Parea's API gives it (`llm_configuration`): the model
//! and provider, plain text turns, model parameters, functions. Deployed prompts are written in
//! it, the Parea door decodes it, and the log record reports the resolved call in it; the
//! engine lays a request's configuration over a deployment's and hands the result to the
//! provider layer (whose translations go through the internal model, [`ModelParams::to_model`]).

use serde::{Deserialize, Serialize};
use serde_json::Value;

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

/// Parea's plain text turns into `request` as the model holds them (empty turns left out): a
/// leading `system` turn is the system part, `example_*` turns are user and assistant turns,
/// and a `tool` turn (Parea's carries no call id to answer) is a tool message of its text.
pub fn parea_turns(messages: &[Message], request: &mut crate::model::Request) {
    use crate::model::{Block, Message as Turn, Role as ModelRole};
    for m in messages {
        let text = m.content.as_deref().unwrap_or("");
        let role = match m.role {
            Role::System if request.messages.is_empty() => {
                if !text.is_empty() {
                    request.system.push(Block::Text(text.to_owned()));
                }
                continue;
            }
            Role::System => ModelRole::System,
            Role::User | Role::ExampleUser => ModelRole::User,
            Role::Tool => ModelRole::Tool,
            Role::Assistant | Role::ExampleAssistant => ModelRole::Assistant,
        };
        if !text.is_empty() {
            request.messages.push(Turn::text(role, text));
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
