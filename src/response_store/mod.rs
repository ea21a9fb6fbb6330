//! What promptd keeps of the answers of its Responses door (`POST /v1/responses`), so a client
//! can continue a conversation by `previous_response_id` and read or delete an answer
//! (`GET` / `DELETE /v1/responses/{id}`), as OpenAI's Responses API lets it.
//!
//! **What a record holds** ([`Stored`]): its owner, when it was made, the request's input items
//! and the `response` object as the client got it, both as the Responses API's JSON text.
//! Stored as the wire's JSON, not as the internal model, so that a continuation replays
//! exactly what the client and the provider saw: items promptd has no model for (hosted tool
//! calls, `item_reference`, files) come back as they came, and a same-wire call forwards them
//! byte for byte. The input is the *whole* conversation the call had (a continuation's earlier
//! items included), so continuing one response needs that record only: it does not break when
//! an older one in the chain was evicted or deleted, at the price of long chains weighing more
//! (bounded by `responses.max_stored_bytes` like everything else). `instructions` are not
//! kept: as in OpenAI's API, those of a previous response are not carried over.
//!
//! **Continuing** ([`Stored::conversation`]): the stored input items, then the stored
//! response's `output` items (each without its `id`: those name items of promptd's answer,
//! which an upstream keeping nothing does not know), then the new request's input.
//!
//! **Owner** ([`Owner`]): the Unix-socket peer's uid, or one shared owner for every client of
//! the TCP listener (which has no peer uid; its guards, the Host check and the optional
//! `tcp_key`, decide who reaches it at all). A record of another owner is treated as unknown
//! everywhere: its existence is not disclosed.
//!
//! **Format**: one format byte ([`FORMAT_V2`]), the creation time, then a bincode 2 body (standard config, a
//! size limit so a corrupt length cannot allocate much). A record of another format, or one
//! that does not decode, is unknown (and removed when found); never a panic. The index and
//! the bounds are in [`store`], the files in [`log`]; [`Kept`] writes them behind the requests
//! ([`behind`]).

mod behind;
mod log;
mod store;

pub use behind::Kept;

pub use store::{millis, OpenError, ResponseStore, StoreError, Totals, MAX_ID_BYTES};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

/// The format byte of every record this version writes. 2: the creation time (8 bytes, little
/// endian) between the format byte and the bincode body, so that replacing or removing a
/// record finds its age index entry without decoding it. (1, without it, was never released.)
pub const FORMAT_V2: u8 = 2;

/// Bytes before the bincode body: the format byte and the creation time.
const HEADER: usize = 9;

/// Upper bound of a decoded record: past any `max_stored_bytes` one would set for one answer.
const DECODE_LIMIT: usize = 1 << 30;

/// Who may read and continue a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Owner {
    /// A local user on the Unix socket.
    Uid(u32),
    /// Every client of the TCP listener.
    Tcp,
}

/// One kept response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    pub owner: Owner,
    /// Milliseconds since the Unix epoch.
    pub created_ms: u64,
    /// The request's input items (the whole conversation before the answer): a JSON array.
    pub input: String,
    /// The `response` object as answered: a JSON object.
    pub response: String,
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<DECODE_LIMIT>()
}

impl Stored {
    /// Whether `owner` may read this record at `now_ms`: theirs, and not past `max_age`.
    pub fn readable_by(&self, owner: Owner, max_age: std::time::Duration, now_ms: u64) -> bool {
        self.owner == owner && !store::expired(self.created_ms, max_age, now_ms)
    }

    /// The record's bytes: [`FORMAT_V2`], the creation time, then bincode.
    pub fn encode(&self) -> Result<Vec<u8>, String> {
        let mut bytes = Vec::with_capacity(HEADER + self.input.len() + self.response.len() + 16);
        bytes.push(FORMAT_V2);
        bytes.extend_from_slice(&self.created_ms.to_le_bytes());
        bincode::serde::encode_into_std_write(self, &mut bytes, config())
            .map_err(|e| e.to_string())?;
        Ok(bytes)
    }

