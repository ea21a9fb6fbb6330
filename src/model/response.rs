//! A whole answer as the model holds it: content blocks, why the model stopped, and usage.

use super::request::Block;

/// Why the model stopped, in no wire's vocabulary: each door renders it in its own (OpenAI's
/// `stop` / `length` / `tool_calls` / `content_filter`, Anthropic's `end_turn` / `max_tokens` /
/// `tool_use` / `stop_sequence` / `refusal`, a Responses `status`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FinishReason {
    /// The model finished its turn.
    Stop,
    /// One of the request's stop sequences ended it (Anthropic says which; OpenAI says `stop`).
    StopSequence,
    /// The output token limit.
    Length,
    /// The model called tools and waits for their results.
    ToolCalls,
    /// The provider's content filter.
    ContentFilter,
    /// The model declined (Anthropic's `refusal`).
    Refusal,
    /// A reason no door has a word for (a provider's new one), kept as it was sent.
    Other(String),
}

/// Token counts. `input` excludes the cached parts (`cache_read`, `cache_write`), which are
/// priced at their own rates; `reasoning` is part of `output`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Usage {
    pub input: u64,
    pub output: u64,
    /// Input tokens read from the provider's prompt cache.
    pub cache_read: u64,
    /// Input tokens written to the provider's prompt cache.
    pub cache_write: u64,
    /// Output tokens spent on reasoning.
    pub reasoning: u64,
}

impl Usage {
    /// Every input token, cached or not (what OpenAI calls `prompt_tokens`).
    pub fn total_input(&self) -> u64 {
        self.input
            .saturating_add(self.cache_read)
            .saturating_add(self.cache_write)
    }

    /// Add `other`'s counts (a stream that reports usage in parts).
    pub fn add(&mut self, other: Usage) {
        self.input = self.input.saturating_add(other.input);
        self.output = self.output.saturating_add(other.output);
        self.cache_read = self.cache_read.saturating_add(other.cache_read);
        self.cache_write = self.cache_write.saturating_add(other.cache_write);
        self.reasoning = self.reasoning.saturating_add(other.reasoning);
    }

    /// Keep the larger of each count (a stream that reports running totals).
    pub fn max(&mut self, other: Usage) {
        self.input = self.input.max(other.input);
        self.output = self.output.max(other.output);
        self.cache_read = self.cache_read.max(other.cache_read);
        self.cache_write = self.cache_write.max(other.cache_write);
        self.reasoning = self.reasoning.max(other.reasoning);
    }
}

/// A whole answer.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Response {
    /// The provider's id of the answer, when it gave one.
    pub id: Option<String>,
    /// The model that answered, as the provider named it (may be a dated snapshot).
    pub model: Option<String>,
    /// Text, tool call and reasoning blocks, in the order the model wrote them.
    pub blocks: Vec<Block>,
    pub finish: Option<FinishReason>,
    pub usage: Usage,
}

impl Response {
    /// The text blocks joined.
    pub fn text(&self) -> String {
        self.blocks.iter().filter_map(Block::as_text).collect()
    }

    /// The tool calls, in order: `(id, name, arguments)`.
    pub fn tool_calls(&self) -> impl Iterator<Item = (&str, &str, &str)> {
        self.blocks.iter().filter_map(|b| match b {
            Block::ToolCall {
                id,
                name,
                arguments,
            } => Some((id.as_str(), name.as_str(), arguments.as_str())),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_totals_and_merges() {
        let mut usage = Usage {
            input: 10,
            output: 5,
            cache_read: 100,
            cache_write: 20,
            reasoning: 2,
        };
        assert_eq!(usage.total_input(), 130);
        usage.add(Usage {
            output: 3,
            ..Usage::default()
        });
        assert_eq!(usage.output, 8);
        usage.max(Usage {
            input: 7,
            output: 50,
            ..Usage::default()
        });
        assert_eq!((usage.input, usage.output), (10, 50));
        let huge = Usage {
            input: u64::MAX,
            ..Usage::default()
        };
        assert_eq!(huge.total_input(), u64::MAX);
    }

    #[test]
    fn text_and_tool_calls_in_order() {
        let response = Response {
            blocks: vec![
                Block::Text("a".into()),
                Block::ToolCall {
                    id: "c1".into(),
                    name: "f".into(),
                    arguments: "{}".into(),
                },
                Block::Text("b".into()),
            ],
            ..Response::default()
        };
        assert_eq!(response.text(), "ab");
        assert_eq!(
            response.tool_calls().collect::<Vec<_>>(),
            [("c1", "f", "{}")]
        );
    }
}
