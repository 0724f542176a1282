//! `/api/v1/repositories/{repository}/...`: promote, rollback, tag history
//! (paginated, or `?at=` a time; the first page also lists the promotions
//! gates refused) and release notes between two versions.

use axum::Json;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::json_body;
use crate::api::query::Query;
use crate::error::{Error, Result};
use crate::oci::{Digest, Reference, RepoName, Tag};
use crate::registry::Actor;
use crate::registry::HistoryEntry;
use crate::registry::Registry;
use crate::time::rfc3339;

const PREFIX: &str = "/api/v1/repositories/";
/// Largest history page.
const MAX_HISTORY_PAGE: usize = 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PromoteRequest {
    reference: String,
    to: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    expect: Option<String>,
}

pub async fn promote(
    registry: &Registry,
    repo: RepoName,
    actor: Actor,
    body: Body,
) -> Result<Response> {
    let req: PromoteRequest = json_body(body).await?;
    let reference = Reference::parse(&req.reference)?;
    let to = Tag::parse(&req.to)?;
    let expect = req.expect.as_deref().map(Digest::parse).transpose()?;
    let actor = Actor {
        reason: req.reason,
        ..actor
    };
    let moved = registry
        .promote(&repo, &reference, &to, expect, actor)
        .await?;
    Ok(Json(moved).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RollbackRequest {
    tag: String,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

pub async fn rollback(
    registry: &Registry,
    repo: RepoName,
    actor: Actor,
    body: Body,
) -> Result<Response> {
    let req: RollbackRequest = json_body(body).await?;
    let tag = Tag::parse(&req.tag)?;
    let to = req.to.as_deref().map(Digest::parse).transpose()?;
    let actor = Actor {
        reason: req.reason,
        ..actor
    };
    let moved = registry.rollback(&repo, &tag, to, actor).await?;
    Ok(Json(moved).into_response())
}

pub async fn history(
    registry: &Registry,
    repo: RepoName,
    tag: Tag,
    query: &Query,
) -> Result<Response> {
    if let Some(at) = query.get("at") {
        let at = chrono::DateTime::parse_from_rfc3339(at)
            .map_err(|e| Error::QueryInvalid(format!("at {at:?} is not an RFC 3339 time: {e}")))?;
        let entry = registry.tag_at(&repo, &tag, at.timestamp_millis()).await?;
        let digest = entry
            .as_ref()
            .and_then(|e| e.new.as_ref())
            .map(Digest::to_string);
        return Ok(Json(json!({
            "repository": repo.as_str(),
            "tag": tag.as_str(),
            "at": at.to_rfc3339(),
            "digest": digest,
            "since": entry.as_ref().map(history_json),
        }))
        .into_response());
    }
    let n = query.page_size()?.unwrap_or(100).min(MAX_HISTORY_PAGE);
    let before = query
        .get("before")
        .map(|b| {
            b.parse::<i64>()
                .map_err(|_| Error::QueryInvalid(format!("before {b:?} is not a history id")))
        })
        .transpose()?;
    let entries = registry.tag_history(&repo, &tag, before, n + 1).await?;
    let more = entries.len() > n;
    let page: Vec<_> = entries.iter().take(n).map(history_json).collect();
    let mut body = json!({ "repository": repo.as_str(), "tag": tag.as_str(), "history": page });
    if before.is_none() {
        // The promotions gates refused, which moved nothing, beside the moves.
        let refused: Vec<_> = registry
            .refusals(&repo, &tag, n)
            .await?
            .iter()
            .map(|e| {
                json!({
                    "id": e.id,
                    "digest": e.digest.as_ref().map(Digest::to_string),
                    "at": rfc3339(e.at_ms),
                    "actor": e.actor,
                    "reason": e.reason,
                })
            })
            .collect();
        body["refused"] = json!(refused);
    }
    let mut response = Json(body).into_response();
    if more && let Some(last) = entries.get(n - 1) {
        let url = format!("{PREFIX}{repo}/tags/{tag}/history?n={n}&before={}", last.id);
        super::link_next(&mut response, &url);
    }
    Ok(response)
}

pub async fn diff(registry: &Registry, repo: RepoName, query: &Query) -> Result<Response> {
    let resolve = |key: &str| {
        let value = query
            .get(key)
            .ok_or_else(|| Error::QueryInvalid(format!("{key} is required (a tag or digest)")))?;
        Ok::<_, Error>(Reference::parse(value)?)
    };
    let (from, to) = (resolve("from")?, resolve("to")?);
    let from = registry.stat_manifest(&repo, &from).await?.digest;
    let to = registry.stat_manifest(&repo, &to).await?.digest;
    Ok(Json(registry.release_notes(&repo, &from, &to).await?).into_response())
}

/// A history entry as the API shows it.
fn history_json(e: &HistoryEntry) -> serde_json::Value {
    json!({
        "id": e.id,
        "from": e.old.as_ref().map(Digest::to_string),
        "to": e.new.as_ref().map(Digest::to_string),
        "at": rfc3339(e.at_ms),
        "actor": e.actor,
        "operation": e.operation,
        "reason": e.reason,
    })
}
