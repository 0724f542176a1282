use reqwest::{Method, StatusCode};

use crate::support::*;

// Spec: "GET /v2/ ... 200 OK" and every response carries the API version header.
#[tokio::test]
async fn api_version_check_answers_200_with_version_header() {
    let s = TestServer::start().await;
    for path in ["/v2/", "/v2"] {
        let r = s.get(path).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            header(&r, "docker-distribution-api-version").as_deref(),
            Some("registry/2.0")
        );
    }
}

#[tokio::test]
async fn unknown_routes_answer_oci_json_errors_with_version_header() {
    let s = TestServer::start().await;
    for path in ["/v2/a/b/c", "/v2/a/tags/list/", "/v2/a/tags"] {
        let r = s.get(path).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
        assert!(header(&r, "docker-distribution-api-version").is_some());
        assert_eq!(error_code(r).await, "UNSUPPORTED");
    }
}

#[tokio::test]
async fn wrong_method_is_405_with_allow() {
    let s = TestServer::start().await;
    let r = s
        .request(Method::PATCH, "/v2/a/manifests/latest")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        header(&r, "allow").as_deref(),
        Some("GET, HEAD, PUT, DELETE")
    );
    assert_eq!(error_code(r).await, "UNSUPPORTED");
}

#[tokio::test]
async fn bad_names_are_name_invalid_including_encoded_slashes() {
    let s = TestServer::start().await;
    for path in [
        "/v2/Upper/tags/list",
        "/v2/a%2Fb/tags/list",
        "/v2/a//b/tags/list",
        "/v2/a_/tags/list",
    ] {
        let r = s.get(path).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(error_code(r).await, "NAME_INVALID", "{path}");
    }
}

#[tokio::test]
async fn health_endpoints_answer() {
    let s = TestServer::start().await;
    assert_eq!(s.get("/healthz").await.status(), StatusCode::OK);
    assert_eq!(s.get("/readyz").await.status(), StatusCode::OK);
}

// Past the cap on requests in flight: 429 with Retry-After, and back to
// normal once the slot frees.
#[tokio::test]
async fn requests_past_the_concurrency_cap_get_429_with_retry_after() {
    use std::io::Write;
    let s = TestServer::with_config(|c| c.max_concurrent_requests = 1).await;
    let r = s
        .request(Method::POST, "/v2/a/blobs/uploads/")
        .send()
        .await
        .expect("POST");
    let loc = location(&r);
    // Hold the only slot: a chunk whose body never finishes arriving.
    let addr = s.base.trim_start_matches("http://").to_owned();
    let mut held = std::net::TcpStream::connect(&addr).expect("connect");
    let head =
        format!("PATCH {loc} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 1000\r\n\r\n0123456789");
    held.write_all(head.as_bytes()).expect("write");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let refused = loop {
        let r = s.get("/v2/").await;
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            break r;
        }
        assert!(std::time::Instant::now() < deadline, "never refused");
        tokio::task::yield_now().await;
    };
    assert_eq!(header(&refused, "retry-after").as_deref(), Some("1"));
    assert_eq!(error_code(refused).await, "TOOMANYREQUESTS");
    drop(held);
    loop {
        if s.get("/v2/").await.status() == StatusCode::OK {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "slot never freed");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

// A client that never finishes its headers is cut off (slowloris guard).
#[tokio::test]
async fn slow_headers_are_cut_off() {
    use std::io::{Read, Write};
    let s = TestServer::with_config(|c| c.header_read_timeout = "1s".into()).await;
    let addr = s.base.trim_start_matches("http://").to_owned();
    let closed = tokio::task::spawn_blocking(move || {
        let mut tcp = std::net::TcpStream::connect(&addr).expect("connect");
        tcp.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .expect("timeout");
        tcp.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n")
            .expect("write");
        let started = std::time::Instant::now();
        let mut buf = [0u8; 512];
        let n = tcp.read(&mut buf).unwrap_or(0);
        (
            started.elapsed(),
            String::from_utf8_lossy(&buf[..n]).into_owned(),
        )
    })
    .await
    .expect("join");
    assert!(
        closed.0 < std::time::Duration::from_secs(5),
        "cut after {:?}",
        closed.0
    );
    assert!(!closed.1.contains("200 OK"), "{}", closed.1);
    assert_eq!(
        s.get("/v2/").await.status(),
        StatusCode::OK,
        "others are served"
    );
}

// HTTPS from [tls] cert and key; plain HTTP on that port gets nothing.
#[tokio::test]
async fn tls_serves_https_from_pem_files() {
    let dir = tempfile::tempdir().expect("dir");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let (c, k) = (cert.clone(), key.clone());
    let s = TestServer::with_config(move |conf| {
        conf.tls = Some(berth::config::TlsConfig { cert: c, key: k });
    })
    .await;
    let https = s.base.replace("http://", "https://");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
            .arg(&cert)
            .arg(format!("{https}/v2/"))
            .output()
            .expect("curl")
    })
    .await
    .expect("join");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "200",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        s.client.get(s.url("/v2/")).send().await.is_err(),
        "plain HTTP is not answered"
    );
}
