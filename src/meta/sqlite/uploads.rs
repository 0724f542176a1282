//! Upload sessions: offset, running hash state and the stored parts.

use rusqlite::{OptionalExtension, params};

use rusqlite::Connection;

use super::{Durability, Sqlite, ensure_repo, exec, now_ms, to_i64, to_u64};
use crate::error::{Error, Result};
use crate::meta::{ChunkCommit, UploadMeta, UploadSession};
use crate::oci::{Digest, RepoName, UploadId};

/// A new session, optionally already finishing a digest.
fn insert_upload(
    tx: &Connection,
    id: &UploadId,
    repo: &RepoName,
    owner: Option<&str>,
    hash_state: &[u8],
    finishing: Option<&str>,
) -> Result<()> {
    ensure_repo(tx, repo.as_str())?;
    tx.prepare_cached(
        "INSERT INTO uploads (id, repo, offset, hash_state, created_at, updated_at, owner, finishing)
         VALUES (?1, ?2, 0, ?3, ?4, ?4, ?5, ?6)",
    )?
    .execute(params![
        id.as_str(),
        repo.as_str(),
        hash_state,
        now_ms(),
        owner,
        finishing
    ])?;
    Ok(())
}

/// `Busy` while garbage collection is removing `digest`.
fn refuse_if_collecting(tx: &Connection, digest: &str) -> Result<()> {
    if tx
        .prepare_cached("SELECT 1 FROM gc_tombstones WHERE digest = ?1")?
        .exists(params![digest])?
    {
        return Err(Error::Busy(format!("{digest} is being garbage-collected")));
    }
    Ok(())
}

/// The size of `digest` if its content is stored and sound.
fn sound_size(tx: &Connection, digest: &str) -> Result<Option<u64>> {
    let size: Option<i64> = tx
        .prepare_cached("SELECT size FROM contents WHERE digest = ?1 AND corrupt = 0")?
        .query_row(params![digest], |r| r.get(0))
        .optional()?;
    Ok(size.map(to_u64))
}

/// Marks session `id` as finishing `digest` (only if it belongs to
/// `empty_in` and holds no bytes yet, when given): `None` if no session was
/// marked, else the stored size of `digest`, if any. `Busy` while garbage
/// collection removes `digest` (the mark is then rolled back with the write).
fn mark_finishing(
    tx: &Connection,
    id: &UploadId,
    digest: &Digest,
    empty_in: Option<&RepoName>,
) -> Result<Option<Option<u64>>> {
    let d = digest.to_string();
    let n = exec(
        tx,
        "UPDATE uploads SET finishing = ?2
         WHERE id = ?1 AND (?3 IS NULL OR (repo = ?3 AND offset = 0))",
        params![id.as_str(), d, empty_in.map(RepoName::as_str)],
    )?;
    if n == 0 {
        return Ok(None);
    }
    refuse_if_collecting(tx, &d)?;
    sound_size(tx, &d).map(Some)
}

impl UploadMeta for Sqlite {
    fn create_upload(
        &self,
        id: &UploadId,
        repo: &RepoName,
        owner: Option<&str>,
        hash_state: &[u8],
    ) -> Result<()> {
        self.write_with(Durability::Deferred, |tx| {
            insert_upload(tx, id, repo, owner, hash_state, None)
        })
    }

