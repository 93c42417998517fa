//! The PostgreSQL engine: every rule of `conformance.rs` in a fresh schema, and what
//! only a shared database has (hosts starting together, foreign tables, a newer
//! schema, outages, the server's clock, TLS).
//!
//! They connect to `LARACOPILOT_TEST_POSTGRES` (a URL; `.ci/postgres.sh` makes a
//! server and prints it) or, unset, to [`DEFAULT_URL`]. With no server there, they
//! are skipped, and say so on stderr; with `LARACOPILOT_TEST_POSTGRES` set, an
//! unreachable server fails them. Each test works in a schema of its own, dropped
//! when it passes.

use std::future::Future;
use std::io::Write;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use super::conformance::{self, intent, Fixture};
use super::store::{Admission, Store};
use super::{store_of, JournalOptions, PostgresJournal};
use crate::Error;

/// Where the tests look for a server when `LARACOPILOT_TEST_POSTGRES` is unset:
/// what `.ci/postgres.sh` makes.
const DEFAULT_URL: &str = "postgres://laracopilot:laracopilot@127.0.0.1:5432/laracopilot";

const ENV: &str = "LARACOPILOT_TEST_POSTGRES";

/// A test's server and schema, and a connection of its own to inspect them.
pub(super) struct Database {
    url: String,
    schema: String,
    admin: tokio_postgres::Client,
}

/// The server to test against, or `None` (said on stderr) when there is none and
/// none was asked for.
pub(super) async fn database(test: &str) -> Option<Database> {
    let (url, asked) = match std::env::var(ENV) {
        Ok(url) if !url.trim().is_empty() => (url, true),
        _ => (DEFAULT_URL.to_owned(), false),
    };
    let config = tokio_postgres::Config::from_str(&url).expect("a PostgreSQL URL");
    let connected = tokio::time::timeout(
        Duration::from_secs(5),
        config.connect(tokio_postgres::NoTls),
    )
    .await;
    let (admin, connection) = match connected {
        Ok(Ok(connected)) => connected,
        failed => {
            let why = match failed {
                Ok(Err(e)) => e.to_string(),
                _ => "no answer within 5 s".to_owned(),
            };
            let shown = shown(&url);
            assert!(
                !asked,
                "{ENV} is set but its server cannot be reached ({shown}): {why}"
            );
            // Not through libtest's capture: a skip must be seen.
            let _ = writeln!(
                std::io::stderr(),
                "skipping the PostgreSQL journal test {test}: no server at {shown} ({why}); set {ENV}"
            );
            return None;
        }
    };
    tokio::spawn(connection);
    let schema = format!("lct_{:012x}", crate::random::u64() >> 16);
    Some(Database { url, schema, admin })
}

/// The URL without its password.
fn shown(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

impl Database {
    pub(super) async fn open(&self, options: JournalOptions) -> crate::Result<PostgresJournal> {
        PostgresJournal::connect_in(&self.url, &self.schema, options).await
    }

    async fn tables(&self) -> Vec<String> {
        self.admin
            .query(
                "SELECT c.relname::text FROM pg_class c
                   JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE n.nspname = $1 AND c.relkind = 'r' ORDER BY 1",
                &[&self.schema],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect()
    }

    /// Drops the test's schema (a test that fails leaves it, to be looked at).
    pub(super) async fn drop_schema(self) {
        self.admin
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
                self.schema
            ))
            .await
            .unwrap();
    }
}

struct Postgres<'a>(&'a Database);

impl Fixture for Postgres<'_> {
    fn open(
        &self,
        options: JournalOptions,
    ) -> Pin<Box<dyn Future<Output = Arc<dyn Store>> + Send + '_>> {
        Box::pin(async move { store_of(&self.0.open(options).await.unwrap()) })
    }
}

