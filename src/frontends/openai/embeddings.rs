//! The body of `POST /v1/embeddings` and the answer's shape.
//!
//! `input` is a string, an array of strings, a token array (an array of integers: one item) or
//! an array of token arrays; each is split into items, cached one by one. Read: `model`,
//! `input`, `encoding_format` (`float` or `base64`), `dimensions`. Everything else is
//! forwarded as sent; `user` is left out of the cache key, other unknown fields are in it.

use serde_json::{json, Map, Value};

use super::request::{bad, object_with_model};
use crate::call::{ApiError, EmbeddingsCall};

/// The route's path.
pub const EMBEDDINGS_PATH: &str = "/v1/embeddings";

/// Forwarded, but it does not change the answer: not in the cache key.
const UNKEYED: &[&str] = &["user"];

/// Decode an embeddings body; more than `max_inputs` items is a 400 naming `input`.
pub fn decode_embeddings(body: &[u8], max_inputs: usize) -> Result<EmbeddingsCall, ApiError> {
    let (model, mut body) = object_with_model(body)?;
    let (items, single) = match body.remove("input") {
        None | Some(Value::Null) => {
            return Err(bad("input", "you must provide an input parameter"))
        }
        Some(input) => read_input(input)?,
    };
    if items.len() > max_inputs {
        return Err(bad(
            "input",
            format!(
                "input holds {} items, more than the {max_inputs} allowed \
                 (max_embedding_inputs): send fewer per request",
                items.len()
            ),
        ));
    }
    let encoding_format = match body.remove("encoding_format") {
        None | Some(Value::Null) => None,
        Some(Value::String(f)) if f == "float" || f == "base64" => Some(f),
        Some(other) => {
            return Err(bad(
                "encoding_format",
                format!("encoding_format is `float` or `base64`, not {other}"),
            ))
        }
    };
    let dimensions = match body.remove("dimensions") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .filter(|d| *d > 0)
                .ok_or_else(|| bad("dimensions", "dimensions must be a positive integer"))?,
        ),
    };
    let mut keyed = Map::new();
    let mut unkeyed = Map::new();
    for (key, value) in body {
        if UNKEYED.contains(&key.as_str()) {
            unkeyed.insert(key, value);
        } else {
            keyed.insert(key, value);
        }
    }
    Ok(EmbeddingsCall {
        model,
        items,
        single,
        encoding_format,
        dimensions,
        keyed,
        unkeyed,
    })
}

const INPUT_SHAPE: &str = "input must be a string, an array of strings, an array of integers \
                           (tokens) or an array of arrays of integers";

/// The items of `input`, and whether it was a single item.
fn read_input(input: Value) -> Result<(Vec<Value>, bool), ApiError> {
    let items = match input {
        Value::String(s) if s.is_empty() => {
            return Err(bad("input", "input must not be an empty string"))
        }
        Value::String(_) => return Ok((vec![input], true)),
        Value::Array(items) => items,
        _ => return Err(bad("input", INPUT_SHAPE)),
    };
    if items.is_empty() {
        return Err(bad(
            "input",
            "input must hold at least one item (`[]` is empty)",
        ));
    }
    if items.iter().all(is_token) {
        return Ok((vec![Value::Array(items)], true));
    }
    for (i, item) in items.iter().enumerate() {
        match item {
            Value::String(s) if s.is_empty() => {
                return Err(bad(
                    "input",
                    format!("input[{i}] must not be an empty string"),
                ))
            }
            Value::String(_) => {}
            Value::Array(tokens) if tokens.is_empty() => {
                return Err(bad(
                    "input",
                    format!("input[{i}] must not be an empty array"),
                ))
            }
            Value::Array(tokens) if tokens.iter().all(is_token) => {}
            _ => return Err(bad("input", format!("input[{i}]: {INPUT_SHAPE}"))),
        }
    }
    Ok((items, false))
}

fn is_token(v: &Value) -> bool {
    v.as_u64().is_some()
}

/// The answer: `{"object": "list", "data": [...], "model", "usage"}`, each embedding in the
/// caller's order with the caller's index.
pub fn embeddings_body(embeddings: Vec<Value>, model: &str, prompt_tokens: u64) -> Value {
    let data: Vec<Value> = embeddings
        .into_iter()
        .enumerate()
        .map(|(index, embedding)| {
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(body: Value) -> Result<EmbeddingsCall, ApiError> {
        decode_embeddings(body.to_string().as_bytes(), 3)
    }

    fn param_of(err: ApiError) -> Option<String> {
        match err {
            ApiError::InvalidRequest { field, .. } => field.map(|f| f.into_owned()),
            _ => None,
        }
    }

    #[test]
    fn each_input_shape_is_split_into_items() {
        let one = decode(json!({"model": "m", "input": "a"})).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((one.items, one.single), (vec![json!("a")], true));
        let list =
            decode(json!({"model": "m", "input": ["a", "b"]})).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((list.items.len(), list.single), (2, false));
        let tokens =
            decode(json!({"model": "m", "input": [1, 2]})).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((tokens.items, tokens.single), (vec![json!([1, 2])], true));
        let lists = decode(json!({"model": "m", "input": [[1], [2, 3]], "user": "u", "x": 1}))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(lists.items, vec![json!([1]), json!([2, 3])]);
        assert_eq!(lists.unkeyed.get("user"), Some(&json!("u")));
        assert_eq!(lists.keyed.get("x"), Some(&json!(1)));
    }

    #[test]
    fn bad_bodies_name_their_param() {
        let cases = [
            (json!({"input": "a"}), "model"),
            (json!({"model": "m"}), "input"),
            (json!({"model": "m", "input": ""}), "input"),
            (json!({"model": "m", "input": []}), "input"),
            (json!({"model": "m", "input": ["a", 1]}), "input"),
            (json!({"model": "m", "input": [[]]}), "input"),
            (json!({"model": "m", "input": {"a": 1}}), "input"),
            (
                json!({"model": "m", "input": ["a", "b", "c", "d"]}),
                "input",
            ),
            (
                json!({"model": "m", "input": "a", "encoding_format": "hex"}),
                "encoding_format",
            ),
            (
                json!({"model": "m", "input": "a", "dimensions": 0}),
                "dimensions",
            ),
        ];
        for (body, param) in cases {
            let err = decode(body.clone())
                .err()
                .unwrap_or_else(|| panic!("{body}"));
            assert_eq!(param_of(err).as_deref(), Some(param), "{body}");
        }
        assert!(matches!(
            decode_embeddings(b"{", 3),
            Err(ApiError::InvalidJson(_))
        ));
    }

    #[test]
    fn the_upstream_body_carries_the_asked_items_and_forwarded_fields() {
        let call = decode(json!({"model": "m", "input": ["a", "b"], "user": "u", "dimensions": 8}))
            .unwrap_or_else(|e| panic!("{e}"));
        let b = json!("b");
        assert_eq!(
            call.upstream_body("up", &[&b]),
            json!({"model": "up", "input": ["b"], "user": "u", "dimensions": 8})
        );
    }
}
