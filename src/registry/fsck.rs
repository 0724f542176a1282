//! `fsck`: re-hashes every stored blob and manifest, checks every reference,
//! tag, history row and lineage fact, SQLite's own integrity, and finds
//! objects nothing records. With `repair`, orphans are removed and corrupt
//! content is marked so that it is not served until it is pushed again.

use futures_util::StreamExt;
use serde::Serialize;
use sha2::Digest as _;

use super::Registry;
use crate::error::{Error, Result};
use crate::meta::IntegrityArea;
use crate::oci::{Algorithm, Digest};
use crate::storage::{Area, StorageKey};

const PAGE: usize = 256;

#[derive(Debug, Clone, Default, Serialize)]
pub struct FsckReport {
    pub checked: u64,
    /// Recorded content whose object is gone.
    pub missing: Vec<String>,
    /// Objects whose bytes do not hash to their digest.
    pub corrupt: Vec<String>,
    /// Objects (or upload directories) nothing records.
    pub orphaned: Vec<String>,
    /// Rows that point at nothing.
    pub dangling: Vec<String>,
    /// SQLite's integrity check.
    pub database: Vec<String>,
    pub repaired: bool,
}

impl FsckReport {
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty()
            && self.corrupt.is_empty()
            && self.orphaned.is_empty()
            && self.dangling.is_empty()
            && self.database.is_empty()
    }
}

enum Hashing {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl Registry {
    /// Checks everything; `progress(done, total)` is called as blobs are re-hashed.
    pub async fn fsck(
        &self,
        repair: bool,
        progress: &(dyn Fn(u64, u64) + Send + Sync),
    ) -> Result<FsckReport> {
        let mut report = FsckReport {
            repaired: repair,
            ..FsckReport::default()
        };
        let total = self.meta(|m: &IntegrityArea| m.contents_count()).await?;
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        let mut after: Option<String> = None;
        loop {
            let a = after.clone();
            let page = self
                .meta(move |m: &IntegrityArea| m.contents_page(a.as_deref(), PAGE))
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.0.to_string());
            let rehashed: Vec<_> = futures_util::stream::iter(page)
                .map(|(digest, size, _)| {
                    let registry = self.clone();
                    // A task each, so that every core hashes.
                    tokio::spawn(async move {
                        let found = registry.rehash(&digest).await;
                        (digest, size, found)
                    })
                })
                .buffered(workers)
                .collect()
                .await;
            for joined in rehashed {
                let (digest, size, found) =
                    joined.map_err(|e| Error::Internal(format!("fsck task: {e}")))?;
                match found? {
                    None => report.missing.push(digest.to_string()),
                    Some((actual, len)) if actual != digest || len != size => {
                        report.corrupt.push(digest.to_string());
                        if repair {
                            let d = digest.clone();
                            self.meta(move |m: &IntegrityArea| m.mark_corrupt(&d))
                                .await?;
                        }
                    }
                    Some(_) => {}
                }
                report.checked += 1;
                progress(report.checked, total);
            }
        }

        let mut orphans = Vec::new();
        for listed in self.blobs.list(Area::Blobs).await? {
            let known = match &listed.key {
                Some(StorageKey::Blob(d)) => {
                    let d = d.clone();
                    self.meta(move |m: &IntegrityArea| m.knows_content(&d))
                        .await?
                }
                _ => false,
            };
            if !known {
                orphans.push(listed);
            }
        }
        let sessions = self.meta(|m: &IntegrityArea| m.upload_ids()).await?;
        for listed in self.blobs.list(Area::Uploads).await? {
            let open = listed
                .key
                .as_ref()
                .and_then(StorageKey::upload)
                .is_some_and(|id| sessions.iter().any(|s| s == id.as_str()));
            if !open {
                orphans.push(listed);
            }
        }
        if repair {
            for listed in &orphans {
                self.blobs.delete_listed(listed).await?;
            }
        }
        report.orphaned = orphans.into_iter().map(|l| l.path).collect();
        report.dangling = self.meta(|m: &IntegrityArea| m.dangling()).await?;
        report.database = self.meta(|m: &IntegrityArea| m.database_check()).await?;
        Ok(report)
    }

    /// The digest (under the stored algorithm) and length of an object, or
    /// `None` if it is missing.
    async fn rehash(&self, digest: &Digest) -> Result<Option<(Digest, u64)>> {
        let mut stream = match self
            .blobs
            .read(&StorageKey::Blob(digest.clone()), None)
            .await
        {
            Ok(s) => s,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut h = match digest.algorithm() {
            Algorithm::Sha256 => Hashing::Sha256(sha2::Sha256::new()),
            Algorithm::Sha512 => Hashing::Sha512(sha2::Sha512::new()),
        };
        let mut len = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            len += chunk.len() as u64;
            match &mut h {
                Hashing::Sha256(s) => s.update(&chunk),
                Hashing::Sha512(s) => s.update(&chunk),
            }
        }
        let actual = match h {
            Hashing::Sha256(s) => Digest::from_output(Algorithm::Sha256, &s.finalize()),
            Hashing::Sha512(s) => Digest::from_output(Algorithm::Sha512, &s.finalize()),
        };
        Ok(Some((actual, len)))
    }
}
