//! A stored completion: versioned bincode (2.x) bytes in the `cache` tree.
//!
//! Layout: one format byte, a fixed header of three little-endian u64 (`created_ms`,
//! `expires_ms`, `last_used_ms`: what eviction and the indexes need, read by [`Header::read`]
//! without decoding the rest), one codec byte, then the bincode encoding of [`CacheEntry`]:
//! as it is ([`PLAIN`]) or, when that saves at least an eighth, LZ4-compressed after its length
//! as a little-endian u32 ([`LZ4`]). Compressed bodies keep sled's leaves small, and sled keeps
//! every leaf a hit touches resident for a while whatever its page-cache bound (its LRU queues
//! 64 accesses in each of 256 shards before it evicts): the cache's memory under hits is its
//! leaves' size. Stream answers (the same chunk envelope per token) shrink most.
//!
//! The answer is the model's [`Response`], stored through mirror types with serde derives (the
//! model has none): its id, model, blocks, finish reason and usage. Text, tool call and
//! reasoning blocks are kept whole (a reasoning block's text, signature, encrypted content and
//! redacted data, byte for byte: a cache hit replays thinking with its signature); the other
//! blocks (Opaque, and Image or ToolResult, which no answer holds) are left out. An answer of
//! one text block — the plain answer — is stored as that text alone, and a stream's deltas that
//! are the text cut in pieces as the pieces' lengths, so a plain answer costs no more than the
//! text once.
//!
//! A value of another format (older release, foreign bytes, a torn write) decodes to an error
//! that the cache treats as a miss and then overwrites — never a panic, never a wrong answer;
//! a damaged length cannot make decoding allocate more than LZ4 could expand its bytes to.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::model::{Block, BlockKind, FinishReason, Response, StreamEvent, Usage};

/// Bump when [`CacheEntry`] or the header changes shape. 5: the finish reason is the model's
/// ([`FinishReason`]), no longer the provider's word. 7: the answer is the model's
/// [`Response`] (its blocks, reasoning and signatures included), no longer Parea's content and
/// tool calls. 8: the wire of the upstream's bytes ([`RawWire`]): an Anthropic-kind answer's
/// body is kept too.
pub const ENTRY_FORMAT: u8 = 8;

/// The wire of an entry's upstream bytes (`raw_response`, `chunks`): only a door of that wire
/// sends them back as they came; every other renders the entry's model answer. Stored as its
/// position: variants are only ever added at the end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum RawWire {
    /// OpenAI's chat completions (an OpenAI-kind provider).
    #[default]
    OpenAiChat,
    /// Anthropic's Messages (an Anthropic-kind provider).
    AnthropicMessages,
    /// OpenAI's Responses (a provider that serves it, called by the Responses door).
    OpenAiResponses,
}

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
    /// The answer as the model holds it, whichever provider kind gave it and whichever door
    /// asked: each door renders it in its own vocabulary. Its `model` is always set (the model
    /// that answered, else the one asked); its usage keeps cached prompt tokens and reasoning
    /// apart (`usage.total_input()` is every prompt token).
    pub response: Response,
    /// A stream's text deltas (pieces of the answer's text), replayed one event each for
    /// `/completion/stream`; a whole answer's text as one delta.
    pub deltas: Vec<String>,
    pub cost: f64,
    pub provider: String,
    /// The upstream's whole answer body as received (non-stream calls), in the wire of
    /// `raw_wire`: a client of that wire gets it back as it was, unknown fields included.
    pub raw_response: Option<String>,
    /// An OpenAI-kind upstream's stream chunks (the JSON of each event) as received: replayed
    /// as they were to OpenAI-route stream clients.
    pub chunks: Vec<String>,
    /// The wire `raw_response` is in: the provider kind's that answered (`chunks` are only
    /// ever an OpenAI-kind upstream's).
    pub raw_wire: RawWire,
    /// Unix milliseconds.
    pub created_ms: u64,
    pub expires_ms: u64,
    pub last_used_ms: u64,
    pub hits: u64,
}

