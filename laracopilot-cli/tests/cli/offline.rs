//! The offline LaraCopilot from a shell: projects generated offline are remembered
//! (`status p1` and `follow-up p1` find them, new ids skip them), and `mock-server`
//! takes faults, token states, projects and what a left stream becomes from its
//! command line.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;

/// The store of offline projects in `dir`, as the variable gives it.
fn store_env(dir: &tempfile::TempDir) -> (String, String) {
    (
        "LARACOPILOT_OFFLINE_STORE".to_owned(),
        arg_path(dir, "offline-projects.json"),
    )
}

#[test]
fn status_finds_offline_what_an_offline_generate_created_and_says_it_is_offline() {
    let dir = tempfile::tempdir().unwrap();
    let (key, store) = store_env(&dir);
    let env = [(key.as_str(), store.as_str())];
    let (status, stdout, stderr) = run_bounded(
        &cli("generate"),
        &["--json", "Build a task management app"],
        &env,
        LIMIT,
    );
    assert!(status.success(), "{stderr}");
    let generated = json_lines(&stdout).pop().unwrap();
    assert_eq!(generated["outcome"]["project_id"], "p1");

    let (status, stdout, stderr) = run_bounded(&cli("status"), &["p1"], &env, LIMIT);
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("embedded offline LaraCopilot"), "{stderr}");
    assert!(stderr.contains(&store), "where it remembers: {stderr}");
    assert!(stdout.starts_with("Project: p1\n"), "{stdout}");
    assert!(stdout.contains("\nStatus:  ready\n"), "{stdout}");
    assert!(
        stdout.contains("\nOffline: "),
        "stdout says it too: {stdout}"
    );

    let (status, stdout, _) = run_bounded(&cli("status"), &["--json", "p1"], &env, LIMIT);
    assert!(status.success());
    let answer = &json_lines(&stdout)[0];
    assert_eq!(answer["project_status"], "ready");
    assert_eq!(answer["name"], "Task Management App");

    // A second project gets the next id; a follow-up continues the first one.
    let (_, stdout, _) = run_bounded(&cli("generate"), &["--json", "Build a blog"], &env, LIMIT);
    assert_eq!(
        json_lines(&stdout).pop().unwrap()["outcome"]["project_id"],
        "p2"
    );
    let (status, stdout, stderr) = run_bounded(
        &cli("follow-up"),
        &["p1", "Add a dark mode with a toggle"],
        &env,
        LIMIT,
    );
    assert!(status.success(), "{stderr}");
    assert!(!stderr.contains("Preparing"), "p1 is known: {stderr}");
    assert!(
        stderr.contains("  Generating changes to project p1\n"),
        "{stderr}"
    );
    assert!(stdout.starts_with("Project: p1\n"), "{stdout}");
    let remembered = std::fs::read_to_string(&store).unwrap();
    assert!(
        remembered.contains("Add a dark mode with a toggle"),
        "{remembered}"
    );
}

#[test]
fn an_empty_store_variable_remembers_nothing_and_a_broken_store_is_ignored() {
    let env = [("LARACOPILOT_OFFLINE_STORE", "")];
    let (status, _, stderr) = run_bounded(&cli("generate"), &["Build a blog"], &env, LIMIT);
    assert!(status.success(), "{stderr}");
    let (status, stdout, _) = run_bounded(&cli("status"), &["--json", "p1"], &env, LIMIT);
    assert_eq!(status.code(), Some(1));
    assert_eq!(json_lines(&stdout)[0]["error"]["kind"], "not_found");

    let dir = tempfile::tempdir().unwrap();
    let store = arg_path(&dir, "broken.json");
    std::fs::write(&store, "{ not json").unwrap();
    let env = [("LARACOPILOT_OFFLINE_STORE", store.as_str())];
    let (status, stdout, stderr) =
        run_bounded(&cli("generate"), &["--json", "Build a blog"], &env, LIMIT);
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("Ignoring"), "{stderr}");
    assert_eq!(
        json_lines(&stdout).pop().unwrap()["outcome"]["project_id"],
        "p1"
    );
    let repaired = std::fs::read_to_string(&store).unwrap();
    assert!(repaired.contains("\"offline_projects\": 1"), "{repaired}");
}