    fn upload(&self, id: &UploadId) -> Result<Option<UploadSession>> {
        self.read(|c| {
            let row = c
                .prepare_cached(
                    "SELECT repo, offset, hash_state, owner, storage_state
                     FROM uploads WHERE id = ?1",
                )?
                .query_row(params![id.as_str()], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, Vec<u8>>(2)?,
                        r.get::<_, Option<String>>(3)?,
                        r.get::<_, Vec<u8>>(4)?,
                    ))
                })
                .optional()?;
            let Some((repo, offset, hash_state, owner, storage_state)) = row else {
                return Ok(None);
            };
            let parts = c
                .prepare_cached(
                    "SELECT name, size FROM upload_parts WHERE upload_id = ?1 ORDER BY seq",
                )?
                .query_map(params![id.as_str()], |r| {
                    Ok((r.get::<_, String>(0)?, to_u64(r.get::<_, i64>(1)?)))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            let repo = RepoName::parse(&repo).map_err(|_| {
                Error::Internal(format!("corrupt repository name in database: {repo}"))
            })?;
            Ok(Some(UploadSession {
                repo,
                owner,
                offset: to_u64(offset),
                hash_state,
                parts,
                storage_state,
            }))
        })
    }

    fn commit_chunk(
        &self,
        id: &UploadId,
        expected_offset: u64,
        chunk: &ChunkCommit<'_>,
    ) -> Result<bool> {
        self.write(|tx| {
            let moved = exec(
                tx,
                "UPDATE uploads SET offset = offset + ?3, hash_state = ?4, updated_at = ?5,
                        storage_state = ?6
                 WHERE id = ?1 AND offset = ?2",
                params![
                    id.as_str(),
                    to_i64(expected_offset),
                    to_i64(chunk.len),
                    chunk.hash_state,
                    now_ms(),
                    chunk.storage_state,
                ],
            )?;
            if moved == 0 {
                return Ok(false);
            }
            let mut insert = tx.prepare_cached(
                "INSERT INTO upload_parts (upload_id, seq, name, size)
                 VALUES (?1, (SELECT COUNT(*) FROM upload_parts WHERE upload_id = ?1), ?2, ?3)",
            )?;
            for (name, size) in chunk.new_parts {
                insert.execute(params![id.as_str(), name, to_i64(*size)])?;
            }
            Ok(true)
        })
    }

    fn begin_finish(&self, id: &UploadId, digest: &Digest) -> Result<Option<u64>> {
        self.write_with(Durability::Deferred, |tx| {
            mark_finishing(tx, id, digest, None)?.ok_or(Error::BlobUploadUnknown)
        })
    }

    fn begin_finish_if_empty(
        &self,
        id: &UploadId,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Option<Option<u64>>> {
        self.write_with(Durability::Deferred, |tx| {
            mark_finishing(tx, id, digest, Some(repo))
        })
    }

    fn start_single_push(
        &self,
        id: &UploadId,
        repo: &RepoName,
        owner: Option<&str>,
        hash_state: &[u8],
        digest: &Digest,
    ) -> Result<Option<u64>> {
        let d = digest.to_string();
        self.write_with(Durability::Deferred, |tx| {
            refuse_if_collecting(tx, &d)?;
            insert_upload(tx, id, repo, owner, hash_state, Some(&d))?;
            sound_size(tx, &d)
        })
    }

    fn finish_upload(&self, id: &UploadId, digest: &Digest, size: u64, stored: bool) -> Result<()> {
        self.write(|tx| {
            let repo: Option<String> = tx
                .query_row(
                    "SELECT repo FROM uploads WHERE id = ?1",
                    params![id.as_str()],
                    |r| r.get(0),
                )
                .optional()?;
            let repo = repo.ok_or(Error::BlobUploadUnknown)?;
            let now = now_ms();
            exec(
                tx,
                "INSERT INTO contents (digest, size, created_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (digest) DO UPDATE SET corrupt = 0 WHERE ?4",
                params![digest.to_string(), to_i64(size), now, stored],
            )?;
            exec(
                tx,
                "INSERT OR IGNORE INTO repo_blobs (repo, digest, created_at) VALUES (?1, ?2, ?3)",
                params![repo, digest.to_string(), now],
            )?;
            exec(
                tx,
                "DELETE FROM uploads WHERE id = ?1",
                params![id.as_str()],
            )?;
            Ok(())
        })
    }

    fn cancel_upload(&self, id: &UploadId) -> Result<bool> {
        self.write(|tx| {
            Ok(exec(
                tx,
                "DELETE FROM uploads WHERE id = ?1",
                params![id.as_str()],
            )? > 0)
        })
    }
}
