//! The journal engines the benchmarks compare: none, `MemoryJournal`,
//! `SqliteJournal` (a file in a temporary directory; feature `sqlite`) and
//! `PostgresJournal` (feature `postgres`, when a server answers at
//! `LARACOPILOT_TEST_POSTGRES`, or else at what `.ci/postgres.sh` makes; a schema
//! of the run's own, dropped at the end).
#![allow(dead_code, reason = "each benchmark uses a different part")]

use std::sync::atomic::{AtomicUsize, Ordering};

use laracopilot::journal::MemoryJournal;
use laracopilot::ClientBuilder;

/// Where a client keeps its journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    None,
    Memory,
    Sqlite,
    Postgres,
}

impl Engine {
    pub fn name(self) -> &'static str {
        match self {
            Engine::None => "none",
            Engine::Memory => "memory",
            Engine::Sqlite => "sqlite",
            Engine::Postgres => "postgres",
        }
    }
}

/// The variable naming the PostgreSQL server, as for the crate's tests.
pub const POSTGRES_ENV: &str = "LARACOPILOT_TEST_POSTGRES";
/// Where to look when it is unset: what `.ci/postgres.sh` makes.
pub const DEFAULT_POSTGRES: &str = "postgres://laracopilot:laracopilot@127.0.0.1:5432/laracopilot";

/// The journals of one run: a temporary directory for SQLite files, a schema of
/// its own for PostgreSQL.
pub struct Journals {
    dir: tempfile::TempDir,
    postgres: Option<(String, String)>,
    opened: AtomicUsize,
}

impl Journals {
    /// What this build and this machine offer; says on stderr why an engine is left
    /// out. Needs a Tokio runtime's context for PostgreSQL (`runtime.block_on`).
    pub async fn new() -> Journals {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let postgres = postgres().await;
        Journals {
            dir,
            postgres,
            opened: AtomicUsize::new(0),
        }
    }

    /// The engines to compare, `none` first.
    pub fn engines(&self) -> Vec<Engine> {
        let mut engines = vec![Engine::None, Engine::Memory];
        if cfg!(feature = "sqlite") {
            engines.push(Engine::Sqlite);
        }
        if self.postgres.is_some() {
            engines.push(Engine::Postgres);
        }
        engines
    }

    /// The directory of the SQLite files (for an `fsync` floor beside them).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// `builder` with a new journal of `engine` (a new file, a new connection).
    pub async fn attach(&self, engine: Engine, builder: ClientBuilder) -> ClientBuilder {
        let n = self.opened.fetch_add(1, Ordering::Relaxed);
        match engine {
            Engine::None => builder,
            Engine::Memory => builder.journal(MemoryJournal::new()),
            Engine::Sqlite => self.sqlite(n, builder),
            Engine::Postgres => self.postgres(builder).await,
        }
    }

    #[cfg(feature = "sqlite")]
    fn sqlite(&self, n: usize, builder: ClientBuilder) -> ClientBuilder {
        let path = self.dir.path().join(format!("journal-{n}.db"));
        builder.journal(laracopilot::journal::SqliteJournal::open(path).expect("an SQLite journal"))
    }

    #[cfg(not(feature = "sqlite"))]
    fn sqlite(&self, _: usize, _: ClientBuilder) -> ClientBuilder {
        unreachable!("not offered without the feature `sqlite`")
    }

    #[cfg(feature = "postgres")]
    async fn postgres(&self, builder: ClientBuilder) -> ClientBuilder {
        let (url, schema) = self.postgres.as_ref().expect("offered only when reachable");
        let options = laracopilot::journal::JournalOptions::new();
        let journal = laracopilot::journal::PostgresJournal::connect_in(url, schema, options)
            .await
            .expect("a PostgreSQL journal");
        builder.journal(journal)
    }

    #[cfg(not(feature = "postgres"))]
    async fn postgres(&self, _: ClientBuilder) -> ClientBuilder {
        unreachable!("not offered without the feature `postgres`")
    }

    /// Drops the run's PostgreSQL schema (once every client of the run is dropped).
    pub async fn cleanup(self) {
        #[cfg(feature = "postgres")]
        if let Some((url, schema)) = &self.postgres {
            if let Ok((admin, connection)) =
                tokio_postgres::connect(url, tokio_postgres::NoTls).await
            {
                let task = tokio::spawn(connection);
                let _ = admin
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                    .await;
                drop(admin);
                let _ = task.await;
            }
        }
    }
}

/// The server's URL and the run's schema, when a server answers.
#[cfg(feature = "postgres")]
async fn postgres() -> Option<(String, String)> {
    let url = match std::env::var(POSTGRES_ENV) {
        Ok(url) if !url.trim().is_empty() => url,
        _ => DEFAULT_POSTGRES.to_owned(),
    };
    let schema = format!("bench_{}_{}", std::process::id(), nanos() % 1_000_000);
    let options = laracopilot::journal::JournalOptions::new();
    let connect = laracopilot::journal::PostgresJournal::connect_in(&url, &schema, options);
    match tokio::time::timeout(std::time::Duration::from_secs(5), connect).await {
        Ok(Ok(_journal)) => Some((url, schema)),
        Ok(Err(e)) => {
            eprintln!("PostgreSQL left out: {e:#}; set {POSTGRES_ENV} (`source .ci/postgres.sh`)");
            None
        }
        Err(_) => {
            eprintln!("PostgreSQL left out: no answer within 5 s; set {POSTGRES_ENV}");
            None
        }
    }
}

#[cfg(not(feature = "postgres"))]
async fn postgres() -> Option<(String, String)> {
    eprintln!("PostgreSQL left out: built without the feature `postgres`");
    None
}

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}
