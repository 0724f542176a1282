//! Reading and deleting blobs through a repository.

use std::ops::Range;

use bytes::Bytes;
use futures_util::stream::BoxStream;

use super::Registry;
use crate::error::{Error, Result};
use crate::meta::BlobArea;
use crate::oci::{Digest, RepoName};
use crate::storage::StorageKey;

/// A single byte range as a client asked for it (`Range: bytes=...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `start-` or `start-end` (inclusive).
    From { start: u64, end: Option<u64> },
    /// `-n`: the last n bytes.
    Suffix(u64),
}

impl ByteRange {
    /// Parses one `bytes=` range; `None` for anything else (several ranges,
    /// other units), which a server may answer with the whole content.
    pub fn parse(header: &str) -> Option<ByteRange> {
        let spec = header.trim().strip_prefix("bytes=")?.trim();
        if spec.contains(',') {
            return None;
        }
        let (a, b) = spec.split_once('-')?;
        if a.is_empty() {
            return b.parse().ok().map(ByteRange::Suffix);
        }
        let start = a.parse().ok()?;
        let end = if b.is_empty() {
            None
        } else {
            Some(b.parse().ok()?)
        };
        if end.is_some_and(|e| e < start) {
            return None;
        }
        Some(ByteRange::From { start, end })
    }

    /// The half-open range within a blob of `size` bytes, or 416.
    pub fn resolve(self, size: u64) -> Result<Range<u64>> {
        let range = match self {
            ByteRange::From { start, end } => {
                start..end.map_or(size, |e| e.saturating_add(1).min(size))
            }
            ByteRange::Suffix(n) => size.saturating_sub(n)..size,
        };
        if range.start >= range.end {
            return Err(Error::RangeNotSatisfiable { size });
        }
        Ok(range)
    }
}

/// A blob being served: its total size, the part sent, and the bytes.
pub struct BlobRead {
    pub size: u64,
    /// Set when a range was asked for and is being served (206).
    pub range: Option<Range<u64>>,
    pub body: BoxStream<'static, Result<Bytes>>,
}

impl Registry {
    /// The size of a blob `repo` holds; `BLOB_UNKNOWN` otherwise.
    pub async fn stat_blob(&self, repo: &RepoName, digest: &Digest) -> Result<u64> {
        let (r, d) = (repo.clone(), digest.clone());
        self.meta(move |m: &BlobArea| m.repo_blob(&r, &d))
            .await?
            .ok_or_else(|| Error::BlobUnknown(digest.clone()))
    }

    /// Opens a blob `repo` holds for reading, whole or a range of it.
    pub async fn read_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        range: Option<ByteRange>,
    ) -> Result<BlobRead> {
        let size = self.stat_blob(repo, digest).await?;
        let range = range.map(|r| r.resolve(size)).transpose()?;
        let key = StorageKey::Blob(digest.clone());
        let body = match (&range, size) {
            // An empty blob has no object-store range to ask for.
            (None, 0) => {
                Box::pin(futures_util::stream::empty()) as BoxStream<'static, Result<Bytes>>
            }
            _ => self.blobs.read(&key, range.clone()).await.map_err(|e| {
                if e.is_not_found() {
                    Error::Internal(format!(
                        "blob {digest} is recorded but missing from storage"
                    ))
                } else {
                    e
                }
            })?,
        };
        Ok(BlobRead { size, range, body })
    }

    /// A presigned URL to read a blob `repo` holds, when the store redirects
    /// reads (`[storage] redirect`); `None` to serve the bytes here.
    pub async fn blob_redirect(&self, repo: &RepoName, digest: &Digest) -> Result<Option<String>> {
        if !self.blobs.redirects() {
            return Ok(None);
        }
        self.stat_blob(repo, digest).await?;
        self.blobs
            .redirect_url(&StorageKey::Blob(digest.clone()))
            .await
    }

    /// Stops `repo` from serving a blob. The bytes stay until garbage collection
    /// finds no repository or manifest that needs them.
    pub async fn delete_blob(&self, repo: &RepoName, digest: &Digest) -> Result<()> {
        self.ensure_deletes_enabled()?;
        let (r, d) = (repo.clone(), digest.clone());
        if self.meta(move |m: &BlobArea| m.unlink_blob(&r, &d)).await? {
            Ok(())
        } else {
            Err(Error::BlobUnknown(digest.clone()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_and_resolve_like_http() {
        let cases = [
            ("bytes=0-9", 100, Some(0..10)),
            ("bytes=90-", 100, Some(90..100)),
            ("bytes=90-200", 100, Some(90..100)),
            ("bytes=-10", 100, Some(90..100)),
            ("bytes=-200", 100, Some(0..100)),
        ];
        for (h, size, want) in cases {
            let got = ByteRange::parse(h).and_then(|r| r.resolve(size).ok());
            assert_eq!(got, want, "{h}");
        }
        for h in ["bytes=5-1", "items=0-1", "bytes=0-1,3-4", "bytes=a-b"] {
            assert_eq!(ByteRange::parse(h), None, "{h}");
        }
        assert!(
            ByteRange::parse("bytes=100-")
                .map(|r| r.resolve(100))
                .is_some_and(|r| r.is_err())
        );
    }
}
