//! Access control: htpasswd users over HTTP Basic, rules per repository and
//! action, applied to every endpoint family.

use berth::auth::token::TokenConfig;
use berth::auth::{Action, Anonymous, AuthConfig, Rule};
use berth::glob::Glob;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::*;

const USERS: [&str; 6] = ["alice", "bob", "carol", "dave", "root", "pusher"];

fn rule(repos: &[&str], users: &[&str], actions: &[Action]) -> Rule {
    Rule {
        repositories: repos.iter().map(|r| Glob::new(*r)).collect(),
        users: users.iter().map(|u| (*u).to_owned()).collect(),
        actions: actions.to_vec(),
    }
}

/// A server with users `USERS` (password: the name backwards) and rules:
/// alice may do everything in team-a/**, bob may pull it, dave may push in
/// team-b/**, pusher may push but not promote in team-a/**, root everything.
pub(crate) async fn server(anonymous: Anonymous) -> (TestServer, tempfile::TempDir) {
    server_with(anonymous, false).await
}

/// As [`server`], with the token service on when `tokens`.
async fn server_with(anonymous: Anonymous, tokens: bool) -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("dir");
    let token = tokens.then(|| TokenConfig {
        service: "berth".into(),
        issuer: "berth".into(),
        key: dir.path().join("token.pem"),
        lifetime: "5m".into(),
    });
    let htpasswd = dir.path().join("users.htpasswd");
    let lines: Vec<String> = USERS
        .iter()
        .map(|u| format!("{u}:{}", bcrypt::hash(password(u), 4).expect("bcrypt")))
        .collect();
    std::fs::write(&htpasswd, lines.join("\n")).expect("htpasswd");
    let s = TestServer::with_config(move |c| {
        c.auth = Some(AuthConfig {
            htpasswd,
            anonymous,
            realm: "berth".into(),
            admins: vec!["root".into()],
            rules: vec![
                rule(
                    &["team-a/**"],
                    &["alice"],
                    &[Action::Pull, Action::Push, Action::Delete, Action::Promote],
                ),
                rule(&["team-a/**"], &["bob"], &[Action::Pull]),
                rule(&["team-a/**"], &["pusher"], &[Action::Pull, Action::Push]),
                rule(&["team-b/**"], &["dave"], &[Action::Pull, Action::Push]),
                rule(
                    &["**"],
                    &["root"],
                    &[Action::Pull, Action::Push, Action::Delete, Action::Promote],
                ),
            ],
            token,
        });
    })
    .await;
    (s, dir)
}

fn password(user: &str) -> String {
    user.chars().rev().collect()
}

fn as_user(s: &TestServer, user: &str, method: Method, path: &str) -> reqwest::RequestBuilder {
    s.request(method, path)
        .basic_auth(user, Some(password(user)))
}

/// Pushes an image as `user` (blobs then manifest); returns the manifest status.
async fn push_image_as(s: &TestServer, user: &str, repo: &str, tag: &str, seed: u64) -> StatusCode {
    let config = format!("{{\"seed\":{seed}}}").into_bytes();
    for b in [&config] {
        let d = sha256(b);
        let r = as_user(
            s,
            user,
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/?digest={d}"),
        )
        .body(b.clone())
        .send()
        .await
        .expect("POST");
        if r.status() != StatusCode::CREATED {
            return r.status();
        }
    }
    as_user(s, user, Method::PUT, &format!("/v2/{repo}/manifests/{tag}"))
        .header("content-type", OCI_MANIFEST)
        .body(image_manifest(&config, &[], None))
        .send()
        .await
        .expect("PUT")
        .status()
}

#[tokio::test]
async fn the_version_check_challenges_and_accepts_only_good_credentials() {
    let (s, _dir) = server(Anonymous::None).await;
    let r = s.get("/v2/").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        header(&r, "www-authenticate").as_deref(),
        Some("Basic realm=\"berth\"")
    );
    assert_eq!(error_code(r).await, "UNAUTHORIZED");
    for (user, pass) in [("alice", "wrong"), ("nobody", "ydobon"), ("alice", "")] {
        let r = s
            .request(Method::GET, "/v2/")
            .basic_auth(user, Some(pass))
            .send()
            .await
            .expect("GET");
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{user}");
        let body = json_body(r).await;
        assert_eq!(
            body["errors"][0]["message"], "incorrect username or password",
            "{user}"
        );
    }
    let r = s
        .request(Method::GET, "/v2/")
        .header("authorization", "Bearer x")
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        as_user(&s, "alice", Method::GET, "/v2/")
            .send()
            .await
            .expect("GET")
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        s.get("/healthz").await.status(),
        StatusCode::OK,
        "health needs no login"
    );
}

