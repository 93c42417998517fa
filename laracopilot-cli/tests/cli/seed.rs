//! Journals as an interrupted run leaves them, made through the SDK's public API (no
//! file is written by hand): a client with an `SqliteJournal` on the test's path,
//! against an offline LaraCopilot of its own, starts generations and follow-ups and
//! drops each at the point a test needs; closing it leaves those entries unfinished
//! for the `laracopilot` process the test starts next. Also the two ways a test reads
//! a journal back: `Client::unfinished` (the SDK), and the settled rows of an SQLite
//! journal, read only.

use std::future::{Future, IntoFuture};
use std::path::Path;
use std::time::{Duration, Instant};

use laracopilot::journal::{Entry, Journal, JournalOptions, PostgresJournal, SqliteJournal};
use laracopilot::Client;
use laracopilot_mock::{Fault, MockProject, MockServer, ProjectStatus, Reply};
use serde_json::json;

/// How long a test waits for a journal to show what it expects.
const SETTLE: Duration = Duration::from_secs(20);

/// Runs `future` on a runtime of its own (for the plain `#[test]`s).
pub fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(future)
}

/// A client that writes a journal, against an offline LaraCopilot of its own (the
/// server the generations "ran on" is another one: the test's), and a second client
/// over the same journal that reads it.
pub struct Seeder {
    server: MockServer,
    client: Client,
    reader: Client,
    started: usize,
}

impl Seeder {
    /// A seeder for the SQLite journal at `path` (created if missing). Its
    /// LaraCopilot knows the projects `known` (to follow up on), and takes prompts
    /// of any length.
    pub fn new(path: &Path, known: &[&str]) -> Seeder {
        let journal =
            SqliteJournal::open_with(path, JournalOptions::new()).expect("the journal opens");
        Seeder::over(journal, reader(path), known)
    }

    /// A seeder for the PostgreSQL journal at `url`, in `schema`.
    pub async fn postgres(url: &str, schema: &str, known: &[&str]) -> Seeder {
        let open = || PostgresJournal::connect_in(url, schema, JournalOptions::new());
        let journal = open().await.expect("the journal opens");
        let reader = reading(open().await.expect("the journal opens"));
        Seeder::over(journal, reader, known)
    }

    fn over(journal: impl Journal, reader: Client, known: &[&str]) -> Seeder {
        let server = known
            .iter()
            .fold(MockServer::builder().min_prompt_len(1), |builder, id| {
                builder.project(MockProject::new(*id, ProjectStatus::Ready))
            })
            .start()
            .expect("the seeding LaraCopilot starts");
        let client = server
            .client_builder()
            .journal(journal)
            .build()
            .expect("a client");
        Seeder {
            server,
            client,
            reader,
            started: 0,
        }
    }

    /// A generate call dropped before the server answered: its entry is neither
    /// accepted nor knows a project.
    pub async fn generate_unanswered(&mut self, prompt: &str) {
        self.server.reply_next(1, Reply::hang());
        let call = self.client.generate(prompt).into_future();
        until_posted(&self.server, prompt, call).await;
        self.started += 1;
    }

    /// A generate call dropped right after its `project_created` named `project`:
    /// accepted, with its project id.
    pub async fn generate_named(&mut self, prompt: &str, project: &str) {
        self.server
            .script_next([
                json!({"type": "project_created", "project_id": project,
                       "app_url": format!("https://{project}.laracopilot.com")}),
                json!({"type": "container_ready", "message": "Ready"}),
            ])
            .expect("a script");
        // Nothing after project_created: the stream is dropped while it runs.
        self.server.fault_next(Fault::StallBefore(1));
        let mut generation = self
            .client
            .generate(prompt)
            .await
            .expect("the generation starts");
        let first = generation
            .next()
            .await
            .expect("an event")
            .expect("no error");
        assert_eq!(first.type_name(), "project_created");
        assert_eq!(
            generation.project_id().map(|p| p.as_str()),
            Some(project),
            "the journal knows the project before the event is handed out"
        );
        drop(generation);
        self.started += 1;
    }

    /// A follow-up on `project` dropped once the server accepted it (its headers
    /// arrived), before any event: accepted, with its project.
    pub async fn follow_up_accepted(&mut self, project: &str, prompt: &str) {
        self.server.fault_next(Fault::StallBefore(0));
        let generation = self
            .client
            .follow_up(project, prompt)
            .await
            .expect("the follow-up is accepted");
        drop(generation);
        self.started += 1;
    }

