//! The storage suite: the same checks on every backend (local disk, memory
//! through object_store, S3 served by a real S3-compatible server, Azure by
//! its emulator): objects, whole blobs, resumable uploads that survive a new
//! store instance and assemble idempotently, chunks given back, removal;
//! then what only object storage does: staging below the part size, aborts,
//! retries through a flaky network, presigned redirects.

use std::sync::Arc;

use berth::error::Result;
use berth::oci::{Digest, UploadId};
use berth::storage::backend::{self, S3_MIN_PART};
use berth::storage::{Area, BlobStore, ObjectStorage, StorageKey, UploadState};
use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::{Method, StatusCode};

use crate::support::*;

const MIB: usize = 1024 * 1024;

fn key_of(bytes: &[u8]) -> StorageKey {
    StorageKey::Blob(Digest::sha256_of(bytes))
}

fn chunks(bytes: &[u8]) -> impl futures_util::Stream<Item = Result<Bytes>> + Send + use<> {
    let owned: Vec<Result<Bytes>> = bytes
        .chunks(256 * 1024)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    futures_util::stream::iter(owned)
}

fn cut_off(bytes: &[u8]) -> futures_util::stream::BoxStream<'static, Result<Bytes>> {
    chunks(bytes)
        .chain(futures_util::stream::once(async {
            Err(berth::error::Error::BlobUploadInvalid("cut off".into()))
        }))
        .boxed()
}

async fn drain(mut stream: berth::storage::Body<'static>) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.expect("chunk"));
    }
    out
}

async fn read(store: &BlobStore, key: &StorageKey, range: Option<std::ops::Range<u64>>) -> Vec<u8> {
    drain(store.read(key, range).await.expect("read")).await
}

async fn paths(store: &BlobStore, area: Area) -> Vec<String> {
    let listed = store.list(area).await.expect("list");
    listed.into_iter().map(|l| l.path).collect()
}

fn memory() -> BlobStore {
    BlobStore::new(ObjectStorage::new(
        Arc::new(object_store::memory::InMemory::new()),
        S3_MIN_PART,
    ))
}

/// Every check of the suite, on one backend; `open` makes a new store
/// instance on the same bytes (a restarted process).
async fn suite(open: impl Fn() -> BlobStore) {
    objects_round_trip(open()).await;
    failed_writes_leave_nothing(open()).await;
    whole_blobs_appear_only_when_finished(open()).await;
    uploads_resume_in_new_instances_and_assemble_twice(&open).await;
    chunks_not_committed_are_given_back(open()).await;
}

/// Objects: write, size, read whole and ranged, list (parsed back to keys),
/// delete (twice), small puts that keep what is there.
async fn objects_round_trip(store: BlobStore) {
    let bytes = blob(1, 3 * MIB + 17);
    let key = key_of(&bytes);
    assert_eq!(store.size(&key).await.expect("size"), None);
    let len = store
        .write_stream(&key, chunks(&bytes))
        .await
        .expect("write");
    assert_eq!(len, bytes.len() as u64);
    assert_eq!(store.size(&key).await.expect("size"), Some(len));
    assert_eq!(read(&store, &key, None).await, bytes);
    assert_eq!(
        read(&store, &key, Some(1000..1_000_000)).await,
        &bytes[1000..1_000_000]
    );
    let listed = store.list(Area::Blobs).await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].path, key.path().to_string());
    assert_eq!(listed[0].key.as_ref(), Some(&key));
    store.delete(&key).await.expect("delete");
    store.delete(&key).await.expect("deleting again is fine");
    assert_eq!(store.size(&key).await.expect("size"), None);
    assert!(paths(&store, Area::Blobs).await.is_empty());

    let small = Bytes::from_static(b"{\"schemaVersion\":2}");
    let key = key_of(&small);
    store.put_small(&key, small.clone()).await.expect("put");
    store.put_small(&key, small.clone()).await.expect("again");
    assert_eq!(store.read_all(&key).await.expect("read"), small);
    store.delete(&key).await.expect("delete");
    assert!(paths(&store, Area::Uploads).await.is_empty());
}

/// A write whose stream fails leaves nothing at its key, nor anywhere else.
async fn failed_writes_leave_nothing(store: BlobStore) {
    let bytes = blob(2, 9 * MIB);
    let key = key_of(&bytes);
    let broken = cut_off(&bytes[..6 * MIB]);
    assert!(store.write_stream(&key, broken).await.is_err());
    assert_eq!(store.size(&key).await.expect("size"), None);
    assert!(paths(&store, Area::Blobs).await.is_empty());
    assert!(paths(&store, Area::Uploads).await.is_empty());
}

