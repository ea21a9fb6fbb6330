//! OpenAI's Responses API (`POST /v1/responses`), as promptd's door speaks it: the body decoded
//! into the internal model by the Responses wire ([`crate::wire::openai_responses`]) as a
//! [`DoorCall`]. Errors are OpenAI's shape ([`crate::frontends::openai::error_body`]).
//!
//! **Conversation state.** promptd keeps the answers of this door ([`crate::response_store`]),
//! so a request may continue one by `previous_response_id`: the server looks the id up (for
//! the same owner) and this module builds the call's body as if the client had sent the whole
//! conversation ([`continued`]): `input` is the kept input items, the kept answer's output
//! items, then the request's own input; `previous_response_id` is left out. The model's
//! request is decoded from that body, so the cache key covers the whole conversation, and a
//! same-wire call forwards the expanded body (a provider that keeps nothing gets everything).
//! An id promptd does not hold is a 400 naming the field, never a silent fresh start.
//! `conversation` (OpenAI's conversation objects) is not kept: refused by name.

mod render;

pub use render::{entry_id, now_ms, response_id, Keep, KeptInput, ResponsesRender};

use std::borrow::Cow;

use bytes::Bytes;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::call::ApiError;
use crate::frontends::DoorCall;
use crate::wire::json::{member, rewrite_members};
use crate::wire::openai_responses as wire;

/// The field naming a kept response this request continues.
pub const PREVIOUS: &str = "previous_response_id";

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
    if request
        .extras
        .get("conversation")
        .is_some_and(|v| !v.is_null())
    {
        return Err(ApiError::invalid(
            "conversation",
            "conversation: promptd keeps no conversation objects; continue a response with \
             `previous_response_id`, or send the whole conversation in `input`",
        ));
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

/// The response `call` continues (`previous_response_id`), if it names one.
pub fn previous_response_id(call: &DoorCall) -> Result<Option<&str>, ApiError> {
    match call.request().extras.get(PREVIOUS) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(id)) if !id.is_empty() => Ok(Some(id)),
        Some(_) => Err(ApiError::invalid(
            PREVIOUS,
            "previous_response_id: expected the id of a response (`resp_...`)",
        )),
    }
}

/// Whether the client lets its answer be kept: everything but `store: false` (OpenAI's default
/// is to store).
pub fn wants_store(call: &DoorCall) -> bool {
    call.request().extras.get("store") != Some(&Value::Bool(false))
}

/// The 400 of a `previous_response_id` promptd does not hold (never kept, expired, evicted,
/// deleted, or another user's).
pub fn unknown_previous(id: &str) -> ApiError {
    ApiError::invalid(
        PREVIOUS,
        format!(
            "previous_response_id: response `{id}` is unknown or expired: promptd does not hold \
             it (never answered here, deleted, past [responses] max_age, or evicted by its \
             bounds); send the whole conversation in `input` instead"
        ),
    )
}

/// The input items of a decoded body as a JSON array (a string `input` is one user message).
pub fn input_items(body: &[u8]) -> Result<String, ApiError> {
    let own = own_items(body)?;
    let items: Vec<&str> = own.iter().map(AsRef::as_ref).collect();
    Ok(array(&items))
}

/// A decoded body continuing a kept response whose conversation is `earlier` (item JSON
/// texts): the body with `input` set to `earlier` then its own input, without
/// `previous_response_id` (every other member as it came); and that `input` (a JSON array),
/// which is what the answer to it keeps.
pub fn continued(body: &[u8], earlier: &[String]) -> Result<(Bytes, String), ApiError> {
    let own = own_items(body)?;
    let items: Vec<&str> = earlier
        .iter()
        .map(String::as_str)
        .chain(own.iter().map(AsRef::as_ref))
        .collect();
    let input = array(&items);
    let body = rewrite_members(body, &[PREVIOUS], ("input", &input))
        .map_err(|e| ApiError::InvalidJson(e.to_string()))?;
    Ok((Bytes::from(body), input))
}

/// The items of `body`'s `input`, each's text as it came; a string input is one user
/// `message` item.
fn own_items(body: &[u8]) -> Result<Vec<Cow<'_, str>>, ApiError> {
    let bad = |e: serde_json::Error| ApiError::InvalidJson(e.to_string());
    let Some(input) = member(body, "input").map_err(bad)? else {
        return Ok(Vec::new());
    };
    if input.get().starts_with('"') {
        let item = format!(
            r#"{{"type":"message","role":"user","content":{}}}"#,
            input.get()
        );
        return Ok(vec![Cow::Owned(item)]);
    }
    let list: Vec<&RawValue> = serde_json::from_str(input.get()).map_err(bad)?;
    Ok(list.into_iter().map(|i| Cow::Borrowed(i.get())).collect())
}

