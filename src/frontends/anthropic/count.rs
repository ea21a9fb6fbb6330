//! An estimate of a Messages request's input tokens, for `count_tokens` on a provider that
//! cannot count them (an OpenAI-kind or local server has no such endpoint): about four
//! characters a token (the rule of thumb for English text and code under today's tokenizers),
//! over every text the prompt carries — system, messages, tool calls and results, reasoning,
//! tool definitions — plus a few tokens per message and an image's typical cost. It is said to
//! be an estimate (`x-promptd-estimated: chars/4`); clients use it to budget a context window,
//! where a count within some tens of percent serves.

use crate::model::{Block, Request};

/// Characters per token.
const CHARS_PER_TOKEN: usize = 4;
/// A message's framing (role, separators).
const PER_MESSAGE: u64 = 4;
/// An image (Anthropic counts about (width × height) / 750; a 1092 × 1092 image is ~1,600).
const PER_IMAGE: u64 = 1_600;

/// The estimated input tokens of `request`.
pub fn estimate_tokens(request: &Request) -> u64 {
    let mut fixed = 0u64;
    let mut chars: usize = request
        .system
        .iter()
        .map(|b| block_chars(b, &mut fixed))
        .sum();
    for m in &request.messages {
        fixed += PER_MESSAGE;
        chars += m
            .content
            .iter()
            .map(|b| block_chars(b, &mut fixed))
            .sum::<usize>();
    }
    for t in &request.tools {
        chars += t.name.len() + t.description.as_ref().map_or(0, String::len);
        chars += t.parameters.to_string().len();
    }
    for t in &request.hosted_tools {
        chars += t.to_string().len();
    }
    let tokens = chars.div_ceil(CHARS_PER_TOKEN) as u64 + fixed;
    tokens.max(1)
}

fn block_chars(block: &Block, fixed: &mut u64) -> usize {
    match block {
        Block::Text(text) => text.chars().count(),
        Block::Image { .. } => {
            *fixed += PER_IMAGE;
            0
        }
        Block::ToolCall {
            id,
            name,
            arguments,
        } => id.len() + name.len() + arguments.chars().count(),
        Block::ToolResult {
            call_id, content, ..
        } => call_id.len() + content.iter().map(|b| block_chars(b, fixed)).sum::<usize>(),
        Block::Reasoning { text, .. } => text.chars().count(),
        Block::Opaque { json, .. } => json.to_string().chars().count(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Message, Role, Wire};

    #[test]
    fn about_four_characters_a_token_and_never_zero() {
        let mut r = Request::new("m", Wire::AnthropicMessages);
        r.messages.push(Message::text(Role::User, ""));
        assert_eq!(estimate_tokens(&r), PER_MESSAGE);
        r.messages[0] = Message::text(Role::User, "x".repeat(400));
        assert_eq!(estimate_tokens(&r), 100 + PER_MESSAGE);
        r.system.push(Block::Text("y".repeat(40)));
        assert_eq!(estimate_tokens(&r), 110 + PER_MESSAGE);
        assert_eq!(
            estimate_tokens(&Request::new("m", Wire::AnthropicMessages)),
            1
        );
    }
}
