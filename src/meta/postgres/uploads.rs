//! Upload sessions: offset, running hash state and the stored parts.

use super::{
    Conn, Durability, Postgres, col, ensure_repo, now_ms, repo_column, to_i64, to_u64, values,
};
use crate::error::{Error, Result};
use crate::meta::{ChunkCommit, UploadMeta, UploadSession};
use crate::oci::{Digest, RepoName, UploadId};
use tokio_postgres::Row;

/// A new session, optionally already finishing a digest.
fn insert_upload(
    tx: &mut Conn,
    id: &UploadId,
    repo: &RepoName,
    owner: Option<&str>,
    hash_state: &[u8],
    finishing: Option<&str>,
) -> Result<()> {
    ensure_repo(tx, repo.as_str())?;
    tx.defer(
        "INSERT INTO uploads (id, repo, received, hash_state, created_at, updated_at, owner, finishing)
         VALUES ($1, $2, 0, $3, $4, $4, $5, $6)",
        values![
            id.as_str().to_owned(),
            repo.as_str().to_owned(),
            hash_state.to_vec(),
            now_ms(),
            owner.map(str::to_owned),
            finishing.map(str::to_owned),
        ],
    )
}

/// Whether garbage collection is removing `$1`, and its size if its
/// content is stored and sound.
const SOUND_SIZE: &str = "SELECT EXISTS (SELECT 1 FROM gc_tombstones WHERE digest = $1),
        (SELECT size FROM contents WHERE digest = $1 AND NOT corrupt)";

/// [`SOUND_SIZE`]'s answer for `digest`: its size if stored and sound;
/// `Busy` while garbage collection is removing it.
fn sound_size(row: &Row, digest: &str) -> Result<Option<u64>> {
    if col::<bool>(row, 0)? {
        return Err(Error::Busy(format!("{digest} is being garbage-collected")));
    }
    Ok(col::<Option<i64>>(row, 1)?.map(to_u64))
}

/// Marks session `id` as finishing `digest` (only if it belongs to
/// `empty_in` and holds no bytes yet, when given): `None` if no session was
/// marked, else the stored size of `digest`, if any. `Busy` while garbage
/// collection removes `digest` (the mark is then rolled back with the write).
/// One round trip: the mark, then [`SOUND_SIZE`].
fn mark_finishing(
    tx: &mut Conn,
    id: &UploadId,
    digest: &Digest,
    empty_in: Option<&RepoName>,
) -> Result<Option<Option<u64>>> {
    let d = digest.to_string();
    let answers = tx.query_all(&[
        (
            "UPDATE uploads SET finishing = $2
             WHERE id = $1 AND ($3::text IS NULL OR (repo = $3 AND received = 0))
             RETURNING 1",
            &[&id.as_str(), &d, &empty_in.map(RepoName::as_str)],
        ),
        (SOUND_SIZE, &[&d]),
    ])?;
    if answers[0].is_empty() {
        return Ok(None);
    }
    let row = answers[1]
        .first()
        .ok_or_else(|| Error::Internal("a one-row query answered none".into()))?;
    sound_size(row, &d).map(Some)
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
            insert_upload(tx, id, repo, owner, hash_state, None)
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
            insert_upload(tx, id, repo, owner, hash_state, Some(&d))?;
            // One round trip: the deferred inserts, then the check.
            let row = tx.query_one(SOUND_SIZE, &[&d])?;
            sound_size(&row, &d)
        })
    }

    fn finish_upload(&self, id: &UploadId, digest: &Digest, size: u64, stored: bool) -> Result<()> {
        let d = digest.to_string();
        self.write_upload(Durability::Synced, |tx| {
            let repo = tx
                .query_opt(
                    "DELETE FROM uploads WHERE id = $1 RETURNING repo",
                    &[&id.as_str()],
                )?
                .ok_or(Error::BlobUploadUnknown)?;
            let repo: String = col(&repo, 0)?;
            let now = now_ms();
            tx.defer(
                "INSERT INTO contents (digest, size, created_at) VALUES ($1, $2, $3)
                 ON CONFLICT (digest) DO UPDATE SET corrupt = false WHERE $4",
                values![d.clone(), to_i64(size), now, stored],
            )?;
            tx.defer(
                "INSERT INTO repo_blobs (repo, digest, created_at) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING",
                values![repo, d.clone(), now],
            )
        })
    }

    fn cancel_upload(&self, id: &UploadId) -> Result<bool> {
        self.write_upload(Durability::Synced, |tx| {
            Ok(tx.execute("DELETE FROM uploads WHERE id = $1", &[&id.as_str()])? > 0)
        })
    }
}
