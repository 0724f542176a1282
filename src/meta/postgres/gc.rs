//! Garbage collection and integrity checks over the metadata.

use super::{Durability, Postgres, col, digest_column, to_u64, values};
use crate::error::Result;
use crate::meta::{GcMeta, GcPolicy, IntegrityMeta, References, SweepCursor, taken};
use crate::oci::{Digest, UploadId};

/// Manifests that nothing keeps: untagged, not an index entry, not a referrer
/// of a manifest still here, not a lineage target, not in a tag's recent
/// history, and older than the grace period.
const UNNEEDED_MANIFESTS: &str = "
SELECT m.repo, m.digest FROM manifests m
WHERE m.created_at < $1
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
      WHERE recent.age <= $2 AND (recent.a = m.digest OR recent.b = m.digest))
ORDER BY m.created_at
LIMIT $3";

/// What keeps content `c` apart from manifests' references: being a
/// manifest, a lineage target, an upload's finishing digest, or linked to a
/// repository within the grace period (`$1`, its cutoff). Each is a lateral
/// look-up with LIMIT 1, so PostgreSQL probes its index by digest row by
/// row: as anti-joins it would hash or merge the whole of those tables for
/// every page or batch, which makes a collection quadratic in the store.
macro_rules! unneeded_content_joins {
    () => {
        "
LEFT JOIN LATERAL (SELECT 1 AS x FROM manifests m WHERE m.digest = c.digest LIMIT 1) m ON true
LEFT JOIN LATERAL (SELECT 1 AS x FROM lineage l WHERE l.target = c.digest LIMIT 1) l ON true
LEFT JOIN LATERAL (SELECT 1 AS x FROM uploads u WHERE u.finishing = c.digest LIMIT 1) u ON true
LEFT JOIN LATERAL (SELECT 1 AS x FROM repo_blobs b
                   WHERE b.digest = c.digest AND b.created_at >= $1 LIMIT 1) b ON true
"
    };
}

/// Whether content `c`, with [`unneeded_content_joins`], is kept by nothing
/// but references.
macro_rules! unneeded_content {
    () => {
        "c.created_at < $1 AND m.x IS NULL AND l.x IS NULL AND u.x IS NULL AND b.x IS NULL"
    };
}

/// A page of contents in digest order after `$3`, each with whether only a
/// reference may keep it.
const CONTENT_CANDIDATES: &str = concat!(
    "WITH c AS MATERIALIZED (
    SELECT digest, size, created_at FROM contents WHERE digest > $3 ORDER BY digest LIMIT $2)
SELECT c.digest, c.size, ",
    unneeded_content!(),
    " FROM c",
    unneeded_content_joins!(),
    "ORDER BY c.digest"
);

/// Which of the candidates (`$2`) nothing needs now: their checks again,
/// and no manifest pushed after event `$3` points at them (few: hashed once).
const STILL_UNNEEDED: &str = concat!(
    "SELECT c.digest, c.size FROM contents c",
    unneeded_content_joins!(),
    "WHERE c.digest = ANY($2) AND ",
    unneeded_content!(),
    "
  AND c.digest NOT IN (
      SELECT r.child FROM events e
      JOIN manifest_refs r ON r.repo = e.repo AND r.manifest = e.digest
      WHERE e.id > $3 AND e.action = 'push')"
);

/// References read per query: a page by the primary key, so that neither
/// side holds them all at once.
const REFERENCE_PAGE: i64 = 10_000;

impl GcMeta for Postgres {
    fn tombstones(&self) -> Result<Vec<Digest>> {
        self.read(|c| {
            c.query("SELECT digest FROM gc_tombstones ORDER BY at", &[])?
                .iter()
                .map(|r| digest_column(col(r, 0)?))
                .collect()
        })
    }

    fn clear_tombstones(&self, digests: &[Digest]) -> Result<()> {
        let digests: Vec<String> = digests.iter().map(Digest::to_string).collect();
        self.write_gc(|tx| {
            tx.execute(
                "DELETE FROM gc_tombstones WHERE digest = ANY($1)",
                &[&digests],
            )?;
            Ok(())
        })
    }

