//! The cache key of a request as the internal model holds it ([`model_key`]): the same
//! request through any front door — Parea, OpenAI chat, Anthropic Messages — is one key, so
//! one entry serves them all.
//!
//! Canonical over the model's meaning, with the key module's encoding (tags, length prefixes,
//! sorted JSON, numbers as `f64`): the system part is written as system messages (Anthropic's
//! `system` blocks and OpenAI's leading system messages are one thing); an absent parameter and
//! its neutral value are one value (temperature and top_p 1, penalties 0, no tool choice is
//! `auto`, a `text` response format is none, parallel tool calls allowed); what cannot change
//! the answer is left out: the end user's id, the door (`wire`), `stream`, and the extras the
//! door called hints. Every other extra (a field the model has no place for) is in the key.

use serde_json::Value;

use super::key::{CacheKey, KeyHasher};
use crate::model::{Block, ImageSource, Params, Request, ResponseFormat, Role, ToolChoice};

/// The key of `request` to provider `provider` (the configured name); `hints` are the keys of
/// its extras that do not change the answer.
pub fn model_key(provider: &str, request: &Request, hints: &[String]) -> CacheKey {
    let mut h = KeyHasher::new();
    write_request(&mut h, provider, request, hints);
    h.finish()
}

/// The canonical bytes of `request` into `h`.
fn write_request(h: &mut KeyHasher, provider: &str, request: &Request, hints: &[String]) {
    h.field(b"provider", provider.as_bytes());
    h.field(b"model", request.model.as_bytes());
    h.count(b"messages", request.system.len() + request.messages.len());
    for block in &request.system {
        write_text_message(h, Role::System, block.as_text().unwrap_or(""));
    }
    for m in &request.messages {
        h.field(b"role", role_tag(m.role).as_bytes());
        h.field(b"name", m.name.as_deref().unwrap_or("").as_bytes());
        h.count(b"blocks", m.content.len());
        for block in &m.content {
            write_block(h, block);
        }
    }
    h.count(b"tools", request.tools.len());
    for t in &request.tools {
        write_tool(
            h,
            &t.name,
            t.description.as_deref(),
            &t.parameters,
            t.strict,
        );
    }
    h.count(b"hosted_tools", request.hosted_tools.len());
    for t in &request.hosted_tools {
        h.json(b"hosted_tool", t);
    }
    write_tool_choice(h, request.tool_choice.as_ref());
    write_params(h, &request.params);
    let mut extras: Vec<(&String, &Value)> = request
        .extras
        .iter()
        .filter(|(key, _)| !hints.contains(key))
        .collect();
    extras.sort_by(|a, b| a.0.cmp(b.0));
    write_extras(h, &extras);
}

/// A message of one text block (a system block is a system message).
pub(super) fn write_text_message(h: &mut KeyHasher, role: Role, text: &str) {
    h.field(b"role", role_tag(role).as_bytes());
    h.field(b"name", b"");
    h.count(b"blocks", 1);
    h.field(b"text", text.as_bytes());
}

pub(super) fn write_tool(
    h: &mut KeyHasher,
    name: &str,
    description: Option<&str>,
    parameters: &Value,
    strict: Option<bool>,
) {
    h.field(b"tool", name.as_bytes());
    h.field(b"description", description.unwrap_or("").as_bytes());
    h.json(b"parameters", parameters);
    h.field(b"strict", flag(strict));
}

pub(super) fn write_tool_choice(h: &mut KeyHasher, choice: Option<&ToolChoice>) {
    match choice {
        None | Some(ToolChoice::Auto) => h.field(b"tool_choice", b"auto"),
        Some(ToolChoice::None) => h.field(b"tool_choice", b"none"),
        Some(ToolChoice::Required) => h.field(b"tool_choice", b"required"),
        Some(ToolChoice::Tool(name)) => h.field(b"tool_choice_name", name.as_bytes()),
    }
}

/// The extras in the key, sorted by name.
pub(super) fn write_extras(h: &mut KeyHasher, extras: &[(&String, &Value)]) {
    h.count(b"extras", extras.len());
    for (key, value) in extras {
        h.field(b"extra", key.as_bytes());
        h.json(b"extra_value", value);
    }
}

/// The parameters that differ from their neutral value, each under its tag (absent and neutral
/// are one value, so neither is written: a plain request's key hashes a few blocks, not a
/// dozen parameters it did not set).
pub(super) fn write_params(h: &mut KeyHasher, p: &Params) {
    unless(h, b"temperature", p.temperature, 1.0);
    unless(h, b"top_p", p.top_p, 1.0);
    if let Some(k) = p.top_k {
        h.number(b"top_k", k as f64);
    }
    if let Some(n) = p.max_output_tokens {
        h.number(b"max_output_tokens", n as f64);
    }
    if !p.stop.is_empty() {
        h.count(b"stop", p.stop.len());
        for s in &p.stop {
            h.field(b"stop_sequence", s.as_bytes());
        }
    }
    if let Some(seed) = p.seed {
        h.number(b"seed", seed as f64);
    }
    unless(h, b"presence_penalty", p.presence_penalty, 0.0);
    unless(h, b"frequency_penalty", p.frequency_penalty, 0.0);
    match &p.response_format {
        None | Some(ResponseFormat::Text) => {}
        Some(ResponseFormat::JsonObject) => h.field(b"response_format", b"json_object"),
        Some(ResponseFormat::JsonSchema {
            name,
            schema,
            strict,
        }) => {
            h.field(b"response_format", b"json_schema");
            h.field(b"schema_name", name.as_bytes());
            h.json(b"schema", schema);
            h.field(b"schema_strict", flag(*strict));
        }
    }
    if let Some(effort) = p.reasoning_effort.as_deref().filter(|e| !e.is_empty()) {
        h.field(b"reasoning_effort", effort.as_bytes());
    }
    if p.parallel_tool_calls == Some(false) {
        h.field(b"parallel_tool_calls", b"false");
    }
}

