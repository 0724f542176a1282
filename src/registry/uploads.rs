//! Blob uploads: sessions, chunks, cross-repository mounts and the final,
//! verified commit. Bytes are hashed while they are written; the running
//! sha256 state is saved with the offset after every chunk, so a session
//! survives a restart and resumes where `GET` says it stands.

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use sha2::Digest as _;
use sha2::Sha256;
use sha2::digest::common::hazmat::{SerializableState, SerializedState};

use super::Registry;
use super::hashing::{hash_aside, hashed};
use crate::error::{Error, Result};
use crate::meta::{BlobArea, ChunkCommit, UploadArea, UploadSession};
use crate::oci::{Algorithm, Digest, RepoName, UploadId};
use crate::storage::{Appended, Assembled, StorageKey, UploadState};
use std::sync::Arc;

/// Repositories tried for a mount without `from`.
const AUTO_MOUNT_CANDIDATES: usize = 16;

/// Where an upload session stands.
#[derive(Debug, Clone)]
pub struct UploadStatus {
    pub id: UploadId,
    /// Bytes received so far.
    pub offset: u64,
}

/// What a mount request came to.
#[derive(Debug, Clone)]
pub enum MountOutcome {
    /// The repository now holds the blob (201).
    Mounted { digest: Digest },
    /// The blob could not be mounted; an upload session was opened instead (202).
    Started(UploadStatus),
}

/// A `Content-Range` on a chunk: inclusive first and last byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkRange {
    pub start: u64,
    pub end: u64,
}

impl ChunkRange {
    /// Parses exactly `<start>-<end>` in decimal, the spec's grammar
    /// (distribution-spec, "Pushing a blob in chunks": `^[0-9]+-[0-9]+$`);
    /// no `bytes` unit, sign, space or empty side.
    pub fn parse(header: &str) -> Result<ChunkRange> {
        let invalid = || {
            Error::BlobUploadInvalid(format!(
                "malformed Content-Range {header:?}: expected <start>-<end> in decimal"
            ))
        };
        let number = |s: &str| -> Result<u64> {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid());
            }
            s.parse().map_err(|_| invalid())
        };
        let (a, b) = header.split_once('-').ok_or_else(invalid)?;
        let start = number(a)?;
        let end = number(b)?;
        if end < start {
            return Err(invalid());
        }
        Ok(ChunkRange { start, end })
    }

    fn len(self) -> u64 {
        self.end - self.start + 1
    }

    /// A chunk must start where the upload stands (416 otherwise).
    fn check_start(range: Option<ChunkRange>, offset: u64) -> Result<()> {
        match range {
            Some(r) if r.start != offset => Err(Error::ChunkOutOfOrder {
                offset,
                start: r.start,
            }),
            _ => Ok(()),
        }
    }

    /// A chunk's body must be as long as its range says.
    fn check_len(range: Option<ChunkRange>, len: u64) -> Result<()> {
        match range {
            Some(r) if r.len() != len => Err(Error::SizeInvalid(format!(
                "Content-Range names {} bytes, the body had {len}",
                r.len()
            ))),
            _ => Ok(()),
        }
    }
}

fn save_state(h: &Sha256) -> Vec<u8> {
    h.serialize().to_vec()
}

fn restore_state(bytes: &[u8]) -> Result<Sha256> {
    let state = SerializedState::<Sha256>::try_from(bytes)
        .map_err(|_| Error::Internal("upload hash state has the wrong length".into()))?;
    Sha256::deserialize(&state).map_err(|_| Error::Internal("upload hash state is corrupt".into()))
}

impl Registry {
    /// Opens an upload session in `repo`, belonging to `owner`.
    pub async fn start_upload(&self, repo: &RepoName, owner: Option<&str>) -> Result<UploadStatus> {
        let id = UploadId::new_random();
        self.open_session(&id, repo, owner).await?;
        Ok(UploadStatus { id, offset: 0 })
    }

    async fn open_session(
        &self,
        id: &UploadId,
        repo: &RepoName,
        owner: Option<&str>,
    ) -> Result<()> {
        let (i, r, state) = (id.clone(), repo.clone(), save_state(&Sha256::new()));
        let owner = owner.map(str::to_owned);
        self.meta(move |m: &UploadArea| m.create_upload(&i, &r, owner.as_deref(), &state))
            .await?;
        tracing::debug!(repo = %repo, upload = %id, "upload started");
        Ok(())
    }

