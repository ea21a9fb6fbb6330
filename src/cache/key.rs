//! The cache key: a blake3 hash over a key-format version and every input that can change a
//! completion, in a canonical form.
//!
//! In the key: the provider name, the model, the messages as sent (after templates are rendered
//! and history is placed), the functions, the function call and every model parameter, and what
//! an OpenAI-route request forwards unread (its own messages, fields like `seed`), which is
//! written only when there is some: a plain OpenAI request and the same Parea request have one
//! key and share one entry. Not in the key: trace ids, metadata, tags, end user (`user`), log
//! flags, the API key, `stream` and `stream_options` — none of them change the answer. The inputs are taken from a destructured [`ChatRequest`], so a new request field
//! does not compile until someone decides whether it belongs here.
//!
//! Canonical: each field is written with a tag and a length prefix (no two inputs can run into
//! each other); JSON objects are written with sorted keys; numbers as their `f64` value (`1` and
//! `1.0` are one number); an absent parameter and its documented default are the same value
//! (`temp` 1.0, `top_p` 1.0, penalties 0.0, no `function_call` = `"auto"`, no content = `""`).

use std::fmt;

use serde_json::Value;

use crate::api::{FunctionCallSpec, Message, ModelParams, Role};
use crate::providers::{ChatRequest, Passthrough};

/// Bump when the key layout changes: old entries then simply stop matching.
const KEY_VERSION: &[u8] = b"promptd-cache-key/1";
/// The layout of keys made from the internal model ([`super::model_key`]).
const MODEL_KEY_VERSION: &[u8] = b"promptd-cache-key/model-1";

/// A 32-byte cache key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey(pub [u8; 32]);

impl CacheKey {
    /// Lower-case hex, as shown in `x-promptd-cache-key` and used by `DELETE /cache/{key}`.
    pub fn to_hex(&self) -> String {
        self.hex().to_string()
    }

    /// The hex form without allocating.
    pub fn hex(&self) -> impl std::ops::Deref<Target = str> {
        blake3::Hash::from(self.0).to_hex()
    }

    pub fn from_hex(text: &str) -> Option<CacheKey> {
        blake3::Hash::from_hex(text)
            .ok()
            .map(|h| CacheKey(*h.as_bytes()))
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CacheKey({})", self.to_hex())
    }
}

/// The key of a request to provider `provider` (the configured name).
pub fn cache_key(provider: &str, request: &ChatRequest) -> CacheKey {
    let ChatRequest {
        model,
        messages,
        params,
        functions,
        function_call,
        passthrough,
        // Derived from the fields above (the same request translated for Anthropic).
        translated: _,
    } = request;
    let mut h = KeyHasher::new();
    h.field(b"provider", provider.as_bytes());
    h.field(b"model", model.as_bytes());
    h.count(b"messages", messages.len());
    for Message { role, content } in messages {
        h.field(b"role", role_tag(*role).as_bytes());
        h.field(b"content", content.as_deref().unwrap_or("").as_bytes());
    }
    let ModelParams {
        temp,
        top_p,
        frequency_penalty,
        presence_penalty,
        max_length,
        response_format,
        safe_prompt,
    } = params;
    h.number(b"temp", temp.unwrap_or(1.0));
    h.number(b"top_p", top_p.unwrap_or(1.0));
    h.number(b"frequency_penalty", frequency_penalty.unwrap_or(0.0));
    h.number(b"presence_penalty", presence_penalty.unwrap_or(0.0));
    match max_length {
        Some(n) => h.number(b"max_length", f64::from(*n)),
        None => h.field(b"max_length", b"none"),
    }
    match response_format {
        Some(v) => h.json(b"response_format", v),
        None => h.field(b"response_format", b"none"),
    }
    h.field(
        b"safe_prompt",
        match safe_prompt {
            Some(true) => b"true",
            Some(false) => b"false",
            None => b"none",
        },
    );
    h.count(b"functions", functions.len());
    for f in functions {
        h.json(b"function", f);
    }
    let call = match function_call {
        None => "mode:auto".to_owned(),
        Some(FunctionCallSpec::Mode(m)) if matches!(m.as_str(), "auto" | "none" | "required") => {
            format!("mode:{m}")
        }
        Some(FunctionCallSpec::Mode(name)) | Some(FunctionCallSpec::Named { name }) => {
            format!("name:{name}")
        }
    };
    h.field(b"function_call", call.as_bytes());
    // `unkeyed` (`user`, `metadata`) reaches the provider but does not change the answer.
    if let Some(Passthrough {
        messages,
        fields,
        unkeyed: _,
    }) = passthrough
        .as_ref()
        .filter(|p| p.messages.is_some() || !p.fields.is_empty())
    {
        // Only ever appended, and tagged: no key without these bytes can equal one with them.
        if let Some(messages) = messages {
            h.count(b"openai_messages", messages.len());
            for m in messages {
                h.json(b"openai_message", m);
            }
        }
        let mut names: Vec<&String> = fields.keys().collect();
        names.sort();
        h.count(b"openai_fields", names.len());
        for name in names {
            h.field(b"openai_field", name.as_bytes());
            h.json(b"openai_value", &fields[name]);
        }
    }
    h.finish()
}