/// `value` under `tag` unless it is absent or `neutral`.
fn unless(h: &mut KeyHasher, tag: &[u8], value: Option<f64>, neutral: f64) {
    if let Some(v) = value.filter(|&v| v != neutral) {
        h.number(tag, v);
    }
}

pub(super) fn role_tag(role: Role) -> &'static str {
    match role {
        Role::System => "system",
        Role::Developer => "developer",
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool => "tool",
    }
}

fn flag(value: Option<bool>) -> &'static [u8] {
    match value {
        Some(true) => b"true",
        Some(false) => b"false",
        None => b"none",
    }
}

fn write_block(h: &mut KeyHasher, block: &Block) {
    match block {
        Block::Text(text) => h.field(b"text", text.as_bytes()),
        Block::Image { source, detail } => {
            match source {
                ImageSource::Url(url) => h.field(b"image_url", url.as_bytes()),
                ImageSource::Base64 { media_type, data } => {
                    h.field(b"image_type", media_type.as_bytes());
                    h.field(b"image_data", data.as_bytes());
                }
            }
            h.field(b"detail", detail.as_deref().unwrap_or("").as_bytes());
        }
        Block::ToolCall {
            id,
            name,
            arguments,
        } => {
            h.field(b"tool_call", id.as_bytes());
            h.field(b"name", name.as_bytes());
            h.field(b"arguments", arguments.as_bytes());
        }
        Block::ToolResult {
            call_id,
            content,
            is_error,
        } => {
            h.field(b"tool_result", call_id.as_bytes());
            h.field(b"is_error", flag(Some(*is_error)));
            h.count(b"content", content.len());
            for block in content {
                write_block(h, block);
            }
        }
        Block::Reasoning {
            text,
            signature,
            encrypted,
            redacted,
        } => {
            h.field(b"reasoning", text.as_bytes());
            h.field(b"signature", signature.as_deref().unwrap_or("").as_bytes());
            h.field(b"encrypted", encrypted.as_deref().unwrap_or("").as_bytes());
            h.field(b"redacted", redacted.as_deref().unwrap_or("").as_bytes());
        }
        Block::Opaque { wire, json } => {
            h.field(b"opaque", format!("{wire:?}").as_bytes());
            h.json(b"opaque_json", json);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{anthropic, openai_chat};
    use serde_json::json;

    fn openai(body: Value) -> CacheKey {
        let d = openai_chat::decode_request(body.to_string().as_bytes()).expect("decodes");
        model_key("p", &d.request, &d.hints)
    }

    fn anthropic(body: Value) -> CacheKey {
        let d = anthropic::decode_request(body.to_string().as_bytes()).expect("decodes");
        model_key("p", &d.request, &d.hints)
    }

    #[test]
    fn one_request_through_any_door_is_one_key() {
        let by_openai = openai(json!({"model": "m", "max_tokens": 100, "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"}],
            "user": "u1", "metadata": {"a": 1}, "stream": true}));
        let by_anthropic = anthropic(json!({"model": "m", "max_tokens": 100,
            "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
            "metadata": {"user_id": "u2"}}));
        assert_eq!(by_openai, by_anthropic);
        let other = openai(json!({"model": "m", "max_tokens": 100, "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"}], "temperature": 0.2}));
        assert_ne!(
            by_openai, other,
            "a parameter that changes the answer changes the key"
        );
        let unknown = openai(json!({"model": "m", "max_tokens": 100, "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"}], "logprobs": true}));
        assert_ne!(
            by_openai, unknown,
            "so does a field the model has no place for"
        );
    }

    #[test]
    fn neutral_values_are_absent_ones() {
        let plain = openai(json!({"model": "m", "messages": [{"role": "user", "content": "q"}]}));
        let neutral = openai(
            json!({"model": "m", "messages": [{"role": "user", "content": "q"}],
            "temperature": 1, "top_p": 1.0, "presence_penalty": 0, "tool_choice": "auto",
            "response_format": {"type": "text"}, "parallel_tool_calls": true, "n": 1}),
        );
        assert_eq!(plain, neutral);
    }

    /// Each parameter away from its neutral value is in the key under its own tag: no two
    /// parameters set to the same value give one key, and none gives the plain request's.
    #[test]
    fn each_set_parameter_is_its_own_part_of_the_key() {
        let mut request = Request::new("m".to_owned(), crate::model::Wire::OpenAiChat);
        request.messages.push(crate::model::Message {
            role: Role::User,
            name: None,
            content: vec![Block::Text("q".into())],
        });
        let key = |change: &dyn Fn(&mut Params)| {
            let mut changed = request.clone();
            change(&mut changed.params);
            model_key("openai", &changed, &[])
        };
        let changes: [&dyn Fn(&mut Params); 12] = [
            &|_| {},
            &|p| p.temperature = Some(5.0),
            &|p| p.top_p = Some(5.0),
            &|p| p.top_k = Some(5),
            &|p| p.max_output_tokens = Some(5),
            &|p| p.stop = vec!["5".into()],
            &|p| p.seed = Some(5),
            &|p| p.presence_penalty = Some(5.0),
            &|p| p.frequency_penalty = Some(5.0),
            &|p| p.response_format = Some(ResponseFormat::JsonObject),
            &|p| p.reasoning_effort = Some("5".into()),
            &|p| p.parallel_tool_calls = Some(false),
        ];
        let keys: std::collections::HashSet<CacheKey> = changes.iter().map(|c| key(*c)).collect();
        assert_eq!(keys.len(), changes.len());
    }
}
