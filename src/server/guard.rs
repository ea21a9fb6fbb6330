//! The request guard: what a connection's peer may ask, checked before a request reaches its
//! handler (after the Unix socket's uid check at accept, before the rate limit).
//!
//! - **TCP listener** (reachable by every local user and, through a browser, by web pages):
//!   1. `Host` must name a loopback host (`localhost`, `*.localhost`, 127.0.0.0/8, `::1`), the
//!      listener's own address, or one of `tcp_hosts` — else 421: a page that made its own name
//!      resolve to 127.0.0.1 (DNS rebinding) sends its own name;
//!   2. an `Origin` must name such a host too — else 403: a foreign page's `fetch` carries its
//!      origin, and a request without one is not from a browser's cross-origin call;
//!   3. with `tcp_key_env`, the key as `Authorization: Bearer KEY` or `x-api-key: KEY` — else 401;
//!   4. a request body must be declared JSON (`application/json` or `…+json`) — else 415: the
//!      content types a page may send without a CORS preflight (`text/plain`, forms) are not.
//!
//!   `GET /health` is exempt (it tells nothing), so load balancers and probes need no key.
//! - **Admin routes** (cache writes, `/logs/*`, `/deployments`, reads of trace records): Unix
//!   peers in `admin_uids` (default: the daemon's own uid and root); TCP clients only when the
//!   listener requires a key (a key holder acts for the daemon's owner) — else 403 naming the
//!   way in.

use std::net::{IpAddr, SocketAddr};

use hyper::header::{
    HeaderMap, HeaderName, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HOST, ORIGIN,
};
use hyper::Method;

use super::router::Route;
use super::State;
use crate::call::ApiError;
use crate::config::AccessConfig;
use crate::engine::Client;

/// Who is on the other end of a connection that passed the accept-time check.
#[derive(Debug, Clone, Copy)]
pub enum Peer {
    /// A Unix-socket peer with its uid and gid (from `SO_PEERCRED`).
    Unix { uid: u32, gid: u32 },
    /// A TCP client at `remote`; `local` is the listener's address it connected to.
    Tcp {
        local: SocketAddr,
        remote: SocketAddr,
    },
}

impl Peer {
    /// Who sent a request, as the engine and the log record know it.
    pub fn client(self) -> Client {
        match self {
            Peer::Unix { uid, gid } => Client::Unix { uid, gid },
            Peer::Tcp { remote, .. } => Client::Tcp { peer: remote },
        }
    }
}

/// Check one request of `peer` for `route` (see the module header for the rules).
pub fn check(
    peer: Peer,
    method: &Method,
    headers: &HeaderMap,
    route: Option<Route<'_>>,
    state: &State,
) -> Result<(), ApiError> {
    if matches!(route, Some(Route::Health)) {
        return Ok(());
    }
    // A TCP client that passed the checks holds the key, if the listener asks for one.
    let key_holder = match peer {
        Peer::Unix { .. } => false,
        Peer::Tcp { local, .. } => {
            let config = state.config.load();
            check_tcp(&config.access, local, method, headers)?;
            config.access.tcp_key.is_some()
        }
    };
    if !route.is_some_and(|r| is_admin_route(method, r)) {
        return Ok(());
    }
    let admin = match peer {
        Peer::Unix { uid, .. } => state.peers.load().is_admin(uid),
        Peer::Tcp { .. } => key_holder,
    };
    if !admin {
        return Err(ApiError::Forbidden(match peer {
            Peer::Unix { uid, .. } => format!(
                "uid {uid} may not use this admin route (cache writes, /logs, /deployments, \
                 trace reads are for admin_uids: by default the daemon's own user and root)"
            ),
            Peer::Tcp { .. } => "admin routes (cache writes, /logs, /deployments, trace reads) \
                 are served over TCP only when the listener requires a key (tcp_key_env); use \
                 the Unix socket"
                .to_owned(),
        }));
    }
    Ok(())
}

/// Routes that change the daemon's state or read what other clients sent.
fn is_admin_route(method: &Method, route: Route<'_>) -> bool {
    match route {
        Route::Cache | Route::CacheEntry(_) => method != Method::GET && method != Method::HEAD,
        Route::LogsStatus
        | Route::LogsFlush
        | Route::LogsTrace(_)
        | Route::Deployments
        | Route::TraceLogEntry(_) => true,
        // POST logs a record (a client's own); GET reads one back.
        Route::IntegrationLog(_) => method == Method::GET,
        Route::Health
        | Route::Completion
        | Route::CompletionStream
        | Route::Project
        | Route::DeployedPrompt
        | Route::TraceLog
        | Route::Feedback
        | Route::CacheStats
        | Route::Metrics
        | Route::Status
        | Route::Unsupported
        | Route::OpenAiChat
        | Route::OpenAiEmbeddings
        | Route::OpenAiModels
        | Route::OpenAiModel(_)
        | Route::AnthropicMessages
        | Route::AnthropicCountTokens
        | Route::OpenAiResponses
        | Route::OpenAiLegacyCompletions => false,
        // A client's own kept responses: the store answers only their owner.
        Route::OpenAiResponse(_) | Route::OpenAiResponseInputItems(_) => false,
    }
}

