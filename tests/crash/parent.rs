//! The parent's side: child processes (started, read line by line, told things on
//! their stdin, killed and reaped), the engine a suite runs on (its journal, and a
//! foreign file or table beside it), and the journal read back, or locked, with SQL
//! of the parent's own: not through the SDK it checks.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::*;

/// A child process: its stdout's JSON lines on a channel, its stderr kept, its stdin
/// open for orders. Killed and reaped when dropped.
pub(super) struct ChildProcess {
    pub(super) name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<Value>,
    /// Every JSON line read so far.
    pub(super) seen: Vec<Value>,
    stderr: Arc<Mutex<String>>,
}

impl ChildProcess {
    pub(super) fn spawn(orders: &Orders) -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child::child", "--nocapture", "--test-threads=1"])
            .env(CHILD, serde_json::to_string(orders).unwrap())
            .env_remove(laracopilot::TOKEN_ENV)
            .env_remove(laracopilot::BASE_URL_ENV)
            .env_remove("RUST_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (send, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // The test harness's own lines are not JSON.
                let Ok(value) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                if send.send(value).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let keep = Arc::clone(&stderr);
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let mut kept = keep.lock().unwrap();
                if kept.len() < 64 * 1024 {
                    kept.push_str(&line);
                    kept.push('\n');
                }
            }
        });
        ChildProcess {
            name: orders.name.clone(),
            stdin: child.stdin.take(),
            child,
            lines,
            seen: Vec::new(),
            stderr,
        }
    }

    /// Writes `line` to the child's stdin.
    pub(super) fn tell(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("the child's stdin is open");
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// Waits for a line that `want` accepts (among those read already, or the next
    /// ones), at most [`PATIENCE`]; that line.
    pub(super) fn wait_for(&mut self, what: &str, want: impl Fn(&Value) -> bool) -> Value {
        if let Some(found) = self.seen.iter().find(|v| want(v)) {
            return found.clone();
        }
        let until = Instant::now() + PATIENCE;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(value) => {
                    let found = want(&value);
                    self.seen.push(value.clone());
                    if found {
                        return value;
                    }
                }
                Err(_) => panic!(
                    "{} did not print {what}; it printed {:#?}; stderr:\n{}",
                    self.name,
                    self.seen,
                    self.stderr.lock().unwrap()
                ),
            }
        }
    }

    /// Waits for the mark `{"mark": mark, "i": i}`.
    pub(super) fn wait_mark(&mut self, mark: &str, i: usize) {
        self.wait_for(&format!("mark {mark} {i}"), |v| {
            v["mark"] == mark && v["i"].as_u64() == Some(i as u64)
        });
    }

    /// Reads what the child printed so far without waiting.
    pub(super) fn drain(&mut self) {
        while let Ok(value) = self.lines.try_recv() {
            self.seen.push(value);
        }
    }

    /// Every line until the child exits (at most [`PATIENCE`]), for a child that
    /// ends; it must exit successfully.
    pub(super) fn output(mut self) -> Vec<Value> {
        let until = Instant::now() + PATIENCE;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(value) => self.seen.push(value),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("{} did not end; it printed {:#?}", self.name, self.seen)
                }
            }
        }
        let status = reap(&mut self.child);
        assert!(
            status.success(),
            "{} failed ({status:?}): {:#?}\nstderr:\n{}",
            self.name,
            self.seen,
            self.stderr.lock().unwrap()
        );
        std::mem::take(&mut self.seen)
    }

    /// Sends `signal` (`STOP`, `CONT`) to the child, by its process id.
    pub(super) fn signal(&self, signal: &str) {
        let sent = Command::new("sh")
            .args(["-c", &format!("kill -{signal} {}", self.child.id())])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -{signal} {}: {sent:?}", self.name);
    }

    /// SIGKILL, then waits until it is gone; the instant just before the signal.
    pub(super) fn kill(&mut self) -> Instant {
        let killed = self.try_kill();
        killed.unwrap_or_else(|| {
            panic!(
                "{} was to be killed, but it had ended: {:#?}\nstderr:\n{}",
                self.name,
                self.seen,
                self.stderr.lock().unwrap()
            )
        })
    }

    /// SIGKILL, then waits until it is gone; the instant just before the signal, or
    /// `None` when the child had ended on its own (successfully) before.
    pub(super) fn try_kill(&mut self) -> Option<Instant> {
        use std::os::unix::process::ExitStatusExt;
        self.drain();
        let at = Instant::now();
        // A child that ended is a zombie until reaped: the signal still "works".
        let _ = self.child.kill();
        let status = reap(&mut self.child);
        self.drain();
        if status.signal() == Some(9) {
            return Some(at);
        }
        assert!(
            status.success(),
            "{} failed before its kill ({status:?}): {:#?}\nstderr:\n{}",
            self.name,
            self.seen,
            self.stderr.lock().unwrap()
        );
        None
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = reap(&mut self.child);
        }
    }
}

