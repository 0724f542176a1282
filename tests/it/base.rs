use reqwest::{Method, StatusCode};

use crate::support::*;

// Spec: "GET /v2/ ... 200 OK" and every response carries the API version header.
#[tokio::test]
async fn api_version_check_answers_200_with_version_header() {
    let s = TestServer::start().await;
    for path in ["/v2/", "/v2"] {
        let r = s.get(path).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            header(&r, "docker-distribution-api-version").as_deref(),
            Some("registry/2.0")
        );
    }
}

#[tokio::test]
async fn unknown_routes_answer_oci_json_errors_with_version_header() {
    let s = TestServer::start().await;
    for path in ["/v2/a/b/c", "/v2/a/tags/list/", "/v2/a/tags"] {
        let r = s.get(path).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
        assert!(header(&r, "docker-distribution-api-version").is_some());
        assert_eq!(error_code(r).await, "UNSUPPORTED");
    }
}

#[tokio::test]
async fn wrong_method_is_405_with_allow() {
    let s = TestServer::start().await;
    let r = s
        .request(Method::PATCH, "/v2/a/manifests/latest")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        header(&r, "allow").as_deref(),
        Some("GET, HEAD, PUT, DELETE")
    );
    assert_eq!(error_code(r).await, "UNSUPPORTED");
}

#[tokio::test]
async fn bad_names_are_name_invalid_including_encoded_slashes() {
    let s = TestServer::start().await;
    for path in [
        "/v2/Upper/tags/list",
        "/v2/a%2Fb/tags/list",
        "/v2/a//b/tags/list",
        "/v2/a_/tags/list",
    ] {
        let r = s.get(path).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(error_code(r).await, "NAME_INVALID", "{path}");
    }
}

#[tokio::test]
async fn health_endpoints_answer() {
    let s = TestServer::start().await;
    assert_eq!(s.get("/healthz").await.status(), StatusCode::OK);
    assert_eq!(s.get("/readyz").await.status(), StatusCode::OK);
}
