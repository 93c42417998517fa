//! A closed stdout is not a crash: `laracopilot status ID | head -1` and the same for
//! `generate`, `resume` and `mock-server` end quietly with exit 141 (never a panic's
//! 101 and its backtrace), and `resume` settles no entry whose line nobody could read.

use std::path::Path;
use std::process::{Child, ExitStatus, Stdio};
use std::time::Duration;

use laracopilot::journal::Entry;
use laracopilot_mock::{MockServer, ProjectStatus};
use serde_json::{json, Value};
use wiremock::ResponseTemplate;

use crate::common::*;
use crate::seed::{self, block_on, settled, Seeder};

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

/// Several at once, each with a journal of its own: a busy machine is where a
/// process used to exit before its journal wrote the release of its dropped stream
/// (the entry then stayed driven by the dead process's lease for 30 s).
#[test]
fn generate_json_read_by_head_1_stops_at_the_next_event_and_leaves_its_entry_unfinished() {
    const RUNS: usize = 6;
    let dir = tempfile::tempdir().unwrap();
    let journals: Vec<String> = (0..RUNS)
        .map(|i| arg_path(&dir, &format!("app-{i}.db")))
        .collect();
    let children: Vec<(Child, tempfile::TempDir)> = journals
        .iter()
        .map(|journal| {
            let own = tempfile::tempdir().unwrap();
            let args = [
                "--json",
                "--journal",
                journal.as_str(),
                "Build a task management app",
            ];
            (spawn_piped("generate", &args, &[], own.path()), own)
        })
        .collect();
    // Each read by a `head -1` of its own, at once.
    let heads: Vec<(ExitStatus, String, tempfile::TempDir)> = std::thread::scope(|scope| {
        let readers: Vec<_> = children
            .into_iter()
            .map(|(child, own)| {
                scope.spawn(move || {
                    let (status, first) = head_1(child, "generate --json");
                    (status, first, own)
                })
            })
            .collect();
        readers.into_iter().map(|r| r.join().unwrap()).collect()
    });
    for ((status, first, own), journal) in heads.into_iter().zip(&journals) {
        let first = first.lines().next().unwrap_or_default();
        assert!(first.contains("\"project_created\""), "{first}");
        assert_quiet(status, own.path(), "generate --json | head -1");
        let created: Value = serde_json::from_str(first.trim()).unwrap();
        // Unfinished as soon as the process is gone (its stream was released), not
        // only once its lease expired.
        let entries = block_on(seed::unfinished(Path::new(journal)));
        assert_eq!(entries.len(), 1, "{journal}: {entries:?}");
        let entry = &entries[0];
        assert_eq!(entry.prompt, "Build a task management app");
        assert!(entry.accepted, "{entry:?}");
        assert_eq!(
            entry.project_id.as_ref().map(|p| p.as_str()),
            created["data"]["project_id"].as_str(),
            "the project id was journaled before its event was printed"
        );
        assert!(settled(Path::new(journal)).is_empty(), "nobody saw it end");
    }
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

/// A journal with two generations whose projects (`p1`, `p2`) are known and
/// unfinished; its entries, oldest first.
async fn journal_of_two(path: &Path) -> Vec<Entry> {
    let mut seeder = Seeder::new(path, &[]);
    seeder
        .generate_named("Build a task management app", "p1")
        .await;
    seeder.generate_named("Build a blog", "p2").await;
    seeder.close().await
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
    let journal = dir.path().join("app.db");
    let entries = block_on(journal_of_two(&journal));
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
        let left = block_on(seed::wait_unfinished(&journal, 2));
        assert_eq!(left.len(), entries.len(), "{args:?}: both left unfinished");
    }
    assert!(
        server.requests().is_empty(),
        "nothing was polled for a reader that was gone"
    );
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
    let journal = dir.path().join("app.db");
    let entries = journal_of_two(&journal).await;
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
    assert_eq!(line["local_id"], entries[0].local_id.as_str(), "{first}");
    assert_eq!(line["outcome"]["project_id"], "p1", "{first}");
    assert_quiet(status, dir.path(), "resume | head -1");
    assert_eq!(
        seed::pairs(&settled(&journal)),
        [("Build a task management app", "succeeded")],
        "only the entry that was reported"
    );
    let left = seed::wait_unfinished(&journal, 1).await;
    assert_eq!(
        left[0].local_id, entries[1].local_id,
        "the other one is left for a later run"
    );
}
