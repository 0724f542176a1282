//! `POST /api/v1/gc[?dry_run=true]`: run garbage collection now, with the
//! configured policy, and report what was (or would be) freed.

use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use crate::api::query::Query;
use crate::auth::Access;
use crate::registry::Registry;

pub async fn run(
    State(registry): State<Registry>,
    Extension(access): Extension<Access>,
    RawQuery(q): RawQuery,
) -> Response {
    if let Err(e) = access.require_admin() {
        return e.into_response();
    }
    let query = Query::parse(q.as_deref());
    let dry_run = matches!(query.get("dry_run"), Some("true" | "1"));
    let policy = registry.settings().gc.clone();
    match registry.collect_garbage(&policy, dry_run).await {
        Ok(report) => Json(report).into_response(),
        Err(e) => e.into_response(),
    }
}
