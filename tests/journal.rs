//! The journal stays true, whichever way the caller consumes a generation and
//! whichever journal keeps it (`MemoryJournal`, `FileJournal`): `Started` is written
//! before the server sees the POST, `ProjectKnown` before the caller sees
//! `project_created`, `Settled` with the right outcome before the terminal item
//! reaches the caller, and nothing is settled after a drop halfway. Calls refused
//! before or at sending, `resume` in each situation, and journals that fail to write.
//!
//! Every write is checked as it happens by a journal wrapper that logs it next to
//! the requests the offline LaraCopilot had received at that moment, in one log with
//! what the caller saw.
#![cfg(feature = "mock")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code: a failed unwrap or index is a failed test"
)]

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::journal::{file_lines, posts, Checked, Log, Step};
use common::mock::{eventually, PROMPT};
use laracopilot::journal::{FileJournal, Journal, Kind, MemoryJournal, Record};
use laracopilot::mock::{Fault, MockServer, ProjectStatus, Reply};
use laracopilot::{Client, ClientBuilder, Error, Outcome, RetryPolicy, TimeoutKind, WaitOptions};

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

#[test]
fn a_successful_generation_is_recorded_truly_whichever_way_it_is_consumed() {
    for &store in &STORES {
        for &mode in MODES {
            let rig = Rig::plain(store);
            let outcome =
                run(&rig, mode, PROMPT).unwrap_or_else(|e| panic!("{store:?} {mode:?}: {e:?}"));
            if let Some(outcome) = outcome {
                assert_eq!(
                    outcome.app_url.as_deref(),
                    Some("https://p1.laracopilot.com")
                );
            }
            assert_true_records(
                &rig,
                &[
                    "started generate",
                    "project_known p1",
                    "settled p1 succeeded https://p1.laracopilot.com",
                ],
                "stream_end",
            );
            let open = runtime().block_on(rig.unfinished());
            assert!(open.is_empty(), "{store:?} {mode:?}: {open:?}");
        }
    }
}

#[test]
fn a_stream_that_fails_is_settled_with_its_error_before_the_caller_sees_it() {
    // (fault, server credits, the settled record, what the caller sees last)
    let cases: [(Option<Fault>, u64, &str, &str); 3] = [
        (
            None,
            1,
            "settled p1 failed credits_exhausted true",
            "error:credits_exhausted",
        ),
        (
            Some(Fault::DropAfter(5)),
            u64::MAX,
            "settled p1 failed incomplete true",
            "error:incomplete",
        ),
        (
            Some(Fault::DropMidEvent(5)),
            u64::MAX,
            "settled p1 failed transport true",
            "error:transport",
        ),
    ];
    for &store in &STORES {
        for &mode in MODES {
            for (fault, credits, settled, terminal) in &cases {
                let server = MockServer::builder().credits(*credits).start().unwrap();
                if let Some(fault) = fault {
                    server.fault_next(fault.clone());
                }
                let rig = Rig::new(server, store, |b| b, None);
                let error = run(&rig, mode, PROMPT).unwrap_err();
                let mut want = vec!["started generate", "project_known p1", settled];
                let mut terminal = *terminal;
                if mode == Mode::Recover && *credits == u64::MAX {
                    // The stream broke: recovery polled the project, which the
                    // server marked failed, and that is the last word.
                    want.push("settled p1 failed generation_failed true");
                    terminal = "error:generation_failed";
                    assert!(matches!(error, Error::GenerationFailed { .. }), "{error:?}");
                } else {
                    assert_eq!(
                        format!("error:{}", error.kind()),
                        terminal,
                        "{store:?} {mode:?}"
                    );
                }
                assert_true_records(&rig, &want, terminal);
                assert!(runtime().block_on(rig.unfinished()).is_empty());
            }
        }
    }
}

