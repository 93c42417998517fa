//! The journal on a PostgreSQL database: one database shared by every host.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config, Row, Statement, Transaction};

use super::engine::{
    self, duration_millis, labels_json, millis, settlement_columns, signed, time, unsigned,
    Command, Handle, Op, Problem, Reply, Stored,
};
use super::store::{Admission, Intent, Store};
use super::{sealed, Journal, JournalOptions, Settlement};
use crate::{Error, LocalId, Result};

/// What `journal_meta.application` says in a laracopilot journal.
const APPLICATION: &str = "laracopilot-journal";

/// The version of the journal's schema this SDK writes.
const SCHEMA_VERSION: i32 = 1;

/// The advisory lock that serializes creating and migrating journals (hosts
/// starting together): this number, and a hash of the schema's name.
const MIGRATION_LOCK: i32 = 0x4C43_504A;

/// How long connecting may take unless the URL says (`connect_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one batch of commands may take, connecting included: past it, the
/// connection is dropped and its commands fail (a hung server never hangs a call).
const BATCH_TIMEOUT: Duration = Duration::from_secs(30);

/// The least time between two attempts to connect during an outage: calls in
/// between fail at once.
const RECONNECT_PAUSE: Duration = Duration::from_millis(500);

/// How often a command that lost a deadlock to another host is run again.
const DEADLOCK_TRIES: u32 = 3;

/// Instances whose lease ended this long ago are forgotten.
const FORGET_INSTANCES_AFTER: i64 = 7 * 24 * 3_600 * 1_000;

/// The server's clock, in milliseconds since the Unix epoch.
const NOW: &str = "(extract(epoch from clock_timestamp()) * 1000)::int8";

/// A journal on a PostgreSQL database, shared by every host of a fleet: the spend
/// guards (concurrency cap, credits breaker, budgets, idempotency keys) and the
/// leases hold across hosts. Feature `postgres`.
///
/// Its engine owns the connection on a thread of its own (with a small runtime of
/// its own), so it works from any caller, async or blocking, on any runtime; that
/// thread renews the lease and reconnects after a lost connection (a call during an
/// outage fails with [`Error::Journal`]; an admission then fails before anything is
/// sent). Leases, breakers and budget windows use the server's clock, so hosts
/// whose clocks disagree still agree. An admission is one transaction that holds
/// the scope's row lock, so the cap and the budgets are never exceeded, whatever
/// the concurrency; commands waiting together are committed together.
///
/// The tables live in a schema of their own ([`PostgresJournal::DEFAULT_SCHEMA`]
/// unless [`connect_in`](PostgresJournal::connect_in) says), created or migrated on
/// connect under an advisory lock. A schema holding tables that are not a
/// journal's, or a journal of a newer schema, is refused and left as it is.
///
/// # TLS
///
/// `sslmode=disable` and `prefer` (libpq's default) connect without TLS: this
/// engine never uses TLS without verifying the server. `sslmode=require`,
/// `verify-ca` and `verify-full` connect over TLS (rustls, with the `rustls`
/// feature, the default), the server's certificate verified against the system's
/// roots (`SSL_CERT_FILE` adds one) and its name checked: stricter than libpq's
/// `require`. Without the `rustls` feature they are refused.
///
/// ```no_run
/// # async fn run() -> laracopilot::Result<()> {
/// use laracopilot::journal::PostgresJournal;
///
/// let journal = PostgresJournal::connect("postgres://app@db.internal/app?sslmode=require").await?;
/// let client = laracopilot::Client::builder()
///     .token(laracopilot::Token::new("lcp_0123456789abcdef")?)
///     .journal(journal)
///     .build()?;
/// # Ok(()) }
/// ```
pub struct PostgresJournal {
    handle: Arc<Handle>,
    schema: String,
}

impl PostgresJournal {
    /// The schema the journal's tables live in unless told otherwise.
    ///
    /// ```
    /// use laracopilot::journal::PostgresJournal;
    /// assert_eq!(PostgresJournal::DEFAULT_SCHEMA, "laracopilot");
    /// ```
    pub const DEFAULT_SCHEMA: &'static str = "laracopilot";

