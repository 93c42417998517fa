//! `resume --journal PATH`: each unfinished entry settled (a project that succeeded,
//! failed, is unknown, does not settle in time, or was never named; a follow-up the
//! server accepted, or never answered), one line each, the exit code the highest of
//! those that did not succeed; offline, every entry left unfinished. The journals
//! are made by the SDK, as an interrupted run leaves them (see `seed.rs`).

use laracopilot::journal::Kind;
use laracopilot_mock::{MockProject, MockServer, ProjectStatus, TokenState};

use crate::common::*;
use crate::seed::{self, block_on, pairs, settled, Seeder};

/// An offline LaraCopilot that knows `p1` (ready), `p2` (failed) and `p3` (still
/// generating), and the test token: the server the journal's generations ran on.
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

/// The environment of a run against `server`.
fn env(server: &MockServer) -> [(&'static str, &str); 2] {
    [
        ("LARACOPILOT_API_TOKEN", TOKEN),
        ("LARACOPILOT_BASE_URL", server.base_url()),
    ]
}

#[test]
fn resume_settles_each_entry_and_exits_with_the_highest_code() {
    let server = served();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let entries = block_on(async {
        let mut seeder = Seeder::new(&path, &["p1"]);
        seeder.generate_named("Build app a", "p1").await;
        seeder.generate_named("Build app b", "p2").await;
        seeder.generate_unanswered("Build app c").await;
        seeder.generate_named("Build app d", "gone").await;
        seeder.generate_named("Build app e", "p3").await;
        seeder.follow_up_accepted("p1", "Add a dark mode f").await;
        seeder.follow_up_unanswered("p1", "Add a dark mode g").await;
        seeder.close().await
    });
    let prompts: Vec<&str> = entries.iter().map(|e| e.prompt.as_str()).collect();
    assert_eq!(
        prompts,
        [
            "Build app a",
            "Build app b",
            "Build app c",
            "Build app d",
            "Build app e",
            "Add a dark mode f",
            "Add a dark mode g"
        ]
    );
    let c = &entries[2];
    assert!(!c.accepted && c.project_id.is_none(), "{c:?}");
    let (f, g) = (&entries[5], &entries[6]);
    assert!(f.kind == Kind::FollowUp && f.accepted, "{f:?}");
    assert!(g.kind == Kind::FollowUp && !g.accepted, "{g:?}");

    let args = [
        "--json",
        "--timeout",
        "1",
        "--journal",
        path.to_str().unwrap(),
    ];
    let (status, stdout, stderr) = run_bounded(&cli("resume"), &args, &env(&server), LIMIT);
    assert_eq!(status.code(), Some(1), "{stdout}\n{stderr}");
    let lines = json_lines(&stdout);
    let ids: Vec<&str> = lines
        .iter()
        .map(|l| l["local_id"].as_str().unwrap())
        .collect();
    let expected: Vec<&str> = entries.iter().map(|e| e.local_id.as_str()).collect();
    assert_eq!(ids, expected, "oldest first");
    assert!(lines.iter().all(|l| l["schema_version"] == 1));
    let kinds: Vec<&str> = lines.iter().map(|l| l["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "generate",
            "generate",
            "generate",
            "generate",
            "generate",
            "follow_up",
            "follow_up"
        ]
    );
    assert_eq!(lines[0]["prompt"], "Build app a");
    assert_eq!(lines[0]["outcome"]["project_status"], "ready");
    assert_eq!(lines[0]["outcome"]["project_id"], "p1");
    assert_eq!(lines[5]["outcome"]["project_id"], "p1", "{}", lines[5]);
    let errors: Vec<&str> = [1, 2, 3, 4, 6]
        .iter()
        .map(|&i| lines[i]["error"]["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        errors,
        [
            "generation_failed",
            "outcome_unknown",
            "not_found",
            "timeout",
            "outcome_unknown"
        ]
    );
    assert_eq!(
        pairs(&settled(&path)),
        [
            ("Build app a", "succeeded"),
            ("Build app b", "failed"),
            ("Build app c", "unknown"),
            ("Build app d", "failed"),
            ("Add a dark mode f", "succeeded"),
            ("Add a dark mode g", "unknown"),
        ],
        "the timed-out entry stays unfinished"
    );
    assert!(
        server.requests().iter().all(|r| r.method == "GET"),
        "resume never sends a generation"
    );
    let polls_of_p1 = server
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/agent/project/p1"))
        .count();
    assert_eq!(
        polls_of_p1, 2,
        "p1 is polled for its generation and its accepted follow-up, never for the \
         follow-up the server did not answer"
    );

    // What is left is only the entry that timed out; settled, it ends the journal.
    let args = ["--timeout", "1", "--journal", path.to_str().unwrap()];
    let (status, stdout, _) = run_bounded(&cli("resume"), &args, &env(&server), LIMIT);
    assert_eq!(status.code(), Some(1));
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stdout.starts_with(&format!(
            "{} (generate \"Build app e\"): timeout: ",
            entries[4].local_id
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("left unfinished, to resume later"),
        "{stdout}"
    );
    let left = block_on(seed::unfinished(&path));
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].local_id, entries[4].local_id);
}

#[test]
fn resume_of_a_settled_journal_says_so_and_prints_nothing() {
    let server = served();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let entries = block_on(async {
        let mut seeder = Seeder::new(&path, &[]);
        seeder.generate_named("Build app a", "p1").await;
        seeder.close().await
    });
    let args = ["--journal", path.to_str().unwrap()];
    let (status, stdout, _) = run_bounded(&cli("resume"), &args, &env(&server), LIMIT);
    assert!(status.success());
    let expected = format!(
        "{} (generate \"Build app a\"): succeeded: project p1, https://p1.laracopilot.com\n",
        entries[0].local_id
    );
    assert_eq!(stdout, expected);
    let (status, stdout, stderr) = run_bounded(&cli("resume"), &args, &env(&server), LIMIT);
    assert!(status.success(), "{stderr}");
    assert_eq!(stdout, "");
    assert!(stderr.contains("Nothing left unfinished"), "{stderr}");
    assert_eq!(pairs(&settled(&path)), [("Build app a", "succeeded")]);
}

#[test]
fn resume_offline_leaves_every_entry_unfinished() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let entries = block_on(async {
        let mut seeder = Seeder::new(&path, &[]);
        seeder.generate_named("Build app a", "p1").await;
        seeder.generate_unanswered("Build app b").await;
        seeder.close().await
    });
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
    let left = block_on(seed::unfinished(&path));
    assert_eq!(left, entries, "every entry as it was");
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
