//! A streamed answer as the model holds it: [`StreamEvent`]s rich enough for Anthropic's and
//! the Responses API's event streams, and the [`Assembler`] that builds the [`Response`] they
//! make (for the cache entry, the log record and a whole answer from a streamed call).

use super::error::{Error, ErrorKind};
use super::request::Block;
use super::response::{FinishReason, Response, Usage};
use super::{MAX_BLOCKS, MAX_TOOL_CALLS};

/// What a block that starts will hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockKind {
    Text,
    ToolCall {
        id: String,
        name: String,
    },
    /// Reasoning; `redacted` is Anthropic's redacted thinking, whole at the start.
    Reasoning {
        redacted: Option<String>,
    },
}

/// One event of a streamed answer. Blocks are addressed by the stream's `index`, never by
/// their position in the answer (a provider may interleave them).
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// The provider has answered (its first event): the answer's id and model.
    Start {
        id: Option<String>,
        model: Option<String>,
    },
    BlockStart {
        index: usize,
        kind: BlockKind,
    },
    /// Text for block `index` (started implicitly when it was not).
    TextDelta {
        index: usize,
        text: String,
    },
    /// A piece of a tool call's JSON arguments.
    ToolArgsDelta {
        index: usize,
        json: String,
    },
    /// Reasoning text (started implicitly when it was not).
    ReasoningDelta {
        index: usize,
        text: String,
    },
    /// A piece of a reasoning block's signature (Anthropic), opaque.
    SignatureDelta {
        index: usize,
        signature: String,
    },
    /// A reasoning block's encrypted content (Responses), opaque.
    Encrypted {
        index: usize,
        data: String,
    },
    BlockStop {
        index: usize,
    },
    /// Token counts so far: each count is the largest reported (providers send running totals
    /// or a final figure, never increments).
    Usage(Usage),
    Finish(FinishReason),
    /// The stream failed.
    Error(Error),
}

impl StreamEvent {
    /// About how many bytes the event holds: its strings, and the event itself (for a bound on
    /// what a stream keeps in memory).
    pub fn held_bytes(&self) -> usize {
        let strings = match self {
            StreamEvent::Start { id, model } => {
                id.as_ref().map_or(0, String::len) + model.as_ref().map_or(0, String::len)
            }
            StreamEvent::BlockStart { kind, .. } => match kind {
                BlockKind::Text => 0,
                BlockKind::ToolCall { id, name } => id.len() + name.len(),
                BlockKind::Reasoning { redacted } => redacted.as_ref().map_or(0, String::len),
            },
            StreamEvent::TextDelta { text, .. } | StreamEvent::ReasoningDelta { text, .. } => {
                text.len()
            }
            StreamEvent::ToolArgsDelta { json, .. } => json.len(),
            StreamEvent::SignatureDelta { signature, .. } => signature.len(),
            StreamEvent::Encrypted { data, .. } => data.len(),
            StreamEvent::Error(error) => error.message.len(),
            StreamEvent::BlockStop { .. } | StreamEvent::Usage(_) | StreamEvent::Finish(_) => 0,
        };
        strings + std::mem::size_of::<StreamEvent>()
    }
}

/// Builds the [`Response`] of a stream from its events, within bounds: block indexes under
/// [`MAX_BLOCKS`], at most [`MAX_TOOL_CALLS`] tool calls, and at most `max_bytes` of text,
/// arguments and reasoning kept (the rest is counted as [`Assembler::truncated`]).
#[derive(Debug)]
pub struct Assembler {
    response: Response,
    /// Stream index -> position in `response.blocks`.
    slots: Vec<Option<usize>>,
    tool_calls: usize,
    kept: usize,
    max_bytes: usize,
    truncated: bool,
    error: Option<Error>,
}

impl Default for Assembler {
    fn default() -> Assembler {
        Assembler::new(usize::MAX)
    }
}

fn bound_error(message: String) -> Error {
    Error::new(ErrorKind::Upstream, message)
}

impl Assembler {
    /// An assembler keeping at most `max_bytes` of content.
    pub fn new(max_bytes: usize) -> Assembler {
        Assembler {
            response: Response::default(),
            slots: Vec::new(),
            tool_calls: 0,
            kept: 0,
            max_bytes,
            truncated: false,
            error: None,
        }
    }

    /// Some content was left out (over `max_bytes`): the response is its head.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// The response so far.
    pub fn response(&self) -> &Response {
        &self.response
    }

