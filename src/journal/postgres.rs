//! The journal on a PostgreSQL database: one database shared by every host.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config};

use self::apply::{apply, lock_order, pipelined};
use self::sql::{later, schema_1, Statements, NOW};
use super::engine::{self, duration_millis, Command, Handle, Op, Problem, Reply};
use super::store::Store;
use super::{sealed, Journal, JournalOptions};
use crate::{Error, Result};

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

/// Its `Display` already holds the whole story (tokio-postgres writes an error's
/// cause into its own text): no `source`, so that a chain prints each cause once.
impl std::error::Error for Fault {}

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

mod apply;
mod sql;
mod tls;
