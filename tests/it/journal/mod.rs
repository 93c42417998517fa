//! The journal stays true, whichever way the caller consumes a generation and
//! whichever journal keeps it (`MemoryJournal`, `FileJournal`): `Started` is written
//! before the server sees the POST, `ProjectKnown` before the caller sees
//! `project_created`, `Settled` with the right outcome before the terminal item
//! reaches the caller, and nothing is settled after a drop halfway. Calls refused
//! before or at sending, `resume` in each situation, and journals that fail to write.
//!
//! One file per concern: the records of a generation (`records.rs`), calls refused
//! before or at sending (`refused.rs`), `resume` (`resume.rs`), journals that fail
//! to write (`failing_writes.rs`), and the journal from the command line, with
//! the example programs (`cli.rs`).
//!
//! Every write is checked as it happens by a journal wrapper that logs it next to
//! the requests the offline LaraCopilot had received at that moment, in one log with
//! what the caller saw.

use crate::common;

mod accepted;
mod cli;
mod failing_writes;
mod records;
mod refused;
mod resume;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::journal::{file_lines, Checked, Log, Step};
use common::mock::{eventually, posts, PROMPT};
use laracopilot::journal::{FileJournal, Journal, Kind, MemoryJournal, Record};
use laracopilot::{Client, ClientBuilder, Error, Outcome, RetryPolicy, TimeoutKind, WaitOptions};
use laracopilot_mock::{Fault, MockServer, ProjectStatus, Reply};

/// Where a test keeps its journal.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Store {
    Memory,
    File,
}

const STORES: [Store; 2] = [Store::Memory, Store::File];

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

/// One test's server, journal, log and client.
struct Rig {
    server: Arc<MockServer>,
    log: Log,
    client: Client,
    memory: Option<Arc<MemoryJournal>>,
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Rig {
    /// A client of `server` (adjusted by `adjust`) journaling into `store` through a
    /// [`Checked`] wrapper; `refuse` picks the writes that fail.
    fn new(
        server: MockServer,
        store: Store,
        adjust: impl FnOnce(ClientBuilder) -> ClientBuilder,
        refuse: Option<fn(&Record) -> bool>,
    ) -> Rig {
        let server = Arc::new(server);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("laracopilot.journal");
        let log = Log::default();
        let builder = adjust(server.client_builder().retry_policy(RetryPolicy::none()));
        let (builder, memory) = match store {
            Store::Memory => {
                let memory = Arc::new(MemoryJournal::new());
                let checked =
                    Checked::new(Arc::clone(&memory), Some(Arc::clone(&server)), log.clone());
                (with_refusal(builder, checked, refuse), Some(memory))
            }
            Store::File => {
                let file = FileJournal::open(&path).unwrap();
                let checked = Checked::new(file, Some(Arc::clone(&server)), log.clone());
                (with_refusal(builder, checked, refuse), None)
            }
        };
        Rig {
            server,
            log,
            client: builder.build().unwrap(),
            memory,
            path,
            _dir: dir,
        }
    }

    fn plain(store: Store) -> Rig {
        Rig::new(MockServer::start(), store, |b| b, None)
    }

    /// What the journal holds now, read back as a restarted program would: the
    /// memory journal's unfinished entries, or the file opened again (after checking
    /// that every line of it parses).
    async fn unfinished(&self) -> Vec<laracopilot::journal::Entry> {
        match &self.memory {
            Some(memory) => memory.unfinished().await.unwrap(),
            None => {
                file_lines(&self.path, false);
                let reopened = FileJournal::open(&self.path).unwrap();
                assert_eq!(reopened.torn_lines(), 0);
                reopened.unfinished().await.unwrap()
            }
        }
    }

    /// A new client of the same server over the same journal, as after a restart:
    /// the file opened again, or the same memory journal.
    fn restarted(&self) -> Client {
        let builder = self
            .server
            .client_builder()
            .retry_policy(RetryPolicy::none());
        let checked =
            |journal| Checked::new(journal, Some(Arc::clone(&self.server)), self.log.clone());
        match &self.memory {
            Some(memory) => builder.journal(checked(JournalKind::Memory(Arc::clone(memory)))),
            None => builder.journal(checked(JournalKind::File(
                FileJournal::open(&self.path).unwrap(),
            ))),
        }
        .build()
        .unwrap()
    }
}

/// Either journal, for [`Rig::restarted`].
enum JournalKind {
    Memory(Arc<MemoryJournal>),
    File(FileJournal),
}

impl Journal for JournalKind {
    fn write(&self, record: Record) -> laracopilot::journal::JournalFuture<'_, ()> {
        match self {
            JournalKind::Memory(j) => j.write(record),
            JournalKind::File(j) => j.write(record),
        }
    }

