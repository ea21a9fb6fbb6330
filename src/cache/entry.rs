//! A stored completion: versioned bincode (2.x) bytes in the `cache` tree.
//!
//! Layout: one format byte, a fixed header of three little-endian u64 (`created_ms`,
//! `expires_ms`, `last_used_ms`: what eviction and the indexes need, read by [`Header::read`]
//! without decoding the rest), then the bincode encoding of [`CacheEntry`]. A value of another
//! format (older release, foreign bytes, a torn write) decodes to an error that the cache treats
//! as a miss and then overwrites — never a panic, never a wrong answer.

use serde::{Deserialize, Serialize};

/// Bump when [`CacheEntry`] or the header changes shape.
pub const ENTRY_FORMAT: u8 = 3;

/// Bytes of the fixed header after the format byte.
const HEADER_LEN: usize = 24;

/// The times of an entry, read from its fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub created_ms: u64,
    pub expires_ms: u64,
    pub last_used_ms: u64,
}

impl Header {
    /// The header of stored bytes of this format; `None` for anything else.
    pub fn read(bytes: &[u8]) -> Option<Header> {
        let (&format, rest) = bytes.split_first()?;
        if format != ENTRY_FORMAT {
            return None;
        }
        let u64_at = |at: usize| -> Option<u64> {
            let b: [u8; 8] = rest.get(at..at + 8)?.try_into().ok()?;
            Some(u64::from_le_bytes(b))
        };
        Some(Header {
            created_ms: u64_at(0)?,
            expires_ms: u64_at(8)?,
            last_used_ms: u64_at(16)?,
        })
    }

    /// When the entry was last wanted: its place in least-recently-used order.
    pub fn used_ms(&self) -> u64 {
        self.created_ms.max(self.last_used_ms)
    }
}

/// A complete, successful answer as the cache keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheEntry {
    /// Parea's `content` of the answer (text, or the tool calls as JSON).
    pub content: String,
    /// The stream deltas, replayed one event each for `/completion/stream`.
    pub deltas: Vec<String>,
    pub tool_calls: Vec<StoredToolCall>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost: f64,
    pub model: String,
    pub provider: String,
    /// Why the model stopped (`stop`, `tool_calls`, `length`, ...), when the upstream said.
    pub finish_reason: Option<String>,
    /// An OpenAI-kind upstream's whole answer body as received (non-stream calls): an
    /// OpenAI-route client gets it back as it was, unknown fields included.
    pub raw_response: Option<String>,
    /// An OpenAI-kind upstream's stream chunks (the JSON of each event) as received: replayed
    /// as they were to OpenAI-route stream clients.
    pub chunks: Vec<String>,
    /// Unix milliseconds.
    pub created_ms: u64,
    pub expires_ms: u64,
    pub last_used_ms: u64,
    pub hits: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

/// Why stored bytes are not a usable entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    #[error("empty value")]
    Empty,
    #[error("entry format {0} is not {ENTRY_FORMAT}")]
    UnknownFormat(u8),
    #[error("corrupt entry: {0}")]
    Corrupt(String),
}

fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard()
}

impl CacheEntry {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.push(ENTRY_FORMAT);
        for t in [self.created_ms, self.expires_ms, self.last_used_ms] {
            out.extend_from_slice(&t.to_le_bytes());
        }
        // Encoding plain strings and numbers into a Vec cannot fail.
        if let Ok(body) = bincode::serde::encode_to_vec(self, bincode_config()) {
            out.extend_from_slice(&body);
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<CacheEntry, EntryError> {
        let (&format, body) = bytes.split_first().ok_or(EntryError::Empty)?;
        if format != ENTRY_FORMAT {
            return Err(EntryError::UnknownFormat(format));
        }
        let body = body
            .get(HEADER_LEN..)
            .ok_or_else(|| EntryError::Corrupt("shorter than its header".into()))?;
        let (entry, used): (CacheEntry, usize) =
            bincode::serde::decode_from_slice(body, bincode_config())
                .map_err(|e| EntryError::Corrupt(e.to_string()))?;
        if used != body.len() {
            return Err(EntryError::Corrupt(format!(
                "{} trailing bytes",
                body.len() - used
            )));
        }
        Ok(entry)
    }

    pub fn is_expired(&self, now_ms: u64) -> bool {
        now_ms >= self.expires_ms
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample() -> CacheEntry {
        CacheEntry {
            content: "Hello!".into(),
            deltas: vec!["Hel".into(), "lo!".into()],
            tool_calls: vec![StoredToolCall {
                id: "c".into(),
                name: "f".into(),
                arguments: "{}".into(),
            }],
            input_tokens: 3,
            output_tokens: 2,
            cost: 0.5,
            model: "m".into(),
            provider: "p".into(),
            finish_reason: Some("stop".into()),
            raw_response: Some("{}".into()),
            chunks: vec!["{}".into()],
            created_ms: 1,
            expires_ms: 2,
            last_used_ms: 1,
            hits: 0,
        }
    }

    #[test]
    fn round_trip() {
        let entry = sample();
        assert_eq!(CacheEntry::decode(&entry.encode()), Ok(entry.clone()));
        assert_eq!(
            Header::read(&entry.encode()),
            Some(Header {
                created_ms: 1,
                expires_ms: 2,
                last_used_ms: 1
            })
        );
        assert_eq!(Header::read(&[ENTRY_FORMAT, 1, 2]), None);
        assert_eq!(Header::read(&[2; 40]), None, "another format");
    }

    #[test]
    fn foreign_bytes_are_errors_not_panics() {
        assert_eq!(CacheEntry::decode(&[]), Err(EntryError::Empty));
        assert_eq!(
            CacheEntry::decode(&[9, 1, 2]),
            Err(EntryError::UnknownFormat(9))
        );
        let mut bytes = sample().encode();
        bytes.truncate(bytes.len() / 2);
        assert!(matches!(
            CacheEntry::decode(&bytes),
            Err(EntryError::Corrupt(_))
        ));
        let mut bytes = sample().encode();
        bytes.push(0);
        assert!(matches!(
            CacheEntry::decode(&bytes),
            Err(EntryError::Corrupt(_))
        ));
        for seed in 0..200u32 {
            let garbage: Vec<u8> = (0..(seed % 40))
                .map(|i| (i.wrapping_mul(seed) ^ 0x5a) as u8)
                .collect();
            let mut bytes = vec![ENTRY_FORMAT];
            bytes.extend(garbage);
            let _ = CacheEntry::decode(&bytes);
        }
    }
}
