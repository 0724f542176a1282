//! Tags, catalog and referrers listings, answered from indexes.

use std::collections::BTreeMap;

use super::{Conn, Postgres, col, digest_column, repo_column, to_u64};
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

/// Versions of a repository's tag names whose changes are kept (migration 0008).
const CHANGES_KEPT: u64 = 1024;

fn tag_names_version(c: &mut Conn, repo: &RepoName) -> Result<Option<u64>> {
    c.query_opt(
        "SELECT tag_names FROM repositories WHERE name = $1",
        &[&repo.as_str()],
    )?
    .map(|r| col::<i64>(&r, 0).map(to_u64))
    .transpose()
}

impl ListingMeta for Postgres {
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
            let exists = c.exists(
                &format!("SELECT 1 FROM repositories WHERE name = $1 AND {HOLDS_CONTENT}"),
                &[&repo.as_str()],
            )?;
            if !exists {
                return Ok(None);
            }
            let tags = c
                .query(
                    "SELECT name FROM tags WHERE repo = $1 AND name > $2 ORDER BY name LIMIT $3",
                    &[&repo.as_str(), &last.unwrap_or(""), &(n as i64)],
                )?
                .iter()
                .map(|r| col(r, 0))
                .collect::<Result<Vec<String>>>()?;
            Ok(Some((tags, version)))
        })
    }

    fn tag_name_changes(&self, repo: &RepoName, since: u64) -> Result<Option<TagNameChanges>> {
        self.read(|c| {
            let Some(version) = tag_names_version(c, repo)? else {
                return Ok(None);
            };
            let changes = match version.checked_sub(since) {
                Some(0) => Some(Vec::new()),
                Some(behind) if behind <= CHANGES_KEPT => {
                    let rows = c
                        .query(
                            "SELECT name, present FROM tag_name_changes
                             WHERE repo = $1 AND version > $2 AND version <= $3 ORDER BY version",
                            &[&repo.as_str(), &(since as i64), &(version as i64)],
                        )?
                        .iter()
                        .map(|r| {
                            Ok(TagNameChange {
                                name: col(r, 0)?,
                                present: col(r, 1)?,
                            })
                        })
                        .collect::<Result<Vec<_>>>()?;
                    // One row per version: all there, or some were dropped.
                    (rows.len() as u64 == behind).then_some(rows)
                }
                _ => None,
            };
            Ok(Some(TagNameChanges { version, changes }))
        })
    }

    fn catalog(&self, last: Option<&str>, n: usize) -> Result<Vec<RepoName>> {
        self.read(|c| {
            c.query(
                &format!(
                    "SELECT name FROM repositories WHERE name > $1 AND {HOLDS_CONTENT}
                     ORDER BY name LIMIT $2"
                ),
                &[&last.unwrap_or(""), &(n as i64)],
            )?
            .iter()
            .map(|r| repo_column(col(r, 0)?))
            .collect()
        })
    }

    fn repositories(
        &self,
        contains: &str,
        last: Option<&str>,
        n: usize,
    ) -> Result<Vec<RepoSummary>> {
        self.read(|c| {
            c.query(
                &format!(
                    "{REPO_SUMMARY} WHERE repositories.name > $1 AND strpos(repositories.name, $2) > 0 AND
                     {HOLDS_CONTENT} ORDER BY repositories.name LIMIT $3"
                ),
                &[&last.unwrap_or(""), &contains, &(n as i64)],
            )?
            .iter()
            .map(|r| {
                let media_type: Option<String> = col(r, 5)?;
                Ok(RepoSummary {
                    name: repo_column(col(r, 0)?)?,
                    tags: to_u64(col(r, 1)?),
                    manifests: to_u64(col(r, 2)?),
                    size: to_u64(col::<i64>(r, 3)?),
                    last_push_ms: col(r, 4)?,
                    latest: media_type
                        .map(|m| Ok::<_, Error>((m, col(r, 6)?)))
                        .transpose()?,
                })
            })
            .collect()
        })
    }

    fn tag_details(&self, repo: &RepoName, last: Option<&str>, n: usize) -> Result<Vec<TagDetail>> {
        self.read(|c| {
            c.query(
                &format!("{TAG_DETAIL} WHERE t.repo = $1 AND t.name > $2 ORDER BY t.name LIMIT $3"),
                &[&repo.as_str(), &last.unwrap_or(""), &(n as i64)],
            )?
            .iter()
            .map(|r| {
                Ok(TagDetail {
                    name: col(r, 0)?,
                    digest: digest_column(col(r, 1)?)?,
                    media_type: col(r, 2)?,
                    artifact_type: col(r, 3)?,
                    size: to_u64(col::<i64>(r, 4)?),
                    updated_at_ms: col(r, 5)?,
                    actor: col(r, 6)?,
                    environment: col(r, 7)?,
                })
            })
            .collect()
        })
    }

    fn referrers(
        &self,
        repo: &RepoName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Referrer>> {
        self.read(|c| {
            c.query(
                "SELECT digest, media_type, artifact_type, size, annotations FROM manifests
                 WHERE repo = $1 AND subject = $2 AND ($3::text IS NULL OR artifact_type = $3)
                 ORDER BY created_at, digest",
                &[&repo.as_str(), &subject.to_string(), &artifact_type],
            )?
            .iter()
            .map(|r| {
                let annotations = match col::<Option<String>>(r, 4)? {
                    None => BTreeMap::new(),
                    Some(text) => serde_json::from_str(&text).map_err(|e| {
                        Error::Internal(format!("corrupt annotations in database: {e}"))
                    })?,
                };
                Ok(Referrer {
                    digest: digest_column(col(r, 0)?)?,
                    media_type: col(r, 1)?,
                    artifact_type: col(r, 2)?,
                    size: to_u64(col(r, 3)?),
                    annotations,
                })
            })
            .collect()
        })
    }
}