// Rules decide pull, push and delete, with no confusion between similar names.
#[tokio::test]
async fn rules_decide_every_v2_endpoint_by_repository_and_action() {
    let (s, _dir) = server(Anonymous::None).await;
    assert_eq!(
        push_image_as(&s, "alice", "team-a/app", "v1", 1).await,
        StatusCode::CREATED
    );
    for repo in ["team-a", "team-ab/app", "team-b/app"] {
        assert_eq!(
            push_image_as(&s, "alice", repo, "v1", 2).await,
            StatusCode::FORBIDDEN,
            "{repo}"
        );
    }
    let manifest = "/v2/team-a/app/manifests/v1";
    assert_eq!(
        as_user(&s, "bob", Method::GET, manifest)
            .send()
            .await
            .expect("GET")
            .status(),
        StatusCode::OK
    );
    let r = as_user(&s, "bob", Method::POST, "/v2/team-a/app/blobs/uploads/")
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(r).await, "DENIED");
    assert_eq!(
        as_user(&s, "carol", Method::GET, manifest)
            .send()
            .await
            .expect("GET")
            .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(s.get(manifest).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        as_user(&s, "bob", Method::DELETE, manifest)
            .send()
            .await
            .expect("DELETE")
            .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        as_user(&s, "pusher", Method::DELETE, manifest)
            .send()
            .await
            .expect("DELETE")
            .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        as_user(&s, "bob", Method::GET, "/v2/team-a/app/tags/list")
            .send()
            .await
            .expect("GET")
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        as_user(&s, "dave", Method::GET, "/v2/team-a/app/tags/list")
            .send()
            .await
            .expect("GET")
            .status(),
        StatusCode::FORBIDDEN
    );
    let referrers = format!("/v2/team-a/app/referrers/{}", sha256(b"x"));
    assert_eq!(
        as_user(&s, "dave", Method::GET, &referrers)
            .send()
            .await
            .expect("GET")
            .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        as_user(&s, "alice", Method::DELETE, manifest)
            .send()
            .await
            .expect("DELETE")
            .status(),
        StatusCode::ACCEPTED
    );
}

#[tokio::test]
async fn anonymous_pull_allows_reads_only() {
    let (s, _dir) = server(Anonymous::Pull).await;
    assert_eq!(
        push_image_as(&s, "alice", "team-a/app", "v1", 3).await,
        StatusCode::CREATED
    );
    assert_eq!(
        s.get("/v2/team-a/app/manifests/v1").await.status(),
        StatusCode::OK
    );
    let r = s
        .request(Method::POST, "/v2/team-a/app/blobs/uploads/")
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_catalog_lists_only_what_the_caller_may_pull() {
    let (s, _dir) = server(Anonymous::None).await;
    for (user, repo) in [
        ("alice", "team-a/one"),
        ("alice", "team-a/two"),
        ("dave", "team-b/x"),
    ] {
        assert_eq!(
            push_image_as(&s, user, repo, "v1", 4).await,
            StatusCode::CREATED
        );
    }
    let list = |user: &'static str| {
        let s = &s;
        async move {
            let r = as_user(s, user, Method::GET, "/v2/_catalog")
                .send()
                .await
                .expect("GET");
            json_body(r).await["repositories"].clone()
        }
    };
    assert_eq!(list("bob").await, json!(["team-a/one", "team-a/two"]));
    assert_eq!(list("dave").await, json!(["team-b/x"]));
    assert_eq!(list("carol").await, json!([]));
    assert_eq!(
        list("root").await,
        json!(["team-a/one", "team-a/two", "team-b/x"])
    );
    let r = as_user(&s, "bob", Method::GET, "/v2/_catalog?n=1")
        .send()
        .await
        .expect("GET");
    assert_eq!(
        header(&r, "link").as_deref(),
        Some("</v2/_catalog?n=1&last=team-a/one>; rel=\"next\"")
    );
}

