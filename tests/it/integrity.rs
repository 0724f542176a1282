//! Garbage collection, upload expiry, fsck, storage faults, a full disk, and
//! concurrent pushes.

use std::time::{Duration, Instant};

use crate::faulty::Op;
use berth::storage::StorageKey;
use berth::storage::backend::StorageConfig;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::*;

async fn gc(s: &TestServer, dry_run: bool) -> Value {
    let path = if dry_run {
        "/api/v1/gc?dry_run=true"
    } else {
        "/api/v1/gc"
    };
    let r = s.request(Method::POST, path).send().await.expect("gc");
    assert_eq!(r.status(), StatusCode::OK);
    json_body(r).await
}

fn no_grace(c: &mut berth::config::Config) {
    c.gc.grace_period = "0".into();
}

#[tokio::test]
async fn gc_frees_unreferenced_blobs_and_keeps_what_manifests_need() {
    let s = TestServer::with_config(no_grace).await;
    let (manifest, _) = s.push_image("app", "v1", 1).await;
    let orphan = s.push_blob("app", &blob(99, 5000)).await;
    assert_eq!(s.stored_objects(Area::Blobs).await.len(), 4);

    let dry = gc(&s, true).await;
    assert_eq!(
        (dry["blobsDeleted"].clone(), dry["bytesFreed"].clone()),
        (json!(1), json!(5000))
    );
    assert_eq!(
        s.head(&format!("/v2/app/blobs/{orphan}")).await.status(),
        StatusCode::OK,
        "dry run removes nothing"
    );

    let report = gc(&s, false).await;
    assert_eq!(report["blobsDeleted"], 1);
    assert_eq!(
        s.head(&format!("/v2/app/blobs/{orphan}")).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(s.stored_objects(Area::Blobs).await.len(), 3);
    let m: Value = serde_json::from_slice(&manifest).expect("json");
    for d in [&m["config"]["digest"], &m["layers"][0]["digest"]] {
        let r = s
            .get(&format!("/v2/app/blobs/{}", d.as_str().expect("digest")))
            .await;
        assert_eq!(r.status(), StatusCode::OK);
    }
    assert_eq!(
        gc(&s, false).await["blobsDeleted"],
        0,
        "nothing left to free"
    );
}

#[tokio::test]
async fn the_grace_period_protects_young_blobs() {
    let s = TestServer::start().await;
    let orphan = s.push_blob("app", &blob(98, 100)).await;
    assert_eq!(gc(&s, false).await["blobsDeleted"], 0);
    assert_eq!(
        s.head(&format!("/v2/app/blobs/{orphan}")).await.status(),
        StatusCode::OK
    );
}

// Untagged manifests go (by policy), but not index entries, referrers of kept
// manifests, lineage targets or recent rollback targets.
#[tokio::test]
async fn untagged_manifests_go_unless_something_keeps_them() {
    let s = TestServer::with_config(|c| {
        no_grace(c);
        c.gc.delete_untagged = true;
        c.gc.keep_history = 0;
    })
    .await;
    let (child, child_d) = s.push_image("app", "child", 2).await;
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [descriptor(OCI_MANIFEST, &child)],
    }))
    .expect("json");
    assert_eq!(
        s.put_manifest("app", "multi", OCI_INDEX, &index)
            .await
            .status(),
        StatusCode::CREATED
    );
    assert_eq!(
        s.delete("/v2/app/manifests/child").await.status(),
        StatusCode::ACCEPTED
    );

    let (_, dataset) = s.push_image("data", "snapshot", 3).await;
    assert_eq!(
        s.delete("/v2/data/manifests/snapshot").await.status(),
        StatusCode::ACCEPTED
    );
    s.push_blob("models", b"{}").await;
    let model = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": descriptor("application/vnd.oci.empty.v1+json", b"{}"), "layers": [],
        "annotations": { "io.berth.lineage.datasets": format!("data@{dataset}") },
    }))
    .expect("json");
    assert_eq!(
        s.put_manifest("models", "v1", OCI_MANIFEST, &model)
            .await
            .status(),
        StatusCode::CREATED
    );

    let (_, old) = s.push_image("app", "latest", 4).await;
    let (_, _new) = s.push_image("app", "latest", 5).await;

    let report = gc(&s, false).await;
    let deleted: Vec<String> = report["manifestsDeleted"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        deleted,
        [format!("app@{old}")],
        "only the replaced, untagged image goes"
    );
    assert_eq!(
        s.get(&format!("/v2/app/manifests/{child_d}"))
            .await
            .status(),
        StatusCode::OK,
        "index entry kept"
    );
    assert_eq!(
        s.get(&format!("/v2/data/manifests/{dataset}"))
            .await
            .status(),
        StatusCode::OK,
        "lineage target kept"
    );
    assert_eq!(
        s.get(&format!("/v2/app/manifests/{old}")).await.status(),
        StatusCode::NOT_FOUND
    );
    assert!(
        report["blobsDeleted"].as_u64().is_some_and(|n| n >= 1),
        "its layer went too: {report}"
    );
}

