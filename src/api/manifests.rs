//! `/v2/<name>/manifests/<reference>`: HEAD, GET, PUT and DELETE.

use axum::body::Body;
use axum::http::{HeaderMap, header};

use super::query::Query;
use super::request::{body_bytes, header_str};
use super::responses::{Deleted, ManifestContent, ManifestCreated};
use crate::auth::Access;
use crate::error::Result;
use crate::oci::{Reference, RepoName, Tag};
use crate::registry::Actor;
use crate::registry::Registry;

pub async fn head(
    registry: &Registry,
    repo: &RepoName,
    reference: Reference,
) -> Result<ManifestContent> {
    let m = registry.stat_manifest(repo, &reference).await?;
    Ok(ManifestContent {
        digest: m.digest,
        media_type: m.media_type,
        size: m.size,
        body: None,
    })
}

pub async fn get(
    registry: &Registry,
    repo: &RepoName,
    reference: Reference,
) -> Result<ManifestContent> {
    let (m, bytes) = registry.read_manifest(repo, &reference).await?;
    Ok(ManifestContent {
        digest: m.digest,
        media_type: m.media_type,
        size: m.size,
        body: Some(bytes),
    })
}

/// PUT, with any extra `?tag=` parameters set in the same transaction.
pub async fn put(
    registry: &Registry,
    access: &Access,
    repo: &RepoName,
    reference: Reference,
    query: &Query,
    headers: &HeaderMap,
    body: Body,
) -> Result<ManifestCreated> {
    let extra_tags = query
        .all("tag")
        .map(Tag::parse)
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let bytes = body_bytes(headers, body, registry.settings().max_manifest_bytes).await?;
    let content_type = header_str(headers, header::CONTENT_TYPE);
    let pushed = registry
        .push_manifest(
            repo,
            &reference,
            content_type,
            bytes,
            extra_tags,
            actor(access),
        )
        .await?;
    Ok(ManifestCreated {
        repo: repo.clone(),
        digest: pushed.digest,
        subject: pushed.subject,
        tags: pushed.tags,
    })
}

pub async fn delete(
    registry: &Registry,
    access: &Access,
    repo: &RepoName,
    reference: Reference,
) -> Result<Deleted> {
    registry
        .delete_manifest(repo, &reference, actor(access))
        .await?;
    Ok(Deleted)
}

/// Who history and events name for this request.
fn actor(access: &Access) -> Actor {
    Actor {
        name: access.user().map(str::to_owned),
        reason: None,
    }
}
