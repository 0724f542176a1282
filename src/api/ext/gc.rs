//! `POST /api/v1/gc[?dry_run=true]`: run garbage collection now, with the
//! configured policy, and report what was (or would be) freed. Administrators
//! only (see [`super::ExtEndpoint::scope`]).

use axum::Json;
use axum::response::{IntoResponse, Response};

use crate::api::query::Query;
use crate::error::Result;
use crate::registry::Registry;

pub async fn run(registry: &Registry, query: &Query) -> Result<Response> {
    let dry_run = matches!(query.get("dry_run"), Some("true" | "1"));
    let policy = registry.settings().gc.clone();
    let report = registry.collect_garbage(&policy, dry_run).await?;
    Ok(Json(report).into_response())
}
