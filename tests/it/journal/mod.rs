//! The journal stays true on every engine (memory, SQLite, PostgreSQL), whichever
//! way the caller consumes a generation: the intent is durable before the server
//! sees the POST, the acceptance before the stream is handed back (so before the
//! first event), the project id before the caller sees the event that names it,
//! the settlement before the terminal item reaches the caller; a broken or dropped
//! stream's entry is left unfinished, and `finish_or_recover` settles it with what
//! its poll proves.
//!
//! One file per concern: the records of a generation (`records.rs`), a stream
//! dropped unread (`accepted.rs`), calls refused before or at sending
//! (`refused.rs`), writes that fail (`failing_writes.rs`), `resume` (`resume.rs`),
//! idempotent calls (`idempotency.rs`), and the spend guards shared by every
//! instance of one database (`guards.rs`).
//!
//! Every record is checked as it happens: the database is read apart from the SDK
//! (see `common::journal`) at the moment the server receives the POST (in the
//! server's script), when the call hands the stream back, and as the caller gets
//! each item.

use crate::common;

mod accepted;
mod failing_writes;
mod guards;
mod idempotency;
mod records;
mod refused;
mod resume;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::journal::{states, Db, Observer, Row};
use common::raw::{self, RawServer, Step};
use laracopilot::{Client, ClientBuilder, Error, Event, Outcome, WaitOptions};

/// The project the raw server's generations make.
const APP_URL: &str = "https://p1.laracopilot.com";

/// The events of the raw server's generation of `p1`.
const CREATED: &str =
    r#"{"type":"project_created","project_id":"p1","app_url":"https://p1.laracopilot.com"}"#;
const PROGRESS: &str =
    r#"{"type":"container_progress","message":"Installing Laravel...","percentage":40}"#;
const READY: &str = r#"{"type":"container_ready","message":"Container ready."}"#;
const FILE: &str = r#"{"type":"file_created","path":"app/Models/Task.php"}"#;
const END: &str =
    r#"{"type":"stream_end","project_id":"p1","app_url":"https://p1.laracopilot.com"}"#;
const CREDITS: &str = r#"{"type":"credits_exhausted","message":"Your credits ran out."}"#;

/// How the raw server's generations end.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Story {
    /// `stream_end`.
    Success,
    /// `credits_exhausted`.
    Credits,
    /// The body ends after three events: `Error::Incomplete`.
    DropAfter,
    /// The connection is reset in the middle of the fourth event:
    /// `Error::Transport`.
    DropMidEvent,
}

/// The answer of a generate or follow-up call that tells `story`.
fn stream(follow_up: bool, story: Story) -> Vec<Step> {
    let events: &[&str] = if follow_up {
        &[FILE, FILE]
    } else {
        &[CREATED, PROGRESS, READY, FILE]
    };
    match story {
        Story::Success => {
            let mut all = events.to_vec();
            all.push(END);
            vec![Step::Write(raw::sse_answer(&all)), Step::Close]
        }
        Story::Credits => {
            let mut all = events.to_vec();
            all.push(CREDITS);
            vec![Step::Write(raw::sse_answer(&all)), Step::Close]
        }
        Story::DropAfter => vec![
            Step::Write(raw::sse_answer(events.get(..3).unwrap_or(events))),
            Step::Close,
        ],
        Story::DropMidEvent => {
            let mut bytes = raw::sse_answer(events.get(..3).unwrap_or(events));
            bytes.extend_from_slice(b"data: {\"type\":\"file_cr");
            vec![
                Step::Write(bytes),
                Step::Sleep(Duration::from_millis(20)),
                Step::Reset,
            ]
        }
    }
}

/// How the caller consumes the generation.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    /// `Generation::next` to the end.
    Next,
    /// `Generation::finish_with`.
    Finish,
    /// `Client::finish_or_recover_with`.
    Recover,
    /// The blocking iterator.
    #[cfg(feature = "blocking")]
    BlockingIter,
    /// `blocking::Generation::finish_with`.
    #[cfg(feature = "blocking")]
    BlockingFinish,
}

const MODES: &[Mode] = &[
    Mode::Next,
    Mode::Finish,
    Mode::Recover,
    #[cfg(feature = "blocking")]
    Mode::BlockingIter,
    #[cfg(feature = "blocking")]
    Mode::BlockingFinish,
];

