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
#![cfg(all(feature = "mock", unix))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code: a failed unwrap or index is a failed test"
)]

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use common::journal::file_lines;
use laracopilot::journal::{FileJournal, Journal, JournalFuture, LocalId, Record};
use laracopilot::mock::{Fault, MockServer, ProjectStatus};
use laracopilot::{Client, Token, WaitOptions};
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

// ---- the child ----

/// The child's entry point: a no-op in the normal test run.
#[test]
fn crash_child() {
    let Ok(mode) = std::env::var(CHILD) else {
        return;
    };
    // Ends the line the test harness began ("test crash_child ... "): the parent
    // reads whole lines.
    println!();
    // Never outlive a parent that went away.
    std::thread::spawn(|| {
        std::thread::sleep(Duration::from_secs(60));
        std::process::exit(70);
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let base = env(BASE);
    let path = PathBuf::from(env(JOURNAL));
    let run: usize = env(RUN).parse().unwrap();
    match mode.as_str() {
        "run" => {
            let plan: Vec<Step> = env(PLAN).split(',').map(Step::parse).collect();
            runtime.block_on(child_run(run, &plan, &base, &path));
        }
        "chaos" => {
            let count: usize = env(PLAN).parse().unwrap();
            runtime.block_on(child_chaos(run, count, &base, &path));
        }
        "resume" => {
            let (torn, resumed) = runtime.block_on(resume_all(&base, &path));
            println!("{}", json!({ "torn": torn }));
            for entry in resumed {
                println!("{}", json!({ "resumed": entry }));
            }
        }
        other => panic!("unknown child mode {other}"),
    }
}

fn mark(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "MARK {text}");
    let _ = out.flush();
}

fn child_client(base: &str, journal: impl Journal) -> Client {
    Client::builder()
        .base_url(base)
        .token(Token::new(TOKEN).unwrap())
        .journal(journal)
        .build()
        .unwrap()
}

/// A `FileJournal` that stops for good at the writes of the steps that hold in the
/// journal: after `Started` (before the POST), instead of `Settled`, or in the
/// middle of writing `Settled` (half a line on disk, and every later write stuck, as
/// a process stopped inside its write would be).
struct Holding {
    inner: FileJournal,
    path: PathBuf,
    /// Prompt -> (step index, step) for the steps that hold here.
    holds: HashMap<String, (usize, Step)>,
    ids: Mutex<HashMap<LocalId, (usize, Step)>>,
    frozen: AtomicBool,
    held: tokio::sync::mpsc::UnboundedSender<usize>,
}

impl Holding {
    fn hold(&self, index: usize, step: Step) {
        mark(&format!("held {index} {}", step.name()));
        let _ = self.held.send(index);
    }
}

impl Journal for Holding {
    fn write(&self, record: Record) -> JournalFuture<'_, ()> {
        if self.frozen.load(Ordering::SeqCst) {
            return Box::pin(std::future::pending());
        }
        let hold = match &record {
            Record::Started(entry) => {
                let hold = self.holds.get(&entry.prompt).copied();
                if let Some(hold) = hold {
                    self.ids
                        .lock()
                        .unwrap()
                        .insert(entry.local_id.clone(), hold);
                }
                hold.filter(|(_, step)| *step == Step::BeforePost)
            }
            Record::Settled { local_id, .. } => self
                .ids
                .lock()
                .unwrap()
                .get(local_id)
                .copied()
                .filter(|(_, step)| matches!(step, Step::BeforeSettled | Step::TornWrite)),
            _ => None,
        };
        let Some((index, step)) = hold else {
            return self.inner.write(record);
        };
        match step {
            Step::BeforePost => {
                let written = self.inner.write(record);
                Box::pin(async move {
                    written.await?;
                    self.hold(index, step);
                    std::future::pending().await
                })
            }
            Step::TornWrite => {
                self.frozen.store(true, Ordering::SeqCst);
                let Record::Settled {
                    local_id,
                    project_id,
                    ..
                } = &record
                else {
                    unreachable!("only Settled holds here");
                };
                // The start of the line FileJournal would write.
                let line = format!(
                    "{{\"v\":1,\"record\":\"settled\",\"local_id\":\"{local_id}\",\"project_id\":\"{}\",\"outcome\":\"succ",
                    project_id.as_ref().map_or("", |p| p.as_str())
                );
                let mut file = std::fs::OpenOptions::new()
                    .append(true)
                    .open(&self.path)
                    .unwrap();
                file.write_all(line.as_bytes()).unwrap();
                file.sync_all().unwrap();
                self.hold(index, step);
                Box::pin(std::future::pending())
            }
            _ => {
                self.hold(index, step);
                Box::pin(std::future::pending())
            }
        }
    }

    fn unfinished(&self) -> JournalFuture<'_, Vec<laracopilot::journal::Entry>> {
        self.inner.unfinished()
    }
}