impl CacheEntry {
    /// The model's events of a whole answer held in a cache entry, block by block in the answer's
    /// order (reasoning with its signature, text, tool calls), then its usage and finish. The text
    /// goes as the stream's deltas when they are its pieces (a replay cut as the answer came).
    pub fn events(&self) -> Vec<StreamEvent> {
        let entry = self;
        let r = &entry.response;
        let mut events = vec![StreamEvent::Start {
            id: r.id.clone(),
            model: r.model.clone(),
        }];
        let mut deltas = (!entry.deltas.is_empty() && entry.deltas.concat() == r.text())
            .then_some(entry.deltas.as_slice());
        let text_in_deltas = deltas.is_some();
        for (index, block) in r.blocks.iter().enumerate() {
            match block {
                Block::Text(text) => match deltas.take() {
                    Some(deltas) => {
                        events.extend(deltas.iter().map(|text| StreamEvent::TextDelta {
                            index,
                            text: text.clone(),
                        }))
                    }
                    None if text_in_deltas => continue,
                    None => events.push(StreamEvent::TextDelta {
                        index,
                        text: text.clone(),
                    }),
                },
                Block::ToolCall {
                    id,
                    name,
                    arguments,
                } => {
                    events.push(StreamEvent::BlockStart {
                        index,
                        kind: BlockKind::ToolCall {
                            id: id.clone(),
                            name: name.clone(),
                        },
                    });
                    events.push(StreamEvent::ToolArgsDelta {
                        index,
                        json: arguments.clone(),
                    });
                }
                Block::Reasoning {
                    text,
                    signature,
                    encrypted,
                    redacted,
                } => {
                    events.push(StreamEvent::BlockStart {
                        index,
                        kind: BlockKind::Reasoning {
                            redacted: redacted.clone(),
                        },
                    });
                    if !text.is_empty() {
                        events.push(StreamEvent::ReasoningDelta {
                            index,
                            text: text.clone(),
                        });
                    }
                    if let Some(signature) = signature {
                        events.push(StreamEvent::SignatureDelta {
                            index,
                            signature: signature.clone(),
                        });
                    }
                    if let Some(data) = encrypted {
                        events.push(StreamEvent::Encrypted {
                            index,
                            data: data.clone(),
                        });
                    }
                }
                // An entry holds no other blocks (see `cache::entry`).
                Block::Image { .. } | Block::ToolResult { .. } | Block::Opaque { .. } => continue,
            }
            events.push(StreamEvent::BlockStop { index });
        }
        events.push(StreamEvent::Usage(r.usage));
        if let Some(reason) = &r.finish {
            events.push(StreamEvent::Finish(reason.clone()));
        }
        events
    }

    /// The answer's text (its text blocks joined).
    pub fn text(&self) -> String {
        self.response.text()
    }

    /// Parea's `content`: the text, or the tool calls' JSON when the model called tools.
    pub fn content(&self) -> String {
        crate::providers::content_of(&self.response)
    }

    /// The model that answered (else the one asked).
    pub fn model(&self) -> &str {
        self.response.model.as_deref().unwrap_or_default()
    }
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

/// The deltas as stored: a stream's deltas are its text cut in pieces, so usually only the
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

/// A [`FinishReason`], or none, as encoded (borrowed): bincode writes the variant's position,
/// so variants are only ever added at the end (a reordering is a new [`ENTRY_FORMAT`]). `None`
/// is a variant rather than an `Option` around the others: one byte, not two.
#[derive(Serialize)]
enum FinishRef<'a> {
    None,
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
    None,
    Stop,
    StopSequence,
    Length,
    ToolCalls,
    ContentFilter,
    Refusal,
    Other(String),
}

