//! Upload sessions: offset, running hash state and the stored parts.

use super::{
    Conn, Durability, Postgres, col, ensure_repo, now_ms, repo_column, to_i64, to_u64, values,
};
use crate::error::{Error, Result};
use crate::meta::{ChunkCommit, UploadMeta, UploadSession};
use crate::oci::{Digest, RepoName, UploadId};
use tokio_postgres::Row;

/// A new session (deferred: it goes with the commit).
fn insert_upload(
    tx: &mut Conn,
    id: &UploadId,
    repo: &RepoName,
    owner: Option<&str>,
    hash_state: &[u8],
) -> Result<()> {
    ensure_repo(tx, repo.as_str())?;
    tx.defer(
        "INSERT INTO uploads (id, repo, received, hash_state, created_at, updated_at, owner)
         VALUES ($1, $2, 0, $3, $4, $4, $5)",
        values![
            id.as_str().to_owned(),
            repo.as_str().to_owned(),
            hash_state.to_vec(),
            now_ms(),
            owner.map(str::to_owned),
        ],
    )
}

/// A query (for `WITH`) that says whether garbage collection is removing
/// digest `$1`: a write in the same statement does nothing while it is
/// (`WHERE NOT (SELECT b FROM busy)`). Tombstones change only under
/// `GC_LOCK` held exclusively, and upload-side writes hold it shared.
const UNLESS_COLLECTED: &str =
    "busy AS (SELECT EXISTS (SELECT 1 FROM gc_tombstones WHERE digest = $1) AS b)";

/// Two columns, after [`UNLESS_COLLECTED`]: whether `$1` is being
/// collected, and its size if its content is stored and sound.
const COLLECTED_AND_SIZE: &str =
    "(SELECT b FROM busy), (SELECT size FROM contents WHERE digest = $1 AND NOT corrupt)";

/// The size column `i` (of [`COLLECTED_AND_SIZE`], after the collected one)
/// of `row`: the stored size of `digest`, if any; `Busy` while garbage
/// collection is removing it (and the write was left out).
fn sound_size(row: &Row, i: usize, digest: &str) -> Result<Option<u64>> {
    if col::<bool>(row, i)? {
        return Err(Error::Busy(format!("{digest} is being garbage-collected")));
    }
    Ok(col::<Option<i64>>(row, i + 1)?.map(to_u64))
}

/// The session to mark: `$2`, and when `$3` names a repository, only if it
/// is that one's and holds no bytes yet.
const TO_MARK: &str = "id = $2 AND ($3::text IS NULL OR (repo = $3 AND received = 0))";

/// Marks session `id` as finishing `digest` (only if it belongs to
/// `empty_in` and holds no bytes yet, when given): `None` if there is no
/// such session, else the stored size of `digest`, if any. `Busy`, marking
/// nothing, while garbage collection removes `digest`. One statement, sent
/// with the commit: it decides itself what it changes. The conditions sit
/// in the UPDATE's own WHERE, so a session that a concurrent write changed
/// is checked again as it is after that write.
fn mark_finishing(
    tx: &mut Conn,
    id: &UploadId,
    digest: &Digest,
    empty_in: Option<&RepoName>,
) -> Result<Option<Option<u64>>> {
    let d = digest.to_string();
    let rows = tx.query_committing(
        &format!(
            "WITH {UNLESS_COLLECTED},
                  write AS (UPDATE uploads SET finishing = $1
                            WHERE {TO_MARK} AND NOT (SELECT b FROM busy)
                            RETURNING 1)
             SELECT EXISTS (SELECT 1 FROM write),
                    EXISTS (SELECT 1 FROM uploads WHERE {TO_MARK}),
                    {COLLECTED_AND_SIZE}"
        ),
        &[&d, &id.as_str(), &empty_in.map(RepoName::as_str)],
    )?;
    let row = one_row(&rows)?;
    let (marked, there, collected) = (
        col::<bool>(row, 0)?,
        col::<bool>(row, 1)?,
        col::<bool>(row, 2)?,
    );
    // Marked; or there but refused as being collected (`Busy`, below).
    // Anything else: the session is not (or no longer) one to mark.
    let answered = marked || (there && collected);
    if !answered {
        return Ok(None);
    }
    sound_size(row, 2, &d).map(Some)
}

/// The only row of a one-row answer.
fn one_row(rows: &[Row]) -> Result<&Row> {
    rows.first()
        .ok_or_else(|| Error::Internal("a one-row query answered none".into()))
}

impl UploadMeta for Postgres {
    fn create_upload(
        &self,
        id: &UploadId,
        repo: &RepoName,
        owner: Option<&str>,
        hash_state: &[u8],
    ) -> Result<()> {
        self.write_upload(Durability::Deferred, |tx| {
            insert_upload(tx, id, repo, owner, hash_state)
        })
    }

