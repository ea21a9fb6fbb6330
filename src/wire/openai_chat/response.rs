//! A model [`Response`] as OpenAI's `chat.completion` object ([`render_response`]).
//!
//! Text blocks are joined into `message.content` (`null` when the answer is only tool calls),
//! tool call blocks become `message.tool_calls` (`arguments` the JSON text the model wrote),
//! reasoning has no place in a chat completion and is left out. `finish_reason` is one of
//! OpenAI's four words ([`super::finish_reason`]), `usage` counts cached prompt tokens in
//! `prompt_tokens` and tells them apart in the details ([`super::usage_json`]).

use serde_json::{json, Value};

use super::{finish_reason, usage_json, ChunkHeader};
use crate::model::Response;

/// The `chat.completion` body of `response`, with `header`'s id, created time, model and
/// system fingerprint.
pub fn render_response(response: &Response, header: &ChunkHeader) -> Value {
    let text = response.text();
    let calls: Vec<Value> = response
        .tool_calls()
        .map(|(id, name, arguments)| {
            json!({"id": id, "type": "function",
                "function": {"name": name, "arguments": arguments}})
        })
        .collect();
    let content = if text.is_empty() && !calls.is_empty() {
        Value::Null
    } else {
        Value::String(text)
    };
    let mut message = json!({"role": "assistant", "content": content, "refusal": null});
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    json!({
        "id": header.id,
        "object": "chat.completion",
        "created": header.created,
        "model": header.model,
        "system_fingerprint": header.system_fingerprint,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish_reason(response.finish.as_ref()),
        }],
        "usage": usage_json(&response.usage),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Block, FinishReason, Usage};

    #[test]
    fn text_tool_calls_finish_and_usage() {
        let header = ChunkHeader {
            id: "chatcmpl-1".into(),
            created: 5,
            model: "m".into(),
            system_fingerprint: Some("fp".into()),
        };
        let response = Response {
            blocks: vec![
                Block::Reasoning {
                    text: "hm".into(),
                    signature: None,
                    encrypted: None,
                    redacted: None,
                },
                Block::ToolCall {
                    id: "c".into(),
                    name: "f".into(),
                    arguments: "{}".into(),
                },
            ],
            finish: Some(FinishReason::ToolCalls),
            usage: Usage {
                input: 1,
                output: 2,
                cache_read: 2,
                ..Usage::default()
            },
            ..Response::default()
        };
        let body = render_response(&response, &header);
        assert_eq!(body["id"], "chatcmpl-1");
        assert_eq!(body["system_fingerprint"], "fp");
        assert!(body["choices"][0]["message"]["content"].is_null());
        assert_eq!(
            body["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
            "f"
        );
        assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(body["usage"]["prompt_tokens"], 3);
        let empty = render_response(&Response::default(), &header);
        assert_eq!(empty["choices"][0]["message"]["content"], "");
        assert_eq!(empty["choices"][0]["finish_reason"], "stop");
    }
}
