//! Immutable bytes: verified content at its digest's key, and the bytes of
//! upload sessions in progress. One interface, [`Storage`], with one
//! implementation per kind of store: [`LocalDisk`] (files under the data
//! directory) and [`ObjectStorage`] (S3, GCS, Azure or any object_store).
//!
//! Storage knows keys and bytes, not repositories or sessions: which
//! repository may read what, and how far an upload has come, is metadata.
//! What a backend must remember of an upload between chunks it hands back
//! as an [`UploadState`] for the caller to keep and give back; nothing is
//! visible at a content key until it is complete.

pub mod backend;
mod direct;
mod key;
mod local;
mod object;
mod observed;
mod parts;

use std::fmt;
use std::ops::{Deref, Range};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt};

pub use key::{Area, StorageKey};
pub use local::LocalDisk;
pub use object::ObjectStorage;

use crate::error::Result;
use crate::oci::UploadId;

/// Deletes in flight at once in [`Storage::delete_many`].
const DELETES_IN_FLIGHT: usize = 8;

/// A body being streamed in or out.
pub type Body<'a> = BoxStream<'a, Result<Bytes>>;

/// What a store does. Content operations take [`StorageKey`]s; upload
/// operations take the session's id and the [`UploadState`] the last
/// committed chunk left, and never change what the caller keeps: a chunk
/// counts once its [`Appended`] is committed by the caller.
#[async_trait]
pub trait Storage: Send + Sync + fmt::Debug {
    /// The object's length, or `None` if it does not exist.
    async fn size(&self, key: &StorageKey) -> Result<Option<u64>>;
    /// Streams the object, or the given byte range of it.
    async fn read(&self, key: &StorageKey, range: Option<Range<u64>>) -> Result<Body<'static>>;
    /// Writes small content (a manifest) unless an object of its length is
    /// there already (content-addressed: the same bytes).
    async fn put_small(&self, key: &StorageKey, bytes: Bytes) -> Result<()>;
    /// Deletes an object; one that is already gone is not an error.
    async fn delete(&self, key: &StorageKey) -> Result<()>;
    /// Deletes many objects, each as [`Storage::delete`] does (a few at a
    /// time); the outcome of each, in order.
    async fn delete_many(&self, keys: &[StorageKey]) -> Vec<Result<()>> {
        futures_util::stream::iter(0..keys.len())
            .map(|i| self.delete(&keys[i]))
            .buffered(DELETES_IN_FLIGHT)
            .collect()
            .await
    }
    /// Every object in `area`, for integrity checks.
    async fn list(&self, area: Area) -> Result<Vec<Listed>>;
    /// Deletes one object that [`Storage::list`] gave.
    async fn delete_listed(&self, listed: &Listed) -> Result<()>;
    /// A presigned URL for reading the object, when the store answers reads
    /// that way (object storage with redirects on).
    async fn redirect_url(&self, key: &StorageKey) -> Result<Option<String>>;
    /// Whether blob reads answer presigned URLs.
    fn redirects(&self) -> bool;
    /// The smallest chunk (but the last) an upload can store as it comes.
    fn min_chunk(&self) -> u64;
    /// Bytes free for new content, where the store can tell (local disk).
    fn free_space(&self) -> Result<Option<u64>> {
        Ok(None)
    }

    /// A writer of one whole blob sent in one request, at `target` once
    /// verified; `upload` names its scratch space.
    async fn blob_writer(
        &self,
        upload: &UploadId,
        target: &StorageKey,
    ) -> Result<Box<dyn BlobWriter>>;
    /// Writes one chunk of a resumable upload at `offset`, after what
    /// `state` holds. The caller commits the result with the session (then
    /// releases `state` in favour of the new one) or releases the result.
    async fn append(
        &self,
        upload: &UploadId,
        offset: u64,
        state: &UploadState,
        body: Body<'_>,
    ) -> Result<Appended>;
    /// Removes what `dropped` holds and `kept` does not: what an uncommitted
    /// chunk wrote, or what a committed one superseded. Best effort.
    async fn release(&self, upload: &UploadId, dropped: &UploadState, kept: &UploadState);
    /// Brings the session's `len` bytes together as one readable piece.
    /// Safe to repeat.
    async fn assemble(&self, upload: &UploadId, state: &UploadState, len: u64)
    -> Result<Assembled>;
    /// Moves assembled, verified bytes to `target`, replacing it atomically.
    async fn place(
        &self,
        upload: &UploadId,
        assembled: &Assembled,
        target: &StorageKey,
        len: u64,
    ) -> Result<()>;
    /// Removes everything an upload stored (a cancel, an expiry, a finish).
    async fn remove_upload(&self, upload: &UploadId, state: &UploadState) -> Result<()>;
}

