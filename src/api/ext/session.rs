//! `GET /api/v1/session`: who the caller is (null when anonymous), whether
//! the registry asks for credentials at all, and whether anyone may pull
//! without them: `/v2/` always challenges anonymous callers (so that `docker
//! login` finds the realm), so a page cannot learn this from there.

use axum::Json;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::auth::Access;

pub fn show(access: &Access) -> Response {
    Json(json!({
        "user": access.user(),
        "authentication": !matches!(access, Access::Open),
        "anonymousPull": access.anonymous_pull(),
    }))
    .into_response()
}