    /// Connects to the database at `url` (`postgres://user:password@host:port/db`,
    /// or libpq's `key=value` form), with the default [`JournalOptions`] and schema.
    ///
    /// # Errors
    ///
    /// [`Error::Journal`] when the URL is not one, the server cannot be reached, or
    /// the schema holds tables that are not a journal's or a newer journal.
    ///
    /// ```no_run
    /// # async fn run() -> laracopilot::Result<()> {
    /// let journal = laracopilot::journal::PostgresJournal::connect("postgres://app@127.0.0.1/app").await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect(url: &str) -> Result<Self> {
        PostgresJournal::connect_in(url, PostgresJournal::DEFAULT_SCHEMA, JournalOptions::new())
            .await
    }

    /// Connects with `options` (a lease, a stable instance name).
    ///
    /// # Errors
    ///
    /// As [`PostgresJournal::connect`].
    ///
    /// ```no_run
    /// # async fn run() -> laracopilot::Result<()> {
    /// use laracopilot::journal::{JournalOptions, PostgresJournal};
    /// let options = JournalOptions::new().instance("worker-3");
    /// let journal = PostgresJournal::connect_with("postgres://app@127.0.0.1/app", options).await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect_with(url: &str, options: JournalOptions) -> Result<Self> {
        PostgresJournal::connect_in(url, PostgresJournal::DEFAULT_SCHEMA, options).await
    }

    /// Connects with `options`, the tables in the database schema `schema` (a
    /// lowercase SQL name: ASCII letters, digits and `_`, at most 63 bytes, not
    /// starting with a digit). Journals in different schemas share nothing.
    ///
    /// # Errors
    ///
    /// As [`PostgresJournal::connect`]; also for a schema name that is not one.
    ///
    /// ```no_run
    /// # async fn run() -> laracopilot::Result<()> {
    /// use laracopilot::journal::{JournalOptions, PostgresJournal};
    /// let journal =
    ///     PostgresJournal::connect_in("postgres://app@127.0.0.1/app", "staging", JournalOptions::new()).await?;
    /// assert_eq!(journal.schema(), "staging");
    /// # Ok(()) }
    /// ```
    pub async fn connect_in(url: &str, schema: &str, options: JournalOptions) -> Result<Self> {
        let (config, name) = parse(url, schema)?;
        let id = options.instance_id();
        let lease = options.lease_duration();
        let (commands, queue) = mpsc::channel(engine::QUEUE);
        let (connected, answer) = oneshot::channel();
        let engine = Engine::new(config, name.clone(), schema.to_owned(), id.clone(), lease);
        std::thread::Builder::new()
            .name("laracopilot-journal-postgres".to_owned())
            .spawn(move || engine.start(queue, connected))
            .map_err(|e| {
                Error::journal(
                    format!("the PostgreSQL journal {name} could not start its thread"),
                    e,
                )
            })?;
        match answer.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return Err(error),
            Err(e) => {
                return Err(Error::journal(
                    format!("the PostgreSQL journal {name} could not be opened"),
                    e,
                ))
            }
        }
        Ok(PostgresJournal {
            handle: Arc::new(Handle::new("PostgreSQL", name, id, lease, commands)),
            schema: schema.to_owned(),
        })
    }

    /// The database schema its tables live in.
    ///
    /// ```no_run
    /// # async fn run() -> laracopilot::Result<()> {
    /// let journal = laracopilot::journal::PostgresJournal::connect("postgres://app@127.0.0.1/app").await?;
    /// assert_eq!(journal.schema(), "laracopilot");
    /// # Ok(()) }
    /// ```
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// This connection's instance id: the owner of the entries it admits or resumes.
    ///
    /// ```no_run
    /// # async fn run() -> laracopilot::Result<()> {
    /// use laracopilot::journal::{JournalOptions, PostgresJournal};
    /// let options = JournalOptions::new().instance("web-1");
    /// let journal = PostgresJournal::connect_with("postgres://app@127.0.0.1/app", options).await?;
    /// assert_eq!(journal.instance(), "web-1");
    /// # Ok(()) }
    /// ```
    pub fn instance(&self) -> &str {
        self.handle.instance()
    }
}

impl fmt::Debug for PostgresJournal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.handle, f)
    }
}

impl Journal for PostgresJournal {}

impl sealed::Sealed for PostgresJournal {
    fn store(&self) -> Arc<dyn Store> {
        Arc::clone(&self.handle) as Arc<dyn Store>
    }
}

/// The connection's settings, and the journal's name for messages (never the
/// password).
fn parse(url: &str, schema: &str) -> Result<(Config, String)> {
    let valid_schema = !schema.is_empty()
        && schema.len() <= 63
        && !schema.starts_with(|c: char| c.is_ascii_digit())
        && schema
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid_schema {
        return Err(Error::journal(
            format!("{schema:?} is not a schema name a PostgreSQL journal can use"),
            Problem::new(
                "a schema name is lowercase ASCII letters, digits and _, at most 63 bytes, not starting with a digit",
            ),
        ));
    }
    let url = tls::verified_modes(url);
    let mut config = Config::from_str(&url).map_err(|e| {
        // The parser's message names an option, never a value.
        Error::journal("the PostgreSQL journal's URL is not a PostgreSQL URL", e)
    })?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("laracopilot-journal");
    }
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .zip(
            config
                .get_ports()
                .iter()
                .copied()
                .chain(std::iter::repeat(5432)),
        )
        .map(|(host, port)| match host {
            tokio_postgres::config::Host::Tcp(host) => format!("{host}:{port}"),
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(path) => format!("{}:{port}", path.display()),
        })
        .collect();
    let name = format!(
        "postgres://{}@{}/{} (schema {schema})",
        config.get_user().unwrap_or(""),
        hosts.join(","),
        config.get_dbname().unwrap_or("")
    );
    Ok((config, name))
}

/// The statements of one connection, schema-qualified and prepared once.
struct Statements {
    lock_scope: Statement,
    key_holder: Statement,
    free_key: Statement,
    budget_used: Statement,
    count_budget: Statement,
    running: Statement,
    insert_entry: Statement,
    accepted: Statement,
    project_known: Statement,
    settle: Statement,
    release: Statement,
    unfinished: Statement,
    claim: Statement,
    entry: Statement,
    trip: Statement,
    reset: Statement,
    breaker: Statement,
    prune_entries: Statement,
    prune_budgets: Statement,
    renew: Statement,
    revive: Statement,
}

const ENTRY_COLUMNS: &str = "e.local_id, e.kind, e.scope, e.project_id, e.prompt, e.started_at, \
     e.token, e.labels, e.idempotency_key, e.accepted, e.outcome, e.app_url, e.error, \
     e.may_have_started_work, e.owner";

