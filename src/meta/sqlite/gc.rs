//! Garbage collection and integrity checks over the metadata.

use rusqlite::{Connection, params};

use super::{Sqlite, digest_column, json_list, to_u64};
use crate::error::Result;
use crate::meta::{GcMeta, GcPolicy, IntegrityMeta, References, SweepCursor, taken};
use crate::oci::{Digest, UploadId};

/// Manifests that nothing keeps: untagged, not an index entry, not a referrer
/// of a manifest still here, not a lineage target, not in a tag's recent
/// history, and older than the grace period.
const UNNEEDED_MANIFESTS: &str = "
SELECT m.repo, m.digest FROM manifests m
WHERE m.created_at < ?1
  AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repo = m.repo AND t.digest = m.digest)
  AND NOT EXISTS (SELECT 1 FROM manifest_refs r
                  WHERE r.repo = m.repo AND r.child = m.digest AND r.kind = 'manifest')
  AND NOT (m.subject IS NOT NULL AND EXISTS
           (SELECT 1 FROM manifests s WHERE s.repo = m.repo AND s.digest = m.subject))
  AND NOT EXISTS (SELECT 1 FROM lineage l WHERE l.target = m.digest)
  AND NOT EXISTS (
      SELECT 1 FROM (
          SELECT h.old_digest AS a, h.new_digest AS b,
                 ROW_NUMBER() OVER (PARTITION BY h.tag ORDER BY h.id DESC) AS age
          FROM tag_history h WHERE h.repo = m.repo
      ) recent
      WHERE recent.age <= ?2 AND (recent.a = m.digest OR recent.b = m.digest))
ORDER BY m.created_at
LIMIT ?3";

/// What keeps content apart from manifests' references (`?1`: the grace
/// period's cutoff): being a manifest, a lineage target, an upload's
/// finishing digest, or young, or linked to a repository lately.
macro_rules! unneeded_content {
    () => {
        "c.created_at < ?1
  AND NOT EXISTS (SELECT 1 FROM manifests m WHERE m.digest = c.digest)
  AND NOT EXISTS (SELECT 1 FROM lineage l WHERE l.target = c.digest)
  AND NOT EXISTS (SELECT 1 FROM uploads u WHERE u.finishing = c.digest)
  AND NOT EXISTS (SELECT 1 FROM repo_blobs b WHERE b.digest = c.digest AND b.created_at >= ?1)"
    };
}

/// A page of contents in digest order after `?3`, each with whether only a
/// reference may keep it (SQLite probes the indexes row by row).
const CONTENT_CANDIDATES: &str = concat!(
    "SELECT c.digest, c.size, (",
    unneeded_content!(),
    ") FROM contents c WHERE c.digest > ?3 ORDER BY c.digest LIMIT ?2"
);

/// Which of the candidates (`?2`, a JSON array) nothing needs now: their
/// checks again, and no manifest pushed after event `?3` points at them.
const STILL_UNNEEDED: &str = concat!(
    "SELECT c.digest, c.size FROM contents c
WHERE c.digest IN (SELECT value FROM json_each(?2)) AND ",
    unneeded_content!(),
    "
  AND c.digest NOT IN (
      SELECT r.child FROM events e
      JOIN manifest_refs r ON r.repo = e.repo AND r.manifest = e.digest
      WHERE e.id > ?3 AND e.action = 'push')"
);

fn delete_content(tx: &Connection, digest: &str, now: i64) -> Result<()> {
    tx.execute("DELETE FROM repo_blobs WHERE digest = ?1", params![digest])?;
    tx.execute("DELETE FROM contents WHERE digest = ?1", params![digest])?;
    tx.execute(
        "INSERT OR REPLACE INTO gc_tombstones (digest, at) VALUES (?1, ?2)",
        params![digest, now],
    )?;
    Ok(())
}

impl GcMeta for Sqlite {
    fn tombstones(&self) -> Result<Vec<Digest>> {
        self.read(|c| {
            let rows = c
                .prepare_cached("SELECT digest FROM gc_tombstones ORDER BY at")?
                .query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter().map(digest_column).collect()
        })
    }

    fn clear_tombstones(&self, digests: &[Digest]) -> Result<()> {
        self.write(|tx| {
            let mut stmt = tx.prepare_cached("DELETE FROM gc_tombstones WHERE digest = ?1")?;
            for d in digests {
                stmt.execute(params![d.to_string()])?;
            }
            Ok(())
        })
    }

