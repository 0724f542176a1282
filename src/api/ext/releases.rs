//! `/api/v1/repositories/{repository}/...`: promote, rollback, tag history
//! (paginated, or `?at=` a time) and release notes between two versions.

use axum::Json;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{Method, Request};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::{json_body, raw_rest};
use crate::api::query::Query;
use crate::auth::{Access, Action};
use crate::error::{Error, Result};
use crate::oci::{Digest, Reference, RepoName, Tag};
use crate::registry::Actor;
use crate::registry::HistoryEntry;
use crate::registry::Registry;
use crate::time::rfc3339;

const PREFIX: &str = "/api/v1/repositories/";
/// Largest history page.
const MAX_HISTORY_PAGE: usize = 1000;

#[derive(Debug, PartialEq, Eq)]
enum Route {
    Promote(RepoName),
    Rollback(RepoName),
    History(RepoName, Tag),
    Diff(RepoName),
}

fn route(rest: &str) -> Result<Route> {
    let unknown = || Error::RouteUnknown;
    if let Some(repo) = rest.strip_suffix("/promote") {
        return Ok(Route::Promote(RepoName::parse(repo)?));
    }
    if let Some(repo) = rest.strip_suffix("/rollback") {
        return Ok(Route::Rollback(RepoName::parse(repo)?));
    }
    if let Some(repo) = rest.strip_suffix("/diff") {
        return Ok(Route::Diff(RepoName::parse(repo)?));
    }
    let before = rest.strip_suffix("/history").ok_or_else(unknown)?;
    let (repo, tag) = before.rsplit_once("/tags/").ok_or_else(unknown)?;
    Ok(Route::History(RepoName::parse(repo)?, Tag::parse(tag)?))
}

pub async fn dispatch(
    State(registry): State<Registry>,
    RawQuery(q): RawQuery,
    request: Request<Body>,
) -> Response {
    let query = Query::parse(q.as_deref());
    let method = request.method().clone();
    let access = request
        .extensions()
        .get::<Access>()
        .cloned()
        .unwrap_or(Access::Open);
    let rest = raw_rest(request.uri(), PREFIX);
    let route = rest.and_then(route).and_then(|r| {
        // Moving environment tags is its own right, so that "may push but not
        // promote to production" can be said; reading history needs pull.
        match &r {
            Route::Promote(repo) | Route::Rollback(repo) => {
                access.require(repo, Action::Promote)?
            }
            Route::History(repo, _) | Route::Diff(repo) => access.require(repo, Action::Pull)?,
        }
        Ok(r)
    });
    let actor = Actor {
        name: access.user().map(str::to_owned),
        reason: None,
    };
    let result = match (route, method) {
        (Ok(Route::Promote(repo)), Method::POST) => {
            promote(&registry, repo, actor, request.into_body()).await
        }
        (Ok(Route::Rollback(repo)), Method::POST) => {
            rollback(&registry, repo, actor, request.into_body()).await
        }
        (Ok(Route::History(repo, tag)), Method::GET) => history(&registry, repo, tag, &query).await,
        (Ok(Route::Diff(repo)), Method::GET) => diff(&registry, repo, &query).await,
        (Ok(Route::Promote(_) | Route::Rollback(_)), _) => {
            Err(Error::MethodNotAllowed { allow: "POST" })
        }
        (Ok(_), _) => Err(Error::MethodNotAllowed { allow: "GET" }),
        (Err(e), _) => Err(e),
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

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

async fn promote(
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

async fn rollback(
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

async fn history(registry: &Registry, repo: RepoName, tag: Tag, query: &Query) -> Result<Response> {
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
    let mut response =
        Json(json!({ "repository": repo.as_str(), "tag": tag.as_str(), "history": page }))
            .into_response();
    if more && let Some(last) = entries.get(n - 1) {
        let link = format!(
            "<{PREFIX}{repo}/tags/{tag}/history?n={n}&before={}>; rel=\"next\"",
            last.id
        );
        if let Ok(v) = axum::http::HeaderValue::from_str(&link) {
            response.headers_mut().insert(axum::http::header::LINK, v);
        }
    }
    Ok(response)
}

async fn diff(registry: &Registry, repo: RepoName, query: &Query) -> Result<Response> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_parse_from_the_right() {
        let r = |s: &str| RepoName::parse(s).expect("name");
        assert_eq!(route("a/b/promote").ok(), Some(Route::Promote(r("a/b"))));
        assert_eq!(route("a/rollback").ok(), Some(Route::Rollback(r("a"))));
        assert_eq!(route("a/b/diff").ok(), Some(Route::Diff(r("a/b"))));
        assert_eq!(
            route("m/tags/x/tags/production/history").ok(),
            Some(Route::History(
                r("m/tags/x"),
                Tag::parse("production").expect("tag")
            ))
        );
        assert!(route("a/b").is_err());
        assert!(route("A/promote").is_err());
    }
}