/// Whether the entry `e` is driven by a live stream, by the server's clock.
fn driven(q: &str) -> String {
    format!(
        "(e.outcome IS NULL AND NOT e.released AND EXISTS (
            SELECT 1 FROM {q}.instances i
             WHERE i.id = e.owner AND i.incarnation = e.incarnation AND i.lease_until > {NOW}))"
    )
}

/// `now + millis`, saturating at the largest `int8`.
fn later(millis: &str) -> String {
    format!("LEAST({NOW}::numeric + {millis}::int8, 9223372036854775807)::int8")
}

impl Statements {
    async fn prepare(client: &Client, q: &str) -> std::result::Result<Self, tokio_postgres::Error> {
        let driven = driven(q);
        let prepare = |sql: String| async move { client.prepare(&sql).await };
        Ok(Statements {
            lock_scope: prepare(format!(
                "INSERT INTO {q}.scopes (scope) VALUES ($1)
                 ON CONFLICT (scope) DO UPDATE SET scope = EXCLUDED.scope
                 RETURNING {NOW}, breaker_until"
            ))
            .await?,
            key_holder: prepare(format!(
                "SELECT {ENTRY_COLUMNS} FROM {q}.entries e
                  WHERE e.scope = $1 AND e.idempotency_key = $2"
            ))
            .await?,
            free_key: prepare(format!(
                "UPDATE {q}.entries SET idempotency_key = NULL WHERE local_id = $1"
            ))
            .await?,
            budget_used: prepare(format!(
                "SELECT used FROM {q}.budgets
                  WHERE scope = $1 AND time_window = $2 AND window_start = $3"
            ))
            .await?,
            count_budget: prepare(format!(
                "INSERT INTO {q}.budgets (scope, time_window, window_start, window_end, used)
                 VALUES ($1, $2, $3, $4, 1)
                 ON CONFLICT (scope, time_window, window_start)
                 DO UPDATE SET used = {q}.budgets.used + 1"
            ))
            .await?,
            running: prepare(format!(
                "SELECT count(*) FROM {q}.entries e
                  WHERE e.scope = $1 AND e.outcome IS NULL AND e.holds_slot AND {driven}"
            ))
            .await?,
            insert_entry: prepare(format!(
                "INSERT INTO {q}.entries (local_id, kind, scope, project_id, prompt, started_at,
                     token, labels, idempotency_key, owner, incarnation, fence, holds_slot)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 1, $12)"
            ))
            .await?,
            accepted: prepare(format!(
                "UPDATE {q}.entries SET accepted = true
                  WHERE local_id = $1 AND fence = $2 AND outcome IS NULL"
            ))
            .await?,
            project_known: prepare(format!(
                "UPDATE {q}.entries SET project_id = $3
                  WHERE local_id = $1 AND fence = $2 AND outcome IS NULL"
            ))
            .await?,
            settle: prepare(format!(
                "UPDATE {q}.entries
                    SET outcome = $3, app_url = $4, error = $5, may_have_started_work = $6,
                        settled_at = {NOW}, holds_slot = false,
                        idempotency_key = CASE WHEN $7 THEN NULL ELSE idempotency_key END
                  WHERE local_id = $1 AND fence = $2 AND outcome IS NULL"
            ))
            .await?,
            release: prepare(format!(
                "UPDATE {q}.entries SET released = true, holds_slot = false
                  WHERE local_id = $1 AND fence = $2 AND outcome IS NULL"
            ))
            .await?,
            unfinished: prepare(format!(
                "SELECT {ENTRY_COLUMNS} FROM {q}.entries e
                  WHERE e.outcome IS NULL AND NOT {driven} ORDER BY e.seq"
            ))
            .await?,
            claim: prepare(format!(
                "UPDATE {q}.entries e
                    SET owner = $2, incarnation = $3, fence = e.fence + 1,
                        released = false, holds_slot = false
                  WHERE e.local_id = $1 AND e.outcome IS NULL AND NOT {driven}
                 RETURNING {ENTRY_COLUMNS}, e.fence"
            ))
            .await?,
            entry: prepare(format!(
                "SELECT {ENTRY_COLUMNS}, {driven} FROM {q}.entries e WHERE e.local_id = $1"
            ))
            .await?,
            trip: prepare(format!(
                "INSERT INTO {q}.scopes AS s (scope, breaker_until) VALUES ($1, {})
                 ON CONFLICT (scope) DO UPDATE
                 SET breaker_until = GREATEST(COALESCE(s.breaker_until, 0), EXCLUDED.breaker_until)",
                later("$2")
            ))
            .await?,
            reset: prepare(format!(
                "UPDATE {q}.scopes SET breaker_until = NULL WHERE scope = $1"
            ))
            .await?,
            breaker: prepare(format!(
                "SELECT breaker_until FROM {q}.scopes WHERE scope = $1 AND breaker_until > {NOW}"
            ))
            .await?,
            prune_entries: prepare(format!(
                "DELETE FROM {q}.entries WHERE settled_at IS NOT NULL AND settled_at < $1"
            ))
            .await?,
            prune_budgets: prepare(format!(
                "DELETE FROM {q}.budgets WHERE window_end < LEAST($1, {NOW})"
            ))
            .await?,
            renew: prepare(format!(
                "UPDATE {q}.instances SET lease_until = {} WHERE id = $1 AND incarnation = $2",
                later("$3")
            ))
            .await?,
            revive: prepare(format!(
                "INSERT INTO {q}.instances (id, incarnation, lease_until) VALUES ($1, $2, {})
                 ON CONFLICT (id) DO NOTHING",
                later("$3")
            ))
            .await?,
        })
    }
}

