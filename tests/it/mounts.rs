use reqwest::{Method, StatusCode};

use crate::support::*;

async fn mount(s: &TestServer, to: &str, digest: &str, from: Option<&str>) -> reqwest::Response {
    let q = match from {
        Some(f) => format!("mount={digest}&from={f}"),
        None => format!("mount={digest}"),
    };
    s.request(Method::POST, &format!("/v2/{to}/blobs/uploads/?{q}"))
        .send()
        .await
        .expect("POST")
}

// Spec: a successful cross-repository mount answers 201 with the blob's Location.
#[tokio::test]
async fn mount_with_from_links_the_blob() {
    let s = TestServer::start().await;
    let digest = s.push_blob("src", &blob(20, 500)).await;
    let r = mount(&s, "dst", &digest, Some("src")).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(location(&r), format!("/v2/dst/blobs/{digest}"));
    assert_eq!(
        s.get(&format!("/v2/dst/blobs/{digest}")).await.status(),
        StatusCode::OK
    );
    assert_eq!(s.stored_objects(Area::Blobs).await.len(), 1);
}

// Spec: a mount that cannot be done falls back to an upload session (202).
#[tokio::test]
async fn impossible_mounts_open_an_upload_session() {
    let s = TestServer::start().await;
    let digest = s.push_blob("src", &blob(21, 500)).await;
    let missing = sha256(b"not here");
    for (d, from) in [
        (&missing, Some("src")),
        (&missing, None),
        (&digest, Some("elsewhere")),
        (&digest, Some("Bad%20Name")),
    ] {
        let r = mount(&s, "dst", d, from).await;
        let st = r.status();
        let loc = header(&r, "location");
        assert_eq!(
            st,
            StatusCode::ACCEPTED,
            "{d} from {from:?}: {:?} {loc:?}",
            r.text().await
        );
        assert!(
            loc.unwrap_or_default()
                .starts_with("/v2/dst/blobs/uploads/")
        );
    }
    assert_eq!(
        s.get(&format!("/v2/dst/blobs/{digest}")).await.status(),
        StatusCode::NOT_FOUND
    );
}

// Spec: without `from`, a registry with automatic content discovery MAY mount (201).
#[tokio::test]
async fn mount_without_from_finds_the_blob_when_automatic_mounts_are_on() {
    let s = TestServer::start().await;
    let digest = s.push_blob("src", &blob(22, 500)).await;
    assert_eq!(
        mount(&s, "dst", &digest, None).await.status(),
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn mount_without_from_opens_a_session_when_automatic_mounts_are_off() {
    let s = TestServer::with_config(|c| c.registry.auto_mount = false).await;
    let digest = s.push_blob("src", &blob(23, 500)).await;
    assert_eq!(
        mount(&s, "dst", &digest, None).await.status(),
        StatusCode::ACCEPTED
    );
}