    /// One statement: the session and its parts as of one moment.
    fn upload(&self, id: &UploadId) -> Result<Option<UploadSession>> {
        self.read(|c| {
            let row = c.query_opt(
                "SELECT u.repo, u.received, u.hash_state, u.owner, u.storage_state,
                        COALESCE(ARRAY(SELECT p.name FROM upload_parts p
                                       WHERE p.upload_id = u.id ORDER BY p.seq), '{}'),
                        COALESCE(ARRAY(SELECT p.size FROM upload_parts p
                                       WHERE p.upload_id = u.id ORDER BY p.seq), '{}')
                 FROM uploads u WHERE u.id = $1",
                &[&id.as_str()],
            )?;
            let Some(row) = row else {
                return Ok(None);
            };
            let names: Vec<String> = col(&row, 5)?;
            let sizes: Vec<i64> = col(&row, 6)?;
            Ok(Some(UploadSession {
                repo: repo_column(col(&row, 0)?)?,
                offset: to_u64(col(&row, 1)?),
                hash_state: col(&row, 2)?,
                owner: col(&row, 3)?,
                storage_state: col(&row, 4)?,
                parts: names
                    .into_iter()
                    .zip(sizes.into_iter().map(to_u64))
                    .collect(),
            }))
        })
    }

    fn commit_chunk(
        &self,
        id: &UploadId,
        expected_offset: u64,
        chunk: &ChunkCommit<'_>,
    ) -> Result<bool> {
        self.write_upload(Durability::Synced, |tx| {
            let moved = tx.execute(
                "UPDATE uploads SET received = received + $3, hash_state = $4, updated_at = $5,
                        storage_state = $6
                 WHERE id = $1 AND received = $2",
                &[
                    &id.as_str(),
                    &to_i64(expected_offset),
                    &to_i64(chunk.len),
                    &chunk.hash_state,
                    &now_ms(),
                    &chunk.storage_state,
                ],
            )?;
            if moved == 0 {
                return Ok(false);
            }
            for (name, size) in chunk.new_parts {
                tx.defer(
                    "INSERT INTO upload_parts (upload_id, seq, name, size)
                     VALUES ($1, (SELECT COUNT(*) FROM upload_parts WHERE upload_id = $1), $2, $3)",
                    values![id.as_str().to_owned(), name.clone(), to_i64(*size)],
                )?;
            }
            Ok(true)
        })
    }

    fn begin_finish(&self, id: &UploadId, digest: &Digest) -> Result<Option<u64>> {
        self.write_upload(Durability::Deferred, |tx| {
            mark_finishing(tx, id, digest, None)?.ok_or(Error::BlobUploadUnknown)
        })
    }

    fn begin_finish_if_empty(
        &self,
        id: &UploadId,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Option<Option<u64>>> {
        self.write_upload(Durability::Deferred, |tx| {
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
        self.write_upload(Durability::Deferred, |tx| {
            ensure_repo(tx, repo.as_str())?;
            // One round trip: the repository, then the session (unless the
            // digest is being collected) with the commit.
            let rows = tx.query_committing(
                &format!(
                    "WITH {UNLESS_COLLECTED},
                          write AS (INSERT INTO uploads (id, repo, received, hash_state, created_at,
                                                         updated_at, owner, finishing)
                                    SELECT $2, $3, 0, $4, $5, $5, $6, $1
                                    WHERE NOT (SELECT b FROM busy))
                     SELECT {COLLECTED_AND_SIZE}"
                ),
                &[
                    &d,
                    &id.as_str(),
                    &repo.as_str(),
                    &hash_state,
                    &now_ms(),
                    &owner,
                ],
            )?;
            sound_size(one_row(&rows)?, 0, &d)
        })
    }

    /// One statement, sent with the commit: the session ends, and the blob
    /// is recorded in its repository, only if the session was there.
    fn finish_upload(&self, id: &UploadId, digest: &Digest, size: u64, stored: bool) -> Result<()> {
        let d = digest.to_string();
        self.write_upload(Durability::Synced, |tx| {
            let ended = tx.query_committing(
                "WITH session AS (DELETE FROM uploads WHERE id = $1 RETURNING repo),
                      content AS (INSERT INTO contents (digest, size, created_at)
                                  SELECT $2, $3, $4 FROM session
                                  ON CONFLICT (digest) DO UPDATE SET corrupt = false WHERE $5),
                      held AS (INSERT INTO repo_blobs (repo, digest, created_at)
                               SELECT repo, $2, $4 FROM session ON CONFLICT DO NOTHING)
                 SELECT 1 FROM session",
                &[&id.as_str(), &d, &to_i64(size), &now_ms(), &stored],
            )?;
            if ended.is_empty() {
                return Err(Error::BlobUploadUnknown);
            }
            Ok(())
        })
    }

    fn cancel_upload(&self, id: &UploadId) -> Result<bool> {
        self.write_upload(Durability::Synced, |tx| {
            Ok(tx.execute("DELETE FROM uploads WHERE id = $1", &[&id.as_str()])? > 0)
        })
    }
}