/// A whole blob is invisible at its target until finished; one dropped
/// (stored already) or abandoned leaves nothing.
async fn whole_blobs_appear_only_when_finished(store: BlobStore) {
    for len in [1000, 9 * MIB + 3] {
        let bytes = blob(3, len);
        let key = key_of(&bytes);
        let mut writer = store
            .blob_writer(&UploadId::new_random(), &key)
            .await
            .expect("writer");
        let taken = writer.take(chunks(&bytes).boxed()).await.expect("take");
        assert_eq!(taken, len as u64);
        assert_eq!(store.size(&key).await.expect("size"), None, "{len}");
        assert_eq!(writer.finish(true).await.expect("finish"), len as u64);
        assert_eq!(read(&store, &key, None).await, bytes);
        store.delete(&key).await.expect("delete");

        let writer = store.blob_writer(&UploadId::new_random(), &key).await;
        let mut writer = writer.expect("writer");
        writer.take(chunks(&bytes).boxed()).await.expect("take");
        writer.finish(false).await.expect("dropped");
        let mut writer = store
            .blob_writer(&UploadId::new_random(), &key)
            .await
            .expect("writer");
        writer.take(chunks(&bytes).boxed()).await.expect("take");
        writer.abandon().await;
        assert_eq!(store.size(&key).await.expect("size"), None);
        assert!(paths(&store, Area::Blobs).await.is_empty());
        assert!(paths(&store, Area::Uploads).await.is_empty());
    }
}

/// Appends `bytes[from..to]` to an upload at `from` and commits the result
/// the way the registry does: the new state replaces and releases the old.
async fn append(
    store: &BlobStore,
    upload: &UploadId,
    state: &UploadState,
    bytes: &[u8],
    (from, to): (usize, usize),
) -> UploadState {
    let chunk = store
        .append(upload, from as u64, state, chunks(&bytes[from..to]).boxed())
        .await
        .expect("append");
    assert_eq!(chunk.len, (to - from) as u64);
    let next = state.advanced(&chunk);
    store.release(upload, state, &next).await;
    next
}

/// Each chunk's state is enough for a new store instance to go on;
/// assembling twice is harmless; placing moves the bytes to their address;
/// removing the upload leaves nothing of it. On object storage, chunks
/// below the minimum part size are staged and full parts uploaded.
async fn uploads_resume_in_new_instances_and_assemble_twice(open: &impl Fn() -> BlobStore) {
    let bytes = blob(4, 11 * MIB + 5);
    let upload = UploadId::new_random();
    let mut state = UploadState::default();
    let parted = open().min_chunk() > 0;
    // 1 MiB and 3 MiB: both below 5 MiB, so staged; then 7 MiB + 5 bytes,
    // which fills one 8 MiB part and stages the 3 MiB + 5 left.
    let mut from = 0;
    for (n, to) in [MIB, 4 * MIB, bytes.len()].into_iter().enumerate() {
        state = append(&open(), &upload, &state, &bytes, (from, to)).await;
        from = to;
        let leftovers = paths(&open(), Area::Uploads).await;
        if parted {
            assert_eq!(
                state.parts.len(),
                usize::from(n == 2),
                "chunk {n}: {state:?}"
            );
            if n == 2 {
                assert_eq!(state.parts[0].1, 8 * MIB as u64);
            }
            // Only the current staged object is left.
            let staged: Vec<_> = leftovers.iter().filter(|p| p.contains("staged-")).collect();
            assert_eq!(staged.len(), 1, "{leftovers:?}");
        } else {
            assert_eq!(state, UploadState::default());
        }
    }
    let len = bytes.len() as u64;
    let store = open();
    let assembled = store
        .assemble(&upload, &state, len)
        .await
        .expect("assemble");
    let again = open()
        .assemble(&upload, &state, len)
        .await
        .expect("assembling again keeps the object");
    assert_eq!(assembled, again);
    assert_eq!(
        drain(store.read_assembled(&assembled, len).await.expect("read")).await,
        bytes
    );
    let target = key_of(&bytes);
    store
        .place(&upload, &assembled, &target, len)
        .await
        .expect("place");
    assert_eq!(read(&open(), &target, None).await, bytes);
    store.remove_upload(&upload, &state).await.expect("remove");
    assert!(paths(&store, Area::Uploads).await.is_empty());
    store.delete(&target).await.expect("delete");

    // An empty upload places an empty blob.
    let empty = UploadId::new_random();
    let none = UploadState::default();
    let assembled = store.assemble(&empty, &none, 0).await.expect("assemble");
    let target = key_of(b"");
    store
        .place(&empty, &assembled, &target, 0)
        .await
        .expect("place");
    assert_eq!(store.size(&target).await.expect("size"), Some(0));
    store.delete(&target).await.expect("delete");
}

