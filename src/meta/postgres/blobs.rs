//! Which repository holds which blob.

use std::collections::BTreeMap;

use super::{Conn, Durability, Postgres, col, digest_column, ensure_repo, now_ms, to_u64, values};
use crate::error::Result;
use crate::meta::BlobMeta;
use crate::oci::{Digest, RepoName};

/// The size of a blob `repo` holds (and that is not marked corrupt).
pub(super) fn held_size(c: &mut Conn, repo: &str, digest: &str) -> Result<Option<u64>> {
    let row = c.query_opt(
        "SELECT c.size FROM repo_blobs r JOIN contents c ON c.digest = r.digest
         WHERE r.repo = $1 AND r.digest = $2 AND NOT c.corrupt",
        &[&repo, &digest],
    )?;
    row.map(|r| col::<i64>(&r, 0).map(to_u64)).transpose()
}

/// The blobs of `$2` that repository `$1` holds, with their sizes: a
/// look-up by key per digest asked (see the module's notes on plans).
pub(super) const HELD_SIZES: &str = "SELECT w.digest, h.size FROM unnest($2::text[]) AS w(digest)
     CROSS JOIN LATERAL (SELECT c.size FROM repo_blobs r JOIN contents c ON c.digest = r.digest
         WHERE r.repo = $1 AND r.digest = w.digest AND NOT c.corrupt LIMIT 1) h";

/// The sizes of those of `digests` that `repo` holds: one statement, read
/// outside a transaction with its generic plan.
pub(super) fn held_sizes(
    c: &mut Conn,
    repo: &str,
    digests: &[Digest],
) -> Result<BTreeMap<Digest, u64>> {
    if digests.is_empty() {
        return Ok(BTreeMap::new());
    }
    let wanted: Vec<String> = digests.iter().map(Digest::to_string).collect();
    c.query_generic(HELD_SIZES, &[&repo, &wanted])?
        .iter()
        .map(|r| Ok((digest_column(col(r, 0)?)?, to_u64(col::<i64>(r, 1)?))))
        .collect()
}

impl BlobMeta for Postgres {
    fn repo_blob(&self, repo: &RepoName, digest: &Digest) -> Result<Option<u64>> {
        self.read(|c| held_size(c, repo.as_str(), &digest.to_string()))
    }

    fn repo_blobs(&self, repo: &RepoName, digests: &[Digest]) -> Result<BTreeMap<Digest, u64>> {
        self.read(|c| held_sizes(c, repo.as_str(), digests))
    }

    fn repos_holding(&self, digest: &Digest, limit: usize) -> Result<Vec<RepoName>> {
        self.read(|c| {
            let rows = c.query(
                "SELECT repo FROM repo_blobs WHERE digest = $1 ORDER BY repo LIMIT $2",
                &[&digest.to_string(), &(limit as i64)],
            )?;
            Ok(rows
                .iter()
                .filter_map(|r| col::<String>(r, 0).ok())
                .filter_map(|n| RepoName::parse(&n).ok())
                .collect())
        })
    }

    fn mount_blob(&self, repo: &RepoName, digest: &Digest, from: &RepoName) -> Result<Option<u64>> {
        let d = digest.to_string();
        self.write_upload(Durability::Synced, |tx| {
            let Some(size) = held_size(tx, from.as_str(), &d)? else {
                return Ok(None);
            };
            ensure_repo(tx, repo.as_str())?;
            tx.defer(
                "INSERT INTO repo_blobs (repo, digest, created_at) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING",
                values![repo.as_str().to_owned(), d.clone(), now_ms()],
            )?;
            Ok(Some(size))
        })
    }

    fn blob_size(&self, digest: &Digest) -> Result<Option<u64>> {
        self.read(|c| {
            let row = c.query_opt(
                "SELECT size FROM contents WHERE digest = $1",
                &[&digest.to_string()],
            )?;
            row.map(|r| col::<i64>(&r, 0).map(to_u64)).transpose()
        })
    }

    fn unlink_blob(&self, repo: &RepoName, digest: &Digest) -> Result<bool> {
        let d = digest.to_string();
        self.write(|tx| {
            let n = tx.execute(
                "DELETE FROM repo_blobs WHERE repo = $1 AND digest = $2",
                &[&repo.as_str(), &d],
            )?;
            Ok(n > 0)
        })
    }
}
