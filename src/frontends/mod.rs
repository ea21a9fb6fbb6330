//! The front doors, one room each: the wire a client speaks to the engine's [`Call`] (or, for a
//! door that decodes into the internal model whole, a [`DoorCall`]) and the model's answers,
//! events and errors back to that wire.
//!
//! - [`parea`] — Parea's completion API (`/completion`, `/completion/stream`, `/project`...).
//! - [`openai`] — OpenAI's chat completions, embeddings and model list (`/v1`).
//! - [`anthropic`] — Anthropic's Messages API (`/v1/messages`).
//! - [`responses`] — OpenAI's Responses API (`/v1/responses`).
//!
//! Each door renders what the engine answers in its own wire: whole answers from the cache
//! entry, streams as a body source over the engine's stream items ([`model_events`] for the
//! doors that render the model's events; each batching what is ready together into one frame).
//! No HTTP server here: the server's handlers read bodies, call the engine and pick these.
//! Every optional field of a body is an `Option` because the SDKs send unset fields as `null`;
//! defaults are applied by the engine, not here. Unknown fields are accepted (the SDKs add
//! fields over time).

pub mod anthropic;
mod batch;
mod door_call;
pub mod model_events;
pub mod openai;
pub mod parea;
pub mod responses;

pub use door_call::{DoorCall, Routed};

use serde::de::DeserializeOwned;

use crate::call::ApiError;

/// Decode a JSON body: malformed JSON is a 400 `invalid_json`, a well-formed body with a field of
/// the wrong type a 422 `invalid_request` naming the field (`llm_configuration.messages[0].role`).
pub fn decode_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    // Tracking the path costs on every body; only a body that fails is decoded again with it.
    crate::wire::json::from_bytes(body).or_else(|first| explain::<T>(body, first))
}

/// The error of a body that did not decode, naming the offending field.
fn explain<T: DeserializeOwned>(body: &[u8], first: serde_json::Error) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let err = match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Ok(_) => {
            return Err(de
                .end()
                .err()
                .map_or_else(|| invalid(first, "."), |e| invalid(e, ".")))
        }
        Err(e) => e,
    };
    let path = err.path().to_string();
    Err(invalid(err.into_inner(), &path))
}

fn invalid(err: serde_json::Error, path: &str) -> ApiError {
    if err.is_syntax() || err.is_eof() {
        ApiError::InvalidJson(err.to_string())
    } else {
        ApiError::InvalidRequest {
            field: (path != ".").then(|| path.to_owned().into()),
            message: err.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frontends::parea::CompletionRequest;

    #[test]
    fn malformed_json_is_invalid_json() {
        let err = decode_json::<CompletionRequest>(b"{\"cache\": tru").unwrap_err();
        assert!(matches!(err, ApiError::InvalidJson(_)), "{err:?}");
        let err = decode_json::<CompletionRequest>(b"{} trailing").unwrap_err();
        assert!(matches!(err, ApiError::InvalidJson(_)), "{err:?}");
    }

    #[test]
    fn wrong_type_names_the_field() {
        let body = br#"{"llm_configuration": {"messages": [{"role": "wizard", "content": "x"}]}}"#;
        match decode_json::<CompletionRequest>(body).unwrap_err() {
            ApiError::InvalidRequest { field, .. } => {
                assert_eq!(field.as_deref(), Some("llm_configuration.messages[0].role"))
            }
            other => panic!("unexpected {other:?}"),
        }
        let body = br#"{"cache": "yes"}"#;
        match decode_json::<CompletionRequest>(body).unwrap_err() {
            ApiError::InvalidRequest { field, .. } => assert_eq!(field.as_deref(), Some("cache")),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn nulls_and_unknown_fields_are_accepted() {
        let body = br#"{"deployment_id": null, "metadata": null, "whatever": [1,2],
            "llm_configuration": {"model": "m", "history": null,
                "model_params": {"max_length": null, "temp": null, "future": 1}}}"#;
        let req: CompletionRequest = decode_json(body).expect("decodes");
        assert!(req.deployment_id.is_none());
        let config = req.llm_configuration.expect("config");
        assert_eq!(config.model.as_deref(), Some("m"));
        assert!(config.model_params.expect("params").max_length.is_none());
    }
}
