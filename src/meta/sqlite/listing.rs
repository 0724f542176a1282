//! Tags, catalog and referrers listings, answered from indexes.

use std::collections::BTreeMap;

use rusqlite::{OptionalExtension, params};

use super::{Sqlite, digest_column, repo_column, to_u64};
use crate::error::{Error, Result};
use crate::meta::{ListingMeta, Referrer, RepoSummary, TagDetail, TagNameChange, TagNameChanges};
use crate::oci::{Digest, RepoName};

/// A repository exists once it holds content (a blob it may serve, or a
/// manifest; every tag names a manifest), not when an upload session was
/// opened in it: a push that was refused leaves no repository behind.
const HOLDS_CONTENT: &str = "(EXISTS (SELECT 1 FROM repo_blobs b WHERE b.repo = repositories.name)
     OR EXISTS (SELECT 1 FROM manifests m WHERE m.repo = repositories.name))";

/// A repository's counts, size and newest manifest, for [`ListingMeta::repositories`].
const REPO_SUMMARY: &str = "SELECT repositories.name,
        (SELECT COUNT(*) FROM tags t WHERE t.repo = repositories.name),
        (SELECT COUNT(*) FROM manifests m WHERE m.repo = repositories.name),
        (SELECT CAST(COALESCE(SUM(c.size), 0) AS BIGINT) FROM repo_blobs b
           JOIN contents c ON c.digest = b.digest WHERE b.repo = repositories.name),
        (SELECT MAX(m.created_at) FROM manifests m WHERE m.repo = repositories.name),
        l.media_type, l.artifact_type
   FROM repositories
   LEFT JOIN manifests l ON l.repo = repositories.name AND l.digest = (
        SELECT m.digest FROM manifests m WHERE m.repo = repositories.name AND m.subject IS NULL
         ORDER BY m.created_at DESC, m.digest LIMIT 1)";

/// A tag, its manifest, the blobs that manifest names and the tag's last
/// move, for [`ListingMeta::tag_details`].
const TAG_DETAIL: &str = "SELECT t.name, t.digest, m.media_type, m.artifact_type,
        m.size + (SELECT CAST(COALESCE(SUM(c.size), 0) AS BIGINT) FROM manifest_refs x
                   JOIN contents c ON c.digest = x.child
                  WHERE x.repo = t.repo AND x.manifest = t.digest AND x.kind = 'blob'),
        t.updated_at,
        (SELECT h.actor FROM tag_history h WHERE h.repo = t.repo AND h.tag = t.name
          ORDER BY h.id DESC LIMIT 1),
        EXISTS (SELECT 1 FROM tag_history h WHERE h.repo = t.repo AND h.tag = t.name
                 AND h.operation IN ('promote', 'rollback'))
   FROM tags t JOIN manifests m ON m.repo = t.repo AND m.digest = t.digest";

/// Versions of a repository's tag names whose changes the triggers keep
/// (migration 0008).
const CHANGES_KEPT: u64 = 1024;

fn tag_names_version(c: &rusqlite::Connection, repo: &RepoName) -> Result<Option<u64>> {
    Ok(
        c.prepare_cached("SELECT tag_names FROM repositories WHERE name = ?1")?
            .query_row(params![repo.as_str()], |r| r.get::<_, i64>(0))
            .optional()?
            .map(to_u64),
    )
}

