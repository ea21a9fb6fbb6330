//! Model providers: turn a [`ChatRequest`] (the model's request) into an upstream HTTP call and the
//! upstream's answer (a JSON body or an SSE stream) into a [`Completion`]: the model's
//! [`Response`], decoded by the kind's wire (`crate::wire`), and the upstream's body as received.
//!
//! The provider layer knows nothing of caching, logging or Parea's wire format. Each kind of
//! upstream ([`openai`], [`anthropic`]) contributes three pure pieces — the request body, the
//! parse of a whole answer, a decoder of stream events — and [`client`] owns the one HTTP path
//! with its timeouts and retries. [`sse`] parses event-stream framing, [`pricing`] turns usage
//! into cost, [`upstream_error`] reads a non-2xx answer into the model's error.

pub mod anthropic;
pub mod client;
mod events;
pub mod metrics;
pub mod openai;
pub mod pricing;
pub mod responses;
pub mod sse;
pub mod upstream_error;

use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;

pub use crate::call::ModelCall;
pub use crate::config::{Price, ProviderKind};
/// Token counts as the upstream reported them, cached and reasoning parts apart.
pub use crate::model::Usage;
use crate::model::{Response, Wire};
use crate::retry::{self, Caller};
pub use client::{Provider, UpstreamStream};
pub use pricing::PriceTable;

pub use crate::model::MAX_TOOL_CALLS;
/// The bound of an Anthropic content block's `index`: above [`MAX_TOOL_CALLS`], as citations
/// split one answer into many text blocks; blocks are kept by index, never by position.
pub const MAX_CONTENT_BLOCKS: u64 = 1024;

/// A call ready for a provider: the request as the model (its model the provider's; templates
/// rendered, deployment laid under, history placed), and how it goes to the provider.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    /// The request, and the client's body for a same-wire call. Its cache key, every encoding
    /// and its record's configuration are made from it.
    pub call: std::sync::Arc<ModelCall>,
    /// The body for a provider of another wire than the request's (without `stream`): the
    /// request encoded by the provider's wire before any upstream call, so that what it cannot
    /// honour is refused first. Derived from the request: not in the cache key. `None` for a
    /// call in the request's own wire (sent [`ModelCall::same_wire_body`], or the model encoded
    /// in OpenAI's chat wire, which refuses nothing, when it is sent).
    pub translated: Option<bytes::Bytes>,
    /// Headers of the request's own wire sent with a same-wire call (Anthropic's
    /// `anthropic-version` and `anthropic-beta`), beating the provider's own.
    pub forward: Vec<(hyper::header::HeaderName, hyper::header::HeaderValue)>,
}

impl ChatRequest {
    /// A call of `call`, not yet encoded for its provider.
    pub fn new(call: ModelCall) -> ChatRequest {
        ChatRequest {
            call: std::sync::Arc::new(call),
            translated: None,
            forward: Vec::new(),
        }
    }

    /// The provider's name of the model asked.
    pub fn model(&self) -> &str {
        &self.call.request.model
    }
}

/// The body of `req` for a provider called in `wire`, asking for a stream (and, on OpenAI's chat
/// wire, its usage) when `stream`: the call encoded at prepare ([`ChatRequest::translated`]),
/// else the client's own body for a same-wire call, else the model encoded in OpenAI's chat
/// wire (a Parea request, or one a deployment or templates changed).
pub(crate) fn call_body(
    req: &ChatRequest,
    wire: Wire,
    stream: bool,
) -> Result<Bytes, ProviderError> {
    let protocol = |e: serde_json::Error| ProviderError::Protocol(e.to_string());
    // In this order, each only if the one before is not there: the client's body is rewritten
    // only for a call that sends it.
    let body = if let Some(body) = &req.translated {
        body.clone()
    } else if let Some(sent) = req.call.same_wire_body() {
        Bytes::from(sent.map_err(protocol)?)
    } else {
        let options = crate::wire::openai_chat::EncodeOptions { stream };
        let call = &req.call;
        return crate::wire::openai_chat::encode_request(&call.request, &call.hints, &options)
            .map(|e| Bytes::from(e.body))
            .map_err(|e| ProviderError::Protocol(e.message));
    };
    if !stream {
        return Ok(body);
    }
    let members = match wire {
        Wire::OpenAiChat | Wire::Parea => {
            "\"stream\":true,\"stream_options\":{\"include_usage\":true}"
        }
        Wire::AnthropicMessages | Wire::OpenAiResponses => "\"stream\":true",
    };
    with_members(&body, members).map(Bytes::from)
}

