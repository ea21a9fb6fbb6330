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
    let call = wire::decode_chat(bytes::Bytes::clone(&bytes), &promptd_headers)?;
    let target = wire::resolve_model(call.model(), &config)?;
    let (stream, include_usage) = (call.stream(), call.include_usage);
    let asked = call.model().to_owned();
    let request = call.into_request(target)?;
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

/// promptd's request headers (`x-promptd-*`) of a `/v1` request, as sent: read in one pass over
/// the request's few headers (a lookup by name would hash each of the eight names every time).
pub(super) fn request_headers(headers: &HeaderMap) -> RequestHeaders<'_> {
    let mut found = RequestHeaders::default();
    // The first of a repeated header counts, as `HeaderMap::get` answers (one bit per name).
    let mut seen = 0u8;
    for (name, value) in headers {
        let Some(ours) = name.as_str().strip_prefix("x-promptd-") else {
            continue;
        };
        let (bit, slot) = match ours {
            "cache" => (0, &mut found.cache),
            "trace-id" => (1, &mut found.trace_id),
            "parent-trace-id" => (2, &mut found.parent_trace_id),
            "root-trace-id" => (3, &mut found.root_trace_id),
            "project" => (4, &mut found.project),
            "tags" => (5, &mut found.tags),
            "metadata" => (6, &mut found.metadata),
            "inputs" => (7, &mut found.inputs),
            _ => continue,
        };
        if seen & (1 << bit) == 0 {
            seen |= 1 << bit;
            *slot = value.to_str().ok();
        }
    }
    found
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
    h.insert(OVERHEAD_HEADER, millis_header(overhead));
}

/// A duration as milliseconds with three decimals (`0.042`), from its whole microseconds: a
/// float formatted to a precision takes the slow exact path of the formatter.
pub(super) fn millis_header(d: Duration) -> HeaderValue {
    let mut micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    // Written from the right: three decimals, the point, then the whole milliseconds (at
    // least one digit); u64::MAX takes 20 digits.
    let mut text = [0u8; 24];
    let mut at = text.len();
    let mut put = |byte: u8| {
        at -= 1;
        text[at] = byte;
    };
    for _ in 0..3 {
        put(b'0' + (micros % 10) as u8);
        micros /= 10;
    }
    put(b'.');
    loop {
        put(b'0' + (micros % 10) as u8);
        micros /= 10;
        if micros == 0 {
            break;
        }
    }
    // Digits and a point are always a header value.
    HeaderValue::from_bytes(&text[at..]).unwrap_or(HeaderValue::from_static("0.000"))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promptd_headers_are_read_in_one_pass_the_first_of_each_counting() {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.append("x-promptd-cache", HeaderValue::from_static("bypass"));
        headers.append("x-promptd-cache", HeaderValue::from_static("refresh"));
        headers.insert("x-promptd-trace-id", HeaderValue::from_static("t-1"));
        headers.insert(
            "x-promptd-tags",
            HeaderValue::from_bytes(b"\xff").expect("opaque"),
        );
        headers.insert("x-promptd-unknown", HeaderValue::from_static("x"));
        let read = request_headers(&headers);
        assert_eq!(read.cache, Some("bypass"));
        assert_eq!(read.trace_id, Some("t-1"));
        // Not text: as `HeaderMap::get(..).to_str()` would say, nothing.
        assert_eq!(read.tags, None);
        assert_eq!(read.metadata, None);
    }

    #[test]
    fn overhead_is_milliseconds_with_three_decimals() {
        let text = |d| millis_header(d).to_str().expect("text").to_owned();
        assert_eq!(text(Duration::ZERO), "0.000");
        assert_eq!(text(Duration::from_micros(42)), "0.042");
        assert_eq!(text(Duration::from_micros(1_234_567)), "1234.567");
        assert_eq!(text(Duration::from_nanos(999)), "0.000");
    }
}
