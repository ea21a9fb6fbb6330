//! Anthropic Messages answer -> OpenAI `chat.completion` (the rules are in the parent's header).

use serde_json::{json, Value};

use super::{finish_reason, input_tokens, usage};

/// Anthropic Messages response -> OpenAI `chat.completion` body. `id` and `created` are the
/// caller's (OpenAI clients expect `chatcmpl-` ids and Unix seconds); `model` is the name to
/// show the client.
pub fn response_from_anthropic(anthropic: &Value, id: &str, created: u64, model: &str) -> Value {
    let mut text: Option<String> = None;
    let mut tool_calls = Vec::new();
    let blocks = anthropic
        .get("content")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for block in blocks {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => text
                .get_or_insert_with(String::new)
                .push_str(block.get("text").and_then(Value::as_str).unwrap_or("")),
            Some("tool_use") => tool_calls.push(json!({
                "id": block.get("id").and_then(Value::as_str).unwrap_or(""),
                "type": "function",
                "function": {
                    "name": block.get("name").and_then(Value::as_str).unwrap_or(""),
                    "arguments": block.get("input").map_or_else(|| "{}".to_owned(), Value::to_string),
                },
            })),
            _ => {} // thinking, redacted_thinking and future blocks carry no answer
        }
    }
    let content = match text {
        Some(t) if !t.is_empty() || tool_calls.is_empty() => Value::String(t),
        _ if !tool_calls.is_empty() => Value::Null,
        _ => Value::from(""),
    };
    let mut message = json!({"role": "assistant", "content": content, "refusal": null});
    if !tool_calls.is_empty() {
        message["tool_calls"] = Value::Array(tool_calls);
    }
    let reason = anthropic
        .get("stop_reason")
        .and_then(Value::as_str)
        .map_or("stop", finish_reason);
    let u = anthropic.get("usage").unwrap_or(&Value::Null);
    let (input, cache_read, cache_creation) = input_tokens(u);
    let output = u.get("output_tokens").and_then(Value::as_u64).unwrap_or(0);
    json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": reason,
        }],
        "usage": usage(input, cache_read, cache_creation, output),
        "system_fingerprint": null,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tool_calls_give_null_content_and_nothing_gives_empty_text() {
        let body = json!({"content": [{"type": "thinking", "thinking": "t", "signature": "s"},
            {"type": "tool_use", "id": "a", "name": "f", "input": {}}],
            "stop_reason": "tool_use", "usage": {"input_tokens": 1, "output_tokens": 2}});
        let c = response_from_anthropic(&body, "id", 7, "m");
        assert_eq!(c["choices"][0]["message"]["content"], Value::Null);
        assert_eq!(
            c["choices"][0]["message"]["tool_calls"][0]["function"],
            json!({"name": "f", "arguments": "{}"})
        );
        let c = response_from_anthropic(
            &json!({"content": [], "stop_reason": "max_tokens"}),
            "id",
            7,
            "m",
        );
        assert_eq!(c["choices"][0]["message"]["content"], "");
        assert!(c["choices"][0]["message"].get("tool_calls").is_none());
        assert_eq!(c["choices"][0]["finish_reason"], "length");
        assert_eq!(c["created"], 7);
    }
}
