//! The journal's engines for the tests: one database per test on every engine that
//! can run here ([`Db::all`]: memory always, SQLite with the `sqlite` feature,
//! PostgreSQL with the `postgres` feature when a server answers), opened as often as
//! a test needs instances (hosts, restarts), and read back apart from the SDK
//! ([`Db::rows`]), so that a test sees what is durable at any moment and from any
//! thread, a server's script included.
//!
//! The SQLite file is read through a read-only connection of its own, the
//! PostgreSQL schema through a connection of its own; both in the journal's schema
//! version 1 (table `entries`), as the CLI's tests read it: a new schema version
//! fails here first, which is the point. The memory engine is read through
//! `MemoryJournal::entries` of an instance the test keeps.
//!
//! [`Db::fail`] makes one kind of write fail (a trigger that raises, in SQLite and
//! PostgreSQL), as a full disk or a lost database would.
//!
//! PostgreSQL: `LARACOPILOT_TEST_POSTGRES` names the server (`.ci/postgres.sh` starts
//! one and prints it), else [`pg::DEFAULT_URL`]. With no server there, the tests skip
//! that engine and say so on stderr (past libtest's capture); with the variable set,
//! an unreachable server fails them. Each database is a schema of its own, dropped
//! when the test passes.

use std::sync::Arc;

use laracopilot::journal::{Entry, Journal, JournalOptions, MemoryJournal, Settlement};

/// Which engine a [`Db`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Memory,
    Sqlite,
    Postgres,
}

/// One entry as its database holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub local_id: String,
    /// `generate` or `follow_up`.
    pub kind: String,
    pub scope: String,
    pub project_id: Option<String>,
    pub prompt: String,
    pub labels: Vec<(String, String)>,
    pub idempotency_key: Option<String>,
    pub accepted: bool,
    /// `succeeded`, `failed` or `unknown`, once settled.
    pub outcome: Option<String>,
    pub error: Option<String>,
    pub may_have_started_work: Option<bool>,
    pub app_url: Option<String>,
    /// The token's mask.
    pub token: String,
}

impl Row {
    /// The entry's progress in one line: `sent`, `accepted`, `accepted p1`,
    /// `accepted p1 succeeded https://…`, `sent failed validation false`,
    /// `accepted p1 failed incomplete true`, `sent unknown`.
    pub fn state(&self) -> String {
        let mut text = String::from(if self.accepted { "accepted" } else { "sent" });
        if let Some(id) = &self.project_id {
            text.push(' ');
            text.push_str(id);
        }
        match self.outcome.as_deref() {
            None => {}
            Some("succeeded") => {
                text.push_str(" succeeded ");
                text.push_str(self.app_url.as_deref().unwrap_or("-"));
            }
            Some("failed") => text.push_str(&format!(
                " failed {} {}",
                self.error.as_deref().unwrap_or("-"),
                self.may_have_started_work.unwrap_or_default()
            )),
            Some(other) => {
                text.push(' ');
                text.push_str(other);
            }
        }
        text
    }

    fn of_entry(entry: &Entry) -> Row {
        let (outcome, error, may_have_started_work, app_url) = match &entry.settlement {
            None => (None, None, None, None),
            Some(Settlement::Succeeded { app_url, .. }) => {
                (Some("succeeded"), None, None, app_url.clone())
            }
            Some(Settlement::Failed {
                error,
                may_have_started_work,
                ..
            }) => (
                Some("failed"),
                Some(error.clone()),
                Some(*may_have_started_work),
                None,
            ),
            Some(Settlement::Unknown) => (Some("unknown"), None, None, None),
            Some(_) => (Some("other"), None, None, None),
        };
        Row {
            local_id: entry.local_id.as_str().to_owned(),
            kind: entry.kind.as_str().to_owned(),
            scope: entry.scope.clone(),
            project_id: entry.project_id.as_ref().map(|p| p.as_str().to_owned()),
            prompt: entry.prompt.clone(),
            labels: entry.labels.clone(),
            idempotency_key: entry.idempotency_key.clone(),
            accepted: entry.accepted,
            outcome: outcome.map(str::to_owned),
            error,
            may_have_started_work,
            app_url,
            token: entry.token.clone(),
        }
    }
}

/// The states of `rows`, in order.
pub fn states(rows: &[Row]) -> Vec<String> {
    rows.iter().map(Row::state).collect()
}

