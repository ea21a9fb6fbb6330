//! The cache key: a blake3 hash over a key-format version and every input that can change a
//! completion, in a canonical form: the layout of the internal model's request
//! ([`super::model_key`]), so the same request through any door is one key and one entry.
//!
//! In the key: the provider name, the model, the messages as sent (after templates are rendered
//! and history is placed; empty turns say nothing and are left out), the tools, the tool choice,
//! every model parameter and every field the model keeps as a wire's extra (`seed`, `n`, ...):
//! a plain OpenAI request, the same Parea request and the same Anthropic Messages request have
//! one key. Not in
//! the key: trace ids, metadata, tags, end user (`user`), log flags, the API key, `stream` and
//! `stream_options` — none of them change the answer. The inputs are taken from a destructured
//! [`ChatRequest`], so a new field does not compile until someone decides whether it belongs
//! here.
//!
//! Canonical: each field is written with a tag and a length prefix, LEB128 (no two inputs can
//! run into each other); JSON objects are written with sorted keys; numbers as their `f64` value (`1` and
//! `1.0` are one number); an absent parameter and its neutral value are the same value
//! (temperature 1.0, `top_p` 1.0, penalties 0.0, no tool choice = `auto`, a `text` response
//! format = none).

use std::fmt;

use serde_json::Value;

use crate::providers::{ChatRequest, ModelCall};

/// The key layout's version, hashed into every key ([`KEY_VERSION`]) and marked in the cache's
/// trees, so a database whose keys were laid out otherwise (its entries could never match
/// again) is emptied once at open, not left to age out. Version 3 is the layout of the
/// internal model ([`super::model_key`]), lengths as LEB128; version 4 writes only the
/// parameters that differ from their neutral value. Bump both together (a test checks).
pub const KEY_LAYOUT: u8 = 4;
const KEY_VERSION: &[u8] = b"promptd-cache-key/4";

/// A map keyed by cache keys. A key is a BLAKE3 output that no client chooses, so a seeded
/// fast hasher (foldhash, a few instructions for 32 bytes) serves where SipHash would cost a
/// few hundred on every lookup of a request's path.
pub type KeyMap<V> = std::collections::HashMap<CacheKey, V, foldhash::fast::RandomState>;

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

/// The key of a request a door decoded into the model: the model's key, and the
/// `anthropic-beta` header it came with (betas can change the answer: a longer context,
/// interleaved thinking), when it came with one.
fn call_key(provider: &str, call: &ModelCall) -> CacheKey {
    let key = super::model_key(provider, &call.request, &call.hints);
    let beta = call
        .headers
        .iter()
        .find(|(name, _)| name.as_str() == "anthropic-beta");
    let Some((_, beta)) = beta else {
        return key;
    };
    let mut h = KeyHasher::new();
    h.field(b"model key", &key.0);
    h.field(b"anthropic-beta", beta.as_bytes());
    h.finish()
}

/// The key of a request to provider `provider` (the configured name): the key of its model
/// ([`super::model_key`]), with the `anthropic-beta` header it came with.
pub fn cache_key(provider: &str, request: &ChatRequest) -> CacheKey {
    let ChatRequest {
        call,
        // Derived from the request (the same request encoded for the provider's wire).
        translated: _,
        // The same-wire call's headers: `anthropic-beta` is in the key, from `call`.
        forward: _,
    } = request;
    call_key(provider, call)
}

/// Gathers the canonical bytes, then hashes them in one call: a blake3 update per small piece
/// (four per field) cost more than the hashing itself. The bytes hashed, and so the keys, are
/// the same as hashing piece by piece.
pub(super) struct KeyHasher(Vec<u8>);

impl KeyHasher {
    pub(super) fn new() -> Self {
        let mut bytes = Vec::with_capacity(1024);
        bytes.extend_from_slice(KEY_VERSION);
        KeyHasher(bytes)
    }

    pub(super) fn finish(self) -> CacheKey {
        CacheKey(*blake3::hash(&self.0).as_bytes())
    }

    /// A tag (a short fixed name) and a value, each length-prefixed: no two inputs can run
    /// into each other.
    pub(super) fn field(&mut self, tag: &[u8], bytes: &[u8]) {
        debug_assert!(tag.len() < 128, "tags are short fixed names");
        push_len(&mut self.0, tag.len());
        self.0.extend_from_slice(tag);
        push_len(&mut self.0, bytes.len());
        self.0.extend_from_slice(bytes);
    }