    /// Cross-repository mount: makes `repo` hold a blob that `from` holds (or,
    /// without `from` and with automatic mounts on, any repository accepted by
    /// `may_read`). Anything else opens an upload session instead.
    pub async fn mount_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        from: Option<RepoName>,
        may_read: &(dyn Fn(&RepoName) -> bool + Send + Sync),
        owner: Option<&str>,
    ) -> Result<MountOutcome> {
        let candidates = match from {
            Some(from) => vec![from],
            None if self.settings.auto_mount => {
                let d = digest.clone();
                self.meta(move |m: &BlobArea| m.repos_holding(&d, AUTO_MOUNT_CANDIDATES))
                    .await?
            }
            None => Vec::new(),
        };
        let readable: Vec<RepoName> = candidates.into_iter().filter(|s| may_read(s)).collect();
        for source in readable {
            let (r, d) = (repo.clone(), digest.clone());
            if self
                .meta(move |m: &BlobArea| m.mount_blob(&r, &d, &source))
                .await?
                .is_some()
            {
                tracing::debug!(repo = %repo, digest = %digest, "blob mounted");
                return Ok(MountOutcome::Mounted {
                    digest: digest.clone(),
                });
            }
        }
        self.start_upload(repo, owner)
            .await
            .map(MountOutcome::Started)
    }

    /// Refuses (as unknown) a session that another user opened.
    pub async fn check_upload_owner(
        &self,
        repo: &RepoName,
        id: &UploadId,
        user: Option<&str>,
    ) -> Result<()> {
        let session = self.session(repo, id).await?;
        if session.owner.as_deref() == user {
            Ok(())
        } else {
            Err(Error::BlobUploadUnknown)
        }
    }

    /// The session's status, if it belongs to `repo`.
    pub async fn upload_status(&self, repo: &RepoName, id: &UploadId) -> Result<UploadStatus> {
        let session = self.session(repo, id).await?;
        Ok(UploadStatus {
            id: id.clone(),
            offset: session.offset,
        })
    }

    /// Appends a chunk (PATCH). With a `range`, it must start where the upload
    /// stands (416 otherwise) and its length must match the body.
    pub async fn append_chunk<S>(
        &self,
        repo: &RepoName,
        id: &UploadId,
        range: Option<ChunkRange>,
        body: S,
    ) -> Result<UploadStatus>
    where
        S: Stream<Item = Result<Bytes>> + Send,
    {
        let session = self
            .locked(id, async {
                let session = self.session(repo, id).await?;
                self.append(id, session, range, body).await
            })
            .await?;
        Ok(UploadStatus {
            id: id.clone(),
            offset: session.offset,
        })
    }

    /// Completes an upload (PUT): appends the optional last chunk, checks the
    /// digest, moves the bytes to their content address and records the blob.
    /// Safe to repeat after a crash at any step: each step keeps what an
    /// earlier attempt finished.
    pub async fn finish_upload<S>(
        &self,
        repo: &RepoName,
        id: &UploadId,
        digest: &Digest,
        range: Option<ChunkRange>,
        body: S,
    ) -> Result<()>
    where
        S: Stream<Item = Result<Bytes>> + Send,
    {
        self.locked(id, self.finish_locked(repo, id, digest, range, body))
            .await
    }

    async fn finish_locked<S>(
        &self,
        repo: &RepoName,
        id: &UploadId,
        digest: &Digest,
        range: Option<ChunkRange>,
        body: S,
    ) -> Result<()>
    where
        S: Stream<Item = Result<Bytes>> + Send,
    {
        if writes_whole(digest) {
            // The whole blob in this request (POST, then PUT with the body)?
            // Then nothing needs to survive a crash before the blob itself.
            let (i, r, d) = (id.clone(), repo.clone(), digest.clone());
            if let Some(stored) = self
                .retry_busy(move |m: &UploadArea| m.begin_finish_if_empty(&i, &r, &d))
                .await?
            {
                ChunkRange::check_start(range, 0)?;
                return self
                    .push_whole(repo, id, digest, range, stored.is_some(), body)
                    .await;
            }
        }
        let session = self.session(repo, id).await?;
        let session = self.append(id, session, range, body).await?;
        if digest.algorithm() == Algorithm::Sha256 {
            let state = restore_state(&session.hash_state)?;
            check_digest(
                &Digest::from_output(Algorithm::Sha256, &state.finalize()),
                digest,
            )?;
        }
        let state = storage_state(&session);
        let source = self.blobs.assemble(id, &state, session.offset).await?;
        if digest.algorithm() == Algorithm::Sha512 {
            let computed = self.rehash_sha512(&source, session.offset).await?;
            if let Err(e) = check_digest(&computed, digest) {
                if source.closes_upload() {
                    // Nothing can be added to the upload any more.
                    self.cancel_upload(repo, id).await.ok();
                }
                return Err(e);
            }
        }
        // Content is stored once: if these bytes are already recorded, keep
        // that copy. Marking the session as finishing keeps garbage collection
        // away from this digest until the commit below.
        let (i, d) = (id.clone(), digest.clone());
        let stored = self
            .retry_busy(move |m: &UploadArea| m.begin_finish(&i, &d))
            .await?
            .is_some();
        self.complete(repo, id, digest, (&source, &state), session.offset, stored)
            .await
    }

    /// Puts verified bytes, assembled from the upload's `state`, at their
    /// content address (unless `stored` says they are there already) and
    /// records the blob, ending the session.
    async fn complete(
        &self,
        repo: &RepoName,
        id: &UploadId,
        digest: &Digest,
        (source, state): (&Assembled, &UploadState),
        size: u64,
        stored: bool,
    ) -> Result<()> {
        let target = StorageKey::Blob(digest.clone());
        // Whether the upload left anything to remove (local disk's file,
        // moved into place, leaves nothing: no trip to remove it).
        let mut leftovers = true;
        if !stored {
            match self.blobs.place(id, source, &target, size).await {
                Ok(()) => leftovers = !source.placing_takes_all(),
                // A finish that crashed after moving the bytes and before its
                // commit left them in place: the digest check vouches for them.
                Err(e) if self.blobs.size(&target).await? != Some(size) => return Err(e),
                Err(_) => {}
            }
        }
        self.record_blob(repo, id, digest, size, stored).await?;
        if leftovers && let Err(e) = self.blobs.remove_upload(id, state).await {
            tracing::warn!(upload = %id, error = %e, "could not remove finished upload parts");
        }
        Ok(())
    }

    /// Records the blob, now in place, ending the session.
    async fn record_blob(
        &self,
        repo: &RepoName,
        id: &UploadId,
        digest: &Digest,
        size: u64,
        stored: bool,
    ) -> Result<()> {
        let (i, d) = (id.clone(), digest.clone());
        self.meta(move |m: &UploadArea| m.finish_upload(&i, &d, size, !stored))
            .await?;
        tracing::info!(repo = %repo, digest = %digest, size, "blob pushed");
        Ok(())
    }

    /// Pushes a whole blob in one request (POST with `?digest=`).
    pub async fn push_blob<S>(
        &self,
        repo: &RepoName,
        digest: &Digest,
        owner: Option<&str>,
        body: S,
    ) -> Result<()>
    where
        S: Stream<Item = Result<Bytes>> + Send,
    {
        let id = UploadId::new_random();
        let result = if writes_whole(digest) {
            self.push_whole_claimed(repo, &id, digest, owner, body)
                .await
        } else {
            match self.open_session(&id, repo, owner).await {
                Ok(()) => self.finish_upload(repo, &id, digest, None, body).await,
                Err(e) => Err(e),
            }
        };
        if result.is_err() {
            // Nothing of a single-request upload was acknowledged: its bytes go
            // first (so a full disk gets its space back), then the session.
            let _ = self.blobs.remove_upload(&id, &UploadState::default()).await;
            self.cancel_upload(repo, &id).await.ok();
        }
        result
    }

    /// A single-request push in two commits: the session opens already
    /// marked as finishing the claimed digest (so garbage collection leaves
    /// it alone), and closes with the blob recorded.
    async fn push_whole_claimed<S>(
        &self,
        repo: &RepoName,
        id: &UploadId,
        digest: &Digest,
        owner: Option<&str>,
        body: S,
    ) -> Result<()>
    where
        S: Stream<Item = Result<Bytes>> + Send,
    {
        let (i, r, d) = (id.clone(), repo.clone(), digest.clone());
        let (owner, state) = (owner.map(str::to_owned), save_state(&Sha256::new()));
        let stored = self
            .retry_busy(move |m: &UploadArea| {
                m.start_single_push(&i, &r, owner.as_deref(), &state, &d)
            })
            .await?
            .is_some();
        self.push_whole(repo, id, digest, None, stored, body).await
    }

    /// Writes a whole blob sent in one request, checking its length against
    /// `range` and its digest as it streams, then makes it visible at its
    /// content address (or drops it, if `stored`), and records it: the
    /// session is already marked as finishing `digest`. Nothing is made
    /// resumable: a blob refused or cut off leaves the session empty.
    async fn push_whole<S>(
        &self,
        repo: &RepoName,
        id: &UploadId,
        digest: &Digest,
        range: Option<ChunkRange>,
        stored: bool,
        body: S,
    ) -> Result<()>
    where
        S: Stream<Item = Result<Bytes>> + Send,
    {
        let target = StorageKey::Blob(digest.clone());
        let mut writer = self.blobs.blob_writer(id, &target).await?;
        let (body, hasher) = hash_aside(body.boxed(), Sha256::new());
        let len = writer.take(body).await?;
        let hasher = hashed(hasher).await?;
        let verified = ChunkRange::check_len(range, len).and_then(|()| {
            check_digest(
                &Digest::from_output(Algorithm::Sha256, &hasher.finalize()),
                digest,
            )
        });
        if let Err(e) = verified {
            writer.abandon().await;
            return Err(e);
        }
        writer.finish(!stored).await?;
        self.record_blob(repo, id, digest, len, stored).await
    }

    /// Cancels a session and removes its bytes.
    pub async fn cancel_upload(&self, repo: &RepoName, id: &UploadId) -> Result<()> {
        let session = self.session(repo, id).await?;
        let i = id.clone();
        if !self.meta(move |m: &UploadArea| m.cancel_upload(&i)).await? {
            return Err(Error::BlobUploadUnknown);
        }
        self.blobs.remove_upload(id, &storage_state(&session)).await
    }

    async fn session(&self, repo: &RepoName, id: &UploadId) -> Result<UploadSession> {
        let i = id.clone();
        self.meta(move |m: &UploadArea| m.upload(&i))
            .await?
            .filter(|s| &s.repo == repo)
            .ok_or(Error::BlobUploadUnknown)
    }

    /// Runs `work` on session `id` under its lock, so that requests to one
    /// upload never interleave in this process.
    async fn locked<T>(&self, id: &UploadId, work: impl Future<Output = Result<T>>) -> Result<T> {
        let lock = {
            let mut locks = self
                .upload_locks
                .lock()
                .map_err(|_| Error::Internal("upload locks poisoned".into()))?;
            Arc::clone(locks.entry(id.clone()).or_default())
        };
        let result = {
            let _held = lock.lock().await;
            work.await
        };
        if let Ok(mut locks) = self.upload_locks.lock()
            && Arc::strong_count(&lock) == 2
        {
            locks.remove(id);
        }
        result
    }

    /// Writes one chunk and commits it to `session` (read under the
    /// session's lock, which the caller holds), only if the session has not
    /// moved meanwhile (another replica). With a `range`, the chunk must start
    /// where the upload stands and match the body's length. Returns the
    /// session as it now stands.
    async fn append<S>(
        &self,
        id: &UploadId,
        mut session: UploadSession,
        range: Option<ChunkRange>,
        body: S,
    ) -> Result<UploadSession>
    where
        S: Stream<Item = Result<Bytes>> + Send,
    {
        ChunkRange::check_start(range, session.offset)?;
        let (body, hasher) = hash_aside(body.boxed(), restore_state(&session.hash_state)?);
        let before = storage_state(&session);
        let chunk = self.blobs.append(id, session.offset, &before, body).await?;
        let after = before.advanced(&chunk);
        let committed = async {
            ChunkRange::check_len(range, chunk.len)?;
            let hasher = hashed(hasher).await?;
            self.commit_chunk(id, session.offset, &chunk, &hasher)
                .await
                .map(|()| hasher)
        };
        let hasher = match committed.await {
            Ok(hasher) => hasher,
            Err(e) => {
                self.blobs.release(id, &after, &before).await;
                return Err(e);
            }
        };
        self.blobs.release(id, &before, &after).await;
        session.offset += chunk.len;
        session.hash_state = save_state(&hasher);
        session.parts = after.parts;
        session.storage_state = after.resume;
        Ok(session)
    }

    /// Records a written chunk if the session still stands at `offset`.
    async fn commit_chunk(
        &self,
        id: &UploadId,
        offset: u64,
        chunk: &Appended,
        hasher: &Sha256,
    ) -> Result<()> {
        if chunk.len == 0 {
            return Ok(());
        }
        let (i, state, chunk) = (id.clone(), save_state(hasher), chunk.clone());
        let committed = self
            .meta(move |m: &UploadArea| {
                m.commit_chunk(
                    &i,
                    offset,
                    &ChunkCommit {
                        len: chunk.len,
                        hash_state: &state,
                        new_parts: &chunk.new_parts,
                        storage_state: &chunk.resume,
                    },
                )
            })
            .await?;
        if !committed {
            let i = id.clone();
            let now = self
                .meta(move |m: &UploadArea| m.upload(&i))
                .await?
                .map_or(0, |s| s.offset);
            return Err(Error::ChunkOutOfOrder {
                offset: now,
                start: offset,
            });
        }
        Ok(())
    }

    /// Hashes the first `len` assembled bytes with sha512.
    async fn rehash_sha512(&self, source: &Assembled, len: u64) -> Result<Digest> {
        let mut hasher = sha2::Sha512::new();
        let mut stream = self.blobs.read_assembled(source, len).await?;
        while let Some(chunk) = stream.next().await {
            hasher.update(&chunk?);
        }
        Ok(Digest::from_output(Algorithm::Sha512, &hasher.finalize()))
    }
}

