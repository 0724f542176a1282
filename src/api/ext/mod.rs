//! Berth's own JSON API under `/api/v1/`: lineage (and, as they land, release
//! history, promotion and events). Errors use the same JSON error body as `/v2/`.

mod lineage;

use axum::Router;
use axum::routing::get;

use crate::registry::Registry;

pub fn router() -> Router<Registry> {
    Router::new()
        .route("/api/v1/lineage", get(lineage::models))
        .route("/api/v1/lineage/{*rest}", get(lineage::graph))
}
