//! `/v2/<name>/blobs/uploads/[<id>]`: start (POST, with monolithic push and
//! mounts), chunk (PATCH), finish (PUT), status (GET) and cancel (DELETE).

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::query::Query;
use super::request::{UploadBody, header_str};
use super::responses::{BlobCreated, UploadCancelled, UploadProgress};
use crate::auth::{Access, Action};
use crate::error::{Error, Result};
use crate::oci::{Digest, RepoName, UploadId};
use crate::registry::Registry;
use crate::registry::uploads::{ChunkRange, MountOutcome, UploadStatus};

fn progress(
    registry: &Registry,
    repo: &RepoName,
    s: UploadStatus,
    status: StatusCode,
) -> UploadProgress {
    UploadProgress {
        repo: repo.clone(),
        id: s.id,
        offset: s.offset,
        status,
        chunk_min_length: Some(registry.settings().chunk_min_length).filter(|n| *n > 0),
    }
}

fn digest_param(query: &Query) -> Result<Digest> {
    let d = query
        .get("digest")
        .ok_or_else(|| Error::DigestInvalid("the digest query parameter is required".into()))?;
    Ok(Digest::parse(d)?)
}

fn chunk_range(headers: &HeaderMap) -> Result<Option<ChunkRange>> {
    header_str(headers, header::CONTENT_RANGE)
        .map(ChunkRange::parse)
        .transpose()
}

/// POST: `?mount=&from=` mounts, `?digest=` pushes the body whole, and
/// anything else opens a session.
pub async fn start(
    registry: &Registry,
    access: &Access,
    repo: &RepoName,
    query: &Query,
    body: Body,
) -> Result<Response> {
    let owner = access.user();
    // A mount reads only from a repository the caller may pull.
    let may_read = |r: &RepoName| access.allows(r, Action::Pull);
    if let Some(mount) = query.get("mount") {
        let digest = Digest::parse(mount)?;
        // A `from` that is not a valid name holds nothing: the mount falls back
        // to an upload session, as any mount that cannot be done.
        let outcome = match query.get("from").map(RepoName::parse) {
            Some(Err(_)) => MountOutcome::Started(registry.start_upload(repo, owner).await?),
            Some(Ok(from)) => {
                registry
                    .mount_blob(repo, &digest, Some(from), &may_read, owner)
                    .await?
            }
            None => {
                registry
                    .mount_blob(repo, &digest, None, &may_read, owner)
                    .await?
            }
        };
        return Ok(match outcome {
            MountOutcome::Mounted { digest } => BlobCreated {
                repo: repo.clone(),
                digest,
            }
            .into_response(),
            MountOutcome::Started(s) => {
                progress(registry, repo, s, StatusCode::ACCEPTED).into_response()
            }
        });
    }
    if query.get("digest").is_some() {
        let body = UploadBody::new(body);
        let pushed = async {
            let digest = digest_param(query)?;
            registry
                .push_blob(repo, &digest, owner, body.stream())
                .await
                .map(|()| digest)
        }
        .await;
        let digest = body.answer(pushed).await?;
        return Ok(BlobCreated {
            repo: repo.clone(),
            digest,
        }
        .into_response());
    }
    let status = registry.start_upload(repo, owner).await?;
    Ok(progress(registry, repo, status, StatusCode::ACCEPTED).into_response())
}

pub async fn patch(
    registry: &Registry,
    repo: &RepoName,
    id: UploadId,
    headers: &HeaderMap,
    body: Body,
) -> Result<UploadProgress> {
    let body = UploadBody::new(body);
    let appended = async {
        let range = chunk_range(headers)?;
        registry.append_chunk(repo, &id, range, body.stream()).await
    }
    .await;
    let status = body.answer(appended).await?;
    Ok(progress(registry, repo, status, StatusCode::ACCEPTED))
}

pub async fn finish(
    registry: &Registry,
    repo: &RepoName,
    id: UploadId,
    query: &Query,
    headers: &HeaderMap,
    body: Body,
) -> Result<BlobCreated> {
    let body = UploadBody::new(body);
    let finished = async {
        let digest = digest_param(query)?;
        let range = chunk_range(headers)?;
        registry
            .finish_upload(repo, &id, &digest, range, body.stream())
            .await
            .map(|()| digest)
    }
    .await;
    let digest = body.answer(finished).await?;
    Ok(BlobCreated {
        repo: repo.clone(),
        digest,
    })
}

pub async fn status(registry: &Registry, repo: &RepoName, id: UploadId) -> Result<UploadProgress> {
    let status = registry.upload_status(repo, &id).await?;
    Ok(progress(registry, repo, status, StatusCode::NO_CONTENT))
}

pub async fn cancel(registry: &Registry, repo: &RepoName, id: UploadId) -> Result<UploadCancelled> {
    registry.cancel_upload(repo, &id).await?;
    Ok(UploadCancelled)
}
