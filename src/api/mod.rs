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
mod token;
mod uploads;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};

pub use endpoint::{Action, Endpoint};
use query::Query;

use crate::auth::{Access, Auth};
use crate::error::{Error, Result};
use crate::registry::Registry;

const API_VERSION: HeaderName = HeaderName::from_static("docker-distribution-api-version");

/// The registry's HTTP routes; with `auth`, every request under `/v2` and
/// `/api/v1` is authenticated and checked against its rules.
pub fn router(registry: Registry, auth: Option<Arc<Auth>>) -> Router {
    let protected = Router::new()
        .route("/v2", any(v2))
        .route("/v2/", any(v2))
        .route("/v2/{*rest}", any(v2))
        .merge(ext::router())
        .with_state(registry)
        .layer(axum::middleware::from_fn_with_state(
            auth.clone(),
            authenticate,
        ));
    let tokens = Router::new()
        .route("/auth/token", get(token::get).post(token::post))
        .with_state(auth);
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }))
        .merge(tokens)
        .merge(protected)
        .layer(axum::middleware::map_response(stamp_api_version))
}

/// Works out who is asking (401 for bad credentials) and hands the request
/// its [`Access`]; the handlers check it against the endpoint's scope.
async fn authenticate(
    State(auth): State<Option<Arc<Auth>>>,
    mut request: Request,
    next: Next,
) -> Response {
    let access = match auth {
        None => Access::Open,
        Some(auth) => {
            let headers = request.headers();
            let authorization = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok());
            let host = headers
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("localhost");
            let origin = auth.origin(host);
            match auth.authenticate(authorization, &origin) {
                Ok(who) => Access::Checked(auth, who, origin),
                Err(e) => return e.into_response(),
            }
        }
    };
    request.extensions_mut().insert(access);
    next.run(request).await
}

/// Every response says which API it speaks (distribution-spec, "API Version Check").
async fn stamp_api_version(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(API_VERSION, HeaderValue::from_static("registry/2.0"));
    response
}

async fn v2(State(registry): State<Registry>, request: Request) -> Response {
    respond(Box::pin(dispatch(&registry, request))).await
}

/// A handler's answer, its error rendered as the JSON error body. The work
/// comes boxed, so that every route's future stays small.
async fn respond(
    handled: std::pin::Pin<Box<dyn Future<Output = Result<Response>> + Send + '_>>,
) -> Response {
    handled.await.unwrap_or_else(IntoResponse::into_response)
}

/// The caller's access as [`authenticate`] decided it. A request that
/// reached a handler without one is refused: access fails closed.
fn access_of(extensions: &axum::http::Extensions) -> Result<Access> {
    extensions.get::<Access>().cloned().ok_or_else(|| {
        Error::Internal("a request reached a handler without an access decision".into())
    })
}

/// The one authorization step of `/v2`: the endpoint says what it needs,
/// the rules say who has it (one table), and an upload session is its
/// owner's alone.
async fn authorize(
    registry: &Registry,
    access: &Access,
    endpoint: &Endpoint,
    method: &Method,
) -> Result<()> {
    match endpoint.scope(method) {
        Some((repo, action)) => access.require(repo, action)?,
        None if *endpoint == Endpoint::Base => access.require_signed_in()?,
        None => {}
    }
    if let Endpoint::Upload(repo, id) = endpoint
        && !matches!(access, Access::Open)
    {
        registry.check_upload_owner(repo, id, access.user()).await?;
    }
    Ok(())
}

async fn dispatch(registry: &Registry, request: Request) -> Result<Response> {
    let endpoint = Endpoint::parse(request.uri().path())?;
    let (parts, body) = request.into_parts();
    let access = access_of(&parts.extensions)?;
    authorize(registry, &access, &endpoint, &parts.method).await?;
    let query = Query::parse(parts.uri.query());
    let method = parts.method;
    let headers = &parts.headers;
    let response = match (endpoint, method) {
        (Endpoint::Base, Method::GET | Method::HEAD) => responses::ApiVersionCheck.into_response(),
        (Endpoint::Catalog, Method::GET | Method::HEAD) => catalog::list(registry, &access, &query)
            .await?
            .into_response(),
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
            manifests::put(registry, &access, &repo, r, &query, headers, body)
                .await?
                .into_response()
        }
        (Endpoint::Manifest(repo, r), Method::DELETE) => {
            manifests::delete(registry, &access, &repo, r)
                .await?
                .into_response()
        }
        (Endpoint::ManifestInvalid(repo, text), Method::GET | Method::HEAD | Method::DELETE) => {
            return Err(Error::ManifestUnknown(format!("{repo}:{text}")));
        }
        (Endpoint::ManifestInvalid(_, text), Method::PUT) => {
            // The parser only makes this endpoint for text that fails to parse.
            return Err(
                crate::oci::Reference::parse(&text).map_or_else(Error::from, |_| {
                    Error::Internal(format!("{text:?} taken for an invalid reference"))
                }),
            );
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
            uploads::start(registry, &access, &repo, &query, body).await?
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

#[cfg(test)]
mod tests {
    use super::*;

    // A handler reached without the authentication layer's decision (a
    // route wired outside it) refuses rather than falling back to open access.
    #[test]
    fn a_request_without_an_access_decision_is_refused() {
        let mut extensions = axum::http::Extensions::new();
        assert!(matches!(access_of(&extensions), Err(Error::Internal(_))));
        extensions.insert(Access::Open);
        assert!(access_of(&extensions).is_ok());
    }
}
