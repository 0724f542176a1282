//! Which repository holds which blob.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, params};

use super::{Sqlite, ensure_repo, exec, now_ms, to_u64};
use crate::error::Result;
use crate::meta::BlobMeta;
use crate::oci::{Digest, RepoName};

/// The size of a blob `repo` holds (and that is not marked corrupt).
pub(super) fn held_size(c: &Connection, repo: &str, digest: &str) -> Result<Option<u64>> {
    let size = c
        .prepare_cached(
            "SELECT c.size FROM repo_blobs r JOIN contents c ON c.digest = r.digest
             WHERE r.repo = ?1 AND r.digest = ?2 AND c.corrupt = 0",
        )?
        .query_row(params![repo, digest], |r| r.get::<_, i64>(0))
        .optional()?;
    Ok(size.map(to_u64))
}

/// The sizes of those of `digests` that `repo` holds (a cached statement per
/// digest: in-process, a look-up costs microseconds).
pub(super) fn held_sizes(
    c: &Connection,
    repo: &str,
    digests: &[Digest],
) -> Result<BTreeMap<Digest, u64>> {
    let mut held = BTreeMap::new();
    for d in digests {
        if let Some(size) = held_size(c, repo, &d.to_string())? {
            held.insert(d.clone(), size);
        }
    }
    Ok(held)
}

impl BlobMeta for Sqlite {
    fn repo_blob(&self, repo: &RepoName, digest: &Digest) -> Result<Option<u64>> {
        self.read(|c| held_size(c, repo.as_str(), &digest.to_string()))
    }

    fn repo_blobs(&self, repo: &RepoName, digests: &[Digest]) -> Result<BTreeMap<Digest, u64>> {
        self.read(|c| held_sizes(c, repo.as_str(), digests))
    }

    fn repos_holding(&self, digest: &Digest, limit: usize) -> Result<Vec<RepoName>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT repo FROM repo_blobs WHERE digest = ?1 ORDER BY repo LIMIT ?2",
            )?;
            let names = stmt
                .query_map(params![digest.to_string(), limit as i64], |r| {
                    r.get::<_, String>(0)
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(names
                .iter()
                .filter_map(|n| RepoName::parse(n).ok())
                .collect())
        })
    }

    fn mount_blob(&self, repo: &RepoName, digest: &Digest, from: &RepoName) -> Result<Option<u64>> {
        self.write(|tx| {
            let Some(size) = held_size(tx, from.as_str(), &digest.to_string())? else {
                return Ok(None);
            };
            ensure_repo(tx, repo.as_str())?;
            exec(
                tx,
                "INSERT OR IGNORE INTO repo_blobs (repo, digest, created_at) VALUES (?1, ?2, ?3)",
                params![repo.as_str(), digest.to_string(), now_ms()],
            )?;
            Ok(Some(size))
        })
    }

    fn blob_size(&self, digest: &Digest) -> Result<Option<u64>> {
        self.read(|c| {
            let size = c
                .prepare_cached("SELECT size FROM contents WHERE digest = ?1")?
                .query_row(params![digest.to_string()], |r| r.get::<_, i64>(0))
                .optional()?;
            Ok(size.map(to_u64))
        })
    }

    fn unlink_blob(&self, repo: &RepoName, digest: &Digest) -> Result<bool> {
        self.write(|tx| {
            let n = exec(
                tx,
                "DELETE FROM repo_blobs WHERE repo = ?1 AND digest = ?2",
                params![repo.as_str(), digest.to_string()],
            )?;
            Ok(n > 0)
        })
    }
}
