//! PostgreSQL: one metadata database shared by several stateless replicas.
//!
//! The traits are synchronous and run on the blocking pool; each statement
//! here is an async tokio-postgres call, waited for on the thread that
//! makes it. Each connection has a current-thread runtime of its own (an
//! epoll set and a timer; no thread), so the thread that waits for an
//! answer is the one the kernel wakes when it comes, not a worker of the
//! server's runtime that would then wake it. A small pool of connections,
//! each keeping its prepared statements.
//!
//! What makes several replicas behave as one process on SQLite:
//! - every write is one transaction, retried on a serialization failure or
//!   deadlock. Writes of manifests and tags (everything that appends to the
//!   event log) take turns under [`LOG_LOCK`] and so run one at a time, as
//!   on SQLite's single writer (READ COMMITTED: each statement sees every
//!   write before); other writes are SERIALIZABLE. Writes on the upload
//!   side (sessions, finished blobs, mounts) are READ COMMITTED, where row
//!   locks and `ON CONFLICT` keep their compare-and-swaps right. Both take a
//!   shared advisory lock ([`GC_LOCK`]) that garbage collection's writes take
//!   exclusively: what serializability gave them against a collection,
//!   taking turns gives them, without the false conflicts SERIALIZABLE finds
//!   between concurrent pushes touching the same index pages and without
//!   its bookkeeping of every read;
//! - each write sends a NOTIFY (on [`CHANNEL_PREFIX`] and the schema) with
//!   its commit; every replica
//!   listens and moves its [`Changes::generation`] on each, so caches keyed
//!   by it are dropped within a notification's delay (its own writes move it
//!   before they return). While the listening connection is down, every
//!   look-up sees a new generation: nothing cached is trusted;
//! - writes that append events or tag history take turns under a session
//!   advisory lock ([`LOG_LOCK`]), taken after BEGIN (and the shared
//!   [`GC_LOCK`]: one order for all) before anything they read that another
//!   logged write could change, and held to after COMMIT: ids become visible
//!   in order, so a reader paging with `after=` never steps over one that
//!   commits later;
//! - a write makes as few round trips as it can: the lock and BEGIN go out
//!   with its first statement, statements whose answer it does not need are
//!   deferred ([`Conn::defer`]) to go with the next one that it does, and
//!   COMMIT (with the lock's release) takes whatever is left; a last
//!   statement that decides by its own conditions what it changes goes with
//!   the COMMIT too ([`Conn::query_committing`]). The server runs a pipeline
//!   in order, so this changes when bytes travel, not what runs;
//! - migrations run under a session advisory lock ([`MIGRATION_LOCK`]): once,
//!   however many replicas start together;
//! - statements are prepared once per connection, and after a few runs
//!   PostgreSQL may keep a generic plan that knows nothing of the values
//!   (and, on tables not analyzed yet, little of the data). A look-up of
//!   several keys therefore probes the table once per key, from
//!   `unnest($n)` through a `LATERAL ... LIMIT 1` (which the planner cannot
//!   flatten into a join), never `key = ANY($n)`, a plain join or `EXISTS`
//!   (a semi-join): generic plans made those a scan of everything under
//!   the leading column (every blob or manifest of the repository, on each
//!   push), a cost that grew with the repository.

mod blobs;
mod gc;
mod lineage;
mod listing;
mod manifests;
mod releases;
mod uploads;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use futures_util::StreamExt;
use tokio::runtime::Handle;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{AsyncMessage, Client, NoTls, Row, Statement};

use crate::error::{Error, Result};
use crate::meta::Changes;

/// Schema migrations, applied in order; `berth_schema` records each.
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
    include_str!("migrations/0012_no_repository_keys.sql"),
];

/// The notification every committed write sends is on this channel, named
/// after the schema (registries in two schemas of one database do not hear
/// each other).
const CHANNEL_PREFIX: &str = "berth_changes";
/// Advisory lock keys ("berth" in ASCII, then a number).
const MIGRATION_LOCK: i64 = 0x6265_7274_6801;
const LOG_LOCK: i64 = 0x6265_7274_6802;
const LEADER_LOCK: i64 = 0x6265_7274_6803;
const GC_LOCK: i64 = 0x6265_7274_6804;
/// A write that keeps failing to serialize gives up after this many tries.
const WRITE_ATTEMPTS: u32 = 30;

pub struct Postgres {
    config: tokio_postgres::Config,
    /// The URL without its password, for messages.
    shown: String,
    /// `BEGIN ...` for each durability (the index): SERIALIZABLE with the
    /// notification that goes with its commit, or (upload side) READ
    /// COMMITTED and unannounced.
    begin_serial: [Arc<str>; 2],
    begin_upload: [Arc<str>; 2],
    /// `BEGIN ...` for a write of the event log (see [`Postgres::write_logged`]).
    begin_logged: Arc<str>,
    pool: Mutex<Pool>,
    /// Signalled when a connection is handed back or dropped.
    returned: Condvar,
    size: usize,
    changes: Arc<ChangeCount>,
    listener: tokio::task::AbortHandle,
    /// The connection that holds, or tries for, [`LEADER_LOCK`], and whether
    /// it holds it.
    leader: Mutex<Option<(Conn, bool)>>,
    trips: Arc<AtomicU64>,
}

