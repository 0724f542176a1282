//! Lineage facts: written with their manifest, queried by model, target and commit.

use tokio_postgres::Row;

use super::{Conn, Postgres, col, digest_column, repo_column, tag_column, values, word_column};
use crate::error::{Error, Result};
use crate::meta::{FactKind, LineageMeta, LineageRef, ManifestInfo, NewLineage, StoredFact};
use crate::oci::Digest;

/// Inside `record_manifest`'s transaction: stores what `origin` states,
/// resolving `repository:tag` references to the digest they name now.
pub(super) fn record(tx: &mut Conn, repo: &str, origin: &str, lineage: &NewLineage) -> Result<()> {
    let model = lineage.model.to_string();
    for fact in &lineage.facts {
        let (target, target_repo) = match &fact.target {
            None => (None, None),
            Some(LineageRef::Digest(d)) => (Some(d.to_string()), None),
            Some(LineageRef::InRepo(r, d)) => (Some(d.to_string()), Some(r.to_string())),
            Some(LineageRef::Tagged(r, t)) => {
                let row = tx
                    .query_opt(
                        "SELECT digest FROM tags WHERE repo = $1 AND name = $2",
                        &[&r.as_str(), &t.as_str()],
                    )?
                    .ok_or_else(|| {
                        Error::ManifestInvalid(format!(
                            "lineage names {r}:{t}, which is not a tag in this registry"
                        ))
                    })?;
                (Some(col::<String>(&row, 0)?), Some(r.to_string()))
            }
        };
        tx.defer(
            "INSERT INTO lineage (repo, origin, model, kind, relation, target, target_repo, uri, name, revision, detail)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            values![
                repo.to_owned(),
                origin.to_owned(),
                model.clone(),
                fact.kind.as_str(),
                fact.relation.clone(),
                target,
                target_repo,
                fact.uri.clone(),
                fact.name.clone(),
                fact.revision.clone(),
                fact.detail.clone(),
            ],
        )?;
    }
    Ok(())
}

const COLUMNS: &str =
    "repo, model, kind, relation, target, target_repo, uri, name, revision, detail";

fn fact(r: &Row) -> Result<StoredFact> {
    let digest = |i| -> Result<Option<Digest>> {
        col::<Option<String>>(r, i)?.map(digest_column).transpose()
    };
    Ok(StoredFact {
        repo: repo_column(col(r, 0)?)?,
        model: digest_column(col(r, 1)?)?,
        kind: word_column(col(r, 2)?, FactKind::parse)?,
        relation: col(r, 3)?,
        target: digest(4)?,
        target_repo: col::<Option<String>>(r, 5)?.map(repo_column).transpose()?,
        uri: col(r, 6)?,
        name: col(r, 7)?,
        revision: col(r, 8)?,
        detail: col(r, 9)?,
    })
}

impl Postgres {
    fn facts(&self, sql: &str, params: super::Params<'_>) -> Result<Vec<StoredFact>> {
        self.read(|c| c.query(sql, params)?.iter().map(fact).collect())
    }
}

impl LineageMeta for Postgres {
    fn facts_about(&self, model: &Digest) -> Result<Vec<StoredFact>> {
        let sql = format!("SELECT {COLUMNS} FROM lineage WHERE model = $1 ORDER BY id");
        self.facts(&sql, &[&model.to_string()])
    }

    fn facts_pointing_at(
        &self,
        target: &Digest,
        kind: Option<FactKind>,
    ) -> Result<Vec<StoredFact>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM lineage WHERE target = $1 AND ($2::text IS NULL OR kind = $2)
             ORDER BY id"
        );
        self.facts(&sql, &[&target.to_string(), &kind.map(FactKind::as_str)])
    }

    fn facts_with_revision(&self, prefix: &str) -> Result<Vec<StoredFact>> {
        // A range over the index ("C" collation: byte order): every string that
        // starts with the prefix sorts between the prefix and the prefix
        // followed by the highest character.
        let sql = format!(
            "SELECT {COLUMNS} FROM lineage WHERE revision >= $1 AND revision < $1 || chr(1114111)
             ORDER BY id"
        );
        self.facts(&sql, &[&prefix])
    }

    fn describe(&self, digest: &Digest) -> Result<Vec<ManifestInfo>> {
        self.read(|c| {
            c.query(
                "SELECT m.repo, m.artifact_type, m.created_at,
                        ARRAY(SELECT t.name FROM tags t
                              WHERE t.repo = m.repo AND t.digest = m.digest ORDER BY t.name)
                 FROM manifests m WHERE m.digest = $1 ORDER BY m.repo",
                &[&digest.to_string()],
            )?
            .iter()
            .map(|r| {
                Ok(ManifestInfo {
                    repo: repo_column(col(r, 0)?)?,
                    digest: digest.clone(),
                    artifact_type: col(r, 1)?,
                    created_ms: col(r, 2)?,
                    tags: col::<Vec<String>>(r, 3)?
                        .into_iter()
                        .map(tag_column)
                        .collect::<Result<_>>()?,
                })
            })
            .collect()
        })
    }
}