#[tokio::test]
async fn rollback_targets_in_recent_history_are_kept() {
    let s = TestServer::with_config(|c| {
        no_grace(c);
        c.gc.delete_untagged = true;
        c.gc.keep_history = 5;
    })
    .await;
    let (_, v1) = s.push_image("app", "production", 6).await;
    s.push_image("app", "production", 7).await;
    assert!(
        gc(&s, false).await["manifestsDeleted"]
            .as_array()
            .is_some_and(Vec::is_empty)
    );
    assert_eq!(
        s.get(&format!("/v2/app/manifests/{v1}")).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn idle_upload_sessions_expire_with_their_bytes() {
    let s = TestServer::with_config(|c| c.gc.upload_ttl = "0".into()).await;
    let loc = s.open_upload("app").await;
    s.request(Method::PATCH, &loc)
        .body(blob(8, 4000))
        .send()
        .await
        .expect("PATCH");
    assert!(!s.stored_objects(Area::Uploads).await.is_empty());
    assert_eq!(gc(&s, false).await["uploadsExpired"], 1);
    assert_eq!(s.get(&loc).await.status(), StatusCode::NOT_FOUND);
    assert!(s.stored_objects(Area::Uploads).await.is_empty());
}

// A storage error fails the push cleanly, and the same push then succeeds.
#[tokio::test]
async fn a_storage_fault_loses_nothing_and_the_push_can_be_retried() {
    let (s, faults) = TestServer::with_faults(|_| {}).await;
    let bytes = blob(9, 10_000);
    let digest = sha256(&bytes);
    faults.fail_nth(Op::Put, 1);
    let r = s
        .request(
            Method::POST,
            &format!("/v2/app/blobs/uploads/?digest={digest}"),
        )
        .body(bytes.clone())
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(error_code(r).await, "UNKNOWN");
    assert_eq!(
        s.head(&format!("/v2/app/blobs/{digest}")).await.status(),
        StatusCode::NOT_FOUND
    );
    assert!(faults.paths_under("blobs").await.is_empty());
    assert_eq!(s.push_blob("app", &bytes).await, digest);

    // A failed read is a clean 500, not a truncated 200.
    faults.fail_nth(Op::Get, 1);
    assert_eq!(
        s.get(&format!("/v2/app/blobs/{digest}")).await.status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(
        s.get(&format!("/v2/app/blobs/{digest}")).await.status(),
        StatusCode::OK
    );
}

// GC fails closed: a delete that fails keeps its tombstone and is retried.
#[tokio::test]
async fn a_failed_gc_delete_is_retried_by_the_next_run() {
    let (s, faults) = TestServer::with_faults(no_grace).await;
    let orphan = s.push_blob("app", &blob(10, 100)).await;
    faults.fail_nth(Op::Delete, 1);
    let report = gc(&s, false).await;
    assert_eq!(
        report["errors"].as_array().map(Vec::len),
        Some(1),
        "{report}"
    );
    assert_eq!(
        faults.paths_under("blobs").await.len(),
        1,
        "the object is still there"
    );
    assert_eq!(
        s.head(&format!("/v2/app/blobs/{orphan}")).await.status(),
        StatusCode::NOT_FOUND
    );
    let again = gc(&s, false).await;
    assert!(again["errors"].as_array().is_some_and(Vec::is_empty));
    assert!(faults.paths_under("blobs").await.is_empty());
}

// A blob pushed again while it is tombstoned waits, then is stored whole.
#[tokio::test]
async fn pushing_during_gc_never_records_a_missing_blob() {
    let s = TestServer::with_config(no_grace).await;
    let bytes = blob(11, 3000);
    for round in 0..20 {
        s.push_blob("app", &bytes).await;
        let (push, sweep) = tokio::join!(s.push_blob("other", &bytes), gc(&s, false));
        let _ = (push, sweep);
        let r = s.get(&format!("/v2/other/blobs/{}", sha256(&bytes))).await;
        if r.status() == StatusCode::OK {
            assert_eq!(
                r.bytes().await.expect("b").as_ref(),
                &bytes[..],
                "round {round}"
            );
        }
    }
    // Whatever the interleaving, every recorded blob has its bytes.
    let out = run_fsck(&s, false).await;
    let report: Value = serde_json::from_slice(&out.stdout).expect("json report");
    assert_eq!(report["missing"], json!([]), "{report}");
    assert_eq!(report["dangling"], json!([]), "{report}");
}

#[tokio::test]
async fn fsck_finds_corrupt_and_orphaned_content_and_repairs_it() {
    let s = TestServer::start().await;
    let bytes = blob(12, 2048);
    let digest = s.push_blob("app", &bytes).await;
    let key = |d: &str| StorageKey::Blob(d.parse().expect("digest"));
    let blobs = s.blobs();
    blobs
        .put_bytes(&key(&digest), "flipped bits".into())
        .await
        .expect("corrupt it");
    let stray = "sha256:ab00000000000000000000000000000000000000000000000000000000000000";
    blobs
        .put_bytes(&key(stray), "nobody's".into())
        .await
        .expect("orphan");

    let fsck = |repair: bool| run_fsck(&s, repair);
    let out = fsck(false).await;
    assert!(!out.status.success(), "problems make fsck fail");
    let report: Value = serde_json::from_slice(&out.stdout).expect("json report");
    assert_eq!(report["corrupt"], json!([digest]));
    assert_eq!(
        report["orphaned"].as_array().map(Vec::len),
        Some(1),
        "{report}"
    );

    let out = fsck(true).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(s.blobs().size(&key(stray)).await.expect("size"), None);
    assert_eq!(
        s.get(&format!("/v2/app/blobs/{digest}")).await.status(),
        StatusCode::NOT_FOUND,
        "corrupt content is not served"
    );
    s.push_blob("app", &bytes).await;
    let r = s.get(&format!("/v2/app/blobs/{digest}")).await;
    assert_eq!(
        r.bytes().await.expect("b").as_ref(),
        &bytes[..],
        "a new push heals it"
    );
    let out = fsck(false).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Runs `berth fsck` (the built binary) on a test server's data directory and store.
async fn run_fsck(s: &TestServer, repair: bool) -> std::process::Output {
    let dir = s.data_dir().to_path_buf();
    let mut env = storage_env(&suite_storage(&dir));
    env.extend(suite_metadata_env(&dir));
    tokio::task::spawn_blocking(move || {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_berth"));
        cmd.args(["fsck", "--data-dir"]).arg(&dir).envs(env);
        if repair {
            cmd.arg("--repair");
        }
        cmd.output().expect("run fsck")
    })
    .await
    .expect("join")
}

/// A small tmpfs mounted for the test, unmounted on drop.
struct SmallDisk(tempfile::TempDir);

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().expect("dir");
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mounting a tmpfs needs root (CI and the dev machines run as root)"
        );
        SmallDisk(dir)
    }

    fn resize(&self, size: &str) {
        let status = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.0.path())
            .status()
            .expect("run mount");
        assert!(status.success());
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.0.path())
            .status();
    }
}

