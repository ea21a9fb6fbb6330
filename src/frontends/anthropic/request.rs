//! A `POST /v1/messages` body as a [`DoorCall`]: decoded into the model by the Anthropic wire,
//! with the client's `anthropic-*` headers for a provider of Anthropic's own wire.

use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue};

use crate::call::ApiError;
use crate::frontends::DoorCall;
use crate::wire::anthropic as wire;

/// Decode a Messages body; `headers` are the client's `anthropic-*` headers a call to an
/// Anthropic-kind provider forwards. A wrong shape is a 400 naming the field's path.
pub fn decode_messages(
    body: Bytes,
    headers: Vec<(HeaderName, HeaderValue)>,
) -> Result<DoorCall, ApiError> {
    let decoded = wire::decode_request(&body).map_err(|e| ApiError::InvalidRequest {
        field: e.param.clone().map(Into::into),
        message: e.message,
    })?;
    if decoded.request.model.is_empty() {
        return Err(ApiError::invalid("model", "model: Field required"));
    }
    if decoded.request.messages.is_empty() {
        return Err(ApiError::invalid(
            "messages",
            "messages: at least one message is required",
        ));
    }
    Ok(DoorCall::new(decoded.request, decoded.hints, body, headers))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::Call;
    use crate::frontends::openai::Target;

    fn call(body: &str) -> DoorCall {
        decode_messages(Bytes::from(body.to_owned()), Vec::new()).expect("a call")
    }

    #[test]
    fn the_body_goes_on_with_the_providers_model_and_a_parea_view_for_the_log() {
        let c = call(
            r#"{"model":"claude-x","max_tokens":64,"stream":true,"system":"be brief",
                "messages":[{"role":"user","content":[{"type":"text","text":"hi",
                "cache_control":{"type":"ephemeral"}}]}],"temperature":0.5}"#,
        );
        assert!(c.stream());
        assert_eq!(c.model(), "claude-x");
        let target = Target::Provider {
            provider: "local".into(),
            model: "qwen".into(),
        };
        let req = c.into_request(target, Call::default()).expect("a request");
        assert_eq!(req.provider.as_deref(), Some("local"));
        let call = req.request.expect("the model call");
        assert_eq!(call.request.model, "qwen");
        assert_eq!(call.request.system_text().as_deref(), Some("be brief"));
        assert_eq!(call.request.messages[0].joined_text(), "hi");
        let params = &call.request.params;
        assert_eq!(
            (params.temperature, params.max_output_tokens),
            (Some(0.5), Some(64))
        );
        assert_eq!(call.hints, ["cache_control"]);
        let sent = call.same_wire_body().expect("kept").expect("an object");
        let sent: serde_json::Value = serde_json::from_slice(&sent).expect("json");
        assert_eq!(sent["model"], "qwen");
        assert!(sent.get("stream").is_none());
        assert_eq!(
            sent["messages"][0]["content"][0]["cache_control"]["type"],
            "ephemeral"
        );
    }

    #[test]
    fn bad_bodies_name_the_field_and_deployments_are_refused() {
        let err = decode_messages(
            Bytes::from_static(b"{\"model\":\"m\",\"messages\":[]}"),
            Vec::new(),
        )
        .unwrap_err();
        assert!(matches!(err, ApiError::InvalidRequest { field: Some(f), .. } if f == "messages"));
        let err = decode_messages(
            Bytes::from_static(
                br#"{"model":"m","messages":[{"role":"user","content":[{"text":"x"}]}]}"#,
            ),
            Vec::new(),
        )
        .unwrap_err();
        assert!(
            matches!(&err, ApiError::InvalidRequest { field: Some(f), .. } if f.starts_with("messages[0].content[0]")),
            "{err:?}"
        );
        let c = call(
            r#"{"model":"deployment/greet","max_tokens":5,"messages":[{"role":"user","content":"x"}]}"#,
        );
        let err = c
            .into_request(Target::Deployment("greet".into()), Call::default())
            .unwrap_err();
        assert!(err.to_string().contains("not on this route"));
    }
}
