//! The embedded metadata database: SQLite in WAL mode, one writer connection and
//! a small pool of readers. All SQL runs on the caller's (blocking) thread.

mod blobs;
mod gc;
mod lineage;
mod listing;
mod manifests;
mod releases;
mod uploads;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags};

use crate::error::{Error, Result};
use crate::meta::Changes;

/// Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_init.sql"),
    include_str!("migrations/0002_lineage.sql"),
    include_str!("migrations/0003_releases.sql"),
    include_str!("migrations/0004_gc.sql"),
    include_str!("migrations/0005_upload_owner.sql"),
    include_str!("migrations/0006_multipart.sql"),
    include_str!("migrations/0007_tag_names.sql"),
    include_str!("migrations/0008_tag_name_changes.sql"),
    include_str!("migrations/0009_storage_state.sql"),
    include_str!("migrations/0010_refusals.sql"),
    include_str!("migrations/0011_refs_without_child_index.sql"),
];
/// Page cache of each reader connection, in KiB (SQLite's negative cache_size).
const READER_CACHE_KIB: i64 = -512;
/// Prepared statements kept per connection (rusqlite's default is 16, fewer
/// than the statements a busy registry runs).
const STATEMENT_CACHE: usize = 64;
/// Reader connections at most; readers beyond wait for one.
const MAX_READERS: usize = 8;

pub struct Sqlite {
    path: Option<std::path::PathBuf>,
    writer: Mutex<Writer>,
    readers: Mutex<Readers>,
    /// Signalled when a reader connection is handed back.
    returned: std::sync::Condvar,
    /// Committed write transactions so far (see [`Changes`]).
    writes: AtomicU64,
    /// The writer's `settled`, readable without its lock.
    settled: Arc<AtomicU64>,
    /// The write-ahead log, synced apart from the writer's lock.
    log: Mutex<Log>,
}

/// The write-ahead log as synced by [`Sqlite::sync_log`].
struct Log {
    /// Its path (none in memory).
    path: Option<std::path::PathBuf>,
    /// Every group up to this one is durable.
    durable: u64,
    /// The log file last synced into its directory.
    inode: Option<u64>,
    /// Syncs so far.
    syncs: u64,
}

/// The writer connection and the group of writes open on it (see
/// [`Sqlite::write`]). Groups are numbered; each commits before the next begins.
struct Writer {
    conn: Connection,
    /// The newest group begun.
    batch: u64,
    /// The newest group committed or lost.
    settled: Arc<AtomicU64>,
    /// Recent groups whose commit failed: whether for want of space, and why.
    failed: std::collections::VecDeque<(u64, bool, String)>,
}

/// When a write's commit must reach the disk.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Durability {
    /// Before the write returns.
    Synced,
    /// With the next synced write. For state whose loss in a power cut costs
    /// nothing acknowledged (a new, empty upload session; a guard that only
    /// matters while its process lives); a crash of the process alone loses
    /// nothing, as the log is written before the write returns.
    Deferred,
}

/// Failed groups remembered for their members to read.
const FAILED_KEPT: usize = 64;

impl Writer {
    fn new(conn: Connection) -> Writer {
        Writer {
            conn,
            batch: 0,
            settled: Arc::default(),
            failed: std::collections::VecDeque::new(),
        }
    }

    /// The group a write joins, beginning one if none is open.
    fn join(&mut self) -> Result<u64> {
        if self.settled() == self.batch {
            exec(&self.conn, "BEGIN IMMEDIATE", [])?;
            self.batch += 1;
        }
        Ok(self.batch)
    }

    /// The newest group committed or lost.
    fn settled(&self) -> u64 {
        self.settled.load(Ordering::SeqCst)
    }

    /// Marks the open group committed, or lost because of `why`.
    fn settle(&mut self, batch: u64, why: Option<&Error>) {
        self.settled.store(batch, Ordering::SeqCst);
        if let Some(why) = why {
            let full = matches!(why, Error::StorageFull(_));
            self.failed.push_back((batch, full, why.to_string()));
            if self.failed.len() > FAILED_KEPT {
                self.failed.pop_front();
            }
        }
    }

