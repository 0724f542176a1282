//! `/v2/<name>/blobs/<digest>`: HEAD, GET (with Range) and DELETE.

use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};

use super::request::header_str;
use super::responses::{BlobContent, BlobRedirect, Deleted};
use crate::error::Result;
use crate::oci::{Digest, RepoName};
use crate::registry::Registry;
use crate::registry::blobs::ByteRange;

pub async fn head(registry: &Registry, repo: &RepoName, digest: Digest) -> Result<BlobContent> {
    let size = registry.stat_blob(repo, &digest).await?;
    Ok(BlobContent {
        digest,
        size,
        range: None,
        body: None,
    })
}

/// The bytes, or with `[storage] redirect` a 307 to a presigned URL.
pub async fn get(
    registry: &Registry,
    repo: &RepoName,
    digest: Digest,
    headers: &HeaderMap,
) -> Result<Response> {
    if let Some(url) = registry.blob_redirect(repo, &digest).await? {
        return Ok(BlobRedirect { digest, url }.into_response());
    }
    let range = header_str(headers, header::RANGE).and_then(ByteRange::parse);
    let read = registry.read_blob(repo, &digest, range).await?;
    Ok(BlobContent {
        digest,
        size: read.size,
        range: read.range,
        body: Some(read.body),
    }
    .into_response())
}

pub async fn delete(registry: &Registry, repo: &RepoName, digest: Digest) -> Result<Deleted> {
    registry.delete_blob(repo, &digest).await?;
    Ok(Deleted)
}