/// `body`, a JSON object, with `members` (`"name":value` pairs, comma-separated) added before
/// its closing brace: how a body encoded once at prepare asks for a stream.
pub(crate) fn with_members(body: &[u8], members: &str) -> Result<Vec<u8>, ProviderError> {
    let not_object = || ProviderError::Protocol("the encoded body is not a JSON object".into());
    let end = body
        .iter()
        .rposition(|b| *b == b'}')
        .ok_or_else(not_object)?;
    let empty = body[..end]
        .iter()
        .rev()
        .find(|b| !b.is_ascii_whitespace())
        .ok_or_else(not_object)?
        == &b'{';
    let mut out = Vec::with_capacity(body.len() + members.len() + 2);
    out.extend_from_slice(&body[..end]);
    if !empty {
        out.push(b',');
    }
    out.extend_from_slice(members.as_bytes());
    out.push(b'}');
    Ok(out)
}

impl Piece {
    /// The text this piece adds: `text`, else its events' text deltas (borrowed when there is
    /// one).
    pub fn text_ref(&self) -> Option<std::borrow::Cow<'_, str>> {
        use std::borrow::Cow;
        if let Some(text) = &self.text {
            return Some(Cow::Borrowed(text));
        }
        let mut texts = self.events.iter().filter_map(|e| match e {
            crate::model::StreamEvent::TextDelta { text, .. } if !text.is_empty() => {
                Some(text.as_str())
            }
            _ => None,
        });
        let first = texts.next()?;
        match texts.next() {
            None => Some(Cow::Borrowed(first)),
            Some(second) => {
                let mut joined = String::from(first);
                joined.push_str(second);
                texts.for_each(|t| joined.push_str(t));
                Some(Cow::Owned(joined))
            }
        }
    }
}

impl From<&str> for Piece {
    /// A piece of text only.
    fn from(text: &str) -> Piece {
        Piece {
            text: Some(text.to_owned()),
            ..Piece::default()
        }
    }
}

/// One piece of an upstream stream as it arrives: from an OpenAI-kind upstream, the text it
/// adds and the event's JSON as received, for OpenAI-route clients; from an Anthropic-kind
/// upstream, the model's events it made (its text among them: [`Piece::text_ref`]), which each
/// door renders in its own, and the event as received, for Messages-door clients.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Piece {
    /// The text it adds, when it is not in `events` (held once, not twice).
    pub text: Option<String>,
    pub chunk: Option<String>,
    /// The model's events of this piece (empty when `chunk` carries it as received, unless
    /// `chunk_events`).
    pub events: Vec<crate::model::StreamEvent>,
    /// `events` are `chunk`'s, decoded by the provider's decoder for a door that renders the
    /// model: it does not decode `chunk` again.
    pub chunk_events: bool,
    /// `chunk` only reports usage (no choices): sent only to OpenAI-route clients that asked
    /// for it (`stream_options.include_usage`).
    pub usage_only: bool,
    /// The event as an Anthropic-kind upstream sent it (`ping`s too, which make no model
    /// event): the Messages door sends it on as it came.
    pub raw_event: Option<RawEvent>,
}

/// An SSE event as the upstream sent it: its name (when it had one) and its data, in the wire
/// of the upstream's kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEvent {
    pub wire: crate::model::Wire,
    pub name: Option<String>,
    pub data: String,
}