fn role_tag(role: Role) -> &'static str {
    match role {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool => "tool",
        Role::ExampleUser => "example_user",
        Role::ExampleAssistant => "example_assistant",
    }
}

/// Gathers the canonical bytes, then hashes them in one call: a blake3 update per small piece
/// (four per field) cost more than the hashing itself. The bytes hashed, and so the keys, are
/// the same as hashing piece by piece.
pub(super) struct KeyHasher(Vec<u8>);

impl KeyHasher {
    fn new() -> Self {
        let mut bytes = Vec::with_capacity(1024);
        bytes.extend_from_slice(KEY_VERSION);
        KeyHasher(bytes)
    }

    /// A hasher of the model's key layout.
    pub(super) fn new_model() -> Self {
        let mut bytes = Vec::with_capacity(1024);
        bytes.extend_from_slice(MODEL_KEY_VERSION);
        KeyHasher(bytes)
    }

    pub(super) fn finish(self) -> CacheKey {
        CacheKey(*blake3::hash(&self.0).as_bytes())
    }

    pub(super) fn field(&mut self, tag: &[u8], bytes: &[u8]) {
        self.0.extend_from_slice(&(tag.len() as u64).to_le_bytes());
        self.0.extend_from_slice(tag);
        self.0
            .extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        self.0.extend_from_slice(bytes);
    }

    pub(super) fn count(&mut self, tag: &[u8], n: usize) {
        self.field(tag, &(n as u64).to_le_bytes());
    }

    pub(super) fn number(&mut self, tag: &[u8], n: f64) {
        self.field(tag, &canonical_f64(n).to_le_bytes());
    }

    pub(super) fn json(&mut self, tag: &[u8], value: &Value) {
        let mut text = Vec::with_capacity(128);
        write_canonical(value, &mut text);
        self.field(tag, &text);
    }
}

/// One bit pattern per number: `-0.0` is `0.0`, every NaN is the same NaN.
fn canonical_f64(n: f64) -> u64 {
    if n == 0.0 {
        0.0f64.to_bits()
    } else if n.is_nan() {
        f64::NAN.to_bits()
    } else {
        n.to_bits()
    }
}

