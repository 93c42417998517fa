//! A closed stdout is not a crash: `laracopilot status ID | head -1` and the same for
//! `generate`, `resume` and `mock-server` end quietly with exit 141 (never a panic's
//! 101 and its backtrace), and `resume` settles no entry whose line nobody could read.

use std::path::Path;
use std::process::{Child, ExitStatus, Stdio};
use std::time::Duration;

use laracopilot_mock::{MockServer, ProjectStatus};
use serde_json::{json, Value};
use wiremock::ResponseTemplate;

use crate::common::*;

/// `laracopilot SUB ARGS` with its stdout a pipe (stderr into `dir/stderr`).
fn spawn_piped(sub: &'static str, args: &[&str], env: &[(&str, &str)], dir: &Path) -> Child {
    let stderr = std::fs::File::create(dir.join("stderr")).unwrap();
    command(cli(sub), args, env, dir)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap()
}

/// Runs `laracopilot SUB ARGS` with its stdout a pipe whose reading end is closed
/// before it starts (as `| true` would leave it), bounded in time.
fn closed_from_the_start(
    sub: &'static str,
    args: &[&str],
    env: &[(&str, &str)],
    dir: &Path,
) -> ExitStatus {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let stderr = std::fs::File::create(dir.join("stderr")).unwrap();
    let mut child = command(cli(sub), args, env, dir)
        .stdout(writer)
        .stderr(stderr)
        .spawn()
        .unwrap();
    wait_bounded(&mut child, LIMIT, &sub)
}

/// Reads the child's first stdout line, then closes the pipe and waits for it.
fn head_1(mut child: Child, what: &str) -> (ExitStatus, String) {
    let first = read_until(&mut child, "\n", LIMIT);
    drop(child.stdout.take());
    (wait_bounded(&mut child, LIMIT, &what), first)
}

/// Exit 141, and no panic on stderr.
fn assert_quiet(status: ExitStatus, dir: &Path, what: &str) {
    let stderr = std::fs::read_to_string(dir.join("stderr")).unwrap_or_default();
    assert!(!stderr.contains("panicked"), "{what}: {stderr}");
    assert_eq!(status.code(), Some(141), "{what}: {stderr}");
}

#[tokio::test]
async fn status_with_a_closed_stdout_ends_quietly() {
    let server = server().await;
    mount(
        &server,
        "GET",
        "/agent/project/abc123",
        project_json("abc123"),
    )
    .await;
    let base = format!("{}/api/v1", server.uri());
    let env = [
        ("LARACOPILOT_API_TOKEN", TOKEN),
        ("LARACOPILOT_BASE_URL", base.as_str()),
    ];
    for args in [&["abc123"][..], &["--json", "abc123"]] {
        let dir = tempfile::tempdir().unwrap();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let (owned, at): (Vec<&'static str>, _) = (args.to_vec(), dir.path().to_owned());
        let status = tokio::task::spawn_blocking(move || {
            let env: Vec<(&str, &str)> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            closed_from_the_start("status", &owned, &env, &at)
        })
        .await
        .unwrap();
        assert_quiet(status, dir.path(), &format!("status {args:?}"));
    }
}

#[test]
fn generate_json_read_by_head_1_stops_at_the_next_event_and_leaves_its_entry_unfinished() {
    let dir = tempfile::tempdir().unwrap();
    let journal = arg_path(&dir, "app.journal");
    let args = [
        "--json",
        "--journal",
        &journal,
        "Build a task management app",
    ];
    let child = spawn_piped("generate", &args, &[], dir.path());
    let (status, first) = head_1(child, "generate --json");
    assert!(first.contains("\"project_created\""), "{first}");
    assert_quiet(status, dir.path(), "generate --json | head -1");
    let records = std::fs::read_to_string(&journal).unwrap();
    assert!(records.contains("\"started\""), "{records}");
    assert!(
        !records.contains("\"settled\""),
        "nobody saw it end: {records}"
    );
}

#[test]
fn generate_with_stdout_closed_from_the_start_sends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let status = closed_from_the_start(
        "generate",
        &["Build a task management app"],
        &[],
        dir.path(),
    );
    assert_quiet(status, dir.path(), "generate >&-");
    let stderr = std::fs::read_to_string(dir.path().join("stderr")).unwrap();
    assert!(
        !stderr.contains("Using"),
        "no connection was made: {stderr}"
    );
}

