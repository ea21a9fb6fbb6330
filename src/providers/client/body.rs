//! Reading an upstream's answer body within bounds: a whole answer up to the provider's
//! `max_response_bytes` (over it the call fails without reading the rest), an error body only
//! as far as its head ([`ERROR_HEAD_BYTES`]), enough for its message.

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Limited};
use hyper::body::Body;
use hyper::Response;

use super::super::upstream_error::upstream_error;
use super::super::{ProviderError, ProviderKind};
use crate::retry;

/// What is read of a non-2xx answer's body: an error message is far shorter; the rest is not
/// read (the connection is dropped with it).
pub(super) const ERROR_HEAD_BYTES: usize = 64 * 1024;

/// The whole body of an answer, refused once it passes `limit` bytes (without reading on).
pub(crate) async fn read_body<B>(
    response: Response<B>,
    limit: usize,
) -> Result<Bytes, ProviderError>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let too_large = || {
        ProviderError::Protocol(format!(
            "the answer is larger than max_response_bytes ({limit} bytes)"
        ))
    };
    let body = response.into_body();
    if body
        .size_hint()
        .exact()
        .is_some_and(|len| len > limit as u64)
    {
        return Err(too_large());
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) => Err(ProviderError::Unreachable(format!(
            "reading the answer: {}",
            crate::error_chain(e.as_ref())
        ))),
    }
}

/// At most the first `limit` bytes of `body` (a body that fails midway gives what came).
async fn read_head<B>(mut body: B, limit: usize) -> Bytes
where
    B: Body<Data = Bytes> + Unpin,
{
    let mut head = BytesMut::new();
    while head.len() < limit {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    let take = data.len().min(limit - head.len());
                    head.extend_from_slice(&data[..take]);
                }
            }
            Some(Err(_)) | None => break,
        }
    }
    head.freeze()
}

/// The error of a non-2xx answer from a provider of `kind`: its status, what the upstream said
/// (from the body's head, in `kind`'s shape), its `Retry-After`.
pub(super) async fn status_error<B>(kind: ProviderKind, response: Response<B>) -> ProviderError
where
    B: Body<Data = Bytes> + Unpin,
{
    let status = response.status().as_u16();
    let retry_after = retry::retry_after(response.headers());
    let head = read_head(response.into_body(), ERROR_HEAD_BYTES).await;
    ProviderError::Status {
        status,
        error: Box::new(upstream_error(kind, status, &head)),
        retry_after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{Full, StreamBody};
    use hyper::body::Frame;

    /// A chunked body of `frames` frames of 1 KiB, and how many were read.
    fn counted(
        frames: usize,
    ) -> (
        impl Body<Data = Bytes, Error = std::io::Error> + Unpin,
        std::sync::Arc<std::sync::atomic::AtomicUsize>,
    ) {
        let read = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = std::sync::Arc::clone(&read);
        let stream = futures_util::stream::iter((0..frames).map(move |_| {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok::<_, std::io::Error>(Frame::data(Bytes::from(vec![b'x'; 1024])))
        }));
        (StreamBody::new(stream), read)
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused_without_reading_the_rest() {
        let (body, read) = counted(1000);
        let err = read_body(Response::new(body), 10 * 1024)
            .await
            .expect_err("over the limit");
        assert!(
            err.to_string().contains("max_response_bytes (10240 bytes)"),
            "{err}"
        );
        assert!(read.load(std::sync::atomic::Ordering::SeqCst) <= 11);
        let known = Response::new(Full::new(Bytes::from(vec![b'y'; 100])));
        assert!(read_body(known, 99).await.is_err(), "refused by its length");
        let fits = Response::new(Full::new(Bytes::from_static(b"{}")));
        assert_eq!(read_body(fits, 2).await.expect("fits"), "{}");
    }

    #[tokio::test]
    async fn an_error_body_is_read_only_as_far_as_its_head() {
        let (body, read) = counted(10_000);
        let mut response = Response::new(body);
        *response.status_mut() = hyper::StatusCode::BAD_GATEWAY;
        let err = status_error(ProviderKind::OpenAi, response).await;
        assert!(matches!(err, ProviderError::Status { status: 502, .. }));
        assert!(read.load(std::sync::atomic::Ordering::SeqCst) <= ERROR_HEAD_BYTES / 1024);
    }
}
