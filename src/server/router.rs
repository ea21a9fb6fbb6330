//! The router: a `match` on method and path. Every route is one small handler in
//! [`super::handlers`]; anything else is a JSON 404, 405, or — for routes of Parea's hosted API
//! that promptd does not serve — a 501 naming the route.

use hyper::body::Incoming;
use hyper::{Method, Request, Response};

use super::anthropic;
use super::anthropic_models;
use super::body::{self, ResponseBody};
use super::handlers;
use super::openai;
use super::State;
use crate::call::ApiError;
use crate::engine::RequestCtx;
use crate::logs::TraceIntegration;

/// Prefix of the Parea-compatible routes.
pub const PAREA_PREFIX: &str = "/api/parea/v1";

/// First path segments (under [`PAREA_PREFIX`]) of hosted routes promptd does not serve yet.
const UNSUPPORTED: &[&str] = &[
    "experiment",
    "experiments",
    "collection",
    "collections",
    "testcases",
    "testcase",
    "testcase_collection",
    "update_test_case",
    "datasets",
    "dataset",
    "evaluation",
    "evaluations",
    "get_trace_logs",
];

/// A path promptd serves (under any method), resolved once: the router pairs it with the
/// method, and request metrics label by it. Adding a route here gives it its 405 and its
/// metrics label without a second list to keep in step. A path parameter is one non-`/`
/// segment: a longer path is not a route (404), so a 405 always means the path is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'a> {
    Health,
    Completion,
    CompletionStream,
    Project,
    DeployedPrompt,
    Deployments,
    TraceLog,
    /// `/trace_log/{trace_id}`: a record read back while the spool still holds it; the id
    /// still as the caller wrote it (percent-encoded).
    TraceLogEntry(&'a str),
    /// `/trace_log/{vendor}` for a vendor promptd accepts: a tracing integration's record.
    IntegrationLog(TraceIntegration),
    Feedback,
    LogsStatus,
    LogsFlush,
    /// `/logs/trace/{trace_id}`: promptd's view of a held record, the id percent-encoded.
    LogsTrace(&'a str),
    CacheStats,
    Metrics,
    Status,
    Cache,
    /// `/cache/{key}`, the key still as the caller wrote it.
    CacheEntry(&'a str),
    /// A route of Parea's hosted API that promptd does not serve.
    Unsupported,
    /// `/v1/chat/completions`, OpenAI's API.
    OpenAiChat,
    /// `/v1/embeddings`.
    OpenAiEmbeddings,
    /// `/v1/models`.
    OpenAiModels,
    /// `/v1/models/{id}`, the id as the caller wrote it.
    OpenAiModel(&'a str),
    /// `/v1/messages`, Anthropic's Messages API.
    AnthropicMessages,
    /// `/v1/messages/count_tokens`.
    AnthropicCountTokens,
    /// `/v1/responses`, OpenAI's Responses API.
    OpenAiResponses,
    /// `/v1/responses/{id}`: a kept response (read, delete).
    OpenAiResponse(&'a str),
    /// `/v1/responses/{id}/input_items`: a kept response's input items.
    OpenAiResponseInputItems(&'a str),
    /// `/v1/completions`, OpenAI's legacy completions API: not served (a 501 that says what to
    /// use).
    OpenAiLegacyCompletions,
}

impl<'a> Route<'a> {
    /// The route a path names, or `None` for a path promptd does not know.
    pub fn resolve(path: &'a str) -> Option<Route<'a>> {
        let route = match path {
            "/health" => Route::Health,
            paths::COMPLETION => Route::Completion,
            paths::STREAM => Route::CompletionStream,
            paths::PROJECT => Route::Project,
            paths::DEPLOYED_PROMPT => Route::DeployedPrompt,
            "/deployments" => Route::Deployments,
            paths::TRACE_LOG => Route::TraceLog,
            paths::FEEDBACK => Route::Feedback,
            "/logs/status" => Route::LogsStatus,
            "/logs/flush" => Route::LogsFlush,
            "/cache/stats" => Route::CacheStats,
            "/metrics" => Route::Metrics,
            "/status" => Route::Status,
            "/cache" => Route::Cache,
            "/v1/chat/completions" => Route::OpenAiChat,
            "/v1/embeddings" => Route::OpenAiEmbeddings,
            "/v1/models" => Route::OpenAiModels,
            "/v1/messages" => Route::AnthropicMessages,
            "/v1/messages/count_tokens" => Route::AnthropicCountTokens,
            "/v1/responses" => Route::OpenAiResponses,
            "/v1/completions" => Route::OpenAiLegacyCompletions,
            p => {
                if let Some(id) = p.strip_prefix("/v1/models/") {
                    // A model id may hold a `/` (`deployment/ID`, `provider/model`).
                    Route::OpenAiModel(id)
                } else if let Some(id) = parameter(p, "/v1/responses/") {
                    Route::OpenAiResponse(id)
                } else if let Some(id) = p
                    .strip_suffix("/input_items")
                    .and_then(|p| parameter(p, "/v1/responses/"))
                {
                    Route::OpenAiResponseInputItems(id)
                } else if let Some(key) = parameter(p, "/cache/") {
                    Route::CacheEntry(key)
                } else if let Some(id) = parameter(p, "/logs/trace/") {
                    Route::LogsTrace(id)
                } else if let Some(segment) = parameter(p, paths::TRACE_LOG_SLASH) {
                    TraceIntegration::from_name(segment)
                        .map_or(Route::TraceLogEntry(segment), Route::IntegrationLog)
                } else if is_unsupported_hosted_route(p) {
                    Route::Unsupported
                } else {
                    return None;
                }
            }
        };
        Some(route)
    }

    /// The shape of this route's errors: its door's.
    pub fn error_shape(self) -> ErrorShape {
        match self {
            Route::OpenAiChat
            | Route::OpenAiEmbeddings
            | Route::OpenAiModels
            | Route::OpenAiModel(_)
            | Route::OpenAiResponses
            | Route::OpenAiResponse(_)
            | Route::OpenAiResponseInputItems(_)
            | Route::OpenAiLegacyCompletions => ErrorShape::OpenAi,
            Route::AnthropicMessages | Route::AnthropicCountTokens => ErrorShape::Anthropic,
            _ => ErrorShape::Promptd,
        }
    }

    /// The `route` label of request metrics: a fixed name per route, never the raw path.
    pub fn name(self) -> &'static str {
        match self {
            Route::Health => "health",
            Route::Completion => "completion",
            Route::CompletionStream => "completion_stream",
            Route::Project => "project",
            Route::DeployedPrompt => "deployed_prompt",
            Route::Deployments => "deployments",
            Route::TraceLog => "trace_log",
            // A scan of the spool: not mixed into the ingest latency of `trace_log`.
            Route::TraceLogEntry(_) => "trace_log_entry",
            Route::IntegrationLog(_) => "trace_log_integration",
            Route::Feedback => "feedback",
            Route::LogsStatus | Route::LogsFlush => "logs",
            Route::LogsTrace(_) => "logs_trace",
            Route::CacheStats => "cache_stats",
            Route::Metrics => "metrics",
            Route::Status => "status",
            Route::Cache => "cache",
            Route::CacheEntry(_) => "cache_entry",
            Route::Unsupported => "unsupported",
            Route::OpenAiChat => "openai_chat_completions",
            Route::OpenAiEmbeddings => "openai_embeddings",
            Route::OpenAiModels | Route::OpenAiModel(_) => "openai_models",
            Route::AnthropicMessages => "anthropic_messages",
            Route::AnthropicCountTokens => "anthropic_count_tokens",
            Route::OpenAiResponses => "openai_responses",
            Route::OpenAiResponse(_) | Route::OpenAiResponseInputItems(_) => {
                "openai_responses_kept"
            }
            Route::OpenAiLegacyCompletions => "openai_legacy_completions",
        }
    }
}

/// Route one request of a connection whose peer is allowed; `route` is what its `path`
/// resolved to ([`Route::resolve`]), both borrowed from the caller's copy of the URI so the
/// request itself can move into its handler.
pub async fn route(
    req: Request<Incoming>,
    path: &str,
    route: Option<Route<'_>>,
    ctx: RequestCtx,
    state: &State,
) -> Response<ResponseBody> {
    let method = req.method().clone();
    let Some(route) = route else {
        let err = ApiError::NotFound {
            method: method.to_string(),
            path: path.to_owned(),
        };
        return error(ErrorShape::of(None, path, req.headers()), &err);
    };
    let anthropic_client = req.headers().contains_key(anthropic_models::VERSION_HEADER);
    let outcome = match (&method, route) {
        (&Method::GET | &Method::HEAD, Route::Health) => Ok(handlers::health(state)),
        (&Method::POST, Route::Completion) => handlers::completion(req, ctx, state).await,
        (&Method::POST, Route::CompletionStream) => {
            handlers::completion_stream(req, ctx, state).await
        }
        (&Method::POST, Route::Project) => handlers::project(req, state).await,
        (&Method::POST, Route::DeployedPrompt) => handlers::deployed_prompt(req, state).await,
        (&Method::GET, Route::Deployments) => Ok(handlers::deployments(state)),
        (&Method::POST, Route::TraceLog) => handlers::trace_log(req, state).await,
        (&Method::PUT, Route::TraceLog) => handlers::trace_log_update(req, state).await,
        (&Method::GET, Route::TraceLog) => Err(ApiError::NotImplemented(format!(
            "{method} {path} (records are shipped upstream, not kept for listing)"
        ))),
        (&Method::GET, Route::TraceLogEntry(id)) => handlers::trace_log_entry(state, id).await,
        (&Method::POST, Route::TraceLogEntry(vendor)) => Err(ApiError::NotImplemented(format!(
            "{method} {path} (records of the tracing integration `{vendor}`; promptd takes \
             those of: {})",
            TraceIntegration::names()
        ))),
        (&Method::POST, Route::IntegrationLog(integration)) => {
            handlers::integration_log(req, state, integration).await
        }
        // A trace id may spell a vendor's name: reading it back is still a lookup.
        (&Method::GET, Route::IntegrationLog(integration)) => {
            handlers::trace_log_entry(state, integration.name()).await
        }
        (&Method::POST, Route::Feedback) => handlers::feedback(req, state).await,
        (&Method::GET, Route::LogsStatus) => Ok(handlers::logs_status(state)),
        (&Method::POST, Route::LogsFlush) => Ok(handlers::logs_flush(state)),
        (&Method::GET, Route::LogsTrace(id)) => handlers::logs_trace(state, id).await,
        (&Method::GET, Route::CacheStats) => Ok(handlers::cache_stats(state)),
        (&Method::GET, Route::Metrics) => Ok(handlers::metrics(state)),
        (&Method::GET, Route::Status) => Ok(handlers::status(state)),
        (&Method::DELETE, Route::Cache) => handlers::cache_purge(state).await,
        (&Method::DELETE, Route::CacheEntry(key)) => handlers::cache_delete(state, key),
        (_, Route::Unsupported) => Err(ApiError::NotImplemented(format!("{method} {path}"))),
        (&Method::POST, Route::OpenAiChat) => Ok(openai::chat_completions(req, ctx, state).await),
        (&Method::POST, Route::AnthropicMessages) => Ok(anthropic::messages(req, ctx, state).await),
        (&Method::POST, Route::OpenAiResponses) => {
            Ok(super::responses::responses(req, ctx, state).await)
        }
        (&Method::GET, Route::OpenAiResponse(id)) => super::responses::get(state, &ctx, id),
        (&Method::DELETE, Route::OpenAiResponse(id)) => super::responses::delete(state, &ctx, id),
        (&Method::GET, Route::OpenAiResponseInputItems(id)) => {
            super::responses::input_items_of(state, &ctx, id, req.uri().query())
        }
        (_, Route::OpenAiLegacyCompletions) => Err(ApiError::NotServed(
            "POST /v1/completions (OpenAI's legacy completions API, a prompt in and text out) is \
             not served: send the prompt as a user message to /v1/chat/completions, or as \
             `input` to /v1/responses"
                .to_owned(),
        )),
        (&Method::POST, Route::AnthropicCountTokens) => {
            Ok(anthropic::count_tokens(req, state).await)
        }
        (&Method::POST, Route::OpenAiEmbeddings) => {
            Ok(super::openai_embeddings::embeddings(req, state).await)
        }
        // Anthropic's SDKs (and Claude Code) list models too: their own shape.
        (&Method::GET, Route::OpenAiModels) if anthropic_client => {
            Ok(anthropic_models::list_models(state).await)
        }
        (&Method::GET, Route::OpenAiModel(id)) if anthropic_client => {
            Ok(anthropic_models::get_model(state, id).await)
        }
        (&Method::GET, Route::OpenAiModels) => Ok(openai::list_models(state).await),
        (&Method::GET, Route::OpenAiModel(id)) => Ok(openai::get_model(state, id).await),
        _ => Err(ApiError::MethodNotAllowed {
            method: method.to_string(),
            path: path.to_owned(),
        }),
    };
    outcome.unwrap_or_else(|e| error(route.error_shape(), &e))
}

/// Which error body a request gets: its door's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorShape {
    /// `{"error": {"type", "message", ...}}` of promptd's own and Parea's routes.
    Promptd,
    /// OpenAI's `{"error": {"message", "type", "param", "code"}}`.
    OpenAi,
    /// Anthropic's `{"type": "error", "error": {"type", "message"}}`.
    Anthropic,
}

impl ErrorShape {
    /// The shape for a request to `path` with `headers` that resolved to `route`: the route's
    /// own; a path no route serves gets, under `/v1/`, Anthropic's for a request carrying
    /// `anthropic-version` (every Anthropic client sends it) and OpenAI's for any other (an
    /// OpenAI client calling an endpoint promptd does not serve); promptd's elsewhere.
    pub fn of(route: Option<Route<'_>>, path: &str, headers: &hyper::HeaderMap) -> ErrorShape {
        match route {
            Some(route) => route.error_shape(),
            None if path.starts_with("/v1/") => {
                if headers.contains_key(anthropic_models::VERSION_HEADER) {
                    ErrorShape::Anthropic
                } else {
                    ErrorShape::OpenAi
                }
            }
            None => ErrorShape::Promptd,
        }
    }
}

/// The error response of a request whose door has `shape`.
pub fn error(shape: ErrorShape, err: &ApiError) -> Response<ResponseBody> {
    match shape {
        ErrorShape::OpenAi => openai::error(err),
        ErrorShape::Anthropic => anthropic::error(err),
        ErrorShape::Promptd => body::error(err),
    }
}

/// The one path segment after `prefix` (possibly empty), `None` if `path` does not start with
/// `prefix` or goes on past the segment.
fn parameter<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    path.strip_prefix(prefix).filter(|rest| !rest.contains('/'))
}

fn is_unsupported_hosted_route(path: &str) -> bool {
    path.strip_prefix(PAREA_PREFIX)
        .and_then(|rest| rest.strip_prefix('/'))
        .and_then(|rest| rest.split('/').next())
        .is_some_and(|segment| UNSUPPORTED.contains(&segment))
}

/// Full paths of the served Parea routes.
mod paths {
    pub const COMPLETION: &str = "/api/parea/v1/completion";
    pub const STREAM: &str = "/api/parea/v1/completion/stream";
    pub const PROJECT: &str = "/api/parea/v1/project";
    pub const DEPLOYED_PROMPT: &str = "/api/parea/v1/deployed-prompt";
    pub const TRACE_LOG: &str = "/api/parea/v1/trace_log";
    pub const TRACE_LOG_SLASH: &str = "/api/parea/v1/trace_log/";
    pub const FEEDBACK: &str = "/api/parea/v1/feedback";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_chooses_its_error_shape_an_unserved_path_its_prefix() {
        let none = hyper::HeaderMap::new();
        let shape = |path| ErrorShape::of(Route::resolve(path), path, &none);
        assert_eq!(shape("/v1/chat/completions"), ErrorShape::OpenAi);
        assert_eq!(shape("/v1/models/deployment/p-1"), ErrorShape::OpenAi);
        assert_eq!(shape("/v1/messages"), ErrorShape::Anthropic);
        assert_eq!(shape("/api/parea/v1/completion"), ErrorShape::Promptd);
        assert_eq!(shape("/cache/stats"), ErrorShape::Promptd);
        assert_eq!(shape("/v1/completions"), ErrorShape::OpenAi, "not served");
        assert_eq!(shape("/v1/embeddings/x"), ErrorShape::OpenAi, "no route");
        assert_eq!(shape("/nope"), ErrorShape::Promptd);
        let mut anthropic = hyper::HeaderMap::new();
        anthropic.insert("anthropic-version", "2023-06-01".parse().expect("value"));
        let path = "/v1/messages/batches";
        assert_eq!(
            ErrorShape::of(Route::resolve(path), path, &anthropic),
            ErrorShape::Anthropic
        );
    }

    #[test]
    fn hosted_routes_are_recognised_by_first_segment() {
        assert!(is_unsupported_hosted_route(
            "/api/parea/v1/experiment/abc/stats"
        ));
        assert!(is_unsupported_hosted_route("/api/parea/v1/datasets/7"));
        assert!(!is_unsupported_hosted_route("/api/parea/v1/nonsense"));
        assert!(!is_unsupported_hosted_route("/trace_log"));
        assert_eq!(paths::COMPLETION, format!("{PAREA_PREFIX}/completion"));
        assert_eq!(paths::STREAM, format!("{PAREA_PREFIX}/completion/stream"));
        assert_eq!(paths::PROJECT, format!("{PAREA_PREFIX}/project"));
    }

    fn route_name(path: &str) -> &'static str {
        Route::resolve(path).map_or("other", Route::name)
    }

    #[test]
    fn a_path_parameter_is_one_segment() {
        assert_eq!(Route::resolve("/api/parea/v1/trace_log/a/b"), None);
        assert_eq!(Route::resolve("/api/parea/v1/trace_log/langchain/x"), None);
        assert_eq!(Route::resolve("/cache/00ab/x"), None);
        assert_eq!(
            Route::resolve("/api/parea/v1/trace_log/"),
            Some(Route::TraceLogEntry("")),
            "an empty id is the lookup's 422, which says what to send"
        );
    }

    #[test]
    fn every_path_has_one_route_and_label() {
        assert_eq!(route_name("/cache"), "cache");
        assert_eq!(route_name("/cache/stats"), "cache_stats");
        assert_eq!(route_name("/cache/00ab"), "cache_entry");
        assert_eq!(
            Route::resolve("/cache/00ab"),
            Some(Route::CacheEntry("00ab"))
        );
        assert_eq!(route_name("/api/parea/v1/trace_log/abc"), "trace_log_entry");
        assert_eq!(
            Route::resolve("/api/parea/v1/trace_log/a%20b"),
            Some(Route::TraceLogEntry("a%20b"))
        );
        assert_eq!(route_name("/api/parea/v1/trace_logs"), "other");
        assert_eq!(
            Route::resolve("/api/parea/v1/trace_log/langchain"),
            Some(Route::IntegrationLog(TraceIntegration::Langchain))
        );
        assert_eq!(
            Route::resolve("/api/parea/v1/trace_log/llamaindex"),
            Some(Route::TraceLogEntry("llamaindex")),
            "any other segment is a trace id (POST answers 501)"
        );
        assert_eq!(route_name("/api/parea/v1/get_trace_logs"), "unsupported");
        assert_eq!(
            Route::resolve("/logs/trace/a%2Fb"),
            Some(Route::LogsTrace("a%2Fb"))
        );
        assert_eq!(route_name("/api/parea/v1/experiment/1"), "unsupported");
        assert_eq!(route_name("/nope"), "other");
        assert_eq!(route_name(paths::STREAM), "completion_stream");
        assert_eq!(route_name("/v1/embeddings"), "openai_embeddings");
        assert_eq!(
            Route::resolve("/v1/responses/resp_1"),
            Some(Route::OpenAiResponse("resp_1"))
        );
        assert_eq!(
            Route::resolve("/v1/responses/resp_1/input_items"),
            Some(Route::OpenAiResponseInputItems("resp_1"))
        );
        assert_eq!(Route::resolve("/v1/responses/a/b/input_items"), None);
        assert_eq!(Route::resolve("/v1/responses/resp_1/other"), None);
        assert_eq!(route_name("/v1/responses/resp_1"), "openai_responses_kept");
    }
}
