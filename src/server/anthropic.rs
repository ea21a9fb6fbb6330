//! Anthropic's Messages door: `POST /v1/messages` (whole and streamed; `?beta=true`, as Claude
//! Code sends it, is the same route) and `POST /v1/messages/count_tokens`. It translates HTTP
//! to the engine's calls — the same pipeline as the other doors — and answers in Anthropic's
//! shapes, errors included.
//!
//! Keys: the provider's configured key is used; a provider configured without one is sent the
//! credential the client brought ([`client_key`]).

use std::time::Instant;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use serde_json::json;

use super::body::{self, HeldBody, ResponseBody};
use super::client_key::client_key;
use super::openai::{promptd_headers_of, request_headers, Served};
use super::State;
use crate::call::{ApiError, Call};
use crate::engine::RequestCtx;
use crate::frontends::anthropic::{
    decode_messages, error_body, estimate_tokens, message_body, MessagesRender,
};
use crate::frontends::model_events::ModelEvents;
use crate::frontends::openai::{resolve_model_or, Target};
use crate::frontends::{DoorCall, Routed};
use crate::providers::ProviderKind;

/// The client's headers a call to an Anthropic-kind provider forwards as they came.
const FORWARDED: [&str; 2] = ["anthropic-version", "anthropic-beta"];

/// An error in Anthropic's shape.
pub fn error(err: &ApiError) -> Response<ResponseBody> {
    let (status, bytes) = error_body(err);
    let mut response = Response::new(ResponseBody::Full(Some(bytes)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    body::retry_after(&mut response, err);
    response
}

/// `POST /v1/messages`.
pub async fn messages(
    req: Request<Incoming>,
    ctx: RequestCtx,
    state: &State,
) -> Response<ResponseBody> {
    let started = Instant::now();
    match Box::pin(call(req, ctx, state, started)).await {
        Ok(response) => response,
        Err(e) => error(&e),
    }
}

/// A request read and decoded: the call, where it goes, and what the engine's request starts
/// from (promptd's headers, and the client's key for a provider configured without one).
struct Decoded {
    call: DoorCall,
    target: Target,
    base: Call,
    /// The body's bytes, held (and counted against `max_request_memory`) while the call is.
    _body: HeldBody,
}

async fn decode(req: Request<Incoming>, state: &State) -> Result<Decoded, ApiError> {
    let (parts, request_body) = req.into_parts();
    let headers = &parts.headers;
    let mut base = request_headers(headers).request()?;
    let config = state.config.load_full();
    let bytes = body::read_body(
        headers,
        request_body,
        config.max_body,
        state.engine.memory(),
    )
    .await?;
    let forwarded = FORWARDED
        .iter()
        .filter_map(|name| {
            let value = headers.get(*name)?;
            Some((HeaderName::from_static(name), value.clone()))
        })
        .collect();
    let call = decode_messages(Bytes::clone(&bytes), forwarded)?;
    let default = config
        .anthropic_default_provider
        .as_deref()
        .or(config.default_provider.as_deref());
    let target = resolve_model_or(call.model(), &config, default)?;
    if let Target::Provider { provider, .. } = &target {
        base.provider_api_key = client_key(headers, provider, state);
    }
    Ok(Decoded {
        call,
        target,
        base,
        _body: bytes,
    })
}

async fn call(
    req: Request<Incoming>,
    ctx: RequestCtx,
    state: &State,
    started: Instant,
) -> Result<Response<ResponseBody>, ApiError> {
    let Decoded {
        call,
        target,
        base,
        _body,
    } = decode(req, state).await?;
    let (stream, asked) = (call.stream(), call.model().to_owned());
    // A translated stream's start shows an estimate of the prompt's tokens (an OpenAI-kind
    // upstream counts them only at its end).
    let translated = match &target {
        Target::Provider { provider, .. } => {
            state.engine.provider_kind(provider) != Some(ProviderKind::Anthropic)
        }
        Target::Deployment(_) => false,
    };
    let estimated = if stream && translated {
        estimate_tokens(call.request())
    } else {
        0
    };
    let request = call.into_request(target, base)?;
    if stream {
        let s = Box::pin(state.engine.stream(request, ctx)).await?;
        let trace_id = s.trace_id.clone();
        let renderer = MessagesRender::new(&s.trace_id, &asked, estimated);
        let events = ModelEvents::new(s.items, renderer);
        let mut response = Response::new(ResponseBody::Anthropic(events));
        let h = response.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        let served = Served {
            cache: s.cache,
            key: s.key,
            trace_id: &trace_id,
            started,
            wait: s.provider_wait,
            dropped: &s.dropped,
        };
        promptd_headers_of(&mut response, served);
        return Ok(response);
    }
    let answer = Box::pin(state.engine.complete(request, ctx)).await?;
    let trace_id = answer.response.inference_id.clone();
    let body = message_body(&answer.entry, &trace_id, asked);
    let mut response = Response::new(ResponseBody::Full(Some(body)));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let served = Served {
        cache: answer.cache,
        key: answer.key,
        trace_id: &trace_id,
        started,
        wait: answer.provider_wait,
        dropped: &answer.dropped,
    };
    promptd_headers_of(&mut response, served);
    Ok(response)
}

/// `POST /v1/messages/count_tokens`: an Anthropic-kind provider counts (the body and headers
/// forwarded as for a completion, its answer returned as it came); for any other the count is
/// promptd's estimate ([`estimate_tokens`]), said so by `x-promptd-estimated`.
pub async fn count_tokens(req: Request<Incoming>, state: &State) -> Response<ResponseBody> {
    match Box::pin(count(req, state)).await {
        Ok(response) => response,
        Err(e) => error(&e),
    }
}

async fn count(req: Request<Incoming>, state: &State) -> Result<Response<ResponseBody>, ApiError> {
    let Decoded {
        call, target, base, ..
    } = decode(req, state).await?;
    let Routed { provider, call } = call.route(target)?;
    let body = match state.engine.provider_kind(&provider) {
        Some(ProviderKind::Anthropic) => {
            let key = base.provider_api_key;
            let sent = call
                .same_wire_body()
                .ok_or_else(|| ApiError::Internal("the request's body was not kept".into()))?
                .map_err(|e| ApiError::InvalidJson(e.to_string()))?;
            let body = Bytes::from(sent);
            Box::pin(
                state
                    .engine
                    .count_tokens(&provider, body, key, &call.headers),
            )
            .await?
        }
        _ => {
            let tokens = estimate_tokens(&call.request);
            let mut response = body::json(StatusCode::OK, &json!({"input_tokens": tokens}));
            response
                .headers_mut()
                .insert(ESTIMATED, HeaderValue::from_static("chars/4"));
            return Ok(response);
        }
    };
    let mut response = Response::new(ResponseBody::Full(Some(body)));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}

/// Says a token count is promptd's estimate, not the provider's.
const ESTIMATED: HeaderName = HeaderName::from_static("x-promptd-estimated");
