//! One deployed prompt, ready to serve: provider, model, params, precompiled message templates,
//! functions, a version and where it came from.
//!
//! A [`Deployment`] is immutable once built; the registry swaps whole `Arc<Deployment>`s. Its
//! [`ContentHash`] is a stable blake3 hash over a version tag and the canonical JSON of every
//! field that changes what is sent upstream (not `version`, not `source`): it drives the
//! automatic version counter, so it must never change between releases for the same content.

use std::fmt;
use std::path::PathBuf;
use std::time::SystemTime;

use serde::Serialize;
use serde_json::{Map, Value};

use super::template::{Template, TemplateError};
use crate::call::{FunctionCallSpec, LlmConfiguration, Message, ModelParams, Role};

/// Prefix of every hashed content; bump it only together with a store format change.
const HASH_TAG: &[u8] = b"promptd-deployment-content-v1\0";

/// One message of a deployment: its role, the template as written, and the compiled template.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentMessage {
    pub role: Role,
    /// The content as written in the file (or sent by upstream), `{{placeholders}}` and all.
    pub raw: String,
    pub template: Template,
}

impl DeploymentMessage {
    /// Compile `raw` into a message.
    pub fn new(role: Role, raw: String) -> Result<Self, TemplateError> {
        let template = Template::compile(&raw)?;
        Ok(DeploymentMessage {
            role,
            raw,
            template,
        })
    }
}

/// Where a deployment was loaded from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A file in the prompts directory.
    File(PathBuf),
    /// `POST {base_url}/deployed-prompt` of the upstream Parea API, fetched at `fetched_at`.
    Upstream {
        base_url: String,
        fetched_at: SystemTime,
    },
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::File(path) => write!(f, "{}", path.display()),
            Source::Upstream { base_url, .. } => write!(f, "upstream {base_url}"),
        }
    }
}

/// blake3 hash of a deployment's content (see the module header).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContentHash(pub [u8; 32]);

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentHash({self})")
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in &self.0[..8] {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

/// A deployed prompt: its content (fields read through `Deref`), with the version, source and
/// hash the registry gave it.
#[derive(Debug, Clone, PartialEq)]
pub struct Deployment {
    pub content: DeploymentContent,
    pub version: u64,
    pub source: Source,
    pub content_hash: ContentHash,
}

impl std::ops::Deref for Deployment {
    type Target = DeploymentContent;

    fn deref(&self) -> &DeploymentContent {
        &self.content
    }
}

/// Everything a deployment is made of except its version, source and hash: what a loader
/// produces before the registry assigns a version.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentContent {
    pub id: String,
    pub name: String,
    pub provider: String,
    pub model: String,
    pub model_params: ModelParams,
    pub messages: Vec<DeploymentMessage>,
    /// JSON-schema function definitions offered to the model; empty when none.
    pub functions: Vec<Value>,
    pub function_call: Option<FunctionCallSpec>,
}

impl DeploymentContent {
    /// The stable content hash (see the module header).
    pub fn content_hash(&self) -> ContentHash {
        #[derive(Serialize)]
        struct Hashed<'a> {
            id: &'a str,
            name: &'a str,
            provider: &'a str,
            model: &'a str,
            model_params: &'a ModelParams,
            messages: Vec<(Role, &'a str)>,
            functions: &'a [Value],
            function_call: &'a Option<FunctionCallSpec>,
        }
        let hashed = Hashed {
            id: &self.id,
            name: &self.name,
            provider: &self.provider,
            model: &self.model,
            model_params: &self.model_params,
            messages: self
                .messages
                .iter()
                .map(|m| (m.role, m.raw.as_str()))
                .collect(),
            functions: &self.functions,
            function_call: &self.function_call,
        };
        let mut hasher = blake3::Hasher::new();
        hasher.update(HASH_TAG);
        // Serializing plain data to a Value cannot fail; a failure would only weaken the hash
        // to the other fields, never panic.
        let value = serde_json::to_value(&hashed).unwrap_or(Value::Null);
        hasher.update(canonical_json(&value).as_bytes());
        ContentHash(*hasher.finalize().as_bytes())
    }