/// What the database held at one moment: `post` (the server has the POST in hand),
/// `handed` (the call handed the stream back), an event's type or `error:<kind>`
/// (the caller has that item in hand), `end` (the call is over).
type Moment = (String, Vec<Row>);

/// One test's raw server, database, client and log of moments.
struct Rig {
    db: Db,
    server: RawServer,
    client: Client,
    log: Arc<Mutex<Vec<Moment>>>,
    /// What the status endpoint says of `p1`.
    status: Arc<Mutex<&'static str>>,
}

impl Rig {
    /// A raw server whose generations tell `story` (and whose status answer says
    /// `ready`), and a client of it (adjusted by `adjust`) over a journal of `db`.
    fn new(db: Db, story: Story, adjust: impl FnOnce(ClientBuilder) -> ClientBuilder) -> Rig {
        let log: Arc<Mutex<Vec<Moment>>> = Arc::default();
        let status = Arc::new(Mutex::new("ready"));
        let server = {
            let (observer, log, status) = (db.observer(), Arc::clone(&log), Arc::clone(&status));
            RawServer::start(move |request| {
                if request.method == "GET" {
                    let answer = match *status.lock().unwrap() {
                        // A proxy's page, not the API's answer.
                        "proxy-404" => raw::response(
                            404,
                            &[("Content-Type", "text/html")],
                            "<html><body>Not Found</body></html>",
                        ),
                        status => raw::project_answer("p1", status),
                    };
                    return vec![Step::Write(answer), Step::Close];
                }
                // The moment the server has the POST: what is durable already.
                log.lock().unwrap().push(("post".into(), observer.rows()));
                stream(request.target.ends_with("/p1"), story)
            })
        };
        let client =
            adjust(raw::builder(&server.base_url()).idle_timeout(Some(Duration::from_secs(5))))
                .journal(db.open())
                .build()
                .unwrap();
        Rig {
            db,
            server,
            client,
            log,
            status,
        }
    }

    /// Notes what the database holds now, as moment `what`.
    fn note(&self, what: impl Into<String>) {
        note(&self.log, &self.db.observer(), what);
    }

    fn moments(&self) -> Vec<Moment> {
        self.log.lock().unwrap().clone()
    }

    /// The states at the first moment named `what`.
    fn at(&self, what: &str) -> Vec<String> {
        let moments = self.moments();
        let (_, rows) = moments
            .iter()
            .find(|(name, _)| name == what)
            .unwrap_or_else(|| panic!("no moment {what}: {moments:#?}"));
        states(rows)
    }

    /// The names of the moments, in order.
    fn names(&self) -> Vec<String> {
        self.moments().into_iter().map(|(name, _)| name).collect()
    }
}

fn note(log: &Mutex<Vec<Moment>>, observer: &Observer, what: impl Into<String>) {
    let rows = observer.rows();
    log.lock().unwrap().push((what.into(), rows));
}

/// How the caller names an item.
fn seen(item: &laracopilot::Result<Event>) -> String {
    match item {
        Ok(event) => event.type_name().to_owned(),
        Err(error) => format!("error:{}", error.kind()),
    }
}