    /// Take in one event. An event past the bounds is an error (the stream must fail: its
    /// answer cannot be represented), naming the bound.
    pub fn push(&mut self, event: StreamEvent) -> Result<(), Error> {
        self.push_ref(&event)
    }

    /// [`Assembler::push`] of a borrowed event: text is copied in as far as it is kept (the
    /// caller keeps the event, to forward it or its text).
    pub fn push_ref(&mut self, event: &StreamEvent) -> Result<(), Error> {
        match event {
            StreamEvent::Start { id, model } => {
                if self.response.id.is_none() {
                    self.response.id.clone_from(id);
                }
                if self.response.model.is_none() {
                    self.response.model.clone_from(model);
                }
            }
            StreamEvent::BlockStart { index, kind } => {
                self.start(*index, kind.clone())?;
            }
            StreamEvent::TextDelta { index, text } => {
                let at = self.slot_or_start(*index, BlockKind::Text)?;
                self.append(at, text);
            }
            StreamEvent::ReasoningDelta { index, text } => {
                let at = self.slot_or_start(*index, BlockKind::Reasoning { redacted: None })?;
                self.append(at, text);
            }
            StreamEvent::ToolArgsDelta { index, json } => {
                let at = self.slot(*index).ok_or_else(|| {
                    bound_error(format!(
                        "tool arguments for block {index}, which did not start as a tool call"
                    ))
                })?;
                self.append(at, json);
            }
            StreamEvent::SignatureDelta { index, signature } => {
                let at = self.slot_or_start(*index, BlockKind::Reasoning { redacted: None })?;
                if let Some(Block::Reasoning { signature: s, .. }) =
                    self.response.blocks.get_mut(at)
                {
                    s.get_or_insert_with(String::new).push_str(signature);
                }
            }
            StreamEvent::Encrypted { index, data } => {
                let at = self.slot_or_start(*index, BlockKind::Reasoning { redacted: None })?;
                if let Some(Block::Reasoning { encrypted, .. }) = self.response.blocks.get_mut(at) {
                    *encrypted = Some(data.clone());
                }
            }
            StreamEvent::BlockStop { .. } => {}
            StreamEvent::Usage(usage) => self.response.usage.max(*usage),
            StreamEvent::Finish(reason) => self.response.finish = Some(reason.clone()),
            StreamEvent::Error(error) => self.error = Some(error.clone()),
        }
        Ok(())
    }

    /// The response, or the stream's error.
    pub fn finish(self) -> Result<Response, Error> {
        match self.error {
            Some(error) => Err(error),
            None => Ok(self.response),
        }
    }

    fn slot(&self, index: usize) -> Option<usize> {
        self.slots.get(index).copied().flatten()
    }

    fn slot_or_start(&mut self, index: usize, kind: BlockKind) -> Result<usize, Error> {
        match self.slot(index) {
            Some(at) => Ok(at),
            None => self.start(index, kind),
        }
    }

    fn start(&mut self, index: usize, kind: BlockKind) -> Result<usize, Error> {
        if index >= MAX_BLOCKS {
            return Err(bound_error(format!(
                "content block index {index} is past promptd's bound of {MAX_BLOCKS} blocks"
            )));
        }
        let block = match kind {
            BlockKind::Text => Block::Text(String::new()),
            BlockKind::ToolCall { id, name } => {
                if self.tool_calls >= MAX_TOOL_CALLS {
                    return Err(bound_error(format!(
                        "more than promptd's bound of {MAX_TOOL_CALLS} tool calls"
                    )));
                }
                self.tool_calls += 1;
                self.kept = self.kept.saturating_add(id.len() + name.len());
                Block::ToolCall {
                    id,
                    name,
                    arguments: String::new(),
                }
            }
            BlockKind::Reasoning { redacted } => Block::Reasoning {
                text: String::new(),
                signature: None,
                encrypted: None,
                redacted,
            },
        };
        if self.slots.len() <= index {
            self.slots.resize(index + 1, None);
        }
        let at = self.response.blocks.len();
        self.response.blocks.push(block);
        self.slots[index] = Some(at);
        Ok(at)
    }