/// Which write [`Db::fail`] makes fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// The admission (the intent, with its guards).
    Intent,
    /// That the server accepted the call.
    Accepted,
    /// The project id.
    ProjectKnown,
    /// The settlement.
    Settle,
}

impl Write {
    /// The trigger's name, and what it is for: SQLite's `BEFORE` clause.
    fn trigger(self) -> (&'static str, &'static str) {
        match self {
            Write::Intent => ("lcp_test_fail_intent", "INSERT"),
            Write::Accepted => ("lcp_test_fail_accepted", "UPDATE OF accepted"),
            Write::ProjectKnown => ("lcp_test_fail_project", "UPDATE OF project_id"),
            Write::Settle => ("lcp_test_fail_settle", "UPDATE OF outcome"),
        }
    }
}

/// A reader of a [`Db`] that any thread may keep (a server's script, say).
#[derive(Clone)]
pub struct Observer(Arc<Reader>);

enum Reader {
    Memory(MemoryJournal),
    #[cfg(feature = "sqlite")]
    Sqlite(std::path::PathBuf),
    #[cfg(feature = "postgres")]
    Postgres(Arc<pg::Admin>),
}

impl Observer {
    /// Every entry, oldest first, as the database holds it now.
    pub fn rows(&self) -> Vec<Row> {
        match &*self.0 {
            Reader::Memory(journal) => journal.entries().iter().map(Row::of_entry).collect(),
            #[cfg(feature = "sqlite")]
            Reader::Sqlite(path) => sqlite_rows(path),
            #[cfg(feature = "postgres")]
            Reader::Postgres(admin) => admin.rows(),
        }
    }
}

/// One test's journal database.
pub struct Db {
    pub engine: Engine,
    observer: Observer,
    #[cfg(feature = "sqlite")]
    _dir: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.engine)
    }
}

impl Db {
    /// A database on each engine that can run here, for test `test` (named in the
    /// line that says PostgreSQL is skipped).
    pub fn all(test: &str) -> Vec<Db> {
        Db::engines(test).into_iter().map(Db::of).collect()
    }

    /// The engines that can run here, for test `test` (named in the line that says
    /// PostgreSQL is skipped).
    pub fn engines(test: &str) -> Vec<Engine> {
        let all = [
            Some(Engine::Memory),
            cfg!(feature = "sqlite").then_some(Engine::Sqlite),
            postgres_reachable(test).then_some(Engine::Postgres),
        ];
        all.into_iter().flatten().collect()
    }

    /// A new database on `engine` (one of [`Db::engines`]).
    pub fn of(engine: Engine) -> Db {
        match engine {
            Engine::Memory => Db::memory(),
            #[cfg(feature = "sqlite")]
            Engine::Sqlite => Db::sqlite(),
            #[cfg(feature = "postgres")]
            Engine::Postgres => Db::postgres().expect("the PostgreSQL server answered"),
            #[allow(unreachable_patterns, reason = "an engine whose feature is off")]
            other => panic!("{other:?} is not built in"),
        }
    }

    /// The engines that can make a write fail ([`Db::fail`]): those of [`Db::all`]
    /// but memory.
    pub fn failing(test: &str) -> Vec<Db> {
        Db::all(test)
            .into_iter()
            .filter(|db| db.engine != Engine::Memory)
            .collect()
    }

    /// A database in memory.
    pub fn memory() -> Db {
        Db {
            engine: Engine::Memory,
            observer: Observer(Arc::new(Reader::Memory(MemoryJournal::with_options(
                JournalOptions::new().instance("lcp-test-observer"),
            )))),
            #[cfg(feature = "sqlite")]
            _dir: None,
        }
    }

    /// A new SQLite file in a directory of its own.
    #[cfg(feature = "sqlite")]
    pub fn sqlite() -> Db {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("laracopilot.db");
        // Created (with its schema) by a first open, which is then closed.
        drop(laracopilot::journal::SqliteJournal::open(&path).expect("a new journal opens"));
        Db {
            engine: Engine::Sqlite,
            observer: Observer(Arc::new(Reader::Sqlite(path))),
            _dir: Some(dir),
        }
    }