impl RawEvent {
    /// The bytes it holds.
    pub fn len(&self) -> usize {
        self.name.as_ref().map_or(0, String::len) + self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A whole answer: the model's [`Response`] (blocks, finish, usage, model, id), decoded by the
/// provider kind's wire, and what is not the model's.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Completion {
    /// The answer: text, tool call and reasoning blocks (signatures kept), why the model
    /// stopped (no wire's word past here), token counts, the model that answered (may be a
    /// dated snapshot of the requested one) and the provider's id of the answer.
    pub response: Response,
    /// The upstream's whole answer body as received (OpenAI kind, non-stream): returned as it
    /// is to OpenAI-route clients, so fields promptd does not know reach them.
    pub raw: Option<String>,
    /// A stream's answer was longer than what is held of it (`max_response_bytes`): `response`
    /// is its head. Such an answer was forwarded whole but is not cached.
    pub truncated: bool,
}

/// Append `piece` to `text` while `text` stays within `limit` bytes (cut at a character
/// boundary); `false` once something was left out.
pub(crate) fn push_within(text: &mut String, piece: &str, limit: usize) -> bool {
    let room = limit.saturating_sub(text.len());
    if piece.len() <= room {
        text.push_str(piece);
        return true;
    }
    let mut end = room;
    while !piece.is_char_boundary(end) {
        end -= 1;
    }
    text.push_str(&piece[..end]);
    false
}

/// The error of a stream whose tool calls' names and arguments go past what is held.
pub(crate) fn tool_calls_too_long(limit: usize) -> ProviderError {
    ProviderError::Stream(format!(
        "the answer's tool calls are longer than max_response_bytes ({limit} bytes)"
    ))
}

impl Completion {
    /// The text the model wrote (its text blocks joined).
    pub fn text(&self) -> String {
        self.response.text()
    }

    /// The tool calls, in order: `(id, name, arguments)`.
    pub fn tool_calls(&self) -> impl Iterator<Item = (&str, &str, &str)> {
        self.response.tool_calls()
    }

    /// Parea's `content`: the text, or — when the model called functions — the calls as a JSON
    /// array ([`tool_calls_json`]).
    pub fn content(&self) -> String {
        content_of(&self.response)
    }
}

/// Parea's `content` of an answer: its text, or — when the model called functions — the calls
/// as a JSON array ([`tool_calls_json`]).
pub fn content_of(response: &Response) -> String {
    if response.tool_calls().next().is_none() {
        response.text()
    } else {
        tool_calls_json(response.tool_calls())
    }
}

/// The JSON text of tool calls `(id, name, arguments)`, as carried in Parea's `content`: an
/// array of `{"id", "type": "function", "function": {"name", "arguments"}}` (arguments a JSON
/// string, as OpenAI sends them).
pub fn tool_calls_json<'a>(calls: impl IntoIterator<Item = (&'a str, &'a str, &'a str)>) -> String {
    #[derive(Serialize)]
    struct Call<'a> {
        id: &'a str,
        #[serde(rename = "type")]
        kind: &'static str,
        function: Function<'a>,
    }
    #[derive(Serialize)]
    struct Function<'a> {
        name: &'a str,
        arguments: &'a str,
    }
    let calls: Vec<Call<'_>> = calls
        .into_iter()
        .map(|(id, name, arguments)| Call {
            id,
            kind: "function",
            function: Function { name, arguments },
        })
        .collect();
    serde_json::to_string(&calls).unwrap_or_default()
}

/// What went wrong talking to an upstream.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    /// A non-2xx answer, with what the upstream said: its message (not yet masked of keys:
    /// `engine::provider_error` does that), code, param and type ([`upstream_error`]).
    #[error("status {status}: {}", error.message)]
    Status {
        status: u16,
        error: Box<crate::model::Error>,
        retry_after: Option<Duration>,
    },
    /// Nothing accepted the connection at the provider's address.
    #[error("connection refused")]
    Refused,
    /// DNS failure, TLS failure, reset before an answer.
    #[error("{0}")]
    Unreachable(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// A 2xx answer promptd could not read.
    #[error("{0}")]
    Protocol(String),
    /// The stream failed after it started (error event, cut connection, idle timeout).
    #[error("{0}")]
    Stream(String),
    /// `limit` calls were in flight to the provider and no slot freed within `waited`.
    #[error("{limit} calls in flight (max_concurrent); none finished within {waited:?}")]
    Busy { limit: usize, waited: Duration },
}