#[test]
fn a_stream_recovered_to_success_is_settled_as_succeeded() {
    // A server that keeps generating after the stream broke: the stream ends early,
    // the status says ready.
    let rt = runtime();
    for &store in &STORES {
        let wiremock = rt.block_on(common::server());
        let created = r#"{"type":"project_created","project_id":"p1","app_url":"https://p1.laracopilot.com"}"#;
        let file = r#"{"type":"file_created","path":"app/Models/Task.php"}"#;
        rt.block_on(common::mount(
            &wiremock,
            "POST",
            "/agent/generate",
            common::sse(common::sse_body(&[created, file])),
        ));
        rt.block_on(common::mount(
            &wiremock,
            "GET",
            "/agent/project/p1",
            common::project_json("p1"),
        ));
        let log = Log::default();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let memory = Arc::new(MemoryJournal::new());
        let builder = common::builder(&wiremock);
        let builder = match store {
            Store::Memory => builder.journal(Checked::new(Arc::clone(&memory), None, log.clone())),
            Store::File => builder.journal(Checked::new(
                FileJournal::open(&path).unwrap(),
                None,
                log.clone(),
            )),
        };
        let client = builder.build().unwrap();
        let outcome = rt.block_on(async {
            let generation = client.generate(PROMPT).await.unwrap();
            client.finish_or_recover(generation, fast()).await.unwrap()
        });
        assert!(outcome.recovered.is_some());
        assert_eq!(
            log.written(),
            [
                "started generate",
                "project_known p1",
                "settled p1 failed incomplete true",
                "settled p1 succeeded https://p1.laracopilot.com",
            ]
        );
        if store == Store::File {
            drop(client);
            let (lines, _) = file_lines(&path, false);
            assert_eq!(lines.len(), 4);
            assert_eq!(lines[3]["outcome"], "succeeded");
            let reopened = FileJournal::open(&path).unwrap();
            assert!(rt.block_on(reopened.unfinished()).unwrap().is_empty());
        }
    }
}

#[test]
fn a_follow_up_is_started_with_its_project_and_needs_no_project_known() {
    for &store in &STORES {
        let rig = Rig::plain(store);
        let id = runtime().block_on(async {
            // The project, made without the journal.
            rig.server
                .client()
                .generate(PROMPT)
                .await
                .unwrap()
                .finish()
                .await
                .unwrap()
                .project_id
                .unwrap()
        });
        let before = posts(&rig.server);
        let outcome = runtime().block_on(async {
            let generation = rig
                .client
                .follow_up(&id, "Add a dark mode to every page")
                .await
                .unwrap();
            let log = rig.log.clone();
            generation
                .finish_with(move |e| log.push(Step::Saw(e.type_name().into())))
                .await
                .unwrap()
        });
        assert_eq!(outcome.project_id, Some(id));
        assert_eq!(
            rig.log.written(),
            [
                "started follow_up p1",
                "settled p1 succeeded https://p1.laracopilot.com"
            ]
        );
        assert_eq!(rig.log.write_of("started").unwrap().1, before);
        assert!(rig.log.write_of("settled").unwrap().0 < rig.log.seen_at("stream_end").unwrap());
    }
}

#[test]
fn a_generation_dropped_halfway_stays_unfinished_with_its_project() {
    for &store in &STORES {
        let rig = Rig::plain(store);
        let entry_id = runtime().block_on(async {
            let mut generation = rig.client.generate(PROMPT).await.unwrap();
            for _ in 0..3 {
                let item = generation.next().await.unwrap();
                rig.log.saw(&item);
            }
            let id = generation.journal_id().cloned().unwrap();
            drop(generation);
            // Nothing is written once it is gone.
            tokio::time::sleep(Duration::from_millis(100)).await;
            id
        });
        assert_eq!(rig.log.written(), ["started generate", "project_known p1"]);
        let open = runtime().block_on(rig.unfinished());
        assert_eq!(open.len(), 1, "{open:?}");
        let entry = &open[0];
        assert_eq!(entry.local_id, entry_id);
        assert_eq!(entry.kind, Kind::Generate);
        assert_eq!(entry.project_id.as_ref().map(|p| p.as_str()), Some("p1"));
        assert_eq!(entry.prompt, PROMPT);
        assert!(
            entry.token.starts_with("****") && entry.token.len() == 8,
            "{}",
            entry.token
        );
        let age = SystemTime::now().duration_since(entry.started_at).unwrap();
        assert!(age < Duration::from_secs(60), "{age:?}");
    }
}

#[cfg(feature = "blocking")]
#[test]
fn a_blocking_generation_dropped_halfway_stays_unfinished_too() {
    for &store in &STORES {
        let rig = Rig::plain(store);
        let client = laracopilot::blocking::Client::from_async(rig.client.clone()).unwrap();
        let mut generation = client.generate(PROMPT).unwrap();
        for item in generation.by_ref().take(4) {
            rig.log.saw(&item);
        }
        drop(generation);
        assert_eq!(rig.log.written(), ["started generate", "project_known p1"]);
        let open = runtime().block_on(rig.unfinished());
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].project_id.as_ref().map(|p| p.as_str()), Some("p1"));
    }
}