    /// A follow-up on `project` dropped before the server answered: not accepted.
    pub async fn follow_up_unanswered(&mut self, project: &str, prompt: &str) {
        self.server.reply_next(1, Reply::hang());
        let call = self.client.follow_up(project, prompt).into_future();
        until_posted(&self.server, prompt, call).await;
        self.started += 1;
    }

    /// Closes the client and its journal (its lease ends, its dropped calls were
    /// released), and waits until another process would find every entry it started
    /// unfinished; those entries, oldest first.
    pub async fn close(self) -> Vec<Entry> {
        let Seeder {
            server,
            client,
            reader,
            started,
        } = self;
        drop(client);
        let entries = wait_for(&reader, started).await;
        drop(server);
        entries
    }
}

/// Drives `call` until `server` received its POST (with `prompt`), then drops it:
/// the call was admitted and sent, and its answer never came.
async fn until_posted<F: Future>(server: &MockServer, prompt: &str, call: F) {
    let posted =
        async {
            let started = Instant::now();
            while !server.requests().iter().any(|r| {
                r.method == "POST" && r.json().is_some_and(|body| body["prompt"] == prompt)
            }) {
                assert!(
                    started.elapsed() < SETTLE,
                    "the POST of {prompt:?} never came"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
    tokio::select! {
        _ = call => panic!("the server answered {prompt:?}: it was told to hang"),
        () = posted => {}
    }
}

/// A client over the SQLite journal at `path` that sends nothing: what a test
/// reads a journal with.
pub fn reader(path: &Path) -> Client {
    reading(SqliteJournal::open(path).expect("the journal opens"))
}

/// A client over `journal` that sends nothing (its base URL is a port nobody
/// listens on).
pub fn reading(journal: impl Journal) -> Client {
    Client::builder()
        .token(laracopilot::Token::new(TOKEN_FOR_READING).expect("a token"))
        .base_url("http://127.0.0.1:9/api/v1")
        .journal(journal)
        .build()
        .expect("a client")
}

const TOKEN_FOR_READING: &str = "lcp_test_reader_never_sent";

/// The unfinished entries of the journal at `path`, as the SDK lists them.
pub async fn unfinished(path: &Path) -> Vec<Entry> {
    reader(path)
        .unfinished()
        .await
        .expect("the journal is read")
}

/// Waits (bounded) until the journal at `path` lists `count` unfinished entries,
/// then answers them: the writes of a closed journal (a release, the end of its
/// lease) land on its engine's thread just after it is dropped.
pub async fn wait_unfinished(path: &Path, count: usize) -> Vec<Entry> {
    wait_for(&reader(path), count).await
}

/// Waits (bounded) until `client`'s journal lists `count` unfinished entries.
pub async fn wait_for(client: &Client, count: usize) -> Vec<Entry> {
    let started = Instant::now();
    loop {
        let entries = client.unfinished().await.expect("the journal is read");
        if entries.len() == count {
            return entries;
        }
        assert!(
            started.elapsed() < SETTLE,
            "{count} unfinished entries expected, found {}: {entries:#?}",
            entries.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A settled entry, as the SQLite journal's file holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled {
    pub local_id: String,
    pub prompt: String,
    /// `succeeded`, `failed` or `unknown`.
    pub outcome: String,
    pub project_id: Option<String>,
}

/// The settled entries of the SQLite journal at `path`, oldest first. The SDK lists
/// only what is unfinished, so this reads the file itself, read only, in the
/// journal's schema version 1 (table `entries`: `seq`, `local_id`, `prompt`,
/// `outcome`, `project_id`, ...); a new schema version fails here first, which is
/// the point.
pub fn settled(path: &Path) -> Vec<Settled> {
    let connection = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .expect("the journal opens read only");
    let version: i64 = connection
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .unwrap();
    assert_eq!(
        version, 1,
        "these tests read the journal's schema version 1"
    );
    let mut statement = connection
        .prepare(
            "SELECT local_id, prompt, outcome, project_id FROM entries
              WHERE outcome IS NOT NULL ORDER BY seq",
        )
        .unwrap();
    statement
        .query_map([], |row| {
            Ok(Settled {
                local_id: row.get(0)?,
                prompt: row.get(1)?,
                outcome: row.get(2)?,
                project_id: row.get(3)?,
            })
        })
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

/// `(prompt, outcome)` of each settled entry, for comparing with literals.
pub fn pairs(list: &[Settled]) -> Vec<(&str, &str)> {
    list.iter()
        .map(|s| (s.prompt.as_str(), s.outcome.as_str()))
        .collect()
}
