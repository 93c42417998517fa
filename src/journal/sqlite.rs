//! The journal on an SQLite file: one host, any number of processes.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rusqlite::{params, Connection, OpenFlags, Transaction};
use tokio::sync::mpsc;
use tokio::time::Instant;

use self::apply::apply;
use self::file::{check_path, failed, inspect, refused};
use super::engine::{self, duration_millis, millis, Command, Handle, Op, Problem, Reply};
use super::store::Store;
use super::{sealed, Journal, JournalOptions};
use crate::{Error, Result};

/// `PRAGMA application_id` of a laracopilot journal: "LCPJ".
const APPLICATION_ID: u32 = 0x4C43_504A;

/// `PRAGMA user_version`: the version of the journal's schema this SDK writes.
const SCHEMA_VERSION: u32 = 1;

/// The first bytes of every SQLite database file.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// How long a write waits for another process holding the file's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Instances whose lease ended this long ago are forgotten (their entries stay,
/// unfinished, as they were already).
const FORGET_INSTANCES_AFTER: i64 = 7 * 24 * 3_600 * 1_000;

/// A journal on an SQLite file: the embedded default for one host, shared safely by
/// every process there (and by several opens in one process), each an instance with
/// its own lease. Feature `sqlite`; SQLite itself is compiled in.
///
/// Its engine owns the connection on a thread of its own: calls never do file I/O
/// on the caller's executor. Writes waiting together are committed together, and a
/// write's future completes only once it is durable (WAL, `synchronous=FULL`).
///
/// The file is created with owner-only permissions (0600; SQLite gives its `-wal`
/// and `-shm` files the same). Opening refuses, without changing it, anything that
/// is not a journal: a file that is not an SQLite database (whatever it holds), an
/// SQLite database of another application, a journal of a newer schema, a symbolic
/// link, a directory, a FIFO, a device or a socket. An existing empty file is taken
/// as a new journal.
///
/// ```no_run
/// use laracopilot::journal::{JournalOptions, SqliteJournal};
///
/// let journal = SqliteJournal::open_with(
///     "/var/lib/app/laracopilot.db",
///     JournalOptions::new().instance("worker-3"),
/// )?;
/// let client = laracopilot::Client::builder()
///     .token(laracopilot::Token::new("lcp_0123456789abcdef")?)
///     .journal(journal)
///     .build()?;
/// # Ok::<(), laracopilot::Error>(())
/// ```
pub struct SqliteJournal {
    handle: Arc<Handle>,
    path: PathBuf,
}

