//! The subcommands that were the SDK's examples, as command-line tools: the `--json`
//! contract of `generate`, `follow-up`, `status` and `generate --cache` (JSON lines on
//! stdout: events, then an outcome or an error object; human messages on stderr),
//! the plain lines people and logs get when no terminal is attached, `--help` on
//! every subcommand, and the exit codes. Ported from the SDK's `tests/examples.rs`:
//! only the invocations changed (the binary and a subcommand instead of an example).

use serde_json::Value;

use crate::common::*;

#[test]
fn generate_json_offline_prints_every_event_then_the_outcome() {
    let bin = cli("generate");
    let (status, stdout, stderr) =
        run_bounded(&bin, &["--json", "Build a task management app"], &[], LIMIT);
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("embedded offline LaraCopilot"), "{stderr}");
    let lines = json_lines(&stdout);
    let (last, events) = lines.split_last().expect("output");
    assert_eq!(events[0]["event"], "project_created");
    assert_eq!(events[0]["data"]["type"], "project_created");
    assert!(
        events.iter().all(|e| e["event"] == e["data"]["type"]),
        "event names match the wire type"
    );
    assert_eq!(events.last().unwrap()["event"], "stream_end");
    let outcome = &last["outcome"];
    assert_eq!(outcome["events"], events.len());
    assert!(outcome["elapsed_ms"].is_u64(), "{outcome}");
    assert_eq!(outcome["project_id"], events[0]["data"]["project_id"]);
    assert!(outcome["app_url"].as_str().unwrap().starts_with("https://"));
    let files = outcome["files"].as_array().unwrap();
    assert!(
        files
            .iter()
            .any(|f| f.as_str().unwrap().starts_with("app/Models/")),
        "{files:?}"
    );
}

/// Whether `text` is clean lines: no carriage return, escape or other control
/// character.
fn clean_lines(text: &str) -> bool {
    text.chars().all(|c| c == '\n' || !c.is_control())
}

#[test]
fn generate_prints_plain_progress_lines_and_a_summary_without_a_terminal() {
    let bin = cli("generate");
    let (status, stdout, stderr) = run_bounded(&bin, &["Build a task management app"], &[], LIMIT);
    assert!(status.success(), "{stderr}");
    assert!(
        clean_lines(&stdout) && clean_lines(&stderr),
        "{stdout:?} {stderr:?}"
    );
    let progress: Vec<&str> = stderr.lines().collect();
    let first = |prefix: &str| {
        progress
            .iter()
            .position(|line| line.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line {prefix:?} in:\n{stderr}"))
    };
    assert!(
        progress[0].contains("embedded offline LaraCopilot"),
        "{stderr}"
    );
    // One line per phase change, per container step and per file, in order.
    let order = [
        first("     Project p1 created: https://p1.laracopilot.com"),
        first("   Container  10% Provisioning container..."),
        first("   Container  40% Installing Laravel..."),
        first("   Container 100% Starting services..."),
        first("   Container ready in "),
        first("  Generating the application"),
        first("     Created app/Models/Task.php"),
        first("     Created routes/web.php"),
        first("    Finished 12 files in "),
    ];
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{stderr}");
    assert_eq!(
        progress.len(),
        order[8] + 1,
        "nothing after Finished: {stderr}"
    );

    let summary: Vec<&str> = stdout.lines().collect();
    assert_eq!(summary.len(), 4, "{stdout}");
    assert_eq!(summary[0], "Project: p1");
    assert_eq!(summary[1], "App:     https://p1.laracopilot.com");
    assert_eq!(summary[2], "Files:   12 created, 0 modified");
    assert!(summary[3].starts_with("Time:    "), "{stdout}");
}

#[test]
fn follow_up_prints_no_container_phase() {
    let bin = cli("follow-up");
    let (status, stdout, stderr) =
        run_bounded(&bin, &["any", "Add a dark mode with a toggle"], &[], LIMIT);
    assert!(status.success(), "{stderr}");
    assert!(clean_lines(&stderr), "{stderr:?}");
    let after = stderr
        .split_once("is ready: following up\n")
        .map(|(_, rest)| rest)
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(
        after.starts_with("  Generating changes to project p1\n"),
        "{after}"
    );
    assert!(!after.contains("Container"), "{after}");
    assert!(
        after.contains("     Created resources/css/app.css\n"),
        "{after}"
    );
    assert!(stdout.starts_with("Project: p1\n"), "{stdout}");
}

#[tokio::test]
async fn generate_json_reports_a_401_as_an_error_object_and_exit_code_3() {
    let bin = cli("generate");
    let server = server().await;
    mount(&server, "POST", "/agent/generate", unauthorized()).await;
    let (status, stdout, stderr) =
        against(&server, bin, &["--json", "Build a task management app"]).await;
    assert_eq!(status.code(), Some(3), "{stdout} {stderr}");
    let lines = json_lines(&stdout);
    assert_eq!(lines.len(), 1, "{stdout}");
    let error = &lines[0]["error"];
    assert_eq!(error["kind"], "unauthorized");
    assert_eq!(error["status"], 401);
    assert_eq!(error["project_id"], Value::Null);
    assert_eq!(error["retry_after_secs"], Value::Null);
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .starts_with("the API refused the token (HTTP 401"),
        "{error}"
    );
    assert!(!stdout.contains(TOKEN) && !stderr.contains(TOKEN));
}

