use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn catalog_lists_repositories_in_order_with_pagination() {
    let s = TestServer::start().await;
    for repo in ["zeta", "alpha", "team/models/bert"] {
        s.push_blob(repo, b"x").await;
    }
    let body = json_body(s.get("/v2/_catalog").await).await;
    assert_eq!(
        body,
        json!({ "repositories": ["alpha", "team/models/bert", "zeta"] })
    );
    let r = s.get("/v2/_catalog?n=1").await;
    assert_eq!(
        header(&r, "link").as_deref(),
        Some("</v2/_catalog?n=1&last=alpha>; rel=\"next\"")
    );
    let r = s.get("/v2/_catalog?n=1&last=alpha").await;
    assert_eq!(
        json_body(r).await["repositories"],
        json!(["team/models/bert"])
    );
}

/// A repository exists once it holds content or a tag. Every push refused
/// here opened a session (or a transaction) in a new repository; none of
/// them may make it appear in the catalog or give it a tag list.
#[tokio::test]
async fn refused_pushes_leave_no_repository_behind() {
    let s = TestServer::start().await;
    let bytes = blob(3, 100);
    let wrong = sha256(b"something else");

    // Sessions whose finish is refused: a wrong digest, an unknown algorithm.
    let finish = |repo: &'static str, digest: String| {
        let (s, bytes) = (&s, bytes.clone());
        async move {
            let put = with_query(&s.open_upload(repo).await, &format!("digest={digest}"));
            s.request(Method::PUT, &put)
                .body(bytes)
                .send()
                .await
                .expect("PUT")
        }
    };
    let r = finish("wrong-digest", wrong.clone()).await;
    assert_eq!(error_code(r).await, "DIGEST_INVALID");
    let r = finish("unknown-alg", format!("sha999:{}", "0".repeat(64))).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // A single-request POST with a mismatched digest.
    let r = s
        .request(
            Method::POST,
            &format!("/v2/single-post/blobs/uploads/?digest={wrong}"),
        )
        .body(bytes.clone())
        .send()
        .await
        .expect("POST");
    assert_eq!(error_code(r).await, "DIGEST_INVALID");

    // A mount of a blob nobody holds falls back to a session.
    let r = s
        .request(
            Method::POST,
            &format!("/v2/mount-fallback/blobs/uploads/?mount={wrong}&from=nowhere"),
        )
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), StatusCode::ACCEPTED);

    // A manifest whose layer is not there.
    let (config, layer) = (blob(4, 10), blob(5, 10));
    let manifest = image_manifest(&config, &[&layer], None);
    let r = s
        .put_manifest("refused-manifest", "v1", OCI_MANIFEST, &manifest)
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // Nor are its bytes kept (an object nothing records: an orphan for fsck).
    let key = berth::storage::StorageKey::Blob(sha256(&manifest).parse().expect("digest"));
    assert_eq!(s.blobs().size(&key).await.expect("size"), None);

    let body = json_body(s.get("/v2/_catalog").await).await;
    assert_eq!(body, json!({ "repositories": [] }), "nothing was stored");
    for repo in [
        "wrong-digest",
        "unknown-alg",
        "single-post",
        "mount-fallback",
        "refused-manifest",
    ] {
        let r = s.get(&format!("/v2/{repo}/tags/list")).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{repo}");
        assert_eq!(error_code(r).await, "NAME_UNKNOWN", "{repo}");
    }

    // The same session, given the right digest, makes the repository.
    s.push_blob("wrong-digest", &bytes).await;
    let body = json_body(s.get("/v2/_catalog").await).await;
    assert_eq!(body, json!({ "repositories": ["wrong-digest"] }));
    let r = s.get("/v2/wrong-digest/tags/list").await;
    assert_eq!(json_body(r).await["tags"], json!([]));
}

// Berth's own listing of repositories (the web UI's first page): kind from
// the newest manifest, counts, size, last push; filtered by a name part
// and paged through `Link`. And a repository's tags with what each names.
#[tokio::test]
async fn repositories_and_tags_are_listed_with_kind_size_and_last_push() {
    let s = TestServer::start().await;
    let (manifest, image) = s.push_image("apps/web", "v1", 3).await;
    s.put_manifest("apps/web", "latest", OCI_MANIFEST, &manifest)
        .await;
    let config = b"{\"framework\":\"sklearn\"}";
    let weights = blob(9, 2048);
    s.push_blob("models/churn", config).await;
    s.push_blob("models/churn", &weights).await;
    let model = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.model.v1",
        "config": descriptor("application/vnd.oci.empty.v1+json", config),
        "layers": [descriptor("application/octet-stream", &weights)],
    }))
    .expect("json");
    s.put_manifest("models/churn", "v1", OCI_MANIFEST, &model)
        .await;
    s.push_blob("data/churn", b"rows").await;

    let body = json_body(s.get("/api/v1/repositories").await).await;
    let listed = body["repositories"].as_array().expect("repositories");
    let names: Vec<_> = listed.iter().map(|r| r["name"].clone()).collect();
    assert_eq!(
        names,
        [
            json!("apps/web"),
            json!("data/churn"),
            json!("models/churn")
        ]
    );
    assert_eq!(listed[0]["kind"], "image");
    assert_eq!(listed[0]["tags"], 2);
    assert_eq!(listed[0]["size"], json!(10 + 1024 + 3), "config and layer");
    assert!(
        listed[0]["lastPush"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    assert_eq!(
        listed[1]["kind"],
        json!(null),
        "blobs only: no manifest yet"
    );
    assert_eq!(listed[2]["kind"], "model");
    assert_eq!(
        listed[2]["artifactType"],
        "application/vnd.example.model.v1"
    );

    let r = s.get("/api/v1/repositories?q=churn&n=1").await;
    assert_eq!(
        header(&r, "link").as_deref(),
        Some("</api/v1/repositories?q=churn&last=data%2Fchurn>; rel=\"next\"")
    );
    let page = json_body(r).await;
    assert_eq!(page["repositories"][0]["name"], "data/churn");
    let next = json_body(
        s.get("/api/v1/repositories?q=churn&last=data%2Fchurn")
            .await,
    )
    .await;
    assert_eq!(next["repositories"][0]["name"], "models/churn");

    let r = s.get("/api/v1/repositories/apps/web/tags?n=1").await;
    assert_eq!(
        header(&r, "link").as_deref(),
        Some("</api/v1/repositories/apps/web/tags?n=1&last=latest>; rel=\"next\"")
    );
    let tags = json_body(r).await;
    let latest = &tags["tags"][0];
    assert_eq!(latest["name"], "latest");
    assert_eq!(latest["digest"], json!(image));
    assert_eq!(latest["kind"], "image");
    assert_eq!(latest["size"], json!(manifest.len() + 10 + 1024 + 3));
    assert_eq!(latest["environment"], false);
    let r = s.get("/api/v1/repositories/no/such/tags").await;
    assert_eq!(error_code(r).await, "NAME_UNKNOWN");
}
