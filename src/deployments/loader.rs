//! Parse one prompt file (`*.yaml`/`*.yml`, `*.toml`, `*.json`) into a [`DeploymentContent`].
//!
//! Raw then validated, as for the config: `RawDeployment` mirrors the file and refuses unknown
//! keys; [`parse`] then checks what serde cannot (model and provider present, provider
//! configured, at least one message, every template compiles). Every error is a [`LoadError`]
//! naming the file, the line where one is known, and what is wrong.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::deployment::{DeploymentContent, DeploymentMessage};
use super::template::TemplateError;
use crate::call::{FunctionCallSpec, ModelParams, Role};

/// The file syntaxes a prompt file may use, by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Toml,
    Json,
}

impl Format {
    /// The format of `path` by its extension, `None` for files that are not prompt files.
    pub fn of(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()? {
            "yaml" | "yml" => Some(Format::Yaml),
            "toml" => Some(Format::Toml),
            "json" => Some(Format::Json),
            _ => None,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Yaml => "YAML",
            Format::Toml => "TOML",
            Format::Json => "JSON",
        })
    }
}

/// A prompt file that cannot be served: which file, which line (when known), what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: {problem}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct LoadError {
    pub path: PathBuf,
    /// 1-based line of the problem in the file.
    pub line: Option<usize>,
    pub problem: Problem,
}

/// What is wrong with a prompt file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("cannot read the file: {0}")]
    Read(String),
    /// About a folder: it could not be listed.
    #[error("cannot read the folder: {0}")]
    UnreadableFolder(String),
    /// About a file that could not be seen because its folder could not be listed.
    #[error("cannot read its folder {}: {reason}", folder.display())]
    InUnreadableFolder { folder: PathBuf, reason: String },
    #[error(
        "the file is {size} bytes, over the {limit}-byte limit for a prompt file; \
         is it really a prompt?"
    )]
    TooLarge { size: u64, limit: u64 },
    #[error("symlink loop: the link never resolves to a file; remove or fix the link")]
    SymlinkLoop,
    #[error(
        "the link resolves to {}, outside the prompts directory {}; \
         copy the file into the prompts directory instead",
        target.display(), root.display()
    )]
    OutsideRoot { target: PathBuf, root: PathBuf },
    #[error("the link points nowhere ({0})")]
    DanglingLink(String),
    #[error("a directory link cycles back to {0}")]
    DirectoryCycle(PathBuf),
    #[error("the file is not UTF-8 text")]
    NotUtf8,
    #[error("invalid {format}: {message}")]
    Syntax { format: Format, message: String },
    #[error("{message}")]
    Schema { message: String },
    #[error("missing required key `{0}`")]
    Missing(&'static str),
    #[error("`{key}` must not be empty")]
    Empty { key: &'static str },
    #[error("id `{0}` is not valid: use letters, digits and `-_.:@/` (at most 200)")]
    BadId(String),
    #[error("unknown provider `{requested}`; configured providers: {}", configured.join(", "))]
    UnknownProvider {
        requested: String,
        configured: Vec<String>,
    },
    #[error("messages[{index}].content: {error} (write `\\{{{{` for a literal `{{{{`)")]
    Template { index: usize, error: TemplateError },
    #[error("id `{id}` is declared by both {} and {}; each id may be used once", this.display(), other.display())]
    DuplicateId {
        id: String,
        this: PathBuf,
        other: PathBuf,
    },
}

/// A prompt file as written. Every key is optional here so that a missing one gets its own
/// clear error from [`parse`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeployment {
    id: Option<String>,
    name: Option<String>,
    provider: Option<String>,
    model: Option<String>,
    model_params: Option<RawModelParams>,
    messages: Option<Vec<RawMessage>>,
    functions: Option<Vec<Value>>,
    function_call: Option<FunctionCallSpec>,
    version: Option<u64>,
}

/// `model_params` of a file: unlike a request's, unknown keys are refused (a typo in a file is
/// a mistake to report, not a newer SDK's field to ignore).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModelParams {
    temp: Option<f64>,
    top_p: Option<f64>,
    frequency_penalty: Option<f64>,
    presence_penalty: Option<f64>,
    max_length: Option<u32>,
    response_format: Option<Value>,
    safe_prompt: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMessage {
    role: Role,
    content: String,
}

/// A parsed and validated file: its content and, when the file sets one, its version.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub content: DeploymentContent,
    pub version: Option<u64>,
}