impl<'a> FinishRef<'a> {
    fn of(reason: Option<&'a FinishReason>) -> FinishRef<'a> {
        match reason {
            None => FinishRef::None,
            Some(FinishReason::Stop) => FinishRef::Stop,
            Some(FinishReason::StopSequence) => FinishRef::StopSequence,
            Some(FinishReason::Length) => FinishRef::Length,
            Some(FinishReason::ToolCalls) => FinishRef::ToolCalls,
            Some(FinishReason::ContentFilter) => FinishRef::ContentFilter,
            Some(FinishReason::Refusal) => FinishRef::Refusal,
            Some(FinishReason::Other(word)) => FinishRef::Other(word),
        }
    }
}

impl Finish {
    fn into_reason(self) -> Option<FinishReason> {
        Some(match self {
            Finish::None => return None,
            Finish::Stop => FinishReason::Stop,
            Finish::StopSequence => FinishReason::StopSequence,
            Finish::Length => FinishReason::Length,
            Finish::ToolCalls => FinishReason::ToolCalls,
            Finish::ContentFilter => FinishReason::ContentFilter,
            Finish::Refusal => FinishReason::Refusal,
            Finish::Other(word) => FinishReason::Other(word),
        })
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

/// A [`Block`] of an answer as stored (borrowed); [`StoredBlock`] decoded. Variants are only
/// ever added at the end.
#[derive(Serialize)]
enum BlockRef<'a> {
    Text(&'a str),
    ToolCall {
        id: &'a str,
        name: &'a str,
        arguments: &'a str,
    },
    Reasoning {
        text: &'a str,
        signature: Option<&'a str>,
        encrypted: Option<&'a str>,
        redacted: Option<&'a str>,
    },
}

#[derive(Deserialize)]
enum StoredBlock {
    Text(String),
    ToolCall {
        id: String,
        name: String,
        arguments: String,
    },
    Reasoning {
        text: String,
        signature: Option<String>,
        encrypted: Option<String>,
        redacted: Option<String>,
    },
}

impl<'a> BlockRef<'a> {
    /// The stored form of an answer's block; `None` for the blocks an entry leaves out.
    fn of(block: &'a Block) -> Option<BlockRef<'a>> {
        match block {
            Block::Text(text) => Some(BlockRef::Text(text)),
            Block::ToolCall {
                id,
                name,
                arguments,
            } => Some(BlockRef::ToolCall {
                id,
                name,
                arguments,
            }),
            Block::Reasoning {
                text,
                signature,
                encrypted,
                redacted,
            } => Some(BlockRef::Reasoning {
                text,
                signature: signature.as_deref(),
                encrypted: encrypted.as_deref(),
                redacted: redacted.as_deref(),
            }),
            Block::Image { .. } | Block::ToolResult { .. } | Block::Opaque { .. } => None,
        }
    }
}

impl From<StoredBlock> for Block {
    fn from(b: StoredBlock) -> Block {
        match b {
            StoredBlock::Text(text) => Block::Text(text),
            StoredBlock::ToolCall {
                id,
                name,
                arguments,
            } => Block::ToolCall {
                id,
                name,
                arguments,
            },
            StoredBlock::Reasoning {
                text,
                signature,
                encrypted,
                redacted,
            } => Block::Reasoning {
                text,
                signature,
                encrypted,
                redacted,
            },
        }
    }
}

/// The answer's blocks as stored: one text block (the plain answer) as its text alone, any
/// other answer block by block.
#[derive(Serialize)]
enum BlocksRef<'a> {
    Text(&'a str),
    Blocks(Vec<BlockRef<'a>>),
}

#[derive(Deserialize)]
enum Blocks {
    Text(String),
    Blocks(Vec<StoredBlock>),
}

impl<'a> BlocksRef<'a> {
    fn of(blocks: &'a [Block]) -> BlocksRef<'a> {
        match blocks {
            [Block::Text(text)] => BlocksRef::Text(text),
            blocks => BlocksRef::Blocks(blocks.iter().filter_map(BlockRef::of).collect()),
        }
    }
}

impl From<Blocks> for Vec<Block> {
    fn from(b: Blocks) -> Vec<Block> {
        match b {
            Blocks::Text(text) => vec![Block::Text(text)],
            Blocks::Blocks(blocks) => blocks.into_iter().map(Block::from).collect(),
        }
    }
}

/// [`CacheEntry`] as encoded (borrowed); [`Wire`] is the same fields decoded. The response's
/// model is stored as a string, empty when it has none.
#[derive(Serialize)]
struct WireRef<'a> {
    id: Option<&'a str>,
    model: &'a str,
    blocks: BlocksRef<'a>,
    finish: FinishRef<'a>,
    usage: StoredUsage,
    deltas: DeltasRef<'a>,
    cost: f64,
    provider: &'a str,
    /// With its wire: one byte more only when there is one (`chunks` are always OpenAI's).
    raw_response: Option<(RawWire, &'a str)>,
    chunks: &'a [String],
    created_ms: u64,
    expires_ms: u64,
    last_used_ms: u64,
    hits: u64,
}

#[derive(Deserialize)]
struct Wire {
    id: Option<String>,
    model: String,
    blocks: Blocks,
    finish: Finish,
    usage: StoredUsage,
    deltas: Deltas,
    cost: f64,
    provider: String,
    raw_response: Option<(RawWire, String)>,
    chunks: Vec<String>,
    created_ms: u64,
    expires_ms: u64,
    last_used_ms: u64,
    hits: u64,
}

/// The lengths `deltas` cut `text` into, when they are exactly its pieces in order.
fn cuts(text: &str, deltas: &[String]) -> Option<Vec<u32>> {
    let mut rest = text;
    let mut out = Vec::with_capacity(deltas.len());
    for delta in deltas {
        rest = rest.strip_prefix(delta.as_str())?;
        out.push(u32::try_from(delta.len()).ok()?);
    }
    (rest.is_empty() && !deltas.is_empty()).then_some(out)
}

/// `text` cut back into its deltas.
fn uncut(text: &str, cuts: &[u32]) -> Result<Vec<String>, EntryError> {
    let mut at = 0usize;
    let mut out = Vec::with_capacity(cuts.len());
    for &len in cuts {
        let end = at.saturating_add(len as usize);
        let piece = text
            .get(at..end)
            .ok_or_else(|| EntryError::Corrupt("a delta outside its text".into()))?;
        out.push(piece.to_string());
        at = end;
    }
    if at != text.len() {
        return Err(EntryError::Corrupt("deltas shorter than their text".into()));
    }
    Ok(out)
}

impl<'a> WireRef<'a> {
    fn of(e: &'a CacheEntry) -> WireRef<'a> {
        let r = &e.response;
        let blocks = BlocksRef::of(&r.blocks);
        let deltas = match &blocks {
            BlocksRef::Text(text) => cuts(text, &e.deltas),
            BlocksRef::Blocks(_) => cuts(&r.text(), &e.deltas),
        };
        WireRef {
            id: r.id.as_deref(),
            model: r.model.as_deref().unwrap_or_default(),
            blocks,
            finish: FinishRef::of(r.finish.as_ref()),
            usage: r.usage.into(),
            deltas: match deltas {
                Some(cuts) => DeltasRef::Cuts(cuts),
                None => DeltasRef::Texts(&e.deltas),
            },
            cost: e.cost,
            provider: &e.provider,
            raw_response: e.raw_response.as_deref().map(|raw| (e.raw_wire, raw)),
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
        let response = Response {
            id: self.id,
            model: (!self.model.is_empty()).then_some(self.model),
            blocks: self.blocks.into(),
            finish: self.finish.into_reason(),
            usage: self.usage.into(),
        };
        let deltas = match self.deltas {
            Deltas::Cuts(cuts) => match response.blocks.as_slice() {
                [Block::Text(text)] => uncut(text, &cuts)?,
                _ => uncut(&response.text(), &cuts)?,
            },
            Deltas::Texts(texts) => texts,
        };
        Ok(CacheEntry {
            response,
            deltas,
            cost: self.cost,
            provider: self.provider,
            raw_wire: self
                .raw_response
                .as_ref()
                .map_or(RawWire::default(), |r| r.0),
            raw_response: self.raw_response.map(|r| r.1),
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

    /// The upstream's whole answer body as it came, when it is in `wire`: shared with the
    /// entry (a cached answer's body is not copied to be sent).
    pub fn raw_body(entry: &Arc<CacheEntry>, wire: RawWire) -> Option<bytes::Bytes> {
        (entry.raw_response.is_some() && entry.raw_wire == wire)
            .then(|| bytes::Bytes::from_owner(RawBody(Arc::clone(entry))))
    }

    /// About what the entry of `bytes` holds once decoded: its body's length unpacked (an LZ4
    /// body says it in its first four bytes; a plain one is its own length).
    pub fn unpacked_len(bytes: &[u8]) -> usize {
        match bytes.get(1 + HEADER_LEN..).and_then(<[u8]>::split_first) {
            Some((&LZ4, body)) => body
                .first_chunk::<4>()
                .map_or(body.len(), |len| u32::from_le_bytes(*len) as usize),
            Some((_, body)) => body.len(),
            None => 0,
        }
    }

    pub fn is_expired(&self, now_ms: u64) -> bool {
        now_ms >= self.expires_ms
    }
}

/// A cache entry seen as the bytes of its upstream body ([`CacheEntry::raw_body`]).
struct RawBody(Arc<CacheEntry>);

impl AsRef<[u8]> for RawBody {
    fn as_ref(&self) -> &[u8] {
        self.0
            .raw_response
            .as_deref()
            .unwrap_or_default()
            .as_bytes()
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
            response: Response {
                id: None,
                model: Some("m".into()),
                blocks: vec![
                    Block::Text("Hello!".into()),
                    Block::ToolCall {
                        id: "c".into(),
                        name: "f".into(),
                        arguments: "{}".into(),
                    },
                ],
                finish: Some(FinishReason::Stop),
                usage: Usage {
                    input: 3,
                    output: 2,
                    cache_read: 4,
                    cache_write: 5,
                    reasoning: 1,
                },
            },
            deltas: vec!["Hel".into(), "lo!".into()],
            cost: 0.5,
            provider: "p".into(),
            raw_response: Some("{}".into()),
            chunks: vec!["{}".into()],
            raw_wire: RawWire::OpenAiChat,
            created_ms: 1,
            expires_ms: 2,
            last_used_ms: 1,
            hits: 0,
        }
    }

    /// A plain answer of a few deltas, as a Parea stream stores it.
    fn plain() -> CacheEntry {
        let deltas = [
            "Hello", "!", " How", " can", " I", " help", " you", " today", "?",
        ];
        CacheEntry {
            response: Response {
                id: None,
                model: Some("gpt-4o-mini-2024-07-18".into()),
                blocks: vec![Block::Text(deltas.concat())],
                finish: Some(FinishReason::Stop),
                usage: Usage {
                    input: 12,
                    output: 9,
                    ..Usage::default()
                },
            },
            deltas: deltas.map(str::to_owned).to_vec(),
            cost: 0.0001,
            provider: "openai".into(),
            raw_response: None,
            chunks: Vec::new(),
            raw_wire: RawWire::OpenAiChat,
            created_ms: 1_765_000_000_000,
            expires_ms: 1_765_086_400_000,
            last_used_ms: 1_765_000_000_000,
            hits: 0,
        }
    }

    #[test]
    fn a_plain_answer_costs_no_more_than_in_format_6() {
        // Format 6 stored this answer in 146 bytes (138 as a whole answer, one delta).
        let entry = plain();
        let bytes = entry.encode();
        assert!(bytes.len() <= 146, "{} bytes", bytes.len());
        assert_eq!(CacheEntry::decode(&bytes), Ok(entry.clone()));
        let mut whole = entry;
        whole.deltas = vec![whole.text()];
        assert!(
            whole.encode().len() <= 138,
            "{} bytes",
            whole.encode().len()
        );
    }

    #[test]
    fn reasoning_blocks_keep_their_signatures_and_the_rest_round_trips() {
        let mut entry = sample();
        entry.response.id = Some("msg_1".into());
        entry.response.blocks = vec![
            Block::Reasoning {
                text: "Let me think.".into(),
                signature: Some("EqQBCkYIBxgCKkDsig==".into()),
                encrypted: None,
                redacted: None,
            },
            Block::Reasoning {
                text: String::new(),
                signature: None,
                encrypted: Some("gAAAAenc".into()),
                redacted: Some("EmwKAhgBEgy".into()),
            },
            Block::Text("Hel".into()),
            Block::ToolCall {
                id: "toolu_1".into(),
                name: "get".into(),
                arguments: "{\"a\":1}".into(),
            },
            Block::Text("lo!".into()),
        ];
        entry.response.finish = Some(FinishReason::ToolCalls);
        let bytes = entry.encode();
        assert_eq!(CacheEntry::decode(&bytes), Ok(entry.clone()));
        assert_eq!(entry.text(), "Hello!");
        assert!(
            entry.content().starts_with(r#"[{"id":"toolu_1""#),
            "Parea's content is the calls"
        );
        // The deltas are the text's pieces: kept as cuts, not a second copy.
        let mut texts = entry.clone();
        texts.deltas = vec!["other".into()];
        assert!(texts.encode().len() > bytes.len());
        assert_eq!(CacheEntry::decode(&texts.encode()), Ok(texts));
        // An opaque block is left out; an answer without blocks is one.
        let mut opaque = entry.clone();
        opaque.response.blocks.push(Block::Opaque {
            wire: crate::model::Wire::AnthropicMessages,
            json: serde_json::json!({"type": "server_tool_use"}),
        });
        assert_eq!(CacheEntry::decode(&opaque.encode()), Ok(entry));
        let mut empty = sample();
        empty.response.blocks.clear();
        empty.response.model = None;
        empty.deltas.clear();
        assert_eq!(CacheEntry::decode(&empty.encode()), Ok(empty));
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
            entry.response.finish = reason;
            assert_eq!(CacheEntry::decode(&entry.encode()), Ok(entry));
        }
    }

    /// Format 6's body: Parea's content, its deltas, the flattened tool calls.
    #[derive(Serialize)]
    struct Format6<'a> {
        content: &'a str,
        deltas: DeltasRef<'a>,
        tool_calls: Vec<(&'a str, &'a str, &'a str)>,
        usage: StoredUsage,
        cost: f64,
        model: &'a str,
        provider: &'a str,
        finish_reason: Option<u8>,
        raw_response: Option<&'a str>,
        chunks: &'a [String],
        created_ms: u64,
        expires_ms: u64,
        last_used_ms: u64,
        hits: u64,
    }

    #[test]
    fn an_entry_of_format_6_is_not_read() {
        let body = bincode::serde::encode_to_vec(
            Format6 {
                content: "Hello!",
                deltas: DeltasRef::Cuts(vec![3, 3]),
                tool_calls: vec![],
                usage: Usage::default().into(),
                cost: 0.0,
                model: "m",
                provider: "p",
                finish_reason: Some(0),
                raw_response: None,
                chunks: &[],
                created_ms: 1,
                expires_ms: 2,
                last_used_ms: 1,
                hits: 0,
            },
            bincode_config(),
        )
        .expect("encodes");
        let mut bytes = vec![6];
        for t in [1u64, 2, 1] {
            bytes.extend_from_slice(&t.to_le_bytes());
        }
        bytes.push(PLAIN);
        bytes.extend_from_slice(&body);
        assert_eq!(
            CacheEntry::decode(&bytes),
            Err(EntryError::UnknownFormat(6))
        );
        assert_eq!(Header::read(&bytes), None);
        // Its body is not this format's either: read as one, it is damage, never an answer.
        bytes[0] = ENTRY_FORMAT;
        assert!(matches!(
            CacheEntry::decode(&bytes),
            Err(EntryError::Corrupt(_))
        ));
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
        // What each decodes to, about: a plain body its own length, a packed one what it says.
        assert_eq!(
            CacheEntry::unpacked_len(&short),
            short.len() - 2 - HEADER_LEN
        );
        assert!(CacheEntry::unpacked_len(&bytes) > 4 * bytes.len());
        assert_eq!(CacheEntry::unpacked_len(&[]), 0);
    }

    #[test]
    fn deltas_are_kept_as_cuts_of_the_text_when_they_are_its_pieces() {
        let mut entry = sample();
        entry.response.blocks[0] = Block::Text("Grüße, 世界! ok".into());
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
            "deltas that are not the text's pieces are kept"
        );
        assert_eq!(CacheEntry::decode(&texts), Ok(other));
        for deltas in [vec![], vec!["Grü".to_string()]] {
            let mut partial = entry.clone();
            partial.deltas = deltas;
            assert_eq!(CacheEntry::decode(&partial.encode()), Ok(partial));
        }
        assert_eq!(cuts("ab", &["a".into(), "b".into()]), Some(vec![1, 1]));
        assert!(uncut("Grü", &[3]).is_err(), "a cut inside a character");
        assert!(uncut("ab", &[1]).is_err(), "cuts shorter than the text");
        assert!(uncut("ab", &[1, u32::MAX]).is_err(), "cuts past the text");
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

    #[test]
    fn an_entry_replays_its_blocks_in_order_with_the_streams_text_cuts() {
        let mut entry = sample();
        entry.response = Response {
            id: Some("msg_1".into()),
            model: Some("claude-x".into()),
            blocks: vec![
                Block::Reasoning {
                    text: "hm".into(),
                    signature: Some("sig".into()),
                    encrypted: None,
                    redacted: None,
                },
                Block::Text("Hello!".into()),
                Block::ToolCall {
                    id: "t".into(),
                    name: "f".into(),
                    arguments: "{}".into(),
                },
            ],
            finish: Some(FinishReason::ToolCalls),
            usage: Usage {
                input: 1,
                output: 2,
                ..Usage::default()
            },
        };
        let events = entry.events();
        assert!(events.contains(&StreamEvent::SignatureDelta {
            index: 0,
            signature: "sig".into()
        }));
        let texts: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                StreamEvent::TextDelta { index: 1, text } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(texts, ["Hel", "lo!"], "the stream's deltas");
        let mut assembler = crate::model::Assembler::default();
        for event in events {
            assembler.push(event).expect("in bounds");
        }
        assert_eq!(assembler.finish(), Ok(entry.response.clone()));
        entry.deltas = vec!["other".into()];
        let texts = entry
            .events()
            .into_iter()
            .filter(|e| matches!(e, StreamEvent::TextDelta { .. }))
            .count();
        assert_eq!(
            texts, 1,
            "deltas that are not the text's pieces are not replayed"
        );
    }
}