/// Commits seen, this process's and (through notifications) everyone's.
#[derive(Default)]
struct ChangeCount {
    count: AtomicU64,
    /// Whether notifications are being received.
    listening: AtomicBool,
}

impl ChangeCount {
    fn bump(&self) -> u64 {
        self.count.fetch_add(1, Ordering::SeqCst) + 1
    }
}

#[derive(Default)]
struct Pool {
    idle: Vec<Conn>,
    open: usize,
}

/// What moves a connection's bytes: writes its requests to the socket and
/// reads the answers off it. Polled on the thread that waits for an answer
/// (see [`Conn::wait`]), in the connection's own runtime, not by a task of
/// the server's: an answer then wakes only the thread that waits for it
/// (one wake a round trip, where a task or the server's reactor would add
/// one or two).
type Driver = Pin<Box<dyn Future<Output = PgResult<()>> + Send>>;

/// One connection and the statements prepared on it.
pub(crate) struct Conn {
    client: Client,
    /// The connection's [`Driver`]; none once the connection has ended.
    driver: Mutex<Option<Driver>>,
    /// Round trips of every connection of the store, counted.
    trips: Arc<AtomicU64>,
    statements: HashMap<String, Statement>,
    /// The connection's own runtime, whose reactor has its socket: every
    /// wait on the connection runs in it (see [`Conn::drive`]). There until
    /// [`Conn::drop`] shuts it down without waiting (a connection may be
    /// dropped on a thread of the server's runtime).
    runtime: Option<tokio::runtime::Runtime>,
    /// The lock this transaction holds (or will, once its start is sent).
    turns: Turns,
    /// The transaction's start, not sent yet: it goes out with the first
    /// round trip (see [`Conn::pipelined`]).
    start: Option<Start>,
    /// Whether the transaction's start has been sent.
    begun: bool,
    /// Whether [`Conn::lock_log_later`] put the lock off past the first
    /// round trip: it goes out with the next one.
    lock_later: bool,
    /// Statements waiting for the next round trip.
    deferred: Vec<Deferred>,
}

/// How a transaction starts: its lock, if it takes one, then BEGIN.
struct Start {
    turns: Turns,
    begin: Arc<str>,
}

/// The advisory lock a write holds, and so who it takes turns with: a
/// session lock held to after its commit, taken before BEGIN for GC's
/// sweeps (so that a SERIALIZABLE snapshot comes after it) and after BEGIN
/// for the event log's writes (READ COMMITTED: each statement's snapshot
/// comes after it); for the upload side, one that goes with the
/// transaction.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Turns {
    /// None: SERIALIZABLE sorts it out.
    Free,
    /// [`LOG_LOCK`]: with every other write of events or tag history.
    Log,
    /// [`GC_LOCK`], shared, for the transaction: with garbage collection
    /// (upload-side writes; READ COMMITTED, so each statement's snapshot
    /// comes after the lock, which can then be taken inside the
    /// transaction and goes with its end).
    BesideGc,
    /// [`GC_LOCK`], exclusive: with every upload-side write.
    Gc,
}

impl Turns {
    /// The statement that takes the lock (its key as `$1`), and whether it
    /// goes after BEGIN (else before).
    fn take(self) -> Option<(&'static str, i64, bool)> {
        match self {
            Turns::Free => None,
            Turns::Log => Some(("SELECT pg_advisory_lock($1)", LOG_LOCK, true)),
            Turns::BesideGc => Some(("SELECT pg_advisory_xact_lock_shared($1)", GC_LOCK, true)),
            Turns::Gc => Some(("SELECT pg_advisory_lock($1)", GC_LOCK, false)),
        }
    }

    /// `end` (COMMIT or ROLLBACK), then the lock let go.
    fn end(self, end: &str) -> String {
        match self {
            Turns::Free | Turns::BesideGc => end.to_owned(),
            // All: the lock may not have been taken (a write that failed
            // before its lock went out).
            Turns::Log => format!("{end}; SELECT pg_advisory_unlock_all()"),
            Turns::Gc => format!("{end}; SELECT pg_advisory_unlock({GC_LOCK})"),
        }
    }
}

/// A statement whose answer the write does not wait for, with its values.
struct Deferred {
    statement: Statement,
    params: Vec<Value>,
}

/// A value a deferred statement keeps until it is sent (see [`values!`]).
pub(crate) type Value = Box<dyn ToSql + Sync + Send>;

/// What goes out ahead of a statement in its round trip.
#[derive(Default)]
struct Ahead {
    /// The lock's statement, its key, and whether it goes after BEGIN.
    lock: Option<(Statement, i64, bool)>,
    begin: Option<Arc<str>>,
    deferred: Vec<Deferred>,
}

type PgResult<T> = std::result::Result<T, tokio_postgres::Error>;
type Sending<'a, T = ()> = Pin<Box<dyn Future<Output = PgResult<T>> + 'a>>;

/// Owned values for [`Conn::defer`]: `values![repo.to_owned(), now]`.
macro_rules! values {
    ($($v:expr),* $(,)?) => {
        vec![$(Box::new($v) as $crate::meta::postgres::Value),*]
    };
}
pub(crate) use values;