/// A chunk that is not committed (its stream broke, or the caller refused
/// it) is given back: the upload carries on from the state before it.
async fn chunks_not_committed_are_given_back(store: BlobStore) {
    let bytes = blob(5, 14 * MIB);
    let upload = UploadId::new_random();
    let first = append(
        &store,
        &upload,
        &UploadState::default(),
        &bytes,
        (0, 2 * MIB),
    )
    .await;
    let before = paths(&store, Area::Uploads).await;
    let broken = store
        .append(
            &upload,
            2 * MIB as u64,
            &first,
            cut_off(&bytes[2 * MIB..12 * MIB]),
        )
        .await;
    assert!(broken.is_err());
    assert_eq!(
        paths(&store, Area::Uploads).await,
        before,
        "the broken chunk left nothing"
    );
    let refused = store
        .append(
            &upload,
            2 * MIB as u64,
            &first,
            chunks(&bytes[2 * MIB..12 * MIB]).boxed(),
        )
        .await
        .expect("append");
    store
        .release(&upload, &first.advanced(&refused), &first)
        .await;
    assert_eq!(
        paths(&store, Area::Uploads).await,
        before,
        "the refused chunk left nothing"
    );
    let rest = append(&store, &upload, &first, &bytes, (2 * MIB, bytes.len())).await;
    let len = bytes.len() as u64;
    let assembled = store.assemble(&upload, &rest, len).await.expect("assemble");
    assert_eq!(
        drain(store.read_assembled(&assembled, len).await.expect("read")).await,
        bytes
    );
    store.remove_upload(&upload, &rest).await.expect("remove");
    assert!(paths(&store, Area::Uploads).await.is_empty());
}

#[tokio::test]
async fn local_disk() {
    let dir = tempfile::tempdir().expect("dir");
    suite(|| BlobStore::local(dir.path()).expect("local")).await;
}

#[tokio::test]
async fn memory_objects() {
    let store = memory();
    suite(|| store.clone()).await;
}

#[tokio::test]
async fn s3() {
    let dir = tempfile::tempdir().expect("dir");
    let config = s3_storage(dir.path());
    suite(|| backend::open(&config, dir.path()).expect("s3")).await;
    aborted_uploads_are_gone(backend::open(&config, dir.path()).expect("s3")).await;
    assert_eq!(multipart_uploads_in(&config).await, 0);
}

// Azure has no abort: uncommitted blocks expire by themselves after a week.
#[tokio::test]
async fn azure() {
    let dir = tempfile::tempdir().expect("dir");
    let config = azure_storage();
    suite(|| backend::open(&config, dir.path()).expect("azure")).await;
}

/// A removed multipart upload cannot be completed.
async fn aborted_uploads_are_gone(store: BlobStore) {
    let bytes = blob(6, 6 * MIB);
    let upload = UploadId::new_random();
    let state = append(
        &store,
        &upload,
        &UploadState::default(),
        &bytes,
        (0, bytes.len()),
    )
    .await;
    assert_eq!(state.parts.len(), 1);
    store.remove_upload(&upload, &state).await.expect("remove");
    assert!(
        store
            .assemble(&upload, &state, bytes.len() as u64)
            .await
            .is_err()
    );
}

// Expired sessions abort their multipart uploads, not only their staged bytes.
#[tokio::test]
async fn expired_sessions_abort_their_multipart_uploads() {
    let dir = tempfile::tempdir().expect("dir");
    let config = s3_storage(dir.path());
    let s = TestServer::in_dir(dir.path(), |c| {
        c.storage = config.clone();
        c.gc.upload_ttl = "0".into();
    })
    .await;
    let loc = s.open_upload("app").await;
    let r = s
        .request(Method::PATCH, &loc)
        .body(blob(5, 7 * MIB))
        .send()
        .await
        .expect("PATCH");
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(multipart_uploads_in(&config).await, 1);
    let r = s
        .request(Method::POST, "/api/v1/gc")
        .send()
        .await
        .expect("gc");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(multipart_uploads_in(&config).await, 0);
    assert!(s.stored_objects(Area::Uploads).await.is_empty());
}

