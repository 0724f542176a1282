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
mod ui;
mod uploads;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};

pub use endpoint::{Action, Endpoint};
use ext::ExtEndpoint;
use query::Query;

use crate::auth::{Access, Auth};
use crate::error::{Error, Result};
use crate::registry::Registry;

const API_VERSION: HeaderName = HeaderName::from_static("docker-distribution-api-version");

/// The kind of endpoint a response answered (in its extensions), for
/// metrics and the access log.
#[derive(Debug, Clone, Copy)]
pub struct Route(pub &'static str);

/// The kind of endpoint a path names, for an answer given before its
/// handler ran (credentials refused).
fn route_kind(path: &str) -> &'static str {
    if path.starts_with("/api/v1/") {
        ExtEndpoint::parse(path).map_or("api", |e| e.kind())
    } else {
        Endpoint::parse(path).map_or("v2", |e| e.kind())
    }
}

/// Who was signed in for a response (in its extensions), for the access log.
#[derive(Debug, Clone)]
pub struct Caller(pub String);

/// The registry's HTTP routes; with `auth`, every request under `/v2` and
/// `/api/v1` is authenticated and checked against its rules.
pub fn router(registry: Registry, auth: Option<Arc<Auth>>) -> Router {
    let protected: Router = Router::new()
        .route("/v2", any(v2))
        .route("/v2/", any(v2))
        .route("/v2/{*rest}", any(v2))
        .route("/metrics", get(metrics))
        .merge(ext::router())
        .with_state(registry.clone())
        .layer(axum::middleware::from_fn_with_state(
            auth.clone(),
            authenticate,
        ))
        .layer(axum::middleware::from_fn(quiet_challenge));
    let tokens = Router::new()
        .route("/auth/token", get(token::get).post(token::post))
        .with_state(auth);
    let ready = Router::new()
        .route("/readyz", get(readiness))
        .with_state(registry);
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .merge(ready)
        .merge(tokens)
        .merge(protected)
        .merge(ui::router())
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
                Err(e) => {
                    let mut refused = e.into_response();
                    let route = route_kind(request.uri().path());
                    refused.extensions_mut().insert(Route(route));
                    return refused;
                }
            }
        }
    };
    let caller = access.user().map(|u| Caller(u.to_owned()));
    request.extensions_mut().insert(access);
    let mut response = next.run(request).await;
    if let Some(caller) = caller {
        response.extensions_mut().insert(caller);
    }
    response
}

/// A page's script asks with `X-Requested-With: XMLHttpRequest` (as the web
/// UI does): its 401 carries no challenge, which in a browser would open
/// the browser's own password dialog over the page's sign-in form.
async fn quiet_challenge(request: Request, next: Next) -> Response {
    let from_script = request
        .headers()
        .get("x-requested-with")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"xmlhttprequest"));
    let mut response = next.run(request).await;
    if from_script && response.status() == axum::http::StatusCode::UNAUTHORIZED {
        response.headers_mut().remove(header::WWW_AUTHENTICATE);
    }
    response
}

/// `/readyz`: 200 when the database takes writes, the store answers and the
/// disk has room; else 503 with each reason on a line.
async fn readiness(State(registry): State<Registry>) -> Response {
    let problems = registry.unready().await;
    if problems.is_empty() {
        return "ok".into_response();
    }
    for p in &problems {
        tracing::warn!(reason = %p, "not ready");
    }
    (
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "5")],
        problems.join("\n") + "\n",
    )
        .into_response()
}

/// `/metrics`: the Prometheus exposition, for anyone signed in (anyone at
/// all without authentication).
async fn metrics(State(registry): State<Registry>, request: Request) -> Response {
    let access = access_of(request.extensions());
    let answer = async {
        access?.require_signed_in()?;
        let text = registry.metrics_text().await?;
        Ok::<_, Error>(
            ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response(),
        )
    };
    respond(Box::pin(answer)).await
}

/// Every response says which API it speaks (distribution-spec, "API Version Check").
async fn stamp_api_version(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(API_VERSION, HeaderValue::from_static("registry/2.0"));
    response
}

async fn v2(State(registry): State<Registry>, request: Request) -> Response {
    let endpoint = Endpoint::parse(request.uri().path());
    let route = endpoint.as_ref().map_or("v2", Endpoint::kind);
    routed(route, Box::pin(dispatch(&registry, endpoint, request))).await
}

/// [`respond`], the answer marked with the route kind it came from.
async fn routed(
    route: &'static str,
    handled: std::pin::Pin<Box<dyn Future<Output = Result<Response>> + Send + '_>>,
) -> Response {
    let mut response = respond(handled).await;
    response.extensions_mut().insert(Route(route));
    response
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

async fn dispatch(
    registry: &Registry,
    endpoint: Result<Endpoint>,
    request: Request,
) -> Result<Response> {
    let endpoint = endpoint?;
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