    /// A new schema on the test server, or `None` when it cannot be reached.
    #[cfg(feature = "postgres")]
    pub fn postgres() -> Option<Db> {
        let admin = pg::Admin::connect().ok()?;
        Some(Db {
            engine: Engine::Postgres,
            observer: Observer(Arc::new(Reader::Postgres(Arc::new(admin)))),
            #[cfg(feature = "sqlite")]
            _dir: None,
        })
    }

    /// Opens the journal as a new instance (another process or host), with the
    /// default options.
    pub fn open(&self) -> Arc<dyn Journal> {
        self.open_with(JournalOptions::new())
    }

    /// Opens the journal as a new instance with `options`.
    pub fn open_with(&self, options: JournalOptions) -> Arc<dyn Journal> {
        match &*self.observer.0 {
            Reader::Memory(journal) => Arc::new(journal.open_another(options)),
            #[cfg(feature = "sqlite")]
            Reader::Sqlite(path) => Arc::new(
                laracopilot::journal::SqliteJournal::open_with(path, options)
                    .expect("the journal opens"),
            ),
            #[cfg(feature = "postgres")]
            Reader::Postgres(admin) => Arc::new(admin.open(options)),
        }
    }

    /// Every entry, oldest first, as the database holds it now.
    pub fn rows(&self) -> Vec<Row> {
        self.observer.rows()
    }

    /// The states of every entry ([`Row::state`]), oldest first.
    pub fn states(&self) -> Vec<String> {
        states(&self.rows())
    }

    /// A reader for another thread.
    pub fn observer(&self) -> Observer {
        self.observer.clone()
    }

    /// Makes every later `write` of this database fail, as a full disk would, until
    /// [`Db::heal`]. Memory cannot fail: `false` there.
    #[cfg_attr(
        not(any(feature = "sqlite", feature = "postgres")),
        allow(unused_variables, reason = "memory cannot fail a write")
    )]
    pub fn fail(&self, write: Write) -> bool {
        let (name, when) = write.trigger();
        match &*self.observer.0 {
            Reader::Memory(_) => false,
            #[cfg(feature = "sqlite")]
            Reader::Sqlite(path) => {
                sqlite_execute(
                    path,
                    &format!(
                        "CREATE TRIGGER {name} BEFORE {when} ON entries
                         BEGIN SELECT RAISE(ABORT, 'injected by the test: the disk is full'); END;"
                    ),
                );
                true
            }
            #[cfg(feature = "postgres")]
            Reader::Postgres(admin) => {
                admin.fail(name, when);
                true
            }
        }
    }

    /// Undoes every [`Db::fail`].
    pub fn heal(&self) {
        for write in [
            Write::Intent,
            Write::Accepted,
            Write::ProjectKnown,
            Write::Settle,
        ] {
            #[cfg_attr(
                not(any(feature = "sqlite", feature = "postgres")),
                allow(unused_variables, reason = "memory cannot fail a write")
            )]
            let (name, _) = write.trigger();
            match &*self.observer.0 {
                Reader::Memory(_) => {}
                #[cfg(feature = "sqlite")]
                Reader::Sqlite(path) => {
                    sqlite_execute(path, &format!("DROP TRIGGER IF EXISTS {name}"))
                }
                #[cfg(feature = "postgres")]
                Reader::Postgres(admin) => admin.heal(name),
            }
        }
    }
}

/// Whether the PostgreSQL test server answers (see [`pg::reachable`]); never
/// without the `postgres` feature.
fn postgres_reachable(test: &str) -> bool {
    #[cfg(feature = "postgres")]
    return pg::reachable(test);
    #[cfg(not(feature = "postgres"))]
    {
        let _ = test;
        false
    }
}

/// The columns every reader reads, in [`Row`]'s order.
const COLUMNS: &str = "local_id, kind, scope, project_id, prompt, labels, idempotency_key, \
    accepted, outcome, error, may_have_started_work, app_url, token";

#[cfg(any(feature = "sqlite", feature = "postgres"))]
fn labels_of(json: &str) -> Vec<(String, String)> {
    serde_json::from_str(json).unwrap_or_else(|e| panic!("labels {json:?}: {e}"))
}

