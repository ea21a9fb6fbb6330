//! One small function per route: translate HTTP to a call of the engine (completions) or of
//! the part an admin route reads (cache, spool, deployments, projects), and back.

use std::borrow::Cow;

use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use serde::Serialize;

use super::body::{self, ResponseBody};
use super::State;
use crate::cache::CacheKey;
use crate::call::ApiError;
use crate::deployments::TemplateError;
use crate::engine::RequestCtx;
use crate::frontends::decode_json;
use crate::frontends::parea::project::DeployedPromptRequest;
use crate::frontends::parea::project::ProjectRequest;
use crate::frontends::parea::CompletionRequest;
use crate::logs::intake::{self, Accepted, ClientRecord, IntakeError};
use crate::logs::{
    Feedback, FlusherState, LangchainRun, LogRecord, TraceIntegration, TraceLogUpdate,
};

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
    ctx: RequestCtx,
    state: &State,
) -> Result<Response<ResponseBody>, ApiError> {
    let bytes =
        body::read_limited(req, state.config.load().max_body, state.engine.memory()).await?;
    let request: CompletionRequest = decode_json(&bytes)?;
    let stream = request.stream == Some(true);
    let request = request.into_call()?;
    if stream {
        // Both engine futures are boxed: they hold the request and what is made of it at each
        // level (kilobytes), and inline they would be copied with every move of the
        // connection's request future.
        let stream = Box::pin(state.engine.stream(request, ctx)).await?;
        return Ok(body::event_stream(stream));
    }
    let answer = Box::pin(state.engine.complete(request, ctx)).await?;
    let mut response = body::json(StatusCode::OK, &answer.response);
    body::completion_headers(
        &mut response,
        answer.cache,
        answer.key.as_ref(),
        answer.provider_wait,
        &answer.dropped,
    );
    Ok(response)
}

/// `POST /completion/stream`.
pub async fn completion_stream(
    req: Request<Incoming>,
    ctx: RequestCtx,
    state: &State,
) -> Result<Response<ResponseBody>, ApiError> {
    let bytes =
        body::read_limited(req, state.config.load().max_body, state.engine.memory()).await?;
    let request = decode_json::<CompletionRequest>(&bytes)?.into_call()?;
    let stream = Box::pin(state.engine.stream(request, ctx)).await?;
    Ok(body::event_stream(stream))
}

/// `POST /project`: create-or-get by name.
pub async fn project(
    req: Request<Incoming>,
    state: &State,
) -> Result<Response<ResponseBody>, ApiError> {
    let bytes =
        body::read_limited(req, state.config.load().max_body, state.engine.memory()).await?;
    let request: ProjectRequest = decode_json(&bytes)?;
    if request.name.trim().is_empty() {
        return Err(ApiError::invalid("name", "project name must not be empty"));
    }
    let project = state
        .projects
        .get_or_create(&request.name)
        .map_err(|e| ApiError::Internal(format!("cannot save the project list: {e}")))?;
    Ok(body::json(StatusCode::OK, &project))
}

/// `POST /deployed-prompt`: a deployment's templates, rendered with `llm_inputs` when given.
pub async fn deployed_prompt(
    req: Request<Incoming>,
    state: &State,
) -> Result<Response<ResponseBody>, ApiError> {
    let bytes =
        body::read_limited(req, state.config.load().max_body, state.engine.memory()).await?;
    let request: DeployedPromptRequest = decode_json(&bytes)?;
    let deployment = state.engine.deployment(&request.deployment_id).await?;
    let response = deployment
        .prompt_response(
            request.llm_inputs.as_ref(),
            state.config.load().max_rendered,
        )
        .map_err(|e| match e {
            TemplateError::Missing(names) => ApiError::MissingInput(names),
            TemplateError::TooLarge { size, limit } => ApiError::RenderedTooLarge { size, limit },
            other => ApiError::Internal(other.to_string()),
        })?;
    Ok(body::json(StatusCode::OK, &response))
}

/// `GET /deployments`: every deployment with its version, source, status and last error.
pub fn deployments(state: &State) -> Response<ResponseBody> {
    body::json(StatusCode::OK, &state.deployments.status())
}

/// `GET /cache/stats`.
pub fn cache_stats(state: &State) -> Response<ResponseBody> {
    body::json(StatusCode::OK, &state.cache.stats())
}

