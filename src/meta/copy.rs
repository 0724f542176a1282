//! Moving up: copies a SQLite metadata database into an empty PostgreSQL
//! one, row for row (ids, times, history, lineage, events, webhook cursors
//! and upload sessions included), in one transaction. The one place that
//! knows both schemas.

use std::path::Path;

use rusqlite::types::ValueRef;
use tokio_postgres::types::ToSql;

use super::postgres::Postgres;
use crate::error::{Error, Result};

/// How a column is kept in PostgreSQL (SQLite keeps booleans as integers).
#[derive(Clone, Copy)]
enum Kind {
    Text,
    Int,
    Bool,
    Bytes,
}

use Kind::{Bool, Bytes, Int, Text};

/// A table in the order foreign keys allow, and its columns: the SQLite
/// name and the PostgreSQL name (they differ only where PostgreSQL reserves
/// the word).
type Table = (&'static str, &'static [(&'static str, &'static str, Kind)]);

const TABLES: &[Table] = &[
    (
        "repositories",
        &[("name", "name", Text), ("created_at", "created_at", Int)],
    ),
    (
        "contents",
        &[
            ("digest", "digest", Text),
            ("size", "size", Int),
            ("created_at", "created_at", Int),
            ("corrupt", "corrupt", Bool),
        ],
    ),
    (
        "repo_blobs",
        &[
            ("repo", "repo", Text),
            ("digest", "digest", Text),
            ("created_at", "created_at", Int),
        ],
    ),
    (
        "manifests",
        &[
            ("repo", "repo", Text),
            ("digest", "digest", Text),
            ("media_type", "media_type", Text),
            ("artifact_type", "artifact_type", Text),
            ("subject", "subject", Text),
            ("size", "size", Int),
            ("annotations", "annotations", Text),
            ("created_at", "created_at", Int),
        ],
    ),
    (
        "manifest_refs",
        &[
            ("repo", "repo", Text),
            ("manifest", "manifest", Text),
            ("child", "child", Text),
            ("kind", "kind", Text),
        ],
    ),
    (
        "tags",
        &[
            ("repo", "repo", Text),
            ("name", "name", Text),
            ("digest", "digest", Text),
            ("updated_at", "updated_at", Int),
        ],
    ),
    (
        "tag_history",
        &[
            ("id", "id", Int),
            ("repo", "repo", Text),
            ("tag", "tag", Text),
            ("old_digest", "old_digest", Text),
            ("new_digest", "new_digest", Text),
            ("at", "at", Int),
            ("actor", "actor", Text),
            ("operation", "operation", Text),
            ("reason", "reason", Text),
        ],
    ),
    (
        "uploads",
        &[
            ("id", "id", Text),
            ("repo", "repo", Text),
            ("offset", "received", Int),
            ("hash_state", "hash_state", Bytes),
            ("created_at", "created_at", Int),
            ("updated_at", "updated_at", Int),
            ("finishing", "finishing", Text),
            ("owner", "owner", Text),
            ("storage_state", "storage_state", Bytes),
        ],
    ),
    (
        "upload_parts",
        &[
            ("upload_id", "upload_id", Text),
            ("seq", "seq", Int),
            ("name", "name", Text),
            ("size", "size", Int),
        ],
    ),
    (
        "events",
        &[
            ("id", "id", Int),
            ("at", "at", Int),
            ("action", "action", Text),
            ("repo", "repo", Text),
            ("digest", "digest", Text),
            ("tag", "tag", Text),
            ("media_type", "media_type", Text),
            ("size", "size", Int),
            ("actor", "actor", Text),
            ("old_digest", "old_digest", Text),
            ("reason", "reason", Text),
        ],
    ),
    (
        "lineage",
        &[
            ("id", "id", Int),
            ("repo", "repo", Text),
            ("origin", "origin", Text),
            ("model", "model", Text),
            ("kind", "kind", Text),
            ("relation", "relation", Text),
            ("target", "target", Text),
            ("target_repo", "target_repo", Text),
            ("uri", "uri", Text),
            ("name", "name", Text),
            ("revision", "revision", Text),
            ("detail", "detail", Text),
        ],
    ),
    (
        "webhook_cursors",
        &[
            ("name", "name", Text),
            ("last_event", "last_event", Int),
            ("updated_at", "updated_at", Int),
        ],
    ),
    (
        "gc_tombstones",
        &[("digest", "digest", Text), ("at", "at", Int)],
    ),
];

/// Rows copied, per table.
#[derive(Debug, serde::Serialize)]
pub struct CopyReport {
    pub tables: Vec<(String, u64)>,
}