    fn sweep_uploads(
        &self,
        cutoff_ms: i64,
        batch: usize,
        dry_run: bool,
    ) -> Result<Vec<(UploadId, Vec<u8>)>> {
        self.write(|tx| {
            let rows = tx
                .prepare_cached(
                    "SELECT id, storage_state FROM uploads WHERE updated_at < ?1
                     ORDER BY updated_at LIMIT ?2",
                )?
                .query_map(params![cutoff_ms, batch as i64], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            if !dry_run {
                let mut del = tx.prepare_cached("DELETE FROM uploads WHERE id = ?1")?;
                for (id, _) in &rows {
                    del.execute(params![id])?;
                }
            }
            Ok(rows
                .into_iter()
                .filter_map(|(i, m)| UploadId::parse(&i).ok().map(|i| (i, m)))
                .collect())
        })
    }

    fn sweep_manifests(
        &self,
        now_ms: i64,
        policy: &GcPolicy,
        dry_run: bool,
    ) -> Result<Vec<(String, Digest)>> {
        if !policy.delete_untagged {
            return Ok(Vec::new());
        }
        self.write(|tx| {
            let rows = tx
                .prepare_cached(UNNEEDED_MANIFESTS)?
                .query_map(
                    params![
                        now_ms - policy.grace_ms,
                        policy.keep_history as i64,
                        policy.batch as i64
                    ],
                    |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
                )?
                .collect::<Result<Vec<_>, _>>()?;
            if !dry_run {
                let mut lineage =
                    tx.prepare_cached("DELETE FROM lineage WHERE repo = ?1 AND model = ?2")?;
                let mut manifest =
                    tx.prepare_cached("DELETE FROM manifests WHERE repo = ?1 AND digest = ?2")?;
                for (repo, digest) in &rows {
                    lineage.execute(params![repo, digest])?;
                    manifest.execute(params![repo, digest])?;
                }
            }
            rows.into_iter()
                .map(|(repo, d)| Ok((repo, digest_column(d)?)))
                .collect()
        })
    }

    fn references(&self) -> Result<References> {
        let after: i64 = self.read(|c| {
            Ok(c.query_row("SELECT COALESCE(MAX(id), 0) FROM events", [], |r| r.get(0))?)
        })?;
        References::read(after, |add| {
            self.read(|c| {
                let mut stmt = c.prepare("SELECT child FROM manifest_refs")?;
                let mut rows = stmt.query([])?;
                while let Some(row) = rows.next()? {
                    add(row.get_ref(0)?.as_str().map_err(rusqlite::Error::from)?);
                }
                Ok(())
            })
        })
    }

    fn content_candidates(
        &self,
        now_ms: i64,
        policy: &GcPolicy,
        from: &mut SweepCursor,
        n: usize,
    ) -> Result<Vec<(String, u64, bool)>> {
        let rows = self.read(|c| {
            Ok(c.prepare_cached(CONTENT_CANDIDATES)?
                .query_map(
                    params![now_ms - policy.grace_ms, n as i64, from.digest],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )?
                .collect::<Result<Vec<_>, _>>()?)
        })?;
        Ok(taken(rows, from))
    }

    fn sweep_contents(
        &self,
        now_ms: i64,
        policy: &GcPolicy,
        digests: &[String],
        after_event: i64,
    ) -> Result<Vec<(Digest, u64)>> {
        let candidates = json_list(digests)?;
        let rows = self.write(|tx| {
            let rows = tx
                .prepare_cached(STILL_UNNEEDED)?
                .query_map(
                    params![now_ms - policy.grace_ms, candidates, after_event],
                    |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)),
                )?
                .collect::<Result<Vec<_>, _>>()?;
            for (digest, _) in &rows {
                delete_content(tx, digest, now_ms)?;
            }
            Ok(rows)
        })?;
        rows.into_iter()
            .map(|(d, size)| Ok((digest_column(d)?, to_u64(size))))
            .collect()
    }
}

