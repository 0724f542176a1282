//! Reading request bodies and headers the way the handlers need them.

use axum::body::Body;
use axum::http::{HeaderMap, header};
use bytes::Bytes;
use futures_util::{Stream, TryStreamExt};
use http_body_util::BodyExt;

use crate::error::{Error, Result};

/// The body as a stream of chunks; a dropped connection becomes an error that
/// aborts whatever the bytes were being written to.
pub fn body_stream(body: Body) -> impl Stream<Item = Result<Bytes>> + Send {
    TryStreamExt::map_err(body.into_data_stream(), |e| {
        Error::BlobUploadInvalid(format!("request body interrupted: {e}"))
    })
}

/// Reads a body of at most `limit` bytes into memory (manifests).
pub async fn body_bytes(headers: &HeaderMap, body: Body, limit: u64) -> Result<Bytes> {
    if content_length(headers).is_some_and(|n| n > limit) {
        return Err(Error::ManifestTooLarge { limit });
    }
    let limited = http_body_util::Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX));
    match limited.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(Error::ManifestTooLarge { limit })
        }
        Err(e) => Err(Error::ManifestInvalid(format!(
            "request body interrupted: {e}"
        ))),
    }
}

pub fn header_str(headers: &HeaderMap, name: impl header::AsHeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    header_str(headers, header::CONTENT_LENGTH).and_then(|v| v.parse().ok())
}
