use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

const EMPTY_MT: &str = "application/vnd.oci.empty.v1+json";

/// Pushes an artifact whose subject is `subject` (a manifest's bytes) and returns its digest.
async fn attach(
    s: &TestServer,
    repo: &str,
    subject: &[u8],
    artifact_type: Option<&str>,
    config_type: &str,
    note: &str,
) -> String {
    let empty = b"{}".to_vec();
    s.push_blob(repo, &empty).await;
    let mut m = json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": descriptor(config_type, &empty),
        "layers": [descriptor(EMPTY_MT, &empty)],
        "subject": descriptor(OCI_MANIFEST, subject),
        "annotations": { "note": note },
    });
    if let Some(t) = artifact_type {
        m["artifactType"] = json!(t);
    }
    let body = serde_json::to_vec(&m).expect("json");
    let r = s
        .put_manifest(repo, &sha256(&body), OCI_MANIFEST, &body)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(header(&r, "oci-subject"), Some(sha256(subject)));
    sha256(&body)
}

fn entries(index: &Value) -> Vec<Value> {
    index["manifests"].as_array().cloned().unwrap_or_default()
}

// Spec (content discovery): an unknown subject answers 200 with an empty index.
#[tokio::test]
async fn an_unknown_subject_has_an_empty_index() {
    let s = TestServer::start().await;
    let r = s
        .get(&format!("/v2/app/referrers/{}", sha256(b"nothing")))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "content-type").as_deref(), Some(OCI_INDEX));
    let index = json_body(r).await;
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(index["mediaType"], OCI_INDEX);
    assert!(entries(&index).is_empty());
}

// Spec: each descriptor carries artifactType (or the config media type) and the
// referrer's annotations; ?artifactType= filters and says so in OCI-Filters-Applied.
#[tokio::test]
async fn referrers_are_listed_with_artifact_type_annotations_and_filtering() {
    let s = TestServer::start().await;
    let (subject, subject_digest) = s.push_image("app", "v1", 1).await;
    let sig = attach(
        &s,
        "app",
        &subject,
        Some("application/vnd.example.sig"),
        EMPTY_MT,
        "sig",
    )
    .await;
    let sbom = attach(
        &s,
        "app",
        &subject,
        None,
        "application/vnd.example.sbom",
        "sbom",
    )
    .await;
    let eval = attach(
        &s,
        "app",
        &subject,
        Some("application/vnd.berth.evaluation.v1+json"),
        EMPTY_MT,
        "eval",
    )
    .await;

    let index = json_body(s.get(&format!("/v2/app/referrers/{subject_digest}")).await).await;
    let all = entries(&index);
    assert_eq!(all.len(), 3);
    let by_digest = |d: &str| {
        all.iter()
            .find(|e| e["digest"] == d)
            .cloned()
            .expect("listed")
    };
    assert_eq!(
        by_digest(&sig)["artifactType"],
        "application/vnd.example.sig"
    );
    assert_eq!(
        by_digest(&sbom)["artifactType"],
        "application/vnd.example.sbom"
    );
    assert_eq!(by_digest(&eval)["annotations"], json!({ "note": "eval" }));
    assert_eq!(by_digest(&sig)["mediaType"], OCI_MANIFEST);
    assert!(by_digest(&sig)["size"].as_u64().is_some_and(|n| n > 0));

    let r = s
        .get(&format!(
            "/v2/app/referrers/{subject_digest}?artifactType=application/vnd.example.sbom"
        ))
        .await;
    assert_eq!(
        header(&r, "oci-filters-applied").as_deref(),
        Some("artifactType")
    );
    let filtered = entries(&json_body(r).await);
    assert_eq!(filtered.len(), 1);
    assert_eq!(filtered[0]["digest"], sbom.as_str());

    let r = s.get(&format!("/v2/app/referrers/{subject_digest}")).await;
    assert!(header(&r, "oci-filters-applied").is_none());

    // Referrers live in their repository.
    let other = json_body(
        s.get(&format!("/v2/other/referrers/{subject_digest}"))
            .await,
    )
    .await;
    assert!(entries(&other).is_empty());

    // Deleting a referrer removes it from the list.
    assert_eq!(
        s.delete(&format!("/v2/app/manifests/{sig}")).await.status(),
        StatusCode::ACCEPTED
    );
    let index = json_body(s.get(&format!("/v2/app/referrers/{subject_digest}")).await).await;
    assert_eq!(entries(&index).len(), 2);
}

#[tokio::test]
async fn an_index_can_be_a_referrer() {
    let s = TestServer::start().await;
    let (subject, subject_digest) = s.push_image("app", "v1", 2).await;
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX, "artifactType": "application/x-bundle",
        "manifests": [descriptor(OCI_MANIFEST, &subject)],
        "subject": descriptor(OCI_MANIFEST, &subject),
    }))
    .expect("json");
    let r = s
        .put_manifest("app", &sha256(&index), OCI_INDEX, &index)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let listed =
        entries(&json_body(s.get(&format!("/v2/app/referrers/{subject_digest}")).await).await);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["mediaType"], OCI_INDEX);
    assert_eq!(listed[0]["artifactType"], "application/x-bundle");
}

#[tokio::test]
async fn a_malformed_subject_digest_is_digest_invalid() {
    let s = TestServer::start().await;
    let r = s.get("/v2/app/referrers/sha256:nope").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(r).await, "DIGEST_INVALID");
}