// A full disk answers a JSON 507, keeps the server up, leaves nothing
// partial, and the same push succeeds once there is room.
#[tokio::test]
async fn a_full_disk_fails_cleanly_and_the_push_succeeds_once_space_is_freed() {
    let disk = SmallDisk::mount("3m");
    // Local disk by nature: the filesystem itself runs out of space.
    let s = TestServer::in_dir(disk.0.path(), |c| c.storage = StorageConfig::default()).await;
    let bytes = blob(13, 6 * 1024 * 1024);
    let digest = sha256(&bytes);
    let push = || {
        s.request(
            Method::POST,
            &format!("/v2/app/blobs/uploads/?digest={digest}"),
        )
        .body(bytes.clone())
        .send()
    };
    let r = push().await.expect("POST");
    assert_eq!(r.status(), StatusCode::INSUFFICIENT_STORAGE);
    assert!(header(&r, "retry-after").is_some());
    assert_eq!(error_code(r).await, "UNKNOWN");
    assert_eq!(
        s.get("/v2/").await.status(),
        StatusCode::OK,
        "still serving"
    );
    assert_eq!(
        s.head(&format!("/v2/app/blobs/{digest}")).await.status(),
        StatusCode::NOT_FOUND
    );
    assert!(s.stored_objects(Area::Blobs).await.is_empty());
    assert!(
        s.stored_objects(Area::Uploads).await.is_empty(),
        "no partial upload left"
    );

    disk.resize("32m");
    let r = push().await.expect("POST");
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(sha256(&s.fetch_blob("app", &digest).await), digest);
    drop(s);
}

