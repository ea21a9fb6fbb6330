//! `{{name}}` templates: compiled once into literal and placeholder parts, rendered per request
//! without re-parsing.
//!
//! Syntax: `{{ name }}` (spaces inside the braces are optional) is replaced by the input `name`;
//! string inputs render as themselves, any other JSON value as its JSON text. `\{{` renders a
//! literal `{{`. An unclosed `{{` or an empty `{{}}` is a compile error; a placeholder without
//! an input is a render error that lists every missing name.

use std::fmt::Write as _;

use serde_json::{Map, Value};

/// A compiled template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Placeholder(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unclosed `{{{{` at byte {0}")]
    Unclosed(usize),
    #[error("empty placeholder `{{{{}}}}` at byte {0}")]
    Empty(usize),
    #[error("missing inputs: {}", .0.join(", "))]
    Missing(Vec<String>),
    /// The rendering would be `size` bytes, over `limit`: refused before it is built.
    #[error("the rendered messages would be {size} bytes, over the limit of {limit} bytes")]
    TooLarge { size: u64, limit: u64 },
}

impl Template {
    /// Compile `source`.
    pub fn compile(source: &str) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = source;
        let mut offset = 0;
        while let Some(i) = rest.find("{{") {
            if rest[..i].ends_with('\\') {
                literal.push_str(&rest[..i - 1]);
                literal.push_str("{{");
                rest = &rest[i + 2..];
                offset += i + 2;
                continue;
            }
            literal.push_str(&rest[..i]);
            let after = &rest[i + 2..];
            let close = after
                .find("}}")
                .ok_or(TemplateError::Unclosed(offset + i))?;
            let name = after[..close].trim();
            if name.is_empty() {
                return Err(TemplateError::Empty(offset + i));
            }
            if !literal.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut literal)));
            }
            parts.push(Part::Placeholder(name.to_owned()));
            let consumed = i + 2 + close + 2;
            rest = &rest[consumed..];
            offset += consumed;
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Template { parts })
    }

    /// Whether the template has any placeholder.
    pub fn has_placeholders(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Placeholder(_)))
    }

    /// Placeholder names in order of appearance (with repeats).
    pub fn placeholders(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Placeholder(name) => Some(name.as_str()),
            Part::Literal(_) => None,
        })
    }

    /// The length in bytes of the rendering with `inputs`, counted without building it (a
    /// missing input counts 0; a non-string value is measured once per name, however often it
    /// is used). Saturates instead of overflowing.
    pub fn rendered_len(&self, inputs: &Map<String, Value>) -> u64 {
        let mut measured: Vec<(&str, u64)> = Vec::new();
        let mut total: u64 = 0;
        for part in &self.parts {
            let len = match part {
                Part::Literal(text) => text.len() as u64,
                Part::Placeholder(name) => match inputs.get(name) {
                    None => 0,
                    Some(Value::String(s)) => s.len() as u64,
                    Some(other) => match measured.iter().find(|(n, _)| n == name) {
                        Some((_, len)) => *len,
                        None => {
                            let len = json_len(other);
                            measured.push((name, len));
                            len
                        }
                    },
                },
            };
            total = total.saturating_add(len);
        }
        total
    }

    /// Render with `inputs`; every missing name is reported at once.
    pub fn render(&self, inputs: &Map<String, Value>) -> Result<String, TemplateError> {
        let mut missing: Vec<String> = Vec::new();
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Placeholder(name) => match inputs.get(name) {
                    Some(Value::String(s)) => out.push_str(s),
                    Some(other) => {
                        let _ = write!(out, "{other}");
                    }
                    None => {
                        if !missing.contains(name) {
                            missing.push(name.clone());
                        }
                    }
                },
            }
        }
        if missing.is_empty() {
            Ok(out)
        } else {
            Err(TemplateError::Missing(missing))
        }
    }
}

/// The length of `value`'s JSON text, written to a counter, not a buffer.
fn json_len(value: &Value) -> u64 {
    struct Count(u64);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 = self.0.saturating_add(buf.len() as u64);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing a Value to a sink that never fails cannot fail.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn inputs(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn renders_strings_and_json_values() {
        let t =
            Template::compile("Hi {{name}}, {{ n }} items: {{list}}{{name}}").expect("compiles");
        let out = t
            .render(&inputs(
                json!({"name": "Ada", "n": 3, "list": ["a", 1], "extra": true}),
            ))
            .expect("renders");
        assert_eq!(out, "Hi Ada, 3 items: [\"a\",1]Ada");
    }

    #[test]
    fn rendered_len_matches_the_rendering_without_building_it() {
        let t = Template::compile("a {{x}} b {{n}} {{x}} {{gone}}").unwrap();
        let inputs = inputs(json!({"x": "héllo", "n": {"k": [1, 2.5]}}));
        let rendered = format!("a héllo b {} héllo ", json!({"k": [1, 2.5]}));
        assert_eq!(t.rendered_len(&inputs), rendered.len() as u64);
        let t = Template::compile("{{x}}").unwrap();
        assert_eq!(t.rendered_len(&Map::new()), 0);
    }

    #[test]
    fn reports_every_missing_input_once() {
        let t = Template::compile("{{a}} {{b}} {{a}} {{c}}").expect("compiles");
        let err = t.render(&inputs(json!({"b": "x"}))).unwrap_err();
        assert_eq!(err, TemplateError::Missing(vec!["a".into(), "c".into()]));
    }

    #[test]
    fn escapes_unclosed_and_empty() {
        let t = Template::compile(r"literal \{{name}} and {{name}}").expect("compiles");
        assert_eq!(
            t.render(&inputs(json!({"name": "x"}))).expect("renders"),
            "literal {{name}} and x"
        );
        assert_eq!(
            Template::compile("a {{b").unwrap_err(),
            TemplateError::Unclosed(2)
        );
        assert_eq!(
            Template::compile("a {{ }}").unwrap_err(),
            TemplateError::Empty(2)
        );
        let plain = Template::compile("no placeholders } {").expect("compiles");
        assert!(!plain.has_placeholders());
        assert_eq!(
            plain.render(&Map::new()).expect("renders"),
            "no placeholders } {"
        );
    }
}