// A mount reads only from a repository the caller may pull.
#[tokio::test]
async fn a_mount_needs_pull_on_the_source() {
    let (s, _dir) = server(Anonymous::None).await;
    let secret = blob(5, 1000);
    let d = sha256(&secret);
    let r = as_user(
        &s,
        "alice",
        Method::POST,
        &format!("/v2/team-a/app/blobs/uploads/?digest={d}"),
    )
    .body(secret.clone())
    .send()
    .await
    .expect("POST");
    assert_eq!(r.status(), StatusCode::CREATED);
    for query in [format!("mount={d}&from=team-a/app"), format!("mount={d}")] {
        let r = as_user(
            &s,
            "dave",
            Method::POST,
            &format!("/v2/team-b/x/blobs/uploads/?{query}"),
        )
        .send()
        .await
        .expect("POST");
        assert_eq!(
            r.status(),
            StatusCode::ACCEPTED,
            "{query}: a session, not the blob"
        );
    }
    assert_eq!(
        as_user(&s, "dave", Method::GET, &format!("/v2/team-b/x/blobs/{d}"))
            .send()
            .await
            .expect("GET")
            .status(),
        StatusCode::NOT_FOUND
    );
    let r = as_user(
        &s,
        "root",
        Method::POST,
        &format!("/v2/team-b/x/blobs/uploads/?mount={d}&from=team-a/app"),
    )
    .send()
    .await
    .expect("POST");
    assert_eq!(r.status(), StatusCode::CREATED);
}

// An upload session belongs to its repository and its user.
#[tokio::test]
async fn another_users_upload_session_is_unknown() {
    let (s, _dir) = server(Anonymous::None).await;
    let r = as_user(&s, "alice", Method::POST, "/v2/team-a/app/blobs/uploads/")
        .send()
        .await
        .expect("POST");
    let loc = location(&r);
    for method in [Method::GET, Method::PATCH, Method::PUT, Method::DELETE] {
        let r = as_user(&s, "pusher", method.clone(), &loc)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{method}");
        assert_eq!(error_code(r).await, "BLOB_UPLOAD_UNKNOWN");
    }
    let r = as_user(&s, "alice", Method::GET, &loc)
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
}