/// The id a file gets when it does not declare one: its name without the extension.
pub fn default_id(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Parse and validate the file `path` whose bytes are `bytes`. `providers` are the configured
/// provider names.
pub fn parse(path: &Path, bytes: &[u8], providers: &[String]) -> Result<Parsed, LoadError> {
    let fail = |line: Option<usize>, problem: Problem| LoadError {
        path: path.to_owned(),
        line,
        problem,
    };
    let format = Format::of(path).ok_or_else(|| {
        fail(
            None,
            Problem::Schema {
                message: "not a prompt file: the name must end in .yaml, .yml, .toml or .json"
                    .into(),
            },
        )
    })?;
    let text = std::str::from_utf8(bytes).map_err(|_| fail(None, Problem::NotUtf8))?;
    // Before any parser sees it: YAML parsing is quadratic in nesting depth (a 400 KB file of
    // `[` took minutes of CPU), and a prompt file never needs more than a few levels.
    if let Some((line, depth)) = too_deep(text, MAX_NESTING) {
        return Err(fail(
            Some(line),
            Problem::Syntax {
                format,
                message: format!(
                    "nested more than {MAX_NESTING} levels deep (at least {depth} here): a prompt \
                     file needs a few levels; refused without parsing it"
                ),
            },
        ));
    }
    let raw = deserialize(format, text).map_err(|(line, problem)| fail(line, problem))?;
    validate(raw, path, text, providers).map_err(|(line, problem)| fail(line, problem))
}

type Located = (Option<usize>, Problem);

/// Deepest nesting a prompt file may have (collections inside collections, flow or block).
pub const MAX_NESTING: usize = 64;

/// The first line (1-based) where `text` nests deeper than `limit`, and the depth reached
/// there; `None` when it stays within. Counts `[`/`{` outside quotes and comments, block
/// indentation levels and `- ` sequence markers: an upper bound of the parsed depth, found in
/// one pass over the text, whatever the format.
fn too_deep(text: &str, limit: usize) -> Option<(usize, usize)> {
    let mut flow: usize = 0;
    let mut indents: Vec<usize> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim_start_matches(' ');
        if flow == 0 && !trimmed.is_empty() && !trimmed.starts_with('#') {
            let indent = line.len() - trimmed.len();
            while indents.last().is_some_and(|&top| top >= indent) {
                indents.pop();
            }
            indents.push(indent);
        }
        let mut dashes = 0;
        let mut rest = trimmed;
        while let Some(after) = rest.strip_prefix("- ") {
            dashes += 1;
            rest = after.trim_start_matches(' ');
        }
        let mut quote: Option<char> = None;
        let mut escaped = false;
        let mut previous = ' ';
        for c in line.chars() {
            match quote {
                Some(q) => {
                    if escaped {
                        escaped = false;
                    } else if c == '\\' && q == '"' {
                        escaped = true;
                    } else if c == q {
                        quote = None;
                    }
                }
                None => match c {
                    '"' | '\'' => quote = Some(c),
                    '#' if previous.is_whitespace() => break,
                    '[' | '{' => flow += 1,
                    ']' | '}' => flow = flow.saturating_sub(1),
                    _ => {}
                },
            }
            previous = c;
        }
        let depth = flow + indents.len().saturating_sub(1) + dashes;
        if depth > limit {
            return Some((index + 1, depth));
        }
    }
    None
}

fn deserialize(format: Format, text: &str) -> Result<RawDeployment, Located> {
    match format {
        Format::Json => {
            let json_error = |e: &serde_json::Error, path: String| {
                let syntax = e.is_syntax() || e.is_eof();
                let line = Some(e.line()).filter(|l| *l > 0);
                let message = with_path(&path, &strip_location(&e.to_string()));
                (line, problem(format, syntax, message))
            };
            let mut de = serde_json::Deserializer::from_str(text);
            let raw = serde_path_to_error::deserialize(&mut de)
                .map_err(|e| json_error(e.inner(), e.path().to_string()))?;
            de.end().map_err(|e| json_error(&e, String::new()))?;
            Ok(raw)
        }
        Format::Toml => {
            let de = toml::Deserializer::parse(text).map_err(|e| {
                let line = e.span().map(|s| line_of(text, s.start));
                (line, problem(format, true, e.message().trim().to_owned()))
            })?;
            serde_path_to_error::deserialize(de).map_err(|e| {
                let line = e.inner().span().map(|s| line_of(text, s.start));
                let message = with_path(&e.path().to_string(), e.inner().message().trim());
                (line, problem(format, false, message))
            })
        }
        Format::Yaml => serde_norway::from_str(text).map_err(|e| {
            let line = e.location().map(|l| l.line());
            let message = strip_location(&e.to_string());
            // serde_norway already prefixes schema errors with the key path.
            let syntax = !(message.contains("unknown field")
                || message.contains("invalid type")
                || message.contains("invalid value")
                || message.contains("unknown variant")
                || message.contains("missing field"));
            (line, problem(format, syntax, message))
        }),
    }
}

