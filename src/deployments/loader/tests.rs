//! Unit tests of the prompt-file parser: each syntax, each kind of bad input.

use super::*;

fn providers() -> Vec<String> {
    vec!["openai".into(), "anthropic".into()]
}

fn load(name: &str, text: &str) -> Result<Parsed, LoadError> {
    parse(
        &PathBuf::from(format!("/p/{name}")),
        text.as_bytes(),
        &providers(),
    )
}

fn err(name: &str, text: &str) -> LoadError {
    match load(name, text) {
        Ok(parsed) => panic!("{name} should not load, got {parsed:?}"),
        Err(e) => e,
    }
}

const YAML: &str = "name: Greeting
provider: openai
model: gpt-4o-mini
model_params:
  temp: 0.2
  max_length: 100
messages:
  - role: system
    content: You greet {{ who }}.
  - role: user
    content: \"{{q}}\"
functions:
  - name: f
    parameters: {type: object}
function_call: auto
";

#[test]
fn the_three_syntaxes_give_the_same_deployment() {
    let yaml = load("greet.yaml", YAML).expect("yaml loads");
    let toml = load(
        "greet.toml",
        r#"name = "Greeting"
provider = "openai"
model = "gpt-4o-mini"
function_call = "auto"
[model_params]
temp = 0.2
max_length = 100
[[messages]]
role = "system"
content = "You greet {{ who }}."
[[messages]]
role = "user"
content = "{{q}}"
[[functions]]
name = "f"
parameters = { type = "object" }
"#,
    )
    .expect("toml loads");
    let json = load(
        "greet.json",
        r#"{"name": "Greeting", "provider": "openai", "model": "gpt-4o-mini",
            "model_params": {"temp": 0.2, "max_length": 100},
            "messages": [{"role": "system", "content": "You greet {{ who }}."},
                         {"role": "user", "content": "{{q}}"}],
            "functions": [{"name": "f", "parameters": {"type": "object"}}],
            "function_call": "auto"}"#,
    )
    .expect("json loads");
    assert_eq!(yaml, toml);
    assert_eq!(yaml, json);
    assert_eq!(yaml.content.id, "greet");
    assert_eq!(yaml.content.model_params.temp, Some(0.2));
    assert_eq!(yaml.version, None);
}

#[test]
fn id_and_version_can_be_given() {
    let parsed = load(
        "x.yml",
        "id: support\nversion: 7\nprovider: anthropic\nmodel: m\nmessages: [{role: user, content: hi}]",
    )
    .expect("loads");
    assert_eq!(parsed.content.id, "support");
    assert_eq!(parsed.content.name, "support");
    assert_eq!(parsed.version, Some(7));
}

