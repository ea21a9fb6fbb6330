//! The SSE frame parser, fed the input cut at every byte the input itself chooses (its first
//! byte is the chunk size), then finished: never a panic, never a loop.
#![no_main]

use libfuzzer_sys::fuzz_target;
use promptd::providers::sse::SseParser;

fuzz_target!(|data: &[u8]| {
    let Some((&size, body)) = data.split_first() else {
        return;
    };
    let size = usize::from(size).max(1);
    let mut parser = SseParser::new();
    let mut events = Vec::new();
    for chunk in body.chunks(size) {
        parser.feed(chunk, &mut events);
    }
    parser.finish(&mut events);
});
