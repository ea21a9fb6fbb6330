//! What each fuzz target checks, as plain functions over the input bytes: the targets in
//! `fuzz_targets/` call them under libFuzzer (nightly), and `tests/fuzz_regressions.rs` calls
//! them on stable over the inputs kept in `fuzz/regressions/TARGET/`, so every interesting
//! input found stays a test of the normal suite. Each returns normally or panics.

#![allow(dead_code)]

use std::time::Duration;

use promptd::deployments::Template;
use promptd::frontends::decode_json;
use promptd::frontends::openai::{decode_chat, RequestHeaders};
use promptd::frontends::parea::CompletionRequest;
use promptd::logs::{Feedback, LogRecord, Spool, SpoolOptions, TraceLogUpdate};
use promptd::model::{Assembler, StreamEvent};
use promptd::providers::sse::SseParser;
use promptd::wire::{anthropic, openai_chat};

/// Every request body promptd decodes: Parea's Completion, TraceLog, update and feedback, the
/// OpenAI chat and embeddings bodies. Any bytes: an error or a value, never a panic.
pub fn decode_requests(data: &[u8]) {
    // Parea's body, and its configuration as the model (functions read as tools).
    let _ = decode_json::<CompletionRequest>(data).map(CompletionRequest::into_call);
    let _ = decode_json::<LogRecord>(data);
    let _ = decode_json::<TraceLogUpdate>(data);
    let _ = decode_json::<Feedback>(data);
    let _ = decode_chat(
        bytes::Bytes::copy_from_slice(data),
        &RequestHeaders::default(),
    );
    let _ = promptd::frontends::openai::embeddings::decode_embeddings(data, 2048);
    // Each wire's request decoded into the model, then keyed and encoded in the other wire
    // (a translation): an error or a body, never a panic.
    let decoded = [
        anthropic::decode_request(data).map(|d| (d.request, d.hints)),
        openai_chat::decode_request(data).map(|d| (d.request, d.hints)),
    ];
    for (request, hints) in decoded.into_iter().flatten() {
        let _ = promptd::cache::model_key("p", &request, &hints);
        let options = anthropic::EncodeOptions {
            stream: true,
            default_max_tokens: 1024,
        };
        let _ = anthropic::encode_request(&request, &hints, &options);
        let _ = openai_chat::encode_request(
            &request,
            &hints,
            &openai_chat::EncodeOptions { stream: true },
        );
    }
}

/// What a hostile provider can stream: the input (its first byte the chunk size, its second
/// choosing the provider kind) parsed as SSE and decoded into the model's events, assembled
/// within a bound and rendered for the other door. Never a panic; the assembled answer never
/// holds more than its bound.
pub fn provider_stream(data: &[u8]) {
    let Some((&size, rest)) = data.split_first() else {
        return;
    };
    let Some((&kind, body)) = rest.split_first() else {
        return;
    };
    let mut parser = SseParser::new();
    let mut sse = Vec::new();
    for chunk in body.chunks(usize::from(size).max(1)) {
        if parser.feed(chunk, &mut sse).is_err() {
            return;
        }
    }
    let _ = parser.finish(&mut sse);
    const HELD: usize = 4096;
    let mut assembler = Assembler::new(HELD);
    let mut events: Vec<StreamEvent> = Vec::new();
    let mut openai = openai_chat::EventDecoder::default();
    let mut anthropic_events = anthropic::EventDecoder::new();
    for event in &sse {
        let before = events.len();
        let decoded = if kind % 2 == 0 {
            openai.on_chunk(&event.data, &mut events).map(|_| ())
        } else {
            anthropic_events
                .on_event(event.event.as_deref(), &event.data, &mut events)
                .map(|_| ())
        };
        if decoded.is_err() {
            break;
        }
        for e in &events[before..] {
            if assembler.push(e.clone()).is_err() {
                return;
            }
        }
    }
    let mut chat = openai_chat::EventRenderer::new(
        openai_chat::ChunkHeader {
            id: "chatcmpl-1".into(),
            created: 0,
            model: "m".into(),
            system_fingerprint: None,
        },
        true,
    );
    let mut messages = anthropic::EventRenderer::new("msg_1", "m");
    let (mut chunks, mut bytes) = (Vec::new(), Vec::new());
    for e in &events {
        chat.render(e, &mut chunks);
        messages.render(e, &mut bytes);
    }
    chat.finish(&mut chunks);
    messages.finish(&mut bytes);
    if let Ok(response) = assembler.finish() {
        let held: usize = response
            .blocks
            .iter()
            .map(|b| match b {
                promptd::model::Block::Text(t) => t.len(),
                promptd::model::Block::ToolCall { arguments, .. } => arguments.len(),
                promptd::model::Block::Reasoning { text, .. } => text.len(),
                _ => 0,
            })
            .sum();
        assert!(
            held <= HELD,
            "the assembler held {held} bytes past its bound"
        );
    }
}

