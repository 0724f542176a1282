//! The server driven through storage faults (tests/it/faulty.rs): a failed
//! put, get or list, a short read and a slow store. Each fault is a clean 5xx
//! with the JSON error body, nothing is recorded that is not stored, and the
//! same request succeeds once the fault is gone.

use std::time::Duration;

use reqwest::{Method, StatusCode};

use crate::faulty::{Fault, FaultyStore, Op};
use crate::support::*;

const LAYER: usize = 3000;

/// Asserts a 500 with the OCI error body.
async fn refused(r: reqwest::Response, what: &str) {
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR, "{what}");
    assert_eq!(error_code(r).await, "UNKNOWN", "{what}");
}

async fn finish(s: &TestServer, loc: &str, digest: &str, rest: &[u8]) -> reqwest::Response {
    s.request(Method::PUT, &with_query(loc, &format!("digest={digest}")))
        .header("Content-Type", "application/octet-stream")
        .body(rest.to_vec())
        .send()
        .await
        .expect("PUT")
}

/// The blob is not there: not recorded, not listed, its object absent.
async fn absent(s: &TestServer, faults: &FaultyStore, digest: &str) {
    let r = s.head(&format!("/v2/app/blobs/{digest}")).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "{digest} was recorded");
    let hex = digest.trim_start_matches("sha256:");
    let stored = faults.paths_under("blobs").await;
    assert!(
        !stored.iter().any(|p| p.ends_with(hex)),
        "{digest} was stored: {stored:?}"
    );
}

// A failed put, on every path that writes: the request is refused whole and
// the same request then succeeds (an upload session stays usable).
#[tokio::test]
async fn a_failed_put_refuses_each_write_cleanly_and_the_retry_succeeds() {
    let bytes = blob(21, LAYER);
    let digest = sha256(&bytes);

    // A blob in one POST.
    let (s, faults) = TestServer::with_faults(|_| {}).await;
    let post = || {
        s.request(
            Method::POST,
            &format!("/v2/app/blobs/uploads/?digest={digest}"),
        )
        .body(bytes.clone())
        .send()
    };
    faults.fail_nth(Op::Put, 1);
    refused(post().await.expect("POST"), "single POST").await;
    absent(&s, &faults, &digest).await;
    assert_eq!(post().await.expect("POST").status(), StatusCode::CREATED);
    assert_eq!(s.fetch_blob("app", &digest).await, bytes);

    // The whole blob in the PUT that closes a session.
    let (s, faults) = TestServer::with_faults(|_| {}).await;
    let loc = s.open_upload("app").await;
    faults.fail_nth(Op::Put, 1);
    refused(finish(&s, &loc, &digest, &bytes).await, "PUT with the body").await;
    absent(&s, &faults, &digest).await;
    let r = finish(&s, &loc, &digest, &bytes).await;
    assert_eq!(r.status(), StatusCode::CREATED, "the session goes on");
    assert_eq!(s.fetch_blob("app", &digest).await, bytes);

    // A chunk (below the part size: staged in the store).
    let (s, faults) = TestServer::with_faults(|_| {}).await;
    let loc = s.open_upload("app").await;
    let r = s.patch(&loc, 0, &bytes[..1000]).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    faults.fail_nth(Op::Put, 1);
    refused(s.patch(&loc, 1000, &bytes[1000..2000]).await, "PATCH").await;
    let r = s.get(&loc).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        header(&r, "range").as_deref(),
        Some("0-999"),
        "the refused chunk does not count"
    );
    let r = s.patch(&loc, 1000, &bytes[1000..2000]).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    // The finishing PUT, whose assembly is refused once.
    faults.fail_nth(Op::Put, 1);
    refused(finish(&s, &loc, &digest, &bytes[2000..]).await, "final PUT").await;
    absent(&s, &faults, &digest).await;
    let r = s.get(&loc).await;
    assert_eq!(header(&r, "range").as_deref(), Some("0-1999"));
    let r = finish(&s, &loc, &digest, &bytes[2000..]).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(s.fetch_blob("app", &digest).await, bytes);

    // A manifest: refused, neither it nor its tag recorded.
    let config = b"{\"fault\":1}".to_vec();
    s.push_blob("app", &config).await;
    let manifest = image_manifest(&config, &[&bytes], None);
    let m_digest = sha256(&manifest);
    faults.fail_nth(Op::Put, 1);
    refused(
        s.put_manifest("app", "v1", OCI_MANIFEST, &manifest).await,
        "manifest PUT",
    )
    .await;
    for reference in ["v1", m_digest.as_str()] {
        let r = s.head(&format!("/v2/app/manifests/{reference}")).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{reference}");
    }
    let tags = json_body(s.get("/v2/app/tags/list").await).await;
    assert_eq!(tags["tags"], serde_json::json!([]), "{tags}");
    let r = s.put_manifest("app", "v1", OCI_MANIFEST, &manifest).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = s.get("/v2/app/manifests/v1").await;
    assert_eq!(r.bytes().await.expect("body").as_ref(), &manifest[..]);
}

