//! SIGTERM: an idle server stops at once; a request in flight finishes first.

use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};

use crate::process::{Process, free_port};
use crate::support::*;

fn sigterm(berth: &Process) {
    let ok = Command::new("kill")
        .args(["-TERM", &berth.child.id().to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok, "SIGTERM sent");
}

/// Waits for the process to exit, up to `limit`; how long it took.
fn exited_within(berth: &mut Process, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if berth.child.try_wait().expect("try_wait").is_some() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_server_stops_on_sigterm_within_200_ms() {
    let dir = tempfile::tempdir().expect("dir");
    let mut berth = Process::start(dir.path(), free_port()).await;
    // Some work first, and a kept-alive connection left open, as a docker
    // daemon leaves one.
    let client = reqwest::Client::new();
    let bytes = blob(1, 4096);
    let r = client
        .post(format!(
            "{}/v2/idle/blobs/uploads/?digest={}",
            berth.base,
            sha256(&bytes)
        ))
        .body(bytes)
        .send()
        .await
        .expect("push");
    assert_eq!(r.status(), StatusCode::CREATED);
    sigterm(&berth);
    let took = exited_within(&mut berth, Duration::from_secs(10));
    let took = took.expect("berth exits on SIGTERM");
    assert!(took < Duration::from_millis(200), "took {took:?}");
}

/// A quarter of the in-flight test's blob: more than the server buffers
/// before it writes.
const QUARTER: usize = 3 * 1024 * 1024;
const RANGE: &str = "0-12582911";

/// The bytes written so far to upload files under the data directory.
fn upload_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| {
            let path = entry.path();
            match entry.metadata() {
                Ok(m) if m.is_dir() => upload_bytes(&path),
                Ok(m) if path.parent().is_some_and(|p| p.ends_with("uploads")) => m.len(),
                _ => 0,
            }
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_at_sigterm_finishes_before_the_server_stops() {
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let mut berth = Process::start(dir.path(), port).await;
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{}/v2/inflight/blobs/uploads/", berth.base))
        .send()
        .await
        .expect("POST");
    let loc = location(&r);
    let url = if loc.starts_with("http") {
        loc
    } else {
        format!("{}{loc}", berth.base)
    };

    // The first half is larger than the server's write buffer, so that its
    // arrival on disk shows the request is being served.
    let bytes = blob(2, 4 * QUARTER);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    let body = reqwest::Body::wrap_stream(futures_util::stream::unfold(rx, |mut rx| async {
        rx.recv().await.map(|chunk| (chunk, rx))
    }));
    let patch = tokio::spawn(
        client
            .request(Method::PATCH, url.clone())
            .header("content-type", "application/octet-stream")
            .body(body)
            .send(),
    );
    tx.send(Ok(bytes[..2 * QUARTER].to_vec()))
        .await
        .expect("first half");
    let deadline = Instant::now() + Duration::from_secs(10);
    while upload_bytes(dir.path()) < QUARTER as u64 {
        assert!(
            Instant::now() < deadline,
            "the PATCH did not reach the server"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    sigterm(&berth);
    // The listener closes when shutdown begins: poll until a new
    // connection is refused.
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(Instant::now() < deadline, "shutdown did not begin");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        berth.child.try_wait().expect("try_wait").is_none(),
        "the server waits for the request in flight"
    );

    tx.send(Ok(bytes[2 * QUARTER..].to_vec()))
        .await
        .expect("second half");
    drop(tx);
    let r = patch.await.expect("task").expect("PATCH answered");
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(header(&r, "range").as_deref(), Some(RANGE));
    assert!(
        exited_within(&mut berth, Duration::from_secs(10)).is_some(),
        "then it stops"
    );

    // The accepted chunk was kept: the upload goes on after a restart.
    let _berth = Process::start(dir.path(), port).await;
    let r = reqwest::get(&url).await.expect("status");
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&r, "range").as_deref(), Some(RANGE));
}
