//! The web UI's files: served to anyone (they hold no data; every answer
//! with data goes through the API's checks), with the page at every path the
//! page's script routes, and the headers that keep it safe and fresh.

use berth::auth::Anonymous;
use reqwest::StatusCode;

use crate::auth::server;
use crate::support::*;

#[tokio::test]
async fn the_pages_are_served_without_credentials_and_revalidated_by_etag() {
    let (s, _dir) = server(Anonymous::None).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    for path in ["/", "/ui"] {
        let r = client.get(s.url(path)).send().await.expect("GET");
        assert!(r.status().is_redirection(), "{path}: {}", r.status());
        assert_eq!(header(&r, "location").as_deref(), Some("/ui/"), "{path}");
    }
    // The page itself at the UI's own paths; the script routes them.
    for path in ["/ui/", "/ui/r/team-a/model/-/v/v1", "/ui/sign-in"] {
        let r = s.get(path).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert_eq!(
            header(&r, "content-type").as_deref(),
            Some("text/html; charset=utf-8")
        );
        let policy = header(&r, "content-security-policy").expect("CSP");
        assert!(policy.starts_with("default-src 'self'"), "{policy}");
        assert_eq!(
            header(&r, "x-content-type-options").as_deref(),
            Some("nosniff")
        );
        let body = r.text().await.expect("body");
        assert!(body.contains(r#"<script type="module" src="/ui/assets/app.js">"#));
    }
    let r = s.get("/ui/assets/app.js").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        header(&r, "content-type").as_deref(),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(header(&r, "cache-control").as_deref(), Some("no-cache"));
    let etag = header(&r, "etag").expect("etag");
    let again = s
        .request(reqwest::Method::GET, "/ui/assets/app.js")
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("GET");
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(header(&again, "etag"), Some(etag));
    let css = s.get("/ui/assets/app.css").await;
    assert_eq!(
        header(&css, "content-type").as_deref(),
        Some("text/css; charset=utf-8")
    );
    assert_eq!(
        s.get("/ui/assets/missing.js").await.status(),
        StatusCode::NOT_FOUND
    );
    // The data behind the pages still asks for credentials.
    let r = s.get("/api/v1/repositories/team-a/model/tags").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

// What the page asks before it decides to show the sign-in form: /v2/
// challenges every anonymous caller, even where anonymous pull is on.
#[tokio::test]
async fn the_session_says_who_is_signed_in_and_whether_anyone_may_look() {
    let (s, _dir) = server(Anonymous::None).await;
    let session = |user: Option<(&str, &str)>| {
        let mut r = s.request(reqwest::Method::GET, "/api/v1/session");
        if let Some((u, p)) = user {
            r = r.basic_auth(u, Some(p));
        }
        r.send()
    };
    let anonymous = json_body(session(None).await.expect("GET")).await;
    assert_eq!(
        anonymous,
        serde_json::json!({ "user": null, "authentication": true, "anonymousPull": false })
    );
    let alice = json_body(session(Some(("alice", "ecila"))).await.expect("GET")).await;
    assert_eq!(alice["user"], "alice");
    let wrong = session(Some(("alice", "wrong"))).await.expect("GET");
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);

    let (open, _dir) = server(Anonymous::Pull).await;
    let r = open.get("/api/v1/session").await;
    assert_eq!(json_body(r).await["anonymousPull"], true);
    assert_eq!(open.get("/v2/").await.status(), StatusCode::UNAUTHORIZED);

    let none = TestServer::start().await;
    let r = json_body(none.get("/api/v1/session").await).await;
    assert_eq!(
        r,
        serde_json::json!({ "user": null, "authentication": false, "anonymousPull": true })
    );
}
