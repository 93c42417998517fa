//! The journal on an SQLite file: one host, any number of processes.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row, Transaction};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::engine::{
    self, duration_millis, labels_json, millis, settlement_columns, signed, time, unsigned,
    Command, Handle, Op, Problem, Reply, Stored,
};
use super::store::{Admission, Intent, Store};
use super::{sealed, Journal, JournalOptions, Settlement};
use crate::{Error, LocalId, Result};

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

/// What the path held before SQLite was given it.
enum Found {
    /// Nothing (created now, empty), or an empty file.
    Empty,
    /// An SQLite database that may be a journal.
    Database,
}

/// The engine thread's state: the connection and this instance.
struct Engine {
    connection: Connection,
    name: String,
    id: String,
    incarnation: i64,
    lease: Duration,
}

fn refused(path: &Path, what: impl fmt::Display) -> Error {
    Error::journal(
        format!(
            "{} is not a laracopilot journal: {what}; it was left as it is",
            path.display()
        ),
        Problem::new(what.to_string()),
    )
}

fn failed(path: &Path, what: &str, source: impl Into<crate::error::BoxError>) -> Error {
    Error::journal(
        format!("the SQLite journal {} could not {what}", path.display()),
        source,
    )
}

/// What kind of file `meta` describes, for a refusal.
fn kind_of(meta: &fs::Metadata) -> &'static str {
    let kind = meta.file_type();
    if kind.is_symlink() {
        return "it is a symbolic link (open the path it points to instead)";
    }
    if kind.is_dir() {
        return "it is a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return "it is a FIFO";
        }
        if kind.is_socket() {
            return "it is a socket";
        }
        if kind.is_char_device() || kind.is_block_device() {
            return "it is a device";
        }
    }
    "it is not a regular file"
}

/// Checks what is at `path` before SQLite touches it, creating an empty file
/// (owner-only) when there is nothing. Never follows a symbolic link, never blocks
/// on a FIFO, never writes to what is there.
fn check_path(path: &Path) -> Result<Found> {
    for side in ["-wal", "-shm", "-journal"] {
        let mut side_path = path.as_os_str().to_owned();
        side_path.push(side);
        if let Ok(meta) = fs::symlink_metadata(&side_path) {
            if !meta.file_type().is_file() {
                return Err(refused(
                    path,
                    format_args!(
                        "its SQLite side file {} is not a regular file ({})",
                        Path::new(&side_path).display(),
                        kind_of(&meta)
                    ),
                ));
            }
        }
    }
    let before = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => match create(path) {
            Ok(()) => return Ok(Found::Empty),
            // Another process created it meanwhile: check what it made.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                fs::symlink_metadata(path).map_err(|e| failed(path, "be read", e))?
            }
            Err(e) => return Err(failed(path, "be created", e)),
        },
        Err(e) => return Err(failed(path, "be read", e)),
    };
    if !before.file_type().is_file() {
        return Err(refused(path, kind_of(&before)));
    }
    let mut file = open_to_read(path).map_err(|e| failed(path, "be read", e))?;
    let meta = file.metadata().map_err(|e| failed(path, "be read", e))?;
    if !meta.file_type().is_file() || !same_file(&before, &meta) {
        return Err(refused(path, "it was replaced while it was being checked"));
    }
    if meta.len() == 0 {
        return Ok(Found::Empty);
    }
    let mut header = Vec::with_capacity(100);
    (&mut file)
        .take(100)
        .read_to_end(&mut header)
        .map_err(|e| failed(path, "be read", e))?;
    let not_sqlite = "it is not an SQLite database (its first bytes are not an SQLite header)";
    if header.len() < 100 || header.get(..16) != Some(&SQLITE_MAGIC[..]) {
        return Err(refused(path, not_sqlite));
    }
    let application_id = be_u32(&header, 68);
    let user_version = be_u32(&header, 60);
    if application_id != 0 && application_id != APPLICATION_ID {
        return Err(refused(
            path,
            format_args!(
                "it is the SQLite database of another application (application_id {application_id:#010x})"
            ),
        ));
    }
    if application_id == APPLICATION_ID && user_version > SCHEMA_VERSION {
        return Err(newer(path, user_version));
    }
    Ok(Found::Database)
}