#[tokio::test]
async fn sixteen_clients_pushing_the_same_blob_all_succeed_with_one_copy() {
    let s = TestServer::start().await;
    let bytes = blob(14, 200_000);
    let pushes = (0..16).map(|_| s.push_blob("app", &bytes));
    let digests = futures_util::future::join_all(pushes).await;
    assert!(digests.iter().all(|d| *d == sha256(&bytes)));
    assert_eq!(s.stored_objects(Area::Blobs).await.len(), 1);
}

#[tokio::test]
async fn thirty_two_clients_moving_one_tag_leave_one_history_chain() {
    let s = TestServer::start().await;
    let mut manifests = Vec::new();
    for i in 0..32 {
        let config = format!("{{\"n\":{i}}}").into_bytes();
        s.push_blob("app", &config).await;
        manifests.push(image_manifest(&config, &[], None));
    }
    let moves = manifests
        .iter()
        .map(|m| s.put_manifest("app", "latest", OCI_MANIFEST, m));
    let results = futures_util::future::join_all(moves).await;
    assert!(results.iter().all(|r| r.status() == StatusCode::CREATED));
    let h = json_body(
        s.get("/api/v1/repositories/app/tags/latest/history?n=100")
            .await,
    )
    .await;
    let h = h["history"].as_array().cloned().unwrap_or_default();
    assert_eq!(h.len(), 32);
    for pair in h.windows(2) {
        assert_eq!(
            pair[0]["from"], pair[1]["to"],
            "each move starts where the previous ended"
        );
    }
    assert_eq!(h[31]["from"], Value::Null);
    assert_eq!(
        header(
            &s.head("/v2/app/manifests/latest").await,
            "docker-content-digest"
        )
        .as_deref(),
        h[0]["to"].as_str()
    );
}

// GC looping with a short grace while hundreds of pushes run: every push that
// completes inside the grace period is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_in_a_loop_never_refuses_a_push_inside_the_grace_period() {
    let s = TestServer::with_config(|c| {
        c.gc.grace_period = "2s".into();
        c.gc.delete_untagged = true;
        c.gc.keep_history = 0;
    })
    .await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let looping = {
        let (client, url, stop) = (s.client.clone(), s.url("/api/v1/gc"), stop.clone());
        tokio::spawn(async move {
            let mut runs = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = client.post(&url).send().await.expect("gc");
                assert!(
                    r.status() == StatusCode::OK || r.status() == StatusCode::SERVICE_UNAVAILABLE
                );
                runs += 1;
            }
            runs
        })
    };
    let started = Instant::now();
    let mut refused = 0;
    let s = &s;
    for chunk in (0..240u64).collect::<Vec<_>>().chunks(8) {
        let pushes = chunk.iter().map(|&i| async move {
            let t = Instant::now();
            let config = format!("{{\"i\":{i}}}").into_bytes();
            let layer = blob(1000 + i, 4096);
            s.push_blob("busy", &config).await;
            s.push_blob("busy", &layer).await;
            let r = s
                .put_manifest(
                    "busy",
                    &format!("t{i}"),
                    OCI_MANIFEST,
                    &image_manifest(&config, &[&layer], None),
                )
                .await;
            (r.status(), t.elapsed())
        });
        for (status, took) in futures_util::future::join_all(pushes).await {
            if took < Duration::from_secs(2) {
                assert_eq!(status, StatusCode::CREATED);
            } else if status != StatusCode::CREATED {
                refused += 1;
            }
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let runs = looping.await.expect("gc loop");
    assert!(
        runs > 1,
        "gc ran while pushing ({runs} runs in {:?})",
        started.elapsed()
    );
    assert_eq!(refused, 0);
    let tags = json_body(s.get("/v2/busy/tags/list").await).await;
    assert_eq!(tags["tags"].as_array().map(Vec::len), Some(240));
}
