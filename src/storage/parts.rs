//! Resumable uploads on object storage. A session's chunks become parts of
//! one multipart upload, begun by the first chunk that fills a part; bytes
//! below the backend's minimum part size are staged as an object of their
//! own until more arrive. Which multipart upload and which staged object is
//! the session's [`Resume`], handed to the caller as opaque bytes after each
//! chunk, so that a restarted server, or another replica, carries on where
//! the last committed chunk ended.
//!
//! A chunk that is not committed releases what it began (its staged object,
//! a multipart upload it created). A process killed between creating a
//! multipart upload and committing the chunk leaves that upload to the
//! bucket's lifecycle rule for incomplete multipart uploads.

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use object_store::ObjectStoreExt;
use object_store::multipart::PartId;
use serde::{Deserialize, Serialize};

use super::object::{ObjectStorage, PART_SIZE};
use super::{Appended, Assembled, Body, Storage, StorageKey, UploadState};
use crate::error::{Error, Result};
use crate::oci::UploadId;

/// Name of the object a multipart upload completes into.
const ASSEMBLED: &str = "data";

/// What a session's uploaded bytes are, besides its parts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Resume {
    /// The backend's id for the multipart upload, once the first part is sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    multipart: Option<String>,
    /// Bytes past the last part, held as an object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    staged: Option<Staged>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Staged {
    name: String,
    len: u64,
}

impl Resume {
    /// An empty state (a new session) is no bytes at all.
    fn of(state: &UploadState) -> Result<Resume> {
        if state.resume.is_empty() {
            return Ok(Resume::default());
        }
        serde_json::from_slice(&state.resume)
            .map_err(|e| Error::Internal(format!("upload storage state is corrupt: {e}")))
    }

    fn to_bytes(&self) -> Vec<u8> {
        if *self == Resume::default() {
            return Vec::new();
        }
        serde_json::to_vec(self).unwrap_or_default()
    }
}

fn staged_key(upload: &UploadId, name: &str) -> StorageKey {
    StorageKey::UploadPart {
        upload: upload.clone(),
        name: name.to_owned(),
    }
}

fn assembled_key(upload: &UploadId) -> StorageKey {
    staged_key(upload, ASSEMBLED)
}

