//! The journal from the command line: `generate` and `follow_up` with `--journal`
//! (their JSON outcome names the entry), and `examples/resume.rs`, a service's
//! start-up, driven as a shell would: a generation killed with SIGKILL, then resumed
//! against the same server, one JSON line per entry.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::journal::file_lines;
use common::{example, json_lines, run_bounded};
use laracopilot_mock::{Fault, MockServer, ProjectStatus};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(60);
const TOKEN: &str = "lcp_mock_resume_example_token";

fn server() -> MockServer {
    MockServer::builder().token(TOKEN).start().unwrap()
}

fn env(server: &MockServer) -> [(&'static str, String); 2] {
    [
        ("LARACOPILOT_API_TOKEN", TOKEN.to_owned()),
        ("LARACOPILOT_BASE_URL", server.base_url().to_owned()),
    ]
}

/// Runs example `bin` against `server`, to its end.
fn against(
    server: &MockServer,
    bin: &Path,
    args: &[&str],
) -> (std::process::ExitStatus, String, String) {
    let env = env(server);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    run_bounded(bin, args, &env, LIMIT)
}

/// Starts example `bin` against `server` without waiting for it.
fn start(server: &MockServer, bin: &Path, args: &[&str]) -> Child {
    let mut command = Command::new(bin);
    command
        .args(args)
        .env_remove("LARACOPILOT_TOKEN_FILE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (key, value) in env(server) {
        command.env(key, value);
    }
    command.spawn().unwrap()
}

/// SIGKILL, and reap it (bounded).
fn kill(mut child: Child) {
    child.kill().unwrap();
    let until = Instant::now() + LIMIT;
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < until, "the example did not die");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits until `condition` holds, at most 20 s (killing `child` if it never does).
fn wait_until(child: &mut Child, what: &str, mut condition: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(20);
    while !condition() {
        if Instant::now() > until || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            let _ = child.wait();
            panic!("never happened: {what}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn journal_has(path: &Path, record: &str) -> bool {
    let (lines, _) = file_lines(path, true);
    lines.iter().any(|l| l["record"] == record)
}

fn journal_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("app.journal")
}

fn posts(server: &MockServer) -> usize {
    server
        .requests()
        .iter()
        .filter(|r| r.method == "POST")
        .count()
}

#[test]
fn generate_with_a_journal_names_its_entry_in_the_json_outcome() {
    let Some(bin) = example("generate") else {
        return;
    };
    let server = server();
    let dir = tempfile::tempdir().unwrap();
    let path = journal_path(&dir);
    let journal = path.to_str().unwrap();
    let (status, stdout, stderr) = against(&server, &bin, &["--json", "--journal", journal]);
    assert!(status.success(), "{stderr}");
    let lines = json_lines(&stdout);
    let outcome = &lines.last().unwrap()["outcome"];
    let (records, _) = file_lines(&path, false);
    let names: Vec<&str> = records
        .iter()
        .map(|r| r["record"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["started", "project_known", "settled"]);
    assert!(
        records
            .iter()
            .all(|r| r["local_id"] == outcome["journal_id"]),
        "{outcome}"
    );
    assert_eq!(records[2]["outcome"], "succeeded");
    assert!(stderr.contains("Journal entry lcj-"), "{stderr}");
    // Nothing left to resume.
    let bin = example("resume").unwrap();
    let (status, stdout, stderr) = against(&server, &bin, &["--json", "--journal", journal]);
    assert!(status.success(), "{stderr}");
    assert_eq!(stdout, "");
    assert!(stderr.contains("Nothing left unfinished"), "{stderr}");
}

#[test]
fn follow_up_with_a_journal_names_its_entry_in_the_json_outcome() {
    let Some(bin) = example("follow_up") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = journal_path(&dir);
    // Offline: it generates a project first, then follows up; both are journaled.
    let (status, stdout, stderr) = run_bounded(
        &bin,
        &[
            "--json",
            "--journal",
            path.to_str().unwrap(),
            "any",
            "Add a dark mode",
        ],
        &[],
        LIMIT,
    );
    assert!(status.success(), "{stderr}");
    let lines = json_lines(&stdout);
    let outcome = &lines.last().unwrap()["outcome"];
    let (records, _) = file_lines(&path, false);
    let started = records
        .iter()
        .find(|r| r["record"] == "started" && r["local_id"] == outcome["journal_id"])
        .unwrap_or_else(|| panic!("{outcome} not in {records:?}"));
    assert_eq!(started["kind"], "follow_up");
    assert_eq!(started["project_id"], outcome["project_id"]);
}

#[test]
fn a_generation_killed_mid_stream_is_resumed_from_the_shell_as_one_json_line() {
    let (Some(generate), Some(resume)) = (example("generate"), example("resume")) else {
        return;
    };
    let server = server();
    // The stream goes quiet after a few events, long enough to be killed there.
    server.fault_next(Fault::DelayBefore(5, Duration::from_secs(30)));
    let dir = tempfile::tempdir().unwrap();
    let path = journal_path(&dir);
    let journal = path.to_str().unwrap();
    let mut child = start(
        &server,
        &generate,
        &["--json", "--journal", journal, "Build a blog with posts"],
    );
    wait_until(&mut child, "the project id is in the journal", || {
        journal_has(&path, "project_known")
    });
    kill(child);
    // The server notices its client is gone.
    let until = Instant::now() + Duration::from_secs(10);
    while server.project("p1").unwrap().status == ProjectStatus::Generating {
        assert!(Instant::now() < until);
        std::thread::sleep(Duration::from_millis(10));
    }
    let (records, _) = file_lines(&path, false);
    let local_id = records[0]["local_id"].clone();

    let sent = posts(&server);
    let (status, stdout, stderr) = against(
        &server,
        &resume,
        &["--json", "--journal", journal, "--timeout", "10"],
    );
    assert_eq!(status.code(), Some(1), "{stdout}\n{stderr}");
    let lines = json_lines(&stdout);
    assert_eq!(lines.len(), 1, "{stdout}");
    let line = &lines[0];
    assert_eq!(line["local_id"], local_id);
    assert_eq!(line["kind"], "generate");
    assert_eq!(line["prompt"], "Build a blog with posts");
    // The offline LaraCopilot fails a stream its client left.
    assert_eq!(line["error"]["kind"], "generation_failed", "{line}");
    assert_eq!(line["error"]["project_id"], "p1");
    assert_eq!(posts(&server), sent, "resume never POSTs");
    assert!(stderr.contains("Resuming 1 unfinished entry"), "{stderr}");

    // Settled: a second start-up has nothing to do.
    let (status, stdout, _) = against(&server, &resume, &["--json", "--journal", journal]);
    assert!(status.success());
    assert_eq!(stdout, "");
}

#[test]
fn a_generation_killed_before_its_first_byte_is_resumed_as_outcome_unknown() {
    let (Some(generate), Some(resume)) = (example("generate"), example("resume")) else {
        return;
    };
    let server = server();
    server.fault_next(Fault::DelayHeaders(Duration::from_secs(30)));
    let dir = tempfile::tempdir().unwrap();
    let path = journal_path(&dir);
    let journal = path.to_str().unwrap();
    let mut child = start(&server, &generate, &["--journal", journal]);
    wait_until(&mut child, "the POST reached the server", || {
        posts(&server) == 1
    });
    kill(child);
    let (status, stdout, stderr) = against(&server, &resume, &["--json", "--journal", journal]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    let lines = json_lines(&stdout);
    assert_eq!(lines.len(), 1, "{stdout}");
    assert_eq!(lines[0]["error"]["kind"], "outcome_unknown");
    assert_eq!(lines[0]["error"]["project_id"], Value::Null);
    assert_eq!(posts(&server), 1, "not sent again");
    // Without --json, for people.
    let (_, stdout, _) = against(&server, &resume, &["--journal", journal]);
    assert_eq!(stdout, "", "already settled");
}

/// A journal left by a program that stopped right after `stream_end`, before its
/// last write: `started` and `project_known` of a project that is ready.
fn stopped_before_the_last_write(server: &MockServer, path: &Path) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let outcome = rt.block_on(async {
        server
            .client()
            .generate("Build a task management app")
            .await
            .unwrap()
            .finish()
            .await
            .unwrap()
    });
    let id = outcome.project_id.unwrap();
    std::fs::write(
        path,
        format!(
            "{}\n{}\n",
            r#"{"v":1,"record":"started","local_id":"lcj-ready","kind":"generate","project_id":null,"prompt":"Build a task management app","at":1764618266123,"token":"****oken"}"#,
            format_args!(r#"{{"v":1,"record":"project_known","local_id":"lcj-ready","project_id":"{id}","at":1764618268001}}"#),
        ),
    )
    .unwrap();
}

#[test]
fn resume_reports_a_project_that_succeeded_with_its_outcome_line() {
    let Some(resume) = example("resume") else {
        return;
    };
    let server = server();
    let dir = tempfile::tempdir().unwrap();
    let path = journal_path(&dir);
    stopped_before_the_last_write(&server, &path);
    let (status, stdout, stderr) = against(
        &server,
        &resume,
        &["--json", "--journal", path.to_str().unwrap()],
    );
    assert!(status.success(), "{stderr}");
    let lines = json_lines(&stdout);
    assert_eq!(lines.len(), 1);
    let outcome = &lines[0]["outcome"];
    assert_eq!(outcome["project_id"], "p1");
    assert_eq!(outcome["app_url"], "https://p1.laracopilot.com");
    assert_eq!(outcome["project_status"], "ready");
    assert_eq!(lines[0]["local_id"], "lcj-ready");
    let (records, _) = file_lines(&path, false);
    assert_eq!(records.last().unwrap()["outcome"], "succeeded");
}

#[test]
fn resume_offline_touches_no_entry_and_says_where_to_point_it() {
    let Some(resume) = example("resume") else {
        return;
    };
    let server = server();
    let dir = tempfile::tempdir().unwrap();
    let path = journal_path(&dir);
    stopped_before_the_last_write(&server, &path);
    let before = std::fs::read(&path).unwrap();
    let (status, stdout, stderr) = run_bounded(
        &resume,
        &["--json", "--journal", path.to_str().unwrap()],
        &[],
        LIMIT,
    );
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("embedded offline LaraCopilot"), "{stderr}");
    let lines = json_lines(&stdout);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["error"]["kind"], "config");
    assert_eq!(lines[0]["local_id"], "lcj-ready");
    let message = lines[0]["error"]["message"].as_str().unwrap();
    assert!(message.contains("LARACOPILOT_BASE_URL"), "{message}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the journal is untouched"
    );
}

#[test]
fn resume_needs_a_journal_and_documents_where_to_resume() {
    let Some(resume) = example("resume") else {
        return;
    };
    let (status, stdout, _) = run_bounded(&resume, &["--json"], &[], LIMIT);
    assert_eq!(status.code(), Some(2));
    assert_eq!(json_lines(&stdout)[0]["error"]["kind"], "usage");
    let (status, help, _) = run_bounded(&resume, &["--help"], &[], LIMIT);
    assert!(status.success());
    for needed in [
        "Usage: resume",
        "--journal <FILE>",
        "--timeout <SECS>",
        "LARACOPILOT_BASE_URL and",
        "LARACOPILOT_API_TOKEN",
        "outcome_unknown",
        "Exit status:",
        "4  The team's credits are exhausted",
    ] {
        assert!(help.contains(needed), "{needed:?} not in:\n{help}");
    }
}
