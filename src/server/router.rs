//! The router: a `match` on method and path. Every route is one small handler in
//! [`super::handlers`]; anything else is a JSON 404, 405, or — for routes of Parea's hosted API
//! that promptd does not serve — a 501 naming the route.

use hyper::body::Incoming;
use hyper::{Method, Request, Response};

use super::body::{self, ResponseBody};
use super::handlers;
use super::State;
use crate::api::ApiError;

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
];

/// Route one request of a connection whose peer is allowed.
pub async fn route(req: Request<Incoming>, state: &State) -> Response<ResponseBody> {
    let path = req.uri().path();
    let method = req.method();
    let outcome = match (method, path) {
        (&Method::GET | &Method::HEAD, "/health") => Ok(handlers::health(state)),
        (&Method::POST, p) if p == paths::COMPLETION => handlers::completion(req, state).await,
        (&Method::POST, p) if p == paths::STREAM => handlers::completion_stream(req, state).await,
        (&Method::POST, p) if p == paths::PROJECT => handlers::project(req, state).await,
        (&Method::POST, p) if p == paths::DEPLOYED_PROMPT => {
            handlers::deployed_prompt(req, state).await
        }
        (&Method::GET, "/deployments") => Ok(handlers::deployments(state)),
        (&Method::POST, p) if p == paths::TRACE_LOG => handlers::trace_log(req, state).await,
        (&Method::PUT, p) if p == paths::TRACE_LOG => handlers::trace_log_update(req, state).await,
        (&Method::POST, p) if p == paths::FEEDBACK => handlers::feedback(req, state).await,
        (&Method::GET, p) if p.starts_with(paths::TRACE_LOG) => Err(ApiError::NotImplemented(
            format!("{method} {p} (records are shipped upstream, not kept for reading)"),
        )),
        (&Method::GET, "/logs/status") => Ok(handlers::logs_status(state)),
        (&Method::POST, "/logs/flush") => Ok(handlers::logs_flush(state)),
        (&Method::GET, "/cache/stats") => Ok(handlers::cache_stats(state)),
        (&Method::GET, "/metrics") => Ok(handlers::metrics(state)),
        (&Method::GET, "/status") => Ok(handlers::status(state)),
        (&Method::DELETE, "/cache") => handlers::cache_purge(state).await,
        (&Method::DELETE, p) if p.starts_with("/cache/") => {
            handlers::cache_delete(state, &p["/cache/".len()..])
        }
        (_, p)
            if p == "/health"
                || p == "/metrics"
                || p == "/deployments"
                || p == "/logs/status"
                || p == "/logs/flush"
                || p == paths::TRACE_LOG
                || p == paths::FEEDBACK
                || p == paths::DEPLOYED_PROMPT
                || p == "/status"
                || p == "/cache"
                || p == "/cache/stats"
                || p == paths::COMPLETION
                || p == paths::STREAM
                || p == paths::PROJECT =>
        {
            Err(ApiError::MethodNotAllowed {
                method: method.to_string(),
                path: path.to_owned(),
            })
        }
        (_, p) if is_unsupported_hosted_route(p) => {
            Err(ApiError::NotImplemented(format!("{method} {p}")))
        }
        _ => Err(ApiError::NotFound {
            method: method.to_string(),
            path: path.to_owned(),
        }),
    };
    outcome.unwrap_or_else(|e| body::error(&e))
}

/// The `route` label of request metrics: a fixed name per route, never the raw path.
pub fn route_name(method: &Method, path: &str) -> &'static str {
    match path {
        paths::COMPLETION => "completion",
        paths::STREAM => "completion_stream",
        paths::PROJECT => "project",
        paths::DEPLOYED_PROMPT => "deployed_prompt",
        "/deployments" => "deployments",
        paths::TRACE_LOG => "trace_log",
        paths::FEEDBACK => "feedback",
        "/logs/status" | "/logs/flush" => "logs",
        "/health" => "health",
        "/metrics" => "metrics",
        "/status" => "status",
        "/cache/stats" => "cache_stats",
        p if p == "/cache" || (p.starts_with("/cache/") && method == Method::DELETE) => {
            "cache_delete"
        }
        p if is_unsupported_hosted_route(p) => "unsupported",
        _ => "other",
    }
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
    pub const FEEDBACK: &str = "/api/parea/v1/feedback";
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
