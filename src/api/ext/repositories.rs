//! `GET /api/v1/repositories?q=&n=&last=` and
//! `GET /api/v1/repositories/{repository}/tags?n=&last=`: what the web UI
//! lists, with more than `_catalog` and `tags/list` say (kind, counts,
//! sizes, last push, who moved each tag). Pages go on through `Link`.

use axum::Json;
use axum::response::{IntoResponse, Response};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::json;

use super::link_next;
use crate::api::query::Query;
use crate::auth::{Access, Action};
use crate::error::Result;
use crate::meta::RepoSummary;
use crate::oci::media_type::{IMAGE_CONFIGS, manifest_kind};
use crate::oci::{ManifestKind, RepoName};
use crate::registry::Registry;
use crate::time::rfc3339;

pub async fn list(registry: &Registry, access: &Access, query: &Query) -> Result<Response> {
    let contains = query.get("q").unwrap_or_default().to_owned();
    let visible = |r: &RepoName| access.allows(r, Action::Pull);
    let (page, next) = registry
        .repository_summaries(
            contains.clone(),
            query.page_size()?,
            query.get("last").map(str::to_owned),
            &visible,
        )
        .await?;
    let repositories: Vec<_> = page.iter().map(summary_json).collect();
    let mut response = Json(json!({ "repositories": repositories })).into_response();
    if let Some(last) = next {
        let encode = |s: &str| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
        let url = format!(
            "/api/v1/repositories?q={}&last={}",
            encode(&contains),
            encode(&last)
        );
        link_next(&mut response, &url);
    }
    Ok(response)
}

pub async fn tags(
    registry: &Registry,
    access: &Access,
    repo: RepoName,
    query: &Query,
) -> Result<Response> {
    let n = query.page_size()?;
    let tags = registry
        .tag_details(&repo, n, query.get("last").map(str::to_owned))
        .await?;
    let full = n.is_some_and(|n| tags.len() == n);
    let listed: Vec<_> = tags
        .iter()
        .map(|t| {
            json!({
                "name": t.name,
                "digest": t.digest.to_string(),
                "mediaType": t.media_type,
                "artifactType": t.artifact_type,
                "kind": kind(&t.media_type, t.artifact_type.as_deref()),
                "size": t.size,
                "updated": rfc3339(t.updated_at_ms),
                "by": t.actor,
                "environment": t.environment,
            })
        })
        .collect();
    let mut response = Json(json!({
        "repository": repo.as_str(),
        "tags": listed,
        // What the caller may do here, so that a UI offers only that.
        "may": {
            "push": access.allows(&repo, Action::Push),
            "promote": access.allows(&repo, Action::Promote),
        },
    }))
    .into_response();
    if full && let (Some(last), Some(n)) = (tags.last(), n) {
        link_next(
            &mut response,
            &format!("/api/v1/repositories/{repo}/tags?n={n}&last={}", last.name),
        );
    }
    Ok(response)
}

fn summary_json(s: &RepoSummary) -> serde_json::Value {
    let (media_type, artifact_type) = match &s.latest {
        Some((m, a)) => (Some(m.as_str()), a.as_deref()),
        None => (None, None),
    };
    json!({
        "name": s.name.as_str(),
        "kind": media_type.map(|m| kind(m, artifact_type)),
        "artifactType": artifact_type,
        "tags": s.tags,
        "manifests": s.manifests,
        "size": s.size,
        "lastPush": s.last_push_ms.map(rfc3339),
    })
}

/// `image`, `dataset` or `model`, from a manifest's media and artifact
/// types: images are indexes and manifests whose config is an image
/// config; artifacts naming a dataset are datasets; any other artifact is
/// taken for a model (what else Berth is given to keep).
fn kind(media_type: &str, artifact_type: Option<&str>) -> &'static str {
    match artifact_type {
        None => "image",
        Some(a) if IMAGE_CONFIGS.contains(&a) => "image",
        Some(a) if a.contains("dataset") => "dataset",
        Some(_) if manifest_kind(media_type) == Some(ManifestKind::Index) => "image",
        Some(_) => "model",
    }
}

#[cfg(test)]
mod tests {
    use super::kind;

    #[test]
    fn kinds_follow_media_and_artifact_types() {
        let manifest = "application/vnd.oci.image.manifest.v1+json";
        let cases = [
            (
                manifest,
                Some("application/vnd.oci.image.config.v1+json"),
                "image",
            ),
            ("application/vnd.oci.image.index.v1+json", None, "image"),
            (
                manifest,
                Some("application/vnd.cncf.model.config.v1+json"),
                "model",
            ),
            (
                manifest,
                Some("application/vnd.kitops.modelkit.config.v1+json"),
                "model",
            ),
            (
                manifest,
                Some("application/vnd.example.dataset.v1+json"),
                "dataset",
            ),
        ];
        for (m, a, want) in cases {
            assert_eq!(kind(m, a), want, "{m} {a:?}");
        }
    }
}