/// Runs `plan` one step after the other (each held step stays where it is), says
/// `ready`, and waits to be killed.
async fn child_run(run: usize, plan: &[Step], base: &str, path: &Path) {
    let (held, mut holding) = tokio::sync::mpsc::unbounded_channel();
    let holds = plan
        .iter()
        .enumerate()
        .filter(|(_, s)| matches!(s, Step::BeforePost | Step::BeforeSettled | Step::TornWrite))
        .map(|(i, s)| (prompt(run, i, *s), (i, *s)))
        .collect();
    let journal = Holding {
        inner: FileJournal::open(path).unwrap(),
        path: path.to_owned(),
        holds,
        ids: Mutex::default(),
        frozen: AtomicBool::new(false),
        held,
    };
    let client = child_client(base, journal);
    let mut first_project = None;
    for (i, &step) in plan.iter().enumerate() {
        let text = prompt(run, i, step);
        match step {
            Step::Finish | Step::FollowUp => {
                let generation = match step {
                    Step::Finish => client.generate(text).await,
                    _ => {
                        let id = first_project.clone().expect("a finished project first");
                        client.follow_up(id, text).await
                    }
                };
                let outcome = generation.unwrap().finish().await.unwrap();
                first_project.get_or_insert(outcome.project_id.unwrap());
                mark(&format!("finished {i}"));
            }
            Step::BeforePost | Step::BeforeSettled | Step::TornWrite => {
                let client = client.clone();
                tokio::spawn(async move {
                    let _ = client.generate(text).await?.finish().await;
                    Ok::<(), laracopilot::Error>(())
                });
                assert_eq!(holding.recv().await, Some(i));
            }
            Step::BeforeFirstByte => {
                let client = client.clone();
                tokio::spawn(async move { client.generate(text).await.map(drop) });
                mark(&format!("sending {i}"));
            }
            Step::AfterProject | Step::MidStream => {
                let events = if step == Step::AfterProject { 1 } else { MID };
                let (ready, is_ready) = tokio::sync::oneshot::channel();
                let client = client.clone();
                tokio::spawn(async move {
                    let mut generation = client.generate(text).await.unwrap();
                    for _ in 0..events {
                        generation.next().await.unwrap().unwrap();
                    }
                    mark(&format!("held {i} {}", step.name()));
                    let _ = ready.send(());
                    // The server stays silent from here.
                    let _ = generation.next().await;
                });
                is_ready.await.unwrap();
            }
        }
    }
    mark("ready");
    std::future::pending::<()>().await;
}

/// Starts `count` generations a little apart, all running at once on a paced
/// server, and goes on until killed.
async fn child_chaos(run: usize, count: usize, base: &str, path: &Path) {
    let client = child_client(base, FileJournal::open(path).unwrap());
    mark("start");
    for i in 0..count {
        let client = client.clone();
        tokio::spawn(async move {
            let outcome = client
                .generate(prompt(run, i, Step::Finish))
                .await?
                .finish()
                .await?;
            mark(&format!("finished {i}"));
            Ok::<_, laracopilot::Error>(outcome)
        });
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    std::future::pending::<()>().await;
}

/// What a restarted program finds in the journal and how each entry settles.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Resumed {
    local_id: String,
    prompt: String,
    project_id: Option<String>,
    /// `ok <app_url>` or `error <kind>`.
    result: String,
}

/// Opens the journal at `path` with a new client of `base`, and resumes every
/// unfinished entry; the torn lines dropped, and the results.
async fn resume_all(base: &str, path: &Path) -> (usize, Vec<Resumed>) {
    let journal = FileJournal::open(path).unwrap();
    let torn = journal.torn_lines();
    let client = child_client(base, journal);
    let options = WaitOptions::default()
        .interval(Duration::from_millis(100), Duration::from_millis(200))
        .timeout(Duration::from_secs(10));
    let mut resumed = Vec::new();
    for entry in client.unfinished().await.unwrap() {
        let result = match client.resume(&entry, options.clone()).await {
            Ok(outcome) => format!("ok {}", outcome.app_url.unwrap_or_default()),
            Err(error) => format!("error {}", error.kind()),
        };
        resumed.push(Resumed {
            local_id: entry.local_id.to_string(),
            prompt: entry.prompt.clone(),
            project_id: entry.project_id.map(|p| p.to_string()),
            result,
        });
    }
    (torn, resumed)
}

// ---- the parent ----

/// A child process, its stdout as lines on a channel, its stderr kept; killed and
/// reaped when dropped.
struct ChildProcess {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    stderr: Arc<Mutex<String>>,
}

