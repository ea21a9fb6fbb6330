//! An embeddings call as the engine takes it: the items of `input` (each cached on its own),
//! the parameters read, and what is forwarded unread.

use serde_json::{Map, Value};

/// A decoded embeddings call, its model not yet resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingsCall {
    pub model: String,
    /// One value per item: a string or an array of integers.
    pub items: Vec<Value>,
    /// Whether `input` was one item (a string or one token array) rather than a list.
    pub single: bool,
    /// `encoding_format` as sent (`None` is OpenAI's default, `float`).
    pub encoding_format: Option<String>,
    pub dimensions: Option<u64>,
    /// Unknown fields, forwarded and in the key.
    pub keyed: Map<String, Value>,
    /// `user`: forwarded, not in the key.
    pub unkeyed: Map<String, Value>,
}

impl EmbeddingsCall {
    /// The upstream body for the items `items` (a subset of [`Self::items`]) of `model`.
    pub fn upstream_body(&self, model: &str, items: &[&Value]) -> Value {
        let mut body = self.keyed.clone();
        body.extend(self.unkeyed.clone());
        body.insert("model".into(), Value::String(model.to_owned()));
        let input = match items {
            [one] if self.single => (*one).clone(),
            many => Value::Array(many.iter().map(|v| (*v).clone()).collect()),
        };
        body.insert("input".into(), input);
        if let Some(format) = &self.encoding_format {
            body.insert("encoding_format".into(), Value::String(format.clone()));
        }
        if let Some(d) = self.dimensions {
            body.insert("dimensions".into(), Value::from(d));
        }
        Value::Object(body)
    }
}
