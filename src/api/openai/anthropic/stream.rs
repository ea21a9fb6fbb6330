//! Anthropic SSE events -> OpenAI `chat.completion.chunk`s (the rules are in the parent's
//! header), and [`assemble`], which folds chunks back into one `chat.completion`.

use serde_json::{json, Map, Value};

use super::{error_from_anthropic, finish_reason, input_tokens, usage};

/// Translates one Anthropic stream, event by event, into OpenAI chunks.
///
/// Call [`event`](Self::event) for each Anthropic event in order, and [`finish`](Self::finish)
/// once after `message_stop`. An `Err` from `event` ends the stream: send it to the client as
/// an error event and call nothing more.
#[derive(Debug)]
pub struct StreamTranslator {
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
    /// The role chunk went out.
    started: bool,
    /// (Anthropic content block index, OpenAI tool call index) of each `tool_use` block.
    tools: Vec<(u64, usize)>,
    /// Input tokens (plain, cache read, cache creation) and cumulative output tokens.
    input: (Option<u64>, u64, u64),
    output: u64,
    finish_sent: bool,
    usage_sent: bool,
}

impl StreamTranslator {
    /// `id`, `created` and `model` go into every chunk; `include_usage` is the client's
    /// `stream_options.include_usage` (see [`super::include_usage`]).
    pub fn new(id: &str, created: u64, model: &str, include_usage: bool) -> Self {
        Self {
            id: id.to_owned(),
            created,
            model: model.to_owned(),
            include_usage,
            started: false,
            tools: Vec::new(),
            input: (None, 0, 0),
            output: 0,
            finish_sent: false,
            usage_sent: false,
        }
    }

    /// One Anthropic event (its `event:` name, or `""` to use the data's `type`, and its parsed
    /// `data:`): the chunks it yields (often none), or the OpenAI error body to end the stream
    /// with (an `event: error`, or an event that contradicts the stream so far).
    pub fn event(&mut self, name: &str, data: &Value) -> Result<Vec<Value>, Value> {
        let kind = match name {
            "" => data.get("type").and_then(Value::as_str).unwrap_or(""),
            name => name,
        };
        let mut out = Vec::new();
        match kind {
            "message_start" => {
                let u = data.pointer("/message/usage").unwrap_or(&Value::Null);
                self.input = input_tokens(u);
                self.output = u.get("output_tokens").and_then(Value::as_u64).unwrap_or(0);
                self.start(&mut out);
            }
            "content_block_start" => {
                self.start(&mut out);
                let block = data.get("content_block").unwrap_or(&Value::Null);
                match block.get("type").and_then(Value::as_str) {
                    Some("text") => self.text(block.get("text"), &mut out),
                    Some("tool_use") => {
                        let index = self.tools.len();
                        if index >= crate::api::MAX_TOOL_CALLS {
                            return Err(protocol(&format!(
                                "tool_use block at index {} is beyond the limit of {} tool \
                                 calls in one answer",
                                block_index(data),
                                crate::api::MAX_TOOL_CALLS
                            )));
                        }
                        self.tools.push((block_index(data), index));
                        let str_of = |k| block.get(k).and_then(Value::as_str).unwrap_or("");
                        out.push(self.chunk(
                            json!({"tool_calls": [{
                                "index": index,
                                "id": str_of("id"),
                                "type": "function",
                                "function": {"name": str_of("name"), "arguments": ""},
                            }]}),
                            None,
                        ));
                    }
                    _ => {} // thinking, redacted_thinking: no answer text
                }
            }
            "content_block_delta" => {
                let delta = data.get("delta").unwrap_or(&Value::Null);
                match delta.get("type").and_then(Value::as_str) {
                    Some("text_delta") => self.text(delta.get("text"), &mut out),
                    Some("input_json_delta") => {
                        let block = block_index(data);
                        let Some(&(_, index)) = self.tools.iter().find(|(b, _)| *b == block) else {
                            return Err(protocol(&format!(
                                "input_json_delta for content block {block}, \
                                 which did not start as a tool_use block"
                            )));
                        };
                        let piece = delta
                            .get("partial_json")
                            .and_then(Value::as_str)
                            .unwrap_or("");
                        if !piece.is_empty() {
                            out.push(self.chunk(
                                json!({"tool_calls": [{
                                    "index": index, "function": {"arguments": piece}}]}),
                                None,
                            ));
                        }
                    }
                    _ => {} // thinking_delta, signature_delta, citations_delta
                }
            }
            "message_delta" => {
                if let Some(u) = data.get("usage") {
                    if let Some(n) = u.get("output_tokens").and_then(Value::as_u64) {
                        self.output = n; // cumulative
                    }
                    // Newer streams repeat the input counts here; never let them shrink.
                    let (input, read, creation) = input_tokens(u);
                    self.input = (
                        input.max(self.input.0),
                        read.max(self.input.1),
                        creation.max(self.input.2),
                    );
                }
                if let Some(reason) = data.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    self.start(&mut out);
                    self.end(Some(reason), &mut out);
                }
            }
            "error" => return Err(error_from_anthropic(data)),
            _ => {} // ping, content_block_stop, message_stop, future events
        }
        Ok(out)
    }

    /// After `message_stop`: the chunk with `finish_reason` if `message_delta` gave none (as
    /// `stop`), and the usage chunk (`choices: []`) when the client asked for it. Calling it
    /// again yields nothing.
    pub fn finish(&mut self) -> Vec<Value> {
        let mut out = Vec::new();
        self.start(&mut out);
        self.end(None, &mut out);
        if self.include_usage && !self.usage_sent {
            self.usage_sent = true;
            let (input, read, creation) = self.input;
            let mut chunk = self.chunk(Value::Null, None);
            chunk["choices"] = json!([]);
            chunk["usage"] = usage(input, read, creation, self.output);
            out.push(chunk);
        }
        out
    }

    fn start(&mut self, out: &mut Vec<Value>) {
        if !self.started {
            self.started = true;
            out.push(self.chunk(json!({"role": "assistant", "content": ""}), None));
        }
    }

    fn end(&mut self, stop_reason: Option<&str>, out: &mut Vec<Value>) {
        if !self.finish_sent {
            self.finish_sent = true;
            let reason = stop_reason.map_or("stop", finish_reason);
            out.push(self.chunk(json!({}), Some(reason)));
        }
    }

    fn text(&self, text: Option<&Value>, out: &mut Vec<Value>) {
        if let Some(text) = text.and_then(Value::as_str).filter(|t| !t.is_empty()) {
            out.push(self.chunk(json!({"content": text}), None));
        }
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> Value {
        let mut chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": null,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        });
        if self.include_usage {
            chunk["usage"] = Value::Null; // as OpenAI: null on every chunk but the last
        }
        chunk
    }
}