    /// Why a settled group failed, if it did.
    fn failure(&self, batch: u64) -> Option<Error> {
        let (_, full, why) = self.failed.iter().find(|(b, _, _)| *b == batch)?;
        Some(if *full {
            Error::StorageFull(why.clone())
        } else {
            Error::Internal(format!("a grouped database commit failed: {why}"))
        })
    }
}

impl Log {
    fn new(db: Option<&Path>) -> Log {
        Log {
            path: db.map(|p| {
                let mut wal = p.as_os_str().to_owned();
                wal.push("-wal");
                std::path::PathBuf::from(wal)
            }),
            durable: 0,
            inode: None,
            syncs: 0,
        }
    }

    /// Syncs the log file; the first time a log file is seen, its name in
    /// the directory too.
    fn sync(&mut self) -> Result<()> {
        use std::os::unix::fs::MetadataExt;
        let Some(path) = &self.path else {
            return Ok(());
        };
        let file = std::fs::File::open(path)?;
        file.sync_all()?;
        self.syncs += 1;
        let inode = file.metadata()?.ino();
        if self.inode != Some(inode) {
            if let Some(dir) = path.parent() {
                let dir = if dir.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    dir
                };
                std::fs::File::open(dir)?.sync_all()?;
            }
            self.inode = Some(inode);
        }
        Ok(())
    }
}

/// The reader pool: idle connections, and how many exist in all.
#[derive(Default)]
struct Readers {
    idle: Vec<Connection>,
    open: usize,
}

impl Changes for Sqlite {
    fn generation(&self) -> u64 {
        self.writes.load(Ordering::SeqCst)
    }
}

/// Embedded: no round trips.
impl crate::meta::Traffic for Sqlite {}

/// One process owns the file, and leads.
impl crate::meta::Leadership for Sqlite {
    fn lead(&self) -> Result<bool> {
        Ok(true)
    }
}

impl std::fmt::Debug for Sqlite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sqlite({:?})", self.path)
    }
}

