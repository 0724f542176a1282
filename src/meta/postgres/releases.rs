//! Guarded tag moves, tag history, the event log and webhook cursors.

use tokio_postgres::Row;

use super::manifests::{EventRow, current_tag, event, move_tag_from};
use super::{Postgres, col, digest_column, now_ms, repo_column, tag_column, to_u64, word_column};
use crate::error::{Error, Result};
use crate::glob::Glob;
use crate::meta::{
    Actor, Event, EventAction, Expect, HistoryEntry, NewEvent, Operation, ReleaseMeta,
};
use crate::oci::{Digest, RepoName, Tag};

const HISTORY_COLUMNS: &str = "id, tag, old_digest, new_digest, at, actor, operation, reason";

fn history_entry(r: &Row) -> Result<HistoryEntry> {
    Ok(HistoryEntry {
        id: col(r, 0)?,
        tag: tag_column(col(r, 1)?)?,
        old: col::<Option<String>>(r, 2)?
            .map(digest_column)
            .transpose()?,
        new: col::<Option<String>>(r, 3)?
            .map(digest_column)
            .transpose()?,
        at_ms: col(r, 4)?,
        actor: col(r, 5)?,
        operation: word_column(col(r, 6)?, Operation::parse)?,
        reason: col(r, 7)?,
    })
}

/// The columns [`event_entry`] reads, in its order.
const EVENT_COLUMNS: &str =
    "id, at, action, repo, digest, tag, media_type, size, actor, old_digest, reason";

fn event_entry(r: &Row) -> Result<Event> {
    let digest = |i| -> Result<Option<Digest>> {
        col::<Option<String>>(r, i)?.map(digest_column).transpose()
    };
    Ok(Event {
        id: col(r, 0)?,
        at_ms: col(r, 1)?,
        action: word_column(col(r, 2)?, EventAction::parse)?,
        repo: repo_column(col(r, 3)?)?,
        digest: digest(4)?,
        tag: col::<Option<String>>(r, 5)?.map(tag_column).transpose()?,
        media_type: col(r, 6)?,
        size: col::<Option<i64>>(r, 7)?.map(to_u64),
        actor: col(r, 8)?,
        old_digest: digest(9)?,
        reason: col(r, 10)?,
    })
}

impl ReleaseMeta for Postgres {
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
        self.write_logged(|tx| {
            if !tx.exists(
                "SELECT 1 FROM manifests WHERE repo = $1 AND digest = $2",
                &[&repo, &to],
            )? {
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
            move_tag_from(
                tx,
                repo,
                tag,
                current.clone(),
                Some(&to),
                immutable,
                operation,
                actor,
            )?;
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
            "SELECT {HISTORY_COLUMNS} FROM tag_history WHERE repo = $1 AND tag = $2 AND id < $3
             ORDER BY id DESC LIMIT $4"
        );
        self.read(|c| {
            c.query(
                &sql,
                &[
                    &repo.as_str(),
                    &tag.as_str(),
                    &before.unwrap_or(i64::MAX),
                    &(n as i64),
                ],
            )?
            .iter()
            .map(history_entry)
            .collect()
        })
    }

    fn tag_at(&self, repo: &RepoName, tag: &Tag, at_ms: i64) -> Result<Option<HistoryEntry>> {
        let sql = format!(
            "SELECT {HISTORY_COLUMNS} FROM tag_history WHERE repo = $1 AND tag = $2 AND at <= $3
             ORDER BY id DESC LIMIT 1"
        );
        self.read(|c| {
            c.query_opt(&sql, &[&repo.as_str(), &tag.as_str(), &at_ms])?
                .as_ref()
                .map(history_entry)
                .transpose()
        })
    }

    fn tags_on(&self, repo: &RepoName, digest: &Digest) -> Result<Vec<Tag>> {
        self.read(|c| {
            c.query(
                "SELECT name FROM tags WHERE repo = $1 AND digest = $2 ORDER BY name",
                &[&repo.as_str(), &digest.to_string()],
            )?
            .iter()
            .map(|r| tag_column(col(r, 0)?))
            .collect()
        })
    }

    fn record_event(&self, e: &NewEvent, actor: &Actor) -> Result<()> {
        let (digest, old) = (
            e.digest.as_ref().map(Digest::to_string),
            e.old_digest.as_ref().map(Digest::to_string),
        );
        self.write_logged(|tx| {
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
            c.query(
                &format!("SELECT {EVENT_COLUMNS} FROM events WHERE id > $1 ORDER BY id LIMIT $2"),
                &[&after, &(n as i64)],
            )?
            .iter()
            .map(event_entry)
            .collect()
        })
    }

    fn refusals(&self, repo: &RepoName, tag: &Tag, n: usize) -> Result<Vec<Event>> {
        self.read(|c| {
            c.query(
                &format!(
                    "SELECT {EVENT_COLUMNS} FROM events
                     WHERE repo = $1 AND tag = $2 AND action = 'promote-refused'
                     ORDER BY id DESC LIMIT $3"
                ),
                &[&repo.as_str(), &tag.as_str(), &(n as i64)],
            )?
            .iter()
            .map(event_entry)
            .collect()
        })
    }

    fn events_since(&self, after: i64) -> Result<u64> {
        self.read(|c| {
            let row = c.query_one("SELECT COUNT(*) FROM events WHERE id > $1", &[&after])?;
            Ok(to_u64(col(&row, 0)?))
        })
    }

    fn webhook_cursor(&self, name: &str) -> Result<i64> {
        self.read(|c| {
            c.query_opt(
                "SELECT last_event FROM webhook_cursors WHERE name = $1",
                &[&name],
            )?
            .map_or(Ok(0), |r| col(&r, 0))
        })
    }

    fn set_webhook_cursor(&self, name: &str, last_event: i64) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO webhook_cursors (name, last_event, updated_at) VALUES ($1, $2, $3)
                 ON CONFLICT (name) DO UPDATE
                     SET last_event = excluded.last_event, updated_at = excluded.updated_at",
                &[&name, &last_event, &now_ms()],
            )?;
            Ok(())
        })
    }
}
