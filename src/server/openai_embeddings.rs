//! `POST /v1/embeddings`: the body decoded ([`crate::frontends::openai::embeddings`]), the model
//! routed as chat's is, the items embedded through the engine's per-item cache, the answer in
//! OpenAI's shape with `x-promptd-cache: hit|miss|partial|bypass`.

use std::time::Instant;

use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};

use super::body::{self, ResponseBody};
use super::openai::error;
use super::State;
use crate::call::ApiError;
use crate::engine::EmbedCacheMode;
use crate::frontends::openai::embeddings::{decode_embeddings, embeddings_body};
use crate::frontends::openai::{resolve_model, Target};

const CACHE_HEADER: HeaderName = HeaderName::from_static("x-promptd-cache");
const OVERHEAD_HEADER: HeaderName = HeaderName::from_static("x-promptd-overhead-ms");

/// `POST /v1/embeddings`.
pub async fn embeddings(req: Request<Incoming>, state: &State) -> Response<ResponseBody> {
    let started = Instant::now();
    match Box::pin(embed(req, state, started)).await {
        Ok(response) => response,
        Err(e) => error(&e),
    }
}

async fn embed(
    req: Request<Incoming>,
    state: &State,
    started: Instant,
) -> Result<Response<ResponseBody>, ApiError> {
    let mode = match req
        .headers()
        .get("x-promptd-cache")
        .map(|v| v.to_str().unwrap_or("(not text)"))
    {
        None => EmbedCacheMode::Normal,
        Some("bypass") => EmbedCacheMode::Bypass,
        Some("refresh") => EmbedCacheMode::Refresh,
        Some(other) => {
            return Err(ApiError::invalid(
                "x-promptd-cache",
                format!("x-promptd-cache is `bypass` or `refresh`, not `{other}`"),
            ))
        }
    };
    let config = state.config.load_full();
    let bytes = body::read_limited(req, config.max_body, state.engine.memory()).await?;
    let call = decode_embeddings(&bytes, config.max_embedding_inputs)?;
    let (provider, model) = match resolve_model(&call.model, &config)? {
        Target::Provider { provider, model } => (provider, model),
        Target::Deployment(id) => {
            return Err(ApiError::invalid(
                "model",
                format!(
                    "deployment/{id} is a deployed prompt: embeddings need a provider's model \
                     (PROVIDER/MODEL)"
                ),
            ))
        }
    };
    let embedded = Box::pin(state.engine.embed(&call, &provider, &model, mode)).await?;
    let answer = embeddings_body(embedded.embeddings, &embedded.model, embedded.prompt_tokens);
    let mut response = body::json(StatusCode::OK, &answer);
    let h = response.headers_mut();
    h.insert(
        CACHE_HEADER,
        HeaderValue::from_static(embedded.cache.as_str()),
    );
    let overhead = started.elapsed().saturating_sub(embedded.provider_wait);
    h.insert(OVERHEAD_HEADER, super::openai::millis_header(overhead));
    Ok(response)
}
