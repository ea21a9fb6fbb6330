//! The cache key of one embeddings input item: a blake3 hash over a key-format version and the
//! provider name, the model, `dimensions`, `encoding_format` (absent is `float`), the request's
//! other forwarded fields but `user` (canonical JSON: serde_json's maps are sorted), and the
//! item itself, each written with a tag and a length prefix. Its own version tag keeps the keys
//! apart from completion keys.

use serde_json::{Map, Value};

use super::CacheKey;

const KEY_VERSION: &[u8] = b"promptd-embedding-key/1";

/// What an item's key covers besides the item.
#[derive(Debug, Clone, Copy)]
pub struct EmbeddingKeyParts<'a> {
    pub provider: &'a str,
    pub model: &'a str,
    pub dimensions: Option<u64>,
    pub encoding_format: Option<&'a str>,
    /// Forwarded fields that are in the key (not `user`).
    pub keyed: &'a Map<String, Value>,
}

/// The key of `item` under `parts`.
pub fn embedding_key(parts: &EmbeddingKeyParts<'_>, item: &Value) -> CacheKey {
    let mut bytes = Vec::with_capacity(256);
    bytes.extend_from_slice(KEY_VERSION);
    let mut field = |tag: &[u8], value: &[u8]| {
        bytes.extend_from_slice(&(tag.len() as u64).to_le_bytes());
        bytes.extend_from_slice(tag);
        bytes.extend_from_slice(&(value.len() as u64).to_le_bytes());
        bytes.extend_from_slice(value);
    };
    field(b"provider", parts.provider.as_bytes());
    field(b"model", parts.model.as_bytes());
    match parts.dimensions {
        Some(d) => field(b"dimensions", &d.to_le_bytes()),
        None => field(b"dimensions", b""),
    }
    field(
        b"encoding_format",
        parts.encoding_format.unwrap_or("float").as_bytes(),
    );
    if !parts.keyed.is_empty() {
        field(
            b"fields",
            &serde_json::to_vec(parts.keyed).unwrap_or_default(),
        );
    }
    field(b"item", &serde_json::to_vec(item).unwrap_or_default());
    CacheKey(*blake3::hash(&bytes).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_part_changes_the_key_and_float_is_the_default() {
        let keyed = Map::new();
        let base = EmbeddingKeyParts {
            provider: "p",
            model: "m",
            dimensions: None,
            encoding_format: None,
            keyed: &keyed,
        };
        let k = embedding_key(&base, &json!("a"));
        let float = EmbeddingKeyParts {
            encoding_format: Some("float"),
            ..base
        };
        assert_eq!(embedding_key(&float, &json!("a")), k);
        let mut others = Map::new();
        others.insert("x".into(), json!(1));
        let variants = [
            EmbeddingKeyParts {
                provider: "q",
                ..base
            },
            EmbeddingKeyParts { model: "n", ..base },
            EmbeddingKeyParts {
                dimensions: Some(8),
                ..base
            },
            EmbeddingKeyParts {
                encoding_format: Some("base64"),
                ..base
            },
            EmbeddingKeyParts {
                keyed: &others,
                ..base
            },
        ];
        for v in &variants {
            assert_ne!(embedding_key(v, &json!("a")), k, "{v:?}");
        }
        assert_ne!(embedding_key(&base, &json!("b")), k);
        assert_ne!(embedding_key(&base, &json!([1])), k);
    }
}
