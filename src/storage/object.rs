//! Object storage through object_store: S3, GCS, Azure, or any store with
//! multipart uploads. Whole blobs stream straight to their content address
//! as multipart uploads, which the backends keep invisible until completed;
//! resumable uploads are in parts.rs.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use object_store::buffered::BufWriter;
use object_store::multipart::MultipartStore;
use object_store::signer::Signer;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, WriteMultipart};

use super::{
    Appended, Area, Assembled, BlobWriter, Body, Listed, Storage, StorageKey, UploadState,
};
use crate::error::{Error, Result};
use crate::oci::UploadId;

/// Size of the parts handed to the object store while streaming a body in;
/// a body shorter than this is written in one request.
pub(super) const PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts in flight at once while streaming; bounds memory per upload.
const PARTS_IN_FLIGHT: usize = 2;

/// Largest object a backend copies in one request (S3's CopyObject limit);
/// larger ones are streamed through into place.
const COPY_LIMIT: u64 = 5 * 1024 * 1024 * 1024;

/// An object store with multipart uploads.
#[derive(Clone)]
pub struct ObjectStorage {
    pub(super) store: Arc<dyn ObjectStore>,
    pub(super) multipart: Arc<dyn MultipartStore>,
    /// Parts of a multipart upload (but the last) are at least this long.
    pub(super) min_part: u64,
    /// Prepended to every object path (a bucket shared with others).
    prefix: Option<String>,
    /// Blob reads answer a presigned URL valid this long instead of bytes.
    redirect: Option<(Arc<dyn Signer>, Duration)>,
}

impl std::fmt::Debug for ObjectStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ObjectStorage({})", self.store)
    }
}

impl ObjectStorage {
    /// A store whose multipart parts (but the last) must be at least
    /// `min_part` bytes: a cloud backend, memory, or a test wrapper.
    pub fn new<S>(store: Arc<S>, min_part: u64) -> ObjectStorage
    where
        S: ObjectStore + MultipartStore,
    {
        ObjectStorage {
            store: Arc::clone(&store) as Arc<dyn ObjectStore>,
            multipart: store as Arc<dyn MultipartStore>,
            min_part,
            prefix: None,
            redirect: None,
        }
    }

    /// Keeps every object under `prefix/`.
    pub fn with_prefix(mut self, prefix: &str) -> ObjectStorage {
        let prefix = prefix.trim_matches('/');
        self.prefix = (!prefix.is_empty()).then(|| prefix.to_owned());
        self
    }

    /// Answers blob reads with a URL signed by `signer`, valid for `ttl`.
    pub fn with_redirect(mut self, signer: Arc<dyn Signer>, ttl: Duration) -> ObjectStorage {
        self.redirect = Some((signer, ttl));
        self
    }

    /// Where a key lives in the store.
    pub(super) fn path(&self, key: &StorageKey) -> object_store::path::Path {
        self.with_store_prefix(key.path().as_ref())
    }

    fn with_store_prefix(&self, path: &str) -> object_store::path::Path {
        match &self.prefix {
            None => object_store::path::Path::from(path),
            Some(prefix) => object_store::path::Path::from(format!("{prefix}/{path}")),
        }
    }

    /// Starts writing a new object at `key`; it appears only once finished.
    async fn writer(&self, key: &StorageKey) -> Result<ObjectWriter> {
        let upload = self.store.put_multipart(&self.path(key)).await?;
        Ok(ObjectWriter {
            inner: WriteMultipart::new_with_chunk_size(upload, PART_SIZE),
        })
    }

    /// Moves a `len`-byte object to `to`, which is replaced atomically: by a
    /// server-side copy where the backend can, else streamed through.
    pub(super) async fn move_into_place(
        &self,
        from: &StorageKey,
        to: &StorageKey,
        len: u64,
    ) -> Result<()> {
        if len <= COPY_LIMIT {
            return Ok(self.store.rename(&self.path(from), &self.path(to)).await?);
        }
        let mut writer = self.writer(to).await?;
        let mut stream = match self.read(from, None).await {
            Ok(s) => s,
            Err(e) => return Err(writer.abort(e).await),
        };
        while let Some(chunk) = stream.next().await {
            let written = match chunk {
                Ok(c) => writer.write(c).await,
                Err(e) => Err(e),
            };
            if let Err(e) = written {
                return Err(writer.abort(e).await);
            }
        }
        writer.inner.finish().await?;
        self.delete(from).await
    }

