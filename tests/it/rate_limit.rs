//! Per-client rate limiting, off by default: 429 TOOMANYREQUESTS with
//! Retry-After once a client's burst is spent.

use reqwest::StatusCode;

use crate::support::*;

async fn get_as(s: &TestServer, forwarded_for: Option<&str>) -> reqwest::Response {
    let mut r = s.request(reqwest::Method::GET, "/v2/");
    if let Some(ip) = forwarded_for {
        r = r.header("x-forwarded-for", ip);
    }
    r.send().await.expect("GET")
}

#[tokio::test]
async fn a_client_over_its_burst_gets_429_with_retry_after() {
    // A token every 10 s: none comes back while the test runs.
    let s = TestServer::with_config(|c| {
        c.rate_limit.requests_per_second = 0.1;
        c.rate_limit.burst = 3;
    })
    .await;
    for i in 0..3 {
        assert_eq!(
            get_as(&s, None).await.status(),
            StatusCode::OK,
            "request {i}"
        );
    }
    let r = get_as(&s, None).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = header(&r, "retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!((1..=10).contains(&wait), "Retry-After {wait}");
    assert_eq!(error_code(r).await, "TOOMANYREQUESTS");
    // Probes are never limited; a forged X-Forwarded-For buys nothing when
    // Berth is not behind a proxy.
    assert_eq!(s.get("/healthz").await.status(), StatusCode::OK);
    let r = get_as(&s, Some("192.0.2.7")).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn behind_a_proxy_each_forwarded_client_has_its_own_bucket() {
    let s = TestServer::with_config(|c| {
        c.rate_limit.requests_per_second = 0.1;
        c.rate_limit.burst = 1;
        c.rate_limit.behind_proxy = true;
    })
    .await;
    // The proxy appends the address it saw: the last one counts.
    let a = "203.0.113.1, 198.51.100.1";
    let b = "203.0.113.1, 198.51.100.2";
    assert_eq!(get_as(&s, Some(a)).await.status(), StatusCode::OK);
    assert_eq!(
        get_as(&s, Some(a)).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(get_as(&s, Some(b)).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn without_a_limit_configured_nothing_is_refused() {
    let s = TestServer::start().await;
    for _ in 0..200 {
        assert_eq!(get_as(&s, None).await.status(), StatusCode::OK);
    }
}
