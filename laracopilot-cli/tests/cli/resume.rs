//! `resume --journal FILE`: each unfinished entry settled (a project that succeeded,
//! failed, is unknown, does not settle in time, or was never named), one line each,
//! the exit code the highest of those that did not succeed; offline, every entry
//! left unfinished.

use std::path::Path;

use laracopilot_mock::{MockProject, MockServer, ProjectStatus, TokenState};
use serde_json::{json, Value};

use crate::common::*;

/// A journal of started entries: `(local id, project id or none)`.
fn journal(path: &Path, entries: &[(&str, Option<&str>)]) {
    let mut lines = Vec::new();
    for (id, project) in entries {
        lines.push(
            json!({"v": 1, "record": "started", "local_id": id, "kind": "generate",
                          "project_id": null, "prompt": format!("Build app {id}"),
                          "at": 1_764_618_266_123_u64, "token": "****9f8e"}),
        );
        if let Some(project) = project {
            lines.push(json!({"v": 1, "record": "project_known", "local_id": id,
                              "project_id": project, "at": 1_764_618_268_001_u64}));
        }
    }
    let text: Vec<String> = lines.iter().map(Value::to_string).collect();
    std::fs::write(path, text.join("\n") + "\n").unwrap();
}

/// The `settled` records of the journal, by entry: `(local id, outcome)`.
fn settled(path: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter(|r| r["record"] == "settled")
        .map(|r| {
            (
                r["local_id"].as_str().unwrap().to_owned(),
                r["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// An offline LaraCopilot that knows `p1` (ready), `p2` (failed) and `p3` (still
/// generating), and the test token.
fn served() -> MockServer {
    let server = MockServer::builder()
        .project(MockProject::new("p1", ProjectStatus::Ready))
        .project(MockProject::new("p2", ProjectStatus::Failed))
        .project(MockProject::new("p3", ProjectStatus::Generating))
        .start()
        .unwrap();
    server.add_token(TOKEN, TokenState::Valid);
    server
}

#[test]
fn resume_settles_each_entry_and_exits_with_the_highest_code() {
    let server = served();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.journal");
    journal(
        &path,
        &[
            ("lcj-a", Some("p1")),
            ("lcj-b", Some("p2")),
            ("lcj-c", None),
            ("lcj-d", Some("gone")),
            ("lcj-e", Some("p3")),
        ],
    );
    let env = [
        ("LARACOPILOT_API_TOKEN", TOKEN),
        ("LARACOPILOT_BASE_URL", server.base_url()),
    ];
    let args = [
        "--json",
        "--timeout",
        "1",
        "--journal",
        path.to_str().unwrap(),
    ];
    let (status, stdout, stderr) = run_bounded(&cli("resume"), &args, &env, LIMIT);
    assert_eq!(status.code(), Some(1), "{stdout}\n{stderr}");
    let lines = json_lines(&stdout);
    let ids: Vec<&str> = lines
        .iter()
        .map(|l| l["local_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["lcj-a", "lcj-b", "lcj-c", "lcj-d", "lcj-e"],
        "oldest first"
    );
    assert!(lines
        .iter()
        .all(|l| l["schema_version"] == 1 && l["kind"] == "generate"));
    assert_eq!(lines[0]["prompt"], "Build app lcj-a");
    assert_eq!(lines[0]["outcome"]["project_status"], "ready");
    assert_eq!(lines[0]["outcome"]["project_id"], "p1");
    let kinds: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l["error"]["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "generation_failed",
            "outcome_unknown",
            "not_found",
            "timeout"
        ]
    );
    assert_eq!(
        settled(&path),
        [
            ("lcj-a".to_owned(), "succeeded".to_owned()),
            ("lcj-b".to_owned(), "failed".to_owned()),
            ("lcj-c".to_owned(), "unknown".to_owned()),
            ("lcj-d".to_owned(), "failed".to_owned()),
        ],
        "the timed-out entry stays unfinished"
    );
    assert!(
        server.requests().iter().all(|r| r.method == "GET"),
        "resume never sends a generation"
    );

    // What is left is only the entry that timed out; settled, it ends the journal.
    let args = ["--timeout", "1", "--journal", path.to_str().unwrap()];
    let (status, stdout, _) = run_bounded(&cli("resume"), &args, &env, LIMIT);
    assert_eq!(status.code(), Some(1));
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stdout.starts_with("lcj-e (generate \"Build app lcj-e\"): timeout: "),
        "{stdout}"
    );
    assert!(
        stdout.contains("left unfinished, to resume later"),
        "{stdout}"
    );
}

#[test]
fn resume_of_a_settled_journal_says_so_and_prints_nothing() {
    let server = served();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.journal");
    journal(&path, &[("lcj-a", Some("p1"))]);
    let env = [
        ("LARACOPILOT_API_TOKEN", TOKEN),
        ("LARACOPILOT_BASE_URL", server.base_url()),
    ];
    let args = ["--journal", path.to_str().unwrap()];
    let (status, stdout, _) = run_bounded(&cli("resume"), &args, &env, LIMIT);
    assert!(status.success());
    assert!(stdout.starts_with("lcj-a (generate \"Build app lcj-a\"): succeeded: project p1, https://p1.laracopilot.com"), "{stdout}");
    let (status, stdout, stderr) = run_bounded(&cli("resume"), &args, &env, LIMIT);
    assert!(status.success(), "{stderr}");
    assert_eq!(stdout, "");
    assert!(stderr.contains("Nothing left unfinished"), "{stderr}");
}

#[test]
fn resume_offline_leaves_every_entry_unfinished() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.journal");
    journal(&path, &[("lcj-a", Some("p1")), ("lcj-b", None)]);
    let args = ["--json", "--journal", path.to_str().unwrap()];
    let (status, stdout, stderr) = run_bounded(&cli("resume"), &args, &[], LIMIT);
    assert_eq!(status.code(), Some(2), "{stderr}");
    let lines = json_lines(&stdout);
    assert_eq!(lines.len(), 2);
    assert!(
        lines.iter().all(|l| l["error"]["kind"] == "config"),
        "{stdout}"
    );
    assert!(settled(&path).is_empty());
}

#[test]
fn resume_needs_a_journal() {
    let (status, stdout, _) = run_bounded(&cli("resume"), &["--json"], &[], LIMIT);
    assert_eq!(status.code(), Some(2));
    let error = &json_lines(&stdout)[0]["error"];
    assert_eq!(error["kind"], "usage");
    assert!(
        error["message"].as_str().unwrap().contains("--journal"),
        "{error}"
    );
}