fn check_tcp(
    access: &AccessConfig,
    local: SocketAddr,
    method: &Method,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    let text = |name: HeaderName| headers.get(name).map(|v| v.to_str().unwrap_or("\u{fffd}"));
    // HTTP/1.1 requires `Host`; an HTTP/1.0 client without one is not a browser.
    if let Some(host) = text(HOST) {
        if !allowed_host(access, local, host) {
            return Err(ApiError::MisdirectedHost(format!(
                "Host `{}` is not this daemon's: the TCP listener answers loopback names \
                 (localhost, 127.0.0.1, [::1]) and the names in tcp_hosts",
                shown(host)
            )));
        }
    }
    if let Some(origin) = text(ORIGIN) {
        let host = origin_host(origin);
        if !host.is_some_and(|h| allowed_host(access, local, h)) {
            return Err(ApiError::Forbidden(format!(
                "requests from the web origin `{}` are refused: a web page may not use this \
                 daemon (add its host to tcp_hosts if it is yours)",
                shown(origin)
            )));
        }
    }
    if let Some(key) = &access.tcp_key {
        let bearer = text(AUTHORIZATION).and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        });
        let given = bearer.or_else(|| text(HeaderName::from_static("x-api-key")));
        // blake3's `Hash` compares in constant time.
        let matches = given
            .is_some_and(|g| blake3::hash(g.as_bytes()) == blake3::hash(key.expose().as_bytes()));
        if !matches {
            let var = access.tcp_key_env.as_deref().unwrap_or("tcp_key_env");
            return Err(ApiError::Unauthorized(format!(
                "this TCP listener requires its key: send `Authorization: Bearer KEY` or \
                 `x-api-key: KEY` with the key in {var} of promptd's environment"
            )));
        }
    }
    if has_body(method, headers) {
        let json = text(CONTENT_TYPE).is_some_and(is_json);
        if !json {
            return Err(ApiError::UnsupportedMediaType(format!(
                "a request body over TCP must be JSON (content-type: application/json), not {}",
                text(CONTENT_TYPE).map_or("undeclared".to_owned(), |t| format!("`{}`", shown(t)))
            )));
        }
    }
    Ok(())
}

/// Whether a request carries a body: any length but 0, or chunked framing.
fn has_body(method: &Method, headers: &HeaderMap) -> bool {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return false;
    }
    match headers.get(CONTENT_LENGTH) {
        Some(len) => len.as_bytes() != b"0",
        None => headers.contains_key(hyper::header::TRANSFER_ENCODING),
    }
}

fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The host of an origin (`scheme://host[:port]`); `None` for `null` or anything else.
fn origin_host(origin: &str) -> Option<&str> {
    let rest = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))?;
    (!rest.is_empty() && !rest.contains('/')).then_some(rest)
}

/// Whether `host` (a `Host` value: name or address, maybe with a port) names this daemon.
fn allowed_host(access: &AccessConfig, local: SocketAddr, host: &str) -> bool {
    let name = strip_port(host).trim_end_matches('.');
    let suffix = name
        .len()
        .checked_sub(".localhost".len())
        .and_then(|at| name.get(at..));
    if name.eq_ignore_ascii_case("localhost")
        || suffix.is_some_and(|s| s.eq_ignore_ascii_case(".localhost"))
    {
        return true;
    }
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        if ip.is_loopback() || (ip == local.ip() && !ip.is_unspecified()) {
            return true;
        }
    }
    access.tcp_hosts.iter().any(|h| {
        h.trim_start_matches('[')
            .trim_end_matches(']')
            .eq_ignore_ascii_case(bare)
    })
}

/// `host` without its `:port` (an IPv6 literal keeps its brackets).
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    match host.rsplit_once(':') {
        // More than one colon: a bare IPv6 address, no port.
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name
        }
        _ => host,
    }
}

/// A header value as shown in an error: at most 100 characters.
fn shown(value: &str) -> String {
    value.chars().take(100).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(hosts: &[&str]) -> AccessConfig {
        AccessConfig {
            tcp_hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
            ..AccessConfig::default()
        }
    }

    const LOCAL: SocketAddr =
        SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1)), 8787);

    #[test]
    fn loopback_and_configured_hosts_only() {
        let a = access(&["promptd.internal"]);
        for ok in [
            "localhost",
            "localhost:8787",
            "LOCALHOST.",
            "app.localhost:3000",
            "127.0.0.1:8787",
            "127.9.9.9",
            "[::1]:8787",
            "::1",
            "promptd.internal:8787",
        ] {
            assert!(allowed_host(&a, LOCAL, ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8787",
            "localhost.evil.example",
            "127.0.0.1.evil.example",
            "10.0.0.5:8787",
            "",
            "[::2]",
        ] {
            assert!(!allowed_host(&a, LOCAL, bad), "{bad}");
        }
        let lan = SocketAddr::new("192.168.1.9".parse().expect("ip"), 8787);
        assert!(
            allowed_host(&a, lan, "192.168.1.9:8787"),
            "the listener's own address"
        );
    }

    #[test]
    fn origins_name_a_host() {
        assert_eq!(origin_host("http://localhost:3000"), Some("localhost:3000"));
        assert_eq!(origin_host("https://evil.example"), Some("evil.example"));
        assert_eq!(origin_host("null"), None);
        assert_eq!(origin_host("file://"), None);
    }

    #[test]
    fn json_content_types() {
        assert!(is_json("application/json"));
        assert!(is_json("Application/JSON; charset=utf-8"));
        assert!(is_json("application/vnd.api+json"));
        assert!(!is_json("text/plain"));
        assert!(!is_json("application/x-www-form-urlencoded"));
        assert!(!is_json("multipart/form-data; boundary=x"));
    }

    #[test]
    fn admin_routes() {
        assert!(is_admin_route(&Method::DELETE, Route::Cache));
        assert!(!is_admin_route(&Method::GET, Route::CacheEntry("ab")));
        assert!(is_admin_route(&Method::GET, Route::TraceLogEntry("t")));
        assert!(is_admin_route(&Method::POST, Route::LogsFlush));
        assert!(is_admin_route(&Method::GET, Route::Deployments));
        assert!(!is_admin_route(&Method::POST, Route::Completion));
        assert!(!is_admin_route(&Method::POST, Route::TraceLog));
    }
}
