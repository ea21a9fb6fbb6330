//! Incremental parser for `text/event-stream` bodies (the WHATWG server-sent events format).
//!
//! Upstreams frame events arbitrarily across reads, end lines with `\r\n`, `\n` or `\r`, send
//! `:` comment lines as keep-alives and may spread one event's data over several `data:` lines.
//! The parser keeps only the incomplete last line between reads; complete events are pushed to
//! the caller's vector as soon as their terminating blank line arrives. A line, or an event's
//! data, longer than the parser's limit is an [`EventTooLarge`] error before it is held: the
//! parser's memory never grows past its limit.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` field, if any (Anthropic names every event; OpenAI names none).
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// A line or an event's data over the parser's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a stream event is larger than max_event_bytes ({limit} bytes)")]
pub struct EventTooLarge {
    pub limit: usize,
}

/// Streaming SSE parser: feed it bytes as they arrive.
#[derive(Debug)]
pub struct SseParser {
    /// Most bytes of one line, and of one event's data.
    limit: usize,
    line: Vec<u8>,
    /// The previous read ended in `\r`: a `\n` starting the next read belongs to that line end.
    skip_lf: bool,
    event: Option<String>,
    data: String,
    has_data: bool,
}

impl Default for SseParser {
    fn default() -> Self {
        Self::with_limit(usize::MAX)
    }
}

impl SseParser {
    /// A parser without a limit (for promptd's own, trusted streams).
    pub fn new() -> Self {
        Self::default()
    }

    /// A parser that refuses a line or an event's data over `limit` bytes.
    pub fn with_limit(limit: usize) -> Self {
        SseParser {
            limit,
            line: Vec::new(),
            skip_lf: false,
            event: None,
            data: String::new(),
            has_data: false,
        }
    }

    /// Parse `chunk`, pushing every event it completes onto `out`; an error once a line or an
    /// event's data passes the limit (the parser is then of no further use).
    pub fn feed(&mut self, mut chunk: &[u8], out: &mut Vec<SseEvent>) -> Result<(), EventTooLarge> {
        if self.skip_lf {
            self.skip_lf = false;
            if chunk.first() == Some(&b'\n') {
                chunk = &chunk[1..];
            }
        }
        while let Some(end) = chunk.iter().position(|b| *b == b'\n' || *b == b'\r') {
            self.check(self.line.len().saturating_add(end))?;
            if self.line.is_empty() {
                self.process_line(&chunk[..end], out)?;
            } else {
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(&chunk[..end]);
                self.process_line(&line, out)?;
                line.clear();
                self.line = line;
            }
            let rest = &chunk[end..];
            chunk = match rest {
                [b'\r', b'\n', tail @ ..] => tail,
                [b'\r'] => {
                    self.skip_lf = true;
                    &[]
                }
                [_, tail @ ..] => tail,
                [] => &[],
            };
        }
        self.check(self.line.len().saturating_add(chunk.len()))?;
        self.line.extend_from_slice(chunk);
        Ok(())
    }

    fn check(&self, len: usize) -> Result<(), EventTooLarge> {
        if len > self.limit {
            return Err(EventTooLarge { limit: self.limit });
        }
        Ok(())
    }

