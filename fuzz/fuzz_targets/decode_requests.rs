//! Every request body promptd decodes: Parea's Completion, TraceLog, update and feedback, the
//! OpenAI chat and embeddings bodies. Any bytes: an error or a value, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use promptd::api::openai::{decode_chat, RequestHeaders};
use promptd::api::{decode_json, CompletionRequest};
use promptd::logs::{Feedback, LogRecord, TraceLogUpdate};

fuzz_target!(|data: &[u8]| {
    let _ = decode_json::<CompletionRequest>(data);
    let _ = decode_json::<LogRecord>(data);
    let _ = decode_json::<TraceLogUpdate>(data);
    let _ = decode_json::<Feedback>(data);
    let _ = decode_chat(data, &RequestHeaders::default());
    let _ = promptd::api::openai::embeddings::decode_embeddings(data, 2048);
});