fn array(items: &[&str]) -> String {
    let mut out = String::with_capacity(2 + items.iter().map(|i| i.len() + 1).sum::<usize>());
    out.push('[');
    for (n, item) in items.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        out.push_str(item);
    }
    out.push(']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_codex_body_decodes_and_conversation_objects_are_refused_by_name() {
        let body = br#"{"model":"gpt-5-codex","stream":true,"instructions":"be brief",
            "input":[{"type":"message","role":"user","content":[{"type":"input_text","text":"hi"}]}],
            "store":false,"prompt_cache_key":"k","include":["reasoning.encrypted_content"]}"#;
        let call = decode_responses(Bytes::from_static(body)).expect("a call");
        assert_eq!(call.model(), "gpt-5-codex");
        assert!(call.stream());
        assert!(!wants_store(&call));
        assert_eq!(previous_response_id(&call).expect("ok"), None);
        let err = decode_responses(Bytes::from_static(
            br#"{"model":"m","input":"hi","conversation":"conv_1"}"#,
        ))
        .unwrap_err();
        assert!(
            matches!(&err, ApiError::InvalidRequest { field: Some(f), .. } if f == "conversation"),
            "{err:?}"
        );
        let err = decode_responses(Bytes::from_static(br#"{"model":"m","input":[]}"#)).unwrap_err();
        assert!(err.to_string().contains("input"));
    }

    #[test]
    fn a_previous_response_id_is_named_and_must_be_an_id() {
        let call = decode_responses(Bytes::from_static(
            br#"{"model":"m","input":"and then?","previous_response_id":"resp_1"}"#,
        ))
        .expect("a call");
        assert_eq!(previous_response_id(&call).expect("ok"), Some("resp_1"));
        assert!(wants_store(&call), "stored unless store: false");
        let call = decode_responses(Bytes::from_static(
            br#"{"model":"m","input":"x","previous_response_id":7}"#,
        ))
        .expect("a call");
        let err = previous_response_id(&call).unwrap_err();
        assert!(
            matches!(&err, ApiError::InvalidRequest { field: Some(f), .. } if f == PREVIOUS),
            "{err:?}"
        );
        let err = unknown_previous("resp_9");
        assert!(err.to_string().contains("resp_9") && err.to_string().contains("unknown"));
    }

    #[test]
    fn a_continued_body_holds_the_whole_conversation_and_no_previous_id() {
        let earlier = vec![
            r#"{"role":"user","content":"Hi"}"#.to_owned(),
            r#"{"type":"message","role":"assistant","content":[{"type":"output_text","text":"Hello"}]}"#
                .to_owned(),
        ];
        let body =
            br#"{"model":"m","previous_response_id":"resp_1","input":"And you?","stream":true}"#;
        let (sent, input) = continued(body, &earlier).expect("continued");
        let v: Value = serde_json::from_slice(&sent).expect("json");
        assert!(v.get(PREVIOUS).is_none(), "{v}");
        assert_eq!(v["model"], "m");
        assert_eq!(v["stream"], true);
        let items = v["input"].as_array().expect("a list");
        assert_eq!(items.len(), 3);
        assert_eq!(
            items[2],
            serde_json::json!({"type":"message","role":"user","content":"And you?"})
        );
        assert_eq!(
            serde_json::from_str::<Value>(&input).expect("json"),
            v["input"]
        );
        let call = decode_responses(sent).expect("decodes");
        assert_eq!(call.request().messages.len(), 3);
        assert_eq!(previous_response_id(&call).expect("ok"), None);
        // What a same-wire call forwards is the expanded body.
        let target = crate::frontends::openai::Target::Provider {
            provider: "openai".into(),
            model: "gpt-x".into(),
        };
        let routed = call.route(target).expect("routed");
        let forwarded = routed
            .call
            .same_wire_body()
            .expect("kept")
            .expect("an object");
        let forwarded: Value = serde_json::from_slice(&forwarded).expect("json");
        assert_eq!(forwarded["input"], v["input"]);
        assert_eq!(forwarded["model"], "gpt-x");
        assert!(forwarded.get(PREVIOUS).is_none(), "{forwarded}");
        // A list input keeps its items' bytes.
        let body = br#"{"model":"m","input":[ {"role":"user","content":"x\u00e9"} ]}"#;
        let (_, input) = continued(body, &earlier).expect("continued");
        assert!(
            input.ends_with(r#",{"role":"user","content":"x\u00e9"}]"#),
            "{input}"
        );
        assert_eq!(
            input_items(br#"{"model":"m","input":"Hi"}"#).expect("items"),
            r#"[{"type":"message","role":"user","content":"Hi"}]"#
        );
    }
}
