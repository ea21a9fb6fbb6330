//! The state of a stream whose events the provider's wire decodes into the model's events
//! (Anthropic's Messages, OpenAI's Responses): the wire's decoder, and the answer assembled
//! from its events within `held` bytes. The door of the same wire forwards each event as it
//! came ([`super::Piece::raw_event`]); every other renders the model's events.
//!
//! What is held is bounded: block indexes and tool calls by the wire decoder's bounds, the
//! answer's text to its head of `held` bytes (a longer answer is forwarded whole but not
//! cached); tool calls longer than `held` fail the stream.

use super::sse::SseEvent;
use super::{Completion, Decoded, ProviderError};
use crate::model::{self, Assembler, Block, Response, StreamEvent};

/// A wire's stream decoder: one event (its `event:` name and `data:`) into model events,
/// `Ok(true)` at the end of the answer.
pub trait EventWire: std::fmt::Debug + Default {
    fn decode(
        &mut self,
        name: Option<&str>,
        data: &str,
        out: &mut Vec<StreamEvent>,
    ) -> Result<bool, model::Error>;
}

impl EventWire for crate::wire::anthropic::EventDecoder {
    fn decode(
        &mut self,
        name: Option<&str>,
        data: &str,
        out: &mut Vec<StreamEvent>,
    ) -> Result<bool, model::Error> {
        self.on_event(name, data, out)
    }
}

impl EventWire for crate::wire::openai_responses::EventDecoder {
    fn decode(
        &mut self,
        name: Option<&str>,
        data: &str,
        out: &mut Vec<StreamEvent>,
    ) -> Result<bool, model::Error> {
        self.on_event(name, data, out)
    }
}

/// The completion of a model response (`truncated` when it is the head of a longer answer): a
/// tool call without arguments has `{}` (its input was an empty object).
fn completion_of(mut response: Response, truncated: bool) -> Completion {
    for block in &mut response.blocks {
        if let Block::ToolCall { arguments, .. } = block {
            if arguments.is_empty() {
                "{}".clone_into(arguments);
            }
        }
    }
    Completion {
        response,
        raw: None,
        truncated,
    }
}

/// A whole answer of a wire decoded into the model (`decoded`, from `body`): the completion,
/// with the body kept as received for a client of that wire; a decode error names `what`.
pub(super) fn whole(
    body: &[u8],
    decoded: Result<Response, model::Error>,
    what: &str,
) -> Result<Completion, ProviderError> {
    decoded
        .map(|response| Completion {
            raw: std::str::from_utf8(body).ok().map(str::to_owned),
            ..completion_of(response, false)
        })
        .map_err(|e| ProviderError::Protocol(format!("{what} body: {}", e.message)))
}

/// A stream's decoder of wire `W`, and the answer assembled from its events.
#[derive(Debug)]
pub struct EventsState<W> {
    decoder: W,
    assembler: Assembler,
    held: usize,
    done: bool,
}

impl<W: EventWire> Default for EventsState<W> {
    /// Holding everything: for tests.
    fn default() -> Self {
        EventsState::new(usize::MAX)
    }
}

impl<W: EventWire> EventsState<W> {
    /// A stream's state, holding at most `held` bytes of the answer.
    pub fn new(held: usize) -> Self {
        EventsState {
            decoder: W::default(),
            assembler: Assembler::new(held),
            held,
            done: false,
        }
    }

    /// One event: the model's events it makes. An error event fails the stream with the
    /// provider's word and message.
    pub fn on_event(&mut self, event: &SseEvent) -> Result<Decoded, ProviderError> {
        let mut events = Vec::new();
        let done = self
            .decoder
            .decode(event.event.as_deref(), &event.data, &mut events)
            .map_err(|e| match e.code {
                Some(code) => ProviderError::Stream(format!("{code}: {}", e.message)),
                None => ProviderError::Stream(e.message),
            })?;
        // The text is in the events (the piece's `text_ref`): not copied beside them.
        for event in &events {
            let tool_args = matches!(event, StreamEvent::ToolArgsDelta { .. });
            self.assembler
                .push_ref(event)
                .map_err(|e| ProviderError::Stream(e.message))?;
            if tool_args && self.assembler.truncated() {
                return Err(super::tool_calls_too_long(self.held));
            }
        }
        self.done |= done;
        Ok(Decoded {
            delta: None,
            events,
            done,
            ..Decoded::default()
        })
    }

    /// The end was seen, or a finish reason was (a body that ends after Anthropic's
    /// `message_delta`, without `message_stop`, still holds a whole answer).
    pub fn ended_cleanly(&self) -> bool {
        self.done || self.assembler.response().finish.is_some()
    }

    pub fn into_completion(self) -> Completion {
        let truncated = self.assembler.truncated();
        match self.assembler.finish() {
            Ok(response) => completion_of(response, truncated),
            Err(_) => Completion::default(),
        }
    }
}