/// A running `laracopilot mock-server`, killed when dropped.
struct Served {
    child: Child,
    base: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `laracopilot mock-server ARGS` on a free port; its base URL and banner.
fn mock_server(pacing_ms: &str, args: &[&str], dir: &tempfile::TempDir) -> (Served, String) {
    let mut all = vec!["--port", "0", "--pacing-ms", pacing_ms];
    all.extend_from_slice(args);
    let mut child = command(cli("mock-server"), &all, &[], dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let banner = read_until(&mut child, "Press Ctrl-C to stop.", LIMIT);
    let base = banner
        .lines()
        .find_map(|line| line.strip_prefix("Offline LaraCopilot listening at "))
        .unwrap_or_else(|| panic!("no address in {banner}"))
        .trim()
        .to_owned();
    (Served { child, base }, banner)
}

/// Runs `sub` against the served mock with `token`.
fn at(
    served: &Served,
    token: &str,
    sub: &'static str,
    args: &[&str],
) -> (Option<i32>, Vec<Value>, String) {
    let env = [
        ("LARACOPILOT_API_TOKEN", token),
        ("LARACOPILOT_BASE_URL", served.base.as_str()),
    ];
    let (status, stdout, stderr) = run_bounded(&cli(sub), args, &env, LIMIT);
    (status.code(), json_lines(&stdout), stderr)
}

const DEMO: &str = "lcp_mock_local_demo_token";

#[test]
fn mock_server_serves_faults_tokens_and_projects_from_its_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let (served, banner) = mock_server(
        "5",
        &[
            "--fault",
            "drop-after:5",
            "--fault",
            "stall",
            "--revoked-token",
            "lcp_revoked_demo_0001",
            "--expired-token",
            "lcp_expired_demo_0002",
            "--project",
            "p9=failed",
        ],
        &dir,
    );
    assert!(
        banner.contains("Faults of stream 1: drop-after:5"),
        "{banner}"
    );
    assert!(banner.contains("Revoked tokens: ****0001"), "{banner}");
    assert!(
        !banner.contains("lcp_revoked_demo_0001"),
        "tokens are masked: {banner}"
    );
    assert!(banner.contains("Projects: p9 (failed)"), "{banner}");

    let prompt = "Build a task management app";
    let (code, lines, _) = at(&served, DEMO, "generate", &["--json", prompt]);
    let error = &lines.last().unwrap()["error"];
    assert_eq!(
        (code, error["kind"].as_str()),
        (Some(1), Some("incomplete")),
        "{error}"
    );
    assert_eq!(lines.len(), 6, "five events, then the error");
    assert!(error["project_id"].is_string());

    let (code, lines, _) = at(
        &served,
        DEMO,
        "generate",
        &["--json", "--idle-timeout", "1", prompt],
    );
    let error = &lines.last().unwrap()["error"];
    assert_eq!(
        (code, error["kind"].as_str()),
        (Some(1), Some("timeout")),
        "{error}"
    );
    assert_eq!(
        lines[0]["event"], "project_created",
        "the stall comes after it"
    );

    let (code, lines, stderr) = at(&served, DEMO, "generate", &["--json", prompt]);
    assert_eq!(code, Some(0), "the faults were used up: {stderr}");
    assert!(lines.last().unwrap()["outcome"]["files"].is_array());

    let (code, lines, _) = at(&served, DEMO, "status", &["--json", "p9"]);
    assert_eq!(
        (code, lines[0]["project_status"].as_str()),
        (Some(0), Some("failed"))
    );

    for (token, kind) in [
        ("lcp_revoked_demo_0001", "unauthorized"),
        ("lcp_expired_demo_0002", "token_expired"),
    ] {
        let (code, lines, _) = at(&served, token, "generate", &["--json", prompt]);
        assert_eq!(
            (code, lines[0]["error"]["kind"].as_str()),
            (Some(3), Some(kind))
        );
        let (code, lines, _) = at(&served, token, "doctor", &["--json"]);
        assert_eq!(code, Some(3), "{lines:?}");
        let status = &lines[0]["doctor"]["findings"][3];
        assert_eq!(status["status"], "problem", "{status}");
    }
}

/// Polls `status --json ID` until the project has left `generating` (at most 20 s).
fn settled_status(served: &Served, id: &str) -> String {
    let started = Instant::now();
    loop {
        let (_, lines, _) = at(served, DEMO, "status", &["--json", id]);
        let status = lines[0]["project_status"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if status != "generating" || started.elapsed() > Duration::from_secs(20) {
            return status;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts a generation on the served mock and leaves it after its first event (the
/// reader of its stdout goes away); the project's id.
fn leave_after_project_created(served: &Served, dir: &tempfile::TempDir) -> String {
    let env = [
        ("LARACOPILOT_API_TOKEN", DEMO),
        ("LARACOPILOT_BASE_URL", served.base.as_str()),
    ];
    let mut child = command(
        cli("generate"),
        &["--json", "Build a task management app"],
        &env,
        dir.path(),
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let first = read_until(&mut child, "\n", LIMIT);
    drop(child.stdout.take());
    assert_eq!(
        wait_bounded(&mut child, LIMIT, &"generate").code(),
        Some(141)
    );
    let line: Value = serde_json::from_str(first.trim()).unwrap();
    line["data"]["project_id"].as_str().unwrap().to_owned()
}

#[test]
fn a_generation_its_client_left_finishes_unless_the_mock_server_is_told_to_fail_it() {
    let dir = tempfile::tempdir().unwrap();
    let (served, _) = mock_server("100", &[], &dir);
    let id = leave_after_project_created(&served, &dir);
    assert_eq!(settled_status(&served, &id), "ready");
    drop(served);

    let (served, _) = mock_server("100", &["--on-client-drop", "fail"], &dir);
    let id = leave_after_project_created(&served, &dir);
    assert_eq!(settled_status(&served, &id), "failed");
}

#[test]
fn mock_server_refuses_a_fault_it_does_not_know() {
    let (status, stdout, stderr) =
        run_bounded(&cli("mock-server"), &["--fault", "explode"], &[], LIMIT);
    assert_eq!(status.code(), Some(2));
    assert_eq!(stdout, "");
    assert!(stderr.contains("\"explode\" is not a fault"), "{stderr}");
}