// ---- calls refused before or at sending ----

/// A call refused by the server is settled as failed, without work started: the
/// journal's word for "sent, and answered no".
#[test]
fn a_call_the_server_refuses_is_settled_as_failed_without_work_started() {
    for &store in &STORES {
        // 422: the prompt is too short.
        let rig = Rig::plain(store);
        let error = runtime()
            .block_on(rig.client.generate("short"))
            .unwrap_err();
        assert!(matches!(error, Error::Validation { .. }), "{error:?}");
        assert_eq!(
            rig.log.written(),
            ["started generate", "settled - failed validation false"]
        );
        assert_eq!(rig.log.write_of("started").unwrap().1, 0);
        assert_eq!(
            rig.log.write_of("settled").unwrap().1,
            1,
            "settled after the POST"
        );
        assert!(runtime().block_on(rig.unfinished()).is_empty());

        // 401: a revoked token.
        let server = MockServer::builder()
            .token("lcp_mock_revoked_journal_token")
            .start()
            .unwrap();
        server.revoke("lcp_mock_revoked_journal_token");
        let rig = Rig::new(server, store, |b| b, None);
        let error = runtime().block_on(rig.client.generate(PROMPT)).unwrap_err();
        assert!(matches!(error, Error::Unauthorized { .. }), "{error:?}");
        assert_eq!(
            rig.log.written(),
            ["started generate", "settled - failed unauthorized false"]
        );

        // 429, not retried.
        let rig = Rig::plain(store);
        rig.server.reply_next(1, Reply::rate_limited(Some(30)));
        let error = runtime().block_on(rig.client.generate(PROMPT)).unwrap_err();
        assert!(matches!(error, Error::RateLimited { .. }), "{error:?}");
        assert_eq!(
            rig.log.written(),
            ["started generate", "settled - failed rate_limited false"]
        );

        // 404: a follow-up on an unknown project.
        let rig = Rig::plain(store);
        let error = runtime()
            .block_on(rig.client.follow_up("p404", "Add a dark mode"))
            .unwrap_err();
        assert!(matches!(error, Error::NotFound { .. }), "{error:?}");
        assert_eq!(
            rig.log.written(),
            [
                "started follow_up p404",
                "settled p404 failed not_found false"
            ]
        );

        // No answer in time: sent, so it may have started work, and the caller is told.
        let rig = Rig::new(
            MockServer::start(),
            store,
            |b| b.idle_timeout(Some(Duration::from_millis(200))),
            None,
        );
        rig.server
            .fault_next(Fault::DelayHeaders(Duration::from_secs(2)));
        let error = runtime().block_on(rig.client.generate(PROMPT)).unwrap_err();
        assert!(error.may_have_started_work(), "{error:?}");
        assert_eq!(
            rig.log.written(),
            ["started generate", "settled - failed timeout true"]
        );
        assert!(runtime().block_on(rig.unfinished()).is_empty());
    }
}

#[test]
fn a_call_refused_before_sending_leaves_no_record() {
    for &store in &STORES {
        // The credits breaker: open after a credits_exhausted.
        let rig = Rig::new(
            MockServer::builder().credits(1).start().unwrap(),
            store,
            |b| b,
            None,
        );
        run(&rig, Mode::Finish, PROMPT).unwrap_err();
        let records = rig.log.written().len();
        let error = runtime().block_on(rig.client.generate(PROMPT)).unwrap_err();
        assert!(
            matches!(error, Error::CreditsExhausted { locally: true, .. }),
            "{error:?}"
        );
        assert_eq!(
            rig.log.written().len(),
            records,
            "no record for a call never sent"
        );

        // A bad project id.
        let rig = Rig::plain(store);
        let error = runtime()
            .block_on(rig.client.follow_up("../etc", "Add a dark mode"))
            .unwrap_err();
        assert!(matches!(error, Error::Config { .. }), "{error:?}");
        assert!(rig.log.written().is_empty());
        // No free slot before the deadline.
        let rig = Rig::new(
            MockServer::start(),
            store,
            |b| {
                b.max_concurrent_generations(1)
                    .stream_deadline(Some(Duration::from_millis(200)))
            },
            None,
        );
        let rt = runtime();
        let first = rt.block_on(rig.client.generate(PROMPT)).unwrap();
        let error = rt.block_on(rig.client.generate(PROMPT)).unwrap_err();
        assert!(
            matches!(
                error,
                Error::Timeout {
                    kind: TimeoutKind::Deadline,
                    ..
                }
            ),
            "{error:?}"
        );
        assert_eq!(
            rig.log.written(),
            ["started generate"],
            "only the first call"
        );
        drop(first);
    }
}

