//! Berth's own JSON API under `/api/v1/`: lineage, release history, promotion
//! and rollback, repositories and tags as the web UI lists them, events,
//! garbage collection, pickle scans. Each path is parsed once into an
//! [`ExtEndpoint`] that names its scope; errors use the same JSON error body
//! as `/v2/`.

mod endpoint;
mod events;
mod gc;
mod lineage;
mod releases;
mod repositories;
mod scan;
mod session;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use axum::routing::any;
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;

pub use endpoint::ExtEndpoint;

use crate::api::query::Query;
use crate::error::{Error, Result};
use crate::registry::{Actor, Registry};

/// Largest JSON request body accepted.
const MAX_JSON_BODY: usize = 64 * 1024;

pub fn router() -> Router<Registry> {
    Router::new().route("/api/v1/{*rest}", any(dispatch))
}

async fn dispatch(State(registry): State<Registry>, request: Request) -> Response {
    let endpoint = ExtEndpoint::parse(request.uri().path());
    let route = endpoint.as_ref().map_or("api", ExtEndpoint::kind);
    super::routed(route, Box::pin(handle(&registry, endpoint, request))).await
}

/// Authorizes the parsed endpoint in one step, then calls its handler.
async fn handle(
    registry: &Registry,
    endpoint: Result<ExtEndpoint>,
    request: Request,
) -> Result<Response> {
    let endpoint = endpoint?;
    let access = super::access_of(request.extensions())?;
    endpoint.authorize(&access, request.method())?;
    let query = Query::parse(request.uri().query());
    let actor = Actor {
        name: access.user().map(str::to_owned),
        reason: None,
    };
    let body = request.into_body();
    match endpoint {
        ExtEndpoint::Models => lineage::models(registry, &access, &query).await,
        ExtEndpoint::Graph(repo, reference) => {
            lineage::graph(registry, &access, &repo, &reference, &query).await
        }
        ExtEndpoint::Promote(repo) => releases::promote(registry, repo, actor, body).await,
        ExtEndpoint::Rollback(repo) => releases::rollback(registry, repo, actor, body).await,
        ExtEndpoint::History(repo, tag) => releases::history(registry, repo, tag, &query).await,
        ExtEndpoint::Diff(repo) => releases::diff(registry, repo, &query).await,
        ExtEndpoint::Repositories => repositories::list(registry, &access, &query).await,
        ExtEndpoint::Tags(repo) => repositories::tags(registry, &access, repo, &query).await,
        ExtEndpoint::Events => events::list(registry, &access, &query).await,
        ExtEndpoint::Gc => gc::run(registry, &query).await,
        ExtEndpoint::ScanReport(repo, reference) => scan::report(registry, repo, reference).await,
        ExtEndpoint::Scan(repo) => scan::run(registry, repo, body).await,
        ExtEndpoint::ScanAll => scan::all(registry).await,
        ExtEndpoint::Session => Ok(session::show(&access)),
    }
}

/// Says where the next page is: `Link: <url>; rel="next"`.
fn link_next(response: &mut Response, url: &str) {
    if let Ok(v) = axum::http::HeaderValue::from_str(&format!("<{url}>; rel=\"next\"")) {
        response.headers_mut().insert(axum::http::header::LINK, v);
    }
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
