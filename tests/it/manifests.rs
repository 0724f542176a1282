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

#[tokio::test]
async fn malformed_and_contradictory_manifests_are_refused_clearly() {
    let s = TestServer::start().await;
    let (config, layer) = blobs(&s, "app", 6).await;
    let good = image_manifest(&config, &[&layer], None);
    let schema1 = br#"{"schemaVersion":1,"name":"app","tag":"v1","architecture":"amd64","fsLayers":[],"history":[]}"#;
    let ambiguous = serde_json::to_vec(&json!({
        "schemaVersion": 2, "config": descriptor(OCI_CONFIG, &config), "layers": [], "manifests": []
    }))
    .expect("json");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
            schema1.to_vec(),
            "schema 1",
        ),
        (OCI_INDEX, good.clone(), "contradicts"),
        (OCI_MANIFEST, ambiguous, "ambiguous"),
        (OCI_MANIFEST, b"not json".to_vec(), "not a valid manifest"),
        ("application/x-unknown", good, "contradicts"),
    ];
    for (ct, body, expect) in cases {
        let r = s.put_manifest("app", "bad", ct, &body).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{expect}");
        let err = json_body(r).await;
        assert_eq!(err["errors"][0]["code"], "MANIFEST_INVALID");
        let msg = err["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(msg.contains(expect), "{msg:?} should mention {expect:?}");
    }
}

// Manifests of 4 MiB are accepted; larger ones get 413.
#[tokio::test]
async fn manifests_up_to_four_mib_are_accepted_and_larger_are_413() {
    let s = TestServer::start().await;
    let (config, layer) = blobs(&s, "app", 7).await;
    let sized = |target: usize| {
        let base = image_manifest(
            &config,
            &[&layer],
            Some(json!({"annotations": {"pad": ""}})),
        );
        let pad = "x".repeat(target - base.len());
        let body = image_manifest(
            &config,
            &[&layer],
            Some(json!({"annotations": {"pad": pad}})),
        );
        assert_eq!(body.len(), target);
        body
    };
    let r = s
        .put_manifest("app", "big", OCI_MANIFEST, &sized(4 * 1024 * 1024))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = s
        .put_manifest("app", "huge", OCI_MANIFEST, &sized(4 * 1024 * 1024 + 1))
        .await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error_code(r).await, "SIZE_INVALID");
}

// Spec: an index's child manifests must exist in the repository; nested indexes are fine.
#[tokio::test]
async fn indexes_need_their_children_and_may_nest() {
    let s = TestServer::start().await;
    let (m1, _) = s.push_image("multi", "amd64", 8).await;
    let (m2, _) = s.push_image("multi", "arm64", 9).await;
    let index = |children: &[&[u8]], media: &str| {
        serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": OCI_INDEX,
            "manifests": children.iter().map(|c| descriptor(media, c)).collect::<Vec<_>>(),
        }))
        .expect("json")
    };
    let idx = index(&[&m1, &m2], OCI_MANIFEST);
    assert_eq!(
        s.put_manifest("multi", "latest", OCI_INDEX, &idx)
            .await
            .status(),
        StatusCode::CREATED
    );
    let nested = index(&[&idx], OCI_INDEX);
    assert_eq!(
        s.put_manifest("multi", "nested", OCI_INDEX, &nested)
            .await
            .status(),
        StatusCode::CREATED
    );
    let missing = index(&[&m1, b"{\"not\":\"pushed\"}"], OCI_MANIFEST);
    let r = s.put_manifest("multi", "broken", OCI_INDEX, &missing).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(r).await, "MANIFEST_BLOB_UNKNOWN");
}

#[tokio::test]
async fn docker_schema2_manifests_and_lists_are_accepted() {
    let s = TestServer::start().await;
    let (config, layer) = blobs(&s, "legacy", 10).await;
    let m = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
        "config": descriptor("application/vnd.docker.container.image.v1+json", &config),
        "layers": [descriptor("application/vnd.docker.image.rootfs.diff.tar.gzip", &layer)],
    }))
    .expect("json");
    assert_eq!(
        s.put_manifest("legacy", "v1", DOCKER_MANIFEST, &m)
            .await
            .status(),
        StatusCode::CREATED
    );
    let list = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": DOCKER_LIST,
        "manifests": [{ "mediaType": DOCKER_MANIFEST, "digest": sha256(&m), "size": m.len(),
                        "platform": {"architecture": "amd64", "os": "linux"} }],
    }))
    .expect("json");
    assert_eq!(
        s.put_manifest("legacy", "list", DOCKER_LIST, &list)
            .await
            .status(),
        StatusCode::CREATED
    );
    let r = s.get("/v2/legacy/manifests/list").await;
    assert_eq!(header(&r, "content-type").as_deref(), Some(DOCKER_LIST));
}