impl ProviderError {
    /// The `kind` label of the provider error metric.
    pub fn kind(&self) -> &'static str {
        match self {
            ProviderError::Status { status, .. } if *status < 500 => "status_4xx",
            ProviderError::Status { .. } => "status_5xx",
            ProviderError::Refused | ProviderError::Unreachable(_) => "unreachable",
            ProviderError::Timeout(_) => "timeout",
            ProviderError::Protocol(_) => "protocol",
            ProviderError::Stream(_) => "stream",
            ProviderError::Busy { .. } => "busy",
        }
    }

    /// Worth another try before any byte reached the client.
    fn is_retryable(&self) -> bool {
        match self {
            ProviderError::Status { status, .. } => reqwest::StatusCode::from_u16(*status)
                .is_ok_and(|status| retry::retryable(status, Caller::ClientWaiting)),
            ProviderError::Refused | ProviderError::Unreachable(_) => true,
            ProviderError::Timeout(_)
            | ProviderError::Protocol(_)
            | ProviderError::Stream(_)
            | ProviderError::Busy { .. } => false,
        }
    }
}

/// What a stream decoder made of one event.
#[derive(Debug, Default, PartialEq)]
pub struct Decoded {
    /// Text to forward to the client now.
    pub delta: Option<String>,
    /// The event's JSON as received, when the upstream speaks OpenAI's chunk format.
    pub chunk: Option<String>,
    /// `chunk` only reports usage (see [`Piece::usage_only`]).
    pub usage_only: bool,
    /// The model's events of the event, from an upstream whose wire the client may not speak.
    pub events: Vec<crate::model::StreamEvent>,
    /// `events` are `chunk`'s, decoded once for a door that renders the model.
    pub chunk_events: bool,
    /// The upstream signalled the end of the answer.
    pub done: bool,
}

/// Per-kind stream state: the kind's decoder and the answer assembled from its events.
#[derive(Debug)]
pub enum StreamDecoder {
    OpenAi(Box<openai::StreamState>),
    Anthropic(Box<anthropic::StreamState>),
    Responses(Box<responses::StreamState>),
}

impl StreamDecoder {
    /// A decoder of a stream in `wire` that holds at most `held` bytes of the answer (its
    /// text's head; tool calls longer than that are an error). `for_model`: the stream goes to
    /// a door that renders the model's events, which an OpenAI chat stream then passes on with
    /// each chunk (each of the other wires' events are the model's already).
    pub fn new(wire: Wire, held: usize, for_model: bool) -> Self {
        match wire {
            Wire::OpenAiChat | Wire::Parea => {
                let state = openai::StreamState::new(held);
                let state = if for_model {
                    state.keeping_events()
                } else {
                    state
                };
                StreamDecoder::OpenAi(Box::new(state))
            }
            Wire::AnthropicMessages => {
                StreamDecoder::Anthropic(Box::new(anthropic::StreamState::new(held)))
            }
            Wire::OpenAiResponses => {
                StreamDecoder::Responses(Box::new(responses::StreamState::new(held)))
            }
        }
    }

    /// The wire of the stream's events.
    pub fn wire(&self) -> Wire {
        match self {
            StreamDecoder::OpenAi(_) => Wire::OpenAiChat,
            StreamDecoder::Anthropic(_) => Wire::AnthropicMessages,
            StreamDecoder::Responses(_) => Wire::OpenAiResponses,
        }
    }

    /// What one event gives.
    pub fn on_event(&mut self, event: &sse::SseEvent) -> Result<Decoded, ProviderError> {
        match self {
            StreamDecoder::OpenAi(s) => s.on_event(event),
            StreamDecoder::Anthropic(s) => s.on_event(event),
            StreamDecoder::Responses(s) => s.on_event(event),
        }
    }

    /// Whether each event goes on as it came ([`Piece::raw_event`]): an Anthropic-kind
    /// upstream's for the Messages door, a Responses upstream's for the Responses door (an
    /// OpenAI chat upstream's chunk already does).
    pub fn keeps_events(&self) -> bool {
        !matches!(self, StreamDecoder::OpenAi(_))
    }

    /// The body ended without an explicit end marker: is what we have a complete answer?
    pub fn ended_cleanly(&self) -> bool {
        match self {
            StreamDecoder::OpenAi(s) => s.ended_cleanly(),
            StreamDecoder::Anthropic(s) => s.ended_cleanly(),
            StreamDecoder::Responses(s) => s.ended_cleanly(),
        }
    }

    pub fn into_completion(self) -> Completion {
        match self {
            StreamDecoder::OpenAi(s) => s.into_completion(),
            StreamDecoder::Anthropic(s) => s.into_completion(),
            StreamDecoder::Responses(s) => s.into_completion(),
        }
    }
}
