//! Uploads on object storage. A session's chunks become parts of one
//! multipart upload; bytes below the backend's minimum part size are staged as
//! an object of their own until more arrive. What a session has uploaded is a
//! [`PartsState`], kept in the metadata database between requests, so that a
//! restarted server, or another replica, carries on where the last chunk ended.

use bytes::{Bytes, BytesMut};
use futures_util::future::BoxFuture;
use futures_util::{Stream, StreamExt};
use object_store::multipart::PartId;

use super::{BlobStore, StorageKey};
use crate::error::{Error, Result};
use crate::oci::UploadId;

/// Name of the object a multipart upload completes into.
const ASSEMBLED: &str = "data";

/// Where a session's multipart upload stands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartsState {
    /// The backend's id for the multipart upload, once the first part is sent.
    pub multipart_id: Option<String>,
    /// Parts uploaded, in order: the backend's part id and length.
    pub parts: Vec<(String, u64)>,
    /// Bytes past the last part, held as an object: its name and length.
    pub staged: Option<(String, u64)>,
}

/// Saves a newly begun multipart upload with its session, and answers the one
/// that stands (another request may have begun one first).
pub type RecordMultipart<'a> =
    &'a (dyn Fn(String) -> BoxFuture<'static, Result<String>> + Send + Sync);

fn staged_key(upload: &UploadId, name: &str) -> StorageKey {
    StorageKey::UploadPart {
        upload: upload.clone(),
        name: name.to_owned(),
    }
}

fn assembled_key(upload: &UploadId) -> StorageKey {
    staged_key(upload, ASSEMBLED)
}

impl BlobStore {
    /// Streams one chunk into the session's multipart upload: whole parts as
    /// they fill, the tail as a part if it is long enough, else staged. The
    /// caller commits the returned state (and drops it on failure with
    /// [`BlobStore::discard_staged`]). Returns the new state and the chunk's length.
    pub async fn append_parts<S>(
        &self,
        upload: &UploadId,
        offset: u64,
        before: &PartsState,
        body: S,
        mut observe: impl FnMut(&[u8]),
        record: RecordMultipart<'_>,
    ) -> Result<(PartsState, u64)>
    where
        S: Stream<Item = Result<Bytes>> + Send,
    {
        let min_part = self.min_part_size();
        let part_size = usize::try_from(min_part)
            .unwrap_or(usize::MAX)
            .max(super::PART_SIZE);
        let mut state = before.clone();
        let mut buf = BytesMut::new();
        let mut written = 0u64;
        let mut body = std::pin::pin!(body);
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            if chunk.is_empty() {
                continue;
            }
            if written == 0
                && let Some((name, len)) = state.staged.take()
            {
                buf.extend_from_slice(&self.read_staged(upload, &name, len).await?);
            }
            observe(&chunk);
            written += chunk.len() as u64;
            buf.extend_from_slice(&chunk);
            while buf.len() >= part_size {
                let part = buf.split_to(part_size).freeze();
                self.put_part(upload, &mut state, part, record).await?;
            }
        }
        if written == 0 || buf.is_empty() {
            return Ok((state, written));
        }
        if buf.len() as u64 >= min_part.max(1) {
            self.put_part(upload, &mut state, buf.freeze(), record)
                .await?;
        } else {
            let name = format!("staged-{:020}-{}", offset + written, UploadId::new_random());
            let len = buf.len() as u64;
            self.put_bytes(&staged_key(upload, &name), buf.freeze())
                .await?;
            state.staged = Some((name, len));
        }
        Ok((state, written))
    }

    /// Removes the staged object `after` wrote, if `before` did not have it:
    /// what is left to do when a chunk is not committed.
    pub async fn discard_staged(&self, upload: &UploadId, before: &PartsState, after: &PartsState) {
        if let Some((name, _)) = &after.staged
            && before.staged.as_ref().map(|s| &s.0) != Some(name)
            && let Err(e) = self.delete(&staged_key(upload, name)).await
        {
            tracing::warn!(upload = %upload, error = %e, "could not remove a staged chunk");
        }
    }

    /// Brings the session's bytes together as one object and returns its key
    /// (`None` for an empty upload): the staged object alone, or the multipart
    /// upload completed with the staged tail as its last part. Safe to repeat:
    /// an object already assembled at `len` bytes is kept.
    pub async fn assemble_parts(
        &self,
        upload: &UploadId,
        state: &PartsState,
        len: u64,
    ) -> Result<Option<StorageKey>> {
        let multipart = self.multipart()?;
        let Some(id) = state
            .multipart_id
            .as_ref()
            .filter(|_| !state.parts.is_empty())
        else {
            if let Some(id) = &state.multipart_id {
                self.abort_parts(upload, id).await;
            }
            return Ok(state
                .staged
                .as_ref()
                .map(|(name, _)| staged_key(upload, name)));
        };
        let key = assembled_key(upload);
        if self.size(&key).await? == Some(len) {
            return Ok(Some(key));
        }
        let path = self.path(&key);
        let id = id.clone();
        let mut parts: Vec<PartId> = state
            .parts
            .iter()
            .map(|(content_id, _)| PartId {
                content_id: content_id.clone(),
            })
            .collect();
        if let Some((name, staged_len)) = &state.staged {
            let tail = self.read_staged(upload, name, *staged_len).await?;
            parts.push(
                multipart
                    .put_part(&path, &id, parts.len(), tail.into())
                    .await?,
            );
        }
        multipart.complete_multipart(&path, &id, parts).await?;
        Ok(Some(key))
    }

    /// Gives up a session's multipart upload (expiry, cancel); best effort.
    pub async fn abort_parts(&self, upload: &UploadId, multipart_id: &str) {
        let Ok(multipart) = self.multipart() else {
            return;
        };
        let path = self.path(&assembled_key(upload));
        match multipart
            .abort_multipart(&path, &multipart_id.to_owned())
            .await
        {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => {
                tracing::warn!(upload = %upload, error = %e, "could not abort a multipart upload");
            }
        }
    }

    async fn put_part(
        &self,
        upload: &UploadId,
        state: &mut PartsState,
        data: Bytes,
        record: RecordMultipart<'_>,
    ) -> Result<()> {
        let multipart = self.multipart()?;
        let path = self.path(&assembled_key(upload));
        let id = match &state.multipart_id {
            Some(id) => id.clone(),
            None => {
                let begun = multipart.create_multipart(&path).await?;
                let standing = match record(begun.clone()).await {
                    Ok(id) => id,
                    Err(e) => {
                        self.abort_parts(upload, &begun).await;
                        return Err(e);
                    }
                };
                if standing != begun {
                    self.abort_parts(upload, &begun).await;
                }
                state.multipart_id = Some(standing.clone());
                standing
            }
        };
        let len = data.len() as u64;
        let part = multipart
            .put_part(&path, &id, state.parts.len(), data.into())
            .await?;
        state.parts.push((part.content_id, len));
        Ok(())
    }

    async fn read_staged(&self, upload: &UploadId, name: &str, len: u64) -> Result<Bytes> {
        let bytes = self.read_all(&staged_key(upload, name)).await?;
        if bytes.len() as u64 != len {
            return Err(Error::Internal(format!(
                "upload {upload}: staged bytes are {} long, the session says {len}",
                bytes.len()
            )));
        }
        Ok(bytes)
    }
}