    /// A record from its bytes; `Err` says why it is unusable.
    pub fn decode(bytes: &[u8]) -> Result<Stored, String> {
        match bytes.split_first() {
            Some((&FORMAT_V2, _)) => {
                bincode::serde::decode_from_slice(bytes.get(HEADER..).unwrap_or_default(), config())
                    .map(|(stored, _)| stored)
                    .map_err(|e| format!("undecodable record: {e}"))
            }
            Some((format, _)) => Err(format!("unknown record format {format}")),
            None => Err("empty record".to_owned()),
        }
    }

    /// The creation time of a record's bytes, read from its header (`None` for a record of
    /// another format or a damaged one).
    pub fn created_ms_of(bytes: &[u8]) -> Option<u64> {
        match bytes.split_first() {
            Some((&FORMAT_V2, rest)) => rest
                .get(..8)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_le_bytes),
            _ => None,
        }
    }

    /// The items a continuation of this response puts before its own input (see the module
    /// header), each as JSON text.
    pub fn conversation(&self) -> Result<Vec<String>, String> {
        let input: Vec<&RawValue> = serde_json::from_str(&self.input)
            .map_err(|e| format!("stored input is not a list of items: {e}"))?;
        let mut items: Vec<String> = input.iter().map(|i| i.get().to_owned()).collect();
        let response: Value = serde_json::from_str(&self.response)
            .map_err(|e| format!("stored response is not JSON: {e}"))?;
        if let Some(output) = response.get("output").and_then(Value::as_array) {
            for item in output {
                let mut item = item.clone();
                if let Some(o) = item.as_object_mut() {
                    o.remove("id");
                }
                items.push(item.to_string());
            }
        }
        Ok(items)
    }

    /// The stored input items (a JSON array's elements, as text).
    pub fn input_items(&self) -> Result<Vec<&RawValue>, String> {
        serde_json::from_str(&self.input).map_err(|e| format!("stored input is not a list: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Stored {
        Stored {
            owner: Owner::Uid(1000),
            created_ms: 1_700_000_000_000,
            input: r#"[{"role":"user","content":"Hi"},{"type":"item_reference","id":"x"}]"#
                .to_owned(),
            response: r#"{"id":"resp_1","object":"response","output":[{"id":"msg_1_0",
                "type":"message","role":"assistant","status":"completed",
                "content":[{"type":"output_text","text":"Hello","annotations":[]}]}]}"#
                .to_owned(),
        }
    }

    #[test]
    fn a_record_round_trips_and_a_strange_one_is_refused_not_panicked_on() {
        let r = record();
        let bytes = r.encode().expect("encodes");
        assert_eq!(bytes[0], FORMAT_V2);
        assert_eq!(Stored::created_ms_of(&bytes), Some(r.created_ms));
        assert_eq!(Stored::decode(&bytes), Ok(r));
        assert_eq!(Stored::created_ms_of(&bytes[..4]), None);
        assert_eq!(Stored::created_ms_of(&[1, 0, 0, 0, 0, 0, 0, 0, 0]), None);
        assert!(Stored::decode(&[]).is_err());
        assert!(Stored::decode(&[9, 1, 2]).unwrap_err().contains("format 9"));
        assert!(Stored::decode(&bytes[..bytes.len() / 2]).is_err());
        let tcp = Stored {
            owner: Owner::Tcp,
            ..record()
        };
        assert_eq!(
            Stored::decode(&tcp.encode().expect("encodes")).map(|s| s.owner),
            Ok(Owner::Tcp)
        );
    }

    #[test]
    fn a_conversation_is_the_input_as_it_came_then_the_output_without_ids() {
        let items = record().conversation().expect("items");
        assert_eq!(items.len(), 3);
        assert_eq!(items[0], r#"{"role":"user","content":"Hi"}"#);
        assert_eq!(
            items[1], r#"{"type":"item_reference","id":"x"}"#,
            "kept whole"
        );
        let answer: Value = serde_json::from_str(&items[2]).expect("json");
        assert!(answer.get("id").is_none(), "{answer}");
        assert_eq!(answer["type"], "message");
        assert_eq!(answer["content"][0]["text"], "Hello");
    }
}
