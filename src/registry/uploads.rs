//! Blob uploads: sessions, chunks, cross-repository mounts and the final,
//! verified commit. Bytes are hashed while they are written; the running
//! sha256 state is saved with the offset after every chunk, so a session
//! survives a restart and resumes where `GET` says it stands.

use bytes::Bytes;
use futures_util::Stream;
use sha2::Digest as _;
use sha2::Sha256;
use sha2::digest::common::hazmat::{SerializableState, SerializedState};

use super::Registry;
use crate::error::{Error, Result};
use crate::meta::UploadSession;
use crate::oci::{Algorithm, Digest, RepoName, UploadId};
use crate::storage::{BlobStore, StorageKey};
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
    /// Parses `start-end`, also in the `bytes start-end/total` and `bytes=start-end` spellings.
    pub fn parse(header: &str) -> Result<ChunkRange> {
        let invalid = || Error::BlobUploadInvalid(format!("malformed Content-Range {header:?}"));
        let s = header.trim();
        let s = s
            .strip_prefix("bytes=")
            .or_else(|| s.strip_prefix("bytes "))
            .unwrap_or(s);
        let s = s.split('/').next().unwrap_or(s);
        let (a, b) = s.split_once('-').ok_or_else(invalid)?;
        let start: u64 = a.trim().parse().map_err(|_| invalid())?;
        let end: u64 = b.trim().parse().map_err(|_| invalid())?;
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
        let (i, r, state) = (id.clone(), repo.clone(), save_state(&Sha256::new()));
        let owner = owner.map(str::to_owned);
        self.meta(move |m| m.create_upload(&i, &r, owner.as_deref(), &state))
            .await?;
        tracing::debug!(repo = %repo, upload = %id, "upload started");
        Ok(UploadStatus { id, offset: 0 })
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
                self.meta(move |m| m.repos_holding(&d, AUTO_MOUNT_CANDIDATES))
                    .await?
            }
            None => Vec::new(),
        };
        let readable: Vec<RepoName> = candidates.into_iter().filter(|s| may_read(s)).collect();
        for source in readable {
            let (r, d) = (repo.clone(), digest.clone());
            if self
                .meta(move |m| m.mount_blob(&r, &d, &source))
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
        let session = self.session(repo, id).await?;
        let offset = self.append(id, &session, range, body).await?;
        Ok(UploadStatus {
            id: id.clone(),
            offset,
        })
    }

    /// Completes an upload (PUT): appends the optional last chunk, checks the
    /// digest, moves the bytes to their content address and records the blob.
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
        let mut session = self.session(repo, id).await?;
        let offset = self.append(id, &session, range, body).await?;
        if offset != session.offset {
            session = self.session(repo, id).await?;
        }
        let parts: Vec<StorageKey> = session
            .parts
            .iter()
            .map(|(name, _)| StorageKey::UploadPart {
                upload: id.clone(),
                name: name.clone(),
            })
            .collect();
        let computed = match digest.algorithm() {
            Algorithm::Sha256 => Digest::from_output(
                Algorithm::Sha256,
                &restore_state(&session.hash_state)?.finalize(),
            ),
            Algorithm::Sha512 if self.blobs.appends_in_place() && session.offset > 0 => {
                self.rehash_sha512(&[BlobStore::in_place_key(id)], Some(session.offset))
                    .await?
            }
            Algorithm::Sha512 => self.rehash_sha512(&parts, None).await?,
        };
        if &computed != digest {
            return Err(Error::DigestInvalid(format!(
                "the upload's content has digest {computed}, not {digest}"
            )));
        }
        // Content is stored once: if these bytes are already recorded, keep
        // that copy. Marking the session as finishing keeps garbage collection
        // away from this digest until the commit below.
        let (i, d) = (id.clone(), digest.clone());
        let stored = self
            .retry_busy(move |m| m.begin_finish(&i, &d))
            .await?
            .is_some();
        let target = StorageKey::Blob(digest.clone());
        if !stored {
            let moved = match parts.as_slice() {
                [] => self.blobs.put_bytes(&target, Bytes::new()).await,
                _ if self.blobs.appends_in_place() => {
                    self.blobs.seal_in_place(id, session.offset, &target).await
                }
                [only] => self.blobs.rename(only, &target).await,
                many => self.blobs.concat(many, &target).await.map(|_| ()),
            };
            if let Err(e) = moved {
                // A finish that crashed after moving the bytes and before its
                // commit left them in place: the hash state above vouches for them.
                if self.blobs.size(&target).await? != Some(session.offset) {
                    return Err(e);
                }
            }
        }
        let (i, d, size) = (id.clone(), digest.clone(), session.offset);
        self.meta(move |m| m.finish_upload(&i, &d, size, !stored))
            .await?;
        if let Err(e) = self
            .blobs
            .delete_prefix(&StorageKey::Upload(id.clone()))
            .await
        {
            tracing::warn!(upload = %id, error = %e, "could not remove finished upload parts");
        }
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
        let status = self.start_upload(repo, owner).await?;
        let result = self
            .finish_upload(repo, &status.id, digest, None, body)
            .await;
        if result.is_err() {
            // Nothing of a single-request upload was acknowledged: its bytes go
            // first (so a full disk gets its space back), then the session.
            let _ = self
                .blobs
                .delete_prefix(&StorageKey::Upload(status.id.clone()))
                .await;
            self.cancel_upload(repo, &status.id).await.ok();
        }
        result
    }

    /// Cancels a session and removes its bytes.
    pub async fn cancel_upload(&self, repo: &RepoName, id: &UploadId) -> Result<()> {
        self.session(repo, id).await?;
        let i = id.clone();
        if !self.meta(move |m| m.cancel_upload(&i)).await? {
            return Err(Error::BlobUploadUnknown);
        }
        self.blobs
            .delete_prefix(&StorageKey::Upload(id.clone()))
            .await
    }

    async fn session(&self, repo: &RepoName, id: &UploadId) -> Result<UploadSession> {
        let i = id.clone();
        self.meta(move |m| m.upload(&i))
            .await?
            .filter(|s| &s.repo == repo)
            .ok_or(Error::BlobUploadUnknown)
    }

    /// Writes one chunk as a new part and commits it to the session if the
    /// session has not moved meanwhile. Returns the new offset.
    async fn append<S>(
        &self,
        id: &UploadId,
        session: &UploadSession,
        range: Option<ChunkRange>,
        body: S,
    ) -> Result<u64>
    where
        S: Stream<Item = Result<Bytes>> + Send,
    {
        if self.blobs.appends_in_place() {
            return self.append_in_place(id, range, body).await;
        }
        ChunkRange::check_start(range, session.offset)?;
        let mut hasher = restore_state(&session.hash_state)?;
        let name = format!("{:020}-{}", session.offset, UploadId::new_random());
        let key = StorageKey::UploadPart {
            upload: id.clone(),
            name: name.clone(),
        };
        let len = self
            .blobs
            .write_stream(&key, body, |c| hasher.update(c))
            .await?;
        if let Err(e) = ChunkRange::check_len(range, len) {
            self.blobs.delete(&key).await?;
            return Err(e);
        }
        if len == 0 {
            self.blobs.delete(&key).await?;
            return Ok(session.offset);
        }
        match self
            .commit_chunk(id, session.offset, &name, len, &hasher)
            .await
        {
            Err(e) => {
                self.blobs.delete(&key).await?;
                Err(e)
            }
            ok => ok,
        }
    }

    /// Local disk: one data file per session, appended in place under a
    /// per-session lock (so chunks of one upload never interleave), with
    /// anything past the committed offset dropped first.
    async fn append_in_place<S>(
        &self,
        id: &UploadId,
        range: Option<ChunkRange>,
        body: S,
    ) -> Result<u64>
    where
        S: Stream<Item = Result<Bytes>> + Send,
    {
        let lock = {
            let mut locks = self
                .upload_locks
                .lock()
                .map_err(|_| Error::Internal("upload locks poisoned".into()))?;
            Arc::clone(locks.entry(id.clone()).or_default())
        };
        let result = async {
            let _held = lock.lock().await;
            let i = id.clone();
            let session = self
                .meta(move |m| m.upload(&i))
                .await?
                .ok_or(Error::BlobUploadUnknown)?;
            ChunkRange::check_start(range, session.offset)?;
            let mut hasher = restore_state(&session.hash_state)?;
            let len = self
                .blobs
                .append_in_place(id, session.offset, body, |c| hasher.update(c))
                .await?;
            ChunkRange::check_len(range, len)?;
            if len == 0 {
                return Ok(session.offset);
            }
            self.commit_chunk(id, session.offset, "data", len, &hasher)
                .await
        }
        .await;
        if let Ok(mut locks) = self.upload_locks.lock()
            && Arc::strong_count(&lock) == 2
        {
            locks.remove(id);
        }
        result
    }

    /// Records a written chunk if the session still stands at `offset`.
    async fn commit_chunk(
        &self,
        id: &UploadId,
        offset: u64,
        part: &str,
        len: u64,
        hasher: &Sha256,
    ) -> Result<u64> {
        let (i, state, part) = (id.clone(), save_state(hasher), part.to_owned());
        let committed = self
            .meta(move |m| m.append_upload_part(&i, offset, &part, len, &state))
            .await?;
        if !committed {
            let i = id.clone();
            let now = self
                .meta(move |m| m.upload(&i))
                .await?
                .map_or(0, |s| s.offset);
            return Err(Error::ChunkOutOfOrder {
                offset: now,
                start: offset,
            });
        }
        Ok(offset + len)
    }

    /// Hashes the parts with sha512 (the first `len` bytes, when given).
    async fn rehash_sha512(&self, parts: &[StorageKey], len: Option<u64>) -> Result<Digest> {
        use futures_util::StreamExt;
        let mut hasher = sha2::Sha512::new();
        for part in parts {
            let mut stream = self.blobs.read(part, len.map(|n| 0..n)).await?;
            while let Some(chunk) = stream.next().await {
                hasher.update(&chunk?);
            }
        }
        Ok(Digest::from_output(Algorithm::Sha512, &hasher.finalize()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_spellings() {
        for h in ["0-9", "bytes 0-9/10", "bytes=0-9", "bytes 0-9/*"] {
            assert_eq!(
                ChunkRange::parse(h).ok(),
                Some(ChunkRange { start: 0, end: 9 }),
                "{h}"
            );
        }
        for h in ["", "9-0", "a-b", "10"] {
            assert!(ChunkRange::parse(h).is_err(), "{h}");
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