/// JSON with sorted object keys and numbers as `f64` bit patterns.
fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.push(b'n'),
        Value::Bool(b) => out.extend_from_slice(if *b { b"t" } else { b"f" }),
        Value::Number(n) => {
            out.push(b'#');
            out.extend_from_slice(&canonical_f64(n.as_f64().unwrap_or(f64::NAN)).to_le_bytes());
        }
        Value::String(s) => {
            out.push(b's');
            out.extend_from_slice(&(s.len() as u64).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        Value::Array(items) => {
            out.push(b'[');
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for item in items {
                write_canonical(item, out);
            }
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
            for (k, v) in entries {
                out.extend_from_slice(&(k.len() as u64).to_le_bytes());
                out.extend_from_slice(k.as_bytes());
                write_canonical(v, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn request() -> ChatRequest {
        ChatRequest {
            model: "gpt-4o-mini".into(),
            messages: vec![
                Message {
                    role: Role::System,
                    content: Some("You are terse.".into()),
                },
                Message {
                    role: Role::User,
                    content: Some("Hello".into()),
                },
            ],
            params: ModelParams {
                temp: Some(0.2),
                max_length: Some(64),
                ..ModelParams::default()
            },
            functions: vec![
                json!({"name": "f", "parameters": {"type": "object", "properties": {}}}),
            ],
            function_call: None,
            passthrough: None,
            translated: None,
        }
    }

    /// Pins the key of one fixed request: a silent change of the key layout (which would make
    /// every stored entry unreachable) fails here. Change KEY_VERSION and this value together.
    #[test]
    fn golden_key() {
        assert_eq!(
            cache_key("openai", &request()).to_hex(),
            "cd6d14bc9190db1cd423251db1fd3b71aa572726af9e110163097b25e1eeda8e"
        );
    }

    #[test]
    fn passthrough_is_in_the_key_only_when_there_is_some() {
        let base = request();
        let key = cache_key("openai", &base);
        let mut empty = base.clone();
        empty.passthrough = Some(Passthrough::default());
        assert_eq!(cache_key("openai", &empty), key);
        let with = |fields: Value, messages: Option<Vec<Value>>| {
            let mut r = base.clone();
            r.passthrough = Some(Passthrough {
                messages,
                fields: fields.as_object().cloned().unwrap_or_default(),
                unkeyed: Default::default(),
            });
            cache_key("openai", &r)
        };
        let seed = with(json!({"seed": 1}), None);
        assert_ne!(seed, key);
        assert_ne!(seed, with(json!({"seed": 2}), None));
        assert_eq!(
            with(json!({"seed": 1, "logprobs": true}), None),
            with(json!({"logprobs": true, "seed": 1.0}), None)
        );
        assert_ne!(with(json!({}), Some(vec![json!({"role": "user"})])), key);
        let mut user = base.clone();
        user.passthrough = Some(Passthrough {
            unkeyed: json!({"user": "u"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            ..Passthrough::default()
        });
        assert_eq!(cache_key("openai", &user), key, "user is not in the key");
    }

    #[test]
    fn hex_round_trip() {
        let key = cache_key("openai", &request());
        assert_eq!(CacheKey::from_hex(&key.to_hex()), Some(key));
        assert_eq!(CacheKey::from_hex("zz"), None);
    }

    #[test]
    fn defaults_equal_absent_and_integers_equal_floats() {
        let base = request();
        let mut explicit = base.clone();
        explicit.params.top_p = Some(1.0);
        explicit.params.frequency_penalty = Some(0.0);
        explicit.params.presence_penalty = Some(-0.0);
        explicit.function_call = Some(FunctionCallSpec::Mode("auto".into()));
        assert_eq!(cache_key("openai", &base), cache_key("openai", &explicit));

        let mut a = base.clone();
        a.functions = vec![serde_json::from_str(
            r#"{"name":"f","n":1,"parameters":{"type":"object","properties":{}}}"#,
        )
        .expect("json")];
        let mut b = base.clone();
        b.functions = vec![serde_json::from_str(
            r#"{"parameters":{"properties":{},"type":"object"},"n":1.0,"name":"f"}"#,
        )
        .expect("json")];
        assert_eq!(cache_key("openai", &a), cache_key("openai", &b));

        let mut named = base.clone();
        named.function_call = Some(FunctionCallSpec::Named { name: "f".into() });
        let mut mode = base;
        mode.function_call = Some(FunctionCallSpec::Mode("f".into()));
        assert_eq!(cache_key("openai", &named), cache_key("openai", &mode));
    }

    #[test]
    fn every_output_changing_input_changes_the_key() {
        let base = request();
        let key = cache_key("openai", &base);
        assert_ne!(key, cache_key("anthropic", &base));
        let variants: Vec<fn(&mut ChatRequest)> = vec![
            |r| r.model.push('x'),
            |r| r.messages[1].content = Some("Hello!".into()),
            |r| r.messages[1].role = Role::ExampleUser,
            |r| {
                r.messages.push(Message {
                    role: Role::User,
                    content: None,
                })
            },
            |r| r.params.temp = Some(0.3),
            |r| r.params.top_p = Some(0.5),
            |r| r.params.frequency_penalty = Some(0.1),
            |r| r.params.presence_penalty = Some(0.1),
            |r| r.params.max_length = None,
            |r| r.params.response_format = Some(json!({"type": "json_object"})),
            |r| r.params.safe_prompt = Some(true),
            |r| r.functions.clear(),
            |r| r.function_call = Some(FunctionCallSpec::Mode("none".into())),
        ];
        for (i, change) in variants.iter().enumerate() {
            let mut changed = base.clone();
            change(&mut changed);
            assert_ne!(cache_key("openai", &changed), key, "variant {i}");
        }
    }

    #[test]
    fn fields_cannot_run_into_each_other() {
        let mut a = request();
        a.messages = vec![
            Message {
                role: Role::User,
                content: Some("ab".into()),
            },
            Message {
                role: Role::User,
                content: Some("c".into()),
            },
        ];
        let mut b = a.clone();
        b.messages[0].content = Some("a".into());
        b.messages[1].content = Some("bc".into());
        assert_ne!(cache_key("p", &a), cache_key("p", &b));
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-1000i64..1000).prop_map(|n| json!(n)),
            "[a-z]{0,6}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-z]{1,4}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Re-serialise with object keys in reverse order and integers written as floats.
    fn reorder(value: &Value) -> String {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.reverse();
                let parts: Vec<String> = keys
                    .into_iter()
                    .map(|k| {
                        format!(
                            "{}:{}",
                            serde_json::to_string(k).unwrap_or_default(),
                            reorder(&map[k])
                        )
                    })
                    .collect();
                format!("{{{}}}", parts.join(","))
            }
            Value::Array(items) => format!(
                "[{}]",
                items.iter().map(reorder).collect::<Vec<_>>().join(",")
            ),
            Value::Number(n) if n.is_i64() => format!("{}.0", n),
            other => other.to_string(),
        }
    }

    proptest! {
        #[test]
        fn key_ignores_key_order_and_number_spelling(function in arb_json(), temp in 0.0f64..2.0) {
            let mut a = request();
            a.functions = vec![function.clone()];
            a.params.temp = Some(temp);
            let mut b = a.clone();
            b.functions = vec![serde_json::from_str(&reorder(&function)).expect("reordered JSON parses")];
            prop_assert_eq!(cache_key("openai", &a), cache_key("openai", &b));
        }

        #[test]
        fn different_contents_give_different_keys(x in ".{0,40}", y in ".{0,40}") {
            prop_assume!(x != y);
            let mut a = request();
            a.messages[1].content = Some(x);
            let mut b = request();
            b.messages[1].content = Some(y);
            prop_assert_ne!(cache_key("openai", &a), cache_key("openai", &b));
        }
    }
}
