//! Local disk, straight through the file system: uploads append in place to
//! one file per session, verified files move into place by rename, and
//! reads are `pread`s into the buffers that are sent. Everything that must
//! survive a crash is synced, directories included.

use std::io::Write as _;
use std::ops::Range;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;

use super::direct::{DirectFile, Staged};
use super::{
    Appended, Area, Assembled, BlobWriter, Body, Listed, Storage, StorageKey, UploadState,
};
use crate::error::{Error, Result};
use crate::oci::UploadId;

/// Bytes gathered before each write of an in-place upload.
const APPEND_BUFFER: usize = 4 * 1024 * 1024;
/// Bodies up to this size are gathered in a plain buffer and written
/// through the page cache in one go; larger ones in aligned buffers whose
/// whole blocks go around it (see [`Staged`]).
const SMALL_BODY: usize = 256 * 1024;
/// Bytes written to an in-place upload between starts of writeback.
const WRITEBACK_EVERY: u64 = 8 * 1024 * 1024;

/// Read size for local files: large enough that a pull is not a storm of
/// small reads (object_store's local reader uses 8 KiB).
const LOCAL_READ_CHUNK: usize = 1024 * 1024;
/// Chunks read ahead of the socket per pull.
const READ_AHEAD: usize = 4;
/// How far ahead of a large read the disk is asked to fetch (posix_fadvise
/// WILLNEED), in steps: the kernel's own readahead of a file that is not in
/// the page cache (a blob written around it, or after a restart) reads it at
/// a fifth of what the disk gives here.
const PREFETCH: u64 = 32 * 1024 * 1024;
const PREFETCH_STEP: u64 = 8 * 1024 * 1024;

/// Files under one directory (the data directory by default).
#[derive(Debug, Clone)]
pub struct LocalDisk {
    root: PathBuf,
}

impl LocalDisk {
    /// The store under `dir`, created if need be.
    pub fn open(dir: &FsPath) -> Result<LocalDisk> {
        std::fs::create_dir_all(dir)?;
        Ok(LocalDisk {
            root: dir.canonicalize()?,
        })
    }

    fn file(&self, key: &StorageKey) -> PathBuf {
        self.root.join(key.path().as_ref())
    }

    /// An upload's data file: the upload's own key, one file (a directory
    /// per upload would cost a second inode to create and delete for every
    /// blob).
    fn upload_file(&self, upload: &UploadId) -> PathBuf {
        self.file(&StorageKey::Upload(upload.clone()))
    }

    /// A writer of the upload's data file from `offset` on (see
    /// [`InPlaceWriter`]); `resumable` if what it writes must survive a crash
    /// where it is, not only once moved into place.
    fn writer(&self, upload: &UploadId, offset: u64, resumable: bool) -> InPlaceWriter {
        InPlaceWriter {
            root: self.root.clone(),
            file: Some(Appender {
                path: self.upload_file(upload),
                offset,
                at: offset,
                resumable,
                open: None,
                unsynced: 0,
                writing_back: Arc::default(),
            }),
            in_flight: None,
            buf: Staged::small(),
            spare: None,
            offset,
            written: 0,
            scratch: (!resumable).then(|| self.upload_file(upload)),
        }
    }

    /// Cuts the upload's data file to exactly `len` bytes and moves it to
    /// `to`, durably. Every append synced what it wrote, so only a file
    /// longer than `len` (a chunk cut off by a crash) needs cutting and syncing.
    async fn seal(&self, upload: &UploadId, len: u64, to: &StorageKey) -> Result<()> {
        let from = self.upload_file(upload);
        let target = self.file(to);
        blocking("seal", move || {
            let file = std::fs::OpenOptions::new().write(true).open(&from)?;
            // No write of a dropped request still going on (see open_file).
            file.lock()?;
            let have = file.metadata()?.len();
            if have < len {
                return Err(lost(&from, have, len));
            }
            if have != len {
                file.set_len(len)?;
                file.sync_all()?;
            }
            Ok(rename_durably(&from, &target)?)
        })
        .await
    }
}