/// When a write's commit must reach the disk.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Durability {
    /// Before the write returns.
    Synced = 0,
    /// Soon after (`synchronous_commit = off`): for state whose loss in a
    /// database crash costs nothing acknowledged (see `UploadMeta`).
    Deferred = 1,
}

pub(crate) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

impl Conn {
    fn statement(&mut self, sql: &str) -> Result<Statement> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.wait(self.client.prepare(sql))?;
        self.statements.insert(sql.to_owned(), s.clone());
        Ok(s)
    }

    pub(crate) fn query(&mut self, sql: &str, params: Params<'_>) -> Result<Vec<Row>> {
        let (s, ahead) = self.prepared(sql)?;
        self.pipelined(ahead, self.client.query(&s, params))
    }

    pub(crate) fn query_opt(&mut self, sql: &str, params: Params<'_>) -> Result<Option<Row>> {
        let (s, ahead) = self.prepared(sql)?;
        self.pipelined(ahead, self.client.query_opt(&s, params))
    }

    pub(crate) fn query_one(&mut self, sql: &str, params: Params<'_>) -> Result<Row> {
        let (s, ahead) = self.prepared(sql)?;
        self.pipelined(ahead, self.client.query_one(&s, params))
    }

    pub(crate) fn execute(&mut self, sql: &str, params: Params<'_>) -> Result<u64> {
        let (s, ahead) = self.prepared(sql)?;
        self.pipelined(ahead, self.client.execute(&s, params))
    }

    /// Several statements in one round trip, answered in order: for
    /// statements that do not depend on each other's answers.
    pub(crate) fn query_all(&mut self, batch: &[(&str, Params<'_>)]) -> Result<Vec<Vec<Row>>> {
        let statements = batch
            .iter()
            .map(|(sql, _)| self.statement(sql))
            .collect::<Result<Vec<_>>>()?;
        let ahead = self.ahead()?;
        let client = &self.client;
        let calls = statements
            .iter()
            .zip(batch)
            .map(|(s, (_, params))| Box::pin(client.query(s, params)) as Sending<'_, Vec<Row>>)
            .collect();
        self.pipelined(ahead, in_order(calls))
    }

    /// Queues a statement whose only answer that matters is whether it
    /// failed: it goes out with the write's next round trip (its next
    /// statement, or the commit), and its failure is that round trip's.
    pub(crate) fn defer(&mut self, sql: &str, params: Vec<Value>) -> Result<()> {
        let statement = self.statement(sql)?;
        self.deferred.push(Deferred { statement, params });
        Ok(())
    }

    /// The statement for `sql`, and what must go out ahead of it.
    fn prepared(&mut self, sql: &str) -> Result<(Statement, Ahead)> {
        let s = self.statement(sql)?;
        Ok((s, self.ahead()?))
    }

    /// Takes what waits for the next round trip: the transaction's start
    /// (with the lock's statement, prepared, for a logged one) and the
    /// deferred statements.
    fn ahead(&mut self) -> Result<Ahead> {
        let mut ahead = Ahead {
            deferred: std::mem::take(&mut self.deferred),
            ..Ahead::default()
        };
        let lock = if let Some(Start { turns, begin }) = self.start.take() {
            ahead.begin = Some(begin);
            self.begun = true;
            if self.lock_later { None } else { turns.take() }
        } else if std::mem::take(&mut self.lock_later) {
            self.turns.take()
        } else {
            None
        };
        if let Some((sql, key, inside)) = lock {
            ahead.lock = Some((self.statement(sql)?, key, inside));
        }
        Ok(ahead)
    }

    /// One round trip: `ahead`, then `call`, sent together; the server runs
    /// them in order (a statement only once the lock is granted and the
    /// transaction begun). The first failure, in that order, is the answer:
    /// a statement after a failed one fails only because the transaction
    /// is aborted.
    fn pipelined<T>(&self, ahead: Ahead, call: impl Future<Output = PgResult<T>>) -> Result<T> {
        if ahead.lock.is_none() && ahead.begin.is_none() && ahead.deferred.is_empty() {
            return self.wait(call);
        }
        let client = &self.client;
        self.wait(async move {
            let params: Vec<Vec<&(dyn ToSql + Sync)>> = ahead
                .deferred
                .iter()
                .map(|d| {
                    d.params
                        .iter()
                        .map(|p| &**p as &(dyn ToSql + Sync))
                        .collect()
                })
                .collect();
            let mut sending: Vec<Sending<'_>> = Vec::with_capacity(params.len() + 2);
            let lock = ahead.lock.as_ref().map(|(lock, key, inside)| {
                let taking: Sending<'_> =
                    Box::pin(async move { client.execute(lock, &[key]).await.map(drop) });
                (taking, *inside)
            });
            let (before, after) = match lock {
                Some((taking, true)) => (None, Some(taking)),
                Some((taking, false)) => (Some(taking), None),
                None => (None, None),
            };
            sending.extend(before);
            if let Some(begin) = &ahead.begin {
                sending.push(Box::pin(client.batch_execute(begin)));
            }
            sending.extend(after);
            for (d, p) in ahead.deferred.iter().zip(&params) {
                sending.push(Box::pin(async move {
                    client.execute(&d.statement, p).await.map(drop)
                }));
            }
            let (before, answer) = futures_util::future::join(in_order(sending), call).await;
            before?;
            answer
        })
    }

    /// A read outside any transaction, run with a generic plan (see
    /// [`GENERIC_PLANS`]): the session's setting goes out ahead of it and
    /// back after it, in the same round trip. For the look-ups of several
    /// keys that a push makes before its write.
    pub(crate) fn query_generic(&mut self, sql: &str, params: Params<'_>) -> Result<Vec<Row>> {
        debug_assert!(
            !self.begun && self.start.is_none() && self.deferred.is_empty(),
            "query_generic inside a transaction"
        );
        let s = self.statement(sql)?;
        let client = &self.client;
        self.wait(async {
            let (set, rows, reset) = futures_util::future::join3(
                client.batch_execute("SET plan_cache_mode = force_generic_plan"),
                client.query(&s, params),
                client.batch_execute("RESET plan_cache_mode"),
            )
            .await;
            set?;
            reset?;
            rows
        })
    }

    pub(crate) fn exists(&mut self, sql: &str, params: Params<'_>) -> Result<bool> {
        Ok(self.query_opt(sql, params)?.is_some())
    }

    fn batch(&mut self, sql: &str) -> Result<()> {
        self.wait(self.client.batch_execute(sql))
    }

    /// Commits what the transaction did, with whatever is still deferred,
    /// and lets go of its lock in the same round trip. A transaction that
    /// sent nothing has nothing to commit and took no lock.
    fn commit(&mut self) -> Result<()> {
        if !self.begun && self.deferred.is_empty() {
            self.start = None;
            self.lock_later = false;
            return Ok(());
        }
        let ahead = self.ahead()?;
        let end = self.turns.end("COMMIT");
        self.pipelined(ahead, self.client.batch_execute(&end))?;
        self.ended();
        Ok(())
    }

    /// The write's last statement, sent with its commit (and whatever is
    /// still deferred) in one round trip: for a statement that decides by
    /// its own conditions what it changes, so that the write commits
    /// whatever it answers. Nothing may follow it in the transaction. A
    /// statement that fails aborts the transaction, whose COMMIT then rolls
    /// it back; the write's [`Conn::abandon`] lets go of its lock.
    pub(crate) fn query_committing(&mut self, sql: &str, params: Params<'_>) -> Result<Vec<Row>> {
        let (s, ahead) = self.prepared(sql)?;
        let end = self.turns.end("COMMIT");
        let client = &self.client;
        let rows = self.pipelined(ahead, async {
            let (rows, ended) =
                futures_util::future::join(client.query(&s, params), client.batch_execute(&end))
                    .await;
            ended?;
            rows
        })?;
        self.ended();
        Ok(rows)
    }

    /// After the transaction's end went out: nothing begun, no lock held.
    fn ended(&mut self) {
        self.begun = false;
        self.lock_later = false;
        self.turns = Turns::Free;
    }

    /// After a write that failed: rolls back what was sent and lets go of
    /// its lock. A connection that cannot is dropped by its lease, and the
    /// lock goes with its session.
    fn abandon(&mut self) {
        self.start = None;
        self.deferred.clear();
        if self.begun && self.alive() {
            let end = self.turns.end("ROLLBACK");
            let _ = self.batch(&end);
        }
        self.ended();
    }

    /// One round trip, waited for on the runtime, and counted: `call` and
    /// the connection's driver polled together on this thread.
    fn wait<T>(
        &self,
        call: impl std::future::Future<Output = std::result::Result<T, tokio_postgres::Error>>,
    ) -> Result<T> {
        self.trips.fetch_add(1, Ordering::Relaxed);
        Ok(self.drive(call)??)
    }

    /// `call` run to its end on this thread, in the connection's runtime,
    /// with the connection's driver polled beside it. Not on a thread of
    /// the server's runtime (as any blocking call).
    fn drive<R>(&self, call: impl Future<Output = R>) -> Result<R> {
        let mut driver = self.driver.lock().map_err(|_| poisoned())?;
        Ok(self.runtime()?.block_on(driven(&mut driver, call)))
    }

    fn runtime(&self) -> Result<&tokio::runtime::Runtime> {
        self.runtime
            .as_ref()
            .ok_or_else(|| Error::Internal("a connection used as it is dropped".into()))
    }

    /// Whether the connection is still up, as far as can be told without a
    /// round trip: its driver is polled once, after the runtime has read
    /// what its socket received since it was last waited on (nothing reads
    /// it while the connection sits idle), so an end the server sent
    /// meanwhile (PostgreSQL restarted) is seen.
    fn alive(&self) -> bool {
        let Ok(mut driver) = self.driver.lock() else {
            return false;
        };
        let Ok(runtime) = self.runtime() else {
            return false;
        };
        if let Some(moving) = driver.as_mut() {
            let ended = runtime.block_on(async {
                // Yielding lets the runtime poll its reactor (without
                // waiting) before the driver is polled.
                tokio::task::yield_now().await;
                std::future::poll_fn(|cx| Poll::Ready(moving.as_mut().poll(cx).is_ready())).await
            });
            if ended {
                *driver = None;
            }
        }
        driver.is_some() && !self.client.is_closed()
    }

    /// Before drawing an event or history id: the transaction must hold
    /// the log's lock (be a [`Postgres::write_logged`] one), or ids could
    /// become visible out of order.
    /// In a logged write, before its first statement: its first round trip
    /// goes without the log's lock, which goes out (ahead of everything else)
    /// with the second. For a write whose first round trip only reads what
    /// no other logged write changes (GC, which could, is kept away by the
    /// shared [`GC_LOCK`] its BEGIN takes).
    pub(crate) fn lock_log_later(&mut self) {
        if self.turns == Turns::Log && !self.begun {
            self.lock_later = true;
        }
    }

    pub(crate) fn lock_log(&mut self) -> Result<()> {
        if self.turns == Turns::Log {
            Ok(())
        } else {
            Err(Error::Internal(
                "an event written outside a logged transaction".into(),
            ))
        }
    }
}

impl Drop for Conn {
    /// The connection's socket goes first, then its runtime, without
    /// waiting (a runtime dropped the usual way may not be on a thread of
    /// another's, where the last connections go when the store is dropped).
    fn drop(&mut self) {
        if let Ok(driver) = self.driver.get_mut() {
            *driver = None;
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// `call`, with the connection's `driver` polled beside it until `call` is
/// done. A driver that ends (the connection closed) is dropped, which fails
/// whatever still waits for an answer on it, once the answers it read are
/// taken.
async fn driven<R>(driver: &mut Option<Driver>, call: impl Future<Output = R>) -> R {
    let mut call = std::pin::pin!(call);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(answer) = call.as_mut().poll(cx) {
            return Poll::Ready(answer);
        }
        if let Some(moving) = driver.as_mut()
            && moving.as_mut().poll(cx).is_ready()
        {
            *driver = None;
            return call.as_mut().poll(cx);
        }
        Poll::Pending
    })
    .await
}

/// Polls `sending` in order, each from its first poll (which is when
/// tokio-postgres puts a request on the wire, so they go out in this
/// order), to the end: every answer, or the first failure in that order.
async fn in_order<T>(mut sending: Vec<Sending<'_, T>>) -> PgResult<Vec<T>> {
    let mut answers: Vec<Option<PgResult<T>>> = sending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut waiting = false;
        for (future, answer) in sending.iter_mut().zip(answers.iter_mut()) {
            if answer.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(a) => *answer = Some(a),
                    Poll::Pending => waiting = true,
                }
            }
        }
        if waiting {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    answers.into_iter().flatten().collect()
}

/// A connection lent by the pool, given back (or, if it broke, let go) when
/// dropped.
struct Lease<'a> {
    conn: Option<Conn>,
    db: &'a Postgres,
}

impl Lease<'_> {
    fn conn(&mut self) -> &mut Conn {
        self.conn
            .as_mut()
            .expect("a lease holds its connection until dropped")
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        if let Ok(mut pool) = self.db.pool.lock() {
            if !conn.alive() {
                pool.open -= 1;
            } else {
                pool.idle.push(conn);
            }
        }
        self.db.returned.notify_one();
    }
}

