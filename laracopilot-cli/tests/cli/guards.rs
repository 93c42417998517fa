//! The fleet's spend guards from a shell, several `laracopilot` processes over one
//! SQLite journal and one offline LaraCopilot: `--scope` and `--max-concurrent` (the
//! server never has more of a scope's streams open than the cap), `--budget` (exit 6,
//! nothing sent), `--idempotency-key` (one POST, one project, the repeat a replay),
//! and `--lease` (a process killed with SIGKILL: its entry is resumed by another
//! only once its lease ran out). Each test waits for what the processes print and
//! what the server records, never for a fixed time.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use laracopilot_mock::{Fault, MockServer, ProjectStatus, TokenState};
use serde_json::Value;

use crate::common::*;
use crate::seed::{self, pairs, settled};

/// One line a process printed.
#[derive(Debug, Clone)]
struct Line {
    who: &'static str,
    /// On stderr (else stdout).
    err: bool,
    text: String,
}

/// Processes of the binary, their output read as it comes, in one channel.
struct Fleet {
    lines: Receiver<Line>,
    sender: Sender<Line>,
    children: Vec<(&'static str, Child)>,
    readers: Vec<(&'static str, std::thread::JoinHandle<()>)>,
    dirs: Vec<tempfile::TempDir>,
    env: Vec<(String, String)>,
}

impl Fleet {
    /// Processes that talk to `server` with the test token.
    fn new(server: &MockServer) -> Fleet {
        let (sender, lines) = channel();
        Fleet {
            lines,
            sender,
            children: Vec::new(),
            readers: Vec::new(),
            dirs: Vec::new(),
            env: vec![
                ("LARACOPILOT_API_TOKEN".into(), TOKEN.into()),
                ("LARACOPILOT_BASE_URL".into(), server.base_url().into()),
            ],
        }
    }

    /// Starts `laracopilot generate ARGS` as `who`.
    fn generate(&mut self, who: &'static str, args: &[&str]) {
        let dir = tempfile::tempdir().unwrap();
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let mut child = command(cli("generate"), args, &env, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        let err = BufReader::new(child.stderr.take().unwrap());
        for (stream, is_err) in [
            (Box::new(out) as Box<dyn BufRead + Send>, false),
            (Box::new(err), true),
        ] {
            let sender = self.sender.clone();
            let reader = std::thread::spawn(move || {
                for text in stream.lines().map_while(Result::ok) {
                    let _ = sender.send(Line {
                        who,
                        err: is_err,
                        text,
                    });
                }
            });
            self.readers.push((who, reader));
        }
        self.children.push((who, child));
        self.dirs.push(dir);
    }

    /// The next line any process prints (failing after [`LIMIT`]).
    fn next(&self) -> Line {
        match self.lines.recv_timeout(LIMIT) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => panic!("no output within {LIMIT:?}"),
            Err(RecvTimeoutError::Disconnected) => unreachable!("the fleet holds a sender"),
        }
    }

    /// Reads lines until one of `who` contains `text`; every line read, in order.
    fn until(&self, who: &str, err: bool, text: &str) -> Vec<Line> {
        let mut read = Vec::new();
        loop {
            let line = self.next();
            assert!(
                !(line.who == who && line.text.starts_with("{\"error\"")),
                "{who} failed: {}",
                line.text
            );
            let found = line.who == who && line.err == err && line.text.contains(text);
            read.push(line);
            if found {
                return read;
            }
        }
    }

    fn child(&mut self, who: &str) -> &mut Child {
        &mut self
            .children
            .iter_mut()
            .find(|(name, _)| *name == who)
            .unwrap()
            .1
    }

    /// Waits (bounded) for `who` to exit, and for its output to be all read.
    fn wait(&mut self, who: &'static str) -> ExitStatus {
        let status = wait_bounded(self.child(who), LIMIT, &who);
        // Its pipes are closed now: the readers end (a grandchild holds none).
        let (done, others) = std::mem::take(&mut self.readers)
            .into_iter()
            .partition(|(name, _)| *name == who);
        self.readers = others;
        for (_, reader) in done {
            reader.join().unwrap();
        }
        status
    }

    /// The lines read and not taken yet.
    fn rest(&self) -> Vec<Line> {
        self.lines.try_iter().collect()
    }

    /// Kills `who` with SIGKILL, as a crash or an OOM kill would.
    fn kill(&mut self, who: &'static str) {
        let child = self.child(who);
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The arguments as the spawner takes them.
fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// The project a `--json` `project_created` line names.
fn created(line: &Line) -> Option<String> {
    let value: Value = serde_json::from_str(&line.text).ok()?;
    (value["event"] == "project_created")
        .then(|| value["data"]["project_id"].as_str().map(str::to_owned))
        .flatten()
}

/// The prompts of the POSTs the server received, in order.
fn posted(server: &MockServer) -> Vec<String> {
    server
        .requests()
        .iter()
        .filter(|r| r.method == "POST")
        .map(|r| r.json().unwrap()["prompt"].as_str().unwrap().to_owned())
        .collect()
}

fn generating(server: &MockServer, ids: &[&str]) -> usize {
    ids.iter()
        .filter(|id| server.project(**id).map(|p| p.status) == Some(ProjectStatus::Generating))
        .count()
}

#[test]
fn a_scope_never_has_more_streams_open_than_its_cap_across_processes() {
    // Streams of about a second, so that a broken cap would overlap them.
    let server = MockServer::builder()
        .pacing(Duration::from_millis(40))
        .events_per_generation(20)
        .start()
        .unwrap();
    server.add_token(TOKEN, TokenState::Valid);
    let dir = tempfile::tempdir().unwrap();
    let journal = arg_path(&dir, "app.db");
    let acme = |prompt: &'static str| -> Vec<String> {
        [
            "--json",
            "--journal",
            &journal,
            "--scope",
            "acme",
            "--max-concurrent",
            "1",
            "--lease",
            "3",
            prompt,
        ]
        .map(str::to_owned)
        .to_vec()
    };
    let mut fleet = Fleet::new(&server);

    // A takes acme's only slot, and its stream stops after project_created.
    server.fault_next(Fault::StallBefore(1));
    fleet.generate("A", &strs(&acme("Build app A")));
    let a = fleet.until("A", false, "project_created");
    let a_id = created(a.last().unwrap()).unwrap();
    // B and C reach their admission (the journal is open, the client built) and
    // wait for that slot.
    fleet.generate("B", &strs(&acme("Build app B")));
    fleet.generate("C", &strs(&acme("Build app C")));
    let mut waiting = ["B", "C"].to_vec();
    while !waiting.is_empty() {
        let line = fleet.next();
        if line.err && line.text.contains("Using the LaraCopilot API") {
            waiting.retain(|w| *w != line.who);
        }
    }
    // D, in another scope with the same cap, runs to its end meanwhile.
    let other = [
        "--json",
        "--journal",
        &journal,
        "--scope",
        "other",
        "--max-concurrent",
        "1",
        "Build app D",
    ];
    fleet.generate("D", &other);
    assert!(fleet.wait("D").success(), "D ran while A held acme's slot");
    assert_eq!(
        generating(&server, &[&a_id]),
        1,
        "A's stream is still open: scopes count apart"
    );
    assert_eq!(
        posted(&server),
        ["Build app A", "Build app D"],
        "B and C sent nothing while A held the slot"
    );

    // A dies holding the slot: it comes back when A's lease (3 s) runs out, and B
    // and C take it one after the other.
    fleet.kill("A");
    let mut ids = vec![a_id.clone()];
    let mut running = ["B", "C"].to_vec();
    while !running.is_empty() {
        let line = fleet.next();
        if !matches!(line.who, "B" | "C") {
            continue;
        }
        if let Some(id) = created(&line) {
            ids.push(id);
            let open: Vec<&str> = ids.iter().map(String::as_str).collect();
            assert!(
                generating(&server, &open) <= 1,
                "{}'s stream is acme's only open one: {:?}",
                line.who,
                open.iter()
                    .map(|id| (id, server.project(id).map(|p| p.status)))
                    .collect::<Vec<_>>()
            );
        }
        if !line.err && line.text.contains("\"outcome\"") {
            running.retain(|w| *w != line.who);
        }
    }
    assert!(fleet.wait("B").success());
    assert!(fleet.wait("C").success());
    let mut prompts = posted(&server);
    prompts[2..].sort();
    assert_eq!(
        prompts,
        ["Build app A", "Build app D", "Build app B", "Build app C"],
        "one POST each"
    );
}

/// The current UTC hour, as a number.
fn hour() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 3600
}

#[test]
fn a_spent_budget_refuses_the_call_with_exit_6_and_sends_nothing() {
    // A run that straddles the top of an hour is run again: the window is the hour.
    for attempt in 0..2 {
        let hour_before = hour();
        let server = MockServer::start();
        server.add_token(TOKEN, TokenState::Valid);
        let env = [
            ("LARACOPILOT_API_TOKEN", TOKEN),
            ("LARACOPILOT_BASE_URL", server.base_url()),
        ];
        let dir = tempfile::tempdir().unwrap();
        let journal = arg_path(&dir, "app.db");
        let call = |json: bool, scope: &str, prompt: &str| {
            let mut args = vec![
                "--journal",
                &journal,
                "--budget",
                "2/hour",
                "--scope",
                scope,
            ];
            if json {
                args.push("--json");
            }
            args.push(prompt);
            run_bounded(&cli("generate"), &args, &env, LIMIT)
        };
        for prompt in ["Build app 1", "Build app 2"] {
            let (status, _, stderr) = call(true, "acme", prompt);
            assert!(status.success(), "{stderr}");
        }
        let (status, stdout, stderr) = call(true, "acme", "Build app 3");
        let (human, human_stdout, human_stderr) = call(false, "acme", "Build app 4");
        // Another scope has a budget of its own.
        let (other, _, other_stderr) = call(true, "other", "Build app 5");
        if hour() != hour_before && attempt == 0 {
            continue;
        }
        assert_eq!(status.code(), Some(6), "{stdout}\n{stderr}");
        let lines = json_lines(&stdout);
        assert_eq!(lines.len(), 1, "only the error: {stdout}");
        let error = &lines[0]["error"];
        assert_eq!(error["kind"], "budget_exhausted", "{error}");
        let message = error["message"].as_str().unwrap();
        assert!(
            message.contains("2/hour")
                && message.contains("\"acme\"")
                && message.contains("resets in"),
            "names the budget and when it resets: {message}"
        );
        assert_eq!(human.code(), Some(6), "{human_stderr}");
        assert_eq!(human_stdout, "");
        assert!(
            human_stderr.contains(
                "error: not sent: the budget of 2/hour of scope \"acme\" is spent; it resets in"
            ),
            "{human_stderr}"
        );
        assert!(other.success(), "{other_stderr}");
        assert_eq!(
            posted(&server),
            ["Build app 1", "Build app 2", "Build app 5"],
            "no POST for a refused call"
        );
        return;
    }
}

#[test]
fn a_budget_or_an_idempotency_key_without_a_journal_is_a_configuration_error() {
    for args in [
        &["--json", "--budget", "2/hour", "Build a blog"][..],
        &["--json", "--idempotency-key", "job-42", "Build a blog"],
    ] {
        let (status, stdout, stderr) = run_bounded(&cli("generate"), args, &[], LIMIT);
        assert_eq!(status.code(), Some(2), "{args:?}: {stdout}\n{stderr}");
        let error = &json_lines(&stdout)[0]["error"];
        assert_eq!(error["kind"], "config", "{error}");
        assert!(
            error["message"].as_str().unwrap().contains("journal"),
            "{error}"
        );
    }
    let (status, _, stderr) =
        run_bounded(&cli("generate"), &["--budget", "ten/hour", "x"], &[], LIMIT);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("COUNT/WINDOW"), "{stderr}");
}

#[test]
fn two_processes_with_one_idempotency_key_make_one_post_and_print_one_project() {
    // A stream of about half a second: the second process starts while the first runs.
    let server = MockServer::builder()
        .pacing(Duration::from_millis(40))
        .events_per_generation(12)
        .start()
        .unwrap();
    server.add_token(TOKEN, TokenState::Valid);
    let dir = tempfile::tempdir().unwrap();
    let journal = arg_path(&dir, "app.db");
    let args = [
        "--json",
        "--journal",
        &journal,
        "--idempotency-key",
        "acme-onboarding-42",
        "Build a task management app",
    ];
    let mut fleet = Fleet::new(&server);
    fleet.generate("first", &args);
    fleet.generate("second", &args);
    let mut outcomes = Vec::new();
    let mut stderr = String::new();
    while outcomes.len() < 2 {
        let line = fleet.next();
        if line.err {
            stderr.push_str(&format!("{}: {}\n", line.who, line.text));
        } else if line.text.contains("\"outcome\"") || line.text.contains("\"error\"") {
            outcomes.push(serde_json::from_str::<Value>(&line.text).unwrap());
        }
    }
    let statuses = [fleet.wait("first"), fleet.wait("second")];
    for line in fleet.rest().into_iter().filter(|l| l.err) {
        stderr.push_str(&format!("{}: {}\n", line.who, line.text));
    }
    assert!(
        statuses.iter().all(ExitStatus::success),
        "{statuses:?}\n{stderr}\n{outcomes:?}"
    );
    let (a, b) = (&outcomes[0]["outcome"], &outcomes[1]["outcome"]);
    assert!(a["project_id"].is_string(), "{outcomes:?}");
    assert_eq!(
        a["project_id"], b["project_id"],
        "one project: {outcomes:?}"
    );
    let mut replays = [a["replay"].as_bool(), b["replay"].as_bool()];
    replays.sort();
    assert_eq!(replays, [Some(false), Some(true)], "{outcomes:?}");
    assert_eq!(a["journal_id"], b["journal_id"], "the first call's entry");
    assert_eq!(posted(&server).len(), 1, "one POST");
    assert!(stderr.contains("Replaying"), "{stderr}");

    // Later, from a shell: the same answer, still without a POST.
    let env = [
        ("LARACOPILOT_API_TOKEN", TOKEN),
        ("LARACOPILOT_BASE_URL", server.base_url()),
    ];
    let (status, stdout, stderr) = run_bounded(&cli("generate"), &args[1..], &env, LIMIT);
    assert!(status.success(), "{stderr}");
    assert!(
        stdout.starts_with(&format!("Project: {}\n", a["project_id"].as_str().unwrap())),
        "{stdout}"
    );
    assert!(stderr.contains("Replaying"), "{stderr}");
    assert_eq!(posted(&server).len(), 1, "still one POST");
}

#[test]
fn a_killed_generation_is_resumed_by_another_process_only_after_its_lease() {
    const LEASE: Duration = Duration::from_secs(9);
    // A stream of about six seconds: the process is killed in its middle.
    let server = MockServer::builder()
        .pacing(Duration::from_millis(100))
        .events_per_generation(60)
        .start()
        .unwrap();
    server.add_token(TOKEN, TokenState::Valid);
    let env = [
        ("LARACOPILOT_API_TOKEN", TOKEN),
        ("LARACOPILOT_BASE_URL", server.base_url()),
    ];
    let dir = tempfile::tempdir().unwrap();
    let journal = arg_path(&dir, "app.db");
    let path = Path::new(&journal);
    let lease = LEASE.as_secs().to_string();
    let mut fleet = Fleet::new(&server);
    fleet.generate(
        "worker",
        &[
            "--json",
            "--journal",
            &journal,
            "--lease",
            &lease,
            "Build an app",
        ],
    );
    let read = fleet.until("worker", false, "container_progress");
    let id = read.iter().find_map(created).unwrap();
    fleet.kill("worker");
    let killed = Instant::now();
    // The lease was renewed at most a third of it before the kill.
    let earliest = LEASE - LEASE / 3;

    // Right away its entry is still the dead process's: nobody may resume it yet.
    assert!(seed::block_on(seed::unfinished(path)).is_empty());
    let (status, stdout, stderr) = run_bounded(
        &cli("resume"),
        &["--json", "--journal", &journal],
        &env,
        LIMIT,
    );
    assert!(status.success(), "{stderr}");
    if killed.elapsed() < earliest {
        assert_eq!(stdout, "", "resumed within the lease");
        assert!(stderr.contains("Nothing left unfinished"), "{stderr}");
    } else {
        eprintln!("(the first resume ran past the lease on this busy machine: not checked)");
    }

    // Once the lease ran out it is unfinished.
    let entries = seed::block_on(seed::wait_unfinished(path, 1));
    let after = killed.elapsed();
    assert!(
        after >= earliest,
        "listed {after:?} after the kill, before its lease ({LEASE:?}) could run out"
    );
    assert_eq!(
        entries[0].project_id.as_ref().map(|p| p.as_str()),
        Some(id.as_str())
    );

    let (status, stdout, stderr) = run_bounded(
        &cli("resume"),
        &["--json", "--journal", &journal],
        &env,
        LIMIT,
    );
    assert!(status.success(), "{stdout}\n{stderr}");
    let lines = json_lines(&stdout);
    assert_eq!(lines.len(), 1, "{stdout}");
    assert_eq!(lines[0]["local_id"], entries[0].local_id.as_str());
    assert_eq!(lines[0]["outcome"]["project_id"], id.as_str());
    assert_eq!(pairs(&settled(path)), [("Build an app", "succeeded")]);
    assert!(seed::block_on(seed::unfinished(path)).is_empty());
    assert_eq!(posted(&server).len(), 1, "resume sent nothing");
}

#[test]
fn a_call_that_failed_after_it_may_have_started_work_frees_its_slot_before_the_process_exits() {
    // A's POST is answered (half a second late) with a server's error page: the
    // server may have started work, so A's entry is left for resuming and its slot
    // released without waiting. While that release waits for the journal's write
    // lock (the test holds it), A prints its error. A process that exited then
    // would lose the release, and acme's only slot would stay held until A's lease
    // (30 s) ran out, with B waiting for it.
    let server = MockServer::start();
    server.add_token(TOKEN, TokenState::Valid);
    server.reply_next(
        1,
        laracopilot_mock::Reply::delayed(
            Duration::from_millis(500),
            laracopilot_mock::Reply::server_error_html(),
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let journal = arg_path(&dir, "app.db");
    let args = |prompt: &'static str| {
        [
            "--json",
            "--journal",
            journal.as_str(),
            "--scope",
            "acme",
            "--max-concurrent",
            "1",
            "--lease",
            "30",
            prompt,
        ]
    };
    let env = [
        ("LARACOPILOT_API_TOKEN", TOKEN),
        ("LARACOPILOT_BASE_URL", server.base_url()),
    ];
    let mut a = command(cli("generate"), &args("Build app A"), &env, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // A was admitted (its POST arrived): take the journal's write lock until A
    // exits or two seconds pass.
    assert!(server.wait_for_requests(1, LIMIT), "A sent its POST");
    let lock = rusqlite::Connection::open(&journal).unwrap();
    lock.busy_timeout(LIMIT).unwrap();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    let held = Instant::now();
    let mut exited_holding = false;
    while held.elapsed() < Duration::from_secs(2) {
        if a.try_wait().unwrap().is_some() {
            exited_holding = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    lock.execute_batch("ROLLBACK").unwrap();
    drop(lock);
    let status = wait_bounded(&mut a, LIMIT, &"A");
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut a.stdout.take().unwrap(), &mut stdout).unwrap();
    assert!(!status.success(), "{stdout}");
    assert_eq!(
        json_lines(&stdout).last().unwrap()["error"]["status"],
        500,
        "{stdout}"
    );
    assert!(
        !exited_holding,
        "A exited while its release waited for the journal"
    );

    let started = Instant::now();
    let (b, stdout, stderr) = run_bounded(&cli("generate"), &args("Build app B"), &env, LIMIT);
    let took = started.elapsed();
    assert!(b.success(), "{stdout}{stderr}");
    assert!(
        took < Duration::from_secs(15),
        "B waited {took:?} for the slot A released before it exited"
    );
    assert_eq!(posted(&server), ["Build app A", "Build app B"]);
}