/// The journal's schema, version 1, in the (quoted) schema `q`.
fn schema_1(q: &str) -> String {
    format!(
        "CREATE SCHEMA IF NOT EXISTS {q};
        CREATE TABLE {q}.journal_meta (
            application text NOT NULL,
            schema_version int4 NOT NULL
        );
        CREATE TABLE {q}.instances (
            id text PRIMARY KEY,
            incarnation int8 NOT NULL,
            lease_until int8 NOT NULL
        );
        CREATE TABLE {q}.scopes (
            scope text PRIMARY KEY,
            breaker_until int8
        );
        CREATE TABLE {q}.entries (
            seq int8 GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            local_id text NOT NULL UNIQUE,
            kind text NOT NULL,
            scope text NOT NULL,
            project_id text,
            prompt text NOT NULL,
            started_at int8 NOT NULL,
            token text NOT NULL,
            labels text NOT NULL,
            idempotency_key text,
            accepted bool NOT NULL DEFAULT false,
            outcome text,
            app_url text,
            error text,
            may_have_started_work bool,
            settled_at int8,
            owner text NOT NULL,
            incarnation int8 NOT NULL,
            fence int8 NOT NULL,
            holds_slot bool NOT NULL,
            released bool NOT NULL DEFAULT false
        );
        CREATE UNIQUE INDEX entries_key ON {q}.entries (scope, idempotency_key)
            WHERE idempotency_key IS NOT NULL;
        CREATE INDEX entries_unsettled ON {q}.entries (scope) WHERE outcome IS NULL;
        CREATE INDEX entries_settled ON {q}.entries (settled_at) WHERE settled_at IS NOT NULL;
        CREATE TABLE {q}.budgets (
            scope text NOT NULL,
            time_window text NOT NULL,
            window_start int8 NOT NULL,
            window_end int8 NOT NULL,
            used int8 NOT NULL,
            PRIMARY KEY (scope, time_window, window_start)
        );
        INSERT INTO {q}.journal_meta (application, schema_version) VALUES ('{APPLICATION}', 1);"
    )
}

/// An engine's failure: the server's, or a row it cannot read.
#[derive(Debug)]
enum Fault {
    Sql(tokio_postgres::Error),
    Data(Problem),
}