impl Changes for Postgres {
    fn generation(&self) -> u64 {
        if self.changes.listening.load(Ordering::SeqCst) {
            self.changes.count.load(Ordering::SeqCst)
        } else {
            // Another replica's commit could pass unheard: never the same twice.
            self.changes.bump()
        }
    }
}

/// The lease is a session advisory lock on a connection of its own: held
/// while that session lives, which a leader checks on each call.
impl crate::meta::Leadership for Postgres {
    fn lead(&self) -> Result<bool> {
        let mut slot = self.leader.lock().map_err(|_| poisoned())?;
        if let Some((conn, held)) = slot.as_mut() {
            let alive = conn.alive() && conn.query_one("SELECT 1", &[]).is_ok();
            if alive && *held {
                return Ok(true);
            }
            if !alive {
                // The session is gone, and the lock with it.
                *slot = None;
            }
        }
        if slot.is_none() {
            *slot = Some((connect(&self.config, &self.trips)?, false));
        }
        let Some((conn, held)) = slot.as_mut() else {
            return Ok(false);
        };
        let row = conn.query_one("SELECT pg_try_advisory_lock($1)", &[&LEADER_LOCK])?;
        *held = col(&row, 0)?;
        Ok(*held)
    }
}

impl crate::meta::Traffic for Postgres {
    fn round_trips(&self) -> u64 {
        self.trips.load(Ordering::Relaxed)
    }
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Postgres({})", self.shown)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

/// `url` with any password left out: for messages and logs.
pub fn redact(url: &str) -> String {
    let mut shown = url.to_owned();
    if let Some(scheme) = shown.find("://") {
        let rest = scheme + 3;
        let authority_end = shown[rest..]
            .find(['/', '?'])
            .map_or(shown.len(), |i| rest + i);
        if let Some(at) = shown[rest..authority_end].rfind('@') {
            let user = &shown[rest..rest + at];
            if let Some(colon) = user.find(':') {
                shown.replace_range(rest + colon..rest + at, "");
            }
        }
    }
    // `password=...` in a query string or in key=value form.
    let mut out = String::with_capacity(shown.len());
    let mut rest = shown.as_str();
    while let Some(i) = rest.find("password=") {
        let start = i + "password=".len();
        out.push_str(&rest[..start]);
        out.push_str("***");
        let end = rest[start..]
            .find(['&', ' '])
            .map_or(rest.len(), |j| start + j);
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// A new connection, with its runtime (see [`Conn::drive`]). Blocks: not
/// on a thread of the server's runtime.
fn connect(config: &tokio_postgres::Config, trips: &Arc<AtomicU64>) -> Result<Conn> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (client, connection) = runtime.block_on(config.connect(NoTls))?;
    Ok(Conn {
        client,
        driver: Mutex::new(Some(Box::pin(connection))),
        trips: Arc::clone(trips),
        statements: HashMap::new(),
        runtime: Some(runtime),
        turns: Turns::Free,
        start: None,
        begun: false,
        lock_later: false,
        deferred: Vec::new(),
    })
}

/// Whether a failed transaction may simply be run again.
fn retryable(e: &Error) -> bool {
    matches!(e, Error::Postgres(e) if e.code().is_some_and(|c| {
        *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
    }))
}

impl Postgres {
    /// Connects to the database at `url`, brings its schema up to date (one
    /// replica at a time) and starts listening for other replicas' commits.
    /// At most `pool_size` connections are open for queries, plus one that
    /// listens. Must be called on a Tokio runtime, which then drives them.
    pub async fn connect(url: &str, pool_size: usize) -> Result<Postgres> {
        let shown = redact(url);
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| Error::Config(format!("metadata url {shown}: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        if config.get_application_name().is_none() {
            config.application_name("berth");
        }
        config.keepalives_idle(Duration::from_secs(30));
        let handle = Handle::current();
        let trips = Arc::new(AtomicU64::new(0));
        let (first, schema) = {
            let (config, trips, shown) = (config.clone(), Arc::clone(&trips), shown.clone());
            tokio::task::spawn_blocking(move || {
                let first = connect(&config, &trips).map_err(|e| {
                    Error::Unavailable(format!("cannot connect to PostgreSQL at {shown}: {e}"))
                })?;
                let schema = first.drive(async {
                    migrate(&first.client).await?;
                    let row = first
                        .client
                        .query_one("SELECT current_schema()", &[])
                        .await?;
                    Ok::<String, Error>(row.try_get(0)?)
                })??;
                Ok::<_, Error>((first, schema))
            })
            .await
            .map_err(|e| Error::Internal(format!("connecting to PostgreSQL: {e}")))??
        };
        let channel = format!("\"{CHANNEL_PREFIX}.{}\"", schema.replace('"', "\"\""));
        // Each notification names its sender, which has counted it already.
        let me = uuid::Uuid::new_v4().simple().to_string();
        let changes = Arc::new(ChangeCount::default());
        let listener = handle
            .spawn(listen(
                config.clone(),
                channel.clone(),
                me.clone(),
                Arc::clone(&changes),
            ))
            .abort_handle();
        // Until the listener is in, every look-up is fresh; wait briefly for it.
        for _ in 0..200 {
            if changes.listening.load(Ordering::SeqCst) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(Postgres {
            config,
            shown,
            begin_serial: [Durability::Synced, Durability::Deferred]
                .map(|d| begin_sql(d, Some((&channel, &me)))),
            begin_upload: [Durability::Synced, Durability::Deferred].map(|d| begin_sql(d, None)),
            begin_logged: begin_logged_sql(&channel, &me),
            pool: Mutex::new(Pool {
                idle: vec![first],
                open: 1,
            }),
            returned: Condvar::new(),
            size: pool_size.max(1),
            changes,
            listener,
            leader: Mutex::new(None),
            trips,
        })
    }

    fn lease(&self) -> Result<Lease<'_>> {
        {
            let mut pool = self.pool.lock().map_err(|_| poisoned())?;
            loop {
                if let Some(conn) = pool.idle.pop() {
                    if !conn.alive() {
                        pool.open -= 1;
                        continue;
                    }
                    return Ok(Lease {
                        conn: Some(conn),
                        db: self,
                    });
                }
                if pool.open < self.size {
                    pool.open += 1;
                    break;
                }
                pool = self.returned.wait(pool).map_err(|_| poisoned())?;
            }
        }
        match connect(&self.config, &self.trips) {
            Ok(conn) => Ok(Lease {
                conn: Some(conn),
                db: self,
            }),
            Err(e) => {
                if let Ok(mut pool) = self.pool.lock() {
                    pool.open -= 1;
                }
                self.returned.notify_one();
                Err(e)
            }
        }
    }

    /// Runs `f` on a connection, outside any transaction (each statement
    /// sees what was committed when it began).
    pub(crate) fn read<T>(&self, f: impl FnOnce(&mut Conn) -> Result<T>) -> Result<T> {
        let mut lease = self.lease()?;
        let conn = lease.conn();
        let value = f(conn);
        debug_assert!(conn.deferred.is_empty(), "a read deferred a statement");
        value
    }

    /// Runs `f` as one atomic write and returns once it is durable: its
    /// changes are kept only if it returns Ok. `f` may run more than once
    /// (a transaction that could not be serialized is tried again).
    pub(crate) fn write<T>(&self, f: impl FnMut(&mut Conn) -> Result<T>) -> Result<T> {
        self.transact(Durability::Synced, Turns::Free, f)
    }

    /// [`Self::write`] with a choice of when the commit must be durable.
    pub(crate) fn write_with<T>(
        &self,
        durability: Durability,
        f: impl FnMut(&mut Conn) -> Result<T>,
    ) -> Result<T> {
        self.transact(durability, Turns::Free, f)
    }

    /// A write on the upload side (sessions, finished blobs, mounts): READ
    /// COMMITTED, beside garbage collection ([`Turns::BesideGc`]), and
    /// unannounced, as it changes nothing a replica keeps in memory. The
    /// last matters beyond the message: PostgreSQL makes every notifying
    /// commit in the database take turns, holding a lock through the
    /// commit's flush to disk, so notifying writes never share a flush.
    pub(crate) fn write_upload<T>(
        &self,
        durability: Durability,
        f: impl FnMut(&mut Conn) -> Result<T>,
    ) -> Result<T> {
        self.transact(durability, Turns::BesideGc, f)
    }

    /// [`Self::write`] for a write that appends to the event log or the tag
    /// history. It holds [`LOG_LOCK`] (a session lock, taken after BEGIN,
    /// with the first round trip or, see [`Conn::lock_log_later`], the
    /// second, and let go after the commit), so that such writes
    /// take turns: ids are drawn in commit order, and each reads what every
    /// write before it committed, which spares them the serialization
    /// failures of racing on the same rows. Being serial, they run READ
    /// COMMITTED, beside garbage collection (see [`begin_logged_sql`]).
    pub(crate) fn write_logged<T>(&self, f: impl FnMut(&mut Conn) -> Result<T>) -> Result<T> {
        self.transact(Durability::Synced, Turns::Log, f)
    }

    /// [`Self::write`] for garbage collection's sweeps: no upload-side write
    /// runs meanwhile ([`Turns::Gc`]), and the sweep's snapshot, taken after
    /// the lock, holds every one committed before.
    pub(crate) fn write_gc<T>(&self, f: impl FnMut(&mut Conn) -> Result<T>) -> Result<T> {
        self.transact(Durability::Synced, Turns::Gc, f)
    }

    fn transact<T>(
        &self,
        durability: Durability,
        turns: Turns,
        mut f: impl FnMut(&mut Conn) -> Result<T>,
    ) -> Result<T> {
        let upload_side = turns == Turns::BesideGc;
        let begin = match turns {
            Turns::BesideGc => &self.begin_upload[durability as usize],
            Turns::Log => &self.begin_logged,
            Turns::Free | Turns::Gc => &self.begin_serial[durability as usize],
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut lease = self.lease()?;
            let conn = lease.conn();
            // The lock and BEGIN go out with the first round trip.
            conn.start = Some(Start {
                turns,
                begin: Arc::clone(begin),
            });
            conn.turns = turns;
            conn.lock_later = false;
            let done = f(conn).and_then(|value| conn.commit().map(|()| value));
            if done.is_err() {
                conn.abandon();
            }
            match done {
                Ok(value) => {
                    // After the commit: a reader that sees the new count
                    // sees the new rows. The upload side changed nothing kept.
                    if !upload_side {
                        self.changes.bump();
                    }
                    return Ok(value);
                }
                Err(e) if !retryable(&e) || attempt >= WRITE_ATTEMPTS => return Err(e),
                Err(_) => {}
            }
            drop(lease);
            // Back off a little, differently for each thread, so that the
            // same two writers do not meet again at once.
            let jitter = u64::from(crate::time::now_ms().unsigned_abs() as u32 % 7);
            std::thread::sleep(Duration::from_millis(u64::from(attempt) + jitter));
        }
    }

    /// The database URL, without its password.
    pub fn shown_url(&self) -> &str {
        &self.shown
    }
}

/// Set in the transactions of pushes (the upload side and the event log's
/// writes), whose statements all look rows up by key: their plans are made
/// once per connection rather than on every run. PostgreSQL otherwise keeps
/// planning a statement afresh while a plan for the values at hand looks
/// cheaper than the generic one, as it always does for a look-up of several
/// keys (`unnest` of a parameter is guessed at 10 rows, of a value at its
/// length): 0.2 ms of planning for 0.08 ms of work, twice per manifest.
const GENERIC_PLANS: &str = "SET LOCAL plan_cache_mode = force_generic_plan";

/// The statements that begin a write of `durability`: SERIALIZABLE with a
/// NOTIFY on `(channel, sender)`, or without one READ COMMITTED (the upload
/// side, with [`GENERIC_PLANS`]).
fn begin_sql(durability: Durability, notify: Option<(&str, &str)>) -> Arc<str> {
    let mut sql = String::from(if notify.is_some() {
        "BEGIN ISOLATION LEVEL SERIALIZABLE"
    } else {
        "BEGIN ISOLATION LEVEL READ COMMITTED"
    });
    if durability == Durability::Deferred {
        sql.push_str("; SET LOCAL synchronous_commit = off");
    }
    if notify.is_none() {
        sql.push_str("; ");
        sql.push_str(GENERIC_PLANS);
    }
    if let Some((channel, me)) = notify {
        sql.push_str(&format!("; NOTIFY {channel}, '{me}'"));
    }
    sql.into()
}

/// The statements that begin a write of the event log: READ COMMITTED, as
/// such writes take turns under [`LOG_LOCK`] (every statement after it sees
/// each write before: serial, without
/// SERIALIZABLE's bookkeeping of what each read); beside garbage collection
/// as the upload side is ([`GC_LOCK`], shared, for the transaction: a
/// collection's sweep, which holds it exclusively, never overlaps one); with
/// the notification that goes with its commit; with [`GENERIC_PLANS`].
fn begin_logged_sql(channel: &str, me: &str) -> Arc<str> {
    format!(
        "BEGIN ISOLATION LEVEL READ COMMITTED; SELECT pg_advisory_xact_lock_shared({GC_LOCK}); \
         NOTIFY {channel}, '{me}'; {GENERIC_PLANS}"
    )
    .into()
}

/// Applies the migrations not yet recorded, holding [`MIGRATION_LOCK`] so
/// that replicas starting together apply each once.
async fn migrate(client: &Client) -> Result<()> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let done = apply_migrations(client).await;
    if done.is_err() {
        let _ = client.batch_execute("ROLLBACK").await;
    }
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await?;
    done
}

async fn apply_migrations(client: &Client) -> Result<()> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS berth_schema (
                 version     INTEGER PRIMARY KEY,
                 applied_at  BIGINT NOT NULL
             )",
        )
        .await?;
    let applied: i32 = client
        .query_one("SELECT COALESCE(MAX(version), 0) FROM berth_schema", &[])
        .await?
        .try_get(0)?;
    let applied = usize::try_from(applied).unwrap_or(0);
    if applied > MIGRATIONS.len() {
        return Err(Error::Internal(format!(
            "metadata schema version {applied} is newer than this build knows ({})",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        let version = i + 1;
        let now = crate::time::now_ms();
        client
            .batch_execute(&format!(
                "BEGIN; {sql}; INSERT INTO berth_schema (version, applied_at) VALUES ({version}, {now}); COMMIT;"
            ))
            .await?;
    }
    Ok(())
}

/// Listens for every other replica's commits (`me` is this one's), for ever: reconnects when the
/// connection drops, and counts one change on (re)joining, as anything may
/// have changed while it was away.
async fn listen(
    config: tokio_postgres::Config,
    channel: String,
    me: String,
    changes: Arc<ChangeCount>,
) {
    let mut pause = Duration::from_millis(50);
    loop {
        if let Ok((client, mut connection)) = config.connect(NoTls).await {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            let sql = format!("LISTEN {channel}");
            let listen = client.batch_execute(&sql);
            tokio::pin!(listen);
            let mut joined = false;
            loop {
                tokio::select! {
                    done = &mut listen, if !joined => {
                        if done.is_err() {
                            break;
                        }
                        joined = true;
                        pause = Duration::from_millis(50);
                        changes.listening.store(true, Ordering::SeqCst);
                        changes.bump();
                    }
                    message = messages.next() => match message {
                        Some(Ok(AsyncMessage::Notification(n))) => {
                            if n.payload() != me {
                                changes.bump();
                            }
                        }
                        Some(Ok(_)) => {}
                        Some(Err(_)) | None => break,
                    },
                }
            }
            changes.listening.store(false, Ordering::SeqCst);
            changes.bump();
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

fn poisoned() -> Error {
    Error::Internal("metadata connection lock poisoned".into())
}

/// Milliseconds since the Unix epoch, the database's time unit.
pub(crate) use crate::time::now_ms;

/// Creates the repository row if it is new (deferred: it goes out with the
/// write's next round trip). A row that is there already is seen by the
/// statement's snapshot and nothing is inserted: `ON CONFLICT` alone would
/// first check the key, and a key whose row a logged write is updating (a new
/// tag bumps the repository's `tag_names`) makes that check wait for the
/// write's commit, so that every blob pushed to a repository queued behind
/// its manifest pushes.
pub(crate) fn ensure_repo(c: &mut Conn, repo: &str) -> Result<()> {
    c.defer(
        "INSERT INTO repositories (name, created_at)
         SELECT $1, $2 WHERE NOT EXISTS (SELECT 1 FROM repositories WHERE name = $1)
         ON CONFLICT DO NOTHING",
        values![repo.to_owned(), now_ms()],
    )
}

/// Column `i` of a row, typed.
pub(crate) fn col<'a, T: tokio_postgres::types::FromSql<'a>>(row: &'a Row, i: usize) -> Result<T> {
    Ok(row.try_get(i)?)
}

pub(crate) use crate::meta::{digest_column, repo_column, tag_column, to_i64, to_u64, word_column};

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redact("postgres://berth:hunter2@db:5432/berth"),
            "postgres://berth@db:5432/berth"
        );
        assert_eq!(
            redact("postgresql://berth@db/berth?password=hunter2&sslmode=disable"),
            "postgresql://berth@db/berth?password=***&sslmode=disable"
        );
        assert_eq!(
            redact("host=db user=berth password=hunter2 dbname=berth"),
            "host=db user=berth password=*** dbname=berth"
        );
        assert_eq!(redact("postgres://db/berth"), "postgres://db/berth");
    }
}