#[async_trait]
impl Storage for LocalDisk {
    async fn size(&self, key: &StorageKey) -> Result<Option<u64>> {
        match tokio::fs::metadata(self.file(key)).await {
            Ok(m) if m.is_file() => Ok(Some(m.len())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn read(&self, key: &StorageKey, range: Option<Range<u64>>) -> Result<Body<'static>> {
        read_local(self.file(key), range).await
    }

    /// One trip to the blocking pool: a file beside the uploads, synced,
    /// then moved into place.
    async fn put_small(&self, key: &StorageKey, bytes: Bytes) -> Result<()> {
        let target = self.file(key);
        let scratch = self.upload_file(&UploadId::new_random());
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

    async fn delete(&self, key: &StorageKey) -> Result<()> {
        remove_durably(self.file(key)).await
    }

    /// One trip to the blocking pool: every file removed, then each
    /// directory they were in synced once (not once per file: a collection
    /// freeing thousands of blobs touches at most 256 directories).
    async fn delete_many(&self, keys: &[StorageKey]) -> Vec<Result<()>> {
        let paths: Vec<PathBuf> = keys.iter().map(|key| self.file(key)).collect();
        let count = paths.len();
        match blocking("remove", move || Ok(remove_all_durably(&paths))).await {
            Ok(outcomes) => outcomes,
            Err(e) => (0..count)
                .map(|_| Err(Error::Internal(format!("remove: {e}"))))
                .collect(),
        }
    }

    async fn list(&self, area: Area) -> Result<Vec<Listed>> {
        let root = self.root.clone();
        blocking("list", move || {
            let mut found = Vec::new();
            walk(&root, &root.join(area.prefix()), &mut found)?;
            found.sort();
            Ok(found
                .into_iter()
                .map(|path| Listed {
                    key: StorageKey::parse(&path),
                    path,
                })
                .collect())
        })
        .await
    }

    async fn delete_listed(&self, listed: &Listed) -> Result<()> {
        remove_durably(self.root.join(&listed.path)).await
    }

    async fn redirect_url(&self, _key: &StorageKey) -> Result<Option<String>> {
        Ok(None)
    }

    fn redirects(&self) -> bool {
        false
    }

    fn min_chunk(&self) -> u64 {
        0
    }

    fn free_space(&self) -> Result<Option<u64>> {
        let stat = rustix::fs::statvfs(&self.root).map_err(std::io::Error::from)?;
        Ok(Some(stat.f_bavail.saturating_mul(stat.f_frsize)))
    }

    /// Written to the upload's file in large buffers, then synced and moved
    /// into place in the last trip to the disk; nothing is made resumable.
    async fn blob_writer(
        &self,
        upload: &UploadId,
        target: &StorageKey,
    ) -> Result<Box<dyn BlobWriter>> {
        Ok(Box::new(WholeBlob {
            writer: self.writer(upload, 0, false),
            target: target.clone(),
        }))
    }

    /// Appends in place to the upload's data file at `offset`, first dropping
    /// anything past it (what a failed chunk left), and syncs it so that it
    /// survives a crash where it is (a new file synced into its directory
    /// too). The caller serialises chunks of one upload.
    async fn append(
        &self,
        upload: &UploadId,
        offset: u64,
        _state: &UploadState,
        body: Body<'_>,
    ) -> Result<Appended> {
        let mut writer = self.writer(upload, offset, true);
        writer.take(body).await?;
        let len = writer.finish(Last::Keep).await?;
        Ok(Appended {
            len,
            ..Appended::default()
        })
    }

    /// Nothing to release: a chunk that is not committed is overwritten by
    /// the next one, which starts at the committed offset.
    async fn release(&self, _upload: &UploadId, _dropped: &UploadState, _kept: &UploadState) {}

    async fn assemble(
        &self,
        upload: &UploadId,
        _state: &UploadState,
        len: u64,
    ) -> Result<Assembled> {
        Ok(Assembled {
            at: (len > 0).then(|| StorageKey::Upload(upload.clone())),
            closed: false,
            placed_whole: len > 0,
        })
    }

    async fn place(
        &self,
        upload: &UploadId,
        assembled: &Assembled,
        target: &StorageKey,
        len: u64,
    ) -> Result<()> {
        match assembled.at {
            Some(_) => self.seal(upload, len, target).await,
            None => self.put_small(target, Bytes::new()).await,
        }
    }

    /// Removes the upload's file, if there is one: directly, without listing.
    async fn remove_upload(&self, upload: &UploadId, _state: &UploadState) -> Result<()> {
        remove_durably(self.upload_file(upload)).await
    }
}

/// Every file under `dir`, as paths relative to `root` with `/` between names.
fn walk(root: &FsPath, dir: &FsPath, found: &mut Vec<String>) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            walk(root, &path, found)?;
        } else if let Ok(relative) = path.strip_prefix(root) {
            let names: Vec<_> = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect();
            found.push(names.join("/"));
        }
    }
    Ok(())
}