#[tokio::test]
async fn generate_json_reports_a_rate_limit_with_its_delay() {
    let bin = cli("generate");
    let server = server().await;
    mount(
        &server,
        "POST",
        "/agent/generate",
        wiremock::ResponseTemplate::new(429).insert_header("retry-after", "120"),
    )
    .await;
    let (status, stdout, _) =
        against(&server, bin, &["--json", "Build a task management app"]).await;
    assert_eq!(status.code(), Some(1));
    let error = &json_lines(&stdout)[0]["error"];
    assert_eq!(error["kind"], "rate_limited");
    assert_eq!(error["retry_after_secs"], 120);
}

#[tokio::test]
async fn an_incomplete_stream_reports_the_project_id() {
    let bin = cli("generate");
    let server = server().await;
    let body = sse_body(&[r#"{"type":"project_created","project_id":"p42"}"#]);
    mount(&server, "POST", "/agent/generate", sse(body)).await;
    let (status, stdout, _) =
        against(&server, bin, &["--json", "Build a task management app"]).await;
    assert_eq!(status.code(), Some(1));
    let lines = json_lines(&stdout);
    assert_eq!(lines[0]["event"], "project_created");
    let error = &lines[1]["error"];
    assert_eq!(
        (error["kind"].as_str(), error["project_id"].as_str()),
        (Some("incomplete"), Some("p42"))
    );
}

#[test]
fn follow_up_json_offline_streams_without_container_events() {
    let bin = cli("follow-up");
    let (status, stdout, stderr) = run_bounded(
        &bin,
        &["--json", "any", "Add a dark mode with a toggle"],
        &[],
        LIMIT,
    );
    assert!(status.success(), "{stderr}");
    let lines = json_lines(&stdout);
    let (last, events) = lines.split_last().unwrap();
    assert!(
        events
            .iter()
            .all(|e| !e["event"].as_str().unwrap().starts_with("container")),
        "{stdout}"
    );
    assert_eq!(events.last().unwrap()["event"], "stream_end");
    assert_eq!(last["outcome"]["events"], events.len());
}

#[test]
fn follow_up_without_arguments_is_a_usage_error() {
    let bin = cli("follow-up");
    let (status, stdout, stderr) = run_bounded(&bin, &["--json"], &[], LIMIT);
    assert_eq!(status.code(), Some(2));
    let lines = json_lines(&stdout);
    assert_eq!(lines.len(), 1, "{stdout}");
    let error = &lines[0]["error"];
    assert_eq!(error["kind"], "usage");
    assert!(
        error["message"].as_str().unwrap().contains("<PROJECT_ID>"),
        "{error}"
    );
    assert_eq!(
        (
            &error["status"],
            &error["project_id"],
            &error["retry_after_secs"]
        ),
        (&Value::Null, &Value::Null, &Value::Null)
    );
    assert!(
        stderr.contains("Usage: laracopilot follow-up"),
        "people still read why: {stderr}"
    );
}

#[test]
fn an_unknown_flag_is_a_usage_error_with_or_without_json() {
    let bin = cli("generate");
    let (status, stdout, stderr) = run_bounded(&bin, &["--jsno", "Build an app"], &[], LIMIT);
    assert_eq!(status.code(), Some(2));
    assert_eq!(stdout, "", "nothing on stdout without --json");
    assert!(stderr.contains("--jsno"), "{stderr}");

    let (status, stdout, _) = run_bounded(&bin, &["--json", "--bogus"], &[], LIMIT);
    assert_eq!(status.code(), Some(2));
    let error = &json_lines(&stdout)[0]["error"];
    assert_eq!(error["kind"], "usage");
    assert!(
        error["message"].as_str().unwrap().contains("--bogus"),
        "{error}"
    );
}

#[test]
fn project_status_json_for_an_unknown_project_is_not_found() {
    let bin = cli("status");
    let (status, stdout, _) = run_bounded(&bin, &["--json", "nope"], &[], LIMIT);
    assert_eq!(status.code(), Some(1));
    let error = &json_lines(&stdout)[0]["error"];
    assert_eq!(
        (error["kind"].as_str(), error["status"].as_u64()),
        (Some("not_found"), Some(404))
    );
    assert_eq!(error["project_id"], "nope");
}

#[tokio::test]
async fn project_status_json_prints_the_project_object() {
    let bin = cli("status");
    let server = server().await;
    let body = serde_json::json!({"status": true, "project_id": "abc123", "app_url": "https://abc123.laracopilot.com", "project_status": "ready", "name": "Tasks"});
    mount(
        &server,
        "GET",
        "/agent/project/abc123",
        wiremock::ResponseTemplate::new(200).set_body_json(&body),
    )
    .await;
    let (status, stdout, stderr) = against(&server, bin, &["--json", "abc123"]).await;
    assert!(status.success(), "{stderr}");
    assert_eq!(json_lines(&stdout), [body]);
}

#[tokio::test]
async fn credits_exhausted_exits_4_with_the_project_id() {
    let bin = cli("generate");
    let server = server().await;
    let body = sse_body(&[
        r#"{"type":"project_created","project_id":"p7"}"#,
        r#"{"type":"container_ready","message":"ready"}"#,
        r#"{"type":"file_created","path":"app/Models/Task.php"}"#,
        r#"{"type":"credits_exhausted","message":"Out of credits"}"#,
    ]);
    mount(&server, "POST", "/agent/generate", sse(body)).await;
    let (status, stdout, stderr) =
        against(&server, bin, &["--json", "Build a task management app"]).await;
    assert_eq!(status.code(), Some(4), "{stdout} {stderr}");
    let lines = json_lines(&stdout);
    let error = &lines.last().unwrap()["error"];
    assert_eq!(
        (error["kind"].as_str(), error["project_id"].as_str()),
        (Some("credits_exhausted"), Some("p7"))
    );
    assert_eq!(lines.len(), 4, "three events, then the error: {stdout}");

    let (status, stdout, stderr) = against(&server, bin, &["Build a task management app"]).await;
    assert_eq!(status.code(), Some(4));
    assert_eq!(stdout, "", "no summary for a failed generation");
    assert!(clean_lines(&stderr), "{stderr:?}");
    assert!(
        stderr.contains("      Failed credits_exhausted after 1 file and "),
        "{stderr}"
    );
    assert!(
        stderr.contains("error: the team's credits ran out during the generation of project p7"),
        "{stderr}"
    );
    assert!(stderr.contains("project id: p7"), "{stderr}");
}

#[tokio::test]
async fn a_validation_error_exits_2() {
    let bin = cli("generate");
    let server = server().await;
    let body = serde_json::json!({
        "message": "The prompt field must be at least 10 characters.",
        "errors": {"prompt": ["The prompt field must be at least 10 characters."]}
    });
    mount(
        &server,
        "POST",
        "/agent/generate",
        wiremock::ResponseTemplate::new(422).set_body_json(&body),
    )
    .await;
    let (status, stdout, _) = against(&server, bin, &["--json", "Build"]).await;
    assert_eq!(status.code(), Some(2));
    let error = &json_lines(&stdout)[0]["error"];
    assert_eq!(
        (error["kind"].as_str(), error["status"].as_u64()),
        (Some("validation"), Some(422))
    );
}

#[tokio::test]
async fn a_malformed_event_keeps_its_text_in_the_json_line() {
    let bin = cli("generate");
    let server = server().await;
    let body = format!(
        "{}data: ping\n\n{}",
        sse_body(&[r#"{"type":"project_created","project_id":"p8"}"#]),
        sse_body(&[r#"{"type":"stream_end","project_id":"p8"}"#])
    );
    mount(&server, "POST", "/agent/generate", sse(body)).await;
    let (status, stdout, stderr) =
        against(&server, bin, &["--json", "Build a task management app"]).await;
    assert!(status.success(), "{stderr}");
    let lines = json_lines(&stdout);
    let malformed = &lines[1];
    assert_eq!(malformed["event"], "");
    assert_eq!(malformed["data"], Value::Null);
    assert_eq!(malformed["raw"], "ping");
    assert!(malformed["malformed"].is_string(), "{malformed}");
    assert_eq!(lines[3]["outcome"]["events"], 3);
}

#[test]
fn build_script_json_reports_the_outcome_then_reuses_the_cache() {
    let bin = cli("generate");
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache.json");
    let cache = cache.to_str().unwrap();
    let args = ["--json", "--cache", cache, "Build a blog"];
    let (status, stdout, stderr) = run_bounded(&bin, &args, &[], LIMIT);
    assert!(status.success(), "{stderr}");
    let lines = json_lines(&stdout);
    let (last, events) = lines.split_last().unwrap();
    assert_eq!(events.last().unwrap()["event"], "stream_end");
    assert_eq!(last["outcome"]["cached"], false);
    assert_eq!(last["outcome"]["events"], events.len());

    let (status, stdout, stderr) = run_bounded(&bin, &args, &[], LIMIT);
    assert!(status.success(), "{stderr}");
    let lines = json_lines(&stdout);
    assert_eq!(lines.len(), 1, "{stdout}");
    assert_eq!(lines[0]["outcome"]["cached"], true);
    assert_eq!(lines[0]["outcome"]["files"], last["outcome"]["files"]);
}

/// A flag a subcommand takes reaches its client: `generate --cache` (the build
/// script's pattern) journals its generation and tapes it; status, which starts no
/// generation, has no `--journal` to ignore.
#[test]
fn build_script_keeps_a_journal_and_a_cassette_and_project_status_takes_no_journal() {
    let (build, status_bin) = (cli("generate"), cli("status"));
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let (cache, journal, tape) = (path("cache.json"), path("app.db"), path("app.tape"));
    let args = [
        "--json",
        "--cache",
        &cache,
        "--journal",
        &journal,
        "--record",
        &tape,
        "Build a blog",
    ];
    let (status, stdout, stderr) = run_bounded(&build, &args, &[], LIMIT);
    assert!(status.success(), "{stderr}");
    let outcome = json_lines(&stdout).pop().unwrap();
    let project = outcome["outcome"]["project_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // The journal holds the generation, settled, with its project.
    let journal = std::path::Path::new(&journal);
    let settled = crate::seed::settled(journal);
    assert_eq!(settled.len(), 1, "{settled:?}");
    assert_eq!(
        (settled[0].prompt.as_str(), settled[0].outcome.as_str()),
        ("Build a blog", "succeeded")
    );
    assert_eq!(settled[0].project_id.as_deref(), Some(project.as_str()));
    assert_eq!(
        outcome["outcome"]["journal_id"],
        settled[0].local_id.as_str()
    );
    assert!(crate::seed::block_on(crate::seed::unfinished(journal)).is_empty());
    let tape = std::fs::read_to_string(&tape).unwrap();
    assert!(tape.starts_with("{\"cassette\":"), "{tape}");
    assert!(tape.contains("/agent/generate"), "{tape}");

    let (status, stdout, stderr) = run_bounded(
        &status_bin,
        &["--json", "--journal", "x.db", "p1"],
        &[],
        LIMIT,
    );
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert_eq!(json_lines(&stdout)[0]["error"]["kind"], "usage");
}

/// Every subcommand answers `--help` on stdout, exit 0, naming its arguments and the
/// exit codes. (The examples `load` and `bounded_memory` became benches of the SDK:
/// they are no subcommands.)
#[test]
fn every_example_explains_itself_with_help() {
    const GUARDS: [&str; 6] = [
        "--journal <PATH|URL>",
        "--lease <SECS>",
        "--scope <NAME>",
        "--max-concurrent <N>",
        "--budget <COUNT/WINDOW>",
        "--idempotency-key <KEY>",
    ];
    let generate: Vec<&str> = ["--json", "[PROMPT]...", "--cache <PATH>", "--fresh"]
        .into_iter()
        .chain(GUARDS)
        .collect();
    let follow_up: Vec<&str> = ["--json", "<PROJECT_ID>", "<PROMPT>..."]
        .into_iter()
        .chain(GUARDS)
        .collect();
    let examples: [(&str, &[&str]); 8] = [
        ("generate", &generate),
        ("follow-up", &follow_up),
        ("status", &["--json", "<PROJECT_ID>"]),
        ("plans", &["--json", "--record <FILE>"]),
        (
            "resume",
            &[
                "--json",
                "--journal <PATH|URL>",
                "--lease <SECS>",
                "--timeout <SECS>",
            ],
        ),
        (
            "watch-token",
            &["[ITERATIONS]", "[INTERVAL_MS]", "LARACOPILOT_TOKEN_FILE"],
        ),
        (
            "mock-server",
            &[
                "--port <PORT>",
                "--pacing-ms <MILLISECONDS>",
                "--credits <CREDITS>",
            ],
        ),
        (
            "doctor",
            &[
                "--json",
                "--token-file <FILE>",
                "--expires <DATE>",
                "--warn-days <N>",
            ],
        ),
    ];
    for (name, names) in examples {
        let bin = cli(name);
        for flag in ["--help", "-h"] {
            let (status, stdout, stderr) = run_bounded(&bin, &[flag], &[], LIMIT);
            assert!(status.success(), "{name} {flag}: {stderr}");
            assert!(
                stdout.contains(&format!("Usage: laracopilot {name}")),
                "{name}: {stdout}"
            );
            for expected in names {
                assert!(
                    stdout.contains(expected),
                    "{name} {flag} names {expected}: {stdout}"
                );
            }
            for code in [
                "0  Success",
                "2  Usage or configuration",
                "3  Authentication",
                "141  Stdout was closed",
            ] {
                assert!(stdout.contains(code), "{name}: {stdout}");
            }
            if name != "doctor" {
                assert!(stdout.contains("Exit status:"), "{name}: {stdout}");
                assert!(stdout.contains("4  The team's credits"), "{name}: {stdout}");
                assert!(stdout.contains("6  A budget"), "{name}: {stdout}");
            } else {
                assert!(stdout.contains("5  The token expires within"), "{stdout}");
            }
        }
    }
}

#[tokio::test]
async fn modified_files_are_told_apart_from_created_ones() {
    let bin = cli("generate");
    let server = server().await;
    let body = sse_body(&[
        r#"{"type":"project_created","project_id":"p9","app_url":"https://p9.laracopilot.com"}"#,
        r#"{"type":"container_ready","message":"ready"}"#,
        r#"{"type":"file_created","path":"app/Models/Task.php","action":"created"}"#,
        r#"{"type":"file_created","path":"routes/web.php","action":"modified"}"#,
        r#"{"type":"stream_end","project_id":"p9","app_url":"https://p9.laracopilot.com"}"#,
    ]);
    mount(&server, "POST", "/agent/generate", sse(body)).await;
    let (status, stdout, stderr) = against(&server, bin, &["Build a task management app"]).await;
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains("\n     Created app/Models/Task.php\n"),
        "{stderr}"
    );
    assert!(
        stderr.contains("\n    Modified routes/web.php\n"),
        "{stderr}"
    );
    assert!(
        stdout.contains("\nFiles:   1 created, 1 modified\n"),
        "{stdout}"
    );
}
