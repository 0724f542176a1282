//! Immutable bytes on an object store (object_store: local disk by default).
//!
//! `BlobStore` knows keys and bytes, not repositories: which repository may read
//! what is metadata. Every write goes through a multipart upload, which the
//! backends keep invisible until it completes, so a reader never sees a partial
//! object.

pub mod backend;
pub mod faulty;
mod key;
mod local;
mod parts;

use std::ops::Range;
use std::path::Path as FsPath;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::multipart::MultipartStore;
use object_store::signer::Signer;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, WriteMultipart};

pub use key::StorageKey;
pub use local::{InPlaceWriter, Then};
pub use parts::{PartsState, RecordMultipart};

use crate::error::{Error, Result};
use crate::oci::UploadId;

/// Size of the parts handed to the object store while streaming a body in.
const PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts in flight at once while streaming; bounds memory per upload.
const PARTS_IN_FLIGHT: usize = 2;

/// Largest object a backend copies in one request (S3's CopyObject limit);
/// larger ones are streamed through into place.
const COPY_LIMIT: u64 = 5 * 1024 * 1024 * 1024;

#[derive(Clone)]
pub struct BlobStore {
    store: Arc<dyn ObjectStore>,
    /// Set for local disk: reads go straight to the file in large chunks, and
    /// uploads append in place.
    local_root: Option<std::path::PathBuf>,
    /// Object storage: uploads are multipart uploads with parts of at least
    /// `min_part` bytes (but the last).
    multipart: Option<(Arc<dyn MultipartStore>, u64)>,
    /// Prepended to every object path (object storage shared with others).
    prefix: Option<String>,
    /// Blob reads answer a presigned URL valid this long instead of bytes.
    redirect: Option<(Arc<dyn Signer>, std::time::Duration)>,
}

impl std::fmt::Debug for BlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BlobStore({})", self.store)
    }
}

impl BlobStore {
    /// Local disk under `dir`, syncing files and directories on completion.
    pub fn local(dir: &FsPath) -> Result<BlobStore> {
        Ok(BlobStore {
            store: BlobStore::local_store(dir)?,
            local_root: Some(dir.canonicalize()?),
            multipart: None,
            prefix: None,
            redirect: None,
        })
    }

    /// An object store with multipart uploads whose parts (but the last) must
    /// be at least `min_part` bytes: a cloud backend, memory, or a test wrapper.
    pub fn object_storage<S>(store: Arc<S>, min_part: u64) -> BlobStore
    where
        S: ObjectStore + MultipartStore,
    {
        BlobStore {
            store: Arc::clone(&store) as Arc<dyn ObjectStore>,
            local_root: None,
            multipart: Some((store as Arc<dyn MultipartStore>, min_part)),
            prefix: None,
            redirect: None,
        }
    }

    /// Keeps every object under `prefix/` (object storage only).
    pub fn with_prefix(mut self, prefix: &str) -> BlobStore {
        let prefix = prefix.trim_matches('/');
        self.prefix = (!prefix.is_empty()).then(|| prefix.to_owned());
        self
    }

    /// Answers blob reads with a URL signed by `signer`, valid for `ttl`.
    pub fn with_redirect(mut self, signer: Arc<dyn Signer>, ttl: std::time::Duration) -> BlobStore {
        self.redirect = Some((signer, ttl));
        self
    }

    /// The smallest part (but the last) of a multipart upload; 0 on local disk.
    pub fn min_part_size(&self) -> u64 {
        self.multipart.as_ref().map_or(0, |(_, min)| *min)
    }

    fn multipart(&self) -> Result<&Arc<dyn MultipartStore>> {
        self.multipart
            .as_ref()
            .map(|(m, _)| m)
            .ok_or_else(|| Error::Internal("not an object store with multipart uploads".into()))
    }

    /// Where a key lives in the store.
    fn path(&self, key: &StorageKey) -> object_store::path::Path {
        self.with_store_prefix(key.path().as_ref())
    }

    /// Whether blob reads answer presigned URLs.
    pub fn redirects(&self) -> bool {
        self.redirect.is_some()
    }

    /// A presigned URL for reading the object, when redirects are on.
    pub async fn redirect_url(&self, key: &StorageKey) -> Result<Option<String>> {
        let Some((signer, ttl)) = &self.redirect else {
            return Ok(None);
        };
        let url = signer
            .signed_url(http::Method::GET, &self.path(key), *ttl)
            .await?;
        Ok(Some(url.to_string()))
    }

    /// Local disk under `dir`, syncing files and directories.
    fn local_store(dir: &FsPath) -> Result<Arc<dyn ObjectStore>> {
        std::fs::create_dir_all(dir)?;
        let fs = LocalFileSystem::new_with_prefix(dir)?
            .with_fsync(true)
            .with_automatic_cleanup(true);
        Ok(Arc::new(fs))
    }

    /// Process memory, with S3's part rules; for tests.
    pub fn memory() -> BlobStore {
        BlobStore::object_storage(Arc::new(InMemory::new()), backend::S3_MIN_PART)
    }