impl Sqlite {
    /// Opens (creating if needed) the database file and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Sqlite> {
        Sqlite::with_writer(Connection::open(path)?, Some(path))
    }

    /// A private in-memory database (readers share the writer); for tests.
    pub fn in_memory() -> Result<Sqlite> {
        Sqlite::with_writer(Connection::open_in_memory()?, None)
    }

    /// Configures and migrates the writer connection of the database at
    /// `path` (none in memory).
    fn with_writer(writer: Connection, path: Option<&Path>) -> Result<Sqlite> {
        configure(&writer)?;
        migrate(&writer)?;
        let writer = Writer::new(writer);
        Ok(Sqlite {
            path: path.map(Path::to_path_buf),
            settled: Arc::clone(&writer.settled),
            writer: Mutex::new(writer),
            readers: Mutex::default(),
            returned: std::sync::Condvar::new(),
            writes: AtomicU64::new(0),
            log: Mutex::new(Log::new(path)),
        })
    }

    /// Runs `f` as one atomic write and returns once it is durable: its
    /// changes are kept only if it returns Ok.
    ///
    /// Writes are committed in groups. `f` runs inside a savepoint of the
    /// transaction open on the writer connection (beginning one if none is
    /// open); then the caller lets go of the connection, so that writers
    /// waiting for it add their own changes to the same transaction, and
    /// takes it back to commit the group, unless one of them already did.
    /// The log is synced after the connection is let go (see
    /// [`Self::sync_log`]), so the next group gathers while it is: one fsync
    /// makes many writes durable, instead of one each.
    pub(crate) fn write<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        self.write_with(Durability::Synced, f)
    }

    /// [`Self::write`] with a choice of when the commit must be durable.
    pub(crate) fn write_with<T>(
        &self,
        durability: Durability,
        f: impl FnOnce(&Connection) -> Result<T>,
    ) -> Result<T> {
        let (batch, value) = {
            let mut w = self.writer.lock().map_err(|_| poisoned())?;
            let batch = w.join()?;
            exec(&w.conn, "SAVEPOINT op", [])?;
            let value = f(&w.conn);
            if w.conn.is_autocommit() {
                // SQLite rolled the whole transaction back (a full disk, an
                // I/O error): every write of the group is lost.
                let lost = match value {
                    Ok(_) => Error::Internal("the write transaction was rolled back".into()),
                    Err(e) => e,
                };
                w.settle(batch, Some(&lost));
                return Err(lost);
            }
            if value.is_err() {
                exec(&w.conn, "ROLLBACK TO op", [])?;
            }
            exec(&w.conn, "RELEASE op", [])?;
            (batch, value)
        };
        {
            let mut w = self.writer.lock().map_err(|_| poisoned())?;
            if w.settled() < batch {
                let committed = exec(&w.conn, "COMMIT", []).map(drop);
                if committed.is_err() && !w.conn.is_autocommit() {
                    let _ = w.conn.execute_batch("ROLLBACK");
                }
                w.settle(batch, committed.as_ref().err());
                committed?;
                // After the commit: a reader that sees the new count sees the new rows.
                self.writes.fetch_add(1, Ordering::SeqCst);
            } else if let Some(why) = w.failure(batch) {
                return value.and(Err(why));
            }
        }
        if value.is_ok() && durability == Durability::Synced {
            self.sync_log(batch)?;
        }
        value
    }

    /// Makes group `batch` (committed) durable. SQLite runs with
    /// synchronous = NORMAL, syncing the log only at checkpoints; this syncs
    /// it after a commit, outside the writer's lock. Syncs are taken in turn,
    /// and one covers every group committed before it began, so writers that
    /// queue behind a sync are all made durable by the next one. A deferred
    /// group is made durable by the next sync, a later group's or a
    /// checkpoint's.
    fn sync_log(&self, batch: u64) -> Result<()> {
        let mut log = self.log.lock().map_err(|_| poisoned())?;
        if log.durable >= batch {
            return Ok(());
        }
        // Every group up to `upto` has written its frames to the log.
        let upto = self.settled.load(Ordering::SeqCst);
        log.sync()?;
        log.durable = upto;
        Ok(())
    }

    /// Runs `f` on a reader connection (the writer, for an in-memory database).
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let Some(path) = &self.path else {
            let w = self.writer.lock().map_err(|_| poisoned())?;
            return f(&w.conn);
        };
        let conn = {
            let mut pool = self.readers.lock().map_err(|_| poisoned())?;
            loop {
                if let Some(c) = pool.idle.pop() {
                    break Some(c);
                }
                if pool.open < MAX_READERS {
                    pool.open += 1;
                    break None;
                }
                // At most MAX_READERS connections: queue rather than grow.
                pool = self.returned.wait(pool).map_err(|_| poisoned())?;
            }
        };
        let conn = match conn {
            Some(c) => c,
            None => match open_reader(path) {
                Ok(c) => c,
                Err(e) => {
                    if let Ok(mut pool) = self.readers.lock() {
                        pool.open -= 1;
                    }
                    self.returned.notify_one();
                    return Err(e);
                }
            },
        };
        let value = f(&conn);
        self.give_back(conn)?;
        value
    }

    /// Runs `f` on a reader that is idle now; `None`, without running it,
    /// when there is none (or the writer is busy, for an in-memory
    /// database). For a read of a few rows on an async runtime's thread,
    /// which must not wait for a connection or open one.
    pub(crate) fn read_if_idle<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T>,
    ) -> Option<Result<T>> {
        if self.path.is_none() {
            let w = self.writer.try_lock().ok()?;
            return Some(f(&w.conn));
        }
        let conn = self.readers.lock().ok()?.idle.pop()?;
        let value = f(&conn);
        Some(self.give_back(conn).and(value))
    }

    fn give_back(&self, conn: Connection) -> Result<()> {
        self.readers.lock().map_err(|_| poisoned())?.idle.push(conn);
        self.returned.notify_one();
        Ok(())
    }
}