/// A whole blob written to a scratch file, moved to its target on finishing.
struct WholeBlob {
    writer: InPlaceWriter,
    target: StorageKey,
}

impl WholeBlob {
    /// Removes the scratch file, once no write of it is going on.
    async fn remove(&mut self) {
        self.writer.abandon().await;
        if let Some(path) = self.writer.scratch.take() {
            let _ = remove(path).await;
        }
    }
}

#[async_trait]
impl BlobWriter for WholeBlob {
    async fn take(&mut self, body: Body<'_>) -> Result<u64> {
        let taken = self.writer.take(body).await;
        if taken.is_err() {
            self.remove().await;
        }
        taken
    }

    async fn finish(self: Box<Self>, keep: bool) -> Result<u64> {
        let WholeBlob { writer, target } = *self;
        let last = if keep {
            Last::MoveTo(writer.root.join(target.path().as_ref()))
        } else {
            Last::Discard
        };
        writer.finish(last).await
    }

    async fn abandon(mut self: Box<Self>) {
        self.remove().await;
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

/// Removes a file; one already gone is no error.
fn remove_if_present(path: &FsPath) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Removes a file on the blocking pool; one already gone is no error.
async fn remove(path: PathBuf) -> Result<()> {
    blocking("remove", move || Ok(remove_if_present(&path)?)).await
}

/// Removes a file so that the removal survives a crash (its directory is
/// synced after), on the blocking pool; one already gone is no error. The
/// caller forgets the object only after this, so a power cut cannot bring
/// back a file that nothing records any more.
async fn remove_durably(path: PathBuf) -> Result<()> {
    blocking("remove", move || {
        remove_if_present(&path)?;
        match path.parent() {
            Some(dir) => match sync_dir_now(dir) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                synced => Ok(synced?),
            },
            None => Ok(()),
        }
    })
    .await
}

/// Threads [`remove_all_durably`] works with: a file system takes removals
/// in different directories side by side (an unlink waits on the disk: 0.2
/// ms each on an ext4 mounted with `discard`; 500 files took 90 ms on one
/// thread and 27 ms on 16).
const REMOVERS: usize = 16;

/// Removes files, then syncs each of their directories once, so that the
/// removals survive a crash (blocking). A file counts as removed only once
/// its directory is synced. Each directory is one thread's: its files
/// removed, then it synced.
fn remove_all_durably(paths: &[PathBuf]) -> Vec<Result<()>> {
    let mut by_dir: std::collections::BTreeMap<&FsPath, Vec<usize>> = Default::default();
    for (i, path) in paths.iter().enumerate() {
        by_dir
            .entry(path.parent().unwrap_or(FsPath::new(".")))
            .or_default()
            .push(i);
    }
    let dirs: Vec<(&FsPath, Vec<usize>)> = by_dir.into_iter().collect();
    let per_thread = dirs.len().div_ceil(REMOVERS).max(1);
    let done: Vec<(usize, Result<()>)> = std::thread::scope(|s| {
        let workers: Vec<_> = dirs
            .chunks(per_thread)
            .map(|share| s.spawn(move || remove_in_dirs(paths, share)))
            .collect();
        workers
            .into_iter()
            .filter_map(|w| w.join().ok())
            .flatten()
            .collect()
    });
    let mut outcomes: Vec<Result<()>> = paths
        .iter()
        .map(|p| Err(Error::Internal(format!("{} not removed", p.display()))))
        .collect();
    for (i, outcome) in done {
        outcomes[i] = outcome;
    }
    outcomes
}

/// One thread's share of [`remove_all_durably`]: for each directory, its
/// files (indexes into `paths`) removed, then the directory synced.
fn remove_in_dirs(paths: &[PathBuf], share: &[(&FsPath, Vec<usize>)]) -> Vec<(usize, Result<()>)> {
    let mut done = Vec::new();
    for (dir, files) in share {
        let removed: Vec<(usize, std::io::Result<()>)> = files
            .iter()
            .map(|&i| (i, remove_if_present(&paths[i])))
            .collect();
        let synced = match sync_dir_now(dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(format!("sync {}: {e}", dir.display()))
            }
            _ => Ok(()),
        };
        done.extend(removed.into_iter().map(|(i, r)| {
            let outcome = match r {
                Err(e) => Err(e.into()),
                Ok(()) => synced.clone().map_err(Error::Internal),
            };
            (i, outcome)
        }));
    }
    done
}