    fn unfinished(
        &self,
    ) -> laracopilot::journal::JournalFuture<'_, Vec<laracopilot::journal::Entry>> {
        match self {
            JournalKind::Memory(j) => j.unfinished(),
            JournalKind::File(j) => j.unfinished(),
        }
    }
}

fn with_refusal<J: Journal>(
    builder: ClientBuilder,
    checked: Checked<J>,
    refuse: Option<fn(&Record) -> bool>,
) -> ClientBuilder {
    match refuse {
        Some(refuse) => builder.journal(checked.refusing(refuse)),
        None => builder.journal(checked),
    }
}

fn fast() -> WaitOptions {
    WaitOptions::default()
        .interval(Duration::from_millis(100), Duration::from_millis(200))
        .timeout(Duration::from_secs(10))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Generates from `prompt` and consumes the stream as `mode` says, logging every
/// item the caller gets; the end result (with the outcome, unless consumed item by
/// item), bounded in time.
fn run(rig: &Rig, mode: Mode, prompt: &str) -> laracopilot::Result<Option<Outcome>> {
    let log = rig.log.clone();
    let on_event = move |event: &laracopilot::Event| log.push(Step::Saw(event.type_name().into()));
    let result = match mode {
        Mode::Next | Mode::Finish | Mode::Recover => runtime().block_on(async {
            tokio::time::timeout(Duration::from_secs(20), async {
                let generation = rig.client.generate(prompt).await?;
                match mode {
                    Mode::Next => {
                        let mut generation = generation;
                        let journal_id = generation.journal_id().cloned();
                        assert!(journal_id.is_some(), "a journaled generation has an id");
                        let mut last = None;
                        let mut items = 0;
                        while let Some(item) = generation.next().await {
                            rig.log.saw(&item);
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
            .expect("the generation ends in time")
        }),
        #[cfg(feature = "blocking")]
        Mode::BlockingIter | Mode::BlockingFinish => {
            let client = laracopilot::blocking::Client::from_async(rig.client.clone()).unwrap();
            let generation = client.generate(prompt)?;
            if mode == Mode::BlockingFinish {
                generation.finish_with(on_event).map(Some)
            } else {
                let mut last = None;
                for (count, item) in generation.enumerate() {
                    rig.log.saw(&item);
                    assert!(count < 10_000, "runaway stream");
                    last = Some(item);
                }
                match last {
                    Some(Err(error)) => Err(error),
                    _ => Ok(None),
                }
            }
        }
    };
    // `finish` hands back its error last, after every event.
    if let Err(error) = &result {
        if !matches!(mode, Mode::Next) && !is_iter(mode) {
            rig.log.push(Step::Saw(format!("error:{}", error.kind())));
        }
    }
    result
}

fn is_iter(mode: Mode) -> bool {
    #[cfg(feature = "blocking")]
    if mode == Mode::BlockingIter {
        return true;
    }
    let _ = mode;
    false
}

/// The three facts of a generation that ended with `terminal` (what the caller saw
/// last), with the records in `want`.
fn assert_true_records(rig: &Rig, want: &[&str], terminal: &str) {
    let written = rig.log.written();
    assert_eq!(written, want, "records");
    let (started, posts_then) = rig.log.write_of("started").expect("a started record");
    assert_eq!(posts_then, 0, "Started is written before the POST is sent");
    assert_eq!(posts(&rig.server), 1, "one POST");
    if let Some(project) = want.iter().find(|r| r.starts_with("project_known")) {
        let (known, _) = rig.log.write_of(project).unwrap();
        let created = rig
            .log
            .seen_at("project_created")
            .expect("project_created seen");
        assert!(started < known && known < created, "{:#?}", rig.log.steps());
    }
    let (settled, _) = rig.log.write_of("settled").expect("a settled record");
    let end = rig
        .log
        .seen_at(terminal)
        .unwrap_or_else(|| panic!("{terminal} not seen: {:#?}", rig.log.steps()));
    assert!(
        settled < end,
        "Settled before {terminal}: {:#?}",
        rig.log.steps()
    );
    assert_eq!(
        rig.log
            .steps()
            .iter()
            .skip(end + 1)
            .filter(|s| matches!(s, Step::Saw(_)))
            .count(),
        0,
        "the terminal item is the last one the caller sees"
    );
}
