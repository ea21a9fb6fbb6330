//! A stored completion: versioned bincode (2.x) bytes in the `cache` tree.
//!
//! Layout: one format byte, a fixed header of three little-endian u64 (`created_ms`,
//! `expires_ms`, `last_used_ms`: what eviction and the indexes need, read by [`Header::read`]
//! without decoding the rest), one codec byte, then the bincode encoding of [`CacheEntry`]
//! (stream deltas that are the content cut in pieces kept as the pieces' lengths):
//! as it is ([`PLAIN`]) or, when that saves at least an eighth, LZ4-compressed after its length
//! as a little-endian u32 ([`LZ4`]). Compressed bodies keep sled's leaves small, and sled keeps
//! every leaf a hit touches resident for a while whatever its page-cache bound (its LRU queues
//! 64 accesses in each of 256 shards before it evicts): the cache's memory under hits is its
//! leaves' size. Stream answers (the same chunk envelope per token) shrink most.
//!
//! A value of another format (older release, foreign bytes, a torn write) decodes to an error
//! that the cache treats as a miss and then overwrites — never a panic, never a wrong answer;
//! a damaged length cannot make decoding allocate more than LZ4 could expand its bytes to.

use serde::{Deserialize, Serialize};

use crate::model::{FinishReason, Usage};

/// Bump when [`CacheEntry`] or the header changes shape. 5: the finish reason is the model's
/// ([`FinishReason`]), no longer the provider's word.
pub const ENTRY_FORMAT: u8 = 6;

/// Bytes of the fixed header after the format byte.
const HEADER_LEN: usize = 24;

