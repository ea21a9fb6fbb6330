//! Bad prompt files: each is refused with an error naming the file (and the line where the
//! parser knows it), and every other deployment keeps serving.

use std::os::unix::fs::symlink;

use promptd::deployments::scan::MAX_FILE_BYTES;
use promptd::deployments::Status;

use crate::{model_of, row, yaml, Fixture};

const GOOD_MESSAGES: &str = "messages:\n  - role: user\n    content: hi\n";

/// Bad files by name, the text each error must contain, and the line if the error has one.
fn cases() -> Vec<(&'static str, String, &'static str, Option<usize>)> {
    vec![
        (
            "bad-yaml.yaml",
            "provider: openai\nmodel: 'unterminated\n".into(),
            "invalid YAML",
            // libyaml reports where the stream ended inside the quoted scalar.
            Some(3),
        ),
        (
            "bad-toml.toml",
            "provider = \"openai\"\nmodel = [\n".into(),
            "invalid TOML",
            Some(2),
        ),
        (
            "bad-json.json",
            "{\n  \"provider\": \"openai\",\n  \"model\": \"m\",,\n}".into(),
            "invalid JSON",
            Some(3),
        ),
        (
            "unknown-key.yaml",
            format!("provider: openai\nmodel: m\n{GOOD_MESSAGES}temperature: 2\n"),
            "unknown field `temperature`",
            Some(6),
        ),
        (
            "wrong-type.json",
            "{\"provider\": \"openai\", \"model\": \"m\",\n \"model_params\": {\"max_length\": \"long\"},\n \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}".into(),
            "`model_params.max_length`: invalid type",
            Some(2),
        ),
        (
            "missing-model.toml",
            "provider = \"openai\"\n[[messages]]\nrole = \"user\"\ncontent = \"hi\"\n".into(),
            "missing required key `model`",
            None,
        ),
        (
            "unknown-provider.yaml",
            format!("model: m\nprovider: bard\n{GOOD_MESSAGES}"),
            "unknown provider `bard`; configured providers: openai, anthropic",
            Some(2),
        ),
        (
            "unclosed.yaml",
            "provider: openai\nmodel: m\nmessages:\n  - role: user\n    content: \"Hello {{name\"\n".into(),
            "messages[0].content: unclosed `{{`",
            Some(5),
        ),
    ]
}

#[test]
fn each_bad_file_is_refused_clearly_and_the_rest_keeps_serving() {
    let fx = Fixture::new();
    fx.write("good.yaml", &yaml("fine"));
    let mut expected = Vec::new();
    for (name, text, what, line) in cases() {
        let path = fx.write(name, &text);
        expected.push((path, what, line));
    }

    // Links: a loop, a link to a file outside the directory, a dangling link.
    symlink(fx.path("loop-b.yaml"), fx.path("loop-a.yaml")).expect("link");
    symlink(fx.path("loop-a.yaml"), fx.path("loop-b.yaml")).expect("link");
    let outside = fx.dir.path().join("outside.yaml");
    std::fs::write(&outside, yaml("secret")).expect("write outside");
    symlink(&outside, fx.path("escape.yaml")).expect("link");
    let outside_dir = fx.dir.path().join("outside-dir");
    std::fs::create_dir(&outside_dir).expect("mkdir");
    std::fs::write(outside_dir.join("x.yaml"), yaml("secret")).expect("write");
    symlink(&outside_dir, fx.path("escape-dir")).expect("link");
    symlink(&fx.prompts, fx.path("cycle")).expect("link");
    // A link inside the directory is fine.
    std::fs::create_dir(fx.path("real")).expect("mkdir");
    std::fs::write(fx.path("real/target.yaml"), yaml("linked")).expect("write");
    symlink(fx.path("real/target.yaml"), fx.path("alias.yaml")).expect("link");

    // A 100 MB file (sparse: no disk used).
    let huge = fx.path("huge.json");
    std::fs::File::create(&huge)
        .and_then(|f| f.set_len(100 * 1024 * 1024))
        .expect("huge file");

    let registry = fx.registry();
    assert_eq!(model_of(&registry, "good").as_deref(), Some("fine"));
    assert_eq!(model_of(&registry, "alias").as_deref(), Some("linked"));
    assert!(registry.get("outside").is_none() && registry.get("x").is_none());

    for (path, what, line) in &expected {
        let r = row(&registry, path).unwrap_or_else(|| panic!("no row for {}", path.display()));
        assert_eq!(r.status, Status::Error);
        assert!(!r.serving);
        let error = r.last_error.unwrap_or_default();
        let named = match line {
            Some(line) => format!("{}:{line}: ", path.display()),
            None => format!("{}: ", path.display()),
        };
        assert!(error.starts_with(&named), "expected `{named}` in: {error}");
        assert!(error.contains(what), "expected `{what}` in: {error}");
    }
    let link_cases = [
        ("loop-a.yaml", "symlink loop"),
        ("loop-b.yaml", "symlink loop"),
        ("escape.yaml", "outside the prompts directory"),
        ("escape-dir", "outside the prompts directory"),
        ("cycle", "cycles back"),
        ("huge.json", "over the 1048576-byte limit"),
    ];
    for (name, what) in link_cases {
        let path = fx.path(name);
        let r = row(&registry, &path).unwrap_or_else(|| panic!("no row for {name}"));
        let error = r.last_error.unwrap_or_default();
        assert!(error.starts_with(&*path.to_string_lossy()), "{error}");
        assert!(error.contains(what), "expected `{what}` in: {error}");
    }
    assert_eq!(MAX_FILE_BYTES, 1024 * 1024);
    let status = registry.status();
    let serving: Vec<&str> = status
        .deployments
        .iter()
        .filter(|r| r.serving)
        .map(|r| r.id.as_str())
        .collect();
    assert_eq!(serving, vec!["alias", "good", "target"]);
}

#[test]
fn a_file_turned_bad_keeps_its_last_good_version() {
    let fx = Fixture::new();
    fx.write("other.yaml", &yaml("other"));
    for (name, text, what, _) in cases() {
        let good = format!("provider: openai\nmodel: good\n{GOOD_MESSAGES}");
        let ext = name.rsplit('.').next().unwrap_or("yaml");
        let id = name.trim_end_matches(&format!(".{ext}"));
        // Start from a good file of the same syntax.
        let good_text = match ext {
            "toml" => "provider = \"openai\"\nmodel = \"good\"\n[[messages]]\nrole = \"user\"\ncontent = \"hi\"\n".to_owned(),
            "json" => r#"{"provider": "openai", "model": "good", "messages": [{"role": "user", "content": "hi"}]}"#.to_owned(),
            _ => good,
        };
        let path = fx.write(name, &good_text);
        let registry = fx.registry();
        assert_eq!(model_of(&registry, id).as_deref(), Some("good"), "{name}");
        fx.write(name, &text);
        registry.reload_all();
        let r = row(&registry, &path).expect("row");
        assert_eq!(r.status, Status::Error, "{name}");
        assert!(r.serving, "{name}");
        assert!(r.last_error.unwrap_or_default().contains(what), "{name}");
        assert_eq!(model_of(&registry, id).as_deref(), Some("good"), "{name}");
        assert_eq!(model_of(&registry, "other").as_deref(), Some("other"));
        std::fs::remove_file(&path).expect("clean up");
    }
}
