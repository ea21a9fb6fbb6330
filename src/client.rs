//! The CLI's client for a running daemon: HTTP/1.1 over its Unix socket (hyperlocal).

use std::path::{Path, PathBuf};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyperlocal::{UnixClientExt, UnixConnector, Uri};

/// Talking to the daemon failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach promptd at {socket}: {message} (is `promptd serve` running? --socket or PROMPTD_SOCKET choose the socket)")]
    Connect { socket: PathBuf, message: String },
    #[error("reading the answer from promptd: {0}")]
    Read(String),
    #[error("{0}")]
    Encode(String),
}

/// A client bound to one daemon socket.
pub struct DaemonClient {
    socket: PathBuf,
    http: Client<UnixConnector, Full<Bytes>>,
}

impl DaemonClient {
    pub fn new(socket: &Path) -> Self {
        DaemonClient {
            socket: socket.to_owned(),
            http: Client::unix(),
        }
    }

    /// Send a request and return the response with its body still streaming.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<Response<Incoming>, ClientError> {
        let uri: hyper::Uri = Uri::new(&self.socket, path).into();
        let mut builder = Request::builder().method(method).uri(uri);
        if body.is_some() {
            builder = builder.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let request = builder
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| ClientError::Encode(e.to_string()))?;
        self.http
            .request(request)
            .await
            .map_err(|e| ClientError::Connect {
                socket: self.socket.clone(),
                message: crate::error_chain(&e),
            })
    }

    /// Send a request and collect the whole body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let response = self.send(method, path, body).await?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| ClientError::Read(e.to_string()))?
            .to_bytes();
        Ok((status, bytes))
    }
}