fn tag_name_changes(
    c: &rusqlite::Connection,
    repo: &RepoName,
    since: u64,
) -> Result<Option<TagNameChanges>> {
    let Some(version) = tag_names_version(c, repo)? else {
        return Ok(None);
    };
    // The triggers keep the last CHANGES_KEPT versions; older ones are gone.
    let changes = match version.checked_sub(since) {
        Some(0) => Some(Vec::new()),
        Some(behind) if behind <= CHANGES_KEPT => {
            let rows = c
                .prepare_cached(
                    "SELECT name, present FROM tag_name_changes
                     WHERE repo = ?1 AND version > ?2 ORDER BY version",
                )?
                .query_map(params![repo.as_str(), since as i64], |r| {
                    Ok(TagNameChange {
                        name: r.get(0)?,
                        present: r.get(1)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            // One row per version: all there, or some were dropped.
            (rows.len() as u64 == behind).then_some(rows)
        }
        _ => None,
    };
    Ok(Some(TagNameChanges { version, changes }))
}

impl ListingMeta for Sqlite {
    fn tags(
        &self,
        repo: &RepoName,
        last: Option<&str>,
        n: usize,
    ) -> Result<Option<(Vec<String>, u64)>> {
        self.read(|c| {
            // The version first: names read after it are at least as new, so
            // a listing kept under it is never newer than what it claims.
            let Some(version) = tag_names_version(c, repo)? else {
                return Ok(None);
            };
            let exists = c
                .prepare_cached(&format!(
                    "SELECT 1 FROM repositories WHERE name = ?1 AND {HOLDS_CONTENT}"
                ))?
                .exists(params![repo.as_str()])?;
            if !exists {
                return Ok(None);
            }
            let tags = c
                .prepare_cached(
                    "SELECT name FROM tags WHERE repo = ?1 AND name > ?2 ORDER BY name LIMIT ?3",
                )?
                .query_map(params![repo.as_str(), last.unwrap_or(""), n as i64], |r| {
                    r.get(0)
                })?
                .collect::<Result<Vec<String>, _>>()?;
            Ok(Some((tags, version)))
        })
    }

    fn tag_name_changes(&self, repo: &RepoName, since: u64) -> Result<Option<TagNameChanges>> {
        self.read(|c| tag_name_changes(c, repo, since))
    }

    /// Only on a connection that is free at once: an embedded read of at
    /// most 1,024 rows, never a wait.
    fn tag_name_changes_now(
        &self,
        repo: &RepoName,
        since: u64,
    ) -> Option<Result<Option<TagNameChanges>>> {
        self.read_if_idle(|c| tag_name_changes(c, repo, since))
    }

    fn catalog(&self, last: Option<&str>, n: usize) -> Result<Vec<RepoName>> {
        self.read(|c| {
            let names = c
                .prepare_cached(&format!(
                    "SELECT name FROM repositories WHERE name > ?1 AND {HOLDS_CONTENT}
                     ORDER BY name LIMIT ?2"
                ))?
                .query_map(params![last.unwrap_or(""), n as i64], |r| r.get(0))?
                .collect::<Result<Vec<String>, _>>()?;
            names.into_iter().map(repo_column).collect()
        })
    }

    fn repositories(
        &self,
        contains: &str,
        last: Option<&str>,
        n: usize,
    ) -> Result<Vec<RepoSummary>> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "{REPO_SUMMARY} WHERE repositories.name > ?1 AND instr(repositories.name, ?2) > 0 AND
                 {HOLDS_CONTENT} ORDER BY repositories.name LIMIT ?3"
            ))?
            .query_map(params![last.unwrap_or(""), contains, n as i64], |r| {
                Ok((|| {
                    Ok::<_, Error>(RepoSummary {
                        name: repo_column(r.get(0)?)?,
                        tags: to_u64(r.get(1)?),
                        manifests: to_u64(r.get(2)?),
                        size: to_u64(r.get(3)?),
                        last_push_ms: r.get(4)?,
                        latest: r
                            .get::<_, Option<String>>(5)?
                            .map(|m| Ok::<_, rusqlite::Error>((m, r.get(6)?)))
                            .transpose()?,
                    })
                })())
            })?
            .collect::<Result<Result<Vec<_>>, _>>()?
        })
    }

    fn tag_details(&self, repo: &RepoName, last: Option<&str>, n: usize) -> Result<Vec<TagDetail>> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "{TAG_DETAIL} WHERE t.repo = ?1 AND t.name > ?2 ORDER BY t.name LIMIT ?3"
            ))?
            .query_map(params![repo.as_str(), last.unwrap_or(""), n as i64], |r| {
                Ok((|| {
                    Ok::<_, Error>(TagDetail {
                        name: r.get(0)?,
                        digest: digest_column(r.get(1)?)?,
                        media_type: r.get(2)?,
                        artifact_type: r.get(3)?,
                        size: to_u64(r.get(4)?),
                        updated_at_ms: r.get(5)?,
                        actor: r.get(6)?,
                        environment: r.get(7)?,
                    })
                })())
            })?
            .collect::<Result<Result<Vec<_>>, _>>()?
        })
    }

    fn referrers(
        &self,
        repo: &RepoName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Referrer>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT digest, media_type, artifact_type, size, annotations FROM manifests
                 WHERE repo = ?1 AND subject = ?2 AND (?3 IS NULL OR artifact_type = ?3)
                 ORDER BY created_at, digest",
            )?;
            let rows = stmt
                .query_map(
                    params![repo.as_str(), subject.to_string(), artifact_type],
                    |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, Option<String>>(2)?,
                            r.get::<_, i64>(3)?,
                            r.get::<_, Option<String>>(4)?,
                        ))
                    },
                )?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter()
                .map(|(digest, media_type, artifact_type, size, annotations)| {
                    let annotations = match annotations {
                        None => BTreeMap::new(),
                        Some(text) => serde_json::from_str(&text).map_err(|e| {
                            Error::Internal(format!("corrupt annotations in database: {e}"))
                        })?,
                    };
                    Ok(Referrer {
                        digest: digest_column(digest)?,
                        media_type,
                        artifact_type,
                        size: to_u64(size),
                        annotations,
                    })
                })
                .collect()
        })
    }
}
