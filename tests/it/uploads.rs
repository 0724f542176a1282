use std::io::{Read, Write};

use reqwest::{Method, StatusCode};

use crate::support::*;

async fn start(s: &TestServer, repo: &str) -> String {
    let r = s
        .request(Method::POST, &format!("/v2/{repo}/blobs/uploads/"))
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert!(header(&r, "docker-upload-uuid").is_some());
    location(&r)
}

async fn patch(s: &TestServer, loc: &str, range: Option<String>, body: &[u8]) -> reqwest::Response {
    let mut req = s
        .request(Method::PATCH, loc)
        .header("content-type", "application/octet-stream")
        .body(body.to_vec());
    if let Some(range) = range {
        req = req.header("content-range", range);
    }
    req.send().await.expect("PATCH")
}

// Spec: POST opens a session: 202 with a Location; OCI-Chunk-Min-Length is advertised.
#[tokio::test]
async fn post_opens_a_session_and_advertises_chunk_min_length() {
    let s = TestServer::start().await;
    let r = s
        .request(Method::POST, "/v2/a/blobs/uploads/")
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert!(location(&r).starts_with("/v2/a/blobs/uploads/"));
    // 1 MiB by default, raised to the backend's smallest multipart part.
    let min = s.blobs().min_chunk().max(1024 * 1024);
    assert_eq!(header(&r, "oci-chunk-min-length"), Some(min.to_string()));
}

// Spec (streamed upload): PATCH without Content-Range then PUT ?digest= with no body.
#[tokio::test]
async fn streamed_patch_then_put_creates_the_blob() {
    let s = TestServer::start().await;
    let bytes = blob(10, 300_000);
    let loc = start(&s, "a").await;
    let r = patch(&s, &loc, None, &bytes).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(header(&r, "range").as_deref(), Some("0-299999"));
    let digest = sha256(&bytes);
    let r = s
        .request(
            Method::PUT,
            &with_query(&location(&r), &format!("digest={digest}")),
        )
        .send()
        .await
        .expect("PUT");
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(location(&r), format!("/v2/a/blobs/{digest}"));
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

// Spec (chunked upload): chunks in order with Content-Range; out of order MUST be 416;
// GET on the session answers 204 with Range and Location.
#[tokio::test]
async fn chunked_upload_checks_order_and_reports_progress() {
    let s = TestServer::start().await;
    let bytes = blob(11, 2500);
    let (c1, c2, c3) = (&bytes[..1000], &bytes[1000..2000], &bytes[2000..]);
    let loc = start(&s, "a").await;

    let r = patch(&s, &loc, Some("1000-1999".into()), c2).await;
    assert_eq!(
        r.status(),
        StatusCode::RANGE_NOT_SATISFIABLE,
        "chunk before the first"
    );
    assert_eq!(header(&r, "range").as_deref(), Some("0-0"));

    let r = patch(&s, &loc, Some("0-999".into()), c1).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(header(&r, "range").as_deref(), Some("0-999"));

    let r = patch(&s, &loc, Some("0-999".into()), c1).await;
    assert_eq!(
        r.status(),
        StatusCode::RANGE_NOT_SATISFIABLE,
        "retrying an accepted chunk"
    );
    assert_eq!(header(&r, "range").as_deref(), Some("0-999"));
    assert_eq!(error_code(r).await, "BLOB_UPLOAD_INVALID");

    let r = s.get(&loc).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&r, "range").as_deref(), Some("0-999"));
    assert_eq!(location(&r), loc);

    let r = patch(&s, &loc, Some("1000-1999".into()), c2).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(header(&r, "range").as_deref(), Some("0-1999"));

    // The last chunk may come with the PUT.
    let digest = sha256(&bytes);
    let r = s
        .request(Method::PUT, &with_query(&loc, &format!("digest={digest}")))
        .header("content-range", "2000-2499")
        .body(c3.to_vec())
        .send()
        .await
        .expect("PUT");
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(
        s.get(&format!("/v2/a/blobs/{digest}"))
            .await
            .bytes()
            .await
            .expect("b")
            .as_ref(),
        &bytes[..]
    );
    // The session is gone once finished.
    assert_eq!(s.get(&loc).await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_content_range_that_disagrees_with_the_body_is_refused() {
    let s = TestServer::start().await;
    let loc = start(&s, "a").await;
    let r = patch(&s, &loc, Some("0-99".into()), &blob(1, 50)).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(r).await, "SIZE_INVALID");
    assert_eq!(header(&s.get(&loc).await, "range").as_deref(), Some("0-0"));
}

