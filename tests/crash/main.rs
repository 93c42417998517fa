//! Proof by crashing: a child process (this test binary again, in a "child" mode)
//! runs generations with a `FileJournal` against an offline LaraCopilot that the
//! parent controls; the parent holds each stream at a chosen point with the mock's
//! faults (or the child's journal holds a write), kills the child with SIGKILL, and
//! settles what it left, in the parent or in a new child process, with a new client
//! over the same file.
//!
//! Kill points: after the intent is recorded and before the POST; after the POST and
//! before the first byte; after `project_created`; mid-stream; after the terminal
//! event and before the journal's last write; in the middle of that write (a torn
//! line); and at arbitrary moments while several generations run at once. Every
//! generation must be accounted for (finished, resumed to its outcome, or reported
//! `OutcomeUnknown`), none sent twice (POSTs counted per prompt at the mock; resume
//! never POSTs), and the journal never corrupt (every line parses; a torn last line
//! is dropped and reported, and any cut of the last line opens).
//!
//! `child.rs` is what runs in the child process; `parent.rs` starts, holds, kills
//! and reaps children and reads what they left; this file has the plans and the
//! test that adds it all up.
#![cfg(unix)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code: a failed unwrap or index is a failed test"
)]

#[path = "../it/common/mod.rs"]
mod common;

mod child;
mod parent;

use child::*;
use parent::*;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use common::journal::file_lines;
use common::mock::{posts, posts_with_prompt};
use laracopilot::journal::{FileJournal, Journal, JournalFuture, LocalId, Record};
use laracopilot::{Client, Token, WaitOptions};
use laracopilot_mock::{Fault, MockServer, ProjectStatus};
use serde_json::{json, Value};

/// Selects the child entry point, and its mode (`run`, `chaos`, `resume`).
const CHILD: &str = "LARACOPILOT_CRASH_CHILD";
const BASE: &str = "LARACOPILOT_CRASH_BASE";
const JOURNAL: &str = "LARACOPILOT_CRASH_JOURNAL";
const PLAN: &str = "LARACOPILOT_CRASH_PLAN";
const RUN: &str = "LARACOPILOT_CRASH_RUN";
const TOKEN: &str = "lcp_mock_crash_test_token_0001";

/// The event before which a mid-stream hold stops.
const MID: usize = 12;
/// The longest any single wait of the parent takes.
const PATIENCE: Duration = Duration::from_secs(20);

/// One generation of a child's plan, and where it is when the child is killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Step {
    /// Generated to its end.
    Finish,
    /// A follow-up on the first finished project, to its end.
    FollowUp,
    /// Killed after `Started` was written, before the POST.
    BeforePost,
    /// Killed after the POST, before the first byte of the answer.
    BeforeFirstByte,
    /// Killed after `project_created` (the stream stalls after it).
    AfterProject,
    /// Killed in the middle of the stream.
    MidStream,
    /// Killed after `stream_end`, before `Settled` is written.
    BeforeSettled,
    /// Killed in the middle of writing `Settled`: a torn last line.
    TornWrite,
}

const STEPS: [Step; 8] = [
    Step::Finish,
    Step::FollowUp,
    Step::BeforePost,
    Step::BeforeFirstByte,
    Step::AfterProject,
    Step::MidStream,
    Step::BeforeSettled,
    Step::TornWrite,
];

impl Step {
    fn name(self) -> &'static str {
        match self {
            Step::Finish => "finish",
            Step::FollowUp => "follow_up",
            Step::BeforePost => "before_post",
            Step::BeforeFirstByte => "before_first_byte",
            Step::AfterProject => "after_project_created",
            Step::MidStream => "mid_stream",
            Step::BeforeSettled => "before_settled_write",
            Step::TornWrite => "during_settled_write",
        }
    }

    fn parse(name: &str) -> Step {
        STEPS
            .into_iter()
            .find(|s| s.name() == name)
            .unwrap_or_else(|| panic!("unknown step {name}"))
    }

    /// The faults of this step's stream, when it sends a request.
    fn faults(self) -> Option<Vec<Fault>> {
        match self {
            Step::BeforePost => None,
            Step::BeforeFirstByte => Some(vec![Fault::DelayHeaders(Duration::from_secs(30))]),
            Step::AfterProject => Some(vec![Fault::StallBefore(1)]),
            Step::MidStream => Some(vec![Fault::DelayBefore(MID, Duration::from_secs(30))]),
            _ => Some(Vec::new()),
        }
    }
}