/// The SSE frame parser, fed the input cut at every byte the input itself chooses (its first
/// byte is the chunk size), then finished: never a panic, never a loop.
pub fn sse_parser(data: &[u8]) {
    let Some((&size, body)) = data.split_first() else {
        return;
    };
    let size = usize::from(size).max(1);
    let mut parser = SseParser::new();
    let mut events = Vec::new();
    for chunk in body.chunks(size) {
        let _ = parser.feed(chunk, &mut events);
    }
    let _ = parser.finish(&mut events);
}

/// `{{placeholder}}` templates: any text compiles or is an error; a compiled one renders with
/// inputs of every JSON kind, and its counted length is the rendering's.
pub fn template(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(template) = Template::compile(text) else {
        return;
    };
    let inputs = serde_json::json!({"x": "x", "name": "Ada", "n": 1, "o": {"k": [1, "a"]}});
    let inputs = inputs.as_object().cloned().unwrap_or_default();
    let counted = template.rendered_len(&inputs);
    if let Ok(rendered) = template.render(&inputs) {
        assert_eq!(
            rendered.len() as u64,
            counted,
            "rendered_len disagrees with render"
        );
    }
}

/// Prompt files in each format: any bytes load or are refused with an error naming the file,
/// quickly (the nesting bound runs before any parser).
pub fn prompt_file(data: &[u8]) {
    let providers = vec!["openai".to_owned()];
    for name in ["p.yaml", "p.toml", "p.json"] {
        if let Err(e) =
            promptd::deployments::loader::parse(std::path::Path::new(name), data, &providers)
        {
            assert!(
                e.to_string().contains(name),
                "the error names the file: {e}"
            );
        }
    }
}

/// The spool's recovery and reader over arbitrary segment bytes: a spool directory holding one
/// segment file of the input opens (a torn or damaged tail repaired, damaged records skipped)
/// or is refused with an error, and reading it ends: never a panic, never a loop.
pub fn spool_segment(data: &[u8]) {
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let spool_dir = dir.path().join("spool");
    if std::fs::create_dir_all(&spool_dir).is_err() {
        return;
    }
    let _ = std::fs::write(spool_dir.join("00000000000000000001.seg"), data);
    let options = SpoolOptions {
        dir: spool_dir,
        max_bytes: 64 * 1024 * 1024,
        segment_bytes: 1024 * 1024,
        flush_interval: Duration::from_millis(1),
        max_batch: 64,
    };
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    runtime.block_on(async {
        let Ok(spool) = Spool::open(options) else {
            return;
        };
        // Every record the segment yields is read once, then the reader is dry (it waits for
        // new records: a short wait with nothing is the end).
        for _ in 0..10_000 {
            let read = tokio::time::timeout(Duration::from_millis(20), spool.read_batch(256));
            match read.await {
                Err(_) => break,
                Ok(Ok(batch)) if batch.is_empty() => break,
                Ok(Ok(batch)) => {
                    for record in batch {
                        spool.ack(record.id);
                    }
                }
                Ok(Err(_)) => break,
            }
        }
        spool.close().await;
    });
}
