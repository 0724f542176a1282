//! Berth's own JSON API under `/api/v1/`: lineage (and, as they land, release
//! history, promotion and events). Errors use the same JSON error body as `/v2/`.

mod events;
mod gc;
mod lineage;
mod releases;

use axum::Router;
use axum::body::Body;
use axum::http::Uri;
use axum::routing::{any, get, post};
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::registry::Registry;

/// Largest JSON request body accepted.
const MAX_JSON_BODY: usize = 64 * 1024;

pub fn router() -> Router<Registry> {
    Router::new()
        .route("/api/v1/lineage", get(lineage::models))
        .route("/api/v1/lineage/{*rest}", get(lineage::graph))
        .route("/api/v1/repositories/{*rest}", any(releases::dispatch))
        .route("/api/v1/events", get(events::list))
        .route("/api/v1/gc", post(gc::run))
}

/// The raw path after `prefix`; percent-encoding is refused, as for `/v2/`, so
/// that an encoded slash cannot pose as one.
fn raw_rest<'a>(uri: &'a Uri, prefix: &str) -> Result<&'a str> {
    let rest = uri.path().strip_prefix(prefix).ok_or(Error::RouteUnknown)?;
    if rest.contains('%') {
        return Err(Error::NameInvalid(
            "percent-encoded characters are not allowed in paths".into(),
        ));
    }
    Ok(rest)
}

/// A JSON request body, with errors in the API's error format.
async fn json_body<T: DeserializeOwned>(body: Body) -> Result<T> {
    let bytes = http_body_util::Limited::new(body, MAX_JSON_BODY)
        .collect()
        .await
        .map_err(|e| Error::BadRequest(format!("request body: {e}")))?
        .to_bytes();
    serde_json::from_slice(&bytes).map_err(|e| Error::BadRequest(format!("request body: {e}")))
}