impl ObjectStorage {
    /// Streams one chunk into the session's multipart upload: whole parts as
    /// they fill, the tail as a part if it is long enough, else staged.
    pub(super) async fn append_parts(
        &self,
        upload: &UploadId,
        offset: u64,
        before: &UploadState,
        mut body: Body<'_>,
    ) -> Result<Appended> {
        let mut resume = Resume::of(before)?;
        let part_size = usize::try_from(self.min_part)
            .unwrap_or(usize::MAX)
            .max(PART_SIZE);
        let mut chunk_out = Appended::default();
        let mut buf = BytesMut::new();
        let written = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk?;
                if chunk.is_empty() {
                    continue;
                }
                if chunk_out.len == 0
                    && let Some(staged) = resume.staged.take()
                {
                    buf.extend_from_slice(&self.read_staged(upload, &staged).await?);
                }
                chunk_out.len += chunk.len() as u64;
                buf.extend_from_slice(&chunk);
                while buf.len() >= part_size {
                    let part = buf.split_to(part_size).freeze();
                    let at = before.parts.len() + chunk_out.new_parts.len();
                    chunk_out
                        .new_parts
                        .push(self.put_part(upload, &mut resume, at, part).await?);
                }
            }
            if chunk_out.len == 0 || buf.is_empty() {
                return Ok(());
            }
            if buf.len() as u64 >= self.min_part.max(1) {
                let at = before.parts.len() + chunk_out.new_parts.len();
                let part = buf.split().freeze();
                chunk_out
                    .new_parts
                    .push(self.put_part(upload, &mut resume, at, part).await?);
            } else {
                let staged = Staged {
                    name: format!(
                        "staged-{:020}-{}",
                        offset + chunk_out.len,
                        UploadId::new_random()
                    ),
                    len: buf.len() as u64,
                };
                self.store
                    .put(
                        &self.path(&staged_key(upload, &staged.name)),
                        buf.split().freeze().into(),
                    )
                    .await?;
                resume.staged = Some(staged);
            }
            Ok(())
        }
        .await;
        chunk_out.resume = resume.to_bytes();
        if let Err(e) = written {
            // Give back what this chunk began; what it put into a multipart
            // upload that stands goes when that upload does.
            let after = before.advanced(&chunk_out);
            self.release_parts(upload, &after, before).await;
            return Err(e);
        }
        Ok(chunk_out)
    }

    /// Removes the staged object and aborts the multipart upload that
    /// `dropped` has and `kept` does not.
    pub(super) async fn release_parts(
        &self,
        upload: &UploadId,
        dropped: &UploadState,
        kept: &UploadState,
    ) {
        let (Ok(dropped), Ok(kept)) = (Resume::of(dropped), Resume::of(kept)) else {
            return;
        };
        if let Some(staged) = &dropped.staged
            && kept.staged.as_ref().map(|s| &s.name) != Some(&staged.name)
            && let Err(e) = self.delete(&staged_key(upload, &staged.name)).await
        {
            tracing::warn!(upload = %upload, error = %e, "could not remove a staged chunk");
        }
        if let Some(id) = &dropped.multipart
            && kept.multipart.as_ref() != Some(id)
        {
            self.abort_multipart(upload, id).await;
        }
    }

    /// Brings the session's bytes together as one object: the staged object
    /// alone, or the multipart upload completed with the staged tail as its
    /// last part. Safe to repeat: an object already assembled at `len` bytes
    /// is kept.
    pub(super) async fn assemble_parts(
        &self,
        upload: &UploadId,
        state: &UploadState,
        len: u64,
    ) -> Result<Assembled> {
        let resume = Resume::of(state)?;
        let Some(id) = resume
            .multipart
            .as_ref()
            .filter(|_| !state.parts.is_empty())
        else {
            if let Some(id) = &resume.multipart {
                self.abort_multipart(upload, id).await;
            }
            let at = resume.staged.as_ref().map(|s| staged_key(upload, &s.name));
            if at.is_none() && len > 0 {
                return Err(Error::Internal(format!(
                    "upload {upload} has {len} bytes but no parts"
                )));
            }
            return Ok(Assembled {
                at,
                closed: false,
                placed_whole: false,
            });
        };
        let key = assembled_key(upload);
        let assembled = Assembled {
            at: Some(key.clone()),
            closed: true,
            placed_whole: false,
        };
        if self.size(&key).await? == Some(len) {
            return Ok(assembled);
        }
        let path = self.path(&key);
        let mut parts: Vec<PartId> = state
            .parts
            .iter()
            .map(|(content_id, _)| PartId {
                content_id: content_id.clone(),
            })
            .collect();
        if let Some(staged) = &resume.staged {
            let tail = self.read_staged(upload, staged).await?;
            parts.push(
                self.multipart
                    .put_part(&path, id, parts.len(), tail.into())
                    .await?,
            );
        }
        self.multipart.complete_multipart(&path, id, parts).await?;
        Ok(assembled)
    }

    /// Gives up the session's multipart upload, if it has one; best effort.
    pub(super) async fn abort_parts(&self, upload: &UploadId, state: &UploadState) {
        if let Ok(Resume {
            multipart: Some(id),
            ..
        }) = Resume::of(state)
        {
            self.abort_multipart(upload, &id).await;
        }
    }

    async fn abort_multipart(&self, upload: &UploadId, id: &str) {
        let path = self.path(&assembled_key(upload));
        match self.multipart.abort_multipart(&path, &id.to_owned()).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => {
                tracing::warn!(upload = %upload, error = %e, "could not abort a multipart upload");
            }
        }
    }

    /// Uploads part number `at`, beginning the multipart upload if the
    /// session has none yet.
    async fn put_part(
        &self,
        upload: &UploadId,
        resume: &mut Resume,
        at: usize,
        data: Bytes,
    ) -> Result<(String, u64)> {
        let path = self.path(&assembled_key(upload));
        let id = match &resume.multipart {
            Some(id) => id.clone(),
            None => {
                let begun = self.multipart.create_multipart(&path).await?;
                resume.multipart = Some(begun.clone());
                begun
            }
        };
        let len = data.len() as u64;
        let part = self.multipart.put_part(&path, &id, at, data.into()).await?;
        Ok((part.content_id, len))
    }

    async fn read_staged(&self, upload: &UploadId, staged: &Staged) -> Result<Bytes> {
        let bytes = self
            .store
            .get(&self.path(&staged_key(upload, &staged.name)))
            .await?
            .bytes()
            .await?;
        if bytes.len() as u64 != staged.len {
            return Err(Error::Internal(format!(
                "upload {upload}: staged bytes are {} long, the session says {}",
                bytes.len(),
                staged.len
            )));
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_resume_state_is_no_bytes_and_others_round_trip() {
        assert!(Resume::default().to_bytes().is_empty());
        let r = Resume {
            multipart: Some("m-1".into()),
            staged: Some(Staged {
                name: "staged-1".into(),
                len: 5,
            }),
        };
        let state = UploadState {
            parts: Vec::new(),
            resume: r.to_bytes(),
        };
        assert_eq!(Resume::of(&state).ok(), Some(r.clone()));
        // What migration 0009 wrote for sessions begun before it.
        let migrated = |text: &str| {
            Resume::of(&UploadState {
                parts: Vec::new(),
                resume: text.as_bytes().to_vec(),
            })
            .ok()
        };
        assert_eq!(
            migrated(r#"{"multipart":"m-1","staged":{"name":"staged-1","len":5}}"#),
            Some(r)
        );
        assert_eq!(
            migrated(r#"{"multipart":"m-2","staged":null}"#).map(|r| r.multipart),
            Some(Some("m-2".into()))
        );
    }
}