/// An upload's file holding fewer bytes than its session counts (never
/// extended with zeros to make up the difference).
fn lost(path: &FsPath, have: u64, want: u64) -> Error {
    Error::Internal(format!(
        "upload file {} holds {have} bytes, its session counts {want}",
        path.display()
    ))
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

/// Writes an upload's data file in large buffers: one trip to the blocking
/// pool per full buffer (the first also opening the file), each going on
/// while the next buffer fills, and one for the rest, which also syncs the
/// file and does what [`Last`] says. A small blob is opened,
/// written, synced and moved into place in one trip.
struct InPlaceWriter {
    /// The store's directory.
    root: PathBuf,
    /// The file, unless a write of it is in flight; none once a write failed
    /// (the file was cut back then).
    file: Option<Appender>,
    /// The write of the previous buffer, going on while the next one fills:
    /// receiving and hashing overlap with writing.
    in_flight: Option<tokio::task::JoinHandle<Result<(Appender, Staged)>>>,
    buf: Staged,
    /// The buffer last written, for the next one to fill.
    spare: Option<Staged>,
    /// Where in the file this writer began.
    offset: u64,
    written: u64,
    /// The file, when it is scratch space to remove on giving up (not a
    /// resumable upload's).
    scratch: Option<PathBuf>,
}

/// What becomes of an upload's file once it is written.
enum Last {
    /// It stays where it is: a chunk of a resumable upload.
    Keep,
    /// It moves here, its content address (a verified blob).
    MoveTo(PathBuf),
    /// It is removed (its content is stored already).
    Discard,
}

impl InPlaceWriter {
    /// Takes in a whole body; on a failure,
    /// gives up as [`Self::abandon`] does. Returns the bytes taken so far.
    async fn take(&mut self, mut body: Body<'_>) -> Result<u64> {
        while let Some(chunk) = body.next().await {
            let written = match chunk {
                Ok(chunk) => self.write(&chunk).await,
                Err(e) => Err(e),
            };
            if let Err(e) = written {
                self.abandon().await;
                return Err(e);
            }
        }
        Ok(self.written)
    }

    /// Adds `chunk`, writing each buffer that fills.
    async fn write(&mut self, mut chunk: &[u8]) -> Result<()> {
        while !chunk.is_empty() {
            if !self.buf.is_aligned() && self.buf.len() + chunk.len() > SMALL_BODY {
                let at = self.offset + self.written - self.buf.len() as u64;
                self.buf = self.buf.realigned(APPEND_BUFFER, at);
            }
            let took = self.buf.fill(chunk, APPEND_BUFFER);
            self.written += took as u64;
            chunk = &chunk[took..];
            if self.buf.len() == APPEND_BUFFER {
                let at = self.offset + self.written;
                let next = Staged::aligned(APPEND_BUFFER, at, self.spare.take());
                let full = std::mem::replace(&mut self.buf, next);
                let file = self.appender().await?;
                self.in_flight = Some(tokio::task::spawn_blocking(move || file.write(full, None)));
            }
        }
        Ok(())
    }

    /// Writes the rest and syncs, then does what `last` says. Returns the
    /// bytes written.
    async fn finish(mut self, last: Last) -> Result<u64> {
        let file = self.appender().await?;
        let (buf, written) = (
            std::mem::replace(&mut self.buf, Staged::small()),
            self.written,
        );
        blocking("write", move || file.write(buf, Some(last))).await?;
        Ok(written)
    }

    /// Gives up: cuts the file back to where this writer began, giving back
    /// the space at once (a full disk).
    async fn abandon(&mut self) {
        if let Ok(file) = self.appender().await {
            let _ = blocking("truncate", move || {
                file.cut();
                Ok(())
            })
            .await;
        }
    }

    /// The file, once the write in flight (if any) is done.
    async fn appender(&mut self) -> Result<Appender> {
        if let Some(write) = self.in_flight.take() {
            let (file, spare) = write
                .await
                .map_err(|e| Error::Internal(format!("write task: {e}")))??;
            self.spare = Some(spare);
            return Ok(file);
        }
        self.file
            .take()
            .ok_or_else(|| Error::Internal("write after a failed write".into()))
    }
}

/// An in-place upload's data file, written from `offset` on; opened by the
/// first write.
struct Appender {
    path: PathBuf,
    offset: u64,
    resumable: bool,
    /// Where the next write goes.
    at: u64,
    /// The file, and whether this append created it.
    open: Option<(DirectFile, bool)>,
    /// Bytes written since writeback was last started.
    unsynced: u64,
    /// Whether a writeback started by [`Appender::start_writeback`] runs.
    writing_back: Arc<std::sync::atomic::AtomicBool>,
}

impl Appender {
    /// Writes `buf`; with `then` (the last write), syncs the file and keeps
    /// it (a resumable upload's new file synced into its directory), moves it
    /// into place, or removes it. A failure cuts the file back to `offset`
    /// (blocking).
    fn write(mut self, buf: Staged, then: Option<Last>) -> Result<(Appender, Staged)> {
        let written = self.try_write(buf.bytes(), then);
        if written.is_err() {
            self.cut();
        }
        written.map(|()| (self, buf))
    }

    fn try_write(&mut self, buf: &[u8], then: Option<Last>) -> Result<()> {
        if matches!(then, Some(Last::Discard)) {
            self.open = None;
            return Ok(remove_if_present(&self.path)?);
        }
        if self.open.is_none() && buf.is_empty() && matches!(then, Some(Last::Keep)) {
            // An empty chunk: what came before is synced already, and the
            // file may be gone with a finish that moved it into place.
            return Ok(());
        }
        let (file, created) = match &mut self.open {
            Some(open) => open,
            None => self.open.insert(self.open_file()?),
        };
        let buffered = file.write_at(buf, self.at)?;
        self.at += buf.len() as u64;
        let file = file.file();
        match then {
            None => {
                self.unsynced += buffered as u64;
                if self.unsynced >= WRITEBACK_EVERY {
                    self.unsynced = 0;
                    self.start_writeback();
                }
            }
            Some(Last::Discard) => {}
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
    /// if resumable) and locks it, at `offset`, dropping anything past it
    /// (what a failed chunk left).
    fn open_file(&self) -> Result<(DirectFile, bool)> {
        let created = !self.path.exists();
        if let Some(dir) = self.path.parent() {
            if self.resumable {
                create_dirs_durably(dir)?;
            } else {
                std::fs::create_dir_all(dir)?;
            }
        }
        // Only an upload's first bytes make its file: one past its start
        // that is gone lost what the session counts.
        let file = match std::fs::OpenOptions::new()
            .write(true)
            .create(self.offset == 0)
            .truncate(false)
            .open(&self.path)
        {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && self.offset > 0 => {
                return Err(lost(&self.path, 0, self.offset));
            }
            opened => opened?,
        };
        // One writer of an upload's file at a time, even when a request was
        // dropped with a buffer still being written (that write ends, and
        // lets go of the lock, before anyone else truncates or appends).
        file.lock()?;
        // Never fill a gap with zeros: bytes the session counts must be here.
        let len = file.metadata()?.len();
        if len < self.offset {
            return Err(lost(&self.path, len, self.offset));
        }
        file.set_len(self.offset)?;
        Ok((DirectFile::new(file), created))
    }

    /// Starts writing what is written so far to the disk, without waiting
    /// (unless a writeback started earlier still runs), so that the sync
    /// that ends the append finds little left to do: the disk works while
    /// the body streams in, rather than after.
    fn start_writeback(&self) {
        use std::sync::atomic::Ordering;
        let (Some((file, _)), Ok(runtime)) = (&self.open, tokio::runtime::Handle::try_current())
        else {
            return;
        };
        if self.writing_back.swap(true, Ordering::SeqCst) {
            return;
        }
        let running = Arc::clone(&self.writing_back);
        match file.file().try_clone() {
            Ok(file) => {
                runtime.spawn_blocking(move || {
                    // Only a head start: the final sync reports any failure.
                    let _ = file.sync_data();
                    running.store(false, Ordering::SeqCst);
                });
            }
            Err(_) => running.store(false, Ordering::SeqCst),
        }
    }

    /// Cuts the file back to where this append began (best effort).
    fn cut(&self) {
        if let Some((file, _)) = &self.open {
            let _ = file.file().set_len(self.offset);
        }
    }
}

/// Streams a local file (or a range of it) in large chunks. Each chunk is
/// read with `pread` straight into its own buffer on the blocking pool (no
/// second copy through tokio's file buffer), the next one while the socket
/// takes the current one; no thread is held between chunks.
async fn read_local(path: PathBuf, range: Option<Range<u64>>) -> Result<Body<'static>> {
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
    let (start, end) = (range.start, range.end);
    let stream = futures_util::stream::iter(starts)
        .map(move |at| {
            let file = Arc::clone(&file);
            // Allocated here, on a runtime thread, and freed there once sent:
            // buffers allocated on the many blocking threads would each leave
            // their memory in that thread's malloc arena.
            let buf = vec![0u8; usize::try_from((end - at).min(chunk)).unwrap_or(0)];
            let ahead = prefetch(start, at, end);
            blocking("read", move || read_chunk(&file, at, buf, ahead))
        })
        .buffered(READ_AHEAD);
    Ok(stream.boxed())
}

/// What to ask the disk for before reading the chunk at `at` of a read of
/// `start..end`: the first [`PREFETCH`] bytes at the start, then the next
/// step at each step, so each byte is asked for once; nothing for a read of
/// one chunk.
fn prefetch(start: u64, at: u64, end: u64) -> Option<Range<u64>> {
    if end - start <= LOCAL_READ_CHUNK as u64 {
        return None;
    }
    let from = match at - start {
        0 => at,
        gone if gone % PREFETCH_STEP == 0 => at + PREFETCH - PREFETCH_STEP,
        _ => return None,
    };
    let to = (at + PREFETCH).min(end);
    (from < to).then_some(from..to)
}

/// Fills `buf` from `at`, first asking the disk for `ahead` (a hint: a
/// refusal changes nothing).
fn read_chunk(
    file: &std::fs::File,
    at: u64,
    mut buf: Vec<u8>,
    ahead: Option<Range<u64>>,
) -> Result<Bytes> {
    use std::os::unix::fs::FileExt;
    if let Some(ahead) = ahead {
        let len = std::num::NonZeroU64::new(ahead.end - ahead.start);
        let _ = rustix::fs::fadvise(file, ahead.start, len, rustix::fs::Advice::WillNeed);
    }
    match file.read_exact_at(&mut buf, at) {
        Ok(()) => Ok(Bytes::from(buf)),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(Error::from(
            std::io::Error::new(e.kind(), "blob shorter than recorded"),
        )),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A request dropped with a buffer still being written (its future gone,
    // the write going on) must not write into the file after the next writer
    // of the same upload began: the next writer's open waits until the file
    // is let go of.
    #[test]
    fn the_next_writer_of_an_upload_waits_for_the_one_before() {
        let root = tempfile::tempdir().expect("temp dir");
        let appender = || Appender {
            path: root.path().join("upload"),
            offset: 0,
            at: 0,
            resumable: false,
            open: None,
            unsynced: 0,
            writing_back: Arc::default(),
        };
        let mut first = Staged::small();
        first.fill(b"first", 5);
        let first = appender().write(first, None).expect("first write");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::scope(|scope| {
            let next = appender();
            scope.spawn(move || {
                let opened = next.open_file().map(|_| std::time::Instant::now());
                let _ = tx.send(opened.ok());
            });
            std::thread::sleep(std::time::Duration::from_millis(100));
            assert!(
                rx.try_recv().is_err(),
                "opened while the first writer held the file"
            );
            let released = std::time::Instant::now();
            drop(first);
            let opened = rx.recv().ok().flatten().expect("opened");
            assert!(opened >= released);
        });
    }

    #[test]
    fn a_large_read_asks_for_each_byte_ahead_once() {
        const MIB: u64 = 1024 * 1024;
        assert_eq!(prefetch(0, 0, MIB), None, "one chunk: nothing");
        let (start, end) = (5, 5 + 100 * MIB + 7);
        let asked: Vec<_> = (start..end)
            .step_by(MIB as usize)
            .filter_map(|at| prefetch(start, at, end))
            .collect();
        assert_eq!(asked[0], start..start + PREFETCH);
        for pair in asked.windows(2) {
            assert_eq!(pair[0].end, pair[1].start, "{asked:?}");
        }
        assert_eq!(asked.last().map(|r| r.end), Some(end));
    }

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
