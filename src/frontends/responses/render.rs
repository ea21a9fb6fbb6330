//! The Responses wire out of the engine: the ids the door answers with ([`response_id`],
//! [`entry_id`]), what it keeps of an answer ([`Keep`], in [`crate::response_store`]), and a
//! stream's typed events ([`ResponsesRender`]: rendered from the model's events, or a
//! Responses-serving upstream's forwarded as they came, its `response.completed` kept).

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;

use super::input_items;
use crate::cache::{CacheEntry, CacheKey};
use crate::config::ResponsesConfig;
use crate::frontends::model_events::Render;
use crate::model::{Error, ErrorKind, StreamEvent, Wire};
use crate::providers::RawEvent;
use crate::response_store::{millis, Kept, Owner, Stored};
use crate::wire::openai_responses::{render_response, EventRenderer, ResponseHeader};

/// Now, in milliseconds since the Unix epoch (a kept record's time).
pub fn now_ms() -> u64 {
    millis(SystemTime::now())
}

/// What to keep of an answer once it is whole: the record's owner and input, where, and under
/// which bounds.
#[derive(Debug)]
pub struct Keep {
    store: Arc<Kept>,
    owner: Owner,
    input: KeptInput,
    limits: ResponsesConfig,
}

/// The input items a kept answer's record holds.
#[derive(Debug)]
pub enum KeptInput {
    /// The whole conversation of a continuation, built for its call (a JSON array).
    Items(String),
    /// The request's body: its own `input` items, read when the answer is kept (a cache hit
    /// kept already reads nothing).
    Body(Bytes),
}

impl Keep {
    /// Keep answers in `store` for `owner`, with their request's `input` items, under `limits`.
    pub fn new(store: Arc<Kept>, owner: Owner, input: KeptInput, limits: ResponsesConfig) -> Keep {
        Keep {
            store,
            owner,
            input,
            limits,
        }
    }

    /// Keep the answer `id`, its `response` object's bytes made by `response`: readable at
    /// once, written behind the answer ([`Kept`]); a failure is logged, the answer is served
    /// all the same. A `cached` answer (a cache hit's, the same answer whenever it is named
    /// `id`) that is kept already is the record there: nothing is made or kept again.
    pub fn put<R: AsRef<[u8]>>(self, id: &str, cached: bool, response: impl FnOnce() -> R) {
        let now = now_ms();
        if cached && self.store.holds(id, self.owner, self.limits.max_age, now) {
            return;
        }
        let input = match self.input {
            KeptInput::Items(items) => items,
            KeptInput::Body(body) => match input_items(&body) {
                Ok(items) => items,
                Err(e) => {
                    tracing::warn!(id, error = %e, "a response's input items could not be read; not kept");
                    return;
                }
            },
        };
        let bytes = response();
        // Checked whole first (the fast path for what is almost always valid UTF-8), replaced
        // character by character only when it is not.
        let response = match std::str::from_utf8(bytes.as_ref()) {
            Ok(text) => text.to_owned(),
            Err(_) => String::from_utf8_lossy(bytes.as_ref()).into_owned(),
        };
        let stored = Stored {
            owner: self.owner,
            created_ms: now,
            input,
            response,
        };
        self.store.keep(id, stored, self.limits, now);
    }
}

/// The id of an answer the cache holds (a hit, or the call that stored it), made from its
/// entry (key and creation time) and its owner: the same answer to the same owner is one
/// response — one kept record however often it is hit — and never another owner's.
pub fn entry_id(key: &CacheKey, created_ms: u64, owner: Owner) -> String {
    let mut hash = blake3::Hasher::new();
    hash.update(&key.0);
    hash.update(&created_ms.to_le_bytes());
    match owner {
        Owner::Uid(uid) => hash.update(&[0]).update(&uid.to_le_bytes()),
        Owner::Tcp => hash.update(&[1]),
    };
    let hex = hash.finalize().to_hex();
    format!("resp_{}", &hex[..32])
}

/// The response id of trace `trace_id`: `resp_` and its hex digits (one answer, one id).
pub fn response_id(trace_id: &str) -> String {
    let mut id = String::with_capacity(5 + trace_id.len());
    id.push_str("resp_");
    // ASCII bytes only: a multi-byte character's bytes are never alphanumeric ASCII.
    id.extend(
        trace_id
            .bytes()
            .filter(u8::is_ascii_alphanumeric)
            .map(char::from),
    );
    id
}