impl SqliteJournal {
    /// Opens the journal at `path`, creating it when there is no file there, as a
    /// new instance with the default [`JournalOptions`].
    ///
    /// It blocks while it checks the file and creates or migrates its schema (an
    /// instant, or as long as another process holds the file's write lock, 10 s at
    /// most): call it at start-up, or from `spawn_blocking`.
    ///
    /// # Errors
    ///
    /// [`Error::Journal`], naming the path and what is wrong, when the path is not
    /// a journal (see the [type's docs](SqliteJournal)), cannot be created or read,
    /// or holds a journal of a newer schema. Nothing is modified then.
    ///
    /// ```no_run
    /// let journal = laracopilot::journal::SqliteJournal::open("laracopilot.db")?;
    /// # Ok::<(), laracopilot::Error>(())
    /// ```
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        SqliteJournal::open_with(path, JournalOptions::new())
    }

    /// Opens the journal at `path` with `options` (a lease, a stable instance name).
    ///
    /// # Errors
    ///
    /// As [`SqliteJournal::open`].
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use laracopilot::journal::{JournalOptions, SqliteJournal};
    ///
    /// let options = JournalOptions::new().lease(Duration::from_secs(10));
    /// let journal = SqliteJournal::open_with("laracopilot.db", options)?;
    /// # Ok::<(), laracopilot::Error>(())
    /// ```
    pub fn open_with(path: impl AsRef<Path>, options: JournalOptions) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let id = options.instance_id();
        let lease = options.lease_duration();
        let (commands, queue) = mpsc::channel(engine::QUEUE);
        let (opened, open_result) = std::sync::mpsc::sync_channel(1);
        let thread_path = path.clone();
        let thread_id = id.clone();
        std::thread::Builder::new()
            .name("laracopilot-journal-sqlite".to_owned())
            .spawn(move || {
                let started = tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()
                    .map_err(|e| {
                        Error::journal(
                            format!(
                                "the SQLite journal {} could not start its engine",
                                thread_path.display()
                            ),
                            e,
                        )
                    })
                    .and_then(|runtime| {
                        Engine::open(&thread_path, thread_id, lease).map(|engine| (runtime, engine))
                    });
                match started {
                    Ok((runtime, engine)) => {
                        if opened.send(Ok(())).is_ok() {
                            runtime.block_on(engine.run(queue));
                        }
                    }
                    Err(error) => {
                        let _ = opened.send(Err(error));
                    }
                }
            })
            .map_err(|e| {
                Error::journal(
                    format!(
                        "the SQLite journal {} could not start its thread",
                        path.display()
                    ),
                    e,
                )
            })?;
        match open_result.recv() {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return Err(error),
            Err(e) => {
                return Err(Error::journal(
                    format!("the SQLite journal {} could not be opened", path.display()),
                    e,
                ))
            }
        }
        let name = path.display().to_string();
        Ok(SqliteJournal {
            handle: Arc::new(Handle::new("SQLite", name, id, lease, commands)),
            path,
        })
    }

    /// The file it was opened at.
    ///
    /// ```no_run
    /// let journal = laracopilot::journal::SqliteJournal::open("laracopilot.db")?;
    /// assert_eq!(journal.path(), std::path::Path::new("laracopilot.db"));
    /// # Ok::<(), laracopilot::Error>(())
    /// ```
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// This open's instance id: the owner of the entries it admits or resumes.
    ///
    /// ```no_run
    /// use laracopilot::journal::{JournalOptions, SqliteJournal};
    /// let journal = SqliteJournal::open_with("laracopilot.db", JournalOptions::new().instance("web-1"))?;
    /// assert_eq!(journal.instance(), "web-1");
    /// # Ok::<(), laracopilot::Error>(())
    /// ```
    pub fn instance(&self) -> &str {
        self.handle.instance()
    }
}

impl fmt::Debug for SqliteJournal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.handle, f)
    }
}

impl Journal for SqliteJournal {}

impl sealed::Sealed for SqliteJournal {
    fn store(&self) -> Arc<dyn Store> {
        Arc::clone(&self.handle) as Arc<dyn Store>
    }
}

/// The engine thread's state: the connection and this instance.
struct Engine {
    connection: Connection,
    name: String,
    id: String,
    incarnation: i64,
    lease: Duration,
}

