//! Immutable bytes on an object store (object_store: local disk by default).
//!
//! `BlobStore` knows keys and bytes, not repositories: which repository may read
//! what is metadata. Every write goes through a multipart upload, which the
//! backends keep invisible until it completes, so a reader never sees a partial
//! object.

pub mod backend;
pub mod faulty;
mod key;
mod parts;

use std::io::Write as _;
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
pub use parts::{PartsState, RecordMultipart};

use crate::error::{Error, Result};
use crate::oci::UploadId;

/// Size of the parts handed to the object store while streaming a body in.
const PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts in flight at once while streaming; bounds memory per upload.
const PARTS_IN_FLIGHT: usize = 2;

/// Bytes gathered before each write of an in-place upload.
const APPEND_BUFFER: usize = 1024 * 1024;

/// Read size for local files: large enough that a pull is not a storm of
/// small reads (object_store's local reader uses 8 KiB).
const LOCAL_READ_CHUNK: usize = 1024 * 1024;
/// Chunks read ahead of the socket per pull.
const READ_AHEAD: usize = 2;

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

    /// Local disk: writes `body` into the upload's data file at `offset`, first
    /// dropping anything past `offset` (what a failed chunk left), and syncs it
    /// so that it survives a crash where it is (a new file synced into its
    /// directory too). The caller serialises chunks of one upload. Returns the
    /// bytes written.
    pub async fn append_in_place<S>(
        &self,
        upload: &UploadId,
        offset: u64,
        body: S,
        mut observe: impl FnMut(&[u8]),
    ) -> Result<u64>
    where
        S: Stream<Item = Result<Bytes>> + Send,
    {
        let mut writer = self.in_place_writer(upload, offset, true)?;
        writer.take(body, |c| observe(c)).await?;
        writer.finish(Then::Keep).await
    }

    /// Local disk: a writer of the upload's data file from `offset` on (see
    /// [`InPlaceWriter`]); `resumable` if what it writes must survive a crash
    /// where it is, not only once moved into place.
    pub fn in_place_writer(
        &self,
        upload: &UploadId,
        offset: u64,
        resumable: bool,
    ) -> Result<InPlaceWriter> {
        let root = self
            .local_root
            .clone()
            .ok_or_else(|| Error::Internal("not a local store".into()))?;
        Ok(InPlaceWriter {
            root,
            file: Some(Appender {
                path: self.in_place_path(upload)?,
                offset,
                resumable,
                open: None,
            }),
            buf: Vec::new(),
            written: 0,
        })
    }

    /// Local disk: cuts the upload's data file to exactly `len` bytes and moves
    /// it to `to`, durably. Every append synced what it wrote, so only a file
    /// longer than `len` (a chunk cut off by a crash) needs cutting and syncing.
    pub async fn seal_in_place(&self, upload: &UploadId, len: u64, to: &StorageKey) -> Result<()> {
        let from = self.in_place_path(upload)?;
        let root = self
            .local_root
            .clone()
            .ok_or_else(|| Error::Internal("not a local store".into()))?;
        let target = root.join(to.path().as_ref());
        blocking("seal", move || {
            let file = std::fs::OpenOptions::new().write(true).open(&from)?;
            if file.metadata()?.len() != len {
                file.set_len(len)?;
                file.sync_all()?;
            }
            Ok(rename_durably(&from, &target)?)
        })
        .await
    }

    /// The key of an in-place upload's data file: the upload's own key, one
    /// file (a directory per upload would cost a second inode to create and
    /// delete for every blob).
    pub fn in_place_key(upload: &UploadId) -> StorageKey {
        StorageKey::Upload(upload.clone())
    }

    fn in_place_path(&self, upload: &UploadId) -> Result<std::path::PathBuf> {
        let root = self
            .local_root
            .as_ref()
            .ok_or_else(|| Error::Internal("not a local store".into()))?;
        Ok(root.join(BlobStore::in_place_key(upload).path().as_ref()))
    }

    /// Writes small content (a manifest) unless an object of its length is
    /// there already (content-addressed: the same bytes). On local disk, one
    /// trip to the blocking pool: a file beside the uploads, synced, then
    /// moved into place.
    pub async fn put_small(&self, key: &StorageKey, bytes: Bytes) -> Result<()> {
        let Some(root) = &self.local_root else {
            if self.size(key).await? != Some(bytes.len() as u64) {
                self.put_bytes(key, bytes).await?;
            }
            return Ok(());
        };
        let target = root.join(key.path().as_ref());
        let scratch = self.in_place_path(&UploadId::new_random())?;
        blocking("write", move || {
            if std::fs::metadata(&target).is_ok_and(|m| m.len() == bytes.len() as u64) {
                return Ok(());
            }
            let written = (|| {
                if let Some(dir) = scratch.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                let mut file = std::fs::File::create(&scratch)?;
                file.write_all(&bytes)?;
                file.sync_data()?;
                rename_durably(&scratch, &target)
            })();
            if written.is_err() {
                let _ = std::fs::remove_file(&scratch);
            }
            Ok(written?)
        })
        .await
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
            return read_local(root.join(key.path().as_ref()), range).await;
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
        let key = StorageKey::Upload(upload.clone());
        if let Some(root) = &self.local_root {
            // One file: removed directly, without listing the object store.
            return match tokio::fs::remove_file(root.join(key.path().as_ref())).await {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
                _ => Ok(()),
            };
        }
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

/// Creates `dir` and any missing parents so that they survive a crash: each
/// new directory's entry is synced in its parent. (Syncing a directory makes
/// the names in it durable, not its own name.)
fn create_dirs_durably(dir: &FsPath) -> std::io::Result<()> {
    let mut missing = Vec::new();
    let mut at = dir;
    while !at.exists() {
        missing.push(at.to_path_buf());
        match at.parent() {
            Some(parent) => at = parent,
            None => break,
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    for created in missing.iter().rev() {
        if let Some(parent) = created.parent() {
            sync_dir_now(parent)?;
        }
    }
    Ok(())
}

/// Moves a synced file to `target` (creating its directory if need be) so
/// that the move survives a crash.
fn rename_durably(from: &FsPath, target: &FsPath) -> std::io::Result<()> {
    let dir = target.parent().unwrap_or(FsPath::new("."));
    create_dirs_durably(dir)?;
    std::fs::rename(from, target)?;
    sync_dir_now(dir)
}

/// Syncs a directory, so that the names in it survive a crash (blocking).
fn sync_dir_now(dir: &FsPath) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Runs file work on the blocking pool; `what` names it in a failure.
async fn blocking<T: Send + 'static>(
    what: &'static str,
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::Internal(format!("{what} task: {e}")))?
}

/// Writes an upload's data file on local disk in large buffers: one trip to
/// the blocking pool per full buffer (the first also opening the file) and
/// one for the rest, which also syncs it and does what [`Then`] says. A
/// small blob is opened, written, synced and moved into place in one trip.
pub struct InPlaceWriter {
    /// The store's directory.
    root: std::path::PathBuf,
    /// The file; none once a write failed (the file was cut back then).
    file: Option<Appender>,
    buf: Vec<u8>,
    written: u64,
}

/// What becomes of an in-place upload's file once it is written.
pub enum Then {
    /// It stays where it is: a chunk of a resumable upload.
    Keep,
    /// It moves to its content address (a verified blob).
    MoveTo(StorageKey),
    /// It is removed (its content is stored already).
    Discard,
}

/// [`Then`], with the target's path.
enum Last {
    Keep,
    MoveTo(std::path::PathBuf),
    Discard,
}

impl InPlaceWriter {
    /// Takes in a whole body (each piece shown to `observe`); on a failure,
    /// gives up as [`Self::abandon`] does. Returns the bytes taken so far.
    pub async fn take<S>(&mut self, body: S, mut observe: impl FnMut(&[u8])) -> Result<u64>
    where
        S: Stream<Item = Result<Bytes>> + Send,
    {
        let mut body = std::pin::pin!(body);
        while let Some(chunk) = body.next().await {
            let written = match chunk {
                Ok(chunk) => {
                    observe(&chunk);
                    self.write(&chunk).await
                }
                Err(e) => Err(e),
            };
            if let Err(e) = written {
                self.abandon().await;
                return Err(e);
            }
        }
        Ok(self.written)
    }

    /// Adds `chunk`, writing once a buffer is full.
    async fn write(&mut self, chunk: &[u8]) -> Result<()> {
        self.buf.extend_from_slice(chunk);
        self.written += chunk.len() as u64;
        if self.buf.len() >= APPEND_BUFFER {
            let full = std::mem::replace(&mut self.buf, Vec::with_capacity(APPEND_BUFFER));
            let file = self.appender()?;
            self.file = Some(blocking("write", move || file.write(&full, None)).await?);
        }
        Ok(())
    }

    /// Writes the rest and syncs, then does what `then` says. Returns the
    /// bytes written.
    pub async fn finish(mut self, then: Then) -> Result<u64> {
        let file = self.appender()?;
        let (buf, written) = (std::mem::take(&mut self.buf), self.written);
        let last = match then {
            Then::Keep => Last::Keep,
            Then::MoveTo(key) => Last::MoveTo(self.root.join(key.path().as_ref())),
            Then::Discard => Last::Discard,
        };
        blocking("write", move || file.write(&buf, Some(last))).await?;
        Ok(written)
    }

    /// Gives up: cuts the file back to where this writer began, giving back
    /// the space at once (a full disk).
    pub async fn abandon(&mut self) {
        if let Some(file) = self.file.take() {
            let _ = blocking("truncate", move || {
                file.cut();
                Ok(())
            })
            .await;
        }
    }

    fn appender(&mut self) -> Result<Appender> {
        self.file
            .take()
            .ok_or_else(|| Error::Internal("write after a failed write".into()))
    }
}

/// An in-place upload's data file, written from `offset` on; opened by the
/// first write.
struct Appender {
    path: std::path::PathBuf,
    offset: u64,
    resumable: bool,
    /// The file, and whether this append created it.
    open: Option<(std::fs::File, bool)>,
}

impl Appender {
    /// Writes `buf`; with `then` (the last write), syncs the file and keeps
    /// it (a resumable upload's new file synced into its directory), moves it
    /// into place, or removes it. A failure cuts the file back to `offset`
    /// (blocking).
    fn write(mut self, buf: &[u8], then: Option<Last>) -> Result<Appender> {
        let written = self.try_write(buf, then);
        if written.is_err() {
            self.cut();
        }
        written.map(|()| self)
    }

    fn try_write(&mut self, buf: &[u8], then: Option<Last>) -> Result<()> {
        if matches!(then, Some(Last::Discard)) {
            self.open = None;
            return match std::fs::remove_file(&self.path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
                _ => Ok(()),
            };
        }
        let (file, created) = match &mut self.open {
            Some(open) => open,
            None => self.open.insert(self.open_file()?),
        };
        file.write_all(buf)?;
        match then {
            None | Some(Last::Discard) => {}
            Some(Last::Keep) => {
                file.sync_data()?;
                if *created
                    && self.resumable
                    && let Some(dir) = self.path.parent()
                {
                    sync_dir_now(dir)?;
                }
            }
            Some(Last::MoveTo(target)) => {
                file.sync_data()?;
                rename_durably(&self.path, &target)?;
            }
        }
        Ok(())
    }

    /// Opens the file (creating it, and its directory, if need be: durably
    /// if resumable) at `offset`, dropping anything past it (what a failed
    /// chunk left).
    fn open_file(&self) -> Result<(std::fs::File, bool)> {
        use std::io::Seek;
        let created = !self.path.exists();
        if let Some(dir) = self.path.parent() {
            if self.resumable {
                create_dirs_durably(dir)?;
            } else {
                std::fs::create_dir_all(dir)?;
            }
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.path)?;
        file.set_len(self.offset)?;
        file.seek(std::io::SeekFrom::Start(self.offset))?;
        Ok((file, created))
    }

    /// Cuts the file back to where this append began (best effort).
    fn cut(&self) {
        if let Some((file, _)) = &self.open {
            let _ = file.set_len(self.offset);
        }
    }
}

/// Streams a local file (or a range of it) in large chunks. Each chunk is
/// read with `pread` straight into its own buffer on the blocking pool (no
/// second copy through tokio's file buffer), the next one while the socket
/// takes the current one; no thread is held between chunks.
async fn read_local(
    path: std::path::PathBuf,
    range: Option<Range<u64>>,
) -> Result<BoxStream<'static, Result<Bytes>>> {
    let (file, len) = blocking("read", move || {
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::Storage(object_store::Error::NotFound {
                    path: path.display().to_string(),
                    source: Box::new(e),
                }));
            }
            Err(e) => return Err(e.into()),
        };
        let len = file.metadata()?.len();
        Ok((file, len))
    })
    .await?;
    let file = Arc::new(file);
    let range = range.unwrap_or(0..len);
    let chunk = LOCAL_READ_CHUNK as u64;
    let starts = (range.start..range.end).step_by(LOCAL_READ_CHUNK);
    let end = range.end;
    let stream = futures_util::stream::iter(starts)
        .map(move |at| {
            let file = Arc::clone(&file);
            // Allocated here, on a runtime thread, and freed there once sent:
            // buffers allocated on the many blocking threads would each leave
            // their memory in that thread's malloc arena.
            let buf = vec![0u8; usize::try_from((end - at).min(chunk)).unwrap_or(0)];
            blocking("read", move || read_chunk(&file, at, buf))
        })
        .buffered(READ_AHEAD);
    Ok(stream.boxed())
}

/// Fills `buf` from `at`.
fn read_chunk(file: &std::fs::File, at: u64, mut buf: Vec<u8>) -> Result<Bytes> {
    use std::os::unix::fs::FileExt;
    match file.read_exact_at(&mut buf, at) {
        Ok(()) => Ok(Bytes::from(buf)),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(Error::from(
            std::io::Error::new(e.kind(), "blob shorter than recorded"),
        )),
        Err(e) => Err(e.into()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_are_created_with_their_missing_parents_and_again_harmlessly() {
        let root = tempfile::tempdir().ok();
        let root = root.expect("temp dir");
        let deep = root.path().join("blobs/sha256/ab");
        assert!(create_dirs_durably(&deep).is_ok());
        assert!(deep.is_dir());
        assert!(
            create_dirs_durably(&deep).is_ok(),
            "existing: nothing to do"
        );
    }
}