/// The Responses API's typed events, rendered by the wire's [`EventRenderer`], or an upstream's
/// own, forwarded as they came (counted, its response id noted, for a failure after them).
#[derive(Debug)]
pub struct ResponsesRender {
    renderer: EventRenderer,
    /// What to keep of the answer, and the header its `response` object is rendered with.
    keep: Option<(Keep, ResponseHeader)>,
    /// A replayed entry's answer is named by [`entry_id`] of this key and owner.
    entry_id: Option<(CacheKey, Owner)>,
    /// The answer is a replayed entry's, named by it.
    replayed: bool,
    forwarded: u64,
    upstream_id: Option<String>,
}

impl ResponsesRender {
    /// The events of a stream whose `response` object starts as `header`; what to keep of the
    /// answer (with the header its whole `response` is rendered with), and — when the answer
    /// may be a cached one — its cache key and owner (a replay is named by [`entry_id`]).
    pub fn new(
        header: ResponseHeader,
        keep: Option<(Keep, ResponseHeader)>,
        entry_id: Option<(CacheKey, Owner)>,
    ) -> Self {
        ResponsesRender {
            renderer: EventRenderer::new(header),
            keep,
            entry_id,
            replayed: false,
            forwarded: 0,
            upstream_id: None,
        }
    }
}

/// The `response` object of an upstream's event (`response.created`, `response.completed`),
/// as it came, and its id.
fn response_of(data: &str) -> Option<(String, &str)> {
    #[derive(serde::Deserialize)]
    struct Event<'a> {
        #[serde(borrow)]
        response: &'a serde_json::value::RawValue,
    }
    let event: Event<'_> = serde_json::from_str(data).ok()?;
    let raw = event.response.get();
    Some((id_of(raw)?, raw))
}

/// The `id` of a `response` object.
fn id_of(response: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Id {
        id: String,
    }
    serde_json::from_str::<Id>(response).ok().map(|r| r.id)
}

impl Render for ResponsesRender {
    fn render(&mut self, event: &StreamEvent, out: &mut Vec<u8>) {
        self.renderer.render(event, out);
    }

    fn begin(&mut self, out: &mut Vec<u8>) {
        self.renderer.begin(out);
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        self.renderer.finish(out);
    }

    fn replaying(&mut self, entry: &CacheEntry) {
        if let Some((key, owner)) = &self.entry_id {
            let id = entry_id(key, entry.created_ms, *owner);
            if self.renderer.rename(id.clone()) {
                self.replayed = true;
                if let Some((_, header)) = &mut self.keep {
                    header.id = id;
                }
            }
        }
    }

    fn ended(&mut self, entry: &CacheEntry) {
        if let Some((keep, header)) = self.keep.take() {
            // A replayed entry's answer kept already is not rendered again to be kept.
            keep.put(&header.id, self.replayed, || {
                render_response(&entry.response, &header)
            });
        }
    }

    fn forwards(&mut self, raw: &RawEvent) -> bool {
        if raw.wire != Wire::OpenAiResponses {
            return false;
        }
        if self.forwarded == 0 {
            self.upstream_id = response_of(&raw.data).map(|(id, _)| id);
        }
        self.forwarded += 1;
        // The provider's whole answer is kept as it came, before its end goes out.
        let completed = match &raw.name {
            Some(name) => name == "response.completed",
            None => raw.data.contains("\"response.completed\""),
        };
        if completed {
            if let (Some((keep, _)), Some((id, response))) =
                (self.keep.take(), response_of(&raw.data))
            {
                keep.put(&id, false, || response.as_bytes());
            }
        }
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

#[cfg(test)]
mod tests {
    use super::response_id;

    #[test]
    fn a_response_id_is_its_trace_ids_letters_and_digits() {
        assert_eq!(
            response_id("0192f3c4-5d6e-7f80-91a2-b3c4d5e6f708"),
            "resp_0192f3c45d6e7f8091a2b3c4d5e6f708"
        );
        assert_eq!(response_id("my trace/é_1"), "resp_mytrace1");
        assert_eq!(response_id(""), "resp_");
    }
}
