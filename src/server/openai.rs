//! The OpenAI-compatible routes: `POST /v1/chat/completions` (whole and streamed) and
//! `GET /v1/models[/{id}]`. Each translates HTTP to the engine's calls — the same pipeline as
//! the Parea routes — and answers in OpenAI's shapes, errors included.

use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};

use super::body::{self, ResponseBody};
use super::State;
use crate::cache::{CacheKey, CacheStatus};
use crate::call::ApiError;
use crate::engine::RequestCtx;
use crate::frontends::openai::{
    self as wire, completion_body, models, OpenAiEvents, RequestHeaders,
};

const TRACE_HEADER: HeaderName = HeaderName::from_static("x-promptd-trace-id");
const OVERHEAD_HEADER: HeaderName = HeaderName::from_static("x-promptd-overhead-ms");

/// An error in OpenAI's shape.
pub fn error(err: &ApiError) -> Response<ResponseBody> {
    let (status, bytes) = wire::error_body(err);
    let mut response = Response::new(ResponseBody::Full(Some(bytes)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    body::retry_after(&mut response, err);
    response
}

/// `POST /v1/chat/completions`.
pub async fn chat_completions(
    req: Request<Incoming>,
    ctx: RequestCtx,
    state: &State,
) -> Response<ResponseBody> {
    let started = Instant::now();
    match Box::pin(chat(req, ctx, state, started)).await {
        Ok(response) => response,
        Err(e) => error(&e),
    }
}

async fn chat(
    req: Request<Incoming>,
    ctx: RequestCtx,
    state: &State,
    started: Instant,
) -> Result<Response<ResponseBody>, ApiError> {
    let (parts, request_body) = req.into_parts();
    let headers = &parts.headers;
    let promptd_headers = request_headers(headers);
    let config = state.config.load_full();
    let bytes = body::read_body(
        headers,
        request_body,
        config.max_body,
        state.engine.memory(),
    )
    .await?;
    let call = wire::decode_chat(&bytes, &promptd_headers)?;
    let target = wire::resolve_model(&call.model, &config)?;
    let (stream, include_usage) = (call.stream, call.include_usage);
    let asked = call.model.clone();
    let request = call.into_request(target);
    if stream {
        let s = Box::pin(state.engine.stream(request, ctx)).await?;
        let (cache, key, wait, trace_id) = (s.cache, s.key, s.provider_wait, s.trace_id.clone());
        let dropped = s.dropped;
        let events = OpenAiEvents::new(s.items, include_usage, s.trace_id, asked);
        let mut response = Response::new(ResponseBody::OpenAi(events));
        let h = response.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        let served = Served {
            cache,
            key,
            trace_id: &trace_id,
            started,
            wait,
            dropped: &dropped,
        };
        promptd_headers_of(&mut response, served);
        return Ok(response);
    }
    let answer = Box::pin(state.engine.complete(request, ctx)).await?;
    let trace_id = answer.response.inference_id.clone();
    let created = chrono::Utc::now().timestamp();
    let body = completion_body(&answer.entry, &trace_id, created);
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

/// promptd's request headers (`x-promptd-*`) of a `/v1` request, as sent.
pub(super) fn request_headers(headers: &HeaderMap) -> RequestHeaders<'_> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    RequestHeaders {
        cache: header("x-promptd-cache"),
        trace_id: header("x-promptd-trace-id"),
        parent_trace_id: header("x-promptd-parent-trace-id"),
        root_trace_id: header("x-promptd-root-trace-id"),
        project: header("x-promptd-project"),
        tags: header("x-promptd-tags"),
        metadata: header("x-promptd-metadata"),
        inputs: header("x-promptd-inputs"),
    }
}

/// What the headers of an answer tell.
pub(super) struct Served<'a> {
    pub cache: CacheStatus,
    pub key: Option<CacheKey>,
    pub trace_id: &'a str,
    pub started: Instant,
    pub wait: Duration,
    /// Hints a translated call left out (`x-promptd-dropped`).
    pub dropped: &'a [String],
}

/// `x-promptd-cache`, `x-promptd-cache-key`, `x-promptd-trace-id`, `x-promptd-overhead-ms`
/// (the time since the request arrived less the time spent waiting for the provider).
pub(super) fn promptd_headers_of(response: &mut Response<ResponseBody>, s: Served<'_>) {
    body::completion_headers(response, s.cache, s.key.as_ref(), s.wait, s.dropped);
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(s.trace_id) {
        h.insert(TRACE_HEADER, v);
    }
    let overhead = s.started.elapsed().saturating_sub(s.wait);
    if let Ok(v) = HeaderValue::from_str(&format!("{:.3}", overhead.as_secs_f64() * 1000.0)) {
        h.insert(OVERHEAD_HEADER, v);
    }
}

/// The model list: configured providers' models, routing aliases, deployments.
pub(super) async fn model_list(state: &State) -> models::ModelList {
    let discovered = state.engine.discovered_models().await;
    let config = state.config.load();
    let deployments: Vec<String> = state
        .deployments
        .status()
        .deployments
        .into_iter()
        .filter(|d| d.serving)
        .map(|d| d.id)
        .collect();
    models::list(&config, &discovered, &deployments, state.started_unix())
}

/// `GET /v1/models`.
pub async fn list_models(state: &State) -> Response<ResponseBody> {
    body::json(StatusCode::OK, &model_list(state).await)
}

/// `GET /v1/models/{id}` (the id percent-encoded, as `deployment%2Fgreet`, or not).
pub async fn get_model(state: &State, raw_id: &str) -> Response<ResponseBody> {
    let id = percent_encoding::percent_decode_str(raw_id).decode_utf8_lossy();
    let found = model_list(state)
        .await
        .data
        .into_iter()
        .find(|m| m.id == id);
    match found {
        Some(model) => body::json(StatusCode::OK, &model),
        None => error(&ApiError::ModelNotFound(format!(
            "The model `{id}` does not exist in promptd's model list"
        ))),
    }
}
