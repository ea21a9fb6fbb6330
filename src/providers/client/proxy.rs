//! Provider calls through the proxy the environment names, with the rules reqwest applied (its
//! matcher is hyper-util's, used here): `HTTP_PROXY` for an http upstream, `HTTPS_PROXY` for an
//! https one, else `ALL_PROXY`; none for a host `NO_PROXY` covers (a host, a domain and its
//! subdomains, an IP, a CIDR, or `*`); uppercase names before lowercase; none at all under CGI
//! (`REQUEST_METHOD` set). The decision is made once, when the provider is built: a provider
//! without a proxy keeps the direct client.
//!
//! How a call goes through the proxy:
//! - an https upstream through an http(s) proxy: a `CONNECT` tunnel, then TLS to the upstream
//!   inside it;
//! - an http upstream through an http(s) proxy: the request in absolute-form to the proxy (as
//!   reqwest did; many proxies allow `CONNECT` to port 443 only), with `Proxy-Authorization`;
//! - a `socks4`, `socks4a`, `socks5` or `socks5h` proxy: a SOCKS handshake, then TLS or plain
//!   HTTP inside it (`socks5`/`socks4` resolve the upstream's name locally, `socks5h`/`socks4a`
//!   leave it to the proxy).
//!
//! Credentials come from the proxy URL's userinfo: `Proxy-Authorization: Basic` for an http(s)
//! proxy, the username and password of SOCKS5.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::header::{HeaderMap, HeaderValue, USER_AGENT};
use hyper::Uri;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::proxy::{SocksV4, SocksV5, Tunnel};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::proxy::matcher::{Intercept, Matcher};
use tower_service::Service;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The proxy variables of an environment: the input of the proxy decision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyEnv {
    all: String,
    http: String,
    https: String,
    no: String,
    /// `REQUEST_METHOD` is set: a CGI program, where `HTTP_PROXY` may come from a request's
    /// `Proxy` header; no proxy is used.
    cgi: bool,
}

impl ProxyEnv {
    /// The process's variables.
    pub fn from_env() -> Self {
        Self::from_vars(
            std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
        )
    }

    /// The variables among `vars`; for each, the uppercase name before the lowercase one.
    pub fn from_vars<I, K, V>(vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let vars: HashMap<String, String> = vars
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        let first = |name: &str| {
            vars.get(name)
                .or_else(|| vars.get(&name.to_ascii_lowercase()))
                .cloned()
                .unwrap_or_default()
        };
        ProxyEnv {
            all: first("ALL_PROXY"),
            http: first("HTTP_PROXY"),
            https: first("HTTPS_PROXY"),
            no: first("NO_PROXY"),
            cgi: vars.contains_key("REQUEST_METHOD"),
        }
    }

    /// The proxy of calls to `dst`, if any.
    pub fn intercept(&self, dst: &Uri) -> Option<Intercept> {
        if self.cgi {
            return None;
        }
        Matcher::builder()
            .all(&self.all)
            .http(&self.http)
            .https(&self.https)
            .no(&self.no)
            .build()
            .intercept(dst)
    }
}

/// The TLS side of a connector: the provider's roots and crypto, http or https.
pub(super) type TlsBuilder =
    hyper_rustls::HttpsConnectorBuilder<hyper_rustls::builderstates::WantsProtocols1>;

/// The connector of a provider whose calls go through a proxy.
#[derive(Clone)]
pub(super) enum ProxyConnector {
    /// To an http(s) proxy, for requests in absolute-form.
    Forward {
        proxy: Uri,
        to_proxy: HttpsConnector<HttpConnector>,
    },
    /// A `CONNECT` tunnel through an http(s) proxy, then TLS (or plain HTTP) inside it.
    Tunnel(HttpsConnector<Tunnel<HttpsConnector<HttpConnector>>>),
    Socks5(HttpsConnector<SocksV5<HttpConnector>>),
    Socks4(HttpsConnector<SocksV4<HttpConnector>>),
}