/// The prompt of step `i` of run `run`: unique, so that the mock's POSTs can be
/// counted per generation.
fn prompt(run: usize, i: usize, step: Step) -> String {
    match step {
        Step::FollowUp => format!("Add a dark mode, run {run} step {i}"),
        _ => format!("Build a crash test app, run {run} step {i}"),
    }
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"))
}

/// What the runs add up to.
#[derive(Debug, Default)]
struct Tally {
    kills: usize,
    /// Kill point -> generations held there when the child was killed.
    kill_points: BTreeMap<&'static str, usize>,
    generations: usize,
    finished: usize,
    resumed_succeeded: usize,
    resumed_failed: usize,
    /// `OutcomeUnknown`, with and without a POST at the mock.
    unknown_sent: usize,
    unknown_unsent: usize,
    /// Killed before its intent was written: no entry, no POST.
    never_started: usize,
    double_sends: usize,
    torn_lines: usize,
    cuts_opened: usize,
    resumed_in_child: usize,
}

/// One child run: its plan (or chaos with `count` generations, killed `kill_after`
/// after it started).
enum Scenario {
    Plan(&'static [Step]),
    Chaos { count: usize, kill_after: Duration },
}

#[test]
fn every_generation_is_accounted_for_across_kills_and_none_is_sent_twice() {
    use Step::*;
    let scenarios = [
        Scenario::Plan(&[Finish, Finish, BeforePost]),
        Scenario::Plan(&[Finish, FollowUp, BeforeFirstByte]),
        Scenario::Plan(&[Finish, AfterProject]),
        Scenario::Plan(&[AfterProject, Finish, MidStream]),
        Scenario::Plan(&[Finish, MidStream, BeforeSettled]),
        Scenario::Plan(&[BeforeSettled, Finish, BeforePost, TornWrite]),
        Scenario::Plan(&[Finish, AfterProject, BeforePost, MidStream, BeforeFirstByte]),
        Scenario::Plan(&[Finish, FollowUp, BeforeSettled, AfterProject, TornWrite]),
    ];
    // And at arbitrary moments while four generations run at once.
    let chaos = [10, 40, 70, 100, 130, 160, 200, 260].map(|ms| Scenario::Chaos {
        count: 4,
        kill_after: Duration::from_millis(ms),
    });
    let scenarios: Vec<Scenario> = scenarios.into_iter().chain(chaos).collect();
    let started = Instant::now();
    let mut tally = Tally::default();
    for (run, scenario) in scenarios.iter().enumerate() {
        crash_and_resume(run, scenario, &mut tally);
    }
    let accounted = tally.finished
        + tally.resumed_succeeded
        + tally.resumed_failed
        + tally.unknown_sent
        + tally.unknown_unsent
        + tally.never_started;
    let chaos = scenarios
        .iter()
        .filter(|s| matches!(s, Scenario::Chaos { .. }))
        .count();
    eprintln!(
        "crash summary: {} kills ({} at the {} chosen kill points {:?}, {chaos} at arbitrary \
         moments); {accounted}/{} generations accounted for: {} finished, {} resumed to \
         success, {} resumed to failure, {} outcome unknown after a POST, {} outcome unknown \
         never sent, {} never started; double sends: {}; torn lines dropped and reported: {}; \
         cut journals opened: {}; resumed in a new process: {} runs; {:.1?}",
        tally.kills,
        tally.kills - chaos,
        tally.kill_points.len(),
        tally.kill_points,
        tally.generations,
        tally.finished,
        tally.resumed_succeeded,
        tally.resumed_failed,
        tally.unknown_sent,
        tally.unknown_unsent,
        tally.never_started,
        tally.double_sends,
        tally.torn_lines,
        tally.cuts_opened,
        tally.resumed_in_child,
        started.elapsed(),
    );
    assert_eq!(accounted, tally.generations, "{tally:#?}");
    assert_eq!(tally.double_sends, 0);
    // Every kill point of the plans was tried.
    assert_eq!(tally.kill_points.len(), 6, "{:?}", tally.kill_points);
}

/// Runs one scenario in a child, kills it, checks the journal, resumes, and adds up
/// what became of each generation.
fn crash_and_resume(run: usize, scenario: &Scenario, tally: &mut Tally) {
    let pacing = match scenario {
        Scenario::Plan(_) => Duration::ZERO,
        Scenario::Chaos { .. } => Duration::from_millis(4),
    };
    let server = MockServer::builder()
        .token(TOKEN)
        .pacing(pacing)
        .start()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.jsonl");

    // Run, hold, kill.
    let prompts: Vec<(String, Option<Step>)> = match scenario {
        Scenario::Plan(plan) => {
            for step in plan.iter() {
                if let Some(faults) = step.faults() {
                    server.faults_next(faults);
                }
            }
            let names: Vec<&str> = plan.iter().map(|s| s.name()).collect();
            let mut child = ChildProcess::spawn("run", run, &names.join(","), &server, &path);
            child.wait_for("MARK ready");
            for (i, step) in plan.iter().enumerate() {
                let text = prompt(run, i, *step);
                match step {
                    Step::BeforeFirstByte => eventually("the POST reached the mock", || {
                        posts_with_prompt(&server, &text) == 1
                    }),
                    // What the child saw is in the file: ProjectKnown was written first.
                    Step::AfterProject | Step::MidStream => {
                        let (lines, _) = file_lines(&path, true);
                        let (_, records) = entry_lines(&lines, &text).expect("a started line");
                        assert!(
                            records.iter().any(|r| r["record"] == "project_known"),
                            "{records:?}"
                        );
                    }
                    _ => {}
                }
                if *step != Step::Finish && *step != Step::FollowUp {
                    *tally.kill_points.entry(step.name()).or_default() += 1;
                }
            }
            child.kill();
            plan.iter()
                .enumerate()
                .map(|(i, s)| (prompt(run, i, *s), Some(*s)))
                .collect()
        }
        Scenario::Chaos { count, kill_after } => {
            let mut child = ChildProcess::spawn("chaos", run, &count.to_string(), &server, &path);
            child.wait_for("MARK start");
            std::thread::sleep(*kill_after);
            child.kill();
            (0..*count)
                .map(|i| (prompt(run, i, Step::Finish), None))
                .collect()
        }
    };
    tally.kills += 1;

    // The journal as the killed process left it: every complete line parses.
    let (lines, torn) = file_lines(&path, true);
    if let Scenario::Plan(plan) = scenario {
        let torn_expected = plan.contains(&Step::TornWrite);
        assert_eq!(torn.is_some(), torn_expected, "torn last line: {torn:?}");
    }
    // (A kill at an arbitrary moment may tear a line too; it is then reported.)
    let torn_expected = torn.is_some();
    tally.cuts_opened += every_cut_of_the_last_line_opens(&path, (run > 0).then_some(12));

    // A restarted program settles what is left: in a new process every other run.
    let posts_before = posts(&server);
    let (torn_lines, resumed) = if run % 2 == 1 {
        tally.resumed_in_child += 1;
        let child = ChildProcess::spawn("resume", run, "", &server, &path);
        let mut torn_lines = 0;
        let mut resumed = Vec::new();
        for line in child.output() {
            let Ok(value) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if let Some(n) = value.get("torn") {
                torn_lines = n.as_u64().unwrap() as usize;
            }
            if let Some(entry) = value.get("resumed") {
                resumed.push(serde_json::from_value::<Resumed>(entry.clone()).unwrap());
            }
        }
        (torn_lines, resumed)
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(resume_all(server.base_url(), &path))
    };
    assert_eq!(torn_lines, usize::from(torn_expected));
    tally.torn_lines += torn_lines;
    assert_eq!(posts(&server), posts_before, "resume never POSTs");

    // Each generation, accounted for.
    for (text, step) in &prompts {
        tally.generations += 1;
        let sent = posts_with_prompt(&server, text);
        if sent > 1 {
            tally.double_sends += 1;
        }
        let entry = entry_lines(&lines, text);
        let Some((id, records)) = entry else {
            // Killed before the intent was written: it was never sent.
            assert_eq!(sent, 0, "{text}: a POST without a journal entry");
            assert!(step.is_none(), "{text}: {step:?} must have an entry");
            tally.never_started += 1;
            continue;
        };
        let settled: Vec<&&Value> = records
            .iter()
            .filter(|r| r["record"] == "settled")
            .collect();
        if let Some(record) = settled.first() {
            // Finished before the kill.
            assert_eq!(record["outcome"], "succeeded", "{text}: {record}");
            assert_eq!(sent, 1, "{text}");
            let project = record["project_id"].as_str().unwrap();
            assert_eq!(
                server.project(project).unwrap().status,
                ProjectStatus::Ready
            );
            assert!(
                matches!(step, None | Some(Step::Finish | Step::FollowUp)),
                "{text}: {step:?}"
            );
            assert!(
                resumed.iter().all(|r| r.local_id != id),
                "{text}: settled, yet unfinished"
            );
            tally.finished += 1;
            continue;
        }
        let resumed = resumed
            .iter()
            .find(|r| r.local_id == id)
            .unwrap_or_else(|| panic!("{text}: unfinished but not listed"));
        assert_eq!(&resumed.prompt, text);
        let status = resumed
            .project_id
            .as_deref()
            .and_then(|p| server.project(p))
            .map(|p| p.status);
        match resumed.result.as_str() {
            ok if ok.starts_with("ok https://") => {
                assert_eq!(status, Some(ProjectStatus::Ready), "{text}");
                tally.resumed_succeeded += 1;
            }
            "error generation_failed" => {
                assert_eq!(status, Some(ProjectStatus::Failed), "{text}");
                tally.resumed_failed += 1;
            }
            "error outcome_unknown" => {
                assert_eq!(resumed.project_id, None, "{text}");
                if sent == 0 {
                    tally.unknown_unsent += 1;
                } else {
                    tally.unknown_sent += 1;
                }
            }
            other => panic!("{text}: resumed as {other}"),
        }
        // Where each kill point must end up.
        match step {
            Some(Step::BeforePost) => {
                assert_eq!(
                    (resumed.result.as_str(), sent),
                    ("error outcome_unknown", 0)
                )
            }
            Some(Step::BeforeFirstByte) => {
                assert_eq!(
                    (resumed.result.as_str(), sent),
                    ("error outcome_unknown", 1)
                )
            }
            Some(Step::AfterProject | Step::MidStream) => {
                assert!(resumed.project_id.is_some(), "{text}");
                assert_eq!(sent, 1);
            }
            Some(Step::BeforeSettled | Step::TornWrite) => {
                assert!(
                    resumed.result.starts_with("ok https://"),
                    "{text}: {}",
                    resumed.result
                );
            }
            Some(step @ (Step::Finish | Step::FollowUp)) => panic!("{text}: {step:?} unfinished"),
            None => {}
        }
    }

    // Resumed, the journal holds nothing unfinished, and every line parses.
    let (_, torn) = file_lines(&path, false);
    assert!(torn.is_none());
    let reopened = FileJournal::open(&path).unwrap();
    assert_eq!(reopened.torn_lines(), 0);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert!(rt.block_on(reopened.unfinished()).unwrap().is_empty());
}