/// Copies the SQLite database at `from` into PostgreSQL at `to` (migrated
/// first), which must hold no repository yet. Run it with the registry
/// stopped; check the result with `berth fsck` against the new database.
pub async fn sqlite_to_postgres(from: &Path, to: &str) -> Result<CopyReport> {
    if !from.is_file() {
        return Err(Error::Config(format!(
            "no SQLite database at {}",
            from.display()
        )));
    }
    // Migrates the source first, so that it has every column copied.
    drop(super::sqlite::Sqlite::open(from)?);
    let target = Postgres::connect(to, 2).await?;
    let from = from.to_path_buf();
    tokio::task::spawn_blocking(move || copy(&from, &target))
        .await
        .map_err(|e| Error::Internal(format!("copy task: {e}")))?
}

fn copy(from: &Path, target: &Postgres) -> Result<CopyReport> {
    let source = rusqlite::Connection::open_with_flags(
        from,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    // One read transaction: a consistent picture of the source.
    source.execute_batch("BEGIN")?;
    target.write(|tx| {
        let used = tx.query_one("SELECT EXISTS (SELECT 1 FROM repositories)", &[])?;
        if super::postgres::col::<bool>(&used, 0)? {
            return Err(Error::Config(format!(
                "the PostgreSQL database at {} holds repositories already; copy into an empty one",
                target.shown_url()
            )));
        }
        let mut tables = Vec::new();
        for (table, columns) in TABLES {
            let n = copy_table(&source, tx, table, columns)?;
            tables.push(((*table).to_owned(), n));
        }
        // The tags' triggers counted versions of their own while copying:
        // put back the source's versions and their changes.
        tx.execute("DELETE FROM tag_name_changes", &[])?;
        let versions = source
            .prepare("SELECT name, tag_names FROM repositories")?
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        for (name, version) in &versions {
            tx.execute(
                "UPDATE repositories SET tag_names = $2 WHERE name = $1",
                &[name, version],
            )?;
        }
        let changes = copy_table(
            &source,
            tx,
            "tag_name_changes",
            &[
                ("repo", "repo", Text),
                ("version", "version", Int),
                ("name", "name", Text),
                ("present", "present", Bool),
            ],
        )?;
        tables.push(("tag_name_changes".into(), changes));
        // New ids follow the copied ones.
        for table in ["tag_history", "events", "lineage"] {
            tx.execute(
                &format!(
                    "SELECT setval(pg_get_serial_sequence('{table}', 'id'),
                                   GREATEST(COALESCE(MAX(id), 0), 1), COALESCE(MAX(id), 0) > 0)
                     FROM {table}"
                ),
                &[],
            )?;
        }
        Ok(CopyReport { tables })
    })
}

/// Copies every row of one table; how many.
fn copy_table(
    source: &rusqlite::Connection,
    tx: &mut super::postgres::Conn,
    table: &str,
    columns: &[(&str, &str, Kind)],
) -> Result<u64> {
    let read: Vec<String> = columns.iter().map(|(s, _, _)| format!("\"{s}\"")).collect();
    let written: Vec<&str> = columns.iter().map(|(_, p, _)| *p).collect();
    let marks: Vec<String> = (1..=columns.len()).map(|i| format!("${i}")).collect();
    let insert = format!(
        "INSERT INTO {table} ({}) VALUES ({})",
        written.join(", "),
        marks.join(", ")
    );
    let mut stmt = source.prepare(&format!("SELECT {} FROM {table}", read.join(", ")))?;
    let mut rows = stmt.query([])?;
    let mut n = 0;
    while let Some(row) = rows.next()? {
        let mut values: Vec<Box<dyn ToSql + Sync>> = Vec::with_capacity(columns.len());
        for (i, (name, _, kind)) in columns.iter().enumerate() {
            values.push(value(row.get_ref(i)?, *kind).ok_or_else(|| {
                Error::Internal(format!("{table}.{name}: a value of another type"))
            })?);
        }
        let params: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| v.as_ref()).collect();
        tx.execute(&insert, &params)?;
        n += 1;
    }
    Ok(n)
}

/// A SQLite value as PostgreSQL takes it for a column of `kind`; `None` if
/// it is of another type.
fn value(v: ValueRef<'_>, kind: Kind) -> Option<Box<dyn ToSql + Sync>> {
    Some(match (kind, v) {
        (Text, ValueRef::Null) => Box::new(None::<String>),
        (Int, ValueRef::Null) => Box::new(None::<i64>),
        (Bool, ValueRef::Null) => Box::new(None::<bool>),
        (Bytes, ValueRef::Null) => Box::new(None::<Vec<u8>>),
        (Text, ValueRef::Text(t)) => Box::new(String::from_utf8_lossy(t).into_owned()),
        (Int, ValueRef::Integer(i)) => Box::new(i),
        (Bool, ValueRef::Integer(i)) => Box::new(i != 0),
        (Bytes, ValueRef::Blob(b)) => Box::new(b.to_vec()),
        (Bytes, ValueRef::Text(t)) => Box::new(t.to_vec()),
        _ => return None,
    })
}
