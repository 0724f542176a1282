//! `GET /api/v1/events?after=<id>&n=`: the event log, oldest first, in CNCF
//! Distribution's notification envelope.

use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::json;

use crate::api::query::Query;
use crate::auth::{Access, Action};
use crate::error::{Error, Result};
use crate::oci::RepoName;
use crate::registry::Registry;
use crate::registry::events::envelope_event;

const MAX_PAGE: usize = 1000;

pub async fn list(
    State(registry): State<Registry>,
    Extension(access): Extension<Access>,
    RawQuery(q): RawQuery,
) -> Response {
    inner(&registry, &access, &Query::parse(q.as_deref()))
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// Administrators see every event; others only those of repositories they may pull.
async fn inner(registry: &Registry, access: &Access, query: &Query) -> Result<Response> {
    let after = query
        .get("after")
        .map(|a| {
            a.parse::<i64>()
                .map_err(|_| Error::QueryInvalid(format!("after {a:?} is not an event id")))
        })
        .transpose()?
        .unwrap_or(0);
    let n = query.page_size()?.unwrap_or(100).min(MAX_PAGE);
    let all = access.require_admin().is_ok();
    let events: Vec<_> = registry
        .events_after(after, n)
        .await?
        .into_iter()
        .filter(|e| all || RepoName::parse(&e.repo).is_ok_and(|r| access.allows(&r, Action::Pull)))
        .collect();
    Ok(
        Json(json!({ "events": events.iter().map(envelope_event).collect::<Vec<_>>() }))
            .into_response(),
    )
}