impl From<tokio_postgres::Error> for Fault {
    fn from(e: tokio_postgres::Error) -> Self {
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
            Fault::Sql(e) => match e.as_db_error() {
                Some(db) => write!(f, "{}: {}", db.code().code(), db.message()),
                None => fmt::Display::fmt(e, f),
            },
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

impl Fault {
    /// A deadlock or serialization failure: run again, it may pass.
    fn lost_a_race(&self) -> bool {
        matches!(self, Fault::Sql(e) if e.code().is_some_and(|code| {
            *code == SqlState::T_R_DEADLOCK_DETECTED || *code == SqlState::T_R_SERIALIZATION_FAILURE
        }))
    }

    fn connection_lost(&self) -> bool {
        matches!(self, Fault::Sql(e) if e.is_closed() || e.as_db_error().is_none() && e.code().is_none())
    }
}

type Done<T> = std::result::Result<T, Fault>;

fn stored(row: &Row) -> std::result::Result<Stored, tokio_postgres::Error> {
    Ok(Stored {
        local_id: row.try_get(0)?,
        kind: row.try_get(1)?,
        scope: row.try_get(2)?,
        project_id: row.try_get(3)?,
        prompt: row.try_get(4)?,
        started_at: row.try_get(5)?,
        token: row.try_get(6)?,
        labels: row.try_get(7)?,
        idempotency_key: row.try_get(8)?,
        accepted: row.try_get(9)?,
        outcome: row.try_get(10)?,
        app_url: row.try_get(11)?,
        error: row.try_get(12)?,
        may_have_started_work: row.try_get(13)?,
        owner: row.try_get(14)?,
    })
}

/// A live connection and its statements.
struct Connection {
    client: Client,
    statements: Statements,
}

/// The engine thread's state.
struct Engine {
    config: Config,
    name: String,
    /// The schema, quoted.
    q: String,
    schema: String,
    id: String,
    incarnation: i64,
    lease: Duration,
    connection: Option<Connection>,
    /// When connecting last failed, and why.
    last_failure: Option<(Instant, String)>,
}

impl Engine {
    fn new(config: Config, name: String, schema: String, id: String, lease: Duration) -> Self {
        Engine {
            config,
            name,
            q: format!("\"{schema}\""),
            schema,
            id,
            incarnation: (crate::random::u64() >> 1) as i64,
            lease,
            connection: None,
            last_failure: None,
        }
    }

    /// The thread's body: connects (answering `connected`), then serves `queue`.
    fn start(mut self, queue: mpsc::Receiver<Command>, connected: oneshot::Sender<Result<()>>) {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(e) => {
                let _ = connected.send(Err(Error::journal(
                    format!(
                        "the PostgreSQL journal {} could not start its engine",
                        self.name
                    ),
                    e,
                )));
                return;
            }
        };
        runtime.block_on(async move {
            let opened = match tokio::time::timeout(BATCH_TIMEOUT, self.open()).await {
                Ok(opened) => opened,
                Err(_) => Err(Error::journal(
                    format!("the PostgreSQL journal {} could not be opened", self.name),
                    Problem::new(format!("no answer within {BATCH_TIMEOUT:?}")),
                )),
            };
            let failed = opened.is_err();
            if connected.send(opened).is_err() || failed {
                // Nobody waits for this journal any more (or it failed to open).
                if !failed {
                    self.end_lease().await;
                }
                return;
            }
            self.run(queue).await;
        });
    }

    /// Connects, creates or migrates the schema, registers this instance.
    async fn open(&mut self) -> Result<()> {
        let client = self.connect().await.map_err(|fault| {
            Error::journal(
                format!("the PostgreSQL journal {} could not connect", self.name),
                fault,
            )
        })?;
        let mut client = client;
        self.prepare_schema(&mut client).await?;
        let statements = Statements::prepare(&client, &self.q).await.map_err(|e| {
            Error::journal(
                format!("the PostgreSQL journal {} could not be opened", self.name),
                Fault::Sql(e),
            )
        })?;
        self.connection = Some(Connection { client, statements });
        Ok(())
    }

    async fn connect(&self) -> Done<Client> {
        let client = match tls::connector(&self.config)? {
            tls::Connector::Plain => {
                let (client, connection) = self.config.connect(tokio_postgres::NoTls).await?;
                tokio::spawn(connection);
                client
            }
            #[cfg(feature = "rustls")]
            tls::Connector::Rustls(make) => {
                let (client, connection) = self.config.connect(make).await?;
                tokio::spawn(connection);
                client
            }
        };
        client
            .batch_execute(
                "SET statement_timeout = '20s'; SET lock_timeout = '15s';
                 SET idle_in_transaction_session_timeout = '60s'; SET TIME ZONE 'UTC';",
            )
            .await?;
        Ok(client)
    }

    async fn prepare_schema(&mut self, client: &mut Client) -> Result<()> {
        let fail = |what: &str, fault: Fault| {
            Error::journal(
                format!("the PostgreSQL journal {} could not {what}", self.name),
                fault,
            )
        };
        let q = self.q.clone();
        let transaction = client
            .transaction()
            .await
            .map_err(|e| fail("be opened", e.into()))?;
        transaction
            .execute(
                "SELECT pg_advisory_xact_lock($1, hashtext($2))",
                &[&MIGRATION_LOCK, &self.schema],
            )
            .await
            .map_err(|e| fail("be opened", e.into()))?;
        let tables: Vec<String> = transaction
            .query(
                "SELECT c.relname::text FROM pg_class c
                   JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
                  ORDER BY 1",
                &[&self.schema],
            )
            .await
            .map_err(|e| fail("be read", e.into()))?
            .iter()
            .map(|row| row.try_get::<_, String>(0))
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| fail("be read", e.into()))?;
        let refuse = |why: String| {
            Error::journal(
                format!(
                    "the PostgreSQL journal {} cannot be opened: {why}; nothing was changed",
                    self.name
                ),
                Problem::new(why.clone()),
            )
        };
        if tables.is_empty() {
            transaction
                .batch_execute(&schema_1(&q))
                .await
                .map_err(|e| fail("create its tables", e.into()))?;
        } else if tables.iter().any(|t| t == "journal_meta") {
            let meta = transaction
                .query_opt(
                    &format!("SELECT application, schema_version FROM {q}.journal_meta LIMIT 1"),
                    &[],
                )
                .await
                .map_err(|e| fail("be read", e.into()))?;
            let (application, version) = match &meta {
                Some(row) => (
                    row.try_get::<_, String>(0).unwrap_or_default(),
                    row.try_get::<_, i32>(1).unwrap_or(0),
                ),
                None => (String::new(), 0),
            };
            if application != APPLICATION {
                return Err(refuse(format!(
                    "the schema {} holds tables that are not a laracopilot journal's",
                    self.schema
                )));
            }
            if version > SCHEMA_VERSION {
                return Err(refuse(format!(
                    "its schema version is {version}, newer than this SDK's ({SCHEMA_VERSION}): upgrade the SDK"
                )));
            }
            // Version 1 is the first: nothing to migrate yet.
        } else {
            return Err(refuse(format!(
                "the schema {} holds tables that are not a laracopilot journal's ({})",
                self.schema,
                tables.join(", ")
            )));
        }
        let lease = duration_millis(self.lease);
        transaction
            .execute(
                &format!(
                    "INSERT INTO {q}.instances (id, incarnation, lease_until) VALUES ($1, $2, {})
                     ON CONFLICT (id) DO UPDATE
                     SET incarnation = EXCLUDED.incarnation, lease_until = EXCLUDED.lease_until",
                    later("$3")
                ),
                &[&self.id, &self.incarnation, &lease],
            )
            .await
            .map_err(|e| fail("register this instance", e.into()))?;
        transaction
            .execute(
                &format!("DELETE FROM {q}.instances WHERE lease_until < {NOW} - $1"),
                &[&FORGET_INSTANCES_AFTER],
            )
            .await
            .map_err(|e| fail("register this instance", e.into()))?;
        transaction
            .commit()
            .await
            .map_err(|e| fail("be opened", e.into()))
    }

