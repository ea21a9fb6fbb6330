//! Client records — a client's TraceLog, an update of one, feedback, a tracing integration's
//! run — on their one way into the spool: checked, sampled by their trace's rate, appended as
//! the bytes the client sent (unknown fields, nulls and number spellings kept) or, when they are
//! over `spool.max_record_bytes`, cut as promptd's own records are ([`cap_object`]: heads of the
//! longest texts, each cut field's length and hash in `truncated`), and answered only once
//! durable. The routes decode the body and call [`accept`]; nothing else of the
//! spool's encoding reaches them.

use super::record::cap::cap_object;
use super::record::entry::{encode_json_text, EntryKind, Feedback, TraceLogUpdate};
use super::record::integration::{LangchainRun, TraceIntegration};
use super::record::{sampled_in, LogRecord};
use super::spool::Spool;

/// A decoded client record, borrowed from what the route decoded.
#[derive(Debug, Clone, Copy)]
pub enum ClientRecord<'a> {
    /// `POST /trace_log`.
    TraceLog(&'a LogRecord),
    /// `PUT /trace_log`.
    Update(&'a TraceLogUpdate),
    /// `POST /feedback`.
    Feedback(&'a Feedback),
    /// `POST /trace_log/{vendor}`.
    Integration(TraceIntegration, &'a LangchainRun),
}

/// What became of an accepted record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted<'a> {
    /// On disk, with its spool id.
    Durable { trace_id: &'a str, spool_id: u64 },
    /// Dropped by its trace's sample rate: nothing spooled, and that is a success.
    SampledOut { trace_id: &'a str },
}

/// Why a record was not accepted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IntakeError {
    /// The record breaks a rule of its kind (`field` names the field).
    #[error("{message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// The spool cannot take it now (full, disk failing, closing): the client may try again.
    #[error("{0}")]
    NotAccepted(String),
    /// promptd's own fault (a checked record that does not encode).
    #[error("{0}")]
    Internal(String),
}

/// Check `record`, sample it, append `body` (the bytes it was decoded from; cut to at most
/// `max_record` bytes) and wait until it is durable.
pub async fn accept<'a>(
    spool: &Spool,
    record: ClientRecord<'a>,
    body: &[u8],
    max_record: usize,
) -> Result<Accepted<'a>, IntakeError> {
    let (kind, trace_id) = check(record)?;
    if let Some((key, rate)) = sampling(record) {
        if !sampled_in(key, rate) {
            return Ok(Accepted::SampledOut { trace_id });
        }
    }
    // Neither can fail on a body serde_json accepted (it is UTF-8, and an envelope of strings
    // always encodes): were one to, it is promptd's fault, not the client's.
    let text = std::str::from_utf8(body)
        .map_err(|e| IntakeError::Internal(format!("a checked record is not UTF-8: {e}")))?;
    let capped;
    let text = if text.len() + trace_id.len() > max_record {
        capped = capped_text(text, max_record)?;
        capped.as_str()
    } else {
        text
    };
    let bytes = encode_json_text(kind, trace_id, text)
        .map_err(|e| IntakeError::Internal(format!("record cannot be spooled: {e}")))?;
    let durable = spool
        .append(bytes)
        .map_err(|e| IntakeError::NotAccepted(format!("{e}; try again later")))?;
    let spool_id = durable
        .await
        .map_err(|e| IntakeError::NotAccepted(e.to_string()))?;
    Ok(Accepted::Durable { trace_id, spool_id })
}

/// A client's record (a JSON object: every route checked it decodes as one) cut under
/// `max_record`, its unknown fields kept.
fn capped_text(text: &str, max_record: usize) -> Result<String, IntakeError> {
    let internal = |e: serde_json::Error| IntakeError::Internal(format!("a checked record: {e}"));
    let serde_json::Value::Object(mut fields) = serde_json::from_str(text).map_err(internal)?
    else {
        return Err(IntakeError::Internal(
            "a checked record is not an object".into(),
        ));
    };
    let cut = cap_object(&mut fields, serde_json::Map::new(), max_record);
    tracing::info!(fields = %cut.join(", "), max_record, "a client's record over spool.max_record_bytes was cut (marked in its `truncated`)");
    serde_json::to_string(&fields).map_err(internal)
}

/// The rules of each kind; its entry kind and the trace it belongs to.
fn check(record: ClientRecord<'_>) -> Result<(EntryKind, &str), IntakeError> {
    match record {
        ClientRecord::TraceLog(log) => {
            let trace_id = log
                .trace_id
                .as_deref()
                .filter(|t| !t.is_empty())
                .ok_or_else(|| IntakeError::Invalid {
                    field: "trace_id",
                    message: "trace_id is required".to_owned(),
                })?;
            Ok((EntryKind::TraceLog, trace_id))
        }
        ClientRecord::Update(update) => Ok((EntryKind::TraceLogUpdate, &update.trace_id)),
        ClientRecord::Feedback(feedback) => {
            if !(0.0..=1.0).contains(&feedback.score) {
                return Err(IntakeError::Invalid {
                    field: "score",
                    message: format!("score must be between 0 and 1, got {}", feedback.score),
                });
            }
            Ok((EntryKind::Feedback, &feedback.trace_id))
        }
        ClientRecord::Integration(integration, run) => {
            Ok((EntryKind::IntegrationLog(integration), run.trace_key()))
        }
    }
}

/// The key and rate that keep or drop a record with its whole trace (records without a rate
/// are kept; updates and feedback follow the record they belong to).
fn sampling(record: ClientRecord<'_>) -> Option<(&str, f64)> {
    match record {
        ClientRecord::TraceLog(log) => Some((log.sampling_key()?, log.log_sample_rate?)),
        ClientRecord::Integration(_, run) => Some((run.sampling_key()?, run.log_sample_rate?)),
        ClientRecord::Update(_) | ClientRecord::Feedback(_) => None,
    }
}
