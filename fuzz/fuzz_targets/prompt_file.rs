//! Prompt files in each format: any bytes load or are refused with an error naming the file,
//! quickly (the nesting bound runs before any parser).
#![no_main]

use libfuzzer_sys::fuzz_target;
use promptd::deployments::loader::parse;

fuzz_target!(|data: &[u8]| {
    let providers = vec!["openai".to_owned()];
    for name in ["p.yaml", "p.toml", "p.json"] {
        if let Err(e) = parse(std::path::Path::new(name), data, &providers) {
            assert!(
                e.to_string().contains(name),
                "the error names the file: {e}"
            );
        }
    }
});