fn open_reader(path: &std::path::Path) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let c = Connection::open_with_flags(path, flags)?;
    c.busy_timeout(std::time::Duration::from_secs(5))?;
    c.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // A small page cache each keeps memory flat (the OS page cache does the
    // real caching).
    c.pragma_update(None, "cache_size", READER_CACHE_KIB)?;
    Ok(c)
}

/// Runs one statement through the connection's statement cache, so that it
/// is parsed once per connection rather than once per call.
pub(crate) fn exec(c: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<usize> {
    Ok(c.prepare_cached(sql)?.execute(params)?)
}

/// A list as a JSON array, for one statement to take many values through
/// `json_each` (SQLite binds no arrays) instead of running once per value.
pub(crate) fn json_list<T: AsRef<str>>(items: &[T]) -> Result<String> {
    let items: Vec<&str> = items.iter().map(AsRef::as_ref).collect();
    serde_json::to_string(&items).map_err(|e| Error::Internal(format!("a JSON list: {e}")))
}

fn poisoned() -> Error {
    Error::Internal("metadata connection lock poisoned".into())
}

fn configure(conn: &Connection) -> Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // NORMAL: SQLite syncs the log only at checkpoints; Writer::commit
    // syncs it after every group whose writes must be on disk before the
    // client hears of them (the durability of FULL, chosen per group).
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

fn migrate(conn: &Connection) -> Result<()> {
    let applied: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if applied > MIGRATIONS.len() {
        return Err(Error::Internal(format!(
            "metadata schema version {applied} is newer than this build knows ({})",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        let version = i + 1;
        conn.execute_batch(&format!(
            "BEGIN; {sql}; PRAGMA user_version = {version}; COMMIT;"
        ))?;
    }
    Ok(())
}

/// Milliseconds since the Unix epoch, the database's time unit.
pub(crate) use crate::time::now_ms;

/// Creates the repository row if it is new.
pub(crate) fn ensure_repo(tx: &Connection, repo: &str) -> Result<()> {
    exec(
        tx,
        "INSERT OR IGNORE INTO repositories (name, created_at) VALUES (?1, ?2)",
        rusqlite::params![repo, now_ms()],
    )?;
    Ok(())
}

pub(crate) use crate::meta::{digest_column, repo_column, tag_column, to_i64, to_u64, word_column};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_apply_once_and_record_their_version() {
        let db = Sqlite::in_memory().ok();
        let db = db.expect("open");
        let v: Option<i64> = db
            .read(|c| Ok(c.pragma_query_value(None, "user_version", |r| r.get(0))?))
            .ok();
        assert_eq!(v, Some(MIGRATIONS.len() as i64));
        let again = db.read(migrate);
        assert!(again.is_ok());
    }

    // An upload in progress across the upgrade to 0009 keeps what object
    // storage recorded of it, in the JSON storage reads back (see
    // storage/parts.rs, whose test reads this same text).
    #[test]
    fn sessions_in_progress_keep_their_storage_state_across_0009() {
        let conn = Connection::open_in_memory().expect("open");
        for (i, sql) in MIGRATIONS.iter().enumerate().take(8) {
            let version = i + 1;
            let batch = format!("BEGIN; {sql}; PRAGMA user_version = {version}; COMMIT;");
            conn.execute_batch(&batch).expect("migrate");
        }
        conn.execute_batch(
            "INSERT INTO repositories (name, created_at) VALUES ('app', 0);
             INSERT INTO uploads (id, repo, offset, hash_state, created_at, updated_at,
                                  multipart_id, staged, staged_size)
             VALUES ('a', 'app', 5, x'', 0, 0, 'm-1', 'staged-1', 5),
                    ('b', 'app', 0, x'', 0, 0, NULL, NULL, 0),
                    ('c', 'app', 9, x'', 0, 0, 'm-2', NULL, 0);",
        )
        .expect("sessions");
        migrate(&conn).expect("0009");
        let state = |id: &str| -> String {
            let bytes: Vec<u8> = conn
                .query_row(
                    "SELECT storage_state FROM uploads WHERE id = ?1",
                    [id],
                    |r| r.get(0),
                )
                .expect("row");
            String::from_utf8(bytes).expect("text")
        };
        assert_eq!(
            state("a"),
            r#"{"multipart":"m-1","staged":{"name":"staged-1","len":5}}"#
        );
        assert_eq!(state("b"), "");
        assert_eq!(state("c"), r#"{"multipart":"m-2","staged":null}"#);
    }

    // Concurrent writes commit in groups: every successful one is durable and
    // visible, a failed one leaves nothing, and neither disturbs the other.
    #[test]
    fn grouped_writes_keep_each_write_atomic() {
        let dir = tempfile::tempdir().ok();
        let dir = dir.expect("dir");
        let db = Sqlite::open(&dir.path().join("t.db")).ok();
        let db = std::sync::Arc::new(db.expect("open"));
        let threads: Vec<_> = (0..16)
            .map(|i| {
                let db = std::sync::Arc::clone(&db);
                std::thread::spawn(move || {
                    db.write(|c| {
                        c.execute(
                            "INSERT INTO repositories (name, created_at) VALUES (?1, 0)",
                            [format!("r{i}")],
                        )?;
                        if i % 4 == 0 {
                            return Err(Error::Internal("refused".into()));
                        }
                        Ok(i)
                    })
                })
            })
            .collect();
        let ok = threads
            .into_iter()
            .filter_map(|t| t.join().ok())
            .filter(Result::is_ok)
            .count();
        assert_eq!(ok, 12);
        let names: Option<i64> = db
            .read(|c| Ok(c.query_row("SELECT COUNT(*) FROM repositories", [], |r| r.get(0))?))
            .ok();
        assert_eq!(names, Some(12));
        assert!(db.generation() >= 1);
    }

    // SQLite keeps each repository's tag-names version: a new tag and a
    // deleted one change it, a tag moved to another manifest does not.
    #[test]
    fn the_tag_names_version_changes_with_the_names_only() {
        let db = Sqlite::in_memory().expect("open");
        let run = |sql: &str| db.write(|c| Ok(c.execute_batch(sql)?));
        let version = || {
            db.read(|c| {
                Ok(c.query_row(
                    "SELECT tag_names FROM repositories WHERE name = 'r'",
                    [],
                    |r| r.get::<_, i64>(0),
                )?)
            })
            .ok()
        };
        let setup = "INSERT INTO repositories (name, created_at) VALUES ('r', 0);
             INSERT INTO contents (digest, size, created_at) VALUES ('a', 1, 0), ('b', 1, 0);
             INSERT INTO manifests (repo, digest, media_type, size, created_at)
                 VALUES ('r', 'a', 'm', 1, 0), ('r', 'b', 'm', 1, 0);";
        assert!(run(setup).is_ok());
        assert_eq!(version(), Some(0));
        assert!(
            run("INSERT INTO tags (repo, name, digest, updated_at) VALUES ('r', 't', 'a', 0)")
                .is_ok()
        );
        assert_eq!(version(), Some(1));
        assert!(run("UPDATE tags SET digest = 'b' WHERE name = 't'").is_ok());
        assert_eq!(version(), Some(1), "a move keeps the names");
        assert!(run("DELETE FROM tags WHERE name = 't'").is_ok());
        assert_eq!(version(), Some(2));
    }

    // The changes after a version are the names created and deleted since,
    // in order (a rename is both); past the kept window they are not known.
    #[test]
    fn tag_name_changes_are_kept_for_the_last_versions() {
        use crate::meta::{ListingMeta, TagNameChange, TagNameChanges};
        use crate::oci::RepoName;
        let db = Sqlite::in_memory().expect("open");
        let run = |sql: &str| db.write(|c| Ok(c.execute_batch(sql)?));
        let setup = "INSERT INTO repositories (name, created_at) VALUES ('r', 0);
             INSERT INTO contents (digest, size, created_at) VALUES ('a', 1, 0);
             INSERT INTO manifests (repo, digest, media_type, size, created_at)
                 VALUES ('r', 'a', 'm', 1, 0);
             INSERT INTO tags (repo, name, digest, updated_at) VALUES ('r', 't', 'a', 0);
             INSERT INTO tags (repo, name, digest, updated_at) VALUES ('r', 'u', 'a', 0);
             DELETE FROM tags WHERE name = 't';
             UPDATE tags SET name = 'v' WHERE name = 'u';";
        assert!(run(setup).is_ok());
        let repo = RepoName::parse("r").expect("name");
        let change = |name: &str, present| TagNameChange {
            name: name.to_owned(),
            present,
        };
        let since = |v| db.tag_name_changes(&repo, v).ok().flatten();
        assert_eq!(
            since(1),
            Some(TagNameChanges {
                version: 5,
                changes: Some(vec![
                    change("u", true),
                    change("t", false),
                    change("u", false),
                    change("v", true)
                ]),
            })
        );
        assert_eq!(since(5).and_then(|c| c.changes), Some(vec![]));
        let many = "WITH RECURSIVE i(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM i WHERE x < 1100)
             INSERT INTO tags (repo, name, digest, updated_at) SELECT 'r', 'n' || x, 'a', 0 FROM i;";
        assert!(run(many).is_ok());
        let kept = since(1105 - 1024).and_then(|c| c.changes).map(|c| c.len());
        assert_eq!(kept, Some(1024));
        assert_eq!(
            since(1105 - 1025).map(|c| (c.version, c.changes)),
            Some((1105, None))
        );
        let unknown = RepoName::parse("nobody").expect("name");
        assert_eq!(db.tag_name_changes(&unknown, 0).ok(), Some(None));
    }

    // A read that must not wait runs only on a reader idle at that moment:
    // none before the first reader is opened, none while the only one is busy.
    #[test]
    fn a_read_if_idle_never_waits_for_a_reader() {
        let dir = tempfile::tempdir().ok();
        let dir = dir.expect("dir");
        let db = Sqlite::open(&dir.path().join("t.db")).expect("open");
        let one = |c: &Connection| Ok(c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?);
        assert!(db.read_if_idle(one).is_none(), "no reader opened yet");
        assert_eq!(db.read(one).ok(), Some(1));
        assert_eq!(db.read_if_idle(one).and_then(Result::ok), Some(1));
        let inner = db.read(|_| Ok(db.read_if_idle(one).is_none()));
        assert_eq!(inner.ok(), Some(true), "the one reader is in use");
    }

    // A deferred write is committed (readers see it at once) without a sync of
    // the log; the next synced write syncs it, and both are in the database.
    #[test]
    fn deferred_writes_commit_without_a_sync_and_ride_on_the_next_one() {
        let dir = tempfile::tempdir().ok();
        let dir = dir.expect("dir");
        let path = dir.path().join("t.db");
        let db = Sqlite::open(&path).expect("open");
        let syncs = |db: &Sqlite| db.log.lock().map(|l| l.syncs).unwrap_or(u64::MAX);
        let insert = |name: &'static str| {
            move |c: &Connection| {
                c.execute(
                    "INSERT INTO repositories (name, created_at) VALUES (?1, 0)",
                    [name],
                )?;
                Ok(())
            }
        };
        let count = |db: &Sqlite| {
            db.read(|c| {
                Ok(c.query_row("SELECT COUNT(*) FROM repositories", [], |r| {
                    r.get::<_, i64>(0)
                })?)
            })
            .ok()
        };
        assert!(db.write_with(Durability::Deferred, insert("a")).is_ok());
        assert_eq!(syncs(&db), 0);
        assert_eq!(count(&db), Some(1), "committed and visible");
        assert!(db.write(insert("b")).is_ok());
        assert_eq!(syncs(&db), 1);
        drop(db);
        let db = Sqlite::open(&path).expect("reopen");
        assert_eq!(count(&db), Some(2));
    }
}