#[test]
fn syntax_errors_name_file_line_and_format() {
    let e = err("a.yaml", "provider: openai\nmessages:\n\t- role: user\n");
    assert!(
        matches!(
            e.problem,
            Problem::Syntax {
                format: Format::Yaml,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(e.line, Some(3), "{e}");
    let e = err("a.toml", "provider = \"openai\"\nmodel = \n");
    assert!(
        matches!(
            e.problem,
            Problem::Syntax {
                format: Format::Toml,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(e.line, Some(2), "{e}");
    let e = err("a.json", "{\"provider\": \"openai\",\n \"model\": }");
    assert!(
        matches!(
            e.problem,
            Problem::Syntax {
                format: Format::Json,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(e.line, Some(2), "{e}");
    assert!(
        e.to_string().starts_with("/p/a.json:2: invalid JSON"),
        "{e}"
    );
    let e = err("a.json", "{} {}");
    assert!(matches!(e.problem, Problem::Syntax { .. }), "{e}");
}

#[test]
fn unknown_keys_and_wrong_types_are_named() {
    let base = "provider: openai\nmodel: m\nmessages: [{role: user, content: hi}]\n";
    let e = err("a.yaml", &format!("{base}modle: x\n"));
    assert!(e.to_string().contains("unknown field `modle`"), "{e}");
    assert_eq!(e.line, Some(4), "{e}");
    let e = err(
        "a.yaml",
        &format!("{base}model_params: {{temperature: 1}}\n"),
    );
    assert!(e.to_string().contains("temperature"), "{e}");
    let e = err("a.yaml", &format!("{base}model_params:\n  temp: hot\n"));
    assert!(e.to_string().contains("model_params.temp"), "{e}");
    assert_eq!(e.line, Some(5), "{e}");
    let e = err(
        "a.json",
        r#"{"provider": "openai", "model": "m", "messages": [{"role": "wizard", "content": "x"}]}"#,
    );
    assert!(e.to_string().contains("messages[0].role"), "{e}");
    let e = err(
        "a.toml",
        "provider = \"openai\"\nmodel = \"m\"\n[model_params]\nmax_length = \"long\"\n",
    );
    assert!(e.to_string().contains("model_params.max_length"), "{e}");
    assert_eq!(e.line, Some(4), "{e}");
    let e = err(
        "a.toml",
        "provider = \"openai\"\nmodel = \"m\"\nextra = 1\n[[messages]]\nrole = \"user\"\ncontent = \"x\"\n",
    );
    assert!(e.to_string().contains("extra"), "{e}");
    assert_eq!(e.line, Some(3), "{e}");
}

#[test]
fn semantic_errors_are_clear() {
    let e = err(
        "a.yaml",
        "provider: openai\nmessages: [{role: user, content: hi}]\n",
    );
    assert_eq!(e.problem, Problem::Missing("model"));
    assert_eq!(e.to_string(), "/p/a.yaml: missing required key `model`");
    let e = err(
        "a.yaml",
        "provider: bard\nmodel: m\nmessages: [{role: user, content: hi}]\n",
    );
    assert_eq!(e.line, Some(1));
    assert_eq!(
        e.to_string(),
        "/p/a.yaml:1: unknown provider `bard`; configured providers: openai, anthropic"
    );
    let e = err(
        "a.yaml",
        "provider: openai\nmodel: m\nmessages:\n  - role: user\n    content: ok\n  - role: user\n    content: hello {{name\n",
    );
    assert_eq!(e.line, Some(7), "{e}");
    assert!(
        e.to_string().contains(
            "messages[1].content: unclosed `{{` at byte 6 (write `\\{{` for a literal `{{`)"
        ),
        "{e}"
    );
    let e = err("a.yaml", "provider: openai\nmodel: m\nmessages: []\n");
    assert_eq!(e.problem, Problem::Empty { key: "messages" });
    let e = err(
        "a.yaml",
        "id: 'bad id'\nprovider: openai\nmodel: m\nmessages: [{role: user, content: hi}]\n",
    );
    assert!(matches!(e.problem, Problem::BadId(_)), "{e}");
    let e = parse(&PathBuf::from("/p/a.yaml"), b"\xff\xfe", &providers()).unwrap_err();
    assert_eq!(e.problem, Problem::NotUtf8);
}

#[test]
fn escaped_braces_are_literal() {
    let parsed = load(
        "a.yaml",
        "provider: openai\nmodel: m\nmessages: [{role: user, content: 'say \\{{x}} to {{x}}'}]\n",
    )
    .expect("loads");
    let rendered = parsed.content.messages[0]
        .template
        .render(
            &serde_json::json!({"x": 1})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        )
        .expect("renders");
    assert_eq!(rendered, "say {{x}} to 1");
}

#[test]
fn deep_nesting_is_refused_before_parsing_in_every_format() {
    // 200,000 levels: the hostile file the hardening issue found took ~90 s of CPU to refuse.
    for (name, text) in [
        (
            "deep.yaml",
            format!("provider: openai\nmessages: {}", "[".repeat(200_000)),
        ),
        (
            "deep.json",
            format!("{{\"messages\": {}", "[".repeat(200_000)),
        ),
        ("deep.toml", format!("messages = {}", "[".repeat(200_000))),
        (
            "block.yaml",
            (0..100)
                .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
                .collect::<String>(),
        ),
        ("dashes.yaml", format!("messages:\n{}x\n", "- ".repeat(100))),
    ] {
        let started = std::time::Instant::now();
        let e = err(name, &text);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "{name}: {:?}",
            started.elapsed()
        );
        let message = e.to_string();
        assert!(message.contains(name), "names the file: {message}");
        assert!(message.contains("nested more than 64 levels"), "{message}");
    }
}

#[test]
fn ordinary_nesting_and_brackets_in_text_are_fine() {
    let text = "provider: openai\nmodel: m\nmessages:\n  - role: user\n    content: \"[[[{{x}}]]] # not a comment\"\n  - role: assistant\n    content: 'it''s [fine'\n";
    assert_eq!(too_deep(text, MAX_NESTING), None);
    assert!(load("a.yaml", text).is_ok());
    assert_eq!(too_deep(&"[".repeat(65), 64), Some((1, 65)));
    assert_eq!(too_deep(&"[".repeat(64), 64), None);
}