fn fast() -> WaitOptions {
    WaitOptions::default()
        .interval(Duration::from_millis(50), Duration::from_millis(200))
        .timeout(Duration::from_secs(10))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Starts a generation (a follow-up of `p1` when `follow_up`) and consumes it as
/// `mode` says, noting the database at every item the caller gets; the end result
/// (with the outcome, unless consumed item by item), bounded in time.
fn run(rig: &Rig, mode: Mode, follow_up: bool) -> laracopilot::Result<Option<Outcome>> {
    let prompt = "Build a task management app";
    let (log, observer) = (Arc::clone(&rig.log), rig.db.observer());
    let on_event = {
        let (log, observer) = (Arc::clone(&log), observer.clone());
        move |event: &Event| note(&log, &observer, event.type_name())
    };
    let result = match mode {
        Mode::Next | Mode::Finish | Mode::Recover => runtime().block_on(async {
            common::bounded(async {
                let generation = match follow_up {
                    false => rig.client.generate(prompt).await?,
                    true => rig.client.follow_up("p1", "Add a dark mode").await?,
                };
                rig.note("handed");
                let rows = rig.db.rows();
                assert_eq!(
                    generation.progress().journal_id().map(|id| id.as_str()),
                    rows.last().map(|row| row.local_id.as_str()),
                    "the generation names its entry"
                );
                match mode {
                    Mode::Next => {
                        let mut generation = generation;
                        let mut last = None;
                        let mut items = 0;
                        while let Some(item) = generation.next().await {
                            rig.note(seen(&item));
                            items += 1;
                            assert!(items < 10_000, "runaway stream");
                            last = Some(item);
                        }
                        match last {
                            Some(Err(error)) => Err(error),
                            _ => Ok(None),
                        }
                    }
                    Mode::Finish => generation.finish_with(on_event).await.map(Some),
                    _ => rig
                        .client
                        .finish_or_recover_with(generation, fast(), on_event)
                        .await
                        .map(Some),
                }
            })
            .await
        }),
        #[cfg(feature = "blocking")]
        Mode::BlockingIter | Mode::BlockingFinish => (|| {
            let client = laracopilot::blocking::Client::from_async(rig.client.clone()).unwrap();
            let generation = match follow_up {
                false => client.generate(prompt).send()?,
                true => client.follow_up("p1", "Add a dark mode").send()?,
            };
            rig.note("handed");
            if mode == Mode::BlockingFinish {
                generation.finish_with(on_event).map(Some)
            } else {
                let mut last = None;
                for (count, item) in generation.enumerate() {
                    rig.note(seen(&item));
                    assert!(count < 10_000, "runaway stream");
                    last = Some(item);
                }
                match last {
                    Some(Err(error)) => Err(error),
                    _ => Ok(None),
                }
            }
        })(),
    };
    // `finish` hands its error back last, after every event.
    if let Err(error) = &result {
        if !item_by_item(mode) {
            rig.note(format!("error:{}", error.kind()));
        }
    }
    rig.note("end");
    result
}

fn item_by_item(mode: Mode) -> bool {
    #[cfg(feature = "blocking")]
    if mode == Mode::BlockingIter {
        return true;
    }
    mode == Mode::Next
}

/// The journal's order for one generation of `p1` (`follow_up`: of a follow-up),
/// which the caller ended on `terminal` (an event's type or `error:<kind>`): the
/// intent alone when the server had the POST, accepted when the stream came back,
/// the project id when `project_created` came, `last` (its final state) when the
/// terminal item came, and nothing written after.
fn assert_recorded_in_order(rig: &Rig, follow_up: bool, terminal: &str, last: &str) {
    let context = format!("{:?}: {:#?}", rig.db, rig.moments());
    let project = if follow_up { " p1" } else { "" };
    assert_eq!(
        rig.at("post"),
        [format!("sent{project}")],
        "the intent, before the POST: {context}"
    );
    assert_eq!(
        rig.at("handed"),
        [format!("accepted{project}")],
        "accepted, before the stream is handed back: {context}"
    );
    if !follow_up {
        assert_eq!(
            rig.at("project_created"),
            ["accepted p1"],
            "the project id, before project_created: {context}"
        );
    }
    assert_eq!(
        rig.at(terminal),
        [last],
        "the final state, before {terminal}: {context}"
    );
    if terminal != "end" {
        let names = rig.names();
        let terminal_at = names.iter().position(|n| n == terminal).unwrap();
        assert_eq!(
            names.get(terminal_at + 1..),
            Some(&["end".to_owned()][..]),
            "the terminal item is the last one the caller sees: {context}"
        );
    }
    assert_eq!(rig.at("end"), [last], "nothing written after: {context}");
    assert_eq!(rig.server.count("POST"), 1, "one POST: {context}");
}

/// Waits (bounded) until `client` lists `count` unfinished entries; those entries.
async fn wait_unfinished(client: &Client, count: usize) -> Vec<laracopilot::journal::Entry> {
    common::bounded(async {
        loop {
            let entries = client.unfinished().await.unwrap();
            if entries.len() >= count {
                return entries;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}

/// The error of a call that must fail.
fn failed<T: std::fmt::Debug>(result: laracopilot::Result<T>) -> Error {
    result.expect_err("the call fails")
}