fn refusal(result: crate::Result<PostgresJournal>) -> String {
    match result {
        Err(error @ Error::Journal { .. }) => error.to_string(),
        Err(other) => panic!("not a journal error: {other:?}"),
        Ok(journal) => panic!("opened {journal:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_journal_follows_every_rule() {
    let Some(db) = database("the_postgres_journal_follows_every_rule").await else {
        return;
    };
    conformance::run_all(&Postgres(&db)).await;
    db.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_starting_together_make_one_journal() {
    let Some(db) = database("hosts_starting_together_make_one_journal").await else {
        return;
    };
    let opens = (0..8).map(|_| db.open(JournalOptions::new()));
    let journals = futures::future::join_all(opens).await;
    assert!(journals.iter().all(Result::is_ok), "{journals:?}");
    let meta: i64 = db
        .admin
        .query_one(
            &format!("SELECT count(*) FROM \"{}\".journal_meta", db.schema),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(meta, 1);
    drop(journals);
    db.drop_schema().await;
}

#[tokio::test]
async fn a_newer_journal_is_refused_and_left_as_it_is() {
    let Some(db) = database("a_newer_journal_is_refused_and_left_as_it_is").await else {
        return;
    };
    drop(db.open(JournalOptions::new()).await.unwrap());
    db.admin
        .batch_execute(&format!(
            "UPDATE \"{}\".journal_meta SET schema_version = 99",
            db.schema
        ))
        .await
        .unwrap();
    let tables = db.tables().await;
    let message = refusal(db.open(JournalOptions::new()).await);
    assert!(message.contains("newer"), "{message}");
    assert!(message.contains("99"), "{message}");
    assert_eq!(db.tables().await, tables);
    let version: i32 = db
        .admin
        .query_one(
            &format!("SELECT schema_version FROM \"{}\".journal_meta", db.schema),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(version, 99);
    db.drop_schema().await;
}

#[tokio::test]
async fn tables_that_are_not_a_journals_are_refused_and_left_as_they_are() {
    let Some(db) = database("tables_that_are_not_a_journals_are_refused").await else {
        return;
    };
    db.admin
        .batch_execute(&format!(
            "CREATE SCHEMA \"{0}\"; CREATE TABLE \"{0}\".settings (k text, v text);
             INSERT INTO \"{0}\".settings VALUES ('a', 'b');",
            db.schema
        ))
        .await
        .unwrap();
    let message = refusal(db.open(JournalOptions::new()).await);
    assert!(message.contains("settings"), "{message}");
    assert_eq!(db.tables().await, vec!["settings".to_owned()]);
    // A table named as the journal's marker, of another application.
    db.admin
        .batch_execute(&format!(
            "CREATE TABLE \"{0}\".journal_meta (application text, schema_version int4);
             INSERT INTO \"{0}\".journal_meta VALUES ('someone-else', 1);",
            db.schema
        ))
        .await
        .unwrap();
    let message = refusal(db.open(JournalOptions::new()).await);
    assert!(message.contains("not a laracopilot journal"), "{message}");
    assert_eq!(
        db.tables().await,
        vec!["journal_meta".to_owned(), "settings".to_owned()]
    );
    db.drop_schema().await;
}

#[tokio::test]
async fn bad_urls_and_schema_names_are_refused_without_echoing_a_password() {
    let Some(db) = database("bad_urls_and_schema_names_are_refused").await else {
        return;
    };
    for schema in ["", "Upper", "1st", "with space", "a\"b", &"x".repeat(64)] {
        let refused = PostgresJournal::connect_in(&db.url, schema, JournalOptions::new()).await;
        assert!(matches!(refused, Err(Error::Journal { .. })), "{schema:?}");
    }
    let mut wrong = url::Url::parse(&db.url).unwrap();
    wrong.set_password(Some("not-the-Passw0rd")).unwrap();
    let message = refusal(
        PostgresJournal::connect_in(wrong.as_str(), &db.schema, JournalOptions::new()).await,
    );
    assert!(!message.contains("not-the-Passw0rd"), "{message}");
    let error = PostgresJournal::connect_in(wrong.as_str(), &db.schema, JournalOptions::new())
        .await
        .unwrap_err();
    let chain = format!("{error:?} {}", std::error::Error::source(&error).unwrap());
    assert!(!chain.contains("not-the-Passw0rd"), "{chain}");
    let message = refusal(PostgresJournal::connect("postgres://a:b@127.0.0.1:notaport/x").await);
    assert!(!message.contains(":b@"), "{message}");
    db.drop_schema().await;
}

#[tokio::test]
async fn sslmode_require_never_connects_to_an_unverified_server() {
    let Some(db) = database("sslmode_require_never_connects_to_an_unverified_server").await else {
        return;
    };
    // The test server's certificate (if it has TLS at all) is not one the system
    // trusts: `require` is refused, whereas libpq would connect unverified.
    let mut url = url::Url::parse(&db.url).unwrap();
    url.query_pairs_mut().append_pair("sslmode", "require");
    let message =
        refusal(PostgresJournal::connect_in(url.as_str(), &db.schema, JournalOptions::new()).await);
    assert!(message.contains("could not connect"), "{message}");
    let mut plain = url::Url::parse(&db.url).unwrap();
    plain.query_pairs_mut().append_pair("sslmode", "disable");
    let journal = PostgresJournal::connect_in(plain.as_str(), &db.schema, JournalOptions::new())
        .await
        .unwrap();
    drop(journal);
    db.drop_schema().await;
}

#[tokio::test]
async fn breakers_and_leases_follow_the_servers_clock() {
    let Some(db) = database("breakers_and_leases_follow_the_servers_clock").await else {
        return;
    };
    let journal = db.open(JournalOptions::new()).await.unwrap();
    let store = store_of(&journal);
    store
        .trip_breaker("clock", Duration::from_secs(600))
        .await
        .unwrap();
    let until = super::engine::millis(store.breaker("clock").await.unwrap().unwrap());
    let server: i64 = db
        .admin
        .query_one(
            "SELECT (extract(epoch from clock_timestamp()) * 1000)::int8",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let off = (until - 600_000 - server).abs();
    assert!(
        off < 5_000,
        "the breaker's end is {off} ms off the server's clock"
    );
    let lease: i64 = db
        .admin
        .query_one(
            &format!(
                "SELECT lease_until FROM \"{}\".instances WHERE id = $1",
                db.schema
            ),
            &[&journal.instance()],
        )
        .await
        .unwrap()
        .get(0);
    let off = (lease - 30_000 - server).abs();
    assert!(
        off < 15_000,
        "the lease's end is {off} ms off the server's clock"
    );
    drop(journal);
    // A lease of `Duration::MAX` is one the server can hold (saturated).
    let forever = db
        .open(JournalOptions::new().lease(Duration::MAX))
        .await
        .unwrap();
    let store = store_of(&forever);
    let admitted = store.admit(intent("forever")).await.unwrap();
    let Admission::Admitted { entry, .. } = admitted else {
        panic!("{admitted:?}");
    };
    assert!(store.entry(&entry).await.unwrap().unwrap().1);
    drop(forever);
    db.drop_schema().await;
}

#[test]
fn it_works_from_a_caller_without_a_runtime() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let Some(db) = runtime.block_on(database("it_works_from_a_caller_without_a_runtime")) else {
        return;
    };
    // No tokio here: the engine's thread has its own runtime.
    let (url, schema) = (db.url.clone(), db.schema.clone());
    let admitted = std::thread::spawn(move || {
        futures::executor::block_on(async {
            let journal = PostgresJournal::connect_in(&url, &schema, JournalOptions::new())
                .await
                .unwrap();
            store_of(&journal)
                .admit(intent("no-runtime"))
                .await
                .unwrap()
        })
    })
    .join()
    .unwrap();
    assert!(
        matches!(admitted, Admission::Admitted { .. }),
        "{admitted:?}"
    );
    runtime.block_on(db.drop_schema());
}

/// A TCP relay to the server that the test can cut (every connection closed, new
/// ones closed at once) and mend.
struct Relay {
    address: std::net::SocketAddr,
    up: Arc<std::sync::atomic::AtomicBool>,
    cut: Arc<tokio::sync::Notify>,
}

impl Relay {
    async fn start(target: String) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let up = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let cut = Arc::new(tokio::sync::Notify::new());
        let (relay_up, relay_cut) = (Arc::clone(&up), Arc::clone(&cut));
        tokio::spawn(async move {
            // Bounded: the test's runtime ends it with the test.
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !relay_up.load(std::sync::atomic::Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let target = target.clone();
                let cut = Arc::clone(&relay_cut);
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        () = cut.notified() => {}
                    }
                });
            }
        });
        Relay { address, up, cut }
    }

    fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        self.cut.notify_waiters();
    }

    fn mend(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_fails_calls_and_the_engine_reconnects() {
    let Some(db) = database("an_outage_fails_calls_and_the_engine_reconnects").await else {
        return;
    };
    let url = url::Url::parse(&db.url).unwrap();
    let target = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432));
    let relay = Relay::start(target).await;
    let mut relayed = url.clone();
    relayed.set_host(Some("127.0.0.1")).unwrap();
    relayed.set_port(Some(relay.address.port())).unwrap();
    let journal = PostgresJournal::connect_in(relayed.as_str(), &db.schema, JournalOptions::new())
        .await
        .unwrap();
    let store = store_of(&journal);
    assert!(matches!(
        store.admit(intent("outage")).await.unwrap(),
        Admission::Admitted { .. }
    ));
    relay.cut();
    for _ in 0..3 {
        let during = store.admit(intent("outage")).await;
        assert!(matches!(during, Err(Error::Journal { .. })), "{during:?}");
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    relay.mend();
    let mut back = false;
    for _ in 0..50 {
        if let Ok(Admission::Admitted { .. }) = store.admit(intent("outage")).await {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(back, "the engine reconnected");
    // Nothing of what failed during the outage was written.
    let count: i64 = db
        .admin
        .query_one(
            &format!(
                "SELECT count(*) FROM \"{}\".entries WHERE scope = 'outage'",
                db.schema
            ),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 2);
    drop(journal);
    db.drop_schema().await;
}