// Berth's own API follows the same rules, and reveals nothing else.
#[tokio::test]
async fn lineage_releases_events_and_gc_follow_the_rules() {
    let (s, _dir) = server(Anonymous::None).await;
    assert_eq!(
        push_image_as(&s, "dave", "team-b/data", "v1", 6).await,
        StatusCode::CREATED
    );
    let data = header(
        &as_user(&s, "dave", Method::HEAD, "/v2/team-b/data/manifests/v1")
            .send()
            .await
            .expect("HEAD"),
        "docker-content-digest",
    )
    .expect("digest");
    as_user(
        &s,
        "alice",
        Method::POST,
        &format!("/v2/team-a/m/blobs/uploads/?digest={}", sha256(b"{}")),
    )
    .body(b"{}".to_vec())
    .send()
    .await
    .expect("POST");
    let model = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": descriptor("application/vnd.oci.empty.v1+json", b"{}"), "layers": [],
        "annotations": { "io.berth.lineage.datasets": format!("team-b/data@{data}") },
    }))
    .expect("json");
    let r = as_user(&s, "alice", Method::PUT, "/v2/team-a/m/manifests/v1")
        .header("content-type", OCI_MANIFEST)
        .body(model)
        .send()
        .await
        .expect("PUT");
    assert_eq!(r.status(), StatusCode::CREATED);

    let graph = |user: &'static str| {
        let s = &s;
        async move {
            as_user(s, user, Method::GET, "/api/v1/lineage/team-a/m/v1")
                .send()
                .await
                .expect("GET")
        }
    };
    let root_view = json_body(graph("root").await).await;
    let bob_view = json_body(graph("bob").await).await;
    let has = |g: &Value, id: &str| {
        g["nodes"]
            .as_array()
            .is_some_and(|n| n.iter().any(|n| n["id"] == id))
    };
    assert!(has(&root_view, &data), "root sees the dataset");
    assert!(
        !has(&bob_view, &data),
        "bob cannot pull team-b: the dataset is left out"
    );
    assert_eq!(graph("carol").await.status(), StatusCode::FORBIDDEN);
    let r = as_user(
        &s,
        "bob",
        Method::GET,
        &format!("/api/v1/lineage?dataset={data}"),
    )
    .send()
    .await
    .expect("GET");
    assert_eq!(
        json_body(r).await["models"].as_array().map(Vec::len),
        Some(1),
        "bob may pull the model"
    );
    let r = as_user(
        &s,
        "dave",
        Method::GET,
        &format!("/api/v1/lineage?dataset={data}"),
    )
    .send()
    .await
    .expect("GET");
    assert_eq!(
        json_body(r).await["models"],
        json!([]),
        "dave cannot see team-a"
    );

    let promote = |user: &'static str| {
        let s = &s;
        async move {
            as_user(
                s,
                user,
                Method::POST,
                "/api/v1/repositories/team-a/m/promote",
            )
            .header("content-type", "application/json")
            .body(json!({ "reference": "v1", "to": "production" }).to_string())
            .send()
            .await
            .expect("promote")
        }
    };
    assert_eq!(
        promote("pusher").await.status(),
        StatusCode::FORBIDDEN,
        "may push but not promote"
    );
    assert_eq!(promote("alice").await.status(), StatusCode::OK);
    let h = json_body(
        as_user(
            &s,
            "bob",
            Method::GET,
            "/api/v1/repositories/team-a/m/tags/production/history",
        )
        .send()
        .await
        .expect("GET"),
    )
    .await;
    assert_eq!(
        h["history"][0]["actor"], "alice",
        "the actor is the signed-in user"
    );
    assert_eq!(
        as_user(
            &s,
            "dave",
            Method::GET,
            "/api/v1/repositories/team-a/m/tags/production/history"
        )
        .send()
        .await
        .expect("GET")
        .status(),
        StatusCode::FORBIDDEN
    );

    let events = |user: &'static str| {
        let s = &s;
        async move {
            let r = as_user(s, user, Method::GET, "/api/v1/events")
                .send()
                .await
                .expect("GET");
            json_body(r).await["events"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        }
    };
    let repos = |e: &[Value]| {
        e.iter()
            .filter_map(|e| e["target"]["repository"].as_str().map(str::to_owned))
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(
        repos(&events("dave").await).into_iter().collect::<Vec<_>>(),
        ["team-b/data"]
    );
    assert_eq!(repos(&events("root").await).len(), 2);

    assert_eq!(
        as_user(&s, "alice", Method::POST, "/api/v1/gc")
            .send()
            .await
            .expect("gc")
            .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        as_user(&s, "root", Method::POST, "/api/v1/gc")
            .send()
            .await
            .expect("gc")
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        s.request(Method::POST, "/api/v1/gc")
            .send()
            .await
            .expect("gc")
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

// Hidden events are skipped before a page is cut: a page of events the
// caller may not see never looks like the end of the log.
#[tokio::test]
async fn event_pages_hold_only_what_the_caller_may_see_and_go_on() {
    let (s, _dir) = server(Anonymous::None).await;
    for (n, (user, repo)) in [
        ("dave", "team-b/data"),
        ("alice", "team-a/m"),
        ("alice", "team-a/m"),
        ("alice", "team-a/m"),
        ("dave", "team-b/data"),
        ("alice", "team-a/m"),
        ("dave", "team-b/data"),
    ]
    .into_iter()
    .enumerate()
    {
        let status = push_image_as(&s, user, repo, &format!("v{n}"), 100 + n as u64).await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let page = |path: String| {
        let s = &s;
        async move {
            let r = as_user(s, "dave", Method::GET, &path)
                .send()
                .await
                .expect("GET");
            let next = header(&r, "link").map(|l| {
                l.trim_start_matches('<')
                    .split('>')
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            });
            let events = json_body(r).await["events"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let tags: Vec<String> = events
                .iter()
                .inspect(|e| assert_eq!(e["target"]["repository"], "team-b/data"))
                .filter_map(|e| e["target"]["tag"].as_str().map(str::to_owned))
                .collect();
            (events.len(), tags, next)
        }
    };
    let (mut seen, mut next) = (Vec::new(), Some("/api/v1/events?n=1".to_owned()));
    let mut pages = 0;
    while let Some(path) = next {
        let (count, tags, more) = page(path).await;
        pages += 1;
        assert!(pages < 40, "paging does not end");
        if more.is_some() {
            assert_eq!(count, 1, "a page that goes on is full");
        }
        seen.extend(tags);
        next = more;
    }
    assert_eq!(seen, ["v0", "v4", "v6"]);
}

#[tokio::test]
async fn path_tricks_get_the_canonical_decision_or_an_error() {
    let (s, _dir) = server(Anonymous::None).await;
    assert_eq!(
        push_image_as(&s, "alice", "team-a/app", "v1", 7).await,
        StatusCode::CREATED
    );
    for path in [
        "/v2/team-a%2Fapp/manifests/v1",
        "/v2/team-a//app/manifests/v1",
        "/v2/Team-a/app/manifests/v1",
        "/v2/team-b/../team-a/app/manifests/v1",
    ] {
        let r = as_user(&s, "dave", Method::GET, path)
            .send()
            .await
            .expect("GET");
        assert!(
            r.status() == StatusCode::BAD_REQUEST
                || r.status() == StatusCode::NOT_FOUND
                || r.status() == StatusCode::FORBIDDEN,
            "{path}: {}",
            r.status()
        );
        assert_ne!(r.status(), StatusCode::OK, "{path}");
    }
}

// ---------------------------------------------------------------- tokens

/// A token for `user` (or nobody) asking for `scopes`, from `/auth/token`.
async fn token_for(s: &TestServer, user: Option<&str>, scopes: &[&str]) -> Value {
    let query: Vec<String> = scopes.iter().map(|sc| format!("scope={sc}")).collect();
    let mut req = s.request(
        Method::GET,
        &format!(
            "/auth/token?service=berth&offline_token=true&{}",
            query.join("&")
        ),
    );
    if let Some(u) = user {
        req = req.basic_auth(u, Some(password(u)));
    }
    let r = req.send().await.expect("token");
    assert_eq!(r.status(), StatusCode::OK);
    json_body(r).await
}

fn bearer(s: &TestServer, token: &str, method: Method, path: &str) -> reqwest::RequestBuilder {
    s.request(method, path).bearer_auth(token)
}

fn claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("payload");
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("b64"),
    )
    .expect("json")
}

// The Docker token flow: challenge, token for the intersection of asked and
// allowed scopes, insufficient_scope when a token lacks what is needed.
#[tokio::test]
async fn bearer_tokens_grant_the_intersection_of_scopes_and_rules() {
    let (s, _dir) = server_with(Anonymous::None, true).await;
    let r = s.get("/v2/").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let challenge = header(&r, "www-authenticate").expect("challenge");
    assert!(
        challenge.starts_with("Bearer realm=\"http://")
            && challenge.contains("/auth/token\",service=\"berth\""),
        "{challenge}"
    );

    let r = s.get("/v2/team-a/app/manifests/v1").await;
    let challenge = header(&r, "www-authenticate").expect("challenge");
    assert!(
        challenge.contains("scope=\"repository:team-a/app:pull\""),
        "{challenge}"
    );

    let alice = token_for(
        &s,
        Some("alice"),
        &[
            "repository:team-a/app:pull,push",
            "repository:team-b/x:pull,push",
        ],
    )
    .await;
    let access = claims(alice["token"].as_str().expect("token"))["access"].clone();
    assert_eq!(
        access,
        json!([
            { "type": "repository", "name": "team-a/app", "actions": ["pull", "push"] },
            { "type": "repository", "name": "team-b/x", "actions": [] },
        ])
    );
    let t = alice["token"].as_str().expect("token");
    assert_eq!(
        bearer(&s, t, Method::GET, "/v2/")
            .send()
            .await
            .expect("GET")
            .status(),
        StatusCode::OK
    );
    let r = bearer(&s, t, Method::POST, "/v2/team-a/app/blobs/uploads/")
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = bearer(&s, t, Method::POST, "/v2/team-b/x/blobs/uploads/")
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let challenge = header(&r, "www-authenticate").expect("challenge");
    assert!(
        challenge.contains("scope=\"repository:team-b/x:pull,push\"")
            && challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );

    let bob = token_for(&s, Some("bob"), &["repository:team-a/app:pull,push"]).await;
    let bob_access = claims(bob["token"].as_str().expect("token"))["access"].clone();
    assert_eq!(
        bob_access[0]["actions"],
        json!(["pull"]),
        "bob asked for push, gets pull only"
    );

    let anonymous = token_for(&s, None, &["repository:team-a/app:pull"]).await;
    assert_eq!(
        claims(anonymous["token"].as_str().expect("token"))["access"][0]["actions"],
        json!([])
    );
    assert!(
        anonymous.get("refresh_token").is_none(),
        "nobody gets no refresh token"
    );

    let r = s
        .request(Method::GET, "/auth/token?service=berth")
        .basic_auth("alice", Some("wrong"))
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // What `docker login` prints after "unauthorized: ".
    let body = json_body(r).await;
    assert_eq!(body["errors"][0]["code"], "UNAUTHORIZED");
    assert_eq!(
        body["errors"][0]["message"],
        "incorrect username or password"
    );
    let r = s
        .request(Method::GET, "/auth/token?service=other")
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_refresh_and_password_grants_work_over_post() {
    let (s, _dir) = server_with(Anonymous::None, true).await;
    let alice = token_for(&s, Some("alice"), &[]).await;
    let refresh = alice["refresh_token"]
        .as_str()
        .expect("refresh token")
        .to_owned();
    let post = |form: String| {
        let s = &s;
        async move {
            s.request(Method::POST, "/auth/token")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form)
                .send()
                .await
                .expect("POST")
        }
    };
    let r = post(format!("grant_type=refresh_token&service=berth&client_id=test&refresh_token={refresh}&scope=repository%3Ateam-a%2Fapp%3Apull")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body = json_body(r).await;
    assert_eq!(
        claims(body["access_token"].as_str().expect("token"))["access"][0]["actions"],
        json!(["pull"])
    );
    assert!(body["refresh_token"].is_string());
    let r = post("grant_type=password&service=berth&client_id=test&username=bob&password=bob&scope=repository:team-a/app:pull".into()).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r =
        post("grant_type=password&service=berth&client_id=test&username=bob&password=nope".into())
            .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        json_body(r).await["errors"][0]["message"],
        "incorrect username or password"
    );
    let access = alice["token"].as_str().expect("token").to_owned();
    let r = post(format!(
        "grant_type=refresh_token&service=berth&refresh_token={access}"
    ))
    .await;
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "an access token is not a refresh token"
    );
}

// Tokens are verified strictly: forged, re-signed, alg none, expired, future,
// wrong issuer or audience are all refused.
#[tokio::test]
async fn forged_and_expired_tokens_are_refused() {
    use base64::Engine;
    use p256::ecdsa::signature::Signer;
    use p256::pkcs8::DecodePrivateKey;
    let (s, dir) = server_with(Anonymous::None, true).await;
    let good = token_for(&s, Some("alice"), &["repository:team-a/app:pull"]).await["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let path = "/v2/team-a/app/tags/list";
    assert_ne!(
        bearer(&s, &good, Method::GET, path)
            .send()
            .await
            .expect("GET")
            .status(),
        StatusCode::UNAUTHORIZED
    );

    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let key = p256::ecdsa::SigningKey::from_pkcs8_pem(
        &std::fs::read_to_string(dir.path().join("token.pem")).expect("pem"),
    )
    .expect("key");
    let other = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).expect("other key");
    let sign = |key: &p256::ecdsa::SigningKey, header: Value, claims: Value| {
        let input = format!("{}.{}", b64(&header), b64(&claims));
        let sig: p256::ecdsa::Signature = key.sign(input.as_bytes());
        format!(
            "{input}.{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig.to_bytes())
        )
    };
    let now = chrono::Utc::now().timestamp();
    let claims_with = |iss: &str, aud: &str, nbf: i64, exp: i64| {
        json!({
            "iss": iss, "aud": aud, "sub": "alice", "nbf": nbf, "exp": exp, "iat": nbf,
            "access": [{ "type": "repository", "name": "team-a/app", "actions": ["pull", "push"] }],
        })
    };
    let es256 = json!({ "alg": "ES256", "typ": "JWT" });
    assert_ne!(
        bearer(
            &s,
            &sign(
                &key,
                es256.clone(),
                claims_with("berth", "berth", now, now + 60)
            ),
            Method::GET,
            path
        )
        .send()
        .await
        .expect("GET")
        .status(),
        StatusCode::UNAUTHORIZED,
        "a token made with the right key is accepted (sanity)"
    );
    let jwk = json!({ "alg": "ES256", "jwk": { "kty": "EC", "crv": "P-256" } });
    let bad = [
        (
            "another key",
            sign(
                &other,
                es256.clone(),
                claims_with("berth", "berth", now, now + 60),
            ),
        ),
        (
            "a key named in the token",
            sign(&other, jwk, claims_with("berth", "berth", now, now + 60)),
        ),
        (
            "expired",
            sign(
                &key,
                es256.clone(),
                claims_with("berth", "berth", now - 600, now - 300),
            ),
        ),
        (
            "not yet valid",
            sign(
                &key,
                es256.clone(),
                claims_with("berth", "berth", now + 600, now + 900),
            ),
        ),
        (
            "wrong issuer",
            sign(
                &key,
                es256.clone(),
                claims_with("evil", "berth", now, now + 60),
            ),
        ),
        (
            "wrong audience",
            sign(
                &key,
                es256.clone(),
                claims_with("berth", "other", now, now + 60),
            ),
        ),
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(&json!({ "alg": "none" })),
                b64(&claims_with("berth", "berth", now, now + 60))
            ),
        ),
        ("payload swapped", {
            let parts: Vec<&str> = good.split('.').collect();
            format!(
                "{}.{}.{}",
                parts[0],
                b64(&claims_with("berth", "berth", now, now + 60)),
                parts[2]
            )
        }),
        ("garbage", "not.a.token".to_owned()),
    ];
    for (what, token) in bad {
        let r = bearer(&s, &token, Method::GET, path)
            .send()
            .await
            .expect("GET");
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{what}");
    }
}

