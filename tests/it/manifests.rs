use reqwest::StatusCode;
use serde_json::json;

use crate::support::*;

const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

async fn blobs(s: &TestServer, repo: &str, seed: u64) -> (Vec<u8>, Vec<u8>) {
    let config = format!("{{\"architecture\":\"amd64\",\"seed\":{seed}}}").into_bytes();
    let layer = blob(seed, 2048);
    s.push_blob(repo, &config).await;
    s.push_blob(repo, &layer).await;
    (config, layer)
}

// Spec (push/pull manifests): PUT answers 201 with Location; GET by tag and digest
// returns the exact bytes with their media type and Docker-Content-Digest.
#[tokio::test]
async fn manifests_round_trip_byte_for_byte_by_tag_and_digest() {
    let s = TestServer::start().await;
    let (config, layer) = blobs(&s, "app", 1).await;
    let body = image_manifest(&config, &[&layer], None);
    let digest = sha256(&body);
    let r = s.put_manifest("app", "v1", OCI_MANIFEST, &body).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(location(&r), format!("/v2/app/manifests/{digest}"));
    assert_eq!(
        header(&r, "docker-content-digest").as_deref(),
        Some(digest.as_str())
    );
    for reference in ["v1", digest.as_str()] {
        let r = s.get(&format!("/v2/app/manifests/{reference}")).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(header(&r, "content-type").as_deref(), Some(OCI_MANIFEST));
        assert_eq!(
            header(&r, "docker-content-digest").as_deref(),
            Some(digest.as_str())
        );
        assert_eq!(r.bytes().await.expect("body").as_ref(), &body[..]);
        let r = s.head(&format!("/v2/app/manifests/{reference}")).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(header(&r, "content-length"), Some(body.len().to_string()));
    }
}

#[tokio::test]
async fn unknown_manifests_are_404_manifest_unknown() {
    let s = TestServer::start().await;
    for reference in ["nope", &sha256(b"x")] {
        let r = s.get(&format!("/v2/app/manifests/{reference}")).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(error_code(r).await, "MANIFEST_UNKNOWN");
        assert_eq!(
            s.head(&format!("/v2/app/manifests/{reference}"))
                .await
                .status(),
            StatusCode::NOT_FOUND
        );
    }
}

// Spec: a manifest whose blobs are not in the repository MUST be refused (MANIFEST_BLOB_UNKNOWN).
#[tokio::test]
async fn a_missing_layer_or_config_is_manifest_blob_unknown() {
    let s = TestServer::start().await;
    let (config, layer) = blobs(&s, "app", 2).await;
    let missing = blob(99, 10);
    for body in [
        image_manifest(&config, &[&layer, &missing], None),
        image_manifest(&missing, &[&layer], None),
    ] {
        let r = s.put_manifest("app", "v1", OCI_MANIFEST, &body).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_eq!(error_code(r).await, "MANIFEST_BLOB_UNKNOWN");
    }
    // Blobs of another repository do not count.
    let (c2, l2) = blobs(&s, "other", 3).await;
    let r = s
        .put_manifest(
            "app",
            "v1",
            OCI_MANIFEST,
            &image_manifest(&c2, &[&l2], None),
        )
        .await;
    assert_eq!(error_code(r).await, "MANIFEST_BLOB_UNKNOWN");
    assert_eq!(
        s.get("/v2/app/manifests/v1").await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_descriptor_with_the_wrong_size_is_manifest_invalid() {
    let s = TestServer::start().await;
    let (config, layer) = blobs(&s, "app", 4).await;
    let body = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, &config),
        "layers": [{ "mediaType": OCI_LAYER, "digest": sha256(&layer), "size": 1 }],
    }))
    .expect("json");
    let r = s.put_manifest("app", "v1", OCI_MANIFEST, &body).await;
    assert_eq!(error_code(r).await, "MANIFEST_INVALID");
}

// Spec: a PUT by digest whose content has another digest MUST be refused.
#[tokio::test]
async fn put_by_digest_must_match_the_content() {
    let s = TestServer::start().await;
    let (config, layer) = blobs(&s, "app", 5).await;
    let body = image_manifest(&config, &[&layer], None);
    let r = s
        .put_manifest("app", &sha256(b"other"), OCI_MANIFEST, &body)
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(r).await, "DIGEST_INVALID");
    let r = s
        .put_manifest("app", &sha256(&body), OCI_MANIFEST, &body)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    // Addressed by sha512, the digest is computed with sha512.
    let d512 = berth::oci::Algorithm::Sha512.digest_of(&body).to_string();
    let r = s.put_manifest("app", &d512, OCI_MANIFEST, &body).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(
        s.get(&format!("/v2/app/manifests/{d512}"))
            .await
            .bytes()
            .await
            .expect("b")
            .as_ref(),
        &body[..]
    );
}

// A manifest PUT to a malformed reference gets a 400 with an OCI code
// (reading one is a 404: see the next test).
#[tokio::test]
async fn malformed_references_are_400_with_an_oci_code_on_push() {
    let s = TestServer::start().await;
    let r = s
        .put_manifest("app", "sha256:totallywrong", OCI_MANIFEST, b"{}")
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(r).await, "DIGEST_INVALID");
    let r = s.put_manifest("app", "-notatag", OCI_MANIFEST, b"{}").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(r).await, "MANIFEST_INVALID");
    let r = s
        .put_manifest("app", &"a".repeat(129), OCI_MANIFEST, b"{}")
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = s
        .get(&format!("/v2/app/manifests/{}", "a".repeat(129)))
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

// Spec (conformance suite, "Pull manifests"): HEAD and GET of a reference that
// cannot name a manifest (the suite's `.INVALID_MANIFEST_NAME`) answer 404;
// a PUT to it is still refused as invalid.
#[tokio::test]
async fn a_reference_that_names_nothing_is_not_found_when_read() {
    let s = TestServer::start().await;
    let (config, layer) = blobs(&s, "app", 6).await;
    let body = image_manifest(&config, &[&layer], None);
    assert_eq!(
        s.put_manifest("app", "v1", OCI_MANIFEST, &body)
            .await
            .status(),
        StatusCode::CREATED
    );
    for bad in [".INVALID_MANIFEST_NAME", "-x", "sha256:abc", "sha999:00"] {
        let path = format!("/v2/app/manifests/{bad}");
        let r = s.head(&path).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "HEAD {bad}");
        let r = s.get(&path).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "GET {bad}");
        assert_eq!(error_code(r).await, "MANIFEST_UNKNOWN", "GET {bad}");
        let r = s.delete(&path).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "DELETE {bad}");
        let r = s.put_manifest("app", bad, OCI_MANIFEST, &body).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "PUT {bad}");
    }
    let r = s.put_manifest("app", ".bad", OCI_MANIFEST, &body).await;
    assert_eq!(error_code(r).await, "MANIFEST_INVALID", "an invalid tag");
    let r = s
        .put_manifest("app", "sha256:abc", OCI_MANIFEST, &body)
        .await;
    assert_eq!(error_code(r).await, "DIGEST_INVALID", "an invalid digest");
}

/// An unknown manifest asked for by digest is named `repo@digest`, as people
/// write it (`repo:tag` is for tags).
#[tokio::test]
async fn an_unknown_manifest_is_named_as_people_write_it() {
    let s = TestServer::start().await;
    let d = sha256(b"nothing");
    let body = json_body(s.get(&format!("/v2/app/manifests/{d}")).await).await;
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains(&format!("app@{d}")), "{body}");
    let body = json_body(s.get("/v2/app/manifests/v9").await).await;
    assert!(body.to_string().contains("app:v9"), "{body}");
}