    async fn run(mut self, mut queue: mpsc::Receiver<Command>) {
        let every = (self.lease / 3).min(engine::RENEW_AT_MOST_EVERY);
        let mut renew_at = Instant::now() + every;
        loop {
            let next = tokio::time::timeout_at(renew_at, queue.recv()).await;
            if Instant::now() >= renew_at {
                let renewed = self.renew().await;
                renew_at = Instant::now()
                    + if renewed {
                        every
                    } else {
                        every.min(Duration::from_secs(1))
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
            let unheard = self.run_batch(batch).await;
            if !unheard.is_empty() {
                let settle = unheard
                    .into_iter()
                    .map(|op| Command { op, reply: None })
                    .collect();
                let _ = self.run_batch(settle).await;
            }
        }
        self.end_lease().await;
    }

    /// A live connection: the one held, or a new one (not more often than every
    /// [`RECONNECT_PAUSE`]).
    async fn connection(&mut self) -> std::result::Result<&mut Connection, Fault> {
        if self
            .connection
            .as_ref()
            .is_some_and(|c| c.client.is_closed())
        {
            self.connection = None;
        }
        if self.connection.is_none() {
            if let Some((at, why)) = &self.last_failure {
                if at.elapsed() < RECONNECT_PAUSE {
                    return Err(Fault::Data(Problem::new(format!(
                        "the database cannot be reached: {why}"
                    ))));
                }
            }
            let connected = async {
                let client = self.connect().await?;
                let statements = Statements::prepare(&client, &self.q).await?;
                Ok::<_, Fault>(Connection { client, statements })
            }
            .await;
            match connected {
                Ok(connection) => {
                    self.last_failure = None;
                    self.connection = Some(connection);
                }
                Err(fault) => {
                    self.last_failure = Some((Instant::now(), fault.to_string()));
                    return Err(fault);
                }
            }
        }
        self.connection
            .as_mut()
            .ok_or_else(|| Fault::Data(Problem::new("no connection")))
    }

    /// Runs a batch in one transaction, a savepoint for each command, and answers
    /// each once the transaction committed. Answers the admissions nobody heard.
    async fn run_batch(&mut self, mut batch: Vec<Command>) -> Vec<Op> {
        // One lock order for every host: scope rows first (by scope), then entry
        // rows (by id), then the rest.
        batch.sort_by(|a, b| lock_order(&a.op).cmp(&lock_order(&b.op)));
        let (id, incarnation) = (self.id.clone(), self.incarnation);
        let results = match tokio::time::timeout(
            BATCH_TIMEOUT,
            self.transact(&batch, &id, incarnation),
        )
        .await
        {
            Ok(Ok(results)) => results,
            Ok(Err(fault)) => {
                if fault.connection_lost() {
                    self.connection = None;
                }
                let why = fault.to_string();
                batch
                    .iter()
                    .map(|_| Err(Fault::Data(Problem::new(why.clone()))))
                    .collect()
            }
            Err(_) => {
                // A hung server: drop the connection, the next batch reconnects.
                self.connection = None;
                batch
                    .iter()
                    .map(|_| {
                        Err(Fault::Data(Problem::new(format!(
                            "no answer within {BATCH_TIMEOUT:?}"
                        ))))
                    })
                    .collect()
            }
        };
        let mut unheard = Vec::new();
        for (command, result) in batch.into_iter().zip(results) {
            let what = command.op.what();
            let result = result.map_err(|fault| {
                Error::journal(
                    format!("the PostgreSQL journal {} could not {what}", self.name),
                    fault,
                )
            });
            if command.reply.is_none() {
                if let Err(error) = &result {
                    tracing::warn!(journal = %self.name, error = %error, "the laracopilot journal could not {what}");
                }
            }
            unheard.extend(command.answer(result));
        }
        unheard
    }

    /// The batch's transaction: each command's result, or the failure of all.
    async fn transact(
        &mut self,
        batch: &[Command],
        id: &str,
        incarnation: i64,
    ) -> Done<Vec<Done<Reply>>> {
        let connection = self.connection().await?;
        let statements = &connection.statements;
        // A batch of reads takes no lock and writes nothing.
        let reads_only = batch.iter().all(|c| !c.op.writes());
        if batch.len() > 1 && !engine::savepoints_always() {
            let transaction = connection
                .client
                .build_transaction()
                .read_only(reads_only)
                .start()
                .await?;
            match pipelined(&transaction, statements, batch, id, incarnation).await {
                Ok(results) => {
                    transaction.commit().await?;
                    return Ok(results);
                }
                Err(fault) if fault.connection_lost() => return Err(fault),
                // A command failed, which aborts the transaction: run the batch
                // again, a savepoint for each command.
                Err(_) => transaction.rollback().await?,
            }
        }
        let mut transaction = connection
            .client
            .build_transaction()
            .read_only(reads_only)
            .start()
            .await?;
        let single = batch.len() == 1;
        let mut results = Vec::with_capacity(batch.len());
        for command in batch {
            let mut tries = 0;
            let result = loop {
                tries += 1;
                let result = if single {
                    apply(&transaction, statements, id, incarnation, &command.op).await
                } else {
                    let savepoint = transaction.savepoint("command").await?;
                    let result = apply(&savepoint, statements, id, incarnation, &command.op).await;
                    if result.is_ok() {
                        savepoint.commit().await?;
                    } else {
                        savepoint.rollback().await?;
                    }
                    result
                };
                match result {
                    Err(fault) if fault.lost_a_race() && !single && tries < DEADLOCK_TRIES => {}
                    Err(fault) if fault.connection_lost() => return Err(fault),
                    other => break other,
                }
            };
            results.push(result);
        }
        if single && results.iter().any(|r| r.is_err()) {
            // A command that failed alone applied nothing.
            transaction.rollback().await?;
        } else {
            transaction.commit().await?;
        }
        Ok(results)
    }

    async fn renew(&mut self) -> bool {
        let (id, incarnation, lease) = (
            self.id.clone(),
            self.incarnation,
            duration_millis(self.lease),
        );
        let renewed = async {
            let connection = self.connection().await?;
            let statements = &connection.statements;
            let renewed = connection
                .client
                .execute(&statements.renew, &[&id, &incarnation, &lease])
                .await?;
            if renewed == 0 {
                // Forgotten after a long outage: back, unless the name was taken over.
                connection
                    .client
                    .execute(&statements.revive, &[&id, &incarnation, &lease])
                    .await?;
            }
            Ok::<_, Fault>(())
        };
        match tokio::time::timeout(BATCH_TIMEOUT, renewed).await {
            Ok(Ok(())) => true,
            Ok(Err(fault)) => {
                if fault.connection_lost() {
                    self.connection = None;
                }
                tracing::warn!(journal = %self.name, error = %fault, "the laracopilot journal could not renew its lease");
                false
            }
            Err(_) => {
                self.connection = None;
                tracing::warn!(journal = %self.name, "the laracopilot journal could not renew its lease in time");
                false
            }
        }
    }

    async fn end_lease(&mut self) {
        let (id, incarnation) = (self.id.clone(), self.incarnation);
        let sql = format!(
            "DELETE FROM {}.instances WHERE id = $1 AND incarnation = $2",
            self.q
        );
        let ended = async {
            let connection = self.connection().await?;
            connection
                .client
                .execute(&sql, &[&id, &incarnation])
                .await?;
            Ok::<_, Fault>(())
        };
        match tokio::time::timeout(Duration::from_secs(5), ended).await {
            Ok(Ok(())) => {}
            Ok(Err(fault)) => {
                tracing::warn!(journal = %self.name, error = %fault, "the laracopilot journal could not end its lease (it expires by itself)");
            }
            Err(_) => {
                tracing::warn!(journal = %self.name, "the laracopilot journal could not end its lease in time (it expires by itself)");
            }
        }
    }
}

/// Runs a batch without savepoints, in order: a command of one statement is sent
/// without waiting for the answers of those before it (the connection pipelines
/// them), an admission or a prune waits for those before it and runs alone. The
/// first failure fails it all (the transaction is aborted then).
async fn pipelined(
    db: &Transaction<'_>,
    s: &Statements,
    batch: &[Command],
    id: &str,
    incarnation: i64,
) -> Done<Vec<Done<Reply>>> {
    let mut results = Vec::with_capacity(batch.len());
    let mut pending = Vec::new();
    for command in batch {
        if matches!(command.op, Op::Admit(_) | Op::Prune { .. }) {
            for reply in join_all(std::mem::take(&mut pending)).await {
                results.push(Ok(reply?));
            }
            results.push(Ok(apply(db, s, id, incarnation, &command.op).await?));
        } else {
            pending.push(apply(db, s, id, incarnation, &command.op));
        }
    }
    for reply in join_all(pending).await {
        results.push(Ok(reply?));
    }
    Ok(results)
}

/// Polls every future, the first first (so that each sends its statement in
/// order), and answers their outputs in order.
async fn join_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => *output = Some(value),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

/// Where a command takes its locks, in the one order every batch follows.
fn lock_order(op: &Op) -> (u8, &str) {
    match op {
        Op::Admit(intent) => (0, &intent.scope),
        Op::TripBreaker { scope, .. } | Op::ResetBreaker { scope } => (0, scope),
        Op::Accepted { entry, .. }
        | Op::ProjectKnown { entry, .. }
        | Op::Settle { entry, .. }
        | Op::Release { entry, .. }
        | Op::Claim { entry } => (1, entry.as_str()),
        Op::Entry { .. } | Op::Breaker { .. } | Op::Unfinished => (2, ""),
        Op::Prune { .. } => (3, ""),
    }
}

/// Runs one command in the batch's transaction (or a savepoint of it).
async fn apply(
    db: &Transaction<'_>,
    s: &Statements,
    id: &str,
    incarnation: i64,
    op: &Op,
) -> Done<Reply> {
    Ok(match op {
        Op::Admit(intent) => Reply::Admission(admit(db, s, id, incarnation, intent).await?),
        Op::Accepted { entry, fence } => Reply::Written(
            db.execute(&s.accepted, &[&entry.as_str(), &signed(*fence)])
                .await?
                == 1,
        ),
        Op::ProjectKnown {
            entry,
            fence,
            project_id,
        } => Reply::Written(
            db.execute(
                &s.project_known,
                &[&entry.as_str(), &signed(*fence), &project_id.as_str()],
            )
            .await?
                == 1,
        ),
        Op::Settle {
            entry,
            fence,
            settlement,
        } => Reply::Written(settle(db, s, entry, *fence, settlement).await?),
        Op::Release { entry, fence } => Reply::Written(
            db.execute(&s.release, &[&entry.as_str(), &signed(*fence)])
                .await?
                == 1,
        ),
        Op::Unfinished => {
            let rows = db.query(&s.unfinished, &[]).await?;
            let mut entries = Vec::with_capacity(rows.len());
            for row in &rows {
                entries.push(stored(row)?.into_entry()?);
            }
            Reply::Entries(entries)
        }
        Op::Claim { entry } => {
            let row = db
                .query_opt(&s.claim, &[&entry.as_str(), &id, &incarnation])
                .await?;
            match row {
                Some(row) => {
                    let fence: i64 = row.try_get(15)?;
                    Reply::Claimed(Some((stored(&row)?.into_entry()?, unsigned(fence))))
                }
                None => Reply::Claimed(None),
            }
        }
        Op::Entry { entry } => match db.query_opt(&s.entry, &[&entry.as_str()]).await? {
            Some(row) => {
                let driven: bool = row.try_get(15)?;
                Reply::Found(Some((stored(&row)?.into_entry()?, driven)))
            }
            None => Reply::Found(None),
        },
        Op::TripBreaker { scope, cooldown } => {
            db.execute(&s.trip, &[scope, &duration_millis(*cooldown)])
                .await?;
            Reply::Done
        }
        Op::ResetBreaker { scope } => {
            db.execute(&s.reset, &[scope]).await?;
            Reply::Done
        }
        Op::Breaker { scope } => {
            let until = db
                .query_opt(&s.breaker, &[scope])
                .await?
                .map(|row| row.try_get::<_, i64>(0))
                .transpose()?;
            Reply::Until(until.map(time))
        }
        Op::Prune { settled_before } => {
            let before = millis(*settled_before);
            let pruned = db.execute(&s.prune_entries, &[&before]).await?;
            db.execute(&s.prune_budgets, &[&before]).await?;
            Reply::Pruned(pruned)
        }
    })
}

async fn settle(
    db: &Transaction<'_>,
    s: &Statements,
    entry: &LocalId,
    fence: u64,
    settlement: &Settlement,
) -> Done<bool> {
    let (outcome, app_url, error, started) = settlement_columns(settlement);
    let changed = db
        .execute(
            &s.settle,
            &[
                &entry.as_str(),
                &signed(fence),
                &outcome,
                &app_url,
                &error,
                &started,
                &settlement.frees_key(),
            ],
        )
        .await?;
    Ok(changed == 1)
}

async fn admit(
    db: &Transaction<'_>,
    s: &Statements,
    id: &str,
    incarnation: i64,
    intent: &Intent,
) -> Done<Admission> {
    // The scope's row lock serializes its admissions on every host; the server's
    // clock comes with it.
    let scope = db.query_one(&s.lock_scope, &[&intent.scope]).await?;
    let now: i64 = scope.try_get(0)?;
    let breaker: Option<i64> = scope.try_get(1)?;
    if let Some(until) = breaker.filter(|until| *until > now) {
        return Ok(Admission::BreakerOpen { until: time(until) });
    }
    let mut frees_key = None;
    if let Some(key) = &intent.idempotency_key {
        if let Some(row) = db.query_opt(&s.key_holder, &[&intent.scope, key]).await? {
            let entry = stored(&row)?.into_entry()?;
            match &entry.settlement {
                Some(settlement) if settlement.frees_key() => frees_key = Some(entry.local_id),
                _ => return Ok(Admission::Duplicate(Box::new(entry))),
            }
        }
    }
    let now_unsigned = unsigned(now);
    for budget in &intent.budgets {
        let window = budget.window();
        let start = window.start_millis(now_unsigned);
        let used: i64 = match db
            .query_opt(
                &s.budget_used,
                &[&intent.scope, &window.as_str(), &signed(start)],
            )
            .await?
        {
            Some(row) => row.try_get(0)?,
            None => 0,
        };
        if unsigned(used) >= budget.limit() {
            return Ok(Admission::OverBudget {
                budget: *budget,
                reset_time: crate::budget::from_unix_millis(window.end_millis(start)),
            });
        }
    }
    if let Some(cap) = intent.max_concurrent {
        let running: i64 = db
            .query_one(&s.running, &[&intent.scope])
            .await?
            .try_get(0)?;
        let running = unsigned(running);
        if running >= cap {
            return Ok(Admission::Busy { running });
        }
    }
    // Admitted: everything below is written together.
    if let Some(holder) = frees_key {
        db.execute(&s.free_key, &[&holder.as_str()]).await?;
    }
    for budget in &intent.budgets {
        let window = budget.window();
        let start = window.start_millis(now_unsigned);
        db.execute(
            &s.count_budget,
            &[
                &intent.scope,
                &window.as_str(),
                &signed(start),
                &signed(window.end_millis(start)),
            ],
        )
        .await?;
    }
    let local_id = LocalId::new();
    db.execute(
        &s.insert_entry,
        &[
            &local_id.as_str(),
            &intent.kind.as_str(),
            &intent.scope,
            &intent.project_id.as_ref().map(|p| p.as_str()),
            &intent.prompt,
            &now,
            &intent.token_mask,
            &labels_json(&intent.labels),
            &intent.idempotency_key,
            &id,
            &incarnation,
            &intent.max_concurrent.is_some(),
        ],
    )
    .await?;
    Ok(Admission::Admitted {
        entry: local_id,
        fence: 1,
    })
}

mod tls;
