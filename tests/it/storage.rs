//! The storage suite: the same checks on every backend (memory, local disk,
//! S3 served by a real S3-compatible server, Azure by its emulator), then what only object
//! storage does: multipart uploads that stage small chunks and survive a new
//! process, aborts, retries through a flaky network, presigned redirects.

use std::sync::{Arc, Mutex};

use berth::error::Result;
use berth::oci::{Digest, UploadId};
use berth::storage::backend;
use berth::storage::{BlobStore, PartsState, StorageKey};
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
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

async fn read(store: &BlobStore, key: &StorageKey, range: Option<std::ops::Range<u64>>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut stream = store.read(key, range).await.expect("read");
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.expect("chunk"));
    }
    out
}

/// Objects: write, size, read whole and ranged, list, delete (twice).
async fn objects_round_trip(store: BlobStore) {
    let bytes = blob(1, 3 * MIB + 17);
    let key = key_of(&bytes);
    assert_eq!(store.size(&key).await.expect("size"), None);
    let len = store
        .write_stream(&key, chunks(&bytes), |_| {})
        .await
        .expect("write");
    assert_eq!(len, bytes.len() as u64);
    assert_eq!(store.size(&key).await.expect("size"), Some(len));
    assert_eq!(read(&store, &key, None).await, bytes);
    assert_eq!(
        read(&store, &key, Some(1000..1_000_000)).await,
        &bytes[1000..1_000_000]
    );
    let listed = store.list("blobs").await.expect("list");
    assert_eq!(listed, vec![key.path().to_string()]);
    store.delete(&key).await.expect("delete");
    store.delete(&key).await.expect("deleting again is fine");
    assert_eq!(store.size(&key).await.expect("size"), None);
    assert!(store.list("blobs").await.expect("list").is_empty());
}

/// A write whose stream fails leaves nothing at its key.
async fn failed_writes_leave_nothing(store: BlobStore) {
    let bytes = blob(2, 9 * MIB);
    let key = key_of(&bytes);
    let broken = chunks(&bytes[..6 * MIB]).chain(futures_util::stream::once(async {
        Err(berth::error::Error::BlobUploadInvalid("cut off".into()))
    }));
    assert!(store.write_stream(&key, broken, |_| {}).await.is_err());
    assert_eq!(store.size(&key).await.expect("size"), None);
    assert!(store.list("blobs").await.expect("list").is_empty());
}

#[tokio::test]
async fn memory_objects() {
    objects_round_trip(BlobStore::memory()).await;
    failed_writes_leave_nothing(BlobStore::memory()).await;
}

#[tokio::test]
async fn local_objects() {
    let dir = tempfile::tempdir().expect("dir");
    let store = BlobStore::local(dir.path()).expect("local");
    objects_round_trip(store.clone()).await;
    failed_writes_leave_nothing(store).await;
}

#[tokio::test]
async fn s3_objects() {
    let dir = tempfile::tempdir().expect("dir");
    let open = || backend::open(&s3_storage(dir.path()), dir.path()).expect("s3");
    objects_round_trip(open()).await;
    failed_writes_leave_nothing(open()).await;
}

#[tokio::test]
async fn azure_objects() {
    let dir = tempfile::tempdir().expect("dir");
    let open = || backend::open(&azure_storage(), dir.path()).expect("azure");
    objects_round_trip(open()).await;
    failed_writes_leave_nothing(open()).await;
}

/// Records the multipart id the way the metadata database does: first one wins.
fn recorder() -> impl Fn(String) -> BoxFuture<'static, Result<String>> + Send + Sync {
    let slot: Arc<Mutex<Option<String>>> = Arc::default();
    move |id: String| {
        let slot = Arc::clone(&slot);
        Box::pin(async move {
            let mut slot = slot.lock().expect("slot");
            Ok(slot.get_or_insert(id).clone())
        })
    }
}

