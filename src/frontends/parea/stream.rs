//! Framing of `/completion/stream` events.
//!
//! Each event is one `data:` line ended by `\r\n` plus an empty line, and is sent as its own
//! HTTP body frame: the Python SDK parses every chunk of the body as one event.

use bytes::Bytes;
use serde::Serialize;

/// First event: tells the client the trace id.
pub fn id_event(trace_id: &str) -> Bytes {
    Bytes::from(format!("data: ID_START{trace_id}ID_END\r\n\r\n"))
}

#[derive(Serialize)]
struct Chunk<'a> {
    chunk: &'a str,
}

#[derive(Serialize)]
struct ErrorChunk<'a> {
    chunk: &'a str,
    error: &'a str,
}

/// One text delta: `data: {"chunk": "<text>"}`.
pub fn chunk_event(text: &str) -> Bytes {
    frame(&Chunk { chunk: text })
}

/// A failure after the stream started: `data: {"chunk": "", "error": "<message>"}`.
pub fn error_event(message: &str) -> Bytes {
    frame(&ErrorChunk {
        chunk: "",
        error: message,
    })
}

/// Serialise `value` the way Python's `json.dumps` does (`", "` and `": "` separators), which is
/// what clients of the hosted API have seen.
fn frame<T: Serialize>(value: &T) -> Bytes {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(b"data: ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PythonFormatter);
    // Serialising plain strings into a Vec cannot fail.
    let _ = value.serialize(&mut ser);
    out.extend_from_slice(b"\r\n\r\n");
    Bytes::from(out)
}

struct PythonFormatter;

impl serde_json::ser::Formatter for PythonFormatter {
    fn begin_object_value<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
    ) -> std::io::Result<()> {
        writer.write_all(b": ")
    }
    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_framed_exactly() {
        assert_eq!(&id_event("abc")[..], b"data: ID_STARTabcID_END\r\n\r\n");
        assert_eq!(
            &chunk_event("Hi \"you\"\n")[..],
            b"data: {\"chunk\": \"Hi \\\"you\\\"\\n\"}\r\n\r\n"
        );
        assert_eq!(
            &error_event("boom")[..],
            b"data: {\"chunk\": \"\", \"error\": \"boom\"}\r\n\r\n"
        );
    }
}