/// Codec byte: the bincode body as it is.
const PLAIN: u8 = 0;
/// Codec byte: u32 LE length of the bincode body, then its LZ4 block.
const LZ4: u8 = 1;
/// Bodies shorter than this are stored plain: too small to gain.
const COMPRESS_FROM: usize = 256;
/// LZ4's largest expansion is about 255 to 1: a longer claimed length is damage.
const LZ4_MAX_RATIO: usize = 255;

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
#[derive(Debug, Clone, PartialEq)]
pub struct CacheEntry {
    /// Parea's `content` of the answer (text, or the tool calls as JSON).
    pub content: String,
    /// The stream deltas, replayed one event each for `/completion/stream`.
    pub deltas: Vec<String>,
    pub tool_calls: Vec<StoredToolCall>,
    /// Token counts as the provider reported them: cached prompt tokens and reasoning apart
    /// (`usage.total_input()` is every prompt token).
    pub usage: Usage,
    pub cost: f64,
    pub model: String,
    pub provider: String,
    /// Why the model stopped, when the upstream said: the model's reason, in no wire's
    /// vocabulary (each door renders it in its own), so a hit on another door than the one
    /// that stored the entry answers in that door's words.
    pub finish_reason: Option<FinishReason>,
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

/// The deltas as stored: a stream's deltas are its content cut in pieces, so usually only the
/// pieces' lengths are kept (the text once, not twice); anything else is kept as it is.
#[derive(Serialize)]
enum DeltasRef<'a> {
    Cuts(Vec<u32>),
    Texts(&'a [String]),
}

#[derive(Deserialize)]
enum Deltas {
    Cuts(Vec<u32>),
    Texts(Vec<String>),
}

/// A [`FinishReason`] as encoded (borrowed): bincode writes the variant's position, so
/// variants are only ever added at the end (a reordering is a new [`ENTRY_FORMAT`]).
#[derive(Serialize)]
enum FinishRef<'a> {
    Stop,
    StopSequence,
    Length,
    ToolCalls,
    ContentFilter,
    Refusal,
    Other(&'a str),
}

/// [`FinishRef`] decoded.
#[derive(Deserialize)]
enum Finish {
    Stop,
    StopSequence,
    Length,
    ToolCalls,
    ContentFilter,
    Refusal,
    Other(String),
}

impl<'a> FinishRef<'a> {
    fn of(reason: &'a FinishReason) -> FinishRef<'a> {
        match reason {
            FinishReason::Stop => FinishRef::Stop,
            FinishReason::StopSequence => FinishRef::StopSequence,
            FinishReason::Length => FinishRef::Length,
            FinishReason::ToolCalls => FinishRef::ToolCalls,
            FinishReason::ContentFilter => FinishRef::ContentFilter,
            FinishReason::Refusal => FinishRef::Refusal,
            FinishReason::Other(word) => FinishRef::Other(word),
        }
    }
}

impl From<Finish> for FinishReason {
    fn from(f: Finish) -> FinishReason {
        match f {
            Finish::Stop => FinishReason::Stop,
            Finish::StopSequence => FinishReason::StopSequence,
            Finish::Length => FinishReason::Length,
            Finish::ToolCalls => FinishReason::ToolCalls,
            Finish::ContentFilter => FinishReason::ContentFilter,
            Finish::Refusal => FinishReason::Refusal,
            Finish::Other(word) => FinishReason::Other(word),
        }
    }
}

/// [`Usage`] as stored: its five counts, in this order.
#[derive(Serialize, Deserialize, Clone, Copy)]
struct StoredUsage {
    input: u64,
    output: u64,
    cache_read: u64,
    cache_write: u64,
    reasoning: u64,
}

impl From<Usage> for StoredUsage {
    fn from(u: Usage) -> StoredUsage {
        StoredUsage {
            input: u.input,
            output: u.output,
            cache_read: u.cache_read,
            cache_write: u.cache_write,
            reasoning: u.reasoning,
        }
    }
}

impl From<StoredUsage> for Usage {
    fn from(u: StoredUsage) -> Usage {
        Usage {
            input: u.input,
            output: u.output,
            cache_read: u.cache_read,
            cache_write: u.cache_write,
            reasoning: u.reasoning,
        }
    }
}

/// [`CacheEntry`] as encoded (borrowed); [`Wire`] is the same fields decoded.
#[derive(Serialize)]
struct WireRef<'a> {
    content: &'a str,
    deltas: DeltasRef<'a>,
    tool_calls: &'a [StoredToolCall],
    usage: StoredUsage,
    cost: f64,
    model: &'a str,
    provider: &'a str,
    finish_reason: Option<FinishRef<'a>>,
    raw_response: Option<&'a str>,
    chunks: &'a [String],
    created_ms: u64,
    expires_ms: u64,
    last_used_ms: u64,
    hits: u64,
}

#[derive(Deserialize)]
struct Wire {
    content: String,
    deltas: Deltas,
    tool_calls: Vec<StoredToolCall>,
    usage: StoredUsage,
    cost: f64,
    model: String,
    provider: String,
    finish_reason: Option<Finish>,
    raw_response: Option<String>,
    chunks: Vec<String>,
    created_ms: u64,
    expires_ms: u64,
    last_used_ms: u64,
    hits: u64,
}

/// The lengths `deltas` cut `content` into, when they are exactly its pieces in order.
fn cuts(content: &str, deltas: &[String]) -> Option<Vec<u32>> {
    let mut rest = content;
    let mut out = Vec::with_capacity(deltas.len());
    for delta in deltas {
        rest = rest.strip_prefix(delta.as_str())?;
        out.push(u32::try_from(delta.len()).ok()?);
    }
    (rest.is_empty() && !deltas.is_empty()).then_some(out)
}

/// `content` cut back into its deltas.
fn uncut(content: &str, cuts: &[u32]) -> Result<Vec<String>, EntryError> {
    let mut at = 0usize;
    let mut out = Vec::with_capacity(cuts.len());
    for &len in cuts {
        let end = at.saturating_add(len as usize);
        let piece = content
            .get(at..end)
            .ok_or_else(|| EntryError::Corrupt("a delta outside its content".into()))?;
        out.push(piece.to_string());
        at = end;
    }
    if at != content.len() {
        return Err(EntryError::Corrupt(
            "deltas shorter than their content".into(),
        ));
    }
    Ok(out)
}

impl<'a> WireRef<'a> {
    fn of(e: &'a CacheEntry) -> WireRef<'a> {
        WireRef {
            content: &e.content,
            deltas: match cuts(&e.content, &e.deltas) {
                Some(cuts) => DeltasRef::Cuts(cuts),
                None => DeltasRef::Texts(&e.deltas),
            },
            tool_calls: &e.tool_calls,
            usage: e.usage.into(),
            cost: e.cost,
            model: &e.model,
            provider: &e.provider,
            finish_reason: e.finish_reason.as_ref().map(FinishRef::of),
            raw_response: e.raw_response.as_deref(),
            chunks: &e.chunks,
            created_ms: e.created_ms,
            expires_ms: e.expires_ms,
            last_used_ms: e.last_used_ms,
            hits: e.hits,
        }
    }
}

impl Wire {
    fn into_entry(self) -> Result<CacheEntry, EntryError> {
        let deltas = match self.deltas {
            Deltas::Cuts(cuts) => uncut(&self.content, &cuts)?,
            Deltas::Texts(texts) => texts,
        };
        Ok(CacheEntry {
            content: self.content,
            deltas,
            tool_calls: self.tool_calls,
            usage: self.usage.into(),
            cost: self.cost,
            model: self.model,
            provider: self.provider,
            finish_reason: self.finish_reason.map(FinishReason::from),
            raw_response: self.raw_response,
            chunks: self.chunks,
            created_ms: self.created_ms,
            expires_ms: self.expires_ms,
            last_used_ms: self.last_used_ms,
            hits: self.hits,
        })
    }
}

impl CacheEntry {
    pub fn encode(&self) -> Vec<u8> {
        self.encode_within(u64::MAX).unwrap_or_default()
    }

