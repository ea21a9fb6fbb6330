//! Response bodies and request-body reading (bounded by `max_body` per request and by
//! `max_request_memory` across them: [`read_limited`]).
//!
//! [`ResponseBody`] is one buffer (JSON answers) or a stream of events: Parea's each sent as its
//! own HTTP body frame (one chunk per event, as the Parea SDK expects), the frames ready together
//! given in a row so they are written together; the other doors' batched, the events ready
//! together in one frame (SSE clients read lines, not chunks). See `frontends::batch`.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use serde::Serialize;

use crate::cache::{CacheKey, CacheStatus};
use crate::call::ApiError;
use crate::engine::CompletionStream;
use crate::frontends::anthropic::MessagesRender;
use crate::frontends::model_events::ModelEvents;
use crate::frontends::openai::OpenAiEvents;
use crate::frontends::parea::EventStream;
use crate::frontends::responses::ResponsesRender;
use crate::memory::{MemoryBudget, Reservation};

/// The body of every response promptd sends.
#[derive(Debug)]
pub enum ResponseBody {
    Full(Option<Bytes>),
    Events(EventStream),
    /// An OpenAI-route stream.
    OpenAi(OpenAiEvents),
    /// A Messages-door stream.
    Anthropic(ModelEvents<MessagesRender>),
    /// A Responses-door stream.
    Responses(Box<ModelEvents<ResponsesRender>>),
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match &mut *self {
            ResponseBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            ResponseBody::Events(events) => {
                events.poll_next(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
            }
            ResponseBody::OpenAi(events) => {
                events.poll_next(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
            }
            ResponseBody::Anthropic(events) => {
                events.poll_next(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
            }
            ResponseBody::Responses(events) => {
                events.poll_next(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, ResponseBody::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            ResponseBody::Full(None) => SizeHint::with_exact(0),
            ResponseBody::Events(_)
            | ResponseBody::OpenAi(_)
            | ResponseBody::Anthropic(_)
            | ResponseBody::Responses(_) => SizeHint::default(),
        }
    }
}

/// A JSON response with `status`.
pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<ResponseBody> {
    // Most answers fit: one allocation instead of a few doublings.
    let mut bytes = Vec::with_capacity(512);
    match serde_json::to_writer(&mut bytes, value) {
        Ok(()) => json_bytes(status, Bytes::from(bytes)),
        Err(e) => error(&ApiError::Internal(format!(
            "cannot encode the answer: {e}"
        ))),
    }
}

/// A JSON response of bytes already encoded.
pub fn raw_json(status: StatusCode, bytes: Vec<u8>) -> Response<ResponseBody> {
    json_bytes(status, Bytes::from(bytes))
}

fn json_bytes(status: StatusCode, bytes: Bytes) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::Full(Some(bytes)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A text response with `content_type`.
pub fn text(
    status: StatusCode,
    content_type: &'static str,
    text: String,
) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::Full(Some(Bytes::from(text))));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// The JSON error response of `err`.
pub fn error(err: &ApiError) -> Response<ResponseBody> {
    let mut response = json_bytes(err.status(), crate::frontends::parea::error_body(err));
    retry_after(&mut response, err);
    response
}

/// `Retry-After` on an error that says "not now" ([`ApiError::retry_after`]).
pub fn retry_after(response: &mut Response<ResponseBody>, err: &ApiError) {
    if let Some(seconds) = err.retry_after() {
        response
            .headers_mut()
            .insert(hyper::header::RETRY_AFTER, HeaderValue::from(seconds));
    }
}

/// `x-promptd-cache: hit|miss|stale|bypass` and, when the answer has one, its
/// `x-promptd-cache-key`.
pub fn completion_headers(
    response: &mut Response<ResponseBody>,
    status: CacheStatus,
    key: Option<&CacheKey>,
    provider_wait: Duration,
    dropped: &[String],
) {
    let headers = response.headers_mut();
    headers.insert(CACHE_HEADER, HeaderValue::from_static(status.as_str()));
    if let Some(value) = key.and_then(|k| HeaderValue::from_str(&k.hex()).ok()) {
        headers.insert(CACHE_KEY_HEADER, value);
    }
    if !dropped.is_empty() {
        if let Ok(value) = HeaderValue::from_str(&dropped.join(", ")) {
            headers.insert(DROPPED_HEADER, value);
        }
    }
    response.extensions_mut().insert(Served {
        cache: status,
        provider_wait,
    });
}

/// What a completion's response tells the connection that sends it: the cache outcome and the
/// time spent waiting for the provider, so the overhead metric is measured in one place (see
/// [`crate::telemetry::metrics::Metrics::request`]).
#[derive(Debug, Clone, Copy)]
pub struct Served {
    pub cache: CacheStatus,
    pub provider_wait: Duration,
}

// Names built once, not parsed (and allocated) on every answer.
const CACHE_HEADER: HeaderName = HeaderName::from_static("x-promptd-cache");
const CACHE_KEY_HEADER: HeaderName = HeaderName::from_static("x-promptd-cache-key");
/// What a call translated for a provider of another wire left out because it does not change
/// the answer (hints: `metadata`, `store`, `stream_options`, ...), comma-separated.
const DROPPED_HEADER: HeaderName = HeaderName::from_static("x-promptd-dropped");

/// The `text/event-stream` response of a started completion stream.
pub fn event_stream(stream: CompletionStream) -> Response<ResponseBody> {
    let (status, key, wait) = (stream.cache, stream.key, stream.provider_wait);
    let dropped = stream.dropped;
    let events = EventStream::new(&stream.trace_id, stream.items);
    let mut response = Response::new(ResponseBody::Events(events));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    completion_headers(&mut response, status, key.as_ref(), wait, &dropped);
    response
}

/// A request body read whole, and its share of `max_request_memory`, held as long as the body
/// is (what is decoded from it is about as large, and lives no longer in a handler).
#[derive(Debug)]
pub struct HeldBody {
    bytes: Bytes,
    _memory: Reservation,
}

impl std::ops::Deref for HeldBody {
    type Target = Bytes;

    fn deref(&self) -> &Bytes {
        &self.bytes
    }
}

/// Read a request body of at most `limit` bytes; larger ones are a 413, announced by
/// `Content-Length` or discovered while reading. Its bytes are reserved from `budget` before
/// they are held (all of a declared length at once, else as the buffer grows): past the budget
/// the request is 503 `server_busy`, and nothing more of it is read.
pub async fn read_limited(
    req: hyper::Request<Incoming>,
    limit: u64,
    budget: &MemoryBudget,
) -> Result<HeldBody, ApiError> {
    let (parts, body) = req.into_parts();
    read_body(&parts.headers, body, limit, budget).await
}

/// [`read_limited`] of a request already split, for a handler that goes on reading its
/// headers (borrowed, not copied).
pub async fn read_body(
    headers: &hyper::HeaderMap,
    mut body: Incoming,
    limit: u64,
    budget: &MemoryBudget,
) -> Result<HeldBody, ApiError> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(ApiError::PayloadTooLarge(limit));
    }
    let busy = ApiError::ServerBusy;
    // Both at most `limit`, which is at most `max_request_memory`: the casts cannot truncate on
    // a 64-bit host, and a 32-bit one cannot hold more anyway.
    let declared = declared.map(|len| usize::try_from(len).unwrap_or(usize::MAX));
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut memory = budget
        .try_reserve(declared.unwrap_or(0) as u64)
        .map_err(busy)?;
    let mut buf: Vec<u8> = Vec::with_capacity(declared.unwrap_or(0));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ApiError::BodyUnreadable(e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let needed = buf.len().saturating_add(data.len());
        if needed > limit {
            return Err(ApiError::PayloadTooLarge(limit as u64));
        }
        if needed > buf.capacity() {
            // Grow as a Vec would (doubling, within the limit), reserving first.
            let target = needed.max(buf.capacity().saturating_mul(2)).min(limit);
            memory.grow_to(target as u64).map_err(busy)?;
            buf.reserve_exact(target - buf.len());
        }
        buf.extend_from_slice(&data);
    }
    Ok(HeldBody {
        bytes: Bytes::from(buf),
        _memory: memory,
    })
}
