//! One small function per route: translate HTTP to an engine call and back.

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde::Serialize;

use super::body::{self, ResponseBody};
use super::State;
use crate::api::project::DeployedPromptRequest;
use crate::api::project::ProjectRequest;
use crate::api::{decode_json, ApiError, CompletionRequest};
use crate::cache::CacheKey;
use crate::deployments::TemplateError;

/// `GET /health`.
pub fn health(state: &State) -> Response<ResponseBody> {
    #[derive(Serialize)]
    struct Health {
        status: &'static str,
        version: &'static str,
        uptime_seconds: u64,
    }
    body::json(
        StatusCode::OK,
        &Health {
            status: "ok",
            version: env!("CARGO_PKG_VERSION"),
            uptime_seconds: state.started.elapsed().as_secs(),
        },
    )
}

/// `POST /completion` (or, with the deprecated `stream: true`, the stream answer).
pub async fn completion(
    req: Request<Incoming>,
    state: &State,
) -> Result<Response<ResponseBody>, ApiError> {
    let bytes = body::read_limited(req, state.config.load().max_body).await?;
    let request: CompletionRequest = decode_json(&bytes)?;
    if request.stream == Some(true) {
        let stream = state.engine.stream(request).await?;
        return Ok(body::event_stream(stream));
    }
    let answer = state.engine.complete(request).await?;
    let mut response = body::json(StatusCode::OK, &answer.response);
    body::cache_headers(&mut response, answer.cache, answer.key.as_ref());
    Ok(response)
}

/// `POST /completion/stream`.
pub async fn completion_stream(
    req: Request<Incoming>,
    state: &State,
) -> Result<Response<ResponseBody>, ApiError> {
    let bytes = body::read_limited(req, state.config.load().max_body).await?;
    let request: CompletionRequest = decode_json(&bytes)?;
    let stream = state.engine.stream(request).await?;
    Ok(body::event_stream(stream))
}

/// `POST /project`: create-or-get by name.
pub async fn project(
    req: Request<Incoming>,
    state: &State,
) -> Result<Response<ResponseBody>, ApiError> {
    let bytes = body::read_limited(req, state.config.load().max_body).await?;
    let request: ProjectRequest = decode_json(&bytes)?;
    if request.name.trim().is_empty() {
        return Err(ApiError::InvalidRequest {
            field: "name",
            message: "project name must not be empty".into(),
        });
    }
    let project = state
        .engine
        .projects()
        .get_or_create(&request.name)
        .map_err(|e| ApiError::Internal(format!("cannot save the project list: {e}")))?;
    Ok(body::json(StatusCode::OK, &project))
}

/// `POST /deployed-prompt`: a deployment's templates, rendered with `llm_inputs` when given.
pub async fn deployed_prompt(
    req: Request<Incoming>,
    state: &State,
) -> Result<Response<ResponseBody>, ApiError> {
    let bytes = body::read_limited(req, state.config.load().max_body).await?;
    let request: DeployedPromptRequest = decode_json(&bytes)?;
    let deployment = state.engine.deployment(&request.deployment_id).await?;
    let response = deployment
        .prompt_response(request.llm_inputs.as_ref())
        .map_err(|e| match e {
            TemplateError::Missing(names) => ApiError::MissingInput(names),
            other => ApiError::Internal(other.to_string()),
        })?;
    Ok(body::json(StatusCode::OK, &response))
}

/// `GET /deployments`: every deployment with its version, source, status and last error.
pub fn deployments(state: &State) -> Response<ResponseBody> {
    body::json(StatusCode::OK, &state.engine.deployments().status())
}

/// `GET /cache/stats`.
pub fn cache_stats(state: &State) -> Response<ResponseBody> {
    body::json(StatusCode::OK, &state.engine.cache().stats())
}

#[derive(Serialize)]
struct Deleted {
    deleted: u64,
}

/// `DELETE /cache`: drop every entry.
pub async fn cache_purge(state: &State) -> Result<Response<ResponseBody>, ApiError> {
    let engine = std::sync::Arc::clone(&state.engine);
    let deleted = tokio::task::spawn_blocking(move || engine.cache().purge())
        .await
        .map_err(|e| ApiError::Internal(format!("cache purge failed: {e}")))?;
    Ok(body::json(StatusCode::OK, &Deleted { deleted }))
}

/// `DELETE /cache/{key}`: drop one entry (its key as sent in `x-promptd-cache-key`).
pub fn cache_delete(state: &State, hex: &str) -> Result<Response<ResponseBody>, ApiError> {
    let key = CacheKey::from_hex(hex).ok_or_else(|| ApiError::InvalidRequest {
        field: "key",
        message: format!("`{hex}` is not a cache key (64 hex digits, as in x-promptd-cache-key)"),
    })?;
    if state.engine.cache().remove(&key) {
        Ok(body::json(StatusCode::OK, &Deleted { deleted: 1 }))
    } else {
        Err(ApiError::NotFound {
            method: "DELETE".into(),
            path: format!("/cache/{hex} (no such entry)"),
        })
    }
}

/// `GET /metrics`: Prometheus (OpenMetrics) text.
pub fn metrics(state: &State) -> Response<ResponseBody> {
    body::text(
        StatusCode::OK,
        "application/openmetrics-text; version=1.0.0; charset=utf-8",
        state.metrics.encode(),
    )
}

/// `GET /status`: what the daemon is and does, for `promptd status`.
pub fn status(state: &State) -> Response<ResponseBody> {
    #[derive(Serialize)]
    struct Provider<'a> {
        name: &'a str,
        kind: &'static str,
        base_url: &'a str,
        api_key: &'a str,
    }
    #[derive(Serialize)]
    struct Status<'a> {
        version: &'static str,
        pid: u32,
        started_at: &'a str,
        uptime_seconds: u64,
        listeners: &'a str,
        state_dir: String,
        prompts_dir: String,
        requests: u64,
        providers: Vec<Provider<'a>>,
        cache: crate::cache::CacheStats,
        deployments: crate::deployments::DeploymentCounts,
    }
    let config = state.config.load();
    body::json(
        StatusCode::OK,
        &Status {
            version: env!("CARGO_PKG_VERSION"),
            pid: std::process::id(),
            started_at: &state.started_at,
            uptime_seconds: state.started.elapsed().as_secs(),
            listeners: &state.listeners,
            state_dir: config.state_dir.display().to_string(),
            prompts_dir: config.prompts_dir.display().to_string(),
            requests: state.requests.load(std::sync::atomic::Ordering::Relaxed),
            providers: config
                .providers
                .iter()
                .map(|(name, p)| Provider {
                    name,
                    kind: p.kind.as_str(),
                    base_url: &p.base_url,
                    api_key: &p.api_key_source,
                })
                .collect(),
            cache: state.engine.cache().stats(),
            deployments: state.engine.deployments().status().counts(),
        },
    )
}
