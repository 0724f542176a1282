//! HTTP: the OCI distribution API under `/v2/`, parsed once by [`Endpoint`]
//! and dispatched to one thin handler per endpoint and method.

mod blobs;
mod catalog;
pub mod endpoint;
mod ext;
mod manifests;
pub(crate) mod query;
mod referrers;
mod request;
pub mod responses;
mod tags;
mod uploads;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};

pub use endpoint::{Action, Endpoint};
use query::Query;

use crate::error::{Error, Result};
use crate::registry::Registry;

const API_VERSION: HeaderName = HeaderName::from_static("docker-distribution-api-version");

/// The registry's HTTP routes.
pub fn router(registry: Registry) -> Router {
    Router::new()
        .route("/v2", any(v2))
        .route("/v2/", any(v2))
        .route("/v2/{*rest}", any(v2))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }))
        .merge(ext::router())
        .with_state(registry)
        .layer(axum::middleware::map_response(stamp_api_version))
}

/// Every response says which API it speaks (distribution-spec, "API Version Check").
async fn stamp_api_version(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(API_VERSION, HeaderValue::from_static("registry/2.0"));
    response
}

async fn v2(State(registry): State<Registry>, request: Request) -> Response {
    let dispatched: std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Response>> + Send + '_>,
    > = Box::pin(dispatch(&registry, request));
    match dispatched.await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn dispatch(registry: &Registry, request: Request) -> Result<Response> {
    let endpoint = Endpoint::parse(request.uri().path())?;
    let (parts, body) = request.into_parts();
    let query = Query::parse(parts.uri.query());
    let method = parts.method;
    let headers = &parts.headers;
    let response = match (endpoint, method) {
        (Endpoint::Base, Method::GET | Method::HEAD) => responses::ApiVersionCheck.into_response(),
        (Endpoint::Catalog, Method::GET | Method::HEAD) => {
            catalog::list(registry, &query).await?.into_response()
        }
        (Endpoint::Tags(repo), Method::GET | Method::HEAD) => {
            tags::list(registry, &repo, &query).await?.into_response()
        }
        (Endpoint::Manifest(repo, r), Method::GET) => {
            manifests::get(registry, &repo, r).await?.into_response()
        }
        (Endpoint::Manifest(repo, r), Method::HEAD) => {
            manifests::head(registry, &repo, r).await?.into_response()
        }
        (Endpoint::Manifest(repo, r), Method::PUT) => {
            manifests::put(registry, &repo, r, &query, headers, body)
                .await?
                .into_response()
        }
        (Endpoint::Manifest(repo, r), Method::DELETE) => {
            manifests::delete(registry, &repo, r).await?.into_response()
        }
        (Endpoint::Blob(repo, d), Method::GET) => blobs::get(registry, &repo, d, headers)
            .await?
            .into_response(),
        (Endpoint::Blob(repo, d), Method::HEAD) => {
            blobs::head(registry, &repo, d).await?.into_response()
        }
        (Endpoint::Blob(repo, d), Method::DELETE) => {
            blobs::delete(registry, &repo, d).await?.into_response()
        }
        (Endpoint::UploadStart(repo), Method::POST) => {
            uploads::start(registry, &repo, &query, body).await?
        }
        (Endpoint::Upload(repo, id), Method::GET) => {
            uploads::status(registry, &repo, id).await?.into_response()
        }
        (Endpoint::Upload(repo, id), Method::PATCH) => {
            uploads::patch(registry, &repo, id, headers, body)
                .await?
                .into_response()
        }
        (Endpoint::Upload(repo, id), Method::PUT) => {
            uploads::finish(registry, &repo, id, &query, headers, body)
                .await?
                .into_response()
        }
        (Endpoint::Upload(repo, id), Method::DELETE) => {
            uploads::cancel(registry, &repo, id).await?.into_response()
        }
        (Endpoint::Referrers(repo, d), Method::GET | Method::HEAD) => {
            referrers::list(registry, &repo, d, &query)
                .await?
                .into_response()
        }
        (endpoint, _) => {
            return Err(Error::MethodNotAllowed {
                allow: endpoint.allowed_methods(),
            });
        }
    };
    Ok(response)
}
