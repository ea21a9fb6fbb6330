//! `{{placeholder}}` templates: any text compiles or is an error; a compiled one renders with
//! inputs of every JSON kind, and its counted length is the rendering's.
#![no_main]

use libfuzzer_sys::fuzz_target;
use promptd::deployments::Template;

fuzz_target!(|data: &[u8]| {
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
});