fn newer(path: &Path, version: u32) -> Error {
    Error::journal(
        format!(
            "the journal {} has schema version {version}, newer than this SDK's ({SCHEMA_VERSION}): upgrade the SDK; the file was left as it is",
            path.display()
        ),
        Problem::new(format!("journal schema version {version}")),
    )
}

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    bytes
        .get(at..at.saturating_add(4))
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(0, u32::from_be_bytes)
}

#[cfg(unix)]
fn create(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map(drop)
}

#[cfg(not(unix))]
fn create(path: &Path) -> io::Result<()> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
        .map(drop)
}

#[cfg(unix)]
fn open_to_read(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    // No symbolic link followed; a FIFO swapped in after the check does not block.
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
}

#[cfg(not(unix))]
fn open_to_read(path: &Path) -> io::Result<File> {
    OpenOptions::new().read(true).open(path)
}

#[cfg(unix)]
fn same_file(a: &fs::Metadata, b: &fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

#[cfg(not(unix))]
fn same_file(_: &fs::Metadata, _: &fs::Metadata) -> bool {
    true
}

/// What a database holds, as far as being a journal goes.
struct Inspection {
    application_id: u32,
    user_version: u32,
    tables: Vec<String>,
}

fn inspect(connection: &Connection) -> rusqlite::Result<Inspection> {
    let application_id: i64 = connection.query_row("PRAGMA application_id", [], |r| r.get(0))?;
    let user_version: i64 = connection.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let mut statement = connection.prepare(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )?;
    let tables = statement
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Inspection {
        // Both are 32-bit header fields that SQLite reads as signed.
        application_id: application_id as u32,
        user_version: user_version as u32,
        tables,
    })
}

impl Inspection {
    /// Whether the database is a journal (or nothing yet): `Err` says why not.
    fn verdict(&self, path: &Path) -> Result<()> {
        match self.application_id {
            APPLICATION_ID if self.user_version > SCHEMA_VERSION => {
                Err(newer(path, self.user_version))
            }
            APPLICATION_ID => Ok(()),
            0 if self.tables.is_empty() => Ok(()),
            0 => Err(refused(
                path,
                format_args!(
                    "it is an SQLite database with tables of its own ({})",
                    self.tables.join(", ")
                ),
            )),
            other => Err(refused(
                path,
                format_args!(
                    "it is the SQLite database of another application (application_id {other:#010x})"
                ),
            )),
        }
    }
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

/// Whether the entry `e` is driven by a live stream, at time `?1`.
const DRIVEN: &str = "(e.outcome IS NULL AND e.released = 0 AND EXISTS (
    SELECT 1 FROM instances i
     WHERE i.id = e.owner AND i.incarnation = e.incarnation AND i.lease_until > ?1))";

const ENTRY_COLUMNS: &str = "e.local_id, e.kind, e.scope, e.project_id, e.prompt, e.started_at, \
     e.token, e.labels, e.idempotency_key, e.accepted, e.outcome, e.app_url, e.error, \
     e.may_have_started_work, e.owner";

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