impl ChildProcess {
    fn spawn(mode: &str, run: usize, plan: &str, server: &MockServer, journal: &Path) -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD, mode)
            .env(BASE, server.base_url())
            .env(JOURNAL, journal)
            .env(PLAN, plan)
            .env(RUN, run.to_string())
            .env_remove(laracopilot::TOKEN_ENV)
            .env_remove(laracopilot::BASE_URL_ENV)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (send, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
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
            child,
            lines,
            seen: Vec::new(),
            stderr,
        }
    }

    /// Waits for a stdout line equal to `want`.
    fn wait_for(&mut self, want: &str) {
        let until = Instant::now() + PATIENCE;
        while !self.seen.iter().any(|l| l == want) {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => panic!(
                    "the child did not print {want:?}; stdout {:#?}; stderr:\n{}",
                    self.seen,
                    self.stderr.lock().unwrap()
                ),
            }
        }
    }

    /// Every stdout line until the child exits (bounded), for a child that ends.
    fn output(mut self) -> Vec<String> {
        let until = Instant::now() + PATIENCE;
        loop {
            match self
                .lines
                .recv_timeout(until.saturating_duration_since(Instant::now()))
            {
                Ok(line) => self.seen.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => panic!("the child did not end"),
            }
        }
        let status = reap(&mut self.child);
        assert!(
            status.success(),
            "the child failed: {:#?}\n{}",
            self.seen,
            self.stderr.lock().unwrap()
        );
        std::mem::take(&mut self.seen)
    }

    /// SIGKILL, then wait for it to be gone.
    fn kill(mut self) {
        self.child.kill().unwrap();
        let status = reap(&mut self.child);
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "killed by SIGKILL: {status:?}");
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
fn reap(child: &mut Child) -> std::process::ExitStatus {
    let until = Instant::now() + PATIENCE;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > until {
            let _ = child.kill();
            panic!("the child did not exit");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Polls `condition` every 10 ms for at most [`PATIENCE`].
fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let until = Instant::now() + PATIENCE;
    while !condition() {
        assert!(Instant::now() < until, "never came true: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The POSTs the mock received with `prompt`.
fn posts_of(server: &MockServer, prompt: &str) -> usize {
    server
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.json().is_some_and(|b| b["prompt"] == prompt))
        .count()
}

fn all_posts(server: &MockServer) -> usize {
    server
        .requests()
        .iter()
        .filter(|r| r.method == "POST")
        .count()
}

/// The journal's lines about the entry started with `prompt`: its local id and
/// its records' names.
fn entry_lines<'a>(lines: &'a [Value], prompt: &str) -> Option<(&'a str, Vec<&'a Value>)> {
    let id = lines
        .iter()
        .find(|l| l["record"] == "started" && l["prompt"] == prompt)?["local_id"]
        .as_str()?;
    Some((id, lines.iter().filter(|l| l["local_id"] == id).collect()))
}

/// The local ids left unfinished by `lines`.
fn replay(lines: &[Value]) -> HashSet<String> {
    let mut open = HashSet::new();
    for line in lines {
        let id = line["local_id"].as_str().unwrap_or_default().to_owned();
        match line["record"].as_str() {
            Some("started") => {
                open.insert(id);
            }
            Some("settled") => {
                open.remove(&id);
            }
            _ => {}
        }
    }
    open
}

/// Cuts a copy of the journal at `path` at every byte of its last line (or at
/// `samples` of them) and opens each: it must open, drop the cut line (reporting
/// it when it was cut inside), and list what the lines before it leave unfinished.
fn every_cut_of_the_last_line_opens(path: &Path, samples: Option<usize>) -> usize {
    let bytes = std::fs::read(path).unwrap();
    let body = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
    let start = body.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let before: Vec<Value> = String::from_utf8_lossy(&bytes[..start])
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let want = replay(&before);
    let cuts: Vec<usize> = match samples {
        None => (start..body.len()).collect(),
        Some(n) => (0..n)
            .map(|k| start + k * (body.len() - start) / n)
            .collect(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    for &cut in &cuts {
        let copy = dir.path().join("cut");
        std::fs::write(&copy, &bytes[..cut]).unwrap();
        let journal = FileJournal::open(&copy)
            .unwrap_or_else(|e| panic!("a journal cut at byte {cut} does not open: {e}"));
        assert_eq!(
            journal.torn_lines(),
            usize::from(cut > start),
            "cut at {cut}"
        );
        let open: HashSet<String> = rt
            .block_on(journal.unfinished())
            .unwrap()
            .iter()
            .map(|e| e.local_id.to_string())
            .collect();
        assert_eq!(open, want, "cut at {cut}");
    }
    cuts.len()
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
                        posts_of(&server, &text) == 1
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
    let posts_before = all_posts(&server);
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
    assert_eq!(all_posts(&server), posts_before, "resume never POSTs");

    // Each generation, accounted for.
    for (text, step) in &prompts {
        tally.generations += 1;
        let sent = posts_of(&server, text);
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
