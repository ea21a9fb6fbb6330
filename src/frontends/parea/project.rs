//! `POST /project` (create-or-get a project by name; the SDK calls it at start-up) and
//! `POST /deployed-prompt` bodies.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct ProjectRequest {
    pub name: String,
}

/// What `POST /project` answers: the project as the store holds it.
pub use crate::projects::ProjectResponse;

/// `POST /deployed-prompt` body.
#[derive(Debug, Clone, Deserialize)]
pub struct DeployedPromptRequest {
    pub deployment_id: String,
    #[serde(default, alias = "inputs")]
    pub llm_inputs: Option<serde_json::Map<String, serde_json::Value>>,
}
