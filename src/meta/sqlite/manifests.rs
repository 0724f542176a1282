//! Manifests, their references, tags, and the tag history and events that every
//! change writes in the same transaction.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, params};

use super::{Sqlite, digest_column, ensure_repo, exec, now_ms, to_i64, to_u64};
use crate::error::{Error, Result};
use crate::glob::{Glob, any_matches};
use crate::meta::{Actor, EventAction, ManifestMeta, NewManifest, Operation, StoredManifest};
use crate::oci::{Digest, RepoName, Tag};

impl ManifestMeta for Sqlite {
    fn record_manifest(
        &self,
        repo: &RepoName,
        m: &NewManifest,
        tags: &[Tag],
        immutable: &[Glob],
        actor: &Actor,
    ) -> Result<()> {
        let repo = repo.as_str();
        let digest = m.digest.to_string();
        self.write(|tx| {
            if tx
                .prepare_cached("SELECT 1 FROM gc_tombstones WHERE digest = ?1")?
                .exists(params![digest])?
            {
                return Err(Error::Busy(format!("{digest} is being garbage-collected")));
            }
            check_references(tx, repo, m)?;
            ensure_repo(tx, repo)?;
            let now = now_ms();
            exec(tx,
                "INSERT OR IGNORE INTO contents (digest, size, created_at) VALUES (?1, ?2, ?3)",
                params![digest, to_i64(m.size), now],
            )?;
            let inserted = exec(tx,
                "INSERT OR IGNORE INTO manifests
                 (repo, digest, media_type, artifact_type, subject, size, annotations, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    repo,
                    digest,
                    m.media_type,
                    m.artifact_type,
                    m.subject.as_ref().map(Digest::to_string),
                    to_i64(m.size),
                    annotations_text(&m.annotations)?,
                    now
                ],
            )?;
            if inserted > 0 {
                let mut refs = tx.prepare_cached(
                    "INSERT OR IGNORE INTO manifest_refs (repo, manifest, child, kind) VALUES (?1, ?2, ?3, ?4)",
                )?;
                for (blob, _) in &m.blobs {
                    refs.execute(params![repo, digest, blob.to_string(), "blob"])?;
                }
                for child in &m.manifests {
                    refs.execute(params![repo, digest, child.to_string(), "manifest"])?;
                }
                let pushed = EventRow {
                    media_type: Some(&m.media_type),
                    size: Some(m.size),
                    ..EventRow::new(EventAction::Push, repo, Some(&digest), None)
                };
                event(tx, &pushed, actor)?;
                if let Some(lineage) = &m.lineage {
                    super::lineage::record(tx, repo, &digest, lineage)?;
                }
            }
            for tag in tags {
                move_tag(tx, repo, tag.as_str(), Some(&digest), immutable, Operation::Push, actor)?;
            }
            Ok(())
        })
    }

    fn manifest_by_digest(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Option<StoredManifest>> {
        self.read(|c| {
            let row = c
                .prepare_cached(
                    "SELECT media_type, size FROM manifests WHERE repo = ?1 AND digest = ?2",
                )?
                .query_row(params![repo.as_str(), digest.to_string()], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
                })
                .optional()?;
            Ok(row.map(|(media_type, size)| StoredManifest {
                digest: digest.clone(),
                media_type,
                size: to_u64(size),
            }))
        })
    }

    fn manifest_by_tag(&self, repo: &RepoName, tag: &Tag) -> Result<Option<StoredManifest>> {
        self.read(|c| {
            let row = c
                .prepare_cached(
                    "SELECT m.digest, m.media_type, m.size FROM tags t
                     JOIN manifests m ON m.repo = t.repo AND m.digest = t.digest
                     WHERE t.repo = ?1 AND t.name = ?2",
                )?
                .query_row(params![repo.as_str(), tag.as_str()], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                })
                .optional()?;
            row.map(|(digest, media_type, size)| {
                Ok(StoredManifest {
                    digest: digest_column(digest)?,
                    media_type,
                    size: to_u64(size),
                })
            })
            .transpose()
        })
    }

    fn delete_manifest(
        &self,
        repo: &RepoName,
        digest: &Digest,
        immutable: &[Glob],
        actor: &Actor,
    ) -> Result<bool> {
        let repo = repo.as_str();
        let digest = digest.to_string();
        self.write(|tx| {
            let tags = tx
                .prepare_cached("SELECT name FROM tags WHERE repo = ?1 AND digest = ?2")?
                .query_map(params![repo, digest], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            for tag in &tags {
                move_tag(
                    tx,
                    repo,
                    tag,
                    None,
                    immutable,
                    Operation::DeleteManifest,
                    actor,
                )?;
            }
            // A model version takes its lineage with it; facts it stated about
            // others go with it through the foreign key.
            exec(
                tx,
                "DELETE FROM lineage WHERE repo = ?1 AND model = ?2",
                params![repo, digest],
            )?;
            let n = exec(
                tx,
                "DELETE FROM manifests WHERE repo = ?1 AND digest = ?2",
                params![repo, digest],
            )?;
            if n > 0 {
                event(
                    tx,
                    &EventRow::new(EventAction::Delete, repo, Some(&digest), None),
                    actor,
                )?;
            }
            Ok(n > 0)
        })
    }

    fn delete_tag(
        &self,
        repo: &RepoName,
        tag: &Tag,
        immutable: &[Glob],
        actor: &Actor,
    ) -> Result<bool> {
        self.write(|tx| {
            move_tag(
                tx,
                repo.as_str(),
                tag.as_str(),
                None,
                immutable,
                Operation::DeleteTag,
                actor,
            )
        })
    }
}

