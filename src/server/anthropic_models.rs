//! `GET /v1/models` and `/v1/models/{id}` for Anthropic clients: a request carrying
//! `anthropic-version` (every Anthropic SDK sends it) gets Anthropic's list shape
//! ([`models`]) and Anthropic's error body, over the same models the OpenAI shape lists.

use hyper::StatusCode;

use super::body::{self, ResponseBody};
use super::openai::model_list;
use super::state::State;
use crate::frontends::anthropic::models;
use crate::model::{Error, ErrorKind};
use crate::wire::anthropic;

/// The header that tells an Anthropic client.
pub const VERSION_HEADER: &str = "anthropic-version";

/// `GET /v1/models` in Anthropic's shape (one page: promptd's list is short).
pub async fn list_models(state: &State) -> hyper::Response<ResponseBody> {
    body::json(StatusCode::OK, &models::page(model_list(state).await))
}

/// `GET /v1/models/{id}` in Anthropic's shape; an unknown id is Anthropic's `not_found_error`.
pub async fn get_model(state: &State, raw_id: &str) -> hyper::Response<ResponseBody> {
    let id = percent_encoding::percent_decode_str(raw_id).decode_utf8_lossy();
    let found = model_list(state)
        .await
        .data
        .into_iter()
        .find(|m| m.id == id);
    match found {
        Some(m) => body::json(StatusCode::OK, &models::info(m.id, m.created)),
        None => {
            let error = Error::new(
                ErrorKind::NotFound,
                format!("model: {id} (not in promptd's model list: GET /v1/models)"),
            );
            let (_, status) = anthropic::error_type(error.kind);
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::NOT_FOUND);
            body::raw_json(status, anthropic::render_error(&error))
        }
    }
}
