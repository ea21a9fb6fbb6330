//! A completion record's `configuration` for a request a door decoded into the model: the
//! model's request written in Parea's words, as the call the provider got (deployment laid
//! under, templates rendered). Written straight from the model: no Parea copy of the
//! conversation is built.
//!
//! | the model | the record |
//! |---|---|
//! | temperature, top_p, penalties, max output tokens, response format | `model_params` `temp`, `top_p`, `frequency_penalty`, `presence_penalty`, `max_length`, `response_format` (OpenAI's shape) |
//! | the system part | a leading `system` turn of its texts, joined by blank lines |
//! | each message | a turn of its role (`developer` is `system`) and its text: its text blocks and the texts of the tool results it carries |
//! | tools | `functions` (`name`, `description`, `parameters`) |
//! | tool choice | `function_call`: `auto`, `none`, `required`, or `{"name": ...}` |

use std::borrow::Cow;

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::Value;

use crate::model::{Block, Params, Request, Role, ToolChoice};

/// `model_params` of `params`, the set ones only.
pub(super) struct ParamsView<'a>(pub &'a Params);

impl Serialize for ParamsView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let p = self.0;
        let mut map = s.serialize_map(None)?;
        for (key, value) in [
            ("temp", p.temperature),
            ("top_p", p.top_p),
            ("frequency_penalty", p.frequency_penalty),
            ("presence_penalty", p.presence_penalty),
        ] {
            if let Some(value) = value {
                map.serialize_entry(key, &value)?;
            }
        }
        if let Some(max) = p.max_output_tokens {
            map.serialize_entry("max_length", &max)?;
        }
        if let Some(format) = &p.response_format {
            map.serialize_entry(
                "response_format",
                &crate::wire::openai_chat::response_format(format),
            )?;
        }
        map.end()
    }
}

/// The conversation as Parea's turns.
pub(super) struct TurnsView<'a>(pub &'a Request);

impl Serialize for TurnsView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Turn<'a> {
            role: &'static str,
            content: &'a str,
        }
        let request = self.0;
        let system = request.system_text();
        let system = system.as_deref().map(|text| Turn {
            role: "system",
            content: text,
        });
        let texts: Vec<Cow<'_, str>> = request
            .messages
            .iter()
            .map(|m| text_of(&m.content))
            .collect();
        let turns = request.messages.iter().zip(&texts).map(|(m, text)| Turn {
            role: match m.role {
                Role::System | Role::Developer => "system",
                Role::User => "user",
                Role::Assistant => "assistant",
                Role::Tool => "tool",
            },
            content: text,
        });
        s.collect_seq(system.into_iter().chain(turns))
    }
}

/// A message's text: its text blocks, and the text of the tool results it carries (borrowed
/// when it is one text block, as most are).
fn text_of(blocks: &[Block]) -> Cow<'_, str> {
    if let [Block::Text(text)] = blocks {
        return Cow::Borrowed(text);
    }
    let mut text = String::new();
    for block in blocks {
        match block {
            Block::Text(t) => text.push_str(t),
            Block::ToolResult { content, .. } => text.push_str(&text_of(content)),
            _ => {}
        }
    }
    Cow::Owned(text)
}

/// The tools as Parea's functions.
pub(super) struct FunctionsView<'a>(pub &'a Request);

impl Serialize for FunctionsView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Function<'a> {
            name: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            description: Option<&'a str>,
            parameters: &'a Value,
        }
        s.collect_seq(self.0.tools.iter().map(|t| Function {
            name: &t.name,
            description: t.description.as_deref(),
            parameters: &t.parameters,
        }))
    }
}

/// The tool choice as Parea's `function_call`.
pub(super) struct ChoiceView<'a>(pub &'a ToolChoice);

impl Serialize for ChoiceView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            ToolChoice::Auto => s.serialize_str("auto"),
            ToolChoice::None => s.serialize_str("none"),
            ToolChoice::Required => s.serialize_str("required"),
            ToolChoice::Tool(name) => {
                let mut map = s.serialize_map(Some(1))?;
                map.serialize_entry("name", name)?;
                map.end()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::CallConfiguration;
    use crate::model::{Block, Message, Request, ResponseFormat, Role, Tool, ToolChoice, Wire};

    #[test]
    fn a_model_request_is_written_in_pareas_words() {
        let mut r = Request::new("claude-x", Wire::AnthropicMessages);
        r.system = vec![Block::Text("be".into()), Block::Text("brief".into())];
        r.messages = vec![
            Message::text(Role::User, "hi"),
            Message {
                role: Role::Assistant,
                content: vec![Block::ToolCall {
                    id: "c".into(),
                    name: "f".into(),
                    arguments: "{}".into(),
                }],
                name: None,
            },
            Message {
                role: Role::Tool,
                content: vec![Block::ToolResult {
                    call_id: "c".into(),
                    content: vec![Block::Text("42".into())],
                    is_error: false,
                }],
                name: None,
            },
            Message::text(Role::Developer, "digits"),
        ];
        r.tools = vec![Tool {
            name: "f".into(),
            description: None,
            parameters: json!({"type": "object"}),
            strict: None,
        }];
        r.tool_choice = Some(ToolChoice::Tool("f".into()));
        r.params.temperature = Some(0.5);
        r.params.max_output_tokens = Some(64);
        r.params.response_format = Some(ResponseFormat::JsonObject);
        let configuration = CallConfiguration {
            model: "claude-x",
            provider: "local",
            request: Some(&r),
        };
        assert_eq!(
            serde_json::to_value(configuration).expect("json"),
            json!({
                "model": "claude-x",
                "provider": "local",
                "model_params": {"temp": 0.5, "max_length": 64,
                    "response_format": {"type": "json_object"}},
                "messages": [
                    {"role": "system", "content": "be\n\nbrief"},
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "content": ""},
                    {"role": "tool", "content": "42"},
                    {"role": "system", "content": "digits"}
                ],
                "functions": [{"name": "f", "parameters": {"type": "object"}}],
                "function_call": {"name": "f"}
            })
        );
        let bare = configuration.without_inputs();
        assert_eq!(
            serde_json::to_value(bare).expect("json"),
            json!({"model": "claude-x", "provider": "local"})
        );
    }
}