#[test]
fn a_journal_that_cannot_record_the_intent_stops_the_call_before_sending() {
    for &store in &STORES {
        let rig = Rig::new(
            MockServer::start(),
            store,
            |b| b.max_concurrent_generations(1),
            Some(|r| matches!(r, Record::Started(_))),
        );
        let rt = runtime();
        for _ in 0..3 {
            let error = rt.block_on(rig.client.generate(PROMPT)).unwrap_err();
            let Error::Journal { message, .. } = &error else {
                panic!("{error:?}");
            };
            assert!(message.contains("journal"), "{message}");
            assert!(!error.may_have_started_work());
        }
        assert!(rig.server.requests().is_empty(), "nothing was sent");
        // Its slot was given back each time: the cap of one did not block.
        let error = rt
            .block_on(rig.client.follow_up("p1", "Add a dark mode"))
            .unwrap_err();
        assert!(matches!(error, Error::Journal { .. }));
        assert!(rt.block_on(rig.unfinished()).is_empty());
    }
}

#[test]
fn a_journal_that_cannot_record_progress_does_not_break_the_stream() {
    for &store in &STORES {
        // ProjectKnown fails: the stream goes on, and its end is recorded.
        let rig = Rig::new(
            MockServer::start(),
            store,
            |b| b,
            Some(|r| matches!(r, Record::ProjectKnown { .. })),
        );
        run(&rig, Mode::Finish, PROMPT).unwrap();
        assert!(runtime().block_on(rig.unfinished()).is_empty());

        // Settled fails: the stream succeeds, and the entry stays unfinished with its
        // project, for resume to settle.
        let rig = Rig::new(
            MockServer::start(),
            store,
            |b| b,
            Some(|r| matches!(r, Record::Settled { .. })),
        );
        run(&rig, Mode::Finish, PROMPT).unwrap();
        let open = runtime().block_on(rig.unfinished());
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].project_id.as_ref().map(|p| p.as_str()), Some("p1"));
    }
}

// ---- resume ----

/// A rig whose journal lost the `Settled` of one successful generation of `p1` (the
/// process stopped right before writing it).
fn lost_settlement(store: Store) -> Rig {
    let rig = Rig::new(
        MockServer::start(),
        store,
        |b| b,
        Some(|r| matches!(r, Record::Settled { .. })),
    );
    run(&rig, Mode::Finish, PROMPT).unwrap();
    rig
}

#[test]
fn resume_settles_a_project_that_succeeded_without_sending_a_generate_call() {
    for &store in &STORES {
        let rig = lost_settlement(store);
        let rt = runtime();
        let client = rig.restarted();
        let open = rt.block_on(client.unfinished()).unwrap();
        assert_eq!(open.len(), 1);
        let before = posts(&rig.server);
        let outcome = rt.block_on(client.resume(&open[0], fast())).unwrap();
        assert_eq!(posts(&rig.server), before, "resume never POSTs");
        assert_eq!(outcome.project_id.as_ref().map(|p| p.as_str()), Some("p1"));
        assert_eq!(
            outcome.app_url.as_deref(),
            Some("https://p1.laracopilot.com")
        );
        assert_eq!(
            outcome.recovered.unwrap().project_status.as_deref(),
            Some("ready")
        );
        assert_eq!(
            rig.log.written().last().map(String::as_str),
            Some("settled p1 succeeded https://p1.laracopilot.com")
        );
        assert!(rt.block_on(client.unfinished()).unwrap().is_empty());
        drop(client);
        assert!(rt.block_on(rig.unfinished()).is_empty());
    }
}

