//! The credential a client sent, for a provider configured without a key (a local model
//! server, or one whose users bring their own): the doors of agents and SDKs that always send
//! one (Anthropic's Messages, OpenAI's Responses) pass it on to such a provider. It is never
//! logged, cached or echoed; the TCP listener's own key (which only admits the client) is never
//! passed on.

use hyper::header::{HeaderMap, AUTHORIZATION};

use super::State;
use crate::config::Secret;

/// The credential the client sent, for a provider configured without a key: `x-api-key`, else
/// `Authorization: Bearer`; never the TCP listener's own key (which only admits the client).
pub(super) fn client_key(headers: &HeaderMap, provider: &str, state: &State) -> Option<Secret> {
    let configured = state
        .engine
        .upstreams()
        .providers
        .get(provider)
        .is_some_and(|p| p.api_key().is_some());
    if configured {
        return None;
    }
    let sent = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .or_else(|| {
            headers
                .get(AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
        })
        .map(str::trim)
        .filter(|k| !k.is_empty())?;
    let config = state.config.load();
    if config
        .access
        .tcp_key
        .as_ref()
        .is_some_and(|k| k.expose() == sent)
    {
        return None;
    }
    Some(Secret::new(sent))
}