/// How the calls to `dst` go through `proxy`: the connector, and the `Proxy-Authorization` of
/// each request (requests in absolute-form only). `tls()` gives a fresh TLS builder.
pub(super) fn connector(
    dst: &Uri,
    proxy: &Intercept,
    tcp: HttpConnector,
    tls: impl Fn() -> Result<TlsBuilder, String>,
    user_agent: &HeaderValue,
) -> Result<(ProxyConnector, Option<HeaderValue>), String> {
    let proxy_uri = proxy.uri().clone();
    let scheme = proxy_uri.scheme_str().unwrap_or("http").to_owned();
    let to_upstream = || -> Result<_, String> { Ok(tls()?.enable_all_versions()) };
    match scheme.as_str() {
        "socks5" | "socks5h" => {
            let mut socks = SocksV5::new(proxy_uri, tcp).local_dns(scheme == "socks5");
            if let Some((user, pass)) = proxy.raw_auth() {
                socks = socks.with_auth(user.to_owned(), pass.to_owned());
            }
            Ok((
                ProxyConnector::Socks5(to_upstream()?.wrap_connector(socks)),
                None,
            ))
        }
        "socks4" | "socks4a" => {
            let socks = SocksV4::new(proxy_uri, tcp).local_dns(scheme == "socks4");
            Ok((
                ProxyConnector::Socks4(to_upstream()?.wrap_connector(socks)),
                None,
            ))
        }
        // http or https: the matcher takes no other scheme. TLS to an https proxy offers
        // HTTP/1.1 only: a tunnel is opened, and absolute-form requests are sent, in HTTP/1.1.
        _ => {
            let to_proxy = tls()?.enable_http1().wrap_connector(tcp);
            if dst.scheme_str() == Some("https") {
                let mut tunnel = Tunnel::new(proxy_uri, to_proxy);
                let mut headers = HeaderMap::new();
                headers.insert(USER_AGENT, user_agent.clone());
                tunnel = tunnel.with_headers(headers);
                if let Some(auth) = proxy.basic_auth() {
                    tunnel = tunnel.with_auth(auth.clone());
                }
                Ok((
                    ProxyConnector::Tunnel(to_upstream()?.wrap_connector(tunnel)),
                    None,
                ))
            } else {
                Ok((
                    ProxyConnector::Forward {
                        proxy: proxy_uri,
                        to_proxy,
                    },
                    proxy.basic_auth().cloned(),
                ))
            }
        }
    }
}

/// `dst` with its port written out (the SOCKS connectors take a missing one for 443).
fn with_port(dst: Uri) -> Uri {
    if dst.port().is_some() {
        return dst;
    }
    let port = if dst.scheme_str() == Some("https") {
        443
    } else {
        80
    };
    let (Some(scheme), Some(host)) = (dst.scheme_str(), dst.host()) else {
        return dst;
    };
    format!("{scheme}://{host}:{port}").parse().unwrap_or(dst)
}

async fn connect<S>(mut svc: S, dst: Uri) -> Result<S::Response, BoxError>
where
    S: Service<Uri>,
    S::Error: Into<BoxError>,
{
    std::future::poll_fn(|cx| svc.poll_ready(cx))
        .await
        .map_err(Into::into)?;
    svc.call(dst).await.map_err(Into::into)
}

impl Service<Uri> for ProxyConnector {
    type Response = ProxiedConn;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<ProxiedConn, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // Each call readies its own clone.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let (io, forward): (Box<dyn Io>, bool) = match this {
                ProxyConnector::Forward { proxy, to_proxy } => {
                    (Box::new(connect(to_proxy, proxy).await?), true)
                }
                ProxyConnector::Tunnel(c) => (Box::new(connect(c, dst).await?), false),
                ProxyConnector::Socks5(c) => (Box::new(connect(c, with_port(dst)).await?), false),
                ProxyConnector::Socks4(c) => (Box::new(connect(c, with_port(dst)).await?), false),
            };
            Ok(ProxiedConn { io, forward })
        })
    }
}

trait Io: hyper::rt::Read + hyper::rt::Write + Connection + Send + Unpin + 'static {}
impl<T: hyper::rt::Read + hyper::rt::Write + Connection + Send + Unpin + 'static> Io for T {}

/// A connection made through a proxy; a connection to the proxy itself (absolute-form
/// requests) says so to the client.
pub(super) struct ProxiedConn {
    io: Box<dyn Io>,
    forward: bool,
}

impl Connection for ProxiedConn {
    fn connected(&self) -> Connected {
        let connected = self.io.connected();
        if self.forward {
            connected.proxy(true)
        } else {
            connected
        }
    }
}