#[test]
fn resume_reports_and_records_a_project_that_failed() {
    for &store in &STORES {
        let rig = Rig::plain(store);
        // Held after the first events, so that the rest is not already on its way
        // when the caller leaves.
        rig.server
            .fault_next(Fault::DelayBefore(2, Duration::from_millis(300)));
        let rt = runtime();
        rt.block_on(async {
            let mut generation = rig.client.generate(PROMPT).await.unwrap();
            generation.next().await.unwrap().unwrap();
        });
        // The server marks a stream its client left as failed.
        assert!(rt.block_on(eventually(|| {
            rig.server
                .project("p1")
                .is_some_and(|p| p.status == ProjectStatus::Failed)
        })));
        let client = rig.restarted();
        let open = rt.block_on(client.unfinished()).unwrap();
        let error = rt.block_on(client.resume(&open[0], fast())).unwrap_err();
        assert!(matches!(error, Error::GenerationFailed { .. }), "{error:?}");
        assert_eq!(
            rig.log.written().last().map(String::as_str),
            Some("settled p1 failed generation_failed true")
        );
        assert_eq!(posts(&rig.server), 1);
        assert!(rt.block_on(client.unfinished()).unwrap().is_empty());
    }
}

#[test]
fn resume_records_an_unknown_project_as_failed_after_it_may_have_started_work() {
    // A journal written against another server (or a project since deleted).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal");
    std::fs::write(
        &path,
        concat!(
            r#"{"v":1,"record":"started","local_id":"lcj-a","kind":"generate","project_id":null,"prompt":"Build a task management app","at":1764618266123,"token":"****9f8e"}"#,
            "\n",
            r#"{"v":1,"record":"project_known","local_id":"lcj-a","project_id":"elsewhere1","at":1764618268001}"#,
            "\n",
            r#"{"v":1,"record":"started","local_id":"lcj-b","kind":"follow_up","project_id":"elsewhere2","prompt":"Add a dark mode","at":1764618269000,"token":"****9f8e"}"#,
            "\n",
        ),
    )
    .unwrap();
    let server = MockServer::start();
    let client = server
        .client_builder()
        .journal(FileJournal::open(&path).unwrap())
        .build()
        .unwrap();
    let rt = runtime();
    let open = rt.block_on(client.unfinished()).unwrap();
    assert_eq!(open.len(), 2);
    assert_eq!(open[0].kind, Kind::Generate);
    assert_eq!(open[1].kind, Kind::FollowUp);
    for entry in &open {
        let error = rt.block_on(client.resume(entry, fast())).unwrap_err();
        assert!(matches!(error, Error::NotFound { .. }), "{error:?}");
    }
    assert!(server.requests().iter().all(|r| r.method == "GET"));
    drop(client);
    let (lines, _) = file_lines(&path, false);
    for line in &lines[3..] {
        assert_eq!(line["record"], "settled");
        assert_eq!(line["outcome"], "failed");
        assert_eq!(line["error"], "not_found");
        assert_eq!(line["may_have_started_work"], true, "{line}");
    }
    assert_eq!(lines.len(), 5);
}

#[test]
fn resume_that_times_out_leaves_the_entry_unfinished_to_try_again() {
    for &store in &STORES {
        let rig = lost_settlement(store);
        // Another generation on p1 runs (and hangs): the project is generating.
        let rt = runtime();
        rig.server.fault_next(Fault::StallBefore(1));
        let other = rt
            .block_on(
                rig.server
                    .client()
                    .follow_up("p1", "Add a dark mode to every page"),
            )
            .unwrap();
        assert_eq!(
            rig.server.project("p1").unwrap().status,
            ProjectStatus::Generating
        );
        let client = rig.restarted();
        let open = rt.block_on(client.unfinished()).unwrap();
        let records = rig.log.written().len();
        let error = rt
            .block_on(client.resume(&open[0], fast().timeout(Duration::from_millis(400))))
            .unwrap_err();
        assert!(
            matches!(
                error,
                Error::Timeout {
                    kind: TimeoutKind::Wait,
                    ..
                }
            ),
            "{error:?}"
        );
        assert_eq!(rig.log.written().len(), records, "nothing recorded");
        assert_eq!(rt.block_on(client.unfinished()).unwrap().len(), 1);
        // Once the other stream is gone the project settles, and so does the entry.
        drop(other);
        let error = rt.block_on(client.resume(&open[0], fast())).unwrap_err();
        assert!(matches!(error, Error::GenerationFailed { .. }), "{error:?}");
        assert!(rt.block_on(client.unfinished()).unwrap().is_empty());
    }
}