// A read that fails, or that the store cuts short without an error, is never
// passed on as a whole answer, and nothing of it is kept.
#[tokio::test]
async fn a_failed_or_short_read_is_never_a_whole_answer() {
    let (s, faults) = TestServer::with_faults(|_| {}).await;
    let bytes = blob(22, 200_000);
    let digest = s.push_blob("app", &bytes).await;
    let config = b"{\"short\":1}".to_vec();
    s.push_blob("app", &config).await;
    let manifest = image_manifest(&config, &[&bytes], None);
    let r = s.put_manifest("app", "v1", OCI_MANIFEST, &manifest).await;
    assert_eq!(r.status(), StatusCode::CREATED);

    // A manifest read short, then failed: 500s; the next read is whole (the
    // short bytes were not cached).
    faults.plan_nth(Op::Get, 1, Fault::Short);
    refused(s.get("/v2/app/manifests/v1").await, "short manifest").await;
    faults.fail_nth(Op::Get, 1);
    refused(s.get("/v2/app/manifests/v1").await, "failed manifest").await;
    let r = s.get("/v2/app/manifests/v1").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.bytes().await.expect("body").as_ref(), &manifest[..]);

    // A blob read short: the answer breaks off instead of ending early (or,
    // when the break comes before the headers went out, never begins).
    faults.plan_nth(Op::Get, 1, Fault::Short);
    let path = format!("/v2/app/blobs/{digest}");
    match s.request(Method::GET, &path).send().await {
        Err(e) => assert!(e.is_request(), "{e}"),
        Ok(r) if r.status() == StatusCode::OK => {
            let body = r.bytes().await;
            assert!(
                body.is_err(),
                "a short read was served as a whole blob of {} bytes",
                body.map(|b| b.len()).unwrap_or(0)
            );
        }
        Ok(r) => refused(r, "short blob").await,
    }
    assert_eq!(s.fetch_blob("app", &digest).await, bytes);
}

// A failed list fails fsck with an error (not a clean report), and the next
// fsck, once the store lists again, is clean.
#[tokio::test]
async fn a_failed_list_fails_fsck_and_the_next_one_is_clean() {
    let (s, faults) = TestServer::with_faults(|_| {}).await;
    s.push_image("app", "v1", 23).await;
    faults.fail_nth(Op::List, 1);
    let failed = s.registry().fsck(false, &|_, _| {}).await;
    assert!(failed.is_err(), "fsck reported {failed:?}");
    let report = s.registry().fsck(false, &|_, _| {}).await.expect("fsck");
    assert!(report.is_clean(), "{report:?}");
    assert!(report.checked >= 3, "{report:?}");
}

// A slow store holds up the requests that wait on it, and nothing else: a
// read stuck in the store does not stop pushes and pulls of other content.
#[tokio::test]
async fn a_slow_store_holds_up_only_what_waits_on_it() {
    let (s, faults) = TestServer::with_faults(|_| {}).await;
    let slow = blob(24, 50_000);
    let slow_digest = s.push_blob("app", &slow).await;
    let before = faults.calls(Op::Get);
    faults.plan_nth(Op::Get, 1, Fault::Slow(Duration::from_secs(3)));
    let stuck = tokio::spawn({
        let url = s.url(&format!("/v2/app/blobs/{slow_digest}"));
        let client = s.client.clone();
        async move {
            let r = client.get(url).send().await.expect("GET");
            (r.status(), r.bytes().await.expect("body"))
        }
    });
    for _ in 0..200 {
        if faults.calls(Op::Get) > before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        faults.calls(Op::Get) > before,
        "the read never reached the store"
    );
    // Meanwhile: a push, a manifest and a pull of other content.
    let (manifest, _) = s.push_image("app", "v1", 25).await;
    let r = s.get("/v2/app/manifests/v1").await;
    assert_eq!(r.bytes().await.expect("body").as_ref(), &manifest[..]);
    let other = s.push_blob("app", &blob(26, 10_000)).await;
    assert_eq!(sha256(&s.fetch_blob("app", &other).await), other);
    assert!(
        !stuck.is_finished(),
        "the slow read ended before the others"
    );
    let (status, body) = stuck.await.expect("join");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.as_ref(), &slow[..], "the slow read is whole");
}
