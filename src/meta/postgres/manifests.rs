//! Manifests, their references, tags, and the tag history and events that every
//! change writes in the same transaction.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};

use tokio_postgres::Row;
use tokio_postgres::error::SqlState;

use super::{
    Conn, Params, Postgres, col, digest_column, ensure_repo, now_ms, to_i64, to_u64, values,
};
use crate::error::{Error, Result};
use crate::glob::{Glob, any_matches};
use crate::meta::{Actor, EventAction, ManifestMeta, NewManifest, Operation, StoredManifest};
use crate::oci::{Digest, RepoName, Tag};

impl ManifestMeta for Postgres {
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
        let annotations = annotations_text(&m.annotations)?;
        let subject = m.subject.as_ref().map(Digest::to_string);
        let blobs: Vec<String> = m.blobs.iter().map(|(d, _)| d.to_string()).collect();
        let children: Vec<String> = m.manifests.iter().map(Digest::to_string).collect();
        let names: Vec<&str> = tags.iter().map(Tag::as_str).collect();
        // Tags that an immutable rule covers are read before they move (a
        // move may be refused); any other moves by one statement that reads
        // where it pointed itself.
        let guarded: Vec<&str> = names
            .iter()
            .copied()
            .filter(|t| any_matches(immutable, t))
            .collect();
        // Two round trips: the checks and the manifest's row; then the rest
        // with the commit. The log's lock goes with the second, unless the
        // first reads what another logged write could change (child
        // manifests, which a logged delete could take away between check and
        // write; guarded tags), or the write runs again (below). A refused
        // manifest rolls back what went out with its checks.
        let lock_first = Cell::new(!children.is_empty() || !guarded.is_empty());
        let mut write = |tx: &mut Conn| {
            if !lock_first.get() {
                tx.lock_log_later();
            }
            ensure_repo(tx, repo)?;
            let now = now_ms();
            tx.defer(
                "INSERT INTO contents (digest, size, created_at) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING",
                values![digest.clone(), to_i64(m.size), now],
            )?;
            let size = to_i64(m.size);
            let batch: [(&str, Params<'_>); 5] = [
                (
                    "SELECT 1 FROM gc_tombstones WHERE digest = $1",
                    &[&digest],
                ),
                (super::blobs::HELD_SIZES, &[&repo, &blobs]),
                (
                    "SELECT w.digest FROM unnest($2::text[]) AS w(digest)
                     CROSS JOIN LATERAL (SELECT 1 FROM manifests
                         WHERE repo = $1 AND digest = w.digest LIMIT 1) m",
                    &[&repo, &children],
                ),
                (
                    "INSERT INTO manifests
                     (repo, digest, media_type, artifact_type, subject, size, annotations, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING RETURNING 1",
                    &[
                        &repo,
                        &digest,
                        &m.media_type,
                        &m.artifact_type,
                        &subject,
                        &size,
                        &annotations,
                        &now,
                    ],
                ),
                (
                    "SELECT w.name, t.digest FROM unnest($2::text[]) AS w(name)
                     CROSS JOIN LATERAL (SELECT digest FROM tags
                         WHERE repo = $1 AND name = w.name LIMIT 1) t",
                    &[&repo, &guarded],
                ),
            ];
            // Where guarded tags point, only if there are any.
            let asked = if guarded.is_empty() { 4 } else { 5 };
            let answers = tx.query_all(&batch[..asked])?;
            if !answers[0].is_empty() {
                return Err(Error::Busy(format!("{digest} is being garbage-collected")));
            }
            check_references(m, &answers[1], &answers[2])?;
            let inserted = &answers[3];
            if !inserted.is_empty() {
                // Every reference in one statement.
                let (children, kinds): (Vec<String>, Vec<&'static str>) = m
                    .blobs
                    .iter()
                    .map(|(d, _)| (d.to_string(), "blob"))
                    .chain(m.manifests.iter().map(|d| (d.to_string(), "manifest")))
                    .unzip();
                if !children.is_empty() {
                    tx.defer(
                        "INSERT INTO manifest_refs (repo, manifest, child, kind)
                         SELECT $1, $2, child, kind FROM unnest($3::text[], $4::text[]) AS r(child, kind)
                         ON CONFLICT DO NOTHING",
                        values![repo.to_owned(), digest.clone(), children, kinds],
                    )?;
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
            let current: BTreeMap<String, String> = answers
                .get(4)
                .into_iter()
                .flatten()
                .map(|r| Ok((col(r, 0)?, col(r, 1)?)))
                .collect::<Result<_>>()?;
            for tag in names.iter().copied() {
                if guarded.contains(&tag) {
                    let from = current.get(tag).cloned();
                    move_tag_from(
                        tx,
                        repo,
                        tag,
                        from,
                        Some(&digest),
                        immutable,
                        Operation::Push,
                        actor,
                    )?;
                } else {
                    push_tag(tx, repo, tag, &digest, actor)?;
                }
            }
            Ok(())
        };
        // A logged delete of this manifest that commits between the checks
        // (before the lock) and the tags' moves (after it) leaves the moves
        // pointing at a row that is gone: the write runs again, locking
        // first, and puts the row back, as it would have after the delete.
        match self.write_logged(&mut write) {
            Err(Error::Postgres(e))
                if !lock_first.get() && e.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) =>
            {
                lock_first.set(true);
                self.write_logged(&mut write)
            }
            done => done,
        }
    }

    fn manifest_by_digest(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Option<StoredManifest>> {
        self.read(|c| {
            let row = c.query_opt(
                "SELECT media_type, size FROM manifests WHERE repo = $1 AND digest = $2",
                &[&repo.as_str(), &digest.to_string()],
            )?;
            row.map(|r| {
                Ok(StoredManifest {
                    digest: digest.clone(),
                    media_type: col(&r, 0)?,
                    size: to_u64(col(&r, 1)?),
                })
            })
            .transpose()
        })
    }

    fn manifest_by_tag(&self, repo: &RepoName, tag: &Tag) -> Result<Option<StoredManifest>> {
        self.read(|c| {
            let row = c.query_opt(
                "SELECT m.digest, m.media_type, m.size FROM tags t
                 JOIN manifests m ON m.repo = t.repo AND m.digest = t.digest
                 WHERE t.repo = $1 AND t.name = $2",
                &[&repo.as_str(), &tag.as_str()],
            )?;
            row.map(|r| {
                Ok(StoredManifest {
                    digest: digest_column(col(&r, 0)?)?,
                    media_type: col(&r, 1)?,
                    size: to_u64(col(&r, 2)?),
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
        self.write_logged(|tx| {
            let tags = tx.query(
                "SELECT name FROM tags WHERE repo = $1 AND digest = $2",
                &[&repo, &digest],
            )?;
            for row in &tags {
                let tag: String = col(row, 0)?;
                move_tag(
                    tx,
                    repo,
                    &tag,
                    None,
                    immutable,
                    Operation::DeleteManifest,
                    actor,
                )?;
            }
            // A model version takes its lineage with it; facts it stated about
            // others go with it through the foreign key.
            tx.defer(
                "DELETE FROM lineage WHERE repo = $1 AND model = $2",
                values![repo.to_owned(), digest.clone()],
            )?;
            let n = tx.execute(
                "DELETE FROM manifests WHERE repo = $1 AND digest = $2",
                &[&repo, &digest],
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
        self.write_logged(|tx| {
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

/// Inside the write transaction: every blob `m` names is held by the
/// repository with the size its descriptor claims (`held`: digest and size
/// rows), and every child manifest is there (`children`: digest rows).
fn check_references(m: &NewManifest, held: &[Row], children: &[Row]) -> Result<()> {
    let held: BTreeMap<String, u64> = held
        .iter()
        .map(|r| Ok((col(r, 0)?, to_u64(col::<i64>(r, 1)?))))
        .collect::<Result<_>>()?;
    m.check_blobs(|d| held.get(&d.to_string()).copied())?;
    let children: BTreeSet<String> = children.iter().map(|r| col(r, 0)).collect::<Result<_>>()?;
    match m
        .manifests
        .iter()
        .find(|d| !children.contains(&d.to_string()))
    {
        Some(digest) => Err(Error::ManifestBlobUnknown(digest.clone())),
        None => Ok(()),
    }
}

/// Points `tag` at `to` (or removes it, for `None`) and records the move in the
/// history and the event log. An immutable tag that points elsewhere is not
/// moved. Returns whether anything changed.
pub(super) fn move_tag(
    tx: &mut Conn,
    repo: &str,
    tag: &str,
    to: Option<&str>,
    immutable: &[Glob],
    operation: Operation,
    actor: &Actor,
) -> Result<bool> {
    let from = current_tag(tx, repo, tag)?;
    move_tag_from(tx, repo, tag, from, to, immutable, operation, actor)
}

/// [`move_tag`] for a tag known to point at `from` now.
#[allow(clippy::too_many_arguments)]
pub(super) fn move_tag_from(
    tx: &mut Conn,
    repo: &str,
    tag: &str,
    from: Option<String>,
    to: Option<&str>,
    immutable: &[Glob],
    operation: Operation,
    actor: &Actor,
) -> Result<bool> {
    if from.as_deref() == to {
        return Ok(false);
    }
    if from.is_some() && any_matches(immutable, tag) {
        return Err(Error::TagImmutable(format!("{repo}:{tag}")));
    }
    let now = now_ms();
    match to {
        Some(digest) => tx.defer(
            "INSERT INTO tags (repo, name, digest, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (repo, name) DO UPDATE
                 SET digest = excluded.digest, updated_at = excluded.updated_at",
            values![repo.to_owned(), tag.to_owned(), digest.to_owned(), now],
        )?,
        None => tx.defer(
            "DELETE FROM tags WHERE repo = $1 AND name = $2",
            values![repo.to_owned(), tag.to_owned()],
        )?,
    };
    tx.lock_log()?;
    tx.defer(
        "INSERT INTO tag_history (repo, tag, old_digest, new_digest, at, actor, operation, reason)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        values![
            repo.to_owned(),
            tag.to_owned(),
            from.clone(),
            to.map(str::to_owned),
            now,
            actor.name.clone(),
            operation.as_str(),
            actor.reason.clone(),
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

/// Points `tag` at `digest` for a push, by one statement deferred to the
/// write's next round trip (its commit), which reads where the tag pointed
/// (under the log's lock) and writes the move's history and event; a tag
/// that points there already is left alone (not even locked: a push that
/// changes nothing writes nothing, and its commit waits for no disk). Only
/// for a tag no immutable rule covers: a covered one moves by
/// [`move_tag_from`], which reads first, as its move may be refused.
fn push_tag(tx: &mut Conn, repo: &str, tag: &str, digest: &str, actor: &Actor) -> Result<()> {
    tx.lock_log()?;
    tx.defer(
        "WITH old AS (SELECT digest FROM tags WHERE repo = $1 AND name = $2),
              moved AS (INSERT INTO tags (repo, name, digest, updated_at)
                        SELECT $1, $2, $3, $4
                        WHERE NOT EXISTS (SELECT 1 FROM old WHERE digest = $3)
                        ON CONFLICT (repo, name) DO UPDATE
                            SET digest = excluded.digest, updated_at = excluded.updated_at
                        RETURNING 1),
              history AS (INSERT INTO tag_history
                              (repo, tag, old_digest, new_digest, at, actor, operation, reason)
                          SELECT $1, $2, (SELECT digest FROM old), $3, $4, $5, $6, $7 FROM moved)
         INSERT INTO events (at, action, repo, digest, tag, media_type, size, actor, old_digest, reason)
         SELECT $4, $8, $1, $3, $2, NULL, NULL, $5, (SELECT digest FROM old), $7 FROM moved",
        values![
            repo.to_owned(),
            tag.to_owned(),
            digest.to_owned(),
            now_ms(),
            actor.name.clone(),
            Operation::Push.as_str(),
            actor.reason.clone(),
            EventAction::Tag.as_str(),
        ],
    )
}

/// The digest a tag points at now.
pub(super) fn current_tag(tx: &mut Conn, repo: &str, tag: &str) -> Result<Option<String>> {
    tx.query_opt(
        "SELECT digest FROM tags WHERE repo = $1 AND name = $2",
        &[&repo, &tag],
    )?
    .map(|r| col(&r, 0))
    .transpose()
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

/// Appends to the event log, its id drawn under the log's lock (deferred:
/// it goes out with the write's next round trip).
pub(super) fn event(tx: &mut Conn, e: &EventRow<'_>, actor: &Actor) -> Result<()> {
    tx.lock_log()?;
    tx.defer(
        "INSERT INTO events (at, action, repo, digest, tag, media_type, size, actor, old_digest, reason)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        values![
            now_ms(),
            e.action.as_str(),
            e.repo.to_owned(),
            e.digest.map(str::to_owned),
            e.tag.map(str::to_owned),
            e.media_type.map(str::to_owned),
            e.size.map(to_i64),
            actor.name.clone(),
            e.old_digest.map(str::to_owned),
            actor.reason.clone(),
        ],
    )
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