// With redirects on, a blob GET answers 307 to a presigned URL that serves
// the bytes (and ranges of them) straight from the bucket.
#[tokio::test]
async fn blob_reads_redirect_to_presigned_urls() {
    let dir = tempfile::tempdir().expect("dir");
    let s = TestServer::in_dir(dir.path(), |c| {
        c.storage = s3_storage(dir.path());
        c.storage.redirect = true;
    })
    .await;
    let bytes = blob(6, 300_000);
    let digest = s.push_blob("app", &bytes).await;
    let no_follow = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let r = no_follow
        .get(s.url(&format!("/v2/app/blobs/{digest}")))
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), StatusCode::TEMPORARY_REDIRECT);
    let target = header(&r, "location").expect("Location");
    assert!(target.contains("X-Amz-Signature="), "{target}");
    let got = reqwest::get(&target).await.expect("presigned GET");
    assert_eq!(got.bytes().await.expect("b").as_ref(), &bytes[..]);
    let r = s
        .request(Method::GET, &format!("/v2/app/blobs/{digest}"))
        .header("Range", "bytes=10-19")
        .send()
        .await
        .expect("ranged GET, followed");
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.bytes().await.expect("b").as_ref(), &bytes[10..20]);
    // Unknown blobs are still answered by the registry, not redirected.
    let r = no_follow
        .get(s.url(&format!("/v2/app/blobs/{}", sha256(b"nothing"))))
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

// Transient S3 errors (503 SlowDown, a dropped connection) are retried with
// backoff: pushes and pulls through a flaky network succeed whole.
#[tokio::test]
async fn transient_s3_errors_are_retried() {
    let dir = tempfile::tempdir().expect("dir");
    let flaky = FlakyProxy::start(&s3_endpoint()).await;
    let s = TestServer::in_dir(dir.path(), |c| {
        c.storage = s3_storage(dir.path());
        c.storage.endpoint = Some(flaky.url.clone());
        c.storage.max_retries = 10;
    })
    .await;
    let bytes = blob(7, 13 * MIB);
    let digest = s.push_blob_chunked("app", &bytes, 6 * MIB).await;
    assert_eq!(sha256(&s.fetch_blob("app", &digest).await), digest);
    let small = s.push_blob("app", &blob(8, 1000)).await;
    assert_eq!(
        s.head(&format!("/v2/app/blobs/{small}")).await.status(),
        StatusCode::OK
    );
    let failed = flaky.failed();
    assert!(failed >= 3, "the proxy failed only {failed} requests");
}

/// Headers the proxy sets itself rather than passing on.
const HOP_HEADERS: &[&str] = &["host", "content-length", "transfer-encoding", "connection"];

/// A proxy in front of the S3 server that answers every third request with
/// 503 SlowDown and forwards the rest.
struct FlakyProxy {
    url: String,
    failed: Arc<std::sync::atomic::AtomicUsize>,
}

impl FlakyProxy {
    async fn start(upstream: &str) -> FlakyProxy {
        use axum::body::Body;
        use axum::extract::Request;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let seen = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(AtomicUsize::new(0));
        let client = reqwest::Client::new();
        let upstream = upstream.trim_end_matches('/').to_owned();
        let (seen2, failed2) = (Arc::clone(&seen), Arc::clone(&failed));
        let app = axum::Router::new().fallback(move |req: Request| {
            let (client, upstream) = (client.clone(), upstream.clone());
            let (seen, failed) = (Arc::clone(&seen2), Arc::clone(&failed2));
            async move {
                let (parts, body) = req.into_parts();
                let body = axum::body::to_bytes(body, usize::MAX)
                    .await
                    .unwrap_or_default();
                if seen.fetch_add(1, Ordering::SeqCst) % 3 == 2 {
                    failed.fetch_add(1, Ordering::SeqCst);
                    return axum::http::Response::builder()
                        .status(503)
                        .body(Body::from(
                            "<Error><Code>SlowDown</Code><Message>Reduce your request rate.</Message></Error>",
                        ))
                        .expect("response");
                }
                let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
                let mut forward = client.request(parts.method.clone(), format!("{upstream}{path}"));
                for (name, value) in &parts.headers {
                    if !HOP_HEADERS.contains(&name.as_str()) {
                        forward = forward.header(name, value);
                    }
                }
                let answer = forward.body(body).send().await.expect("upstream");
                let mut out = axum::http::Response::builder().status(answer.status());
                for (name, value) in answer.headers() {
                    if !HOP_HEADERS.contains(&name.as_str()) {
                        out = out.header(name, value);
                    }
                }
                out.body(Body::from(answer.bytes().await.unwrap_or_default()))
                    .expect("response")
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        FlakyProxy { url, failed }
    }

    fn failed(&self) -> usize {
        self.failed.load(std::sync::atomic::Ordering::SeqCst)
    }
}