// Spec (OCI image v1.1): artifacts with any artifactType or config media type; no layers.
#[tokio::test]
async fn artifacts_and_layerless_manifests_are_accepted() {
    let s = TestServer::start().await;
    let empty = b"{}".to_vec();
    s.push_blob("models/resnet", &empty).await;
    let weights = blob(11, 4096);
    s.push_blob("models/resnet", &weights).await;
    let artifact = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.model.v1",
        "config": descriptor("application/vnd.oci.empty.v1+json", &empty),
        "layers": [descriptor("application/octet-stream", &weights)],
    }))
    .expect("json");
    assert_eq!(
        s.put_manifest("models/resnet", "v1", OCI_MANIFEST, &artifact)
            .await
            .status(),
        StatusCode::CREATED
    );
    let custom_config = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": descriptor("application/vnd.example.config.v1+json", &empty),
        "layers": [],
    }))
    .expect("json");
    assert_eq!(
        s.put_manifest("models/resnet", "v2", OCI_MANIFEST, &custom_config)
            .await
            .status(),
        StatusCode::CREATED
    );
}

// Spec: a manifest with a subject is accepted even when the subject is absent,
// and the response carries OCI-Subject.
#[tokio::test]
async fn a_dangling_subject_is_accepted_with_oci_subject() {
    let s = TestServer::start().await;
    let empty = b"{}".to_vec();
    s.push_blob("app", &empty).await;
    let subject = sha256(b"not pushed");
    let body = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/x-sig",
        "config": descriptor("application/vnd.oci.empty.v1+json", &empty), "layers": [],
        "subject": { "mediaType": OCI_MANIFEST, "digest": subject, "size": 10 },
    }))
    .expect("json");
    let r = s
        .put_manifest("app", &sha256(&body), OCI_MANIFEST, &body)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(header(&r, "oci-subject"), Some(subject));
}

// Several tags in one PUT by digest, all or none.
#[tokio::test]
async fn several_tags_at_once_all_or_none() {
    let s = TestServer::start().await;
    let (config, layer) = blobs(&s, "app", 12).await;
    let body = image_manifest(&config, &[&layer], None);
    let digest = sha256(&body);
    let r = s
        .put_manifest("app", &format!("{digest}?tag=a&tag=b"), OCI_MANIFEST, &body)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let tags: Vec<_> = r
        .headers()
        .get_all("oci-tag")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert_eq!(tags, ["a", "b"]);
    for t in ["a", "b"] {
        assert_eq!(
            header(
                &s.head(&format!("/v2/app/manifests/{t}")).await,
                "docker-content-digest"
            ),
            Some(digest.clone())
        );
    }
    let r = s
        .put_manifest(
            "app",
            &format!("{digest}?tag=c&tag=-bad"),
            OCI_MANIFEST,
            &body,
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        s.head("/v2/app/manifests/c").await.status(),
        StatusCode::NOT_FOUND
    );
}

// Spec (content management): DELETE by tag removes the tag; by digest the manifest.
#[tokio::test]
async fn deleting_tags_and_manifests() {
    let s = TestServer::start().await;
    let (_, digest) = s.push_image("app", "v1", 13).await;
    let r = s
        .put_manifest(
            "app",
            "v1-copy",
            OCI_MANIFEST,
            &s.get("/v2/app/manifests/v1")
                .await
                .bytes()
                .await
                .expect("b"),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);

    assert_eq!(
        s.delete("/v2/app/manifests/v1").await.status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(
        s.get("/v2/app/manifests/v1").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.get(&format!("/v2/app/manifests/{digest}")).await.status(),
        StatusCode::OK
    );

    assert_eq!(
        s.delete(&format!("/v2/app/manifests/{digest}"))
            .await
            .status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(
        s.get(&format!("/v2/app/manifests/{digest}")).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.get("/v2/app/manifests/v1-copy").await.status(),
        StatusCode::NOT_FOUND
    );
    let tags = json_body(s.get("/v2/app/tags/list").await).await;
    assert_eq!(tags["tags"], json!([]));

    let r = s.delete(&format!("/v2/app/manifests/{digest}")).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(r).await, "MANIFEST_UNKNOWN");
}

#[tokio::test]
async fn manifest_deletes_can_be_disabled() {
    let s = TestServer::with_config(|c| c.registry.delete_enabled = false).await;
    s.push_image("app", "v1", 14).await;
    let r = s.delete("/v2/app/manifests/v1").await;
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(error_code(r).await, "UNSUPPORTED");
}

#[tokio::test]
async fn retagging_moves_the_tag() {
    let s = TestServer::start().await;
    s.push_image("app", "latest", 15).await;
    let (_, second) = s.push_image("app", "latest", 16).await;
    assert_eq!(
        header(
            &s.head("/v2/app/manifests/latest").await,
            "docker-content-digest"
        ),
        Some(second)
    );
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
