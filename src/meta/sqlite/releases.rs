//! Guarded tag moves, tag history, the event log and webhook cursors.

use rusqlite::{OptionalExtension, Row, params};

use super::manifests::{EventRow, current_tag, event, move_tag};
use super::{Sqlite, digest_column, now_ms, repo_column, tag_column, to_u64, word_column};
use crate::error::{Error, Result};
use crate::glob::Glob;
use crate::meta::{
    Actor, Event, EventAction, Expect, HistoryEntry, NewEvent, Operation, ReleaseMeta,
};
use crate::oci::{Digest, RepoName, Tag};

const HISTORY_COLUMNS: &str = "id, tag, old_digest, new_digest, at, actor, operation, reason";

/// id, tag, old, new, at, actor, operation, reason
type HistoryRow = (
    i64,
    String,
    Option<String>,
    Option<String>,
    i64,
    Option<String>,
    String,
    Option<String>,
);

fn history_row(r: &Row<'_>) -> rusqlite::Result<HistoryRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
    ))
}

fn history_entry(
    (id, tag, old, new, at_ms, actor, operation, reason): HistoryRow,
) -> Result<HistoryEntry> {
    Ok(HistoryEntry {
        id,
        tag: tag_column(tag)?,
        old: old.map(digest_column).transpose()?,
        new: new.map(digest_column).transpose()?,
        at_ms,
        actor,
        operation: word_column(operation, Operation::parse)?,
        reason,
    })
}

impl ReleaseMeta for Sqlite {
    fn set_tag(
        &self,
        repo: &RepoName,
        tag: &Tag,
        to: &Digest,
        expect: &Expect,
        immutable: &[Glob],
        operation: Operation,
        actor: &Actor,
    ) -> Result<Option<Digest>> {
        let (repo, tag, to) = (repo.as_str(), tag.as_str(), to.to_string());
        self.write(|tx| {
            let exists = tx
                .prepare_cached("SELECT 1 FROM manifests WHERE repo = ?1 AND digest = ?2")?
                .exists(params![repo, to])?;
            if !exists {
                return Err(Error::ManifestUnknown(format!("{repo}@{to}")));
            }
            let current = current_tag(tx, repo, tag)?;
            if let Expect::Digest(expected) = expect
                && current.as_deref() != Some(expected.to_string().as_str())
            {
                return Err(Error::PreconditionFailed {
                    tag: format!("{repo}:{tag}"),
                    expected: expected.to_string(),
                    current: current.unwrap_or_else(|| "nothing".into()),
                });
            }
            move_tag(tx, repo, tag, Some(&to), immutable, operation, actor)?;
            current.map(digest_column).transpose()
        })
    }

    fn tag_history(
        &self,
        repo: &RepoName,
        tag: &Tag,
        before: Option<i64>,
        n: usize,
    ) -> Result<Vec<HistoryEntry>> {
        let sql = format!(
            "SELECT {HISTORY_COLUMNS} FROM tag_history WHERE repo = ?1 AND tag = ?2 AND id < ?3 ORDER BY id DESC LIMIT ?4"
        );
        self.read(|c| {
            let rows = c
                .prepare_cached(&sql)?
                .query_map(
                    params![
                        repo.as_str(),
                        tag.as_str(),
                        before.unwrap_or(i64::MAX),
                        n as i64
                    ],
                    history_row,
                )?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter().map(history_entry).collect()
        })
    }

    fn tag_at(&self, repo: &RepoName, tag: &Tag, at_ms: i64) -> Result<Option<HistoryEntry>> {
        let sql = format!(
            "SELECT {HISTORY_COLUMNS} FROM tag_history WHERE repo = ?1 AND tag = ?2 AND at <= ?3 ORDER BY id DESC LIMIT 1"
        );
        self.read(|c| {
            c.prepare_cached(&sql)?
                .query_row(params![repo.as_str(), tag.as_str(), at_ms], history_row)
                .optional()?
                .map(history_entry)
                .transpose()
        })
    }

    fn tags_on(&self, repo: &RepoName, digest: &Digest) -> Result<Vec<Tag>> {
        self.read(|c| {
            let names = c
                .prepare_cached(
                    "SELECT name FROM tags WHERE repo = ?1 AND digest = ?2 ORDER BY name",
                )?
                .query_map(params![repo.as_str(), digest.to_string()], |r| r.get(0))?
                .collect::<Result<Vec<String>, _>>()?;
            names.into_iter().map(tag_column).collect()
        })
    }

    fn record_event(&self, e: &NewEvent, actor: &Actor) -> Result<()> {
        self.write(|tx| {
            let (digest, old) = (
                e.digest.as_ref().map(Digest::to_string),
                e.old_digest.as_ref().map(Digest::to_string),
            );
            let row = EventRow {
                old_digest: old.as_deref(),
                ..EventRow::new(
                    e.action,
                    e.repo.as_str(),
                    digest.as_deref(),
                    e.tag.as_ref().map(Tag::as_str),
                )
            };
            event(tx, &row, actor)
        })
    }

    fn events_after(&self, after: i64, n: usize) -> Result<Vec<Event>> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE id > ?1 ORDER BY id LIMIT ?2"
            ))?
            .query_map(params![after, n as i64], |r| Ok(event_entry(r)))?
            .collect::<Result<Result<Vec<_>>, _>>()?
        })
    }

    fn refusals(&self, repo: &RepoName, tag: &Tag, n: usize) -> Result<Vec<Event>> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events
                 WHERE repo = ?1 AND tag = ?2 AND action = 'promote-refused'
                 ORDER BY id DESC LIMIT ?3"
            ))?
            .query_map(params![repo.as_str(), tag.as_str(), n as i64], |r| {
                Ok(event_entry(r))
            })?
            .collect::<Result<Result<Vec<_>>, _>>()?
        })
    }

    fn events_since(&self, after: i64) -> Result<u64> {
        self.read(|c| {
            Ok(
                c.prepare_cached("SELECT COUNT(*) FROM events WHERE id > ?1")?
                    .query_row(params![after], |r| r.get(0))?,
            )
        })
    }

    fn webhook_cursor(&self, name: &str) -> Result<i64> {
        self.read(|c| {
            Ok(
                c.prepare_cached("SELECT last_event FROM webhook_cursors WHERE name = ?1")?
                    .query_row(params![name], |r| r.get(0))
                    .optional()?
                    .unwrap_or(0),
            )
        })
    }

    fn set_webhook_cursor(&self, name: &str, last_event: i64) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO webhook_cursors (name, last_event, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name) DO UPDATE SET last_event = excluded.last_event, updated_at = excluded.updated_at",
                params![name, last_event, now_ms()],
            )?;
            Ok(())
        })
    }
}

/// The columns [`event_entry`] reads, in its order.
const EVENT_COLUMNS: &str =
    "id, at, action, repo, digest, tag, media_type, size, actor, old_digest, reason";

fn event_entry(r: &Row) -> Result<Event> {
    let text = |i| r.get::<_, String>(i);
    let optional = |i| r.get::<_, Option<String>>(i);
    Ok(Event {
        id: r.get(0)?,
        at_ms: r.get(1)?,
        action: word_column(text(2)?, EventAction::parse)?,
        repo: repo_column(text(3)?)?,
        digest: optional(4)?.map(digest_column).transpose()?,
        tag: optional(5)?.map(tag_column).transpose()?,
        media_type: r.get(6)?,
        size: r.get::<_, Option<i64>>(7)?.map(to_u64),
        actor: r.get(8)?,
        old_digest: optional(9)?.map(digest_column).transpose()?,
        reason: r.get(10)?,
    })
}
