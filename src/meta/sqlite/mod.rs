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
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OpenFlags, Transaction};

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
];
/// Page cache of each reader connection, in KiB (SQLite's negative cache_size).
const READER_CACHE_KIB: i64 = -512;
/// Reader connections at most; readers beyond wait for one.
const MAX_READERS: usize = 8;

pub struct Sqlite {
    path: Option<std::path::PathBuf>,
    writer: Mutex<Connection>,
    readers: Mutex<Readers>,
    /// Signalled when a reader connection is handed back.
    returned: std::sync::Condvar,
    /// Committed write transactions so far (see [`Changes`]).
    writes: AtomicU64,
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

impl std::fmt::Debug for Sqlite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sqlite({:?})", self.path)
    }
}

impl Sqlite {
    /// Opens (creating if needed) the database file and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Sqlite> {
        let writer = Connection::open(path)?;
        configure(&writer)?;
        migrate(&writer)?;
        Ok(Sqlite {
            path: Some(path.to_owned()),
            writer: Mutex::new(writer),
            readers: Mutex::default(),
            returned: std::sync::Condvar::new(),
            writes: AtomicU64::new(0),
        })
    }

    /// A private in-memory database (readers share the writer); for tests.
    pub fn in_memory() -> Result<Sqlite> {
        let writer = Connection::open_in_memory()?;
        configure(&writer)?;
        migrate(&writer)?;
        Ok(Sqlite {
            path: None,
            writer: Mutex::new(writer),
            readers: Mutex::default(),
            returned: std::sync::Condvar::new(),
            writes: AtomicU64::new(0),
        })
    }

    /// Runs `f` in a write transaction, committed if it returns Ok.
    pub(crate) fn write<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut conn = self.writer.lock().map_err(|_| poisoned())?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let value = f(&tx)?;
        tx.commit()?;
        // After the commit: a reader that sees the new count sees the new rows.
        self.writes.fetch_add(1, Ordering::SeqCst);
        Ok(value)
    }

    /// Runs `f` on a reader connection (the writer, for an in-memory database).
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let Some(path) = &self.path else {
            let conn = self.writer.lock().map_err(|_| poisoned())?;
            return f(&conn);
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
        self.readers.lock().map_err(|_| poisoned())?.idle.push(conn);
        self.returned.notify_one();
        value
    }
}

fn open_reader(path: &std::path::Path) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let c = Connection::open_with_flags(path, flags)?;
    c.busy_timeout(std::time::Duration::from_secs(5))?;
    // A small page cache each keeps memory flat (the OS page cache does the
    // real caching).
    c.pragma_update(None, "cache_size", READER_CACHE_KIB)?;
    Ok(c)
}

fn poisoned() -> Error {
    Error::Internal("metadata connection lock poisoned".into())
}

fn configure(conn: &Connection) -> Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: a commit is on disk before the client hears 201.
    conn.pragma_update(None, "synchronous", "FULL")?;
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
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Creates the repository row if it is new.
pub(crate) fn ensure_repo(tx: &Transaction<'_>, repo: &str) -> Result<()> {
    tx.execute(
        "INSERT OR IGNORE INTO repositories (name, created_at) VALUES (?1, ?2)",
        rusqlite::params![repo, now_ms()],
    )?;
    Ok(())
}

/// Reads a stored digest column; a malformed one is database corruption.
pub(crate) fn digest_column(s: String) -> Result<crate::oci::Digest> {
    crate::oci::Digest::parse(&s)
        .map_err(|_| Error::Internal(format!("corrupt digest in database: {s}")))
}

pub(crate) fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

pub(crate) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

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
}