// What the web UI lists holds only what the caller may pull, says what the
// caller may do, and a 401 asked for by a page's script carries no Basic
// challenge (which would pop the browser's own password dialog).
#[tokio::test]
async fn repository_listings_show_only_what_the_caller_may_pull() {
    let (s, _dir) = server(Anonymous::None).await;
    for (user, repo) in [("alice", "team-a/m"), ("dave", "team-b/data")] {
        assert_eq!(
            push_image_as(&s, user, repo, "v1", 7).await,
            StatusCode::CREATED
        );
    }
    let names = |user: &'static str| {
        let s = &s;
        async move {
            let r = as_user(s, user, Method::GET, "/api/v1/repositories")
                .send()
                .await
                .expect("GET");
            let body = json_body(r).await;
            body["repositories"]
                .as_array()
                .expect("repositories")
                .iter()
                .map(|r| r["name"].as_str().unwrap_or_default().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(names("dave").await, ["team-b/data"]);
    assert_eq!(names("bob").await, ["team-a/m"]);
    assert_eq!(names("root").await, ["team-a/m", "team-b/data"]);

    let tags = |user: &'static str| {
        as_user(&s, user, Method::GET, "/api/v1/repositories/team-a/m/tags").send()
    };
    assert_eq!(
        tags("dave").await.expect("GET").status(),
        StatusCode::FORBIDDEN
    );
    let may =
        |body: serde_json::Value| (body["may"]["push"].clone(), body["may"]["promote"].clone());
    let bob = json_body(tags("bob").await.expect("GET")).await;
    assert_eq!(may(bob), (json!(false), json!(false)));
    let alice = json_body(tags("alice").await.expect("GET")).await;
    assert_eq!(alice["tags"][0]["name"], "v1");
    assert_eq!(alice["tags"][0]["by"], "alice");
    assert_eq!(may(alice), (json!(true), json!(true)));

    let anonymous = s.get("/api/v1/repositories/team-a/m/tags").await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert!(
        header(&anonymous, "www-authenticate").is_some(),
        "clients get the challenge"
    );
    let from_script = s
        .request(Method::GET, "/api/v1/repositories/team-a/m/tags")
        .header("x-requested-with", "XMLHttpRequest")
        .send()
        .await
        .expect("GET");
    assert_eq!(from_script.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(header(&from_script, "www-authenticate"), None);
}
