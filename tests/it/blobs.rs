use reqwest::{Method, StatusCode};

use crate::support::*;

const DUMMY: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

// Spec (pull): a blob that does not exist MUST answer 404 to HEAD and GET.
#[tokio::test]
async fn unknown_blob_is_404_blob_unknown() {
    let s = TestServer::start().await;
    let r = s.head(&format!("/v2/a/blobs/{DUMMY}")).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = s.get(&format!("/v2/a/blobs/{DUMMY}")).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(r).await, "BLOB_UNKNOWN");
}

// Spec: POST with ?digest= and the blob as body is a complete monolithic upload (201).
#[tokio::test]
async fn monolithic_post_then_get_head_round_trip() {
    let s = TestServer::start().await;
    let bytes = blob(1, 100_000);
    let digest = sha256(&bytes);
    let r = s
        .request(
            Method::POST,
            &format!("/v2/team/x/blobs/uploads/?digest={digest}"),
        )
        .header("content-type", "application/octet-stream")
        .body(bytes.clone())
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(location(&r), format!("/v2/team/x/blobs/{digest}"));
    assert_eq!(
        header(&r, "docker-content-digest").as_deref(),
        Some(digest.as_str())
    );

    let r = s.head(&format!("/v2/team/x/blobs/{digest}")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "content-length").as_deref(), Some("100000"));
    assert_eq!(
        header(&r, "docker-content-digest").as_deref(),
        Some(digest.as_str())
    );

    let r = s.get(&format!("/v2/team/x/blobs/{digest}")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.bytes().await.expect("body").as_ref(), bytes.as_slice());
}

#[tokio::test]
async fn post_then_put_with_body_creates_the_blob() {
    let s = TestServer::start().await;
    let bytes = blob(2, 5000);
    let digest = s.push_blob("a", &bytes).await;
    assert_eq!(
        s.get(&format!("/v2/a/blobs/{digest}"))
            .await
            .bytes()
            .await
            .expect("b")
            .as_ref(),
        &bytes[..]
    );
}

// Spec: range requests on blobs answer 206 with Content-Range.
#[tokio::test]
async fn range_reads_answer_206_and_416() {
    let s = TestServer::start().await;
    let bytes = blob(3, 1000);
    let digest = s.push_blob("a", &bytes).await;
    let path = format!("/v2/a/blobs/{digest}");
    let cases = [
        ("bytes=0-9", 0..10),
        ("bytes=990-", 990..1000),
        ("bytes=-5", 995..1000),
        ("bytes=100-5000", 100..1000),
    ];
    for (range, want) in cases {
        let r = s
            .request(Method::GET, &path)
            .header("range", range)
            .send()
            .await
            .expect("GET");
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        let expected_cr = format!("bytes {}-{}/1000", want.start, want.end - 1);
        assert_eq!(
            header(&r, "content-range").as_deref(),
            Some(expected_cr.as_str())
        );
        assert_eq!(r.bytes().await.expect("body").as_ref(), &bytes[want]);
    }
    let r = s
        .request(Method::GET, &path)
        .header("range", "bytes=1000-")
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(header(&r, "content-range").as_deref(), Some("bytes */1000"));
}

// Spec: a blob PUT whose digest does not match the content MUST fail with DIGEST_INVALID.
#[tokio::test]
async fn wrong_digest_is_refused_and_nothing_becomes_visible() {
    let s = TestServer::start().await;
    let bytes = blob(4, 4096);
    let claimed = sha256(b"something else");
    let r = s
        .request(
            Method::POST,
            &format!("/v2/a/blobs/uploads/?digest={claimed}"),
        )
        .body(bytes.clone())
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(r).await, "DIGEST_INVALID");
    assert_eq!(
        s.head(&format!("/v2/a/blobs/{claimed}")).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.head(&format!("/v2/a/blobs/{}", sha256(&bytes)))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    let stored = s.stored_objects(Area::Blobs).await;
    assert!(stored.is_empty(), "nothing stored: {stored:?}");
}

#[tokio::test]
async fn malformed_digests_are_digest_invalid() {
    let s = TestServer::start().await;
    for d in [
        "sha256:abc",
        "sha256:ABCDEF0000000000000000000000000000000000000000000000000000000000",
        "md5:0",
        "nocolon1",
    ] {
        let r = s.get(&format!("/v2/a/blobs/{d}")).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{d}");
        assert_eq!(error_code(r).await, "DIGEST_INVALID");
    }
}

// A repository reads only the blobs it holds.
#[tokio::test]
async fn a_repository_cannot_read_another_repositorys_blob() {
    let s = TestServer::start().await;
    let digest = s.push_blob("team-a/secret", &blob(5, 64)).await;
    assert_eq!(
        s.get(&format!("/v2/team-a/secret/blobs/{digest}"))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        s.get(&format!("/v2/team-b/app/blobs/{digest}"))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.head(&format!("/v2/team-b/app/blobs/{digest}"))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn the_same_blob_pushed_to_two_repositories_is_stored_once() {
    let s = TestServer::start().await;
    let bytes = blob(6, 10_000);
    s.push_blob("one", &bytes).await;
    let digest = s.push_blob("two", &bytes).await;
    assert_eq!(s.stored_objects(Area::Blobs).await.len(), 1);
    assert!(
        s.stored_objects(Area::Uploads).await.is_empty(),
        "the second copy is not kept"
    );
    let got = s.get(&format!("/v2/two/blobs/{digest}")).await;
    assert_eq!(got.bytes().await.expect("b").as_ref(), bytes.as_slice());
}

// Spec (content management): DELETE of a blob answers 202, then GET 404.
#[tokio::test]
async fn deleting_a_blob_unlinks_it_from_the_repository() {
    let s = TestServer::start().await;
    let digest = s.push_blob("a", &blob(7, 10)).await;
    s.push_blob("b", &blob(7, 10)).await;
    let r = s.delete(&format!("/v2/a/blobs/{digest}")).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(
        s.get(&format!("/v2/a/blobs/{digest}")).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.get(&format!("/v2/b/blobs/{digest}")).await.status(),
        StatusCode::OK
    );
    let r = s.delete(&format!("/v2/a/blobs/{digest}")).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(r).await, "BLOB_UNKNOWN");
}

#[tokio::test]
async fn deletes_can_be_disabled() {
    let s = TestServer::with_config(|c| c.registry.delete_enabled = false).await;
    let digest = s.push_blob("a", &blob(8, 10)).await;
    let r = s.delete(&format!("/v2/a/blobs/{digest}")).await;
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(error_code(r).await, "UNSUPPORTED");
    assert_eq!(
        s.get(&format!("/v2/a/blobs/{digest}")).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn sha512_blobs_are_accepted_and_addressed_by_sha512() {
    let s = TestServer::start().await;
    let bytes = blob(9, 3000);
    let digest = berth::oci::Algorithm::Sha512.digest_of(&bytes).to_string();
    let r = s
        .request(
            Method::POST,
            &format!("/v2/a/blobs/uploads/?digest={digest}"),
        )
        .body(bytes.clone())
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = s.get(&format!("/v2/a/blobs/{digest}")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.bytes().await.expect("body").as_ref(), &bytes[..]);
}

#[tokio::test]
async fn an_empty_blob_can_be_pushed_and_read() {
    let s = TestServer::start().await;
    let digest = s.push_blob("a", b"").await;
    let r = s.get(&format!("/v2/a/blobs/{digest}")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.bytes().await.expect("body").is_empty());
}