/// Writes one whole blob; nothing is visible at its target until finished.
#[async_trait]
pub trait BlobWriter: Send {
    /// Takes in a whole body; on a failure,
    /// gives up as [`BlobWriter::abandon`] does. Returns the bytes taken.
    async fn take(&mut self, body: Body<'_>) -> Result<u64>;
    /// Makes the blob visible at its target, or (`keep` false: the content
    /// is stored already) drops it. Returns its length.
    async fn finish(self: Box<Self>, keep: bool) -> Result<u64>;
    /// Gives up, leaving nothing behind.
    async fn abandon(self: Box<Self>);
}

/// What a backend keeps of an upload between chunks: the parts it stored
/// (each a name only it reads, and a length) and its own resumable state,
/// opaque to everyone else. Local disk keeps nothing here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadState {
    pub parts: Vec<(String, u64)>,
    pub resume: Vec<u8>,
}

impl UploadState {
    /// The state once `chunk` is committed.
    pub fn advanced(&self, chunk: &Appended) -> UploadState {
        let mut parts = self.parts.clone();
        parts.extend(chunk.new_parts.iter().cloned());
        UploadState {
            parts,
            resume: chunk.resume.clone(),
        }
    }
}

/// What one chunk added to an upload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Appended {
    /// Bytes the chunk held.
    pub len: u64,
    /// Parts stored by this chunk, after those of the state it followed.
    pub new_parts: Vec<(String, u64)>,
    /// The backend's resumable state after this chunk, replacing the one before.
    pub resume: Vec<u8>,
}

/// A finishing upload's bytes, brought together as one piece.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assembled {
    /// Where they are readable; `None` for an empty upload.
    at: Option<StorageKey>,
    /// Whether the upload can take no more bytes (a completed multipart upload).
    closed: bool,
    /// Whether placing it moves everything the upload stored (local disk's
    /// one file), so that nothing is left to remove.
    placed_whole: bool,
}

impl Assembled {
    /// Whether assembling ended the upload: a refused finish cannot be
    /// followed by more chunks, and the session should go.
    pub fn closes_upload(&self) -> bool {
        self.closed
    }

    /// Whether, once placed, the upload has nothing left to remove.
    pub fn placing_takes_all(&self) -> bool {
        self.placed_whole
    }
}

/// One object found by [`Storage::list`]: its path relative to the store,
/// and its key when the path is one Berth makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub path: String,
    pub key: Option<StorageKey>,
}

/// A handle on the configured store, cheap to clone.
#[derive(Clone)]
pub struct BlobStore(Arc<dyn Storage>);

impl fmt::Debug for BlobStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Deref for BlobStore {
    type Target = dyn Storage;

    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

impl BlobStore {
    pub fn new(storage: impl Storage + 'static) -> BlobStore {
        BlobStore(Arc::new(storage))
    }

    /// The same store, every operation counted and timed in `metrics`.
    pub fn observed(&self, metrics: Arc<crate::metrics::Metrics>) -> BlobStore {
        BlobStore(Arc::new(observed::Observed::new(
            Arc::clone(&self.0),
            metrics,
        )))
    }

    /// Local disk under `dir` (see [`LocalDisk`]).
    pub fn local(dir: &std::path::Path) -> Result<BlobStore> {
        Ok(BlobStore::new(LocalDisk::open(dir)?))
    }

    /// Streams `body` into a new object at `key`. The object appears only if
    /// the whole stream arrived; on any
    /// error nothing is left behind. Returns its length.
    pub async fn write_stream<S>(&self, key: &StorageKey, body: S) -> Result<u64>
    where
        S: Stream<Item = Result<Bytes>> + Send,
    {
        let mut writer = self.blob_writer(&UploadId::new_random(), key).await?;
        writer.take(body.boxed()).await?;
        writer.finish(true).await
    }

    /// Writes content in one go.
    pub async fn put_bytes(&self, key: &StorageKey, bytes: Bytes) -> Result<()> {
        let stream = futures_util::stream::once(async move { Ok(bytes) });
        self.write_stream(key, stream).await.map(|_| ())
    }

    /// Reads a whole (small) object into memory.
    pub async fn read_all(&self, key: &StorageKey) -> Result<Bytes> {
        let mut stream = self.read(key, None).await?;
        let mut out = bytes::BytesMut::new();
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out.freeze())
    }

    /// Streams the first `len` assembled bytes.
    pub async fn read_assembled(&self, assembled: &Assembled, len: u64) -> Result<Body<'static>> {
        match &assembled.at {
            Some(key) => self.read(key, Some(0..len)).await,
            None => Ok(futures_util::stream::empty().boxed()),
        }
    }
}