    /// The stored bytes, or `None` when the entry's bincode body (before compression: what a
    /// hit decodes) is over `max_body` bytes.
    pub fn encode_within(&self, max_body: u64) -> Option<Vec<u8>> {
        // Encoding plain strings and numbers into a Vec cannot fail.
        let body =
            bincode::serde::encode_to_vec(WireRef::of(self), bincode_config()).unwrap_or_default();
        if body.len() as u64 > max_body {
            return None;
        }
        let mut out = Vec::with_capacity(1 + HEADER_LEN + 5 + body.len());
        out.push(ENTRY_FORMAT);
        for t in [self.created_ms, self.expires_ms, self.last_used_ms] {
            out.extend_from_slice(&t.to_le_bytes());
        }
        let packed = (body.len() >= COMPRESS_FROM)
            .then(|| u32::try_from(body.len()).ok())
            .flatten()
            .map(|len| (len, lz4_flex::block::compress(&body)))
            .filter(|(_, packed)| packed.len() + 4 <= body.len() - body.len() / 8);
        match packed {
            Some((len, packed)) => {
                out.push(LZ4);
                out.extend_from_slice(&len.to_le_bytes());
                out.extend_from_slice(&packed);
            }
            None => {
                out.push(PLAIN);
                out.extend_from_slice(&body);
            }
        }
        Some(out)
    }

    pub fn decode(bytes: &[u8]) -> Result<CacheEntry, EntryError> {
        let (&format, body) = bytes.split_first().ok_or(EntryError::Empty)?;
        if format != ENTRY_FORMAT {
            return Err(EntryError::UnknownFormat(format));
        }
        let (&codec, body) = body
            .get(HEADER_LEN..)
            .and_then(<[u8]>::split_first)
            .ok_or_else(|| EntryError::Corrupt("shorter than its header".into()))?;
        let unpacked;
        let body = match codec {
            PLAIN => body,
            LZ4 => {
                unpacked = unpack(body)?;
                &unpacked[..]
            }
            other => return Err(EntryError::Corrupt(format!("unknown codec {other}"))),
        };
        let (wire, used): (Wire, usize) = bincode::serde::decode_from_slice(body, bincode_config())
            .map_err(|e| EntryError::Corrupt(e.to_string()))?;
        if used != body.len() {
            return Err(EntryError::Corrupt(format!(
                "{} trailing bytes",
                body.len() - used
            )));
        }
        wire.into_entry()
    }

