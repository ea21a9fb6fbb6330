//! Anthropic's Messages wire out of the engine: a whole answer's `message` body (an
//! Anthropic-kind upstream's own, as it came, else rendered from the entry's model answer) and
//! a stream's events ([`MessagesRender`]: rendered from the model's events, or an
//! Anthropic-kind upstream's forwarded as they came).

use std::sync::Arc;

use bytes::Bytes;

use super::error_event;
use crate::cache::entry::RawWire;
use crate::cache::CacheEntry;
use crate::frontends::model_events::Render;
use crate::model::{StreamEvent, Wire};
use crate::providers::RawEvent;
use crate::wire::anthropic::{render_response, EventRenderer};

/// The `message` body of a whole answer: an Anthropic-kind upstream's own body as it came
/// (shared with the cache entry, not copied), else rendered from the entry's model answer.
pub fn message_body(entry: &Arc<CacheEntry>, trace_id: &str, asked: String) -> Bytes {
    if let Some(raw) = CacheEntry::raw_body(entry, RawWire::AnthropicMessages) {
        return raw;
    }
    let mut rendered = entry.response.clone();
    rendered.id.get_or_insert_with(|| trace_id.to_owned());
    let model = rendered.model.clone().unwrap_or(asked);
    Bytes::from(render_response(&rendered, &model))
}

/// Anthropic's events: rendered by the wire's [`EventRenderer`], or an Anthropic-kind
/// upstream's forwarded as they came.
#[derive(Debug)]
pub struct MessagesRender {
    renderer: EventRenderer,
    /// The forwarded events held the upstream's `message_stop`.
    saw_stop: bool,
}

impl MessagesRender {
    /// The events of stream `id` of model `asked`; `estimated` is shown as the prompt's tokens
    /// at `message_start` when the upstream has not counted them by then (0: none).
    pub fn new(id: &str, asked: &str, estimated: u64) -> MessagesRender {
        MessagesRender {
            renderer: EventRenderer::new(id, asked).estimating_input(estimated),
            saw_stop: false,
        }
    }
}

/// The end of a forwarded stream whose upstream did not send it (it stopped after its
/// `message_delta`).
const MESSAGE_STOP: &[u8] = b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

impl Render for MessagesRender {
    fn render(&mut self, event: &StreamEvent, out: &mut Vec<u8>) {
        self.renderer.render(event, out);
    }

    fn begin(&mut self, out: &mut Vec<u8>) {
        self.renderer.begin(out);
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
