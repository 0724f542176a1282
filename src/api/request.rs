//! Reading request bodies and headers the way the handlers need them.

use std::sync::{Arc, Mutex};

use axum::body::{Body, BodyDataStream};
use axum::http::{HeaderMap, header};
use bytes::Bytes;
use futures_util::{Stream, StreamExt, TryStreamExt};

use crate::error::{Error, Result};

/// Most of an unread body drained before an error answer.
const DRAIN_LIMIT: u64 = 64 * 1024 * 1024;
/// Longest wait for it.
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(5);

/// A request body that an operation may stop reading early (a chunk out of
/// order is refused before its bytes are read). What is left is drained, up to
/// a bound, before the error is answered: closing a connection with unread
/// bytes resets it, and a client still sending would lose the answer.
pub struct UploadBody(Arc<Mutex<BodyDataStream>>);

impl UploadBody {
    pub fn new(body: Body) -> UploadBody {
        UploadBody(Arc::new(Mutex::new(body.into_data_stream())))
    }

    /// The body as a stream of chunks; a dropped connection becomes an error
    /// that aborts whatever the bytes were being written to.
    pub fn stream(&self) -> impl Stream<Item = Result<Bytes>> + Send + use<> {
        let shared = Arc::clone(&self.0);
        futures_util::stream::poll_fn(move |cx| match shared.lock() {
            Ok(mut body) => body.poll_next_unpin(cx),
            Err(_) => std::task::Poll::Ready(None),
        })
        .map_err(|e| Error::BlobUploadInvalid(format!("request body interrupted: {e}")))
    }

    /// Passes `result` on, first draining the rest of the body if it failed.
    pub async fn answer<T>(self, result: Result<T>) -> Result<T> {
        if result.is_err() {
            let mut left = DRAIN_LIMIT;
            let drain = async {
                let mut rest = std::pin::pin!(self.stream());
                while let Some(Ok(chunk)) = rest.next().await {
                    left = left.saturating_sub(chunk.len() as u64);
                    if left == 0 {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
        }
        result
    }
}

/// Reads a body of at most `limit` bytes into memory (manifests). A body
/// over the limit is drained (up to a bound) before it is refused, so that
/// a client or proxy still sending reads the 413 instead of a reset.
pub async fn body_bytes(headers: &HeaderMap, body: Body, limit: u64) -> Result<Bytes> {
    let mut stream = body.into_data_stream();
    let mut kept = bytes::BytesMut::new();
    let mut over = content_length(headers).is_some_and(|n| n > limit);
    while !over {
        match stream.next().await {
            None => return Ok(kept.freeze()),
            Some(Err(e)) => {
                return Err(Error::ManifestInvalid(format!(
                    "request body interrupted: {e}"
                )));
            }
            Some(Ok(chunk)) if (kept.len() + chunk.len()) as u64 > limit => over = true,
            Some(Ok(chunk)) => kept.extend_from_slice(&chunk),
        }
    }
    drop(kept);
    let mut left = DRAIN_LIMIT;
    let drain = async {
        while let Some(Ok(chunk)) = stream.next().await {
            left = left.saturating_sub(chunk.len() as u64);
            if left == 0 {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
    Err(Error::ManifestTooLarge { limit })
}

pub fn header_str(headers: &HeaderMap, name: impl header::AsHeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    header_str(headers, header::CONTENT_LENGTH).and_then(|v| v.parse().ok())
}