fn problem(format: Format, syntax: bool, message: String) -> Problem {
    if syntax {
        Problem::Syntax { format, message }
    } else {
        Problem::Schema { message }
    }
}

fn with_path(path: &str, message: &str) -> String {
    if path.is_empty() || path == "." {
        message.to_owned()
    } else {
        format!("`{path}`: {message}")
    }
}

/// `message` without a trailing ` at line N column M` (the line is reported separately).
fn strip_location(message: &str) -> String {
    if let Some(at) = message.rfind(" at line ") {
        let tail = &message[at + " at line ".len()..];
        let mut words = tail.split(' ');
        let is_location = matches!(
            (words.next(), words.next(), words.next(), words.next()),
            (Some(l), Some("column"), Some(c), None)
                if l.chars().all(|ch| ch.is_ascii_digit())
                    && c.chars().all(|ch| ch.is_ascii_digit())
        );
        if is_location {
            return message[..at].to_owned();
        }
    }
    message.to_owned()
}

/// 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// Best-effort line of the first occurrence of `needle` (for errors found after parsing, where
/// the parser no longer knows positions); `None` when it is not found verbatim, e.g. escaped.
fn find_line(text: &str, needle: &str) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    text.find(needle).map(|at| line_of(text, at))
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 200
        && id
            .chars()
            .all(|c| c.is_alphanumeric() || "-_.:@/".contains(c))
}

fn validate(
    raw: RawDeployment,
    path: &Path,
    text: &str,
    providers: &[String],
) -> Result<Parsed, Located> {
    let id = raw.id.unwrap_or_else(|| default_id(path));
    if !valid_id(&id) {
        return Err((find_line(text, &id), Problem::BadId(id)));
    }
    let provider = raw.provider.ok_or((None, Problem::Missing("provider")))?;
    if provider.is_empty() {
        return Err((
            find_line(text, "provider"),
            Problem::Empty { key: "provider" },
        ));
    }
    let model = raw.model.ok_or((None, Problem::Missing("model")))?;
    if model.is_empty() {
        return Err((find_line(text, "model"), Problem::Empty { key: "model" }));
    }
    if !providers.contains(&provider) {
        return Err((
            find_line(text, &provider),
            Problem::UnknownProvider {
                requested: provider,
                configured: providers.to_vec(),
            },
        ));
    }
    let raw_messages = raw.messages.ok_or((None, Problem::Missing("messages")))?;
    if raw_messages.is_empty() {
        return Err((
            find_line(text, "messages"),
            Problem::Empty { key: "messages" },
        ));
    }
    let mut messages = Vec::with_capacity(raw_messages.len());
    for (index, message) in raw_messages.into_iter().enumerate() {
        let compiled = DeploymentMessage::new(message.role, message.content.clone());
        match compiled {
            Ok(m) => messages.push(m),
            Err(error) => {
                let at = match error {
                    TemplateError::Unclosed(at) | TemplateError::Empty(at) => at,
                    TemplateError::Missing(_) | TemplateError::TooLarge { .. } => 0,
                };
                let snippet: String = message
                    .content
                    .get(at..)
                    .unwrap_or("")
                    .chars()
                    .take(24)
                    .collect();
                let snippet = snippet.lines().next().unwrap_or("");
                return Err((find_line(text, snippet), Problem::Template { index, error }));
            }
        }
    }
    let model_params = raw.model_params.map(|p| ModelParams {
        temp: p.temp,
        top_p: p.top_p,
        frequency_penalty: p.frequency_penalty,
        presence_penalty: p.presence_penalty,
        max_length: p.max_length,
        response_format: p.response_format,
        safe_prompt: p.safe_prompt,
    });
    Ok(Parsed {
        content: DeploymentContent {
            name: raw
                .name
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| id.clone()),
            id,
            provider,
            model,
            model_params: model_params.unwrap_or_default(),
            messages,
            functions: raw.functions.unwrap_or_default(),
            function_call: raw.function_call,
        },
        version: raw.version,
    })
}

#[cfg(test)]
mod tests;