impl IntegrityMeta for Sqlite {
    fn contents_page(&self, after: Option<&str>, n: usize) -> Result<Vec<(Digest, u64, bool)>> {
        self.read(|c| {
            let rows = c
                .prepare_cached("SELECT digest, size, corrupt FROM contents WHERE digest > ?1 ORDER BY digest LIMIT ?2")?
                .query_map(params![after.unwrap_or(""), n as i64], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, bool>(2)?))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter()
                .map(|(d, size, corrupt)| Ok((digest_column(d)?, to_u64(size), corrupt)))
                .collect()
        })
    }

    fn contents_count(&self) -> Result<u64> {
        self.read(|c| {
            Ok(to_u64(c.query_row(
                "SELECT COUNT(*) FROM contents",
                [],
                |r| r.get(0),
            )?))
        })
    }

    fn mark_corrupt(&self, digest: &Digest) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE contents SET corrupt = 1 WHERE digest = ?1",
                params![digest.to_string()],
            )?;
            Ok(())
        })
    }

    fn dangling(&self) -> Result<Vec<String>> {
        let checks = [
            (
                "manifest without stored content",
                "SELECT repo || '@' || digest FROM manifests m WHERE NOT EXISTS (SELECT 1 FROM contents c WHERE c.digest = m.digest)",
            ),
            (
                "blob reference to missing content",
                "SELECT repo || '@' || manifest || ' -> ' || child FROM manifest_refs r WHERE kind = 'blob'
                 AND NOT EXISTS (SELECT 1 FROM contents c WHERE c.digest = r.child)",
            ),
            (
                "index entry missing from its repository",
                "SELECT repo || '@' || manifest || ' -> ' || child FROM manifest_refs r WHERE kind = 'manifest'
                 AND NOT EXISTS (SELECT 1 FROM manifests m WHERE m.repo = r.repo AND m.digest = r.child)",
            ),
            (
                "tag pointing at no manifest",
                "SELECT repo || ':' || name FROM tags t WHERE NOT EXISTS
                 (SELECT 1 FROM manifests m WHERE m.repo = t.repo AND m.digest = t.digest)",
            ),
            (
                "repository link to missing content",
                "SELECT repo || '@' || digest FROM repo_blobs b WHERE NOT EXISTS (SELECT 1 FROM contents c WHERE c.digest = b.digest)",
            ),
            (
                "lineage fact about a missing model",
                "SELECT repo || '@' || model FROM lineage l WHERE NOT EXISTS
                 (SELECT 1 FROM manifests m WHERE m.repo = l.repo AND m.digest = l.model)",
            ),
            (
                "history row with a malformed digest",
                "SELECT repo || ':' || tag || ' #' || id FROM tag_history
                 WHERE (new_digest IS NOT NULL AND new_digest NOT GLOB 'sha[25][51]*:*')
                    OR (old_digest IS NOT NULL AND old_digest NOT GLOB 'sha[25][51]*:*')",
            ),
        ];
        self.read(|c| {
            let mut problems = Vec::new();
            for (what, sql) in checks {
                let rows = c
                    .prepare(sql)?
                    .query_map([], |r| r.get::<_, String>(0))?
                    .collect::<Result<Vec<_>, _>>()?;
                problems.extend(rows.into_iter().map(|r| format!("{what}: {r}")));
            }
            Ok(problems)
        })
    }

    fn database_check(&self) -> Result<Vec<String>> {
        self.read(|c| {
            let rows = c
                .prepare("PRAGMA integrity_check")?
                .query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows.into_iter().filter(|r| r != "ok").collect())
        })
    }

    fn probe_write(&self) -> Result<()> {
        // Setting the schema version to itself writes the header page.
        self.write_with(super::Durability::Deferred, |c| {
            let version: i64 = c.pragma_query_value(None, "user_version", |r| r.get(0))?;
            c.pragma_update(None, "user_version", version)?;
            Ok(())
        })
    }

    fn upload_ids(&self) -> Result<Vec<String>> {
        self.read(|c| {
            Ok(c.prepare_cached("SELECT id FROM uploads")?
                .query_map([], |r| r.get(0))?
                .collect::<Result<Vec<String>, _>>()?)
        })
    }

    fn knows_content(&self, digest: &Digest) -> Result<bool> {
        let d = digest.to_string();
        self.read(|c| {
            Ok(
                c.prepare_cached("SELECT 1 FROM contents WHERE digest = ?1")?
                    .exists(params![d])?
                    || c.prepare_cached("SELECT 1 FROM gc_tombstones WHERE digest = ?1")?
                        .exists(params![d])?
                    || c.prepare_cached("SELECT 1 FROM uploads WHERE finishing = ?1")?
                        .exists(params![d])?,
            )
        })
    }
}
