//! Crash tests: the built binary, killed with SIGKILL mid-operation, restarted
//! on the same data directory. Nothing acknowledged may be lost, nothing
//! partial may be visible, and uploads resume where they stood.

use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::process::{Process, free_port};
use crate::support::*;

/// Opens a request that declares `declared` body bytes and sends only `sent`,
/// leaving the connection open (the caller kills the server under it).
fn half_sent(
    base: &str,
    method: &str,
    path: &str,
    content_type: &str,
    declared: usize,
    sent: &[u8],
) -> TcpStream {
    let addr = base.trim_start_matches("http://");
    let mut tcp = TcpStream::connect(addr).expect("connect");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\nContent-Length: {declared}\r\n\r\n"
    );
    tcp.write_all(head.as_bytes()).expect("head");
    tcp.write_all(sent).expect("body");
    tcp.flush().expect("flush");
    tcp
}

async fn poll_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::task::yield_now().await;
        std::thread::yield_now();
    }
}

/// Every tag resolves, every referenced blob exists and hashes to its digest.
async fn check_integrity(base: &str, repo: &str) -> Vec<String> {
    let client = reqwest::Client::new();
    let tags: Value = serde_json::from_slice(
        &client
            .get(format!("{base}/v2/{repo}/tags/list"))
            .send()
            .await
            .expect("tags")
            .bytes()
            .await
            .expect("b"),
    )
    .expect("json");
    let tags: Vec<String> = tags["tags"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    for tag in &tags {
        let r = client
            .get(format!("{base}/v2/{repo}/manifests/{tag}"))
            .send()
            .await
            .expect("manifest");
        assert_eq!(r.status(), StatusCode::OK, "tag {tag} resolves");
        let m: Value = serde_json::from_slice(&r.bytes().await.expect("b")).expect("manifest json");
        let mut descriptors = vec![m["config"].clone()];
        descriptors.extend(m["layers"].as_array().cloned().unwrap_or_default());
        for d in descriptors {
            let digest = d["digest"].as_str().expect("digest");
            let r = client
                .get(format!("{base}/v2/{repo}/blobs/{digest}"))
                .send()
                .await
                .expect("blob");
            assert_eq!(r.status(), StatusCode::OK, "{digest} of {tag}");
            assert_eq!(
                sha256(&r.bytes().await.expect("b")),
                digest,
                "{digest} hashes right"
            );
        }
    }
    tags
}

/// A server on a fresh data directory with an upload session open in the
/// repository `crash`: the directory, the port, the server, the session's
/// location and its data file on disk.
async fn server_with_an_upload() -> (tempfile::TempDir, u16, Process, String, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let berth = Process::start(dir.path(), port).await;
    let r = reqwest::Client::new()
        .post(format!("{}/v2/crash/blobs/uploads/", berth.base))
        .send()
        .await
        .expect("POST");
    let loc = location(&r);
    let id = loc.rsplit('/').next().expect("id");
    let data = dir.path().join("uploads").join(id);
    (dir, port, berth, loc, data)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_chunk_loses_nothing_acknowledged_and_the_upload_resumes() {
    let (dir, port, mut berth, loc, data) = server_with_an_upload().await;
    let client = reqwest::Client::new();
    let bytes = blob(42, 12 * 1024 * 1024);
    let first = 1024 * 1024;
    let r = client
        .patch(format!("{}{loc}", berth.base))
        .header("content-range", format!("0-{}", first - 1))
        .body(bytes[..first].to_vec())
        .send()
        .await
        .expect("PATCH");
    assert_eq!(r.status(), StatusCode::ACCEPTED);

    // Start the second chunk, let the server begin writing it, and kill it.
    let written = |f: &Path| f.metadata().map_or(0, |m| m.len());
    let before = written(&data);
    let _conn = half_sent(
        &berth.base,
        "PATCH",
        &loc,
        "application/octet-stream",
        bytes.len() - first,
        &bytes[first..first + 6 * 1024 * 1024],
    );
    poll_until("the second chunk to be staged", || written(&data) > before).await;
    berth.kill();

    // Acknowledged bytes kept, the partial chunk dropped.
    let berth = restart_with_upload_at(dir.path(), port, &loc, first, &bytes).await;
    finish_and_read_back(&berth.base, &loc, &bytes, first).await;
}

// A finish killed after it moved the upload's file to the blob's address and
// before its commit leaves a session counting every byte, marked as finishing
// that digest, and no file behind it. `fsck --repair` must keep the file (it
// is the session's bytes, not an orphan); the client's retry (an empty PUT)
// must record the blob in place; a chunk sent past the end must fail, not
// fill the missing bytes with zeros.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finish_killed_after_moving_the_bytes_in_place_is_completed_by_the_retry() {
    let (dir, port, mut berth, loc, data) = server_with_an_upload().await;
    let client = reqwest::Client::new();
    let bytes = blob(44, 300 * 1024);
    let digest = sha256(&bytes);
    let r = berth_patch(&client, &berth.base, &loc, 0, &bytes).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    // The finish gets as far as the move: a directory where the blob goes
    // makes the move fail, with the session marked as finishing.
    let hex = digest.trim_start_matches("sha256:");
    let target = dir.path().join("blobs/sha256").join(&hex[..2]).join(hex);
    std::fs::create_dir_all(&target).expect("dir in the way");
    let r = berth_finish(&client, &berth.base, &loc, &digest).await;
    assert!(r.status().is_server_error(), "move refused: {}", r.status());
    berth.kill();
    std::fs::remove_dir(&target).expect("out of the way");
    std::fs::rename(&data, &target).expect("move in place");
    let (_, report) = fsck_with(dir.path(), &["--repair"]);
    assert!(
        target.exists(),
        "fsck --repair kept the finishing upload's bytes: {report}"
    );

    let berth = restart_with_upload_at(dir.path(), port, &loc, bytes.len(), &bytes).await;
    let r = berth_patch(&client, &berth.base, &loc, bytes.len(), b"more").await;
    assert!(
        r.status().is_server_error(),
        "a chunk after lost bytes: {}",
        r.status()
    );
    assert!(
        !data.exists(),
        "no file made up to stand for the lost bytes"
    );
    let r = berth_finish(&client, &berth.base, &loc, &digest).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let got = client
        .get(format!("{}/v2/crash/blobs/{digest}", berth.base))
        .send()
        .await
        .expect("GET");
    assert_eq!(sha256(&got.bytes().await.expect("b")), digest);
    drop(berth);
    let (clean, report) = fsck(dir.path(), &[]);
    assert!(clean, "fsck: {report}");
}

async fn berth_patch(
    client: &reqwest::Client,
    base: &str,
    loc: &str,
    from: usize,
    part: &[u8],
) -> reqwest::Response {
    client
        .patch(format!("{base}{loc}"))
        .header("content-range", format!("{from}-{}", from + part.len() - 1))
        .body(part.to_vec())
        .send()
        .await
        .expect("PATCH")
}

/// Finishes the upload at `loc` as `digest`, with no body.
async fn berth_finish(
    client: &reqwest::Client,
    base: &str,
    loc: &str,
    digest: &str,
) -> reqwest::Response {
    client
        .put(format!(
            "{base}{}",
            with_query(loc, &format!("digest={digest}"))
        ))
        .send()
        .await
        .expect("PUT")
}

/// Restarts berth on `dir` after a kill, and checks that the upload at `loc`
/// survived holding its first `offset` bytes and that the blob of `bytes` is
/// not visible.
async fn restart_with_upload_at(
    dir: &Path,
    port: u16,
    loc: &str,
    offset: usize,
    bytes: &[u8],
) -> Process {
    let berth = Process::start(dir, port).await;
    let client = reqwest::Client::new();
    let r = client
        .get(format!("{}{loc}", berth.base))
        .send()
        .await
        .expect("status");
    assert_eq!(r.status(), StatusCode::NO_CONTENT, "the session survives");
    let range = format!("0-{}", offset.saturating_sub(1));
    assert_eq!(header(&r, "range"), Some(range));
    let r = client
        .head(format!("{}/v2/crash/blobs/{}", berth.base, sha256(bytes)))
        .send()
        .await
        .expect("HEAD");
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "nothing partial visible");
    berth
}

