//! A chat request as the model holds it: a system part, messages of typed blocks, tools, the
//! tool choice, typed parameters, and the extras of the wire it came in on.

use serde_json::{Map, Value};

/// Who wrote a message. `System` and `Developer` inside the messages are kept where they are
/// (Claude Code sends a system message among the others; the Responses API a developer one);
/// the request's leading instructions are [`Request::system`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    System,
    Developer,
    User,
    Assistant,
    /// The results of tool calls (OpenAI's `tool` role; Anthropic puts them in a user message).
    Tool,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::Developer => "developer",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

/// Where an image is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ImageSource {
    /// An `https:` or `data:` URL.
    Url(String),
    Base64 {
        media_type: String,
        data: String,
    },
}

/// One piece of a message's content.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    Text(String),
    Image {
        source: ImageSource,
        /// OpenAI's `detail` (`low`, `high`, `auto`).
        detail: Option<String>,
    },
    /// A call the model made; `arguments` is the JSON text of its arguments, as the model wrote
    /// it (never re-encoded: it is what the model's next turn sees).
    ToolCall {
        id: String,
        name: String,
        arguments: String,
    },
    /// What a tool returned to call `call_id`.
    ToolResult {
        call_id: String,
        content: Vec<Block>,
        is_error: bool,
    },
    /// The model's reasoning. `signature` (Anthropic) and `encrypted` (OpenAI Responses) are
    /// opaque and passed back byte for byte; `redacted` is Anthropic's redacted thinking data.
    Reasoning {
        text: String,
        signature: Option<String>,
        encrypted: Option<String>,
        redacted: Option<String>,
    },
    /// A block of one wire that the model has no type for (Anthropic's `document`,
    /// `search_result`, server tool use and its results), kept verbatim as that wire's JSON: a
    /// call to a provider of the same wire sends it as it came; a translation to another wire
    /// refuses it (it may be what the answer is about).
    Opaque {
        wire: Wire,
        json: Value,
    },
}

impl Block {
    /// The text of a text block.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Block::Text(text) => Some(text),
            _ => None,
        }
    }
}

/// One message of the conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub role: Role,
    pub content: Vec<Block>,
    /// A participant's name (OpenAI's `name`).
    pub name: Option<String>,
}

impl Message {
    /// A message of one text block.
    pub fn text(role: Role, text: impl Into<String>) -> Message {
        Message {
            role,
            content: vec![Block::Text(text.into())],
            name: None,
        }
    }

    /// The message's text blocks joined, the rest left out.
    pub fn joined_text(&self) -> String {
        self.content.iter().filter_map(Block::as_text).collect()
    }
}

/// A function the model may call.
#[derive(Debug, Clone, PartialEq)]
pub struct Tool {
    pub name: String,
    pub description: Option<String>,
    /// The JSON Schema of its arguments.
    pub parameters: Value,
    pub strict: Option<bool>,
}

/// Which tools the model may or must call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice {
    Auto,
    None,
    /// Some tool, the model picks (OpenAI `required`, Anthropic `any`).
    Required,
    /// This tool.
    Tool(String),
}

/// The shape the answer must have.
#[derive(Debug, Clone, PartialEq)]
pub enum ResponseFormat {
    Text,
    JsonObject,
    JsonSchema {
        name: String,
        schema: Value,
        strict: Option<bool>,
    },
}

/// The parameters that change what the model answers.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Params {
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<u64>,
    pub max_output_tokens: Option<u64>,
    pub stop: Vec<String>,
    pub seed: Option<i64>,
    pub presence_penalty: Option<f64>,
    pub frequency_penalty: Option<f64>,
    pub response_format: Option<ResponseFormat>,
    /// `low`, `medium`, `high`, ... as the wire named it.
    pub reasoning_effort: Option<String>,
    pub parallel_tool_calls: Option<bool>,
}

/// The wire a request came in on: what a same-wire pass-through compares with the provider's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Wire {
    Parea,
    OpenAiChat,
    AnthropicMessages,
    OpenAiResponses,
}

impl Wire {
    /// The provider wire a request of this one is sent in without translation: Parea's API is
    /// OpenAI's chat in Parea's words (its extras, `safe_prompt`, go as given), every other
    /// wire is its own.
    pub fn sent_as(self) -> Wire {
        match self {
            Wire::Parea => Wire::OpenAiChat,
            other => other,
        }
    }
}

/// A chat request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub model: String,
    /// Leading instructions (OpenAI's first system messages, Anthropic's `system`, Responses'
    /// `instructions`), as blocks.
    pub system: Vec<Block>,
    pub messages: Vec<Message>,
    pub tools: Vec<Tool>,
    /// Tools the provider runs itself (Anthropic's `web_search_20250305`, the Responses API's
    /// `web_search`), as the request's wire wrote them: a call to a provider of that wire sends
    /// them; a translation leaves them out and lists them as dropped (a hosted tool the
    /// upstream cannot run is a hint, DESIGN.md).
    pub hosted_tools: Vec<Value>,
    pub tool_choice: Option<ToolChoice>,
    pub params: Params,
    pub stream: bool,
    /// An opaque id of the end user the request is made for, for the provider's abuse
    /// monitoring (OpenAI's `user` or `safety_identifier`, Anthropic's `metadata.user_id`). It
    /// does not change what the answer means: no part of a cache key.
    pub user: Option<String>,
    /// The wire the request came in on.
    pub wire: Wire,
    /// The fields of that wire the model has no place for, kept verbatim (a same-wire
    /// pass-through sends them as they came; a translation lists them as dropped or refuses
    /// them).
    pub extras: Map<String, Value>,
}

impl Request {
    /// An empty request for `model` from `wire`.
    pub fn new(model: impl Into<String>, wire: Wire) -> Request {
        Request {
            model: model.into(),
            system: Vec::new(),
            messages: Vec::new(),
            tools: Vec::new(),
            hosted_tools: Vec::new(),
            tool_choice: None,
            params: Params::default(),
            stream: false,
            user: None,
            wire,
            extras: Map::new(),
        }
    }

    /// The system part's text, blocks joined by blank lines.
    pub fn system_text(&self) -> Option<String> {
        let parts: Vec<&str> = self.system.iter().filter_map(Block::as_text).collect();
        (!parts.is_empty()).then(|| parts.join("\n\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_text_and_joined_text() {
        let mut request = Request::new("m", Wire::OpenAiChat);
        assert_eq!(request.system_text(), None);
        request.system = vec![Block::Text("a".into()), Block::Text("b".into())];
        assert_eq!(request.system_text().as_deref(), Some("a\n\nb"));
        let message = Message {
            role: Role::User,
            content: vec![
                Block::Text("x".into()),
                Block::Image {
                    source: ImageSource::Url("https://e/i.png".into()),
                    detail: None,
                },
                Block::Text("y".into()),
            ],
            name: None,
        };
        assert_eq!(message.joined_text(), "xy");
        assert_eq!(Role::Developer.as_str(), "developer");
    }
}