/// Inside the write transaction: every blob must be held by the repository with
/// the size the manifest claims, and every child manifest must be there.
fn check_references(tx: &Connection, repo: &str, m: &NewManifest) -> Result<()> {
    let digests: Vec<Digest> = m.blobs.iter().map(|(d, _)| d.clone()).collect();
    let held = super::blobs::held_sizes(tx, repo, &digests)?;
    m.check_blobs(|d| held.get(d).copied())?;
    let mut child = tx.prepare_cached("SELECT 1 FROM manifests WHERE repo = ?1 AND digest = ?2")?;
    for digest in &m.manifests {
        if !child.exists(params![repo, digest.to_string()])? {
            return Err(Error::ManifestBlobUnknown(digest.clone()));
        }
    }
    Ok(())
}

/// Points `tag` at `to` (or removes it, for `None`) and records the move in the
/// history and the event log. An immutable tag that points elsewhere is not
/// moved. Returns whether anything changed.
pub(super) fn move_tag(
    tx: &Connection,
    repo: &str,
    tag: &str,
    to: Option<&str>,
    immutable: &[Glob],
    operation: Operation,
    actor: &Actor,
) -> Result<bool> {
    let from = current_tag(tx, repo, tag)?;
    if from.as_deref() == to {
        return Ok(false);
    }
    if from.is_some() && any_matches(immutable, tag) {
        return Err(Error::TagImmutable(format!("{repo}:{tag}")));
    }
    let now = now_ms();
    match to {
        Some(digest) => exec(tx,
            "INSERT INTO tags (repo, name, digest, updated_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (repo, name) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at",
            params![repo, tag, digest, now],
        )?,
        None => exec(tx, "DELETE FROM tags WHERE repo = ?1 AND name = ?2", params![repo, tag])?,
    };
    exec(
        tx,
        "INSERT INTO tag_history (repo, tag, old_digest, new_digest, at, actor, operation, reason)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            repo,
            tag,
            from,
            to,
            now,
            actor.name,
            operation.as_str(),
            actor.reason
        ],
    )?;
    let action = match (operation, to) {
        (Operation::Promote, _) => EventAction::Promote,
        (Operation::Rollback, _) => EventAction::Rollback,
        (_, Some(_)) => EventAction::Tag,
        (_, None) => EventAction::Untag,
    };
    let row = EventRow {
        old_digest: from.as_deref(),
        ..EventRow::new(action, repo, to.or(from.as_deref()), Some(tag))
    };
    event(tx, &row, actor)?;
    Ok(true)
}

/// The digest a tag points at now.
pub(super) fn current_tag(tx: &Connection, repo: &str, tag: &str) -> Result<Option<String>> {
    Ok(tx
        .prepare_cached("SELECT digest FROM tags WHERE repo = ?1 AND name = ?2")?
        .query_row(params![repo, tag], |r| r.get(0))
        .optional()?)
}

/// A row of the event log, as written.
pub(super) struct EventRow<'a> {
    pub action: EventAction,
    pub repo: &'a str,
    pub digest: Option<&'a str>,
    pub tag: Option<&'a str>,
    pub media_type: Option<&'a str>,
    pub size: Option<u64>,
    pub old_digest: Option<&'a str>,
}

impl<'a> EventRow<'a> {
    pub fn new(
        action: EventAction,
        repo: &'a str,
        digest: Option<&'a str>,
        tag: Option<&'a str>,
    ) -> Self {
        EventRow {
            action,
            repo,
            digest,
            tag,
            media_type: None,
            size: None,
            old_digest: None,
        }
    }
}

pub(super) fn event(tx: &Connection, e: &EventRow<'_>, actor: &Actor) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO events (at, action, repo, digest, tag, media_type, size, actor, old_digest, reason)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        now_ms(),
        e.action.as_str(),
        e.repo,
        e.digest,
        e.tag,
        e.media_type,
        e.size.map(to_i64),
        actor.name,
        e.old_digest,
        actor.reason
    ])?;
    Ok(())
}

/// Annotations as the database keeps them: a JSON object, or NULL for none.
fn annotations_text(annotations: &BTreeMap<String, String>) -> Result<Option<String>> {
    if annotations.is_empty() {
        return Ok(None);
    }
    serde_json::to_string(annotations)
        .map(Some)
        .map_err(|e| Error::Internal(format!("annotations: {e}")))
}