#[derive(Serialize)]
struct Deleted {
    deleted: u64,
}

/// `DELETE /cache`: drop every entry.
pub async fn cache_purge(state: &State) -> Result<Response<ResponseBody>, ApiError> {
    let cache = std::sync::Arc::clone(&state.cache);
    let deleted = tokio::task::spawn_blocking(move || cache.purge())
        .await
        .map_err(|e| ApiError::Internal(format!("cache purge failed: {e}")))?;
    Ok(body::json(StatusCode::OK, &Deleted { deleted }))
}

/// `DELETE /cache/{key}`: drop one entry (its key as sent in `x-promptd-cache-key`).
pub fn cache_delete(state: &State, hex: &str) -> Result<Response<ResponseBody>, ApiError> {
    let key = CacheKey::from_hex(hex).ok_or_else(|| {
        ApiError::invalid(
            "key",
            format!("`{hex}` is not a cache key (64 hex digits, as in x-promptd-cache-key)"),
        )
    })?;
    if state.cache.remove(&key) {
        Ok(body::json(StatusCode::OK, &Deleted { deleted: 1 }))
    } else {
        Err(ApiError::NoCacheEntry(hex.to_owned()))
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
        base_url: std::borrow::Cow<'a, str>,
        api_key: String,
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
        logs: serde_json::Value,
        /// What the Responses door keeps for `previous_response_id`.
        responses: crate::response_store::Totals,
        /// `max_request_memory` and what requests hold of it now.
        request_memory: RequestMemory,
    }
    #[derive(Serialize)]
    struct RequestMemory {
        limit_bytes: u64,
        held_bytes: u64,
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
                    base_url: crate::redact::urls(&p.base_url),
                    api_key: p.key_status(),
                })
                .collect(),
            cache: state.cache.stats(),
            deployments: state.deployments.counts(),
            logs: logs_status_json(state),
            responses: state.responses.totals(),
            request_memory: RequestMemory {
                limit_bytes: state.engine.memory().limit(),
                held_bytes: state.engine.memory().held(),
            },
        },
    )
}

/// A client record through the log intake ([`crate::logs::intake`]): 200 once durable (with
/// its spool id) or sampled out.
async fn accept_record(
    state: &State,
    record: ClientRecord<'_>,
    bytes: &[u8],
) -> Result<Response<ResponseBody>, ApiError> {
    let max_record =
        usize::try_from(state.config.load().spool.max_record_bytes).unwrap_or(usize::MAX);
    let accepted = intake::accept(&state.spool, record, bytes, max_record)
        .await
        .map_err(|e| match e {
            IntakeError::Invalid { field, message } => ApiError::invalid(field, message),
            IntakeError::NotAccepted(message) => ApiError::LogNotAccepted(message),
            IntakeError::Internal(message) => ApiError::Internal(message),
        })?;
    let answer = match accepted {
        Accepted::Durable { trace_id, spool_id } => Spooled {
            status: "ok",
            trace_id,
            spool_id: Some(spool_id),
        },
        Accepted::SampledOut { trace_id } => Spooled {
            status: "sampled_out",
            trace_id,
            spool_id: None,
        },
    };
    Ok(body::json(StatusCode::OK, &answer))
}

#[derive(Serialize)]
struct Spooled<'a> {
    status: &'static str,
    trace_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    spool_id: Option<u64>,
}

/// `POST /trace_log`: a client's record; 2xx once it is durable (or sampled out).
pub async fn trace_log(
    req: Request<Incoming>,
    state: &State,
) -> Result<Response<ResponseBody>, ApiError> {
    let bytes =
        body::read_limited(req, state.config.load().max_body, state.engine.memory()).await?;
    let record: LogRecord = decode_json(&bytes)?;
    accept_record(state, ClientRecord::TraceLog(&record), &bytes).await
}

/// `POST /trace_log/{vendor}`: a tracing integration's record (a LangChain run, not a
/// TraceLog), checked to be a JSON object, sampled like a trace log by the tracer's
/// `_log_sample_rate`, spooled as sent and shipped to the same path upstream; 2xx once it is
/// durable (or sampled out).
pub async fn integration_log(
    req: Request<Incoming>,
    state: &State,
    integration: TraceIntegration,
) -> Result<Response<ResponseBody>, ApiError> {
    let bytes =
        body::read_limited(req, state.config.load().max_body, state.engine.memory()).await?;
    require_json_object(&bytes, integration)?;
    let run: LangchainRun = match integration {
        TraceIntegration::Langchain => decode_json(&bytes)?,
    };
    accept_record(state, ClientRecord::Integration(integration, &run), &bytes).await
}