/// Waits for `child` to exit, at most [`PATIENCE`].
fn reap(child: &mut Child) -> ExitStatus {
    let until = Instant::now() + PATIENCE;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > until {
            let _ = child.kill();
            panic!("a child did not exit");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Polls `condition` every 5 ms for at most [`PATIENCE`].
pub(super) fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let until = Instant::now() + PATIENCE;
    while !condition() {
        assert!(Instant::now() < until, "never came true: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A journal entry as the parent reads it with SQL.
#[derive(Debug, Clone)]
pub(super) struct Row {
    pub(super) local_id: String,
    pub(super) prompt: String,
    pub(super) project_id: Option<String>,
    pub(super) accepted: bool,
    pub(super) outcome: Option<String>,
    pub(super) error: Option<String>,
    pub(super) owner: String,
}

/// The engine a suite runs on: where its journal is, a foreign file or table beside
/// it (as it was), and a runtime for the parent's own connections.
pub(super) struct Engine {
    pub(super) name: &'static str,
    pub(super) store: Store,
    pub(super) runtime: tokio::runtime::Runtime,
    kind: Kind,
}

enum Kind {
    #[cfg(feature = "sqlite")]
    Sqlite {
        _dir: tempfile::TempDir,
        foreign: std::path::PathBuf,
        before: (Vec<u8>, std::time::SystemTime),
    },
    #[cfg(feature = "postgres")]
    Postgres {
        url: String,
        schema: String,
        admin: tokio_postgres::Client,
        before: Vec<String>,
    },
}

/// A lock the parent holds on the journal, until released.
pub(super) enum Hold {
    #[cfg(feature = "sqlite")]
    Sqlite(rusqlite::Connection),
    #[cfg(feature = "postgres")]
    Postgres(tokio_postgres::Client),
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

impl Engine {
    /// A new SQLite journal file in a directory of its own, with `settings.env`
    /// beside it.
    #[cfg(feature = "sqlite")]
    pub(super) fn sqlite() -> Engine {
        let dir = tempfile::tempdir().unwrap();
        let foreign = dir.path().join("settings.env");
        std::fs::write(&foreign, "API_KEY=never-touch-me\nMODE=production\n").unwrap();
        let before = (
            std::fs::read(&foreign).unwrap(),
            std::fs::metadata(&foreign).unwrap().modified().unwrap(),
        );
        Engine {
            name: "SQLite",
            store: Store::Sqlite {
                path: dir.path().join("journal.db"),
            },
            runtime: runtime(),
            kind: Kind::Sqlite {
                _dir: dir,
                foreign,
                before,
            },
        }
    }

    /// A fresh schema on the test server, with a foreign table in a schema beside
    /// it; `None` (said on stderr) when no server answers and none was asked for.
    #[cfg(feature = "postgres")]
    pub(super) fn postgres(what: &str) -> Option<Engine> {
        let (url, asked) = match std::env::var(POSTGRES_ENV) {
            Ok(url) if !url.trim().is_empty() => (url, true),
            _ => (DEFAULT_POSTGRES.to_owned(), false),
        };
        let runtime = runtime();
        let admin = match runtime.block_on(pg_connect(&url)) {
            Ok(admin) => admin,
            Err(why) => {
                assert!(
                    !asked,
                    "{POSTGRES_ENV} is set but its server cannot be reached: {why}"
                );
                say(&format!(
                    "skipping {what}: no PostgreSQL server answers at the default URL ({why}); set {POSTGRES_ENV}"
                ));
                return None;
            }
        };
        let schema = format!("lcc_{:012x}", Rng(seed_bits()).next() >> 16);
        let before = runtime.block_on(async {
            admin
                .batch_execute(&format!(
                    "CREATE SCHEMA \"{schema}_foreign\";
                     CREATE TABLE \"{schema}_foreign\".settings (k text PRIMARY KEY, v text);
                     INSERT INTO \"{schema}_foreign\".settings VALUES
                         ('api_key', 'never-touch-me'), ('mode', 'production');"
                ))
                .await
                .unwrap();
            foreign_rows(&admin, &schema).await
        });
        Some(Engine {
            name: "PostgreSQL",
            store: Store::Postgres {
                url: url.clone(),
                schema: schema.clone(),
            },
            runtime,
            kind: Kind::Postgres {
                url,
                schema,
                admin,
                before,
            },
        })
    }

    /// The parent's own client of the journal (a new instance), for what only the
    /// SDK tells: which entries are unfinished.
    pub(super) fn client(&self, base_url: &str) -> laracopilot::Client {
        let journal = self.runtime.block_on(self.store.open(None));
        laracopilot::Client::builder()
            .base_url(base_url)
            .token(laracopilot::Token::new(TOKEN).unwrap())
            .journal(journal)
            .build()
            .unwrap()
    }

    /// Every entry of the journal, oldest first.
    pub(super) fn entries(&self) -> Vec<Row> {
        match &self.kind {
            #[cfg(feature = "sqlite")]
            Kind::Sqlite { .. } => {
                let db = self.sqlite_connection();
                let mut statement = db
                    .prepare(
                        "SELECT local_id, prompt, project_id, accepted, outcome, error, owner
                           FROM entries ORDER BY seq",
                    )
                    .unwrap();
                statement
                    .query_map([], |row| {
                        Ok(Row {
                            local_id: row.get(0)?,
                            prompt: row.get(1)?,
                            project_id: row.get(2)?,
                            accepted: row.get(3)?,
                            outcome: row.get(4)?,
                            error: row.get(5)?,
                            owner: row.get(6)?,
                        })
                    })
                    .unwrap()
                    .map(Result::unwrap)
                    .collect()
            }
            #[cfg(feature = "postgres")]
            Kind::Postgres { admin, schema, .. } => self.runtime.block_on(async {
                admin
                    .query(
                        &format!(
                            "SELECT local_id, prompt, project_id, accepted, outcome, error, owner
                               FROM \"{schema}\".entries ORDER BY seq"
                        ),
                        &[],
                    )
                    .await
                    .unwrap()
                    .iter()
                    .map(|row| Row {
                        local_id: row.get(0),
                        prompt: row.get(1),
                        project_id: row.get(2),
                        accepted: row.get(3),
                        outcome: row.get(4),
                        error: row.get(5),
                        owner: row.get(6),
                    })
                    .collect()
            }),
        }
    }

    /// Holds what an entry's settlement must lock: the entry's row (PostgreSQL), or
    /// the file's write lock (SQLite: every write waits then).
    pub(super) fn hold_entry(&self, local_id: &str) -> Hold {
        match &self.kind {
            #[cfg(feature = "sqlite")]
            Kind::Sqlite { .. } => {
                // One lock for the whole file: the entry does not narrow it.
                let _ = local_id;
                self.hold_sqlite()
            }
            #[cfg(feature = "postgres")]
            Kind::Postgres { url, schema, .. } => self.hold_postgres(
                url,
                &format!(
                    "SELECT 1 FROM \"{schema}\".entries WHERE local_id = '{local_id}' FOR UPDATE"
                ),
            ),
        }
    }

    /// Holds what an admission in `scope` must lock first: the scope's row
    /// (PostgreSQL; it must exist), or the file's write lock (SQLite).
    pub(super) fn hold_scope(&self, scope: &str) -> Hold {
        match &self.kind {
            #[cfg(feature = "sqlite")]
            Kind::Sqlite { .. } => {
                let _ = scope;
                self.hold_sqlite()
            }
            #[cfg(feature = "postgres")]
            Kind::Postgres { url, schema, .. } => self.hold_postgres(
                url,
                &format!("SELECT 1 FROM \"{schema}\".scopes WHERE scope = '{scope}' FOR UPDATE"),
            ),
        }
    }

    /// How many journal connections wait for a lock now (PostgreSQL); `None` where
    /// that cannot be seen from outside (SQLite's busy wait).
    pub(super) fn waiting_for_locks(&self) -> Option<i64> {
        match &self.kind {
            #[cfg(feature = "sqlite")]
            Kind::Sqlite { .. } => None,
            #[cfg(feature = "postgres")]
            Kind::Postgres { admin, .. } => Some(self.runtime.block_on(async {
                admin
                    .query_one(
                        "SELECT count(*) FROM pg_stat_activity
                          WHERE datname = current_database()
                            AND application_name = 'laracopilot-journal'
                            AND wait_event_type = 'Lock'",
                        &[],
                    )
                    .await
                    .unwrap()
                    .get(0)
            })),
        }
    }

    #[cfg(feature = "sqlite")]
    fn sqlite_connection(&self) -> rusqlite::Connection {
        let Store::Sqlite { path } = &self.store else {
            unreachable!("an SQLite engine has an SQLite store")
        };
        let db = rusqlite::Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE,
        )
        .unwrap();
        db.busy_timeout(Duration::from_secs(10)).unwrap();
        db
    }

    #[cfg(feature = "sqlite")]
    fn hold_sqlite(&self) -> Hold {
        let db = self.sqlite_connection();
        db.execute_batch("BEGIN IMMEDIATE").unwrap();
        Hold::Sqlite(db)
    }

    #[cfg(feature = "postgres")]
    fn hold_postgres(&self, url: &str, lock: &str) -> Hold {
        let client = self.runtime.block_on(pg_connect(url)).unwrap();
        self.runtime.block_on(async {
            client.batch_execute("BEGIN").await.unwrap();
            let locked = client.query(lock, &[]).await.unwrap();
            assert_eq!(locked.len(), 1, "nothing to lock: {lock}");
        });
        Hold::Postgres(client)
    }

    /// Ends a hold: nothing it locked was changed.
    pub(super) fn release(&self, hold: Hold) {
        match hold {
            #[cfg(feature = "sqlite")]
            Hold::Sqlite(db) => db.execute_batch("ROLLBACK").unwrap(),
            #[cfg(feature = "postgres")]
            Hold::Postgres(client) => self
                .runtime
                .block_on(client.batch_execute("ROLLBACK"))
                .unwrap(),
        }
    }

    /// Asserts that the foreign file (or table) beside the journal is as it was:
    /// same bytes and mtime (same rows and row versions); a description of it.
    pub(super) fn foreign_untouched(&self) -> String {
        match &self.kind {
            #[cfg(feature = "sqlite")]
            Kind::Sqlite {
                foreign, before, ..
            } => {
                let now = (
                    std::fs::read(foreign).unwrap(),
                    std::fs::metadata(foreign).unwrap().modified().unwrap(),
                );
                assert_eq!(&now, before, "{} was touched", foreign.display());
                format!("{} (same bytes, same mtime)", foreign.display())
            }
            #[cfg(feature = "postgres")]
            Kind::Postgres {
                admin,
                schema,
                before,
                ..
            } => {
                let now = self.runtime.block_on(foreign_rows(admin, schema));
                assert_eq!(&now, before, "the foreign table was touched");
                format!("{schema}_foreign.settings (same rows, same row versions)")
            }
        }
    }

    /// The end of a suite that passed: the foreign file untouched; a PostgreSQL
    /// run's schemas dropped (a failed run leaves them, to be looked at).
    pub(super) fn finish(self) {
        self.foreign_untouched();
        match &self.kind {
            #[cfg(feature = "sqlite")]
            Kind::Sqlite { .. } => {}
            #[cfg(feature = "postgres")]
            Kind::Postgres { admin, schema, .. } => self.runtime.block_on(async {
                admin
                    .batch_execute(&format!(
                        "DROP SCHEMA \"{schema}\" CASCADE; DROP SCHEMA \"{schema}_foreign\" CASCADE;"
                    ))
                    .await
                    .unwrap();
            }),
        }
    }
}

/// Some bits that differ between runs, for a schema's name.
#[cfg(feature = "postgres")]
fn seed_bits() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    (now.as_nanos() as u64) ^ u64::from(std::process::id()).rotate_left(40)
}

/// A connection of the parent's own (the URL's TLS mode is not needed on
/// loopback), its driver spawned on the current runtime.
#[cfg(feature = "postgres")]
async fn pg_connect(url: &str) -> Result<tokio_postgres::Client, String> {
    use std::str::FromStr;
    let mut config = tokio_postgres::Config::from_str(url).map_err(|e| e.to_string())?;
    config
        .application_name("laracopilot-crash-test")
        .connect_timeout(Duration::from_secs(5));
    let connected = tokio::time::timeout(
        Duration::from_secs(5),
        config.connect(tokio_postgres::NoTls),
    )
    .await
    .map_err(|_| "no answer within 5 s".to_owned())?;
    let (client, connection) = connected.map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    Ok(client)
}

/// The foreign table's rows, each with its row version.
#[cfg(feature = "postgres")]
async fn foreign_rows(admin: &tokio_postgres::Client, schema: &str) -> Vec<String> {
    admin
        .query(
            &format!("SELECT k, v, xmin::text FROM \"{schema}_foreign\".settings ORDER BY k"),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| {
            format!(
                "{}={} @{}",
                row.get::<_, String>(0),
                row.get::<_, String>(1),
                row.get::<_, String>(2)
            )
        })
        .collect()
}