// Spec ("Pushing a blob in chunks"): Content-Range is `^[0-9]+-[0-9]+$`.
// Anything else is refused, and the session stays where it stood.
#[tokio::test]
async fn a_content_range_in_any_other_form_is_refused_and_the_session_stays() {
    let s = TestServer::start().await;
    let bytes = blob(12, 20);
    let loc = start(&s, "a").await;
    let r = patch(&s, &loc, Some("0-9".into()), &bytes[..10]).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    for range in [
        "bytes=10-19",
        "bytes 10-19/20",
        "+10-19",
        "10-+19",
        "10 - 19",
        "10-",
        "-19",
        "10-19/20",
    ] {
        let r = patch(&s, &loc, Some(range.into()), &bytes[10..]).await;
        assert!(
            matches!(
                r.status(),
                StatusCode::BAD_REQUEST | StatusCode::RANGE_NOT_SATISFIABLE
            ),
            "{range}: {}",
            r.status()
        );
        assert_eq!(error_code(r).await, "BLOB_UPLOAD_INVALID", "{range}");
        assert_eq!(
            header(&s.get(&loc).await, "range").as_deref(),
            Some("0-9"),
            "{range} left the session as it was"
        );
    }
    let r = patch(&s, &loc, Some("10-19".into()), &bytes[10..]).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let digest = sha256(&bytes);
    let r = s
        .request(Method::PUT, &with_query(&loc, &format!("digest={digest}")))
        .send()
        .await
        .expect("PUT");
    assert_eq!(r.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn put_without_digest_is_digest_invalid_and_keeps_the_session() {
    let s = TestServer::start().await;
    let loc = start(&s, "a").await;
    patch(&s, &loc, None, b"abc").await;
    let r = s.request(Method::PUT, &loc).send().await.expect("PUT");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(r).await, "DIGEST_INVALID");
    assert_eq!(header(&s.get(&loc).await, "range").as_deref(), Some("0-2"));
}

// A PUT carrying the whole blob to an empty session, refused for a wrong
// digest or a Content-Range that disagrees with the body, stores no blob. The
// blob is written straight towards its address on every backend, so the
// session stays empty and the client may send it whole again.
#[tokio::test]
async fn a_refused_put_with_the_whole_body_stores_nothing_and_the_session_goes_on() {
    let s = TestServer::start().await;
    let bytes = blob(14, 5000);
    let digest = sha256(&bytes);
    let loc = start(&s, "a").await;
    let wrong = sha256(b"other");
    let put = |digest: &str, range: Option<&str>, body: Vec<u8>| {
        let mut req = s
            .request(Method::PUT, &with_query(&loc, &format!("digest={digest}")))
            .body(body);
        if let Some(range) = range {
            req = req.header("content-range", range);
        }
        req.send()
    };
    let r = put(&digest, Some("0-99"), bytes.clone())
        .await
        .expect("PUT");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(r).await, "SIZE_INVALID");
    assert_eq!(header(&s.get(&loc).await, "range").as_deref(), Some("0-0"));
    let r = put(&wrong, None, bytes.clone()).await.expect("PUT");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(r).await, "DIGEST_INVALID");
    for d in [&wrong, &digest] {
        let r = s.head(&format!("/v2/a/blobs/{d}")).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{d} not visible");
    }
    // A whole blob refused in the finishing request left the session empty.
    assert_eq!(header(&s.get(&loc).await, "range").as_deref(), Some("0-0"));
    let r = put(&digest, Some("0-4999"), bytes.clone()).await;
    assert_eq!(r.expect("PUT").status(), StatusCode::CREATED);
    let got = s.get(&format!("/v2/a/blobs/{digest}")).await;
    assert_eq!(got.bytes().await.expect("b").as_ref(), bytes.as_slice());
    assert!(s.stored_objects(Area::Uploads).await.is_empty());
}

// Spec: DELETE on a session cancels it; the session is then unknown.
#[tokio::test]
async fn cancelled_sessions_are_unknown() {
    let s = TestServer::start().await;
    let loc = start(&s, "a").await;
    patch(&s, &loc, None, &blob(12, 1000)).await;
    assert_eq!(s.delete(&loc).await.status(), StatusCode::NO_CONTENT);
    let r = s.get(&loc).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(r).await, "BLOB_UPLOAD_UNKNOWN");
    assert!(s.stored_objects(Area::Uploads).await.is_empty());
}

#[tokio::test]
async fn a_session_belongs_to_its_repository() {
    let s = TestServer::start().await;
    let loc = start(&s, "a").await;
    let id = loc.rsplit('/').next().expect("id").to_owned();
    let r = s.get(&format!("/v2/b/blobs/uploads/{id}")).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(r).await, "BLOB_UPLOAD_UNKNOWN");
    let r = s
        .get("/v2/a/blobs/uploads/0123456789abcdef0123456789abcdef")
        .await;
    assert_eq!(error_code(r).await, "BLOB_UPLOAD_UNKNOWN");
}

/// Sends a PATCH that promises `declared` bytes but delivers `sent`, then hangs up.
pub fn interrupted_patch(base: &str, loc: &str, declared: usize, sent: &[u8]) {
    let addr = base.trim_start_matches("http://");
    let mut tcp = std::net::TcpStream::connect(addr).expect("connect");
    let head = format!(
        "PATCH {loc} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/octet-stream\r\nContent-Length: {declared}\r\n\r\n"
    );
    tcp.write_all(head.as_bytes()).expect("write head");
    tcp.write_all(sent).expect("write body");
    tcp.flush().ok();
    tcp.shutdown(std::net::Shutdown::Write).ok();
    let mut sink = Vec::new();
    let _ = tcp.read_to_end(&mut sink);
}

// An interrupted chunk loses nothing: the session stays where it was and resumes.
#[tokio::test]
async fn an_interrupted_chunk_leaves_the_session_where_it_was() {
    let s = TestServer::start().await;
    let bytes = blob(13, 4000);
    let loc = start(&s, "a").await;
    patch(&s, &loc, Some("0-1999".into()), &bytes[..2000]).await;
    let (base, l) = (s.base.clone(), loc.clone());
    let partial = bytes[2000..2500].to_vec();
    tokio::task::spawn_blocking(move || interrupted_patch(&base, &l, 2000, &partial))
        .await
        .expect("join");
    assert_eq!(
        header(&s.get(&loc).await, "range").as_deref(),
        Some("0-1999")
    );
    let r = patch(&s, &loc, Some("2000-3999".into()), &bytes[2000..]).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = s
        .request(
            Method::PUT,
            &with_query(&loc, &format!("digest={}", sha256(&bytes))),
        )
        .send()
        .await
        .expect("PUT");
    assert_eq!(r.status(), StatusCode::CREATED);
}
