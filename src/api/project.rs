//! `POST /project` (create-or-get a project by name; the SDK calls it at start-up) and
//! `POST /deployed-prompt` bodies.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize)]
pub struct ProjectRequest {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectResponse {
    pub name: String,
    pub uuid: String,
    pub created_at: String,
    pub was_created: bool,
}

/// `POST /deployed-prompt` body.
#[derive(Debug, Clone, Deserialize)]
pub struct DeployedPromptRequest {
    pub deployment_id: String,
    #[serde(default, alias = "inputs")]
    pub llm_inputs: Option<serde_json::Map<String, serde_json::Value>>,
}