    fn sweep_uploads(
        &self,
        cutoff_ms: i64,
        batch: usize,
        dry_run: bool,
    ) -> Result<Vec<(UploadId, Vec<u8>)>> {
        self.write_gc(|tx| {
            let sql = if dry_run {
                "SELECT id, storage_state FROM uploads WHERE updated_at < $1
                 ORDER BY updated_at LIMIT $2"
            } else {
                "DELETE FROM uploads WHERE id IN
                     (SELECT id FROM uploads WHERE updated_at < $1 ORDER BY updated_at LIMIT $2)
                 RETURNING id, storage_state"
            };
            let rows = tx.query(sql, &[&cutoff_ms, &(batch as i64)])?;
            rows.iter()
                .map(|r| Ok((col::<String>(r, 0)?, col::<Vec<u8>>(r, 1)?)))
                .filter_map(|row: Result<_>| match row {
                    Ok((id, state)) => UploadId::parse(&id).ok().map(|id| Ok((id, state))),
                    Err(e) => Some(Err(e)),
                })
                .collect()
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
        self.write_gc(|tx| {
            let rows = tx.query(
                UNNEEDED_MANIFESTS,
                &[
                    &(now_ms - policy.grace_ms),
                    &(policy.keep_history as i64),
                    &(policy.batch as i64),
                ],
            )?;
            let mut found = Vec::with_capacity(rows.len());
            for r in &rows {
                let (repo, digest): (String, String) = (col(r, 0)?, col(r, 1)?);
                if !dry_run {
                    tx.defer(
                        "DELETE FROM lineage WHERE repo = $1 AND model = $2",
                        values![repo.clone(), digest.clone()],
                    )?;
                    tx.defer(
                        "DELETE FROM manifests WHERE repo = $1 AND digest = $2",
                        values![repo.clone(), digest.clone()],
                    )?;
                }
                found.push((repo, digest_column(digest)?));
            }
            Ok(found)
        })
    }

    fn references(&self) -> Result<References> {
        let after: i64 = self.read(|c| {
            col(
                &c.query_one("SELECT COALESCE(MAX(id), 0)::BIGINT FROM events", &[])?,
                0,
            )
        })?;
        // Pages are separate statements: a reference recorded meanwhile
        // behind the page is one of the pushes after `after`.
        References::read(after, |add| {
            let mut last = (String::new(), String::new(), String::new(), String::new());
            loop {
                let rows = self.read(|c| {
                    c.query(
                        "SELECT repo, manifest, kind, child FROM manifest_refs
                         WHERE (repo, manifest, kind, child) > ($1, $2, $3, $4)
                         ORDER BY repo, manifest, kind, child LIMIT $5",
                        &[&last.0, &last.1, &last.2, &last.3, &REFERENCE_PAGE],
                    )
                })?;
                for r in &rows {
                    add(col::<&str>(r, 3)?);
                }
                match rows.last() {
                    Some(r) if rows.len() as i64 == REFERENCE_PAGE => {
                        last = (col(r, 0)?, col(r, 1)?, col(r, 2)?, col(r, 3)?);
                    }
                    _ => return Ok(()),
                }
            }
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
            c.query(
                CONTENT_CANDIDATES,
                &[&(now_ms - policy.grace_ms), &(n as i64), &from.digest],
            )?
            .iter()
            .map(|r| Ok((col(r, 0)?, col(r, 1)?, col(r, 2)?)))
            .collect::<Result<Vec<_>>>()
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
        let found = self.write_gc(|tx| {
            let rows = tx.query(
                STILL_UNNEEDED,
                &[&(now_ms - policy.grace_ms), &digests, &after_event],
            )?;
            let mut found = Vec::with_capacity(rows.len());
            for r in &rows {
                found.push((col::<String>(r, 0)?, col::<i64>(r, 1)?));
            }
            if !found.is_empty() {
                let digests: Vec<String> = found.iter().map(|(d, _)| d.clone()).collect();
                tx.defer(
                    "DELETE FROM repo_blobs WHERE digest = ANY($1)",
                    values![digests.clone()],
                )?;
                tx.defer(
                    "DELETE FROM contents WHERE digest = ANY($1)",
                    values![digests.clone()],
                )?;
                tx.defer(
                    "INSERT INTO gc_tombstones (digest, at) SELECT d, $2 FROM unnest($1::text[]) d
                     ON CONFLICT (digest) DO UPDATE SET at = excluded.at",
                    values![digests, now_ms],
                )?;
            }
            Ok(found)
        })?;
        found
            .into_iter()
            .map(|(d, size)| Ok((digest_column(d)?, to_u64(size))))
            .collect()
    }
}

impl IntegrityMeta for Postgres {
    fn contents_page(&self, after: Option<&str>, n: usize) -> Result<Vec<(Digest, u64, bool)>> {
        self.read(|c| {
            c.query(
                "SELECT digest, size, corrupt FROM contents WHERE digest > $1
                 ORDER BY digest LIMIT $2",
                &[&after.unwrap_or(""), &(n as i64)],
            )?
            .iter()
            .map(|r| Ok((digest_column(col(r, 0)?)?, to_u64(col(r, 1)?), col(r, 2)?)))
            .collect()
        })
    }

    fn contents_count(&self) -> Result<u64> {
        self.read(|c| {
            let row = c.query_one("SELECT COUNT(*) FROM contents", &[])?;
            Ok(to_u64(col(&row, 0)?))
        })
    }

    fn mark_corrupt(&self, digest: &Digest) -> Result<()> {
        let d = digest.to_string();
        self.write_gc(|tx| {
            tx.execute(
                "UPDATE contents SET corrupt = true WHERE digest = $1",
                &[&d],
            )?;
            Ok(())
        })
    }

    fn dangling(&self) -> Result<Vec<String>> {
        let checks = [
            (
                "manifest without stored content",
                "SELECT repo || '@' || digest FROM manifests m
                 WHERE NOT EXISTS (SELECT 1 FROM contents c WHERE c.digest = m.digest)",
            ),
            (
                "blob reference to missing content",
                "SELECT repo || '@' || manifest || ' -> ' || child FROM manifest_refs r
                 WHERE kind = 'blob' AND NOT EXISTS (SELECT 1 FROM contents c WHERE c.digest = r.child)",
            ),
            (
                "index entry missing from its repository",
                "SELECT repo || '@' || manifest || ' -> ' || child FROM manifest_refs r
                 WHERE kind = 'manifest'
                   AND NOT EXISTS (SELECT 1 FROM manifests m WHERE m.repo = r.repo AND m.digest = r.child)",
            ),
            (
                "tag pointing at no manifest",
                "SELECT repo || ':' || name FROM tags t WHERE NOT EXISTS
                 (SELECT 1 FROM manifests m WHERE m.repo = t.repo AND m.digest = t.digest)",
            ),
            (
                "repository link to missing content",
                "SELECT repo || '@' || digest FROM repo_blobs b
                 WHERE NOT EXISTS (SELECT 1 FROM contents c WHERE c.digest = b.digest)",
            ),
            (
                "lineage fact about a missing model",
                "SELECT repo || '@' || model FROM lineage l WHERE NOT EXISTS
                 (SELECT 1 FROM manifests m WHERE m.repo = l.repo AND m.digest = l.model)",
            ),
            (
                "history row with a malformed digest",
                "SELECT repo || ':' || tag || ' #' || id FROM tag_history
                 WHERE new_digest !~ '^sha(256|512):' OR old_digest !~ '^sha(256|512):'",
            ),
        ];
        self.read(|c| {
            let mut problems = Vec::new();
            for (what, sql) in checks {
                for r in c.query(sql, &[])? {
                    problems.push(format!("{what}: {}", col::<String>(&r, 0)?));
                }
            }
            Ok(problems)
        })
    }

    /// PostgreSQL checks its own pages (checksums, WAL); nothing to add here.
    fn database_check(&self) -> Result<Vec<String>> {
        self.read(|c| {
            c.query_one("SELECT 1", &[])?;
            Ok(Vec::new())
        })
    }

    fn probe_write(&self) -> Result<()> {
        // Rewriting the newest schema row changes nothing but is a real write.
        self.write_with(Durability::Deferred, |tx| {
            tx.execute(
                "UPDATE berth_schema SET applied_at = applied_at
                 WHERE version = (SELECT MAX(version) FROM berth_schema)",
                &[],
            )?;
            Ok(())
        })
    }

    fn upload_ids(&self) -> Result<Vec<String>> {
        self.read(|c| {
            c.query("SELECT id FROM uploads", &[])?
                .iter()
                .map(|r| col(r, 0))
                .collect()
        })
    }

    fn knows_content(&self, digest: &Digest) -> Result<bool> {
        let d = digest.to_string();
        self.read(|c| {
            c.exists(
                "SELECT 1 WHERE EXISTS (SELECT 1 FROM contents WHERE digest = $1)
                    OR EXISTS (SELECT 1 FROM gc_tombstones WHERE digest = $1)
                    OR EXISTS (SELECT 1 FROM uploads WHERE finishing = $1)",
                &[&d],
            )
        })
    }
}
