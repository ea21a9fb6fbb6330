//! OpenAI's Responses door: `POST /v1/responses` (whole and streamed: Codex, the OpenAI Agents
//! SDK, `client.responses.create`). It translates HTTP to the engine's calls — the same
//! pipeline as the other doors — and answers in the Responses API's shapes: the `response`
//! object, or its typed events with `sequence_number`; errors in OpenAI's shape.
//!
//! A provider that serves the Responses API (`responses = true`; OpenAI's own URL) is sent the
//! client's body as it came and its answer and events come back as received; every other —
//! chat-completions servers (vLLM, llama.cpp, Ollama) and Anthropic-kind providers — is
//! reached through the internal model, its answer rendered in this wire. Keys: the provider's
//! own; a provider configured without one gets the client's bearer ([`client_key`]).

use std::time::Instant;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Request, Response};

use super::body::{self, ResponseBody};
use super::client_key::client_key;
use super::model_events::{ModelEvents, Render};
use super::openai::{error, promptd_headers_of, request_headers, Served};
use super::State;
use crate::api::openai::{resolve_model, Target};
use crate::api::responses::decode_responses;
use crate::api::ApiError;
use crate::cache::entry::RawWire;
use crate::cache::CacheEntry;
use crate::engine::RequestCtx;
use crate::model::{Error, ErrorKind, StreamEvent, Wire};
use crate::providers::RawEvent;
use crate::wire::openai_responses::{render_response, EventRenderer, ResponseHeader};

/// `POST /v1/responses`.
pub async fn responses(
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

async fn call(
    req: Request<Incoming>,
    ctx: RequestCtx,
    state: &State,
    started: Instant,
) -> Result<Response<ResponseBody>, ApiError> {
    let (parts, request_body) = req.into_parts();
    let headers = &parts.headers;
    let base = request_headers(headers).request()?;
    let config = state.config.load_full();
    // Held (and counted against max_request_memory) while the call is.
    let bytes = body::read_body(
        headers,
        request_body,
        config.max_body,
        state.engine.memory(),
    )
    .await?;
    let call = decode_responses(Bytes::clone(&bytes))?;
    let target = resolve_model(&call.model, &config)?;
    let mut base = base;
    if let Target::Provider { provider, .. } = &target {
        base.provider_api_key = client_key(headers, provider, state);
    }
    let (stream, asked) = (call.stream, call.model.clone());
    let request = call.into_request(target, base)?;
    let created = chrono::Utc::now().timestamp();
    if stream {
        let s = Box::pin(state.engine.stream(request, ctx)).await?;
        let trace_id = s.trace_id.clone();
        let header = ResponseHeader::new(response_id(&trace_id), created, asked);
        let renderer = ResponsesRender::new(header);
        let events = ModelEvents::new(s.items, renderer);
        let mut response = Response::new(ResponseBody::Responses(events));
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
    let body = response_body(&answer.entry, &trace_id, created, asked);
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

/// The response id of trace `trace_id`: `resp_` and its hex digits (one answer, one id).
fn response_id(trace_id: &str) -> String {
    let digits: String = trace_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    format!("resp_{digits}")
}

/// The `response` object of a whole answer: as the provider sent it when it serves the
/// Responses API, else rendered from the entry's model answer.
fn response_body(entry: &CacheEntry, trace_id: &str, created: i64, asked: String) -> Bytes {
    if let (Some(raw), RawWire::OpenAiResponses) = (&entry.raw_response, entry.raw_wire) {
        return Bytes::copy_from_slice(raw.as_bytes());
    }
    let model = entry.response.model.clone().unwrap_or(asked);
    let header = ResponseHeader::new(response_id(trace_id), created, model);
    Bytes::from(render_response(&entry.response, &header))
}

/// The Responses API's typed events, rendered by the wire's [`EventRenderer`], or an upstream's
/// own, forwarded as they came (counted, its response id noted, for a failure after them).
#[derive(Debug)]
pub struct ResponsesRender {
    renderer: EventRenderer,
    forwarded: u64,
    upstream_id: Option<String>,
}

impl ResponsesRender {
    pub fn new(header: ResponseHeader) -> Self {
        ResponsesRender {
            renderer: EventRenderer::new(header),
            forwarded: 0,
            upstream_id: None,
        }
    }
}

/// The response id of an upstream's `response.created` event.
fn created_id(data: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Created {
        response: Id,
    }
    #[derive(serde::Deserialize)]
    struct Id {
        id: String,
    }
    serde_json::from_str::<Created>(data)
        .ok()
        .map(|c| c.response.id)
}

impl Render for ResponsesRender {
    fn render(&mut self, event: &StreamEvent, out: &mut Vec<u8>) {
        self.renderer.render(event, out);
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        self.renderer.finish(out);
    }

    fn forwards(&mut self, raw: &RawEvent) -> bool {
        if raw.wire != Wire::OpenAiResponses {
            return false;
        }
        if self.forwarded == 0 {
            self.upstream_id = created_id(&raw.data);
        }
        self.forwarded += 1;
        true
    }

    // A forwarded stream carries its own end (`response.completed`).
    fn end_forwarded(&mut self, _out: &mut Vec<u8>) {}

    /// `response.failed`, numbered after the upstream's events (Codex reads a failure there).
    fn forwarded_error(&mut self, message: &str, out: &mut Vec<u8>) {
        self.renderer
            .continue_forwarded(self.forwarded, self.upstream_id.take());
        let error = Error::new(ErrorKind::Upstream, message);
        self.renderer.render(&StreamEvent::Error(error), out);
    }
}
