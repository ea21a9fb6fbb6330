//! The real binary honours the proxy variables for provider calls: with `HTTP_PROXY` set, a
//! call to an http provider goes through the proxy in absolute-form with the proxy URL's
//! credentials; with `NO_PROXY` covering the provider's host, it goes direct. The variables
//! are set on the daemon's command only, never in this process.

mod common;

use common::fake_upstream::{fixtures, refused_base_url, FakeUpstream};
use common::forward_proxy::ForwardProxy;
use common::process::*;
use common::providers_toml;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_calls_go_through_http_proxy_unless_no_proxy_covers_the_host() {
    let chat = FakeUpstream::always(fixtures::openai_chat()).await;
    let proxy = ForwardProxy::start().await;
    let setup = Setup::new("", &providers_toml(&chat.base_url(), &refused_base_url()));
    let proxy_url = proxy.url().replace("http://", "http://user:p%40ss@");

    {
        let _daemon = tokio::task::block_in_place(|| {
            setup.serve_with_env("proxied", &[("HTTP_PROXY", &proxy_url)])
        });
        let out = tokio::task::block_in_place(|| {
            setup.ask("complete", "openai", &["--no-cache"], "Hello")
        });
        assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
        assert_eq!(stdout(&out), format!("{}\n", fixtures::HELLO));
    }
    let seen = proxy.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(
        seen[0].request_line,
        format!("POST http://{}/v1/chat/completions HTTP/1.1", chat.addr()),
        "absolute-form to the proxy"
    );
    // base64("user:p@ss")
    assert_eq!(
        seen[0].proxy_authorization.as_deref(),
        Some("Basic dXNlcjpwQHNz")
    );
    assert_eq!(chat.calls(), 1, "the proxy forwarded it");
    let sent = chat.last_request().expect("forwarded request");
    assert_eq!(sent.header("proxy-authorization"), None);

    {
        let _daemon = tokio::task::block_in_place(|| {
            setup.serve_with_env(
                "direct",
                &[
                    ("http_proxy", &proxy_url),
                    ("no_proxy", "localhost,127.0.0.0/8"),
                ],
            )
        });
        let out = tokio::task::block_in_place(|| {
            setup.ask("complete", "openai", &["--no-cache"], "Hello")
        });
        assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    }
    assert_eq!(proxy.seen().len(), 1, "NO_PROXY: the proxy was not used");
    assert_eq!(chat.calls(), 2, "the call went direct");
}