#[test]
fn resume_without_a_project_id_reports_the_outcome_unknown_and_sends_nothing() {
    for &store in &STORES {
        // The caller gave up while the server had the POST and had not answered.
        let rig = Rig::plain(store);
        rig.server
            .fault_next(Fault::DelayHeaders(Duration::from_secs(2)));
        let rt = runtime();
        let gave_up = rt.block_on(async {
            tokio::time::timeout(Duration::from_millis(300), rig.client.generate(PROMPT)).await
        });
        assert!(gave_up.is_err());
        assert_eq!(posts(&rig.server), 1);
        let client = rig.restarted();
        let open = rt.block_on(client.unfinished()).unwrap();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].project_id, None);
        let sent = rig.server.requests().len();
        let error = rt.block_on(client.resume(&open[0], fast())).unwrap_err();
        let Error::OutcomeUnknown { local_id, .. } = &error else {
            panic!("{error:?}");
        };
        assert_eq!(local_id, &open[0].local_id);
        assert!(error.may_have_started_work());
        assert_eq!(rig.server.requests().len(), sent, "nothing sent");
        assert_eq!(
            rig.log.written().last().map(String::as_str),
            Some("settled - unknown")
        );
        assert!(rt.block_on(client.unfinished()).unwrap().is_empty());
    }
}

#[test]
fn unfinished_and_resume_need_a_journal() {
    let server = MockServer::start();
    let client = server.client();
    let rt = runtime();
    assert!(matches!(
        rt.block_on(client.unfinished()),
        Err(Error::Config { .. })
    ));
    // An entry from another client's journal.
    let rig = lost_settlement(Store::Memory);
    let entry = rt.block_on(rig.client.unfinished()).unwrap().remove(0);
    assert!(matches!(
        rt.block_on(client.resume(&entry, fast())),
        Err(Error::Config { .. })
    ));
}

// ---- a write that fails halfway ----

/// Marks the child process of [`a_write_that_fails_halfway_leaves_no_partial_line`].
const SHORT_DISK: &str = "LARACOPILOT_JOURNAL_TEST_SHORT_DISK";

/// The child side: under a file size limit (`ulimit -f`, with SIGXFSZ ignored, so
/// that a write past it fails with EFBIG after writing what fits), generates until
/// the journal cannot record an intent; the file must end with whole lines.
#[test]
fn child_writes_a_journal_on_a_full_disk() {
    let Ok(path) = std::env::var(SHORT_DISK) else {
        return;
    };
    let server = MockServer::start();
    let client = server
        .client_builder()
        .journal(FileJournal::open(&path).unwrap())
        .build()
        .unwrap();
    let rt = runtime();
    let mut failed = None;
    for _ in 0..1_000 {
        match rt.block_on(client.generate(PROMPT)) {
            Ok(generation) => drop(rt.block_on(generation.finish())),
            Err(error) => {
                failed = Some(error);
                break;
            }
        }
    }
    let error = failed.expect("the disk filled up");
    assert!(matches!(error, Error::Journal { .. }), "{error:?}");
    let bytes = std::fs::read(&path).unwrap();
    assert!(
        bytes.len() <= 2048 && !bytes.is_empty(),
        "{} bytes",
        bytes.len()
    );
    assert_eq!(bytes.last(), Some(&b'\n'), "a partial line was left behind");
    let reopened = FileJournal::open(&path).unwrap();
    assert_eq!(reopened.torn_lines(), 0);
    println!("short disk: ok after {} bytes", bytes.len());
}

#[cfg(unix)]
#[test]
fn a_write_that_fails_halfway_leaves_no_partial_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal");
    let exe = std::env::current_exe().unwrap();
    // 4 blocks of 512 bytes.
    let script = "trap '' XFSZ; ulimit -f 4 && exec \"$0\" --exact child_writes_a_journal_on_a_full_disk --nocapture --test-threads=1";
    let Ok(child) = std::process::Command::new("/bin/sh")
        .args(["-c", script])
        .arg(&exe)
        .env(SHORT_DISK, &path)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    else {
        eprintln!("skipping: no /bin/sh");
        return;
    };
    let started = std::time::Instant::now();
    let mut child = child;
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the child did not finish");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let output = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{text}");
    assert!(text.contains("short disk: ok"), "{text}");
}
