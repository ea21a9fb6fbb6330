//! OpenAI's Responses door: `POST /v1/responses` (whole and streamed: Codex, the OpenAI Agents
//! SDK, `client.responses.create`), and the answers it keeps: `GET` and `DELETE
//! /v1/responses/{id}`, `GET /v1/responses/{id}/input_items`. It translates HTTP to the
//! engine's calls — the same pipeline as the other doors — and answers in the Responses API's
//! shapes: the `response` object, or its typed events with `sequence_number`; errors in
//! OpenAI's shape.
//!
//! A provider that serves the Responses API (`responses = true`; OpenAI's own URL) is sent the
//! client's body as it came and its answer and events come back as received; every other —
//! chat-completions servers (vLLM, llama.cpp, Ollama) and Anthropic-kind providers — is
//! reached through the internal model, its answer rendered in this wire. Keys: the provider's
//! own; a provider configured without one gets the client's bearer ([`client_key`]).
//!
//! **Kept answers** ([`crate::response_store`]). Unless the request says `store: false` (or
//! `[responses] enabled = false`), each answer is kept under the id the client saw
//! (`resp_<trace id>`; [`entry_id`](crate::frontends::responses::entry_id) for a cached answer, the same for every hit of its owner;
//! or the provider's own id for an answer it sent in this wire): the whole
//! answer's `response` object before it is sent; a stream's, rendered from the whole answer
//! (or the provider's `response.completed` as it came), before `response.completed` goes out
//! (so a client that has read the stream's end can continue it at once). A failed answer is
//! not kept. The owner is the Unix-socket peer's uid, or one shared owner for all TCP clients;
//! another owner's id is unknown (400 on `previous_response_id`, 404 on `GET`/`DELETE`). A
//! request naming `previous_response_id` is expanded to the whole conversation before it is
//! decoded ([`crate::frontends::responses::continued`]), and so goes to a provider of this wire as
//! the whole conversation too; a rendered `response` object says `store` and
//! `previous_response_id` as the request did.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Value};

use super::body::{self, ResponseBody};
use super::client_key::client_key;
use super::openai::{error, promptd_headers_of, request_headers, Served};
use super::State;
use crate::cache::entry::RawWire;
use crate::cache::{CacheEntry, CacheStatus};
use crate::call::ApiError;
use crate::config::Config;
use crate::engine::{Client, RequestCtx};
use crate::frontends::model_events::ModelEvents;
use crate::frontends::openai::{resolve_model, Target};
use crate::frontends::responses::{
    continued, decode_responses, entry_id, now_ms, previous_response_id, response_id,
    unknown_previous, wants_store, Keep, KeptInput, ResponsesRender, PREVIOUS,
};
use crate::frontends::DoorCall;
use crate::memory::Reservation;
use crate::response_store::{Owner, Stored};
use crate::wire::openai_responses::{render_response, ResponseHeader};

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