fn block_index(data: &Value) -> u64 {
    data.get("index").and_then(Value::as_u64).unwrap_or(0)
}

fn protocol(message: &str) -> Value {
    json!({"error": {"message": format!("the provider's stream broke its protocol: {message}"),
        "type": "server_error", "param": null, "code": "provider_protocol_error"}})
}

/// Fold `chat.completion.chunk`s into the `chat.completion` they spell (content pieces and
/// tool call `arguments` concatenated per `index`, the last `finish_reason`, the usage chunk's
/// `usage`), in the shape [`super::response_from_anthropic`] gives. For logs and for checking
/// that a stream and its non-stream twin agree.
pub fn assemble(chunks: &[Value]) -> Value {
    let first = chunks.first().unwrap_or(&Value::Null);
    let mut content = String::new();
    // By order of first appearance, never at the chunk's index.
    let mut calls: Vec<(u64, Map<String, Value>)> = Vec::new();
    let mut reason = Value::Null;
    let mut usage = Value::Null;
    for chunk in chunks {
        if let Some(u) = chunk.get("usage").filter(|u| !u.is_null()) {
            usage = u.clone();
        }
        let choices = chunk.get("choices").and_then(Value::as_array);
        for choice in choices.map(Vec::as_slice).unwrap_or_default() {
            if let Some(r) = choice.get("finish_reason").filter(|r| !r.is_null()) {
                reason = r.clone();
            }
            let delta = choice.get("delta").unwrap_or(&Value::Null);
            if let Some(piece) = delta.get("content").and_then(Value::as_str) {
                content.push_str(piece);
            }
            let tool_deltas = delta.get("tool_calls").and_then(Value::as_array);
            for call in tool_deltas.map(Vec::as_slice).unwrap_or_default() {
                let index = call.get("index").and_then(Value::as_u64).unwrap_or(0);
                let at = match calls.iter().position(|(i, _)| *i == index) {
                    Some(at) => at,
                    None => {
                        calls.push((index, Map::new()));
                        calls.len() - 1
                    }
                };
                merge_call(&mut calls[at].1, call);
            }
        }
    }
    let content = match (content.is_empty(), calls.is_empty()) {
        (true, false) => Value::Null,
        _ => Value::String(content),
    };
    let mut message = json!({"role": "assistant", "content": content, "refusal": null});
    if !calls.is_empty() {
        message["tool_calls"] = calls.into_iter().map(|(_, c)| Value::Object(c)).collect();
    }
    json!({
        "id": first.get("id").cloned().unwrap_or(Value::Null),
        "object": "chat.completion",
        "created": first.get("created").cloned().unwrap_or(Value::Null),
        "model": first.get("model").cloned().unwrap_or(Value::Null),
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": reason}],
        "usage": usage,
        "system_fingerprint": null,
    })
}