impl hyper::rt::Read for ProxiedConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for ProxiedConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut *self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut *self.io).poll_write_vectored(cx, bufs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> ProxyEnv {
        ProxyEnv::from_vars(vars.iter().copied())
    }

    fn proxy_of(env: &ProxyEnv, url: &str) -> Option<String> {
        env.intercept(&url.parse().expect("uri"))
            .map(|i| i.uri().to_string())
    }

    #[test]
    fn the_scheme_picks_the_variable_and_all_proxy_is_the_fallback() {
        let e = env(&[
            ("HTTP_PROXY", "http://hp:1"),
            ("HTTPS_PROXY", "http://sp:2"),
            ("ALL_PROXY", "http://ap:3"),
        ]);
        assert_eq!(
            proxy_of(&e, "http://api.x/v1").as_deref(),
            Some("http://hp:1/")
        );
        assert_eq!(
            proxy_of(&e, "https://api.x/v1").as_deref(),
            Some("http://sp:2/")
        );
        let e = env(&[("HTTP_PROXY", "http://hp:1"), ("all_proxy", "http://ap:3")]);
        assert_eq!(
            proxy_of(&e, "https://api.x/v1").as_deref(),
            Some("http://ap:3/")
        );
        let e = env(&[("HTTPS_PROXY", "http://sp:2")]);
        assert_eq!(
            proxy_of(&e, "http://api.x/v1"),
            None,
            "https_proxy is not for http"
        );
        assert_eq!(proxy_of(&ProxyEnv::default(), "https://api.x/v1"), None);
    }

    #[test]
    fn lowercase_names_count_and_uppercase_wins() {
        let e = env(&[("http_proxy", "http://lower:1")]);
        assert_eq!(
            proxy_of(&e, "http://a/").as_deref(),
            Some("http://lower:1/")
        );
        let e = env(&[
            ("http_proxy", "http://lower:1"),
            ("HTTP_PROXY", "http://upper:2"),
        ]);
        assert_eq!(
            proxy_of(&e, "http://a/").as_deref(),
            Some("http://upper:2/")
        );
        let e = env(&[("HTTP_PROXY", "http://p:1"), ("no_proxy", "a")]);
        assert_eq!(proxy_of(&e, "http://a/"), None);
    }

    #[test]
    fn no_proxy_covers_hosts_domains_ips_cidrs_and_star() {
        let e = env(&[
            ("ALL_PROXY", "http://p:1"),
            (
                "NO_PROXY",
                "localhost, .internal.corp,10.0.0.1, 192.168.0.0/16",
            ),
        ]);
        for direct in [
            "http://localhost:11434/v1",
            "https://llm.internal.corp/v1",
            "https://internal.corp/v1",
            "http://10.0.0.1/v1",
            "http://192.168.4.5:8000/v1",
        ] {
            assert_eq!(proxy_of(&e, direct), None, "{direct}");
        }
        for proxied in [
            "https://api.openai.com/v1",
            "https://notinternal.corp/v1",
            "http://10.0.0.2/v1",
            "http://127.0.0.1:8000/v1",
        ] {
            assert!(proxy_of(&e, proxied).is_some(), "{proxied}");
        }
        let e = env(&[("ALL_PROXY", "http://p:1"), ("NO_PROXY", "*")]);
        assert_eq!(proxy_of(&e, "https://api.openai.com/v1"), None);
    }

    #[test]
    fn credentials_socks_and_cgi() {
        let e = env(&[("HTTPS_PROXY", "http://Aladdin:open%20sesame@p:1")]);
        let i = e
            .intercept(&"https://a/".parse().expect("uri"))
            .expect("proxied");
        assert_eq!(
            i.uri().to_string(),
            "http://p:1/",
            "no userinfo in the proxy's URI"
        );
        assert_eq!(
            i.basic_auth().expect("basic"),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        let e = env(&[("ALL_PROXY", "socks5h://u:pw@s:1080")]);
        let i = e
            .intercept(&"https://a/".parse().expect("uri"))
            .expect("proxied");
        assert_eq!(i.uri().scheme_str(), Some("socks5h"));
        assert_eq!(i.raw_auth(), Some(("u", "pw")));
        let e = env(&[("HTTP_PROXY", "http://p:1"), ("REQUEST_METHOD", "GET")]);
        assert_eq!(proxy_of(&e, "http://a/"), None, "not under CGI");
    }

    #[test]
    fn socks_destinations_get_their_default_port() {
        assert_eq!(
            with_port("http://a/v1".parse().expect("uri")).to_string(),
            "http://a:80/"
        );
        assert_eq!(
            with_port("https://a".parse().expect("uri")).to_string(),
            "https://a:443/"
        );
        assert_eq!(
            with_port("http://a:8/".parse().expect("uri")).to_string(),
            "http://a:8/"
        );
    }
}
