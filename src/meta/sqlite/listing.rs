//! Tags, catalog and referrers listings, answered from indexes.

use rusqlite::params;

use super::{Sqlite, digest_column, to_u64};
use crate::error::Result;
use crate::meta::{ListingMeta, Referrer};
use crate::oci::{Digest, RepoName};

impl ListingMeta for Sqlite {
    fn tags(&self, repo: &RepoName, last: Option<&str>, n: usize) -> Result<Option<Vec<String>>> {
        self.read(|c| {
            if !c
                .prepare_cached("SELECT 1 FROM repositories WHERE name = ?1")?
                .exists(params![repo.as_str()])?
            {
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
            Ok(Some(tags))
        })
    }

    fn catalog(&self, last: Option<&str>, n: usize) -> Result<Vec<String>> {
        self.read(|c| {
            Ok(c.prepare_cached(
                "SELECT name FROM repositories WHERE name > ?1 ORDER BY name LIMIT ?2",
            )?
            .query_map(params![last.unwrap_or(""), n as i64], |r| r.get(0))?
            .collect::<Result<Vec<String>, _>>()?)
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
                .map(
                    |(digest, media_type, artifact_type, size, annotations_json)| {
                        Ok(Referrer {
                            digest: digest_column(digest)?,
                            media_type,
                            artifact_type,
                            size: to_u64(size),
                            annotations_json,
                        })
                    },
                )
                .collect()
        })
    }
}
