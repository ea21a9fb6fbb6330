//! A stored completion: versioned bincode (2.x) bytes in the `cache` tree.
//!
//! Layout: one format byte, then the bincode encoding of [`CacheEntry`]. A value of another
//! format (older release, foreign bytes, a torn write) decodes to an error that the cache treats
//! as a miss and then overwrites — never a panic, never a wrong answer.

use serde::{Deserialize, Serialize};

/// Bump when [`CacheEntry`] changes shape.
pub const ENTRY_FORMAT: u8 = 2;

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
        let mut out = vec![ENTRY_FORMAT];
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
        assert_eq!(CacheEntry::decode(&entry.encode()), Ok(entry));
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