/// Chunks below the minimum part size are staged, full parts are uploaded,
/// each chunk's state is enough for a new store instance (a restarted
/// process) to go on, and assembling twice is harmless.
async fn multipart_uploads_stage_and_resume(open: impl Fn() -> BlobStore) {
    let bytes = blob(3, 11 * MIB + 5);
    let upload = UploadId::new_random();
    let record = recorder();
    let mut state = PartsState::default();
    let mut offset = 0u64;
    let mut hasher_bytes = 0usize;
    // 1 MiB and 3 MiB: both below 5 MiB, so staged; then 7 MiB + 5 bytes,
    // which fills one 8 MiB part and stages the 3 MiB + 5 left.
    for (n, end) in [MIB, 4 * MIB, bytes.len()].into_iter().enumerate() {
        let store = open();
        let (next, len) = store
            .append_parts(
                &upload,
                offset,
                &state,
                chunks(&bytes[offset as usize..end]),
                |c| hasher_bytes += c.len(),
                &record,
            )
            .await
            .expect("append");
        assert_eq!(len, (end - offset as usize) as u64);
        store.discard_staged(&upload, &next, &state).await;
        offset += len;
        state = next;
        match n {
            0 | 1 => {
                assert!(state.parts.is_empty(), "chunk {n}: {state:?}");
                assert_eq!(state.staged.as_ref().map(|s| s.1), Some(offset));
            }
            _ => {
                assert_eq!(state.parts.len(), 1, "{state:?}");
                assert_eq!(state.parts[0].1, 8 * MIB as u64);
                assert_eq!(
                    state.staged.as_ref().map(|s| s.1),
                    Some(offset - 8 * MIB as u64)
                );
            }
        }
        // Only the current staged object is left.
        let staged: Vec<_> = store
            .list("uploads")
            .await
            .expect("list")
            .into_iter()
            .filter(|p| p.contains("staged-"))
            .collect();
        assert_eq!(staged.len(), 1, "{staged:?}");
    }
    assert_eq!(hasher_bytes, bytes.len());
    let store = open();
    let assembled = store
        .assemble_parts(&upload, &state, offset)
        .await
        .expect("assemble")
        .expect("an object");
    let again = open()
        .assemble_parts(&upload, &state, offset)
        .await
        .expect("assembling again keeps the object")
        .expect("an object");
    assert_eq!(assembled, again);
    assert_eq!(read(&store, &assembled, None).await, bytes);
    let target = key_of(&bytes);
    store
        .move_into_place(&assembled, &target, offset)
        .await
        .expect("move");
    assert_eq!(read(&open(), &target, None).await, bytes);
    assert_eq!(store.size(&assembled).await.expect("size"), None);
}

/// An aborted multipart upload cannot be completed.
async fn aborted_uploads_are_gone(store: BlobStore) {
    let bytes = blob(4, 6 * MIB);
    let upload = UploadId::new_random();
    let (state, _) = store
        .append_parts(
            &upload,
            0,
            &PartsState::default(),
            chunks(&bytes),
            |_| {},
            &recorder(),
        )
        .await
        .expect("append");
    assert_eq!(state.parts.len(), 1);
    let id = state.multipart_id.clone().expect("begun");
    store.abort_parts(&upload, &id).await;
    assert!(
        store
            .assemble_parts(&upload, &state, bytes.len() as u64)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn memory_multipart_uploads() {
    let store = BlobStore::memory();
    multipart_uploads_stage_and_resume(|| store.clone()).await;
    aborted_uploads_are_gone(BlobStore::memory()).await;
}

#[tokio::test]
async fn s3_multipart_uploads() {
    let dir = tempfile::tempdir().expect("dir");
    let config = s3_storage(dir.path());
    multipart_uploads_stage_and_resume(|| backend::open(&config, dir.path()).expect("s3")).await;
    aborted_uploads_are_gone(backend::open(&config, dir.path()).expect("s3")).await;
    assert_eq!(multipart_uploads_in(&config).await, 0);
}

// Azure has no abort: uncommitted blocks expire by themselves after a week.
#[tokio::test]
async fn azure_multipart_uploads() {
    let dir = tempfile::tempdir().expect("dir");
    let config = azure_storage();
    multipart_uploads_stage_and_resume(|| backend::open(&config, dir.path()).expect("azure")).await;
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
    assert!(s.stored_objects("uploads").await.is_empty());
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