/// Who owns what a request keeps, and may read it back (see the header).
pub fn owner_of(ctx: &RequestCtx) -> Owner {
    match ctx.client {
        Client::Unix { uid, .. } => Owner::Uid(uid),
        Client::Tcp { .. } => Owner::Tcp,
    }
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(e.to_string())
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
    let owner = owner_of(&ctx);
    let keeps = wants_store(&call) && config.responses.enabled;
    let previous = previous_response_id(&call)?.map(str::to_owned);
    let Conversation { call, input, _held } = conversation(
        state,
        &config,
        owner,
        &bytes,
        call,
        previous.as_deref(),
        keeps,
    )?;
    let keep = input
        .filter(|_| keeps)
        .map(|input| Keep::new(Arc::clone(&state.responses), owner, input, config.responses));
    let target = resolve_model(call.model(), &config)?;
    let mut base = base;
    if let Target::Provider { provider, .. } = &target {
        base.provider_api_key = client_key(headers, provider, state);
    }
    let (stream, asked) = (call.stream(), call.model().to_owned());
    let request = call.into_request(target, base)?;
    let created = chrono::Utc::now().timestamp();
    let echo = |header: &mut ResponseHeader| {
        header
            .echo
            .insert("store".into(), Value::Bool(keep.is_some()));
        if let Some(id) = &previous {
            header
                .echo
                .insert(PREVIOUS.into(), Value::from(id.as_str()));
        }
    };
    if stream {
        let s = Box::pin(state.engine.stream(request, ctx)).await?;
        let trace_id = s.trace_id.clone();
        let mut header = ResponseHeader::new(response_id(&trace_id), created, asked);
        echo(&mut header);
        let keep = keep.map(|keep| (keep, header.clone()));
        let renderer = ResponsesRender::new(header, keep, s.key.map(|key| (key, owner)));
        let events = ModelEvents::new(s.items, renderer);
        let mut response = Response::new(ResponseBody::Responses(Box::new(events)));
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
    let entry = &answer.entry;
    let (id, named_by_entry) = match (answer.cache, &answer.key) {
        (CacheStatus::Bypass, _) | (_, None) => (response_id(&trace_id), false),
        (_, Some(key)) => (entry_id(key, entry.created_ms, owner), true),
    };
    let body = match (&entry.raw_response, entry.raw_wire) {
        // The provider's own answer in this wire, as it came, kept under its own id.
        (Some(raw), RawWire::OpenAiResponses) => {
            // A cached one is the same answer under the same id at every hit.
            if let (Some(keep), Some(id)) = (keep, entry.response.id.as_deref()) {
                let cached = matches!(answer.cache, CacheStatus::Hit | CacheStatus::Stale);
                keep.put(id, cached, || raw.as_bytes());
            }
            CacheEntry::raw_body(entry, RawWire::OpenAiResponses).unwrap_or_default()
        }
        _ => {
            let model = entry.response.model.clone().unwrap_or(asked);
            let mut header = ResponseHeader::new(id, created, model);
            echo(&mut header);
            let body = Bytes::from(render_response(&entry.response, &header));
            // An answer named by its entry is the same answer whenever it is named.
            if let Some(keep) = keep {
                keep.put(&header.id, named_by_entry, || &body);
            }
            body
        }
    };
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

/// A call with its whole conversation: the input to keep with its answer (when it is kept),
/// and the memory a continuation's expanded body holds while the call is.
struct Conversation {
    call: DoorCall,
    input: Option<KeptInput>,
    _held: Option<Reservation>,
}

/// `call` (of body `bytes`) as the provider gets it: a continuation of kept response
/// `previous` decoded from the body holding the whole conversation (reserved from
/// max_request_memory, like the body it grows from); else as it came.
fn conversation(
    state: &State,
    config: &Config,
    owner: Owner,
    bytes: &Bytes,
    call: DoorCall,
    previous: Option<&str>,
    keeps: bool,
) -> Result<Conversation, ApiError> {
    let Some(id) = previous else {
        let input = keeps.then(|| KeptInput::Body(Bytes::clone(bytes)));
        return Ok(Conversation {
            call,
            input,
            _held: None,
        });
    };
    let stored = state
        .responses
        .get(id, owner, config.responses.max_age, now_ms())
        .map_err(internal)?
        .ok_or_else(|| unknown_previous(id))?;
    let earlier = stored.conversation().map_err(internal)?;
    drop(call);
    let grown = earlier.iter().map(String::len).sum::<usize>() + bytes.len();
    // What the client could not have sent itself is not built for it either: the whole
    // conversation is bounded as a rendered prompt is. Retrying would not help: a 400, not a
    // 503.
    if grown as u64 > config.max_rendered {
        return Err(ApiError::invalid(
            PREVIOUS,
            format!(
                "previous_response_id: the conversation of `{id}` with this input would be \
                 {grown} bytes, over max_rendered ({} bytes): send the part of the \
                 conversation you need in `input` instead",
                config.max_rendered
            ),
        ));
    }
    let held = state
        .engine
        .memory()
        .try_reserve(grown as u64)
        .map_err(ApiError::ServerBusy)?;
    let (body, input) = continued(bytes, &earlier)?;
    Ok(Conversation {
        call: decode_responses(body)?,
        input: Some(KeptInput::Items(input)),
        _held: Some(held),
    })
}

/// The kept response `id` of the request's owner, or a 404 in OpenAI's words.
fn kept(state: &State, ctx: &RequestCtx, id: &str) -> Result<Stored, ApiError> {
    let max_age = state.config.load().responses.max_age;
    state
        .responses
        .get(id, owner_of(ctx), max_age, now_ms())
        .map_err(internal)?
        .ok_or_else(|| ApiError::ResponseNotFound(id.to_owned()))
}

/// `GET /v1/responses/{id}`: the `response` object as it was answered.
pub fn get(state: &State, ctx: &RequestCtx, id: &str) -> Result<Response<ResponseBody>, ApiError> {
    let stored = kept(state, ctx, id)?;
    Ok(body::raw_json(StatusCode::OK, stored.response.into_bytes()))
}

/// `DELETE /v1/responses/{id}`: OpenAI's `response.deleted` object.
pub fn delete(
    state: &State,
    ctx: &RequestCtx,
    id: &str,
) -> Result<Response<ResponseBody>, ApiError> {
    if !state
        .responses
        .delete(id, owner_of(ctx), now_ms())
        .map_err(internal)?
    {
        return Err(ApiError::ResponseNotFound(id.to_owned()));
    }
    let deleted = json!({"id": id, "object": "response.deleted", "deleted": true});
    Ok(body::json(StatusCode::OK, &deleted))
}

/// `GET /v1/responses/{id}/input_items`: the kept input items as OpenAI's list object (the
/// whole conversation before the answer, `previous_response_id`'s items included), newest
/// first unless the query says `order=asc`. All in one page (`has_more: false`).
pub fn input_items_of(
    state: &State,
    ctx: &RequestCtx,
    id: &str,
    query: Option<&str>,
) -> Result<Response<ResponseBody>, ApiError> {
    let stored = kept(state, ctx, id)?;
    let mut items: Vec<Value> = serde_json::from_str(&stored.input).map_err(internal)?;
    let ascending = query.is_some_and(|q| q.split('&').any(|pair| pair == "order=asc"));
    if !ascending {
        items.reverse();
    }
    let item_id = |item: Option<&Value>| item.and_then(|i| i.get("id")).cloned();
    let list = json!({"object": "list", "first_id": item_id(items.first()),
        "last_id": item_id(items.last()), "has_more": false, "data": items});
    Ok(body::json(StatusCode::OK, &list))
}