/// A 400 for a body that is not JSON, a 422 for JSON that is not an object. Only a body that
/// does not start like an object is parsed here: the decoding after this checks the rest.
fn require_json_object(bytes: &[u8], integration: TraceIntegration) -> Result<(), ApiError> {
    if bytes.trim_ascii_start().first() == Some(&b'{') {
        return Ok(());
    }
    decode_json::<serde::de::IgnoredAny>(bytes)?;
    Err(ApiError::InvalidRequest {
        field: None,
        message: format!(
            "a {} record must be a JSON object (the tracer's run as a dict); send it as \
             Parea's SDK does",
            integration.name()
        ),
    })
}

/// `PUT /trace_log`: an update of an earlier record, spooled (in order) after it.
pub async fn trace_log_update(
    req: Request<Incoming>,
    state: &State,
) -> Result<Response<ResponseBody>, ApiError> {
    let bytes =
        body::read_limited(req, state.config.load().max_body, state.engine.memory()).await?;
    let update: TraceLogUpdate = decode_json(&bytes)?;
    accept_record(state, ClientRecord::Update(&update), &bytes).await
}

/// `GET /trace_log/{trace_id}`: Parea's `TraceLogTree` of a record the spool still holds, so
/// the SDK's `get_trace_log` parses it: the record with its later updates applied, in exactly
/// the fields of `TraceLogTree`, its `children_logs` the held records of the children it lists
/// (see [`crate::logs::trace_tree`]). The delivery state goes in headers:
/// `x-promptd-delivery: waiting|acknowledged`, `x-promptd-spool-id`,
/// `x-promptd-updates-applied` (of the record itself) and `x-promptd-children-missing` (child
/// ids listed but not in the answer). 404 `not_found` once the record is no longer held (or was
/// never sent); 422 for an empty or over-long id. Read-only; it scans the spool once per level
/// of the tree, on the blocking pool.
pub async fn trace_log_entry(
    state: &State,
    raw_id: &str,
) -> Result<Response<ResponseBody>, ApiError> {
    let trace_id = trace_id_in_path(raw_id)?;
    let tree = state
        .spool
        .find_trace_tree(&trace_id)
        .await
        .map_err(|e| ApiError::Internal(format!("cannot look the trace up: {e}")))?
        .ok_or_else(|| ApiError::TraceNotHeld(trace_id.into_owned()))?;
    let mut response = body::json(StatusCode::OK, &tree.to_trace_log_tree());
    let headers = response.headers_mut();
    let held = &tree.trace;
    headers.insert(
        DELIVERY_HEADER,
        HeaderValue::from_static(held.delivery.as_str()),
    );
    headers.insert(SPOOL_ID_HEADER, HeaderValue::from(held.spool_id));
    headers.insert(UPDATES_HEADER, HeaderValue::from(held.updates_applied));
    headers.insert(MISSING_HEADER, HeaderValue::from(tree.children_missing));
    Ok(response)
}

const DELIVERY_HEADER: HeaderName = HeaderName::from_static("x-promptd-delivery");
const SPOOL_ID_HEADER: HeaderName = HeaderName::from_static("x-promptd-spool-id");
const UPDATES_HEADER: HeaderName = HeaderName::from_static("x-promptd-updates-applied");
const MISSING_HEADER: HeaderName = HeaderName::from_static("x-promptd-children-missing");

/// `GET /logs/trace/{trace_id}`: the record as the spool still holds it, for debugging.
///
/// 200 with `{trace_id, delivery, spool_id, updates_applied, record}` (see
/// [`crate::logs::HeldTrace`]): `record` is the trace's last durable `TraceLog` with the fields
/// of later updates applied, whole (fields outside Parea's TraceLog too); `delivery` is
/// `waiting` until the flusher acknowledged it and its updates, then `acknowledged` (its segment
/// still holds other traces' records). 404 and 422 as for `GET /trace_log/{trace_id}`.
/// Read-only; it scans the spool on the blocking pool.
pub async fn logs_trace(state: &State, raw_id: &str) -> Result<Response<ResponseBody>, ApiError> {
    let trace_id = trace_id_in_path(raw_id)?;
    let held = state
        .spool
        .find_trace(&trace_id)
        .await
        .map_err(|e| ApiError::Internal(format!("cannot look the trace up: {e}")))?;
    match held {
        Some(held) => Ok(body::json(StatusCode::OK, &held)),
        None => Err(ApiError::TraceNotHeld(trace_id.into_owned())),
    }
}