    /// Starts writing a new object at `key`; it appears only on [`ObjectWriter::finish`].
    pub async fn writer(&self, key: &StorageKey) -> Result<ObjectWriter> {
        let upload = self.store.put_multipart(&self.path(key)).await?;
        Ok(ObjectWriter {
            inner: WriteMultipart::new_with_chunk_size(upload, PART_SIZE),
            written: 0,
        })
    }

    /// Streams `body` into a new object at `key`, showing every chunk to
    /// `observe` (the caller hashes there). The object appears only if the whole
    /// stream arrived; on any error nothing is left behind. Returns its length.
    pub async fn write_stream<S>(
        &self,
        key: &StorageKey,
        body: S,
        mut observe: impl FnMut(&[u8]),
    ) -> Result<u64>
    where
        S: Stream<Item = Result<Bytes>> + Send,
    {
        let mut writer = self.writer(key).await?;
        let mut body = std::pin::pin!(body);
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => return Err(writer.abort(e).await),
            };
            observe(&chunk);
            if let Err(e) = writer.write(chunk).await {
                return Err(writer.abort(e).await);
            }
        }
        writer.finish().await
    }

    /// Whether uploads append in place to one file per session (local disk),
    /// rather than storing each chunk as its own object.
    pub fn appends_in_place(&self) -> bool {
        self.local_root.is_some()
    }

    /// Writes small content in one go.
    pub async fn put_bytes(&self, key: &StorageKey, bytes: Bytes) -> Result<()> {
        let stream = futures_util::stream::once(async move { Ok(bytes) });
        self.write_stream(key, stream, |_| {}).await.map(|_| ())
    }

    /// The object's length, or `None` if it does not exist.
    pub async fn size(&self, key: &StorageKey) -> Result<Option<u64>> {
        match self.store.head(&self.path(key)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Streams the object, or the given byte range of it.
    pub async fn read(
        &self,
        key: &StorageKey,
        range: Option<Range<u64>>,
    ) -> Result<BoxStream<'static, Result<Bytes>>> {
        if let Some(root) = &self.local_root {
            return local::read_local(root.join(key.path().as_ref()), range).await;
        }
        let options = GetOptions::new().with_range(range.map(GetRange::Bounded));
        let result = self.store.get_opts(&self.path(key), options).await?;
        Ok(result.into_stream().map_err(Error::from).boxed())
    }

    /// Reads a whole (small) object into memory.
    pub async fn read_all(&self, key: &StorageKey) -> Result<Bytes> {
        Ok(self.store.get(&self.path(key)).await?.bytes().await?)
    }

    /// Moves a `len`-byte object to `to`, which is replaced atomically: by a
    /// server-side copy where the backend can, else streamed through.
    pub async fn move_into_place(
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
        writer.finish().await?;
        self.delete(from).await
    }

    /// Deletes an object; one that is already gone is not an error.
    pub async fn delete(&self, key: &StorageKey) -> Result<()> {
        match self.store.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Every object path under `under` (`blobs`, `uploads`), for integrity checks.
    pub async fn list(&self, under: &str) -> Result<Vec<String>> {
        let full = self.with_store_prefix(under);
        let metas: Vec<_> = self.store.list(Some(&full)).try_collect().await?;
        let strip = self.prefix.as_ref().map(|p| format!("{p}/"));
        Ok(metas
            .into_iter()
            .map(|m| {
                let path = m.location.to_string();
                match &strip {
                    Some(p) => path.strip_prefix(p.as_str()).unwrap_or(&path).to_owned(),
                    None => path,
                }
            })
            .collect())
    }

    fn with_store_prefix(&self, path: &str) -> object_store::path::Path {
        match &self.prefix {
            None => object_store::path::Path::from(path),
            Some(prefix) => object_store::path::Path::from(format!("{prefix}/{path}")),
        }
    }

    /// Deletes one object by the path [`BlobStore::list`] gave.
    pub async fn delete_path(&self, path: &str) -> Result<()> {
        match self.store.delete(&self.with_store_prefix(path)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes what an upload left (its parts, its data file), if anything.
    pub async fn delete_upload(&self, upload: &UploadId) -> Result<()> {
        if self.appends_in_place() {
            return self.delete_in_place(upload).await;
        }
        let key = StorageKey::Upload(upload.clone());
        let prefix = self.path(&key);
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
}

/// An object being written in parts; invisible until finished.
pub struct ObjectWriter {
    inner: WriteMultipart,
    written: u64,
}

impl ObjectWriter {
    pub async fn write(&mut self, chunk: Bytes) -> Result<()> {
        self.inner.wait_for_capacity(PARTS_IN_FLIGHT).await?;
        self.written += chunk.len() as u64;
        self.inner.put(chunk);
        Ok(())
    }

    /// Makes the object visible; returns its length.
    pub async fn finish(self) -> Result<u64> {
        self.inner.finish().await?;
        Ok(self.written)
    }

    /// Discards what was written and hands back `cause`, the error that matters.
    pub async fn abort(self, cause: Error) -> Error {
        if let Err(e) = self.inner.abort().await {
            tracing::warn!(error = %e, "could not discard a partial object");
        }
        cause
    }
}
