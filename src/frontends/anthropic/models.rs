//! The model list in Anthropic's shape: `{"data": [{"type": "model", "id", "display_name",
//! "created_at"}], "has_more", "first_id", "last_id"}`, one page (promptd's list is short).

use serde::Serialize;

use crate::frontends::openai::models::ModelList;

/// One model of the list.
#[derive(Debug, Serialize)]
pub struct ModelInfo {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: String,
    pub display_name: String,
    pub created_at: String,
}

/// The list: one page.
#[derive(Debug, Serialize)]
pub struct ModelPage {
    pub data: Vec<ModelInfo>,
    pub has_more: bool,
    pub first_id: Option<String>,
    pub last_id: Option<String>,
}

/// A model as Anthropic lists it.
pub fn info(id: String, created: i64) -> ModelInfo {
    let created_at = chrono::DateTime::from_timestamp(created, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    ModelInfo {
        kind: "model",
        display_name: id.clone(),
        id,
        created_at,
    }
}

/// Promptd's model list as one page of Anthropic's.
pub fn page(list: ModelList) -> ModelPage {
    let data: Vec<ModelInfo> = list
        .data
        .into_iter()
        .map(|m| info(m.id, m.created))
        .collect();
    ModelPage {
        first_id: data.first().map(|m| m.id.clone()),
        last_id: data.last().map(|m| m.id.clone()),
        has_more: false,
        data,
    }
}
