//! OpenAI's Responses API (`POST /v1/responses`), as promptd's door speaks it: the body decoded
//! into the internal model by the Responses wire ([`crate::wire::openai_responses`]) as a
//! [`DoorCall`]. Errors are OpenAI's shape ([`crate::api::openai::error_body`]).
//!
//! promptd keeps no responses (yet): a request that names one (`previous_response_id`,
//! `conversation`) is refused, naming the field and what to send instead; clients that send
//! the whole conversation every turn (Codex, `store: false` apps) need neither.

use bytes::Bytes;

use crate::api::{ApiError, DoorCall};
use crate::wire::openai_responses as wire;

/// Fields that name state kept by the provider, which promptd does not keep.
const STATEFUL: [&str; 2] = ["previous_response_id", "conversation"];

/// Decode a Responses body. A wrong shape is a 400 naming the field's path.
pub fn decode_responses(body: Bytes) -> Result<DoorCall, ApiError> {
    let decoded = wire::decode_request(&body).map_err(|e| ApiError::InvalidRequest {
        field: e.param.clone().map(Into::into),
        message: e.message,
    })?;
    let request = &decoded.request;
    if request.model.is_empty() {
        return Err(ApiError::invalid("model", "model is required"));
    }
    for field in STATEFUL {
        if request.extras.get(field).is_some_and(|v| !v.is_null()) {
            return Err(ApiError::invalid(
                field,
                format!(
                    "{field}: promptd keeps no responses, so it cannot continue one; send the \
                     whole conversation in `input` (with `store: false`, as Codex does)"
                ),
            ));
        }
    }
    if request.messages.is_empty() {
        return Err(ApiError::invalid(
            "input",
            "input: at least one item is required",
        ));
    }
    Ok(DoorCall::new(
        decoded.request,
        decoded.hints,
        body,
        Vec::new(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_codex_body_decodes_and_state_is_refused_by_name() {
        let body = br#"{"model":"gpt-5-codex","stream":true,"instructions":"be brief",
            "input":[{"type":"message","role":"user","content":[{"type":"input_text","text":"hi"}]}],
            "store":false,"prompt_cache_key":"k","include":["reasoning.encrypted_content"]}"#;
        let call = decode_responses(Bytes::from_static(body)).expect("a call");
        assert_eq!(call.model, "gpt-5-codex");
        assert!(call.stream);
        let err = decode_responses(Bytes::from_static(
            br#"{"model":"m","input":"hi","previous_response_id":"resp_1"}"#,
        ))
        .unwrap_err();
        assert!(
            matches!(&err, ApiError::InvalidRequest { field: Some(f), .. } if f == "previous_response_id"),
            "{err:?}"
        );
        let err = decode_responses(Bytes::from_static(br#"{"model":"m","input":[]}"#)).unwrap_err();
        assert!(err.to_string().contains("input"));
    }
}