    /// Append `piece` to the growing text of the block at `at`, within `max_bytes`.
    fn append(&mut self, at: usize, piece: &str) {
        let target = match self.response.blocks.get_mut(at) {
            Some(Block::Text(text)) => text,
            Some(Block::ToolCall { arguments, .. }) => arguments,
            Some(Block::Reasoning { text, .. }) => text,
            _ => return,
        };
        let room = self.max_bytes.saturating_sub(self.kept);
        let mut end = piece.len().min(room);
        while !piece.is_char_boundary(end) {
            end -= 1;
        }
        target.push_str(&piece[..end]);
        self.kept += end;
        if end < piece.len() {
            self.truncated = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(index: usize, text: &str) -> StreamEvent {
        StreamEvent::TextDelta {
            index,
            text: text.into(),
        }
    }

    #[test]
    fn assembles_interleaved_blocks_by_index() {
        let mut a = Assembler::default();
        let events = vec![
            StreamEvent::Start {
                id: Some("msg_1".into()),
                model: Some("m-2025".into()),
            },
            StreamEvent::BlockStart {
                index: 0,
                kind: BlockKind::Reasoning { redacted: None },
            },
            StreamEvent::ReasoningDelta {
                index: 0,
                text: "think".into(),
            },
            StreamEvent::SignatureDelta {
                index: 0,
                signature: "sig".into(),
            },
            text(1, "Hel"),
            StreamEvent::BlockStart {
                index: 2,
                kind: BlockKind::ToolCall {
                    id: "call_1".into(),
                    name: "get".into(),
                },
            },
            text(1, "lo"),
            StreamEvent::ToolArgsDelta {
                index: 2,
                json: "{\"a\":".into(),
            },
            StreamEvent::ToolArgsDelta {
                index: 2,
                json: "1}".into(),
            },
            StreamEvent::BlockStop { index: 2 },
            StreamEvent::Usage(Usage {
                input: 3,
                ..Usage::default()
            }),
            StreamEvent::Usage(Usage {
                input: 3,
                output: 9,
                ..Usage::default()
            }),
            StreamEvent::Finish(FinishReason::ToolCalls),
        ];
        for event in events {
            a.push(event).expect("in bounds");
        }
        let response = a.finish().expect("no error");
        assert_eq!(response.id.as_deref(), Some("msg_1"));
        assert_eq!(response.text(), "Hello");
        assert_eq!(
            response.tool_calls().collect::<Vec<_>>(),
            [("call_1", "get", "{\"a\":1}")]
        );
        assert_eq!(
            response.blocks[0],
            Block::Reasoning {
                text: "think".into(),
                signature: Some("sig".into()),
                encrypted: None,
                redacted: None
            }
        );
        assert_eq!((response.usage.input, response.usage.output), (3, 9));
        assert_eq!(response.finish, Some(FinishReason::ToolCalls));
    }

    #[test]
    fn upstream_indexes_and_counts_are_bounded() {
        let mut a = Assembler::default();
        let err = a.push(text(1_000_000_000_000, "x")).unwrap_err();
        assert!(err.message.contains("1024"), "{err}");
        let mut a = Assembler::default();
        for i in 0..MAX_TOOL_CALLS {
            a.push(StreamEvent::BlockStart {
                index: i,
                kind: BlockKind::ToolCall {
                    id: format!("c{i}"),
                    name: "f".into(),
                },
            })
            .expect("within the bound");
        }
        let err = a
            .push(StreamEvent::BlockStart {
                index: MAX_TOOL_CALLS,
                kind: BlockKind::ToolCall {
                    id: "one more".into(),
                    name: "f".into(),
                },
            })
            .unwrap_err();
        assert!(err.message.contains("128 tool calls"), "{err}");
        let err = Assembler::default()
            .push(StreamEvent::ToolArgsDelta {
                index: 0,
                json: "{}".into(),
            })
            .unwrap_err();
        assert!(err.message.contains("did not start"), "{err}");
    }

    #[test]
    fn content_past_the_limit_is_cut_at_a_character() {
        let mut a = Assembler::new(5);
        a.push(text(0, "héllo")).expect("push");
        a.push(text(0, " world")).expect("push");
        assert!(a.truncated());
        assert_eq!(a.response().text(), "héll");
    }

    #[test]
    fn an_error_event_fails_the_answer() {
        let mut a = Assembler::default();
        a.push(text(0, "partial")).expect("push");
        a.push(StreamEvent::Error(Error::new(
            ErrorKind::Overloaded,
            "busy",
        )))
        .expect("push");
        assert_eq!(a.finish().unwrap_err().kind, ErrorKind::Overloaded);
    }
}