    /// Deletes every object under an upload's prefix.
    async fn delete_prefix(&self, upload: &UploadId) -> Result<()> {
        let prefix = self.path(&StorageKey::Upload(upload.clone()));
        let paths = self
            .store
            .list(Some(&prefix))
            .map_ok(|m| m.location)
            .boxed();
        let mut results = self.store.delete_stream(paths);
        while let Some(r) = results.next().await {
            match r {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    async fn delete_path(&self, path: object_store::path::Path) -> Result<()> {
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

#[async_trait]
impl Storage for ObjectStorage {
    async fn size(&self, key: &StorageKey) -> Result<Option<u64>> {
        match self.store.head(&self.path(key)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn read(&self, key: &StorageKey, range: Option<Range<u64>>) -> Result<Body<'static>> {
        let options = GetOptions::new().with_range(range.map(GetRange::Bounded));
        let result = self.store.get_opts(&self.path(key), options).await?;
        let expected = result.range.end - result.range.start;
        let what = key.path().to_string();
        Ok(exactly(
            result.into_stream().map_err(Error::from).boxed(),
            expected,
            what,
        ))
    }

    async fn put_small(&self, key: &StorageKey, bytes: Bytes) -> Result<()> {
        if self.size(key).await? != Some(bytes.len() as u64) {
            self.store.put(&self.path(key), bytes.into()).await?;
        }
        Ok(())
    }

    async fn delete(&self, key: &StorageKey) -> Result<()> {
        self.delete_path(self.path(key)).await
    }

    async fn list(&self, area: Area) -> Result<Vec<Listed>> {
        let full = self.with_store_prefix(area.prefix());
        let metas: Vec<_> = self.store.list(Some(&full)).try_collect().await?;
        let strip = self.prefix.as_ref().map(|p| format!("{p}/"));
        let mut listed: Vec<Listed> = metas
            .into_iter()
            .map(|m| {
                let path = m.location.to_string();
                let path = match &strip {
                    Some(p) => path.strip_prefix(p.as_str()).unwrap_or(&path).to_owned(),
                    None => path,
                };
                Listed {
                    key: StorageKey::parse(&path),
                    path,
                }
            })
            .collect();
        listed.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(listed)
    }

    async fn delete_listed(&self, listed: &Listed) -> Result<()> {
        self.delete_path(self.with_store_prefix(&listed.path)).await
    }

    async fn redirect_url(&self, key: &StorageKey) -> Result<Option<String>> {
        let Some((signer, ttl)) = &self.redirect else {
            return Ok(None);
        };
        let url = signer
            .signed_url(http::Method::GET, &self.path(key), *ttl)
            .await?;
        Ok(Some(url.to_string()))
    }

    fn redirects(&self) -> bool {
        self.redirect.is_some()
    }

    fn min_chunk(&self) -> u64 {
        self.min_part
    }

    /// Streams straight to `target`: in one request if the body is short,
    /// else as a multipart upload completed only on finishing. Nothing is
    /// staged under `upload`.
    async fn blob_writer(
        &self,
        _upload: &UploadId,
        target: &StorageKey,
    ) -> Result<Box<dyn BlobWriter>> {
        let writer =
            BufWriter::with_capacity(Arc::clone(&self.store), self.path(target), PART_SIZE)
                .with_max_concurrency(PARTS_IN_FLIGHT);
        Ok(Box::new(Streamed {
            writer: Some(writer),
            written: 0,
        }))
    }

    async fn append(
        &self,
        upload: &UploadId,
        offset: u64,
        state: &UploadState,
        body: Body<'_>,
    ) -> Result<Appended> {
        self.append_parts(upload, offset, state, body).await
    }

    async fn release(&self, upload: &UploadId, dropped: &UploadState, kept: &UploadState) {
        self.release_parts(upload, dropped, kept).await;
    }

    async fn assemble(
        &self,
        upload: &UploadId,
        state: &UploadState,
        len: u64,
    ) -> Result<Assembled> {
        self.assemble_parts(upload, state, len).await
    }

    async fn place(
        &self,
        _upload: &UploadId,
        assembled: &Assembled,
        target: &StorageKey,
        len: u64,
    ) -> Result<()> {
        match &assembled.at {
            Some(key) => self.move_into_place(key, target, len).await,
            None => self.put_small(target, Bytes::new()).await,
        }
    }

    async fn remove_upload(&self, upload: &UploadId, state: &UploadState) -> Result<()> {
        self.abort_parts(upload, state).await;
        self.delete_prefix(upload).await
    }
}

/// An object being written in parts; invisible until finished.
struct ObjectWriter {
    inner: WriteMultipart,
}

impl ObjectWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<()> {
        self.inner.wait_for_capacity(PARTS_IN_FLIGHT).await?;
        self.inner.put(chunk);
        Ok(())
    }

    /// Discards what was written and hands back `cause`, the error that matters.
    async fn abort(self, cause: Error) -> Error {
        if let Err(e) = self.inner.abort().await {
            tracing::warn!(error = %e, "could not discard a partial object");
        }
        cause
    }
}

/// A whole blob streamed to its content address.
struct Streamed {
    /// `None` once given up.
    writer: Option<BufWriter>,
    written: u64,
}

impl Streamed {
    fn writer(&mut self) -> Result<&mut BufWriter> {
        self.writer
            .as_mut()
            .ok_or_else(|| Error::Internal("write after a failed write".into()))
    }

    async fn give_up(&mut self) {
        if let Some(mut writer) = self.writer.take()
            && let Err(e) = writer.abort().await
        {
            tracing::warn!(error = %e, "could not discard a partial object");
        }
    }
}

#[async_trait]
impl BlobWriter for Streamed {
    async fn take(&mut self, mut body: Body<'_>) -> Result<u64> {
        while let Some(chunk) = body.next().await {
            let written = match chunk {
                Ok(chunk) => {
                    self.written += chunk.len() as u64;
                    match self.writer() {
                        Ok(w) => w.put(chunk).await.map_err(Error::from),
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            };
            if let Err(e) = written {
                self.give_up().await;
                return Err(e);
            }
        }
        Ok(self.written)
    }

    async fn finish(mut self: Box<Self>, keep: bool) -> Result<u64> {
        if !keep {
            self.give_up().await;
            return Ok(self.written);
        }
        let mut writer = self
            .writer
            .take()
            .ok_or_else(|| Error::Internal("finish after a failed write".into()))?;
        // A completion that fails discards the multipart upload itself.
        tokio::io::AsyncWriteExt::shutdown(&mut writer).await?;
        Ok(self.written)
    }

    async fn abandon(mut self: Box<Self>) {
        self.give_up().await;
    }
}

/// The stream of an object's bytes, ending in an error if the store sent
/// another count than its answer promised: a cut-off answer must never pass
/// for the whole object (a client would get a short blob; a manifest read
/// whole would be cut).
fn exactly(body: Body<'static>, expected: u64, what: String) -> Body<'static> {
    use std::sync::atomic::{AtomicU64, Ordering};
    let seen = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&seen);
    let end = futures_util::stream::once(async move {
        let got = seen.load(Ordering::SeqCst);
        (got != expected).then(|| {
            Err(Error::Internal(format!(
                "object store sent {got} of the {expected} bytes of {what}"
            )))
        })
    })
    .filter_map(std::future::ready);
    body.inspect_ok(move |b| {
        counter.fetch_add(b.len() as u64, Ordering::SeqCst);
    })
    .chain(end)
    .boxed()
}