    /// The body ended: dispatch an event whose blank line never came (lenient, as some
    /// OpenAI-compatible servers end the body right after the last `data:` line).
    pub fn finish(&mut self, out: &mut Vec<SseEvent>) -> Result<(), EventTooLarge> {
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.process_line(&line, out)?;
        }
        self.dispatch(out);
        Ok(())
    }

    fn process_line(&mut self, line: &[u8], out: &mut Vec<SseEvent>) -> Result<(), EventTooLarge> {
        if line.is_empty() {
            self.dispatch(out);
            return Ok(());
        }
        if line[0] == b':' {
            return Ok(()); // comment / keep-alive
        }
        let (name, value) = match line.iter().position(|b| *b == b':') {
            Some(i) => {
                let value = &line[i + 1..];
                (&line[..i], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        let value = String::from_utf8_lossy(value);
        match name {
            b"data" => {
                self.check(self.data.len().saturating_add(value.len() + 1))?;
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(&value);
                self.has_data = true;
            }
            b"event" => self.event = Some(value.into_owned()),
            _ => {} // `id`, `retry` and unknown fields are not used
        }
        Ok(())
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        if self.has_data {
            out.push(SseEvent {
                event: self.event.take(),
                data: std::mem::take(&mut self.data),
            });
        }
        self.event = None;
        self.data.clear();
        self.has_data = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_in_pieces(text: &str, piece: usize) -> Vec<SseEvent> {
        let mut parser = SseParser::new();
        let mut out = Vec::new();
        for chunk in text.as_bytes().chunks(piece) {
            parser.feed(chunk, &mut out).expect("no limit");
        }
        parser.finish(&mut out).expect("no limit");
        out
    }

    #[test]
    fn a_line_or_an_events_data_over_the_limit_is_refused_before_it_is_held() {
        for piece in [1, 7, 64, 10_000] {
            let mut parser = SseParser::with_limit(16);
            let mut out = Vec::new();
            let text = format!("data: ok\n\ndata: {}", "x".repeat(1000));
            let result = text
                .as_bytes()
                .chunks(piece)
                .try_for_each(|c| parser.feed(c, &mut out));
            assert_eq!(result, Err(EventTooLarge { limit: 16 }), "piece {piece}");
            assert_eq!(out, vec![ev(None, "ok")]);
            assert!(parser.line.len() <= 16);
        }
        // Many short data lines of one event add up.
        let mut parser = SseParser::with_limit(16);
        let result = parser.feed(b"data: 12345\ndata: 12345\ndata: 12345\n", &mut Vec::new());
        assert!(result.is_err());
    }

    fn ev(event: Option<&str>, data: &str) -> SseEvent {
        SseEvent {
            event: event.map(str::to_owned),
            data: data.to_owned(),
        }
    }

    const STREAM: &str = "event: message_start\ndata: {\"a\":1}\n\n: keep-alive\n\ndata: x\ndata: y\n\ndata: [DONE]\n\n";

    #[test]
    fn events_split_at_every_possible_boundary_parse_the_same() {
        let expected = vec![
            ev(Some("message_start"), "{\"a\":1}"),
            ev(None, "x\ny"),
            ev(None, "[DONE]"),
        ];
        for piece in 1..=STREAM.len() {
            assert_eq!(
                parse_in_pieces(STREAM, piece),
                expected,
                "piece size {piece}"
            );
        }
    }

    #[test]
    fn crlf_and_cr_line_ends() {
        let expected = vec![
            ev(Some("message_start"), "{\"a\":1}"),
            ev(None, "x\ny"),
            ev(None, "[DONE]"),
        ];
        let crlf = STREAM.replace('\n', "\r\n");
        let cr = STREAM.replace('\n', "\r");
        for piece in 1..=crlf.len() {
            assert_eq!(
                parse_in_pieces(&crlf, piece),
                expected,
                "crlf piece {piece}"
            );
        }
        for piece in [1, 2, 5, 100] {
            assert_eq!(parse_in_pieces(&cr, piece), expected, "cr piece {piece}");
        }
    }

    #[test]
    fn comments_only_and_empty_data_lines() {
        assert!(parse_in_pieces(": ping\n\n:\n\n", 3).is_empty());
        assert_eq!(parse_in_pieces("data\n\n", 100), vec![ev(None, "")]);
        assert_eq!(
            parse_in_pieces("data:no-space\n\n", 100),
            vec![ev(None, "no-space")]
        );
        assert_eq!(
            parse_in_pieces("data:  two\n\n", 100),
            vec![ev(None, " two")]
        );
    }

    #[test]
    fn event_name_does_not_leak_into_the_next_event() {
        let out = parse_in_pieces("event: a\n\ndata: 1\n\n", 4);
        assert_eq!(out, vec![ev(None, "1")]);
    }

    #[test]
    fn unterminated_last_event_is_dispatched_at_finish() {
        assert_eq!(parse_in_pieces("data: [DONE]", 5), vec![ev(None, "[DONE]")]);
    }

    #[test]
    fn multibyte_text_split_across_reads() {
        let text = "data: {\"t\":\"héllo ✓\"}\n\n";
        for piece in 1..=text.len() {
            assert_eq!(
                parse_in_pieces(text, piece),
                vec![ev(None, "{\"t\":\"héllo ✓\"}")]
            );
        }
    }
}