#[test]
fn mock_server_ends_when_its_reader_goes_away() {
    let dir = tempfile::tempdir().unwrap();
    let status = closed_from_the_start("mock-server", &["--port", "0"], &[], dir.path());
    assert_quiet(status, dir.path(), "mock-server >&-");

    let child = spawn_piped("mock-server", &["--port", "0"], &[], dir.path());
    let (status, first) = head_1(child, "mock-server | head -1");
    assert!(
        first.starts_with("Offline LaraCopilot listening at "),
        "{first}"
    );
    assert_quiet(status, dir.path(), "mock-server | head -1");
}

/// A journal with two generations whose projects are known and unfinished.
fn journal_of_two(path: &Path) {
    let lines: Vec<String> = [("lcj-a", "p1"), ("lcj-b", "p2")]
        .iter()
        .flat_map(|(id, project)| {
            [
                json!({"v": 1, "record": "started", "local_id": id, "kind": "generate",
                       "project_id": null, "prompt": "Build a task management app",
                       "at": 1_764_618_266_123_u64, "token": "****9f8e"}),
                json!({"v": 1, "record": "project_known", "local_id": id,
                       "project_id": project, "at": 1_764_618_268_001_u64}),
            ]
        })
        .map(|v| v.to_string())
        .collect();
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

/// The entries of the journal at `path` that have a `settled` record.
fn settled(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter(|record| record["record"] == "settled")
        .map(|record| record["local_id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn resume_with_stdout_closed_from_the_start_settles_nothing() {
    let server = MockServer::builder()
        .project(laracopilot_mock::MockProject::new(
            "p1",
            ProjectStatus::Ready,
        ))
        .project(laracopilot_mock::MockProject::new(
            "p2",
            ProjectStatus::Ready,
        ))
        .start()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("app.journal");
    journal_of_two(&journal);
    let journal_arg = journal.to_str().unwrap();
    // The mock server's token is random: give the CLI one it knows.
    server.add_token(TOKEN, laracopilot_mock::TokenState::Valid);
    let env = [
        ("LARACOPILOT_API_TOKEN", TOKEN),
        ("LARACOPILOT_BASE_URL", server.base_url()),
    ];
    for args in [
        &["--journal", journal_arg][..],
        &["--json", "--journal", journal_arg],
    ] {
        let status = closed_from_the_start("resume", args, &env, dir.path());
        assert_quiet(status, dir.path(), &format!("resume {args:?}"));
        assert!(
            settled(&journal).is_empty(),
            "{args:?}: nothing was reported"
        );
    }
}

#[tokio::test]
async fn resume_read_by_head_1_settles_the_entry_it_reported_and_no_other() {
    let server = server().await;
    mount(&server, "GET", "/agent/project/p1", project_json("p1")).await;
    // The second project answers late: by then the reader is gone.
    let late = ResponseTemplate::new(200)
        .set_body_json(json!({"status": true, "project_id": "p2",
                              "app_url": "https://p2.laracopilot.com",
                              "project_status": "ready", "name": "Tasks"}))
        .set_delay(Duration::from_secs(4));
    mount(&server, "GET", "/agent/project/p2", late).await;
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("app.journal");
    journal_of_two(&journal);
    let base = format!("{}/api/v1", server.uri());
    let path = journal.to_str().unwrap().to_owned();
    let dir_path = dir.path().to_owned();
    let (status, first) = tokio::task::spawn_blocking(move || {
        let env = [
            ("LARACOPILOT_API_TOKEN", TOKEN),
            ("LARACOPILOT_BASE_URL", base.as_str()),
        ];
        let child = spawn_piped("resume", &["--json", "--journal", &path], &env, &dir_path);
        head_1(child, "resume --json | head -1")
    })
    .await
    .unwrap();
    let line: Value = serde_json::from_str(first.trim()).unwrap();
    assert_eq!(line["local_id"], "lcj-a", "{first}");
    assert_eq!(line["outcome"]["project_id"], "p1", "{first}");
    assert_quiet(status, dir.path(), "resume | head -1");
    assert_eq!(
        settled(&journal),
        ["lcj-a"],
        "only the entry that was reported"
    );
}