/// The journal's schema, version 1.
const SCHEMA_1: &str = "
CREATE TABLE instances (
    id TEXT PRIMARY KEY,
    incarnation INTEGER NOT NULL,
    lease_until INTEGER NOT NULL
) STRICT;
CREATE TABLE entries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    local_id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    scope TEXT NOT NULL,
    project_id TEXT,
    prompt TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    token TEXT NOT NULL,
    labels TEXT NOT NULL,
    idempotency_key TEXT,
    accepted INTEGER NOT NULL DEFAULT 0,
    outcome TEXT,
    app_url TEXT,
    error TEXT,
    may_have_started_work INTEGER,
    settled_at INTEGER,
    owner TEXT NOT NULL,
    incarnation INTEGER NOT NULL,
    fence INTEGER NOT NULL,
    holds_slot INTEGER NOT NULL,
    released INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE UNIQUE INDEX entries_key ON entries (scope, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX entries_unsettled ON entries (scope) WHERE outcome IS NULL;
CREATE INDEX entries_settled ON entries (settled_at) WHERE settled_at IS NOT NULL;
CREATE TABLE breakers (
    scope TEXT PRIMARY KEY,
    open_until INTEGER NOT NULL
) STRICT;
CREATE TABLE budgets (
    scope TEXT NOT NULL,
    time_window TEXT NOT NULL,
    window_start INTEGER NOT NULL,
    window_end INTEGER NOT NULL,
    used INTEGER NOT NULL,
    PRIMARY KEY (scope, time_window, window_start)
) STRICT;
";

/// An engine's failure: SQLite's, or a row it cannot read.
#[derive(Debug)]
enum Fault {
    Sql(rusqlite::Error),
    Data(Problem),
}

impl From<rusqlite::Error> for Fault {
    fn from(e: rusqlite::Error) -> Self {
        Fault::Sql(e)
    }
}

impl From<Problem> for Fault {
    fn from(e: Problem) -> Self {
        Fault::Data(e)
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Sql(e) => fmt::Display::fmt(e, f),
            Fault::Data(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl std::error::Error for Fault {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Fault::Sql(e) => Some(e),
            Fault::Data(e) => Some(e),
        }
    }
}

type Done<T> = std::result::Result<T, Fault>;

impl Engine {
    /// Checks the file, opens it, creates or migrates its schema and registers
    /// this instance.
    fn open(path: &Path, id: String, lease: Duration) -> Result<Engine> {
        check_path(path)?;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_NOFOLLOW;
        let connection =
            Connection::open_with_flags(path, flags).map_err(|e| failed(path, "be opened", e))?;
        connection
            .busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| failed(path, "be opened", e))?;
        // Read only: a database that is not a journal is refused unchanged. One read
        // transaction, so that the header and the tables are of one snapshot: another
        // process creating this journal right now commits both at once.
        inspect_snapshot(&connection)
            .map_err(|e| match e {
                rusqlite::Error::SqliteFailure(code, _)
                    if code.code == rusqlite::ErrorCode::NotADatabase =>
                {
                    refused(path, "it is not an SQLite database")
                }
                e => failed(path, "be read", e),
            })?
            .verdict(path)?;
        let mode = wal_mode(&connection).map_err(|e| failed(path, "be opened in WAL mode", e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(failed(
                path,
                "be opened in WAL mode",
                Problem::new(format!("SQLite kept the journal mode {mode:?}")),
            ));
        }
        connection
            .execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = OFF;")
            .map_err(|e| failed(path, "be opened", e))?;
        let mut engine = Engine {
            connection,
            name: path.display().to_string(),
            id,
            incarnation: (crate::random::u64() >> 1) as i64,
            lease,
        };
        engine.prepare(path)?;
        Ok(engine)
    }

    /// Creates or migrates the schema and registers this instance, in one
    /// transaction that holds the write lock (processes opening together).
    fn prepare(&mut self, path: &Path) -> Result<()> {
        let now = millis(SystemTime::now());
        let lease_until = now.saturating_add(duration_millis(self.lease));
        let (id, incarnation) = (self.id.clone(), self.incarnation);
        let transaction = self
            .connection
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| failed(path, "be opened", e))?;
        let found = inspect(&transaction).map_err(|e| failed(path, "be read", e))?;
        found.verdict(path)?;
        if found.application_id == 0 || found.user_version < SCHEMA_VERSION {
            migrate(&transaction, found.user_version).map_err(|e| failed(path, "be created", e))?;
        }
        transaction
            .execute(
                "INSERT INTO instances (id, incarnation, lease_until) VALUES (?1, ?2, ?3)
                 ON CONFLICT (id) DO UPDATE SET incarnation = ?2, lease_until = ?3",
                params![id, incarnation, lease_until],
            )
            .and_then(|_| {
                transaction.execute(
                    "DELETE FROM instances WHERE lease_until < ?1",
                    params![now.saturating_sub(FORGET_INSTANCES_AFTER)],
                )
            })
            .map_err(|e| failed(path, "register this instance", e))?;
        transaction
            .commit()
            .map_err(|e| failed(path, "be opened", e))
    }

    async fn run(mut self, mut queue: mpsc::Receiver<Command>) {
        let every = (self.lease / 3).min(engine::RENEW_AT_MOST_EVERY);
        let mut renew_at = Instant::now() + every;
        loop {
            let next = tokio::time::timeout_at(renew_at, queue.recv()).await;
            if Instant::now() >= renew_at {
                renew_at = Instant::now()
                    + match self.renew() {
                        Ok(()) => every,
                        // Try again soon, within the lease.
                        Err(()) => every.min(Duration::from_secs(1)),
                    };
            }
            let first = match next {
                Ok(Some(command)) => command,
                Ok(None) => break,
                Err(_) => continue,
            };
            let mut batch = Vec::with_capacity(16);
            batch.push(first);
            let limit = engine::batch_limit();
            while batch.len() < limit {
                match queue.try_recv() {
                    Ok(command) => batch.push(command),
                    Err(_) => break,
                }
            }
            let unheard = self.run_batch(batch);
            if !unheard.is_empty() {
                let settle = unheard
                    .into_iter()
                    .map(|op| Command { op, reply: None })
                    .collect();
                // Fire-and-forget writes: nothing comes back from them.
                let _ = self.run_batch(settle);
            }
        }
        self.end_lease();
    }

    /// Runs a batch in one transaction, a savepoint for each command, and answers
    /// each once the transaction committed. Answers the admissions nobody heard.
    fn run_batch(&mut self, batch: Vec<Command>) -> Vec<Op> {
        let writes = batch.iter().any(|c| c.op.writes());
        let behavior = if writes {
            rusqlite::TransactionBehavior::Immediate
        } else {
            rusqlite::TransactionBehavior::Deferred
        };
        let name = self.name.clone();
        let single = batch.len() == 1;
        let results: Vec<Done<Reply>>;
        {
            let mut transaction = match self.connection.transaction_with_behavior(behavior) {
                Ok(transaction) => transaction,
                Err(e) => return answer_all(&name, batch, |_| clone_error(&e)),
            };
            // The batch's time, read once its write lock is held: a wait for
            // another process's lock must not date an admission (its budget
            // window, the leases and breakers it reads) before it happened.
            let now = millis(SystemTime::now());
            let mut outcomes = Vec::with_capacity(batch.len());
            let mut broken = None;
            for command in &batch {
                if single {
                    outcomes.push(apply(
                        &transaction,
                        &self.id,
                        self.incarnation,
                        &command.op,
                        now,
                    ));
                    continue;
                }
                let outcome = match transaction.savepoint() {
                    Ok(savepoint) => {
                        let outcome =
                            apply(&savepoint, &self.id, self.incarnation, &command.op, now);
                        let ended = if outcome.is_ok() {
                            savepoint.commit()
                        } else {
                            // Dropping a savepoint rolls it back.
                            savepoint.finish()
                        };
                        if let Err(e) = ended {
                            broken = Some(e);
                        }
                        outcome
                    }
                    Err(e) => Err(Fault::Sql(e)),
                };
                outcomes.push(outcome);
                if broken.is_some() {
                    break;
                }
            }
            let failed_alone = single && outcomes.iter().any(Result::is_err);
            let committed = match broken {
                Some(e) => Err(e),
                None if failed_alone => {
                    // A command that failed alone applied nothing.
                    transaction.set_drop_behavior(rusqlite::DropBehavior::Rollback);
                    Ok(())
                }
                None => {
                    transaction.set_drop_behavior(rusqlite::DropBehavior::Commit);
                    transaction.finish()
                }
            };
            results = match committed {
                Ok(()) => outcomes,
                Err(e) => batch.iter().map(|_| Err(clone_error(&e))).collect(),
            };
        }
        let mut unheard = Vec::new();
        for (command, result) in batch.into_iter().zip(results) {
            let what = command.op.what();
            let result = result.map_err(|fault| {
                Error::journal(format!("the SQLite journal {name} could not {what}"), fault)
            });
            if command.reply.is_none() {
                if let Err(error) = &result {
                    tracing::warn!(journal = %name, error = %error, "the laracopilot journal could not {what}");
                }
            }
            unheard.extend(command.answer(result));
        }
        unheard
    }

    fn renew(&mut self) -> std::result::Result<(), ()> {
        let (id, incarnation, lease) = (&self.id, self.incarnation, self.lease);
        let renewed = self
            .connection
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .and_then(|transaction| {
                // Read once the write lock is held: a renewal that waited for
                // another process's lock still grants a whole lease.
                let now = millis(SystemTime::now());
                let lease_until = now.saturating_add(duration_millis(lease));
                let renewed = transaction.execute(
                    "UPDATE instances SET lease_until = ?3 WHERE id = ?1 AND incarnation = ?2",
                    params![id, incarnation, lease_until],
                )?;
                if renewed == 0 {
                    // Forgotten after a long freeze: back, unless the name was taken over.
                    transaction.execute(
                        "INSERT INTO instances (id, incarnation, lease_until) VALUES (?1, ?2, ?3)
                         ON CONFLICT (id) DO NOTHING",
                        params![id, incarnation, lease_until],
                    )?;
                }
                transaction.commit()
            });
        renewed.map_err(|error| {
            tracing::warn!(journal = %self.name, error = %error, "the laracopilot journal could not renew its lease");
        })
    }

    fn end_lease(&mut self) {
        if let Err(error) = self.connection.execute(
            "DELETE FROM instances WHERE id = ?1 AND incarnation = ?2",
            params![self.id, self.incarnation],
        ) {
            tracing::warn!(journal = %self.name, error = %error, "the laracopilot journal could not end its lease (it expires by itself)");
        }
    }
}

/// Answers every command of a batch that could not start with the same failure.
fn answer_all(name: &str, batch: Vec<Command>, fault: impl Fn(&Op) -> Fault) -> Vec<Op> {
    let mut unheard = Vec::new();
    for command in batch {
        let what = command.op.what();
        let error = Error::journal(
            format!("the SQLite journal {name} could not {what}"),
            fault(&command.op),
        );
        if command.reply.is_none() {
            tracing::warn!(journal = %name, error = %error, "the laracopilot journal could not {what}");
        }
        unheard.extend(command.answer(Err(error)));
    }
    unheard
}

/// The same failure again, for each command of a batch that shared it.
fn clone_error(error: &rusqlite::Error) -> Fault {
    match error {
        rusqlite::Error::SqliteFailure(code, message) => {
            Fault::Sql(rusqlite::Error::SqliteFailure(*code, message.clone()))
        }
        other => Fault::Data(Problem::new(other.to_string())),
    }
}

/// Switches the database to WAL mode; its journal mode after that. Processes
/// opening a new file together each ask for the switch, which takes the file's
/// exclusive lock: SQLite answers "busy" at once to one that would deadlock with
/// another (its busy handler is not asked), so a busy answer is asked again, for
/// up to [`BUSY_TIMEOUT`]. Once one process switched the file, the mode is WAL for
/// good and the others' switch is only a read.
fn wal_mode(connection: &Connection) -> rusqlite::Result<String> {
    let started = std::time::Instant::now();
    loop {
        match connection.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)) {
            Err(rusqlite::Error::SqliteFailure(code, _))
                if code.code == rusqlite::ErrorCode::DatabaseBusy
                    && started.elapsed() < BUSY_TIMEOUT =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            answer => return answer,
        }
    }
}

/// [`inspect`] within one read transaction, rolled back (it writes nothing).
fn inspect_snapshot(connection: &Connection) -> rusqlite::Result<file::Inspection> {
    let snapshot = connection.unchecked_transaction()?;
    let found = inspect(&snapshot)?;
    snapshot.rollback()?;
    Ok(found)
}

fn migrate(transaction: &Transaction<'_>, from: u32) -> rusqlite::Result<()> {
    if from < 1 {
        transaction.execute_batch(SCHEMA_1)?;
    }
    transaction.execute_batch(&format!(
        "PRAGMA application_id = {}; PRAGMA user_version = {SCHEMA_VERSION};",
        // SQLite stores the id as a signed 32-bit number.
        APPLICATION_ID as i32
    ))
}

mod apply;
mod file;