// A blob sent whole in the PUT that closes a session (POST, then PUT with the
// body) is written without an intermediate commit: killed mid-body, the
// session stands empty after the restart, and the client's retry completes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_put_with_the_whole_body_leaves_the_session_empty_and_retryable() {
    let (dir, port, mut berth, loc, data) = server_with_an_upload().await;
    let client = reqwest::Client::new();
    let bytes = blob(43, 8 * 1024 * 1024);
    let digest = sha256(&bytes);
    let put = with_query(&loc, &format!("digest={digest}"));
    let _conn = half_sent(
        &berth.base,
        "PUT",
        &put,
        "application/octet-stream",
        bytes.len(),
        &bytes[..4 * 1024 * 1024],
    );
    poll_until("the body to reach the disk", || {
        data.metadata().is_ok_and(|m| m.len() > 0)
    })
    .await;
    berth.kill();

    let berth = restart_with_upload_at(dir.path(), port, &loc, 0, &bytes).await;
    let blob_url = format!("{}/v2/crash/blobs/{digest}", berth.base);
    let r = client
        .put(format!("{}{put}", berth.base))
        .body(bytes.clone())
        .send()
        .await
        .expect("PUT");
    assert_eq!(r.status(), StatusCode::CREATED);
    let got = client.get(&blob_url).send().await.expect("GET");
    assert_eq!(sha256(&got.bytes().await.expect("b")), digest);
    drop(berth);
    let (clean, report) = fsck(dir.path(), &[]);
    assert!(clean, "fsck: {report}");
}