    pub fn is_expired(&self, now_ms: u64) -> bool {
        now_ms >= self.expires_ms
    }
}

/// An [`LZ4`] body: its length, then the block.
fn unpack(body: &[u8]) -> Result<Vec<u8>, EntryError> {
    let corrupt = |why: String| EntryError::Corrupt(why);
    let (len, block) = body
        .split_first_chunk::<4>()
        .ok_or_else(|| corrupt("compressed body without its length".into()))?;
    let len = u32::from_le_bytes(*len) as usize;
    if len > block.len().saturating_mul(LZ4_MAX_RATIO) {
        return Err(corrupt(format!(
            "claims {len} bytes from a {}-byte block",
            block.len()
        )));
    }
    let mut out = vec![0; len];
    match lz4_flex::block::decompress_into(block, &mut out) {
        Ok(n) if n == len => Ok(out),
        Ok(n) => Err(corrupt(format!(
            "{n} bytes, not {len}, after decompressing"
        ))),
        Err(e) => Err(corrupt(format!("does not decompress: {e}"))),
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
            usage: Usage {
                input: 3,
                output: 2,
                cache_read: 4,
                cache_write: 5,
                reasoning: 1,
            },
            cost: 0.5,
            model: "m".into(),
            provider: "p".into(),
            finish_reason: Some(FinishReason::Stop),
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
    fn every_finish_reason_round_trips() {
        for reason in [
            None,
            Some(FinishReason::Stop),
            Some(FinishReason::StopSequence),
            Some(FinishReason::Length),
            Some(FinishReason::ToolCalls),
            Some(FinishReason::ContentFilter),
            Some(FinishReason::Refusal),
            Some(FinishReason::Other("pause_turn".into())),
        ] {
            let mut entry = sample();
            entry.finish_reason = reason;
            assert_eq!(CacheEntry::decode(&entry.encode()), Ok(entry));
        }
    }

    #[test]
    fn an_entry_of_format_4_is_not_read() {
        let mut bytes = sample().encode();
        bytes[0] = 4;
        assert_eq!(
            CacheEntry::decode(&bytes),
            Err(EntryError::UnknownFormat(4))
        );
        assert_eq!(Header::read(&bytes), None);
    }

    /// A stream answer: the same chunk envelope for every token, as OpenAI sends it.
    fn streamed(tokens: usize) -> CacheEntry {
        let mut entry = sample();
        entry.chunks = (0..tokens)
            .map(|i| {
                format!(
                    r#"{{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{{"index":0,"delta":{{"content":" w{i}"}},"finish_reason":null}}]}}"#
                )
            })
            .collect();
        entry
    }

    #[test]
    fn long_bodies_are_compressed_short_ones_not() {
        let short = sample().encode();
        assert_eq!(short[1 + HEADER_LEN], PLAIN);
        let entry = streamed(200);
        let bytes = entry.encode();
        assert_eq!(bytes[1 + HEADER_LEN], LZ4);
        let plain: usize = entry.chunks.iter().map(String::len).sum();
        assert!(
            bytes.len() * 4 < plain,
            "{} bytes stored for {plain} bytes of chunks",
            bytes.len()
        );
        assert_eq!(CacheEntry::decode(&bytes), Ok(entry));
    }

    #[test]
    fn deltas_are_kept_as_cuts_of_the_content_when_they_are_its_pieces() {
        let mut entry = sample();
        entry.content = "Grüße, 世界! ok".into();
        entry.deltas = vec![
            "Grü".into(),
            String::new(),
            "ße, 世".into(),
            "界! ok".into(),
        ];
        let cut = entry.encode();
        assert_eq!(CacheEntry::decode(&cut), Ok(entry.clone()));
        let mut other = entry.clone();
        other.deltas = vec!["Grüße".into(), "?".into()];
        let texts = other.encode();
        assert!(
            texts.len() > cut.len(),
            "deltas that are not the content's pieces are kept"
        );
        assert_eq!(CacheEntry::decode(&texts), Ok(other));
        for deltas in [vec![], vec!["Grü".to_string()]] {
            let mut partial = entry.clone();
            partial.deltas = deltas;
            assert_eq!(CacheEntry::decode(&partial.encode()), Ok(partial));
        }
        assert_eq!(cuts("ab", &["a".into(), "b".into()]), Some(vec![1, 1]));
        assert!(uncut("Grü", &[3]).is_err(), "a cut inside a character");
        assert!(uncut("ab", &[1]).is_err(), "cuts shorter than the content");
        assert!(
            uncut("ab", &[1, u32::MAX]).is_err(),
            "cuts past the content"
        );
    }

    #[test]
    fn a_damaged_compressed_body_is_an_error_not_an_allocation() {
        let mut bytes = streamed(50).encode();
        let len_at = 1 + HEADER_LEN + 1;
        bytes[len_at..len_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        let err = CacheEntry::decode(&bytes).unwrap_err();
        assert!(err.to_string().contains("claims"), "{err}");
        let mut bytes = streamed(50).encode();
        let last = bytes.len() - 1;
        bytes.truncate(last - 40);
        assert!(matches!(
            CacheEntry::decode(&bytes),
            Err(EntryError::Corrupt(_))
        ));
        let mut bytes = streamed(50).encode();
        bytes[1 + HEADER_LEN] = 7;
        assert!(CacheEntry::decode(&bytes)
            .unwrap_err()
            .to_string()
            .contains("unknown codec"));
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