    /// This content as a deployment with `version` from `source`.
    pub fn into_deployment(self, version: u64, source: Source) -> Deployment {
        let content_hash = self.content_hash();
        Deployment {
            content: self,
            version,
            source,
            content_hash,
        }
    }
}

/// JSON text with object keys sorted at every depth, so the hash does not depend on the order
/// keys were written in (or on serde_json's `preserve_order` feature).
fn canonical_json(value: &Value) -> String {
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                let mut out = Map::new();
                for (k, v) in entries {
                    out.insert(k.clone(), sorted(v));
                }
                Value::Object(out)
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    // With `preserve_order` a Map keeps insertion order, which `sorted` made canonical; without
    // it a Map is a BTreeMap and sorted anyway.
    sorted(value).to_string()
}

impl Deployment {
    /// The bytes of the messages with `inputs` filled in, counted without building them.
    pub fn rendered_len(&self, inputs: &Map<String, Value>) -> u64 {
        self.messages.iter().fold(0u64, |n, m| {
            n.saturating_add(m.template.rendered_len(inputs))
        })
    }

    /// The messages with `inputs` filled in. Every missing input of every message is reported
    /// at once (`TemplateError::Missing`, each name once, in order of appearance); extra inputs
    /// are ignored.
    /// A rendering over `limit` bytes (all messages together) is refused before it is built.
    pub fn render(
        &self,
        inputs: &Map<String, Value>,
        limit: u64,
    ) -> Result<Vec<Message>, TemplateError> {
        let size = self.rendered_len(inputs);
        if size > limit {
            return Err(TemplateError::TooLarge { size, limit });
        }
        let mut missing: Vec<String> = Vec::new();
        let mut out = Vec::with_capacity(self.messages.len());
        for message in &self.messages {
            match message.template.render(inputs) {
                Ok(content) => out.push(Message {
                    role: message.role,
                    content: Some(content),
                }),
                Err(TemplateError::Missing(names)) => {
                    for name in names {
                        if !missing.contains(&name) {
                            missing.push(name);
                        }
                    }
                }
                Err(other) => return Err(other),
            }
        }
        if missing.is_empty() {
            Ok(out)
        } else {
            Err(TemplateError::Missing(missing))
        }
    }

    /// The templates as written.
    pub fn raw_messages(&self) -> Vec<Message> {
        self.messages
            .iter()
            .map(|m| Message {
                role: m.role,
                content: Some(m.raw.clone()),
            })
            .collect()
    }

    /// The deployment as an `llm_configuration` with `inputs` rendered into its messages, for
    /// the engine to merge a request's overrides into, field by field.
    pub fn llm_configuration(
        &self,
        inputs: &Map<String, Value>,
        limit: u64,
    ) -> Result<LlmConfiguration, TemplateError> {
        Ok(LlmConfiguration {
            model: Some(self.model.clone()),
            provider: Some(self.provider.clone()),
            model_params: Some(self.model_params.clone()),
            messages: Some(self.render(inputs, limit)?),
            history: None,
            functions: (!self.functions.is_empty()).then(|| self.functions.clone()),
            function_call: self.function_call.clone(),
        })
    }

    /// The body of `POST /deployed-prompt`. With `inputs`, `prompt.messages` are rendered (a
    /// missing input is an error listing every missing name); without, they equal the raw
    /// templates.
    pub fn prompt_response(
        &self,
        inputs: Option<&Map<String, Value>>,
        limit: u64,
    ) -> Result<UseDeployedPromptResponse, TemplateError> {
        let messages = match inputs {
            Some(inputs) => self.render(inputs, limit)?,
            None => self.raw_messages(),
        };
        Ok(UseDeployedPromptResponse {
            deployment_id: self.id.clone(),
            version_number: self.version,
            name: self.name.clone(),
            functions: self.functions.clone(),
            function_call: self.function_call.clone(),
            prompt: DeployedPrompt {
                raw_messages: self.raw_messages(),
                messages,
                inputs: inputs.cloned(),
            },
            model: self.model.clone(),
            provider: self.provider.clone(),
            model_params: self.model_params.clone(),
        })
    }
}