/// Sends `bytes[from..]` as the last chunk of the upload at `loc`, finishes it
/// and checks that the blob reads back whole.
async fn finish_and_read_back(base: &str, loc: &str, bytes: &[u8], from: usize) {
    let client = reqwest::Client::new();
    let r = client
        .patch(format!("{base}{loc}"))
        .header("content-range", format!("{from}-{}", bytes.len() - 1))
        .body(bytes[from..].to_vec())
        .send()
        .await
        .expect("PATCH");
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let digest = sha256(bytes);
    let r = berth_finish(&client, base, loc, &digest).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let got = client
        .get(format!("{base}/v2/crash/blobs/{digest}"))
        .send()
        .await
        .expect("GET");
    assert_eq!(sha256(&got.bytes().await.expect("b")), digest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_manifest_push_keeps_acknowledged_manifests_and_shows_nothing_partial() {
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let mut berth = Process::start(dir.path(), port).await;
    let client = reqwest::Client::new();
    let base = berth.base.clone();

    let push_blob = |bytes: Vec<u8>| {
        let (client, base) = (client.clone(), base.clone());
        async move {
            let d = sha256(&bytes);
            let r = client
                .post(format!("{base}/v2/crash/blobs/uploads/?digest={d}"))
                .body(bytes)
                .send()
                .await
                .expect("POST");
            assert_eq!(r.status(), StatusCode::CREATED);
        }
    };
    // Several pushes in flight; the server is killed once some are acknowledged.
    let mut acked = Vec::new();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(String, Vec<u8>)>(32);
    for i in 0..12u64 {
        let config = format!("{{\"n\":{i}}}").into_bytes();
        let layer = blob(100 + i, 200_000);
        push_blob(config.clone()).await;
        push_blob(layer.clone()).await;
        let manifest = image_manifest(&config, &[&layer], None);
        let (client, base, tx) = (client.clone(), base.clone(), tx.clone());
        tokio::spawn(async move {
            let tag = format!("t{i}");
            let r = client
                .put(format!("{base}/v2/crash/manifests/{tag}"))
                .header("content-type", OCI_MANIFEST)
                .body(manifest.clone())
                .send()
                .await;
            if let Ok(r) = r
                && r.status() == StatusCode::CREATED
            {
                let _ = tx.send((tag, manifest)).await;
            }
        });
    }
    drop(tx);
    while let Some(ack) = rx.recv().await {
        acked.push(ack);
        if acked.len() == 4 {
            break;
        }
    }
    let partial = image_manifest(b"{}", &[], None);
    let _conn = half_sent(
        &base,
        "PUT",
        "/v2/crash/manifests/partial",
        OCI_MANIFEST,
        partial.len(),
        &partial[..partial.len() / 2],
    );
    berth.kill();
    // Pushes acknowledged after the kill decision may still arrive; collect them too.
    while let Ok(Some(ack)) = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
        acked.push(ack);
    }

    let berth = Process::start(dir.path(), port).await;
    let tags = check_integrity(&berth.base, "crash").await;
    for (tag, manifest) in &acked {
        assert!(tags.contains(tag), "acknowledged {tag} survives");
        let r = client
            .get(format!("{}/v2/crash/manifests/{tag}", berth.base))
            .send()
            .await
            .expect("GET");
        assert_eq!(r.bytes().await.expect("b").as_ref(), &manifest[..]);
    }
    assert!(!tags.contains(&"partial".to_owned()));
    let r = client
        .request(
            Method::GET,
            format!("{}/v2/crash/manifests/partial", berth.base),
        )
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

/// `berth fsck` on a data directory (and the store `env` configures): the
/// report, and whether it was clean.
fn fsck(dir: &Path, env: &[(&str, &str)]) -> (bool, Value) {
    run_fsck(dir, &[], env)
}

/// `berth fsck` with `args` on a data directory.
fn fsck_with(dir: &Path, args: &[&str]) -> (bool, Value) {
    run_fsck(dir, args, &[])
}

fn run_fsck(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (bool, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["fsck", "--data-dir"])
        .arg(dir)
        .args(args)
        .envs(suite_metadata_env(dir))
        .envs(env.iter().copied())
        .output()
        .expect("fsck");
    (
        out.status.success(),
        serde_json::from_slice(&out.stdout).expect("fsck report"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_gc_sweep_and_a_final_put_leaves_nothing_broken() {
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let env = [("BERTH_GC__GRACE_PERIOD", "0")];
    let mut berth = Process::start_with(dir.path(), port, &env).await;
    let client = reqwest::Client::new();
    let base = berth.base.clone();

    // Something to keep, something to collect.
    let keep = blob(7, 50_000);
    let keep_d = sha256(&keep);
    let r = client
        .post(format!("{base}/v2/gc/blobs/uploads/?digest={keep_d}"))
        .body(keep.clone())
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), StatusCode::CREATED);
    let manifest = image_manifest(&keep, &[], None);
    let r = client
        .put(format!("{base}/v2/gc/manifests/kept"))
        .header("content-type", OCI_MANIFEST)
        .body(manifest)
        .send()
        .await
        .expect("PUT");
    assert_eq!(r.status(), StatusCode::CREATED);
    for i in 0..200u64 {
        let b = blob(500 + i, 2000);
        let d = sha256(&b);
        client
            .post(format!("{base}/v2/gc/blobs/uploads/?digest={d}"))
            .body(b)
            .send()
            .await
            .expect("orphan");
    }
    // A final PUT whose body is cut off by the kill.
    let r = client
        .post(format!("{base}/v2/gc/blobs/uploads/"))
        .send()
        .await
        .expect("POST");
    let loc = location(&r);
    let last = blob(8, 300_000);
    let put = format!("{}?digest={}", loc, sha256(&last));
    let _conn = half_sent(
        &base,
        "PUT",
        &put,
        "application/octet-stream",
        last.len(),
        &last[..100_000],
    );
    // A sweep, killed while it runs.
    let sweep = tokio::spawn({
        let (client, base) = (client.clone(), base.clone());
        async move {
            client
                .post(format!("{base}/api/v1/gc"))
                .send()
                .await
                .map(|r| r.status())
        }
    });
    poll_until("the sweep to start deleting", || {
        files_under(&dir.path().join("blobs")).len() < 202
    })
    .await;
    berth.kill();
    let _ = sweep.await;

    let (_, report) = fsck(dir.path(), &[]);
    assert_eq!(report["missing"], json!([]), "{report}");
    assert_eq!(report["dangling"], json!([]), "{report}");
    assert_eq!(report["corrupt"], json!([]), "{report}");

    let berth = Process::start_with(dir.path(), port, &env).await;
    // The restarted server finishes the interrupted sweep by itself; a sweep
    // asked for now runs after it (a busy answer: it still runs). Only then
    // is the blob below pushed: with no grace period, a sweep still running
    // would take it, rightly, as unreferenced.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = client
            .post(format!("{}/api/v1/gc", berth.base))
            .send()
            .await
            .expect("gc");
        if r.status() == StatusCode::OK {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "gc answers {}",
            r.status()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = client
        .get(format!("{}/v2/gc/manifests/kept", berth.base))
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), StatusCode::OK);
    let r = client
        .get(format!("{}/v2/gc/blobs/{keep_d}", berth.base))
        .send()
        .await
        .expect("GET");
    assert_eq!(sha256(&r.bytes().await.expect("b")), keep_d);
    // The upload whose final PUT was cut off resumes from where it stood.
    let r = client
        .get(format!("{}{loc}", berth.base))
        .send()
        .await
        .expect("status");
    assert_eq!(header(&r, "range").as_deref(), Some("0-0"));
    let r = client
        .put(format!("{}{put}", berth.base))
        .body(last.clone())
        .send()
        .await
        .expect("PUT");
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = client
        .get(format!("{}/v2/gc/blobs/{}", berth.base, sha256(&last)))
        .send()
        .await
        .expect("GET");
    let status = r.status();
    let got = r.bytes().await.expect("b");
    assert!(
        status == StatusCode::OK && sha256(&got) == sha256(&last),
        "the blob pushed after the restart reads back {status}, {} bytes: {:?}",
        got.len(),
        String::from_utf8_lossy(&got[..got.len().min(300)])
    );
    // The next sweep takes what nothing references any more.
    let r = client
        .post(format!("{}/api/v1/gc", berth.base))
        .send()
        .await
        .expect("gc");
    assert_eq!(r.status(), StatusCode::OK);
    let (clean, report) = fsck(dir.path(), &[]);
    assert!(clean, "{report}");
    // With no grace period, only what the tagged manifest needs survives.
    assert_eq!(
        files_under(&dir.path().join("blobs")).len(),
        2,
        "the kept config and its manifest"
    );
}

// The same on S3: chunks acknowledged before a SIGKILL (a full part and a
// staged tail) survive in the bucket and the metadata; the upload resumes on
// a restarted process and completes its multipart upload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_chunked_upload_to_s3_then_the_restarted_server_finishes_it() {
    let dir = tempfile::tempdir().expect("dir");
    let storage = s3_storage(dir.path());
    let env = storage_env(&storage);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let port = free_port();
    let mut berth = Process::start_with(dir.path(), port, &env).await;
    let client = reqwest::Client::new();
    let mib = 1024 * 1024;
    let bytes = blob(43, 23 * mib);
    let r = client
        .post(format!("{}/v2/crash/blobs/uploads/", berth.base))
        .send()
        .await
        .expect("POST");
    let loc = location(&r);
    // 6 MiB (one part), then 3 MiB (staged: below the 5 MiB minimum part).
    for (start, end) in [(0, 6 * mib), (6 * mib, 9 * mib)] {
        let r = client
            .patch(format!("{}{loc}", berth.base))
            .header("content-range", format!("{start}-{}", end - 1))
            .body(bytes[start..end].to_vec())
            .send()
            .await
            .expect("PATCH");
        assert_eq!(r.status(), StatusCode::ACCEPTED);
    }
    // A third chunk, cut off after 10 of its 14 MiB: enough for the server
    // to be sending a part of it when it dies (whenever it dies, the
    // acknowledged bytes must stand).
    let _conn = half_sent(
        &berth.base,
        "PATCH",
        &loc,
        "application/octet-stream",
        bytes.len() - 9 * mib,
        &bytes[9 * mib..19 * mib],
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    berth.kill();

    let berth = Process::start_with(dir.path(), port, &env).await;
    let r = client
        .get(format!("{}{loc}", berth.base))
        .send()
        .await
        .expect("status");
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&r, "range"), Some(format!("0-{}", 9 * mib - 1)));
    finish_and_read_back(&berth.base, &loc, &bytes, 9 * mib).await;
    assert_eq!(
        multipart_uploads_in(&storage).await,
        0,
        "nothing left in progress"
    );
    let (clean, report) = fsck(dir.path(), &env);
    assert!(clean, "{report}");
}