    pub(super) fn count(&mut self, tag: &[u8], n: usize) {
        let (bytes, len) = leb128(n);
        self.field(tag, &bytes[..len]);
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

/// A length as LEB128: one byte below 128, so short fields cost little to hash.
fn push_len(out: &mut Vec<u8>, n: usize) {
    // Most lengths are one byte: pushed as one, not copied as a slice of unknown length.
    if let Ok(byte @ 0..=0x7f) = u8::try_from(n) {
        out.push(byte);
        return;
    }
    let (bytes, len) = leb128(n);
    out.extend_from_slice(&bytes[..len]);
}

/// `n` as LEB128, and how many of the bytes it takes (no allocation).
fn leb128(mut n: usize) -> ([u8; 10], usize) {
    let mut bytes = [0u8; 10];
    let mut len = 0;
    while n >= 0x80 {
        bytes[len] = (n as u8 & 0x7f) | 0x80;
        n >>= 7;
        len += 1;
    }
    bytes[len] = n as u8;
    (bytes, len + 1)
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
            push_len(out, s.len());
            out.extend_from_slice(s.as_bytes());
        }
        Value::Array(items) => {
            out.push(b'[');
            push_len(out, items.len());
            for item in items {
                write_canonical(item, out);
            }
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            push_len(out, entries.len());
            for (k, v) in entries {
                push_len(out, k.len());
                out.extend_from_slice(k.as_bytes());
                write_canonical(v, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::{FunctionCallSpec, LlmConfiguration, Message, ModelParams, Role};
    use proptest::prelude::*;
    use serde_json::json;

    /// A Parea request's configuration, keyed as the engine keys it (as the model).
    #[derive(Debug, Clone)]
    struct Parea {
        model: String,
        messages: Vec<Message>,
        params: ModelParams,
        functions: Vec<Value>,
        function_call: Option<FunctionCallSpec>,
    }

    fn cache_key(provider: &str, r: &Parea) -> CacheKey {
        let config = LlmConfiguration {
            model: Some(r.model.clone()),
            provider: None,
            model_params: Some(r.params.clone()),
            messages: Some(r.messages.clone()),
            history: None,
            functions: Some(r.functions.clone()),
            function_call: r.function_call.clone(),
        };
        let (request, hints) = config.into_model().expect("a model request");
        let call = ModelCall {
            request,
            hints,
            sent: None,
            headers: Vec::new(),
        };
        super::cache_key(provider, &ChatRequest::new(call))
    }

    fn request() -> Parea {
        Parea {
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
        }
    }

    /// Pins the key of one fixed request: a silent change of the key layout (which would make
    /// every stored entry unreachable) fails here. Change KEY_VERSION and this value together.
    #[test]
    fn the_hashed_version_is_the_marked_layout() {
        assert_eq!(
            KEY_VERSION,
            format!("promptd-cache-key/{KEY_LAYOUT}").as_bytes()
        );
    }

    #[test]
    fn golden_key() {
        assert_eq!(
            cache_key("openai", &request()).to_hex(),
            "b627742e92009fec8d40fcc0c949139a69dab125eab6f4828777bf7992449867"
        );
    }

    #[test]
    fn a_wires_extras_are_in_the_key_and_its_end_user_is_not() {
        let key = |body: Value| {
            let decoded = crate::wire::openai_chat::decode_request(body.to_string().as_bytes())
                .expect("decodes");
            let call = ModelCall {
                request: decoded.request,
                hints: decoded.hints,
                sent: None,
                headers: Vec::new(),
            };
            call_key("openai", &call)
        };
        let messages = json!([{"role": "user", "content": "hi"}]);
        let plain = key(json!({"model": "m", "messages": messages}));
        let seeded = key(json!({"model": "m", "messages": messages, "seed": 1}));
        assert_ne!(seeded, plain);
        assert_ne!(
            seeded,
            key(json!({"model": "m", "messages": messages, "seed": 2}))
        );
        assert_eq!(
            key(json!({"model": "m", "messages": messages, "logprobs": true, "n": 2})),
            key(json!({"n": 2.0, "logprobs": true, "messages": messages, "model": "m"}))
        );
        assert_ne!(
            key(json!({"model": "m", "messages": messages, "logprobs": true})),
            plain
        );
        let user = key(json!({"model": "m", "messages": messages, "user": "u",
            "metadata": {"a": "b"}, "stream_options": {"include_usage": true}}));
        assert_eq!(
            user, plain,
            "user, metadata and stream options are not in the key"
        );
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
        let variants: Vec<fn(&mut Parea)> = vec![
            |r| r.model.push('x'),
            |r| r.messages[1].content = Some("Hello!".into()),
            |r| r.messages[1].role = Role::Assistant,
            |r| {
                r.messages.push(Message {
                    role: Role::User,
                    content: Some("more".into()),
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
            a.functions = vec![json!({"name": "f", "parameters": function})];
            a.params.temp = Some(temp);
            let mut b = a.clone();
            let reordered: Value = serde_json::from_str(&reorder(&function)).expect("reordered JSON parses");
            b.functions = vec![json!({"parameters": reordered, "name": "f"})];
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