/// Longest trace id a lookup looks for, in bytes (decoded): far above a UUID, low enough that
/// nobody scans the spool for a megabyte of path.
const MAX_TRACE_ID_BYTES: usize = 256;

/// The trace id at the end of a lookup's path, percent-decoded and checked.
fn trace_id_in_path(raw_id: &str) -> Result<Cow<'_, str>, ApiError> {
    let trace_id = percent_encoding::percent_decode_str(raw_id)
        .decode_utf8()
        .map_err(|_| ApiError::invalid("trace_id", "trace id is not UTF-8 once decoded"))?;
    if trace_id.is_empty() {
        return Err(ApiError::invalid(
            "trace_id",
            "trace id is empty: end the path with it, as in GET /api/parea/v1/trace_log/{trace_id}",
        ));
    }
    if trace_id.len() > MAX_TRACE_ID_BYTES {
        return Err(ApiError::invalid(
            "trace_id",
            format!(
                "trace id is {} bytes long; the longest looked for is {MAX_TRACE_ID_BYTES}",
                trace_id.len()
            ),
        ));
    }
    Ok(trace_id)
}

/// `POST /feedback`: a score for a trace, spooled like a log.
pub async fn feedback(
    req: Request<Incoming>,
    state: &State,
) -> Result<Response<ResponseBody>, ApiError> {
    let bytes =
        body::read_limited(req, state.config.load().max_body, state.engine.memory()).await?;
    let feedback: Feedback = decode_json(&bytes)?;
    accept_record(state, ClientRecord::Feedback(&feedback), &bytes).await
}

/// `GET /logs/status`: what waits on disk, what was shipped, and why nothing ships if so.
pub fn logs_status(state: &State) -> Response<ResponseBody> {
    body::json(StatusCode::OK, &logs_status_json(state))
}

/// The logs part of `/logs/status` and `/status`.
pub fn logs_status_json(state: &State) -> serde_json::Value {
    use crate::timestamp::system_time_iso;
    let s = state.spool.stats();
    let f = state.flusher.load().stats();
    let config = state.config.load();
    let (flusher_state, why) = match &f.state {
        FlusherState::Idle => ("idle", None),
        FlusherState::Running => ("running", None),
        FlusherState::Disabled { reason } => ("disabled", Some(reason.clone())),
        FlusherState::Stopped => ("stopped", None),
    };
    serde_json::json!({
        "waiting_records": s.waiting_records,
        "bytes_on_disk": s.bytes_on_disk,
        "max_bytes": config.spool.max_bytes,
        "oldest_waiting_seconds": s.oldest_waiting_age.map(|a| a.as_secs()),
        "appended": s.appended,
        "committed": s.committed,
        "sent": f.sent,
        "rejected": f.rejected,
        "retries": f.retries,
        "undecodable": f.undecodable,
        "set_aside": f.set_aside,
        "in_flight": f.in_flight,
        "dropped": s.dropped_full + s.dropped_too_large,
        "corrupt_skipped": s.corrupt_skipped,
        "write_errors": s.write_errors,
        "last_write_error": s.last_write_error,
        "flusher": flusher_state,
        "not_flushing_because": why,
        "upstream": config.upstream.base_url.as_deref().map(crate::redact::urls),
        "upstream_api_key": config.upstream.api_key_source,
        "healthy": f.healthy(),
        "failing_since": f.failing_since.map(system_time_iso),
        "last_success_at": f.last_success_at.map(system_time_iso),
        "last_error_at": f.last_error.as_ref().map(|e| system_time_iso(e.at)),
        "last_upstream_error": f.last_error.map(|e| e.message),
        "last_rejection": f.last_rejection,
    })
}

/// `POST /logs/flush`: commit the queue and ship now (cuts retry waits short).
pub fn logs_flush(state: &State) -> Response<ResponseBody> {
    state.flusher.load().flush_now();
    body::json(StatusCode::ACCEPTED, &serde_json::json!({"flushing": true}))
}