#[cfg(feature = "sqlite")]
fn sqlite_rows(path: &std::path::Path) -> Vec<Row> {
    let connection = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .expect("the journal opens read only");
    connection
        .busy_timeout(std::time::Duration::from_secs(10))
        .unwrap();
    let version: i64 = connection
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .unwrap();
    assert_eq!(
        version, 1,
        "these tests read the journal's schema version 1"
    );
    let mut statement = connection
        .prepare(&format!("SELECT {COLUMNS} FROM entries ORDER BY seq"))
        .unwrap();
    statement
        .query_map([], |row| {
            Ok(Row {
                local_id: row.get(0)?,
                kind: row.get(1)?,
                scope: row.get(2)?,
                project_id: row.get(3)?,
                prompt: row.get(4)?,
                labels: labels_of(&row.get::<_, String>(5)?),
                idempotency_key: row.get(6)?,
                accepted: row.get(7)?,
                outcome: row.get(8)?,
                error: row.get(9)?,
                may_have_started_work: row.get(10)?,
                app_url: row.get(11)?,
                token: row.get(12)?,
            })
        })
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

#[cfg(feature = "sqlite")]
fn sqlite_execute(path: &std::path::Path, sql: &str) {
    let connection = rusqlite::Connection::open(path).expect("the journal opens");
    connection
        .busy_timeout(std::time::Duration::from_secs(10))
        .unwrap();
    connection.execute_batch(sql).unwrap();
}

#[cfg(feature = "postgres")]
pub mod pg {
    //! The test server's side: a connection of its own, on a thread of its own (so
    //! that it answers from any thread and any runtime), to read a test's schema,
    //! add failing triggers to it, and drop it.

    use std::io::Write as _;
    use std::str::FromStr;
    use std::sync::mpsc;
    use std::time::Duration;

    use laracopilot::journal::{JournalOptions, PostgresJournal};

    use super::{labels_of, Row, COLUMNS};

    /// Where the tests look for a server when `LARACOPILOT_TEST_POSTGRES` is unset:
    /// what `.ci/postgres.sh` makes.
    pub const DEFAULT_URL: &str = "postgres://laracopilot:laracopilot@127.0.0.1:5432/laracopilot";

    const ENV: &str = "LARACOPILOT_TEST_POSTGRES";

    type Job = Box<dyn FnOnce(&tokio::runtime::Runtime, &tokio_postgres::Client) + Send>;

    /// The server's URL, and whether `LARACOPILOT_TEST_POSTGRES` asked for it.
    fn url() -> (String, bool) {
        match std::env::var(ENV) {
            Ok(url) if !url.trim().is_empty() => (url, true),
            _ => (DEFAULT_URL.to_owned(), false),
        }
    }

    /// Whether the test server answers (asked once per run). When it does not, a
    /// test that was asked to use it (`LARACOPILOT_TEST_POSTGRES` set) fails, and
    /// any other says on stderr (past libtest's capture) that it skips it.
    pub fn reachable(test: &str) -> bool {
        static ANSWERED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
        let answered = ANSWERED.get_or_init(|| Admin::connect().map(drop));
        let Err(why) = answered else {
            return true;
        };
        let (url, asked) = url();
        let shown = shown(&url);
        assert!(
            !asked,
            "{ENV} is set but its server cannot be reached ({shown}): {why}"
        );
        let _ = writeln!(
            std::io::stderr(),
            "skipping PostgreSQL in the journal test {test}: no server at {shown} ({why}); set {ENV}"
        );
        false
    }

    /// A schema of its own on the test server, and the connection that reads it.
    pub struct Admin {
        url: String,
        schema: String,
        jobs: mpsc::Sender<Job>,
        thread: Option<std::thread::JoinHandle<()>>,
    }

    impl Admin {
        /// Connects, or says why it cannot.
        pub fn connect() -> Result<Admin, String> {
            let (url, _) = url();
            let config = tokio_postgres::Config::from_str(&url).expect("a PostgreSQL URL");
            let (jobs, queue) = mpsc::channel::<Job>();
            let (ready, connected) = mpsc::channel::<Result<(), String>>();
            let thread = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                let connection = runtime.block_on(async {
                    tokio::time::timeout(
                        Duration::from_secs(5),
                        config.connect(tokio_postgres::NoTls),
                    )
                    .await
                });
                let client = match connection {
                    Ok(Ok((client, connection))) => {
                        runtime.spawn(connection);
                        let _ = ready.send(Ok(()));
                        client
                    }
                    Ok(Err(e)) => return drop(ready.send(Err(e.to_string()))),
                    Err(_) => return drop(ready.send(Err("no answer within 5 s".to_owned()))),
                };
                while let Ok(job) = queue.recv() {
                    job(&runtime, &client);
                }
            });
            if let Err(why) = connected.recv().unwrap() {
                let _ = thread.join();
                return Err(why);
            }
            // Unique among the tests of this run and of runs beside it.
            static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos();
            let schema = format!(
                "lcit_{}_{nanos:x}_{}",
                std::process::id(),
                NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            );
            Ok(Admin {
                url,
                schema,
                jobs,
                thread: Some(thread),
            })
        }

        /// Runs `job` on the connection's thread and waits for its answer.
        fn run<T: Send + 'static>(
            &self,
            job: impl FnOnce(&tokio::runtime::Runtime, &tokio_postgres::Client) -> T + Send + 'static,
        ) -> T {
            let (answer, answered) = mpsc::channel();
            self.jobs
                .send(Box::new(move |runtime, client| {
                    let _ = answer.send(job(runtime, client));
                }))
                .expect("the connection's thread runs");
            answered.recv().expect("the connection's thread answers")
        }

        /// Opens the journal in the test's schema, as a new instance.
        pub fn open(&self, options: JournalOptions) -> PostgresJournal {
            let (url, schema) = (self.url.clone(), self.schema.clone());
            // Connected from the admin's thread: any caller, sync or async, may ask.
            self.run(move |runtime, _| {
                runtime
                    .block_on(PostgresJournal::connect_in(&url, &schema, options))
                    .expect("the PostgreSQL journal opens")
            })
        }

        /// Every entry of the schema, oldest first.
        pub fn rows(&self) -> Vec<Row> {
            let sql = format!(
                "SELECT {COLUMNS} FROM \"{}\".entries ORDER BY seq",
                self.schema
            );
            self.run(move |runtime, client| {
                let rows = runtime.block_on(client.query(&sql, &[])).unwrap();
                rows.iter()
                    .map(|row| Row {
                        local_id: row.get(0),
                        kind: row.get(1),
                        scope: row.get(2),
                        project_id: row.get(3),
                        prompt: row.get(4),
                        labels: labels_of(row.get(5)),
                        idempotency_key: row.get(6),
                        accepted: row.get(7),
                        outcome: row.get(8),
                        error: row.get(9),
                        may_have_started_work: row.get(10),
                        app_url: row.get(11),
                        token: row.get(12),
                    })
                    .collect()
            })
        }

        fn execute(&self, sql: String) {
            self.run(move |runtime, client| runtime.block_on(client.batch_execute(&sql)).unwrap());
        }

        /// A trigger `name` that raises before `when` on the schema's entries.
        pub fn fail(&self, name: &str, when: &str) {
            let q = &self.schema;
            self.execute(format!(
                "CREATE OR REPLACE FUNCTION \"{q}\".lcp_test_fail() RETURNS trigger
                 LANGUAGE plpgsql AS $f$
                 BEGIN RAISE EXCEPTION 'injected by the test: the disk is full'; END
                 $f$;
                 CREATE TRIGGER {name} BEFORE {when} ON \"{q}\".entries
                 FOR EACH ROW EXECUTE FUNCTION \"{q}\".lcp_test_fail();"
            ));
        }

        pub fn heal(&self, name: &str) {
            self.execute(format!(
                "DROP TRIGGER IF EXISTS {name} ON \"{}\".entries",
                self.schema
            ));
        }
    }

    impl Drop for Admin {
        fn drop(&mut self) {
            // A test that fails leaves its schema, to be looked at.
            if !std::thread::panicking() {
                let sql = format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.schema);
                let (answer, answered) = mpsc::channel();
                let sent = self.jobs.send(Box::new(move |runtime, client| {
                    let _ = answer.send(runtime.block_on(client.batch_execute(&sql)));
                }));
                if sent.is_ok() {
                    let _ = answered.recv_timeout(Duration::from_secs(30));
                }
            }
            // The thread ends with its queue.
            let (jobs, _) = mpsc::channel();
            drop(std::mem::replace(&mut self.jobs, jobs));
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
        }
    }

    /// The URL without its password.
    fn shown(url: &str) -> String {
        match url::Url::parse(url) {
            Ok(mut parsed) if parsed.password().is_some() => {
                let _ = parsed.set_password(Some("***"));
                parsed.to_string()
            }
            Ok(parsed) => parsed.to_string(),
            Err(_) => "(a URL that does not parse)".to_owned(),
        }
    }
}