fn stored(row: &Row<'_>) -> rusqlite::Result<Stored> {
    Ok(Stored {
        local_id: row.get(0)?,
        kind: row.get(1)?,
        scope: row.get(2)?,
        project_id: row.get(3)?,
        prompt: row.get(4)?,
        started_at: row.get(5)?,
        token: row.get(6)?,
        labels: row.get(7)?,
        idempotency_key: row.get(8)?,
        accepted: row.get(9)?,
        outcome: row.get(10)?,
        app_url: row.get(11)?,
        error: row.get(12)?,
        may_have_started_work: row.get(13)?,
        owner: row.get(14)?,
    })
}

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
        // Read only: a database that is not a journal is refused unchanged.
        inspect(&connection)
            .map_err(|e| match e {
                rusqlite::Error::SqliteFailure(code, _)
                    if code.code == rusqlite::ErrorCode::NotADatabase =>
                {
                    refused(path, "it is not an SQLite database")
                }
                e => failed(path, "be read", e),
            })?
            .verdict(path)?;
        let mode: String = connection
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(|e| failed(path, "be opened in WAL mode", e))?;
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
        let now = millis(SystemTime::now());
        let name = self.name.clone();
        let single = batch.len() == 1;
        let results: Vec<Done<Reply>>;
        {
            let mut transaction = match self.connection.transaction_with_behavior(behavior) {
                Ok(transaction) => transaction,
                Err(e) => return answer_all(&name, batch, |_| clone_error(&e)),
            };
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
        let now = millis(SystemTime::now());
        let lease_until = now.saturating_add(duration_millis(self.lease));
        let renewed = self.connection.execute(
            "UPDATE instances SET lease_until = ?3 WHERE id = ?1 AND incarnation = ?2",
            params![self.id, self.incarnation, lease_until],
        );
        let renewed = match renewed {
            // Forgotten after a long freeze: back, unless the name was taken over.
            Ok(0) => self.connection.execute(
                "INSERT INTO instances (id, incarnation, lease_until) VALUES (?1, ?2, ?3)
                 ON CONFLICT (id) DO NOTHING",
                params![self.id, self.incarnation, lease_until],
            ),
            other => other,
        };
        renewed.map(drop).map_err(|error| {
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

/// Runs one command inside the batch's transaction (or a savepoint of it).
fn apply(db: &Connection, id: &str, incarnation: i64, op: &Op, now: i64) -> Done<Reply> {
    Ok(match op {
        Op::Admit(intent) => Reply::Admission(admit(db, id, incarnation, intent, now)?),
        Op::Accepted { entry, fence } => {
            Reply::Written(update(db, "SET accepted = 1", entry, *fence)?)
        }
        Op::ProjectKnown {
            entry,
            fence,
            project_id,
        } => Reply::Written(
            db.prepare_cached(
                "UPDATE entries SET project_id = ?3
                  WHERE local_id = ?1 AND fence = ?2 AND outcome IS NULL",
            )?
            .execute(params![entry.as_str(), signed(*fence), project_id.as_str()])?
                == 1,
        ),
        Op::Settle {
            entry,
            fence,
            settlement,
        } => Reply::Written(settle(db, entry, *fence, settlement, now)?),
        Op::Release { entry, fence } => Reply::Written(update(
            db,
            "SET released = 1, holds_slot = 0",
            entry,
            *fence,
        )?),
        Op::Unfinished => {
            let sql = format!(
                "SELECT {ENTRY_COLUMNS} FROM entries e
                  WHERE e.outcome IS NULL AND NOT {DRIVEN} ORDER BY e.seq"
            );
            let mut statement = db.prepare_cached(&sql)?;
            let rows = statement.query_map(params![now], stored)?;
            let mut entries = Vec::new();
            for row in rows {
                entries.push(row?.into_entry()?);
            }
            Reply::Entries(entries)
        }
        Op::Claim { entry } => Reply::Claimed(claim(db, id, incarnation, entry, now)?),
        Op::Entry { entry } => {
            let sql =
                format!("SELECT {ENTRY_COLUMNS}, {DRIVEN} FROM entries e WHERE e.local_id = ?2");
            let found = db
                .prepare_cached(&sql)?
                .query_row(params![now, entry.as_str()], |row| {
                    Ok((stored(row)?, row.get::<_, bool>(15)?))
                })
                .optional()?;
            match found {
                Some((stored, driven)) => Reply::Found(Some((stored.into_entry()?, driven))),
                None => Reply::Found(None),
            }
        }
        Op::TripBreaker { scope, cooldown } => {
            let until = now.saturating_add(duration_millis(*cooldown));
            db.prepare_cached(
                "INSERT INTO breakers (scope, open_until) VALUES (?1, ?2)
                 ON CONFLICT (scope) DO UPDATE SET open_until = max(open_until, ?2)",
            )?
            .execute(params![scope, until])?;
            Reply::Done
        }
        Op::ResetBreaker { scope } => {
            db.prepare_cached("DELETE FROM breakers WHERE scope = ?1")?
                .execute(params![scope])?;
            Reply::Done
        }
        Op::Breaker { scope } => Reply::Until(breaker(db, scope, now)?.map(time)),
        Op::Prune { settled_before } => {
            let before = millis(*settled_before);
            let pruned = db
                .prepare_cached(
                    "DELETE FROM entries WHERE settled_at IS NOT NULL AND settled_at < ?1",
                )?
                .execute(params![before])?;
            // Windows and breakers that ended before then count nothing any more.
            db.prepare_cached("DELETE FROM budgets WHERE window_end < ?1")?
                .execute(params![before.min(now)])?;
            db.prepare_cached("DELETE FROM breakers WHERE open_until < ?1")?
                .execute(params![now])?;
            Reply::Pruned(pruned as u64)
        }
    })
}

/// Applies `set` to the unsettled entry when it still has `fence`.
fn update(db: &Connection, set: &str, entry: &LocalId, fence: u64) -> Done<bool> {
    let sql =
        format!("UPDATE entries {set} WHERE local_id = ?1 AND fence = ?2 AND outcome IS NULL");
    let changed = db
        .prepare_cached(&sql)?
        .execute(params![entry.as_str(), signed(fence)])?;
    Ok(changed == 1)
}

fn breaker(db: &Connection, scope: &str, now: i64) -> Done<Option<i64>> {
    Ok(db
        .prepare_cached("SELECT open_until FROM breakers WHERE scope = ?1 AND open_until > ?2")?
        .query_row(params![scope, now], |r| r.get::<_, i64>(0))
        .optional()?)
}

fn settle(
    db: &Connection,
    entry: &LocalId,
    fence: u64,
    settlement: &Settlement,
    now: i64,
) -> Done<bool> {
    let (outcome, app_url, error, started) = settlement_columns(settlement);
    let changed = db
        .prepare_cached(
            "UPDATE entries
                SET outcome = ?3, app_url = ?4, error = ?5, may_have_started_work = ?6,
                    settled_at = ?7, holds_slot = 0,
                    idempotency_key = CASE WHEN ?8 THEN NULL ELSE idempotency_key END
              WHERE local_id = ?1 AND fence = ?2 AND outcome IS NULL",
        )?
        .execute(params![
            entry.as_str(),
            signed(fence),
            outcome,
            app_url,
            error,
            started,
            now,
            settlement.frees_key()
        ])?;
    Ok(changed == 1)
}

fn claim(
    db: &Connection,
    id: &str,
    incarnation: i64,
    entry: &LocalId,
    now: i64,
) -> Done<Option<(super::Entry, u64)>> {
    let sql = format!(
        "UPDATE entries AS e
            SET owner = ?3, incarnation = ?4, fence = e.fence + 1, released = 0, holds_slot = 0
          WHERE e.local_id = ?2 AND e.outcome IS NULL AND NOT {DRIVEN}
         RETURNING {}, fence",
        // RETURNING names the columns without the table's alias.
        ENTRY_COLUMNS.replace("e.", "")
    );
    let claimed = db
        .prepare_cached(&sql)?
        .query_row(params![now, entry.as_str(), id, incarnation], |row| {
            Ok((stored(row)?, row.get::<_, i64>(15)?))
        })
        .optional()?;
    match claimed {
        Some((stored, fence)) => Ok(Some((stored.into_entry()?, unsigned(fence)))),
        None => Ok(None),
    }
}

fn admit(
    db: &Connection,
    id: &str,
    incarnation: i64,
    intent: &Intent,
    now: i64,
) -> Done<Admission> {
    if let Some(until) = breaker(db, &intent.scope, now)? {
        return Ok(Admission::BreakerOpen { until: time(until) });
    }
    let mut frees_key = None;
    if let Some(key) = &intent.idempotency_key {
        let sql = format!(
            "SELECT {ENTRY_COLUMNS} FROM entries e WHERE e.scope = ?1 AND e.idempotency_key = ?2"
        );
        let holder = db
            .prepare_cached(&sql)?
            .query_row(params![intent.scope, key], stored)
            .optional()?;
        if let Some(holder) = holder {
            let entry = holder.into_entry()?;
            match &entry.settlement {
                Some(settlement) if settlement.frees_key() => frees_key = Some(entry.local_id),
                _ => return Ok(Admission::Duplicate(Box::new(entry))),
            }
        }
    }
    let now_unsigned = u64::try_from(now).unwrap_or(0);
    for budget in &intent.budgets {
        let window = budget.window();
        let start = window.start_millis(now_unsigned);
        let used: i64 = db
            .prepare_cached(
                "SELECT used FROM budgets WHERE scope = ?1 AND time_window = ?2 AND window_start = ?3",
            )?
            .query_row(
                params![intent.scope, window.as_str(), signed(start)],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(0);
        if u64::try_from(used).unwrap_or(0) >= budget.limit() {
            return Ok(Admission::OverBudget {
                budget: *budget,
                reset_time: crate::budget::from_unix_millis(window.end_millis(start)),
            });
        }
    }
    if let Some(cap) = intent.max_concurrent {
        let sql = format!(
            "SELECT count(*) FROM entries e
              WHERE e.scope = ?2 AND e.outcome IS NULL AND e.holds_slot = 1 AND {DRIVEN}"
        );
        let running: i64 = db
            .prepare_cached(&sql)?
            .query_row(params![now, intent.scope], |r| r.get(0))?;
        let running = u64::try_from(running).unwrap_or(0);
        if running >= cap {
            return Ok(Admission::Busy { running });
        }
    }
    // Admitted: everything below is written together.
    if let Some(holder) = frees_key {
        db.prepare_cached("UPDATE entries SET idempotency_key = NULL WHERE local_id = ?1")?
            .execute(params![holder.as_str()])?;
    }
    for budget in &intent.budgets {
        let window = budget.window();
        let start = window.start_millis(now_unsigned);
        db.prepare_cached(
            "INSERT INTO budgets (scope, time_window, window_start, window_end, used)
             VALUES (?1, ?2, ?3, ?4, 1)
             ON CONFLICT (scope, time_window, window_start) DO UPDATE SET used = used + 1",
        )?
        .execute(params![
            intent.scope,
            window.as_str(),
            signed(start),
            signed(window.end_millis(start))
        ])?;
    }
    let local_id = LocalId::new();
    let fence = 1_u64;
    db.prepare_cached(
        "INSERT INTO entries (local_id, kind, scope, project_id, prompt, started_at, token,
                              labels, idempotency_key, owner, incarnation, fence, holds_slot)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?
    .execute(params![
        local_id.as_str(),
        intent.kind.as_str(),
        intent.scope,
        intent.project_id.as_ref().map(|p| p.as_str()),
        intent.prompt,
        now,
        intent.token_mask,
        labels_json(&intent.labels),
        intent.idempotency_key,
        id,
        incarnation,
        signed(fence),
        intent.max_concurrent.is_some()
    ])?;
    Ok(Admission::Admitted {
        entry: local_id,
        fence,
    })
}
