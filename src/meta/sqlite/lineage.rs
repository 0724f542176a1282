//! Lineage facts: written with their manifest, queried by model, target and commit.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{Sqlite, digest_column, repo_column, tag_column, word_column};
use crate::error::{Error, Result};
use crate::meta::{FactKind, LineageMeta, LineageRef, ManifestInfo, NewLineage, StoredFact};
use crate::oci::Digest;

/// Inside `record_manifest`'s transaction: stores what `origin` states,
/// resolving `repository:tag` references to the digest they name now.
pub(super) fn record(
    tx: &Connection,
    repo: &str,
    origin: &str,
    lineage: &NewLineage,
) -> Result<()> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO lineage (repo, origin, model, kind, relation, target, target_repo, uri, name, revision, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?;
    for fact in &lineage.facts {
        let (target, target_repo) = match &fact.target {
            None => (None, None),
            Some(LineageRef::Digest(d)) => (Some(d.to_string()), None),
            Some(LineageRef::InRepo(r, d)) => (Some(d.to_string()), Some(r.to_string())),
            Some(LineageRef::Tagged(r, t)) => {
                let d: Option<String> = tx
                    .prepare_cached("SELECT digest FROM tags WHERE repo = ?1 AND name = ?2")?
                    .query_row(params![r.as_str(), t.as_str()], |row| row.get(0))
                    .optional()?;
                let d = d.ok_or_else(|| {
                    Error::ManifestInvalid(format!(
                        "lineage names {r}:{t}, which is not a tag in this registry"
                    ))
                })?;
                (Some(d), Some(r.to_string()))
            }
        };
        insert.execute(params![
            repo,
            origin,
            lineage.model.to_string(),
            fact.kind.as_str(),
            fact.relation,
            target,
            target_repo,
            fact.uri,
            fact.name,
            fact.revision,
            fact.detail,
        ])?;
    }
    Ok(())
}

const COLUMNS: &str =
    "repo, model, kind, relation, target, target_repo, uri, name, revision, detail";

fn fact(row: &Row<'_>) -> rusqlite::Result<(String, String, String, [Option<String>; 7])> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        [
            row.get(3)?,
            row.get(4)?,
            row.get(5)?,
            row.get(6)?,
            row.get(7)?,
            row.get(8)?,
            row.get(9)?,
        ],
    ))
}

fn query(c: &Connection, sql: &str, args: impl rusqlite::Params) -> Result<Vec<StoredFact>> {
    let rows = c
        .prepare_cached(sql)?
        .query_map(args, fact)?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(
            |(repo, model, kind, [relation, target, target_repo, uri, name, revision, detail])| {
                Ok(StoredFact {
                    repo: repo_column(repo)?,
                    model: digest_column(model)?,
                    kind: word_column(kind, FactKind::parse)?,
                    relation,
                    target: target.map(digest_column).transpose()?,
                    target_repo: target_repo.map(repo_column).transpose()?,
                    uri,
                    name,
                    revision,
                    detail,
                })
            },
        )
        .collect()
}

impl LineageMeta for Sqlite {
    fn facts_about(&self, model: &Digest) -> Result<Vec<StoredFact>> {
        let sql = format!("SELECT {COLUMNS} FROM lineage WHERE model = ?1 ORDER BY id");
        self.read(|c| query(c, &sql, params![model.to_string()]))
    }

    fn facts_pointing_at(
        &self,
        target: &Digest,
        kind: Option<FactKind>,
    ) -> Result<Vec<StoredFact>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM lineage WHERE target = ?1 AND (?2 IS NULL OR kind = ?2) ORDER BY id"
        );
        self.read(|c| {
            query(
                c,
                &sql,
                params![target.to_string(), kind.map(FactKind::as_str)],
            )
        })
    }

    fn facts_with_revision(&self, prefix: &str) -> Result<Vec<StoredFact>> {
        // A range over the index: every string that starts with the prefix sorts
        // between the prefix and the prefix followed by the highest character.
        let sql = format!(
            "SELECT {COLUMNS} FROM lineage WHERE revision >= ?1 AND revision < ?1 || char(1114111) ORDER BY id"
        );
        self.read(|c| query(c, &sql, params![prefix]))
    }

    fn describe(&self, digest: &Digest) -> Result<Vec<ManifestInfo>> {
        self.read(|c| {
            let rows = c
                .prepare_cached(
                    "SELECT m.repo, m.artifact_type, m.created_at,
                            (SELECT group_concat(name, char(10)) FROM
                               (SELECT name FROM tags t WHERE t.repo = m.repo AND t.digest = m.digest ORDER BY name))
                     FROM manifests m WHERE m.digest = ?1 ORDER BY m.repo",
                )?
                .query_map(params![digest.to_string()], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, Option<String>>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, Option<String>>(3)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter()
                .map(|(repo, artifact_type, created_ms, tags)| {
                    Ok(ManifestInfo {
                    repo: repo_column(repo)?,
                    digest: digest.clone(),
                    artifact_type,
                    created_ms,
                    tags: tags
                        .map(|t| t.split('\n').map(|n| tag_column(n.to_owned())).collect())
                        .transpose()?
                        .unwrap_or_default(),
                    })
                })
                .collect()
        })
    }
}
