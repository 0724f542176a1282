//! `GET /auth/token` (Docker token authentication) and `POST /auth/token`
//! (OAuth2 password and refresh-token grants): tokens grant the intersection
//! of the scopes asked for and what the rules allow the caller.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use serde_json::json;

use super::query::Query;
use crate::auth::token::{Grants, TokenService, parse_scopes};
use crate::auth::{Auth, Principal};
use crate::error::{Error, Result};
use crate::oci::RepoName;

/// Largest form body accepted.
const MAX_FORM: usize = 16 * 1024;

fn service_of(auth: &Auth) -> Result<&TokenService> {
    auth.tokens().ok_or(Error::RouteUnknown)
}

fn origin(auth: &Auth, headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    auth.origin(host)
}

/// What of `requested` the rules allow `who`.
fn grant(auth: &Auth, who: &Principal, requested: Grants) -> Grants {
    requested
        .into_iter()
        .filter_map(|(name, actions)| {
            let repo = RepoName::parse(&name).ok()?;
            let allowed = actions
                .into_iter()
                .filter(|a| auth.allows(who, &repo, *a))
                .collect();
            Some((name, allowed))
        })
        .collect()
}

fn check_service(tokens: &TokenService, asked: Option<&str>) -> Result<()> {
    match asked {
        Some(s) if s != tokens.service => Err(Error::BadRequest(format!("unknown service {s:?}"))),
        _ => Ok(()),
    }
}

pub async fn get(
    State(auth): State<Option<Arc<Auth>>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    get_inner(auth, &headers, &Query::parse(q.as_deref()))
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn get_inner(
    auth: Option<Arc<Auth>>,
    headers: &HeaderMap,
    query: &Query,
) -> Result<Response> {
    let auth = auth.ok_or(Error::RouteUnknown)?;
    let tokens = service_of(&auth)?;
    check_service(tokens, query.get("service"))?;
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    // Only credentials buy a token; a token cannot buy a wider one.
    if authorization.is_some_and(|a| !a.starts_with("Basic ")) {
        return Err(Error::Unauthorized {
            challenge: auth.challenge(&origin(&auth, headers), None, false),
        });
    }
    let who = auth.authenticate(authorization, &origin(&auth, headers))?;
    let grants = grant(&auth, &who, parse_scopes(query.all("scope")));
    let token = tokens.issue(who.user.as_deref(), &grants);
    let mut body = json!({
        "token": token, "access_token": token,
        "expires_in": tokens.lifetime_secs(), "issued_at": chrono::Utc::now().to_rfc3339(),
    });
    if matches!(query.get("offline_token"), Some("true"))
        && let Some(user) = &who.user
    {
        body["refresh_token"] = json!(tokens.issue_refresh(user));
    }
    Ok(Json(body).into_response())
}

pub async fn post(
    State(auth): State<Option<Arc<Auth>>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    post_inner(auth, &headers, body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn post_inner(auth: Option<Arc<Auth>>, headers: &HeaderMap, body: Body) -> Result<Response> {
    let auth = auth.ok_or(Error::RouteUnknown)?;
    let tokens = service_of(&auth)?;
    let bytes = http_body_util::Limited::new(body, MAX_FORM)
        .collect()
        .await
        .map_err(|e| Error::BadRequest(format!("form: {e}")))?
        .to_bytes();
    let form = Query::parse(Some(&String::from_utf8_lossy(&bytes).replace('+', "%20")));
    check_service(tokens, form.get("service"))?;
    let unauthorized = || Error::Unauthorized {
        challenge: auth.challenge(&origin(&auth, headers), None, false),
    };
    let user = match form.get("grant_type") {
        Some("password") => {
            let (u, p) = (
                form.get("username").unwrap_or(""),
                form.get("password").unwrap_or(""),
            );
            if !auth.verify(u, p) {
                return Err(Error::BadCredentials {
                    challenge: auth.challenge(&origin(&auth, headers), None, false),
                });
            }
            u.to_owned()
        }
        Some("refresh_token") => {
            let user = tokens
                .verify_refresh(form.get("refresh_token").unwrap_or(""))
                .map_err(|_| unauthorized())?;
            if !auth.has_user(&user) {
                return Err(unauthorized());
            }
            user
        }
        other => {
            return Err(Error::BadRequest(format!(
                "unsupported grant_type {other:?}"
            )));
        }
    };
    let who = Principal {
        user: Some(user.clone()),
        grants: None,
    };
    let grants = grant(&auth, &who, parse_scopes(form.all("scope")));
    let token = tokens.issue(Some(&user), &grants);
    let mut body = json!({
        "access_token": token, "token": token,
        "expires_in": tokens.lifetime_secs(), "issued_at": chrono::Utc::now().to_rfc3339(),
        "scope": form.get("scope").unwrap_or(""),
    });
    if form.get("access_type") == Some("offline") || form.get("grant_type") == Some("refresh_token")
    {
        body["refresh_token"] = json!(tokens.issue_refresh(&user));
    }
    Ok(Json(body).into_response())
}