/// Add one tool call delta to the call assembled so far.
fn merge_call(call: &mut Map<String, Value>, delta: &Value) {
    for key in ["id", "type"] {
        if let Some(v) = delta.get(key).filter(|v| !v.is_null()) {
            call.insert(key.to_owned(), v.clone());
        }
    }
    let function = call
        .entry("function")
        .or_insert_with(|| json!({"name": "", "arguments": ""}));
    if let Some(name) = delta.pointer("/function/name").and_then(Value::as_str) {
        function["name"] = Value::from(name);
    }
    if let Some(piece) = delta.pointer("/function/arguments").and_then(Value::as_str) {
        let mut arguments = function["arguments"].as_str().unwrap_or("").to_owned();
        arguments.push_str(piece);
        function["arguments"] = Value::from(arguments);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deltas(chunks: &[Value]) -> Vec<Value> {
        chunks
            .iter()
            .map(|c| c["choices"][0]["delta"].clone())
            .collect()
    }

    #[test]
    fn thinking_is_skipped_and_tool_indexes_count_tool_blocks_only() {
        let mut t = StreamTranslator::new("id", 1, "m", false);
        let mut chunks = Vec::new();
        let events = [
            json!({"type": "message_start", "message": {"usage": {"input_tokens": 3, "output_tokens": 1}}}),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "hmm"}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "s"}}),
            json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "a", "name": "f", "input": {}}}),
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{}"}}),
            json!({"type": "some_future_event"}),
        ];
        for data in &events {
            // No `event:` name: the data's `type` says what it is.
            chunks.extend(t.event("", data).unwrap());
        }
        chunks.extend(t.finish());
        assert_eq!(
            deltas(&chunks),
            [
                json!({"role": "assistant", "content": ""}),
                json!({"tool_calls": [{"index": 0, "id": "a", "type": "function",
                    "function": {"name": "f", "arguments": ""}}]}),
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}),
                json!({}),
            ]
        );
        // No message_delta came: the stream still ends with a finish_reason.
        assert_eq!(chunks[3]["choices"][0]["finish_reason"], "stop");
        assert!(chunks.iter().all(|c| c.get("usage").is_none()));
    }

    #[test]
    fn arguments_for_a_block_that_never_started_end_the_stream() {
        let mut t = StreamTranslator::new("id", 1, "m", true);
        let delta = json!({"type": "content_block_delta", "index": 4,
            "delta": {"type": "input_json_delta", "partial_json": "{"}});
        let err = t.event("content_block_delta", &delta).unwrap_err();
        assert_eq!(err["error"]["code"], "provider_protocol_error");
    }

    #[test]
    fn usage_takes_the_largest_input_and_the_last_output() {
        let mut t = StreamTranslator::new("id", 1, "m", true);
        let start = json!({"message": {"usage": {"input_tokens": 10, "cache_creation_input_tokens": 5, "output_tokens": 1}}});
        t.event("message_start", &start).unwrap();
        let delta = json!({"delta": {"stop_reason": "max_tokens"},
            "usage": {"input_tokens": 10, "output_tokens": 8}});
        let chunks = t.event("message_delta", &delta).unwrap();
        assert_eq!(chunks[0]["choices"][0]["finish_reason"], "length");
        let delta = json!({"delta": {}, "usage": {"output_tokens": 9}});
        assert!(t.event("message_delta", &delta).unwrap().is_empty());
        let end = t.finish();
        assert_eq!(end.len(), 1, "finish_reason went out on message_delta");
        assert_eq!(
            end[0]["usage"],
            json!({"prompt_tokens": 15, "completion_tokens": 9, "total_tokens": 24})
        );
    }

    #[test]
    fn assemble_of_only_tool_calls_has_null_content() {
        let chunks = [
            json!({"id": "i", "created": 1, "model": "m", "choices": [{"delta":
                {"role": "assistant", "content": ""}}]}),
            json!({"choices": [{"delta": {"tool_calls": [{"index": 0, "id": "a", "type": "function",
                "function": {"name": "f", "arguments": ""}}]}}]}),
            json!({"choices": [{"delta": {"tool_calls": [{"index": 0,
                "function": {"arguments": "{\"x\":"}}]}}]}),
            json!({"choices": [{"delta": {"tool_calls": [{"index": 0,
                "function": {"arguments": "1}"}}]}}]}),
            json!({"choices": [{"delta": {}, "finish_reason": "tool_calls"}]}),
        ];
        let whole = assemble(&chunks);
        assert_eq!(whole["choices"][0]["message"]["content"], Value::Null);
        assert_eq!(
            whole["choices"][0]["message"]["tool_calls"],
            json!([{"id": "a", "type": "function", "function": {"name": "f", "arguments": "{\"x\":1}"}}])
        );
        assert_eq!(whole["choices"][0]["finish_reason"], "tool_calls");
    }
}