/// What storage keeps of a session, as the session row holds it.
fn storage_state(session: &UploadSession) -> UploadState {
    UploadState {
        parts: session.parts.clone(),
        resume: session.storage_state.clone(),
    }
}

/// Whether a blob sent whole in one request is checked as it streams
/// (sha256; a sha512 blob is hashed again once assembled) and so written
/// straight towards its content address, with no resumable session.
fn writes_whole(digest: &Digest) -> bool {
    digest.algorithm() == Algorithm::Sha256
}

fn check_digest(computed: &Digest, claimed: &Digest) -> Result<()> {
    if computed == claimed {
        Ok(())
    } else {
        Err(Error::DigestInvalid(format!(
            "the upload's content has digest {computed}, not {claimed}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_is_exactly_start_dash_end_in_decimal() {
        assert_eq!(
            ChunkRange::parse("0-9").ok(),
            Some(ChunkRange { start: 0, end: 9 })
        );
        assert_eq!(
            ChunkRange::parse("10-19").ok(),
            Some(ChunkRange { start: 10, end: 19 })
        );
        for h in [
            "",
            "9-0",
            "a-b",
            "10",
            "bytes 0-9/10",
            "bytes=0-9",
            "bytes 0-9/*",
            "+0-9",
            "0-+9",
            " 0-9",
            "0-9 ",
            "0 - 9",
            "-9",
            "0-",
            "-",
            "0-9-10",
            "0x0-9",
            "٣-9",
            "99999999999999999999-99999999999999999999",
        ] {
            assert!(ChunkRange::parse(h).is_err(), "{h:?}");
        }
    }

    #[test]
    fn hash_state_round_trips_mid_stream() {
        let mut h = Sha256::new();
        h.update(b"hello ");
        let restored = restore_state(&save_state(&h)).ok();
        let mut restored = restored.expect("restores");
        restored.update(b"world");
        assert_eq!(
            Digest::from_output(Algorithm::Sha256, &restored.finalize()),
            Digest::sha256_of(b"hello world")
        );
    }
}
