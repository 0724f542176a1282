//! The web UI: static pages under `/ui/`, built into the binary, that read
//! `/api/v1` and `/v2` from the browser with the caller's own credentials.
//! Nothing here touches the registry, so the pages themselves need no
//! sign-in: every answer with data in it goes through the same checks as a
//! client's. Paths that are not assets get the page, whose script routes them.

use std::sync::LazyLock;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::oci::Digest;

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const JS: &str = "text/javascript; charset=utf-8";

macro_rules! assets {
    ($($name:literal => $type:expr),* $(,)?) => {
        [$(Asset { name: $name, content_type: $type, body: include_str!(concat!("assets/", $name)) }),*]
    };
}

static ASSETS: [Asset; 13] = assets![
    "index.html" => "text/html; charset=utf-8",
    "app.css" => "text/css; charset=utf-8",
    "app.js" => JS,
    "api.js" => JS,
    "dom.js" => JS,
    "nav.js" => JS,
    "format.js" => JS,
    "repositories.js" => JS,
    "version.js" => JS,
    "lineage.js" => JS,
    "timeline.js" => JS,
    "diff.js" => JS,
    "chart.js" => JS,
];

/// Each asset's entity tag: its content's digest, so that a new build is
/// fetched at once and an unchanged one costs a 304.
static ETAGS: LazyLock<Vec<HeaderValue>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| {
            let digest = Digest::sha256_of(a.body.as_bytes());
            HeaderValue::from_str(&format!("\"{}\"", &digest.hex()[..32])).expect("etag")
        })
        .collect()
});

/// Only the page's own files: no inline script or style, nothing from
/// elsewhere, no framing.
const POLICY: &str = "default-src 'self'; img-src 'self' data:; object-src 'none'; \
                      base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

pub fn router() -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(page))
        .route("/ui/{*path}", get(page))
}

async fn page(request: Request) -> Response {
    let path = request.uri().path();
    let name = path.strip_prefix("/ui/assets/");
    let index = match name {
        Some(name) => match ASSETS.iter().position(|a| a.name == name) {
            Some(i) => i,
            None => return StatusCode::NOT_FOUND.into_response(),
        },
        None => 0,
    };
    serve(index, request.headers())
}

fn serve(index: usize, asked: &HeaderMap) -> Response {
    let asset = &ASSETS[index];
    let etag = ETAGS[index].clone();
    let fresh = asked
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes());
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        asset.body.into_response()
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(header::ETAG, etag);
    // Revalidated every time: a 304 is cheap, and an upgrade shows at once.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_the_page_imports_is_embedded() {
        let names: Vec<_> = ASSETS.iter().map(|a| a.name).collect();
        for asset in &ASSETS {
            for line in asset.body.lines() {
                let Some((_, from)) = line.split_once(" from \"./") else {
                    continue;
                };
                let module = from.split('"').next().expect("quoted");
                assert!(names.contains(&module), "{} imports {module}", asset.name);
            }
        }
    }
}