/// `POST /api/parea/v1/deployed-prompt` answer (Parea's UseDeployedPromptResponse).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct UseDeployedPromptResponse {
    pub deployment_id: String,
    pub version_number: u64,
    pub name: String,
    pub functions: Vec<Value>,
    pub function_call: Option<FunctionCallSpec>,
    pub prompt: DeployedPrompt,
    pub model: String,
    pub provider: String,
    pub model_params: ModelParams,
}

/// The `prompt` part of [`UseDeployedPromptResponse`].
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct DeployedPrompt {
    /// The templates, `{{placeholders}}` unfilled.
    pub raw_messages: Vec<Message>,
    /// The same messages with the inputs filled in.
    pub messages: Vec<Message>,
    pub inputs: Option<Map<String, Value>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn content() -> DeploymentContent {
        DeploymentContent {
            id: "greet".into(),
            name: "Greeting".into(),
            provider: "openai".into(),
            model: "gpt-4o-mini".into(),
            model_params: ModelParams::default(),
            messages: vec![
                DeploymentMessage::new(Role::System, "You help {{who}}.".into()).expect("compiles"),
                DeploymentMessage::new(Role::User, "{{q}} ({{who}}, {{n}})".into())
                    .expect("compiles"),
            ],
            functions: vec![json!({"name": "f", "parameters": {"b": 1, "a": 2}})],
            function_call: None,
        }
    }

    fn inputs(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn renders_all_messages_and_lists_every_missing_input() {
        let d = content().into_deployment(1, Source::File("/p/greet.yaml".into()));
        let out = d
            .render(
                &inputs(json!({"who": "Ada", "q": "Hi", "n": 2, "extra": 1})),
                u64::MAX,
            )
            .expect("renders");
        assert_eq!(out[0].content.as_deref(), Some("You help Ada."));
        assert_eq!(out[1].content.as_deref(), Some("Hi (Ada, 2)"));
        let err = d.render(&inputs(json!({"q": "x"})), u64::MAX).unwrap_err();
        assert_eq!(err, TemplateError::Missing(vec!["who".into(), "n".into()]));
        // "You help Ada." + "Hi (Ada, 2)": 24 bytes.
        let given = inputs(json!({"who": "Ada", "q": "Hi", "n": 2}));
        assert!(d.render(&given, 24).is_ok());
        assert_eq!(
            d.render(&given, 23).unwrap_err(),
            TemplateError::TooLarge {
                size: 24,
                limit: 23
            }
        );
    }

    #[test]
    fn prompt_response_has_raw_and_rendered_messages() {
        let d = content().into_deployment(3, Source::File("/p/greet.yaml".into()));
        let given = inputs(json!({"who": "Ada", "q": "Hi", "n": 2}));
        let resp = d.prompt_response(Some(&given), u64::MAX).expect("renders");
        assert_eq!(resp.version_number, 3);
        assert_eq!(
            resp.prompt.raw_messages[0].content.as_deref(),
            Some("You help {{who}}.")
        );
        assert_eq!(
            resp.prompt.messages[0].content.as_deref(),
            Some("You help Ada.")
        );
        let body = serde_json::to_value(&resp).expect("serializes");
        assert_eq!(body["deployment_id"], "greet");
        assert_eq!(body["prompt"]["inputs"]["who"], "Ada");
        let unrendered = d.prompt_response(None, u64::MAX).expect("raw");
        assert_eq!(unrendered.prompt.messages, unrendered.prompt.raw_messages);
    }

    #[test]
    fn content_hash_ignores_key_order_but_not_content() {
        let a = content();
        let mut b = content();
        b.functions = vec![json!({"parameters": {"a": 2, "b": 1}, "name": "f"})];
        assert_eq!(a.content_hash(), b.content_hash());
        let mut c = content();
        c.model = "gpt-4o".into();
        assert_ne!(a.content_hash(), c.content_hash());
        let mut d = content();
        d.messages[0] =
            DeploymentMessage::new(Role::System, "You help {{ who }}.".into()).expect("compiles");
        assert_ne!(a.content_hash(), d.content_hash());
    }
}
