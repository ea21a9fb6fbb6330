//! Anthropic's Messages door: `POST /v1/messages` (whole and streamed; `?beta=true`, as Claude
//! Code sends it, is the same route) and `POST /v1/messages/count_tokens`. It translates HTTP
//! to the engine's calls — the same pipeline as the other doors — and answers in Anthropic's
//! shapes, errors included.
//!
//! Keys: the provider's configured key is used; a provider configured without one is sent the
//! credential the client brought ([`client_key`]).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use serde_json::json;

use super::body::{self, HeldBody, ResponseBody};
use super::client_key::client_key;
use super::model_events::{ModelEvents, Render};
use super::openai::{promptd_headers_of, request_headers, Served};
use super::State;
use crate::cache::entry::RawWire;
use crate::cache::CacheEntry;
use crate::call::{ApiError, Call};
use crate::engine::RequestCtx;
use crate::frontends::anthropic::{decode_messages, error_body, error_event, estimate_tokens};
use crate::frontends::openai::{resolve_model_or, Target};
use crate::frontends::{DoorCall, Routed};
use crate::model::{StreamEvent, Wire};
use crate::providers::ProviderKind;
use crate::providers::RawEvent;
use crate::wire::anthropic::{render_response, EventRenderer};

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
    let target = resolve_model_or(&call.model, &config, default)?;
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
    let (stream, asked) = (call.stream, call.model.clone());
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
        let renderer = MessagesRender {
            renderer: EventRenderer::new(&s.trace_id, &asked).estimating_input(estimated),
            saw_stop: false,
        };
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

/// The `message` body of a whole answer: an Anthropic-kind upstream's own body as it came
/// (shared with the cache entry, not copied), else rendered from the entry's model answer.
fn message_body(entry: &Arc<CacheEntry>, trace_id: &str, asked: String) -> Bytes {
    if entry.raw_response.is_some() && entry.raw_wire == RawWire::AnthropicMessages {
        return Bytes::from_owner(RawBody(Arc::clone(entry)));
    }
    let mut rendered = entry.response.clone();
    rendered.id.get_or_insert_with(|| trace_id.to_owned());
    let model = rendered.model.clone().unwrap_or(asked);
    Bytes::from(render_response(&rendered, &model))
}

/// A cache entry seen as the bytes of its upstream body.
struct RawBody(Arc<CacheEntry>);

impl AsRef<[u8]> for RawBody {
    fn as_ref(&self) -> &[u8] {
        self.0
            .raw_response
            .as_deref()
            .unwrap_or_default()
            .as_bytes()
    }
}

/// Anthropic's events: rendered by the wire's [`EventRenderer`], or an Anthropic-kind
/// upstream's forwarded as they came.
#[derive(Debug)]
pub struct MessagesRender {
    renderer: EventRenderer,
    /// The forwarded events held the upstream's `message_stop`.
    saw_stop: bool,
}

/// The end of a forwarded stream whose upstream did not send it (it stopped after its
/// `message_delta`).
const MESSAGE_STOP: &[u8] = b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

impl Render for MessagesRender {
    fn render(&mut self, event: &StreamEvent, out: &mut Vec<u8>) {
        self.renderer.render(event, out);
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        self.renderer.finish(out);
    }

    fn forwards(&mut self, raw: &RawEvent) -> bool {
        self.saw_stop |= raw.name.as_deref() == Some("message_stop");
        raw.wire == Wire::AnthropicMessages
    }

    fn end_forwarded(&mut self, out: &mut Vec<u8>) {
        if !self.saw_stop {
            out.extend_from_slice(MESSAGE_STOP);
        }
    }

    fn forwarded_error(&mut self, message: &str, out: &mut Vec<u8>) {
        out.extend_from_slice(&error_event(message));
    }
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
            Box::pin(
                state
                    .engine
                    .count_tokens(&provider, call.sent, key, &call.headers),
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
