//! The `--json` contract of the examples `generate`, `follow_up` and
//! `project_status`: JSON lines on stdout (events, then an outcome or an error
//! object), human messages on stderr, exit codes.
#![cfg(feature = "mock")]

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(60);

/// Runs example `bin` with a token and the base URL of `server` (off the async
/// runtime, which keeps serving).
async fn against(
    server: &wiremock::MockServer,
    bin: std::path::PathBuf,
    args: &[&str],
) -> (std::process::ExitStatus, String, String) {
    let base = format!("{}/api/v1", server.uri());
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env = [
            ("LARACOPILOT_API_TOKEN", TOKEN),
            ("LARACOPILOT_BASE_URL", base.as_str()),
        ];
        run_bounded(&bin, &args, &env, LIMIT)
    })
    .await
    .expect("the example ran")
}

fn json_lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect()
}

#[test]
fn generate_json_offline_prints_every_event_then_the_outcome() {
    let Some(bin) = example("generate") else {
        return;
    };
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

#[test]
fn generate_prints_progress_and_the_app_url_for_people() {
    let Some(bin) = example("generate") else {
        return;
    };
    let (status, stdout, stderr) = run_bounded(&bin, &["Build a task management app"], &[], LIMIT);
    assert!(status.success(), "{stderr}");
    assert!(stdout.contains("100%"), "{stdout}");
    assert!(stdout.contains("  + app/Models/Task.php"), "{stdout}");
    assert!(
        stdout.lines().last().unwrap().starts_with("App: https://"),
        "{stdout}"
    );
}

#[tokio::test]
async fn generate_json_reports_a_401_as_an_error_object_and_exit_code_3() {
    let Some(bin) = example("generate") else {
        return;
    };
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
    assert!(error["message"]
        .as_str()
        .unwrap()
        .starts_with("unauthorized"));
    assert!(!stdout.contains(TOKEN) && !stderr.contains(TOKEN));
}

#[tokio::test]
async fn generate_json_reports_a_rate_limit_with_its_delay() {
    let Some(bin) = example("generate") else {
        return;
    };
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
    let Some(bin) = example("generate") else {
        return;
    };
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
    let Some(bin) = example("follow_up") else {
        return;
    };
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
    let Some(bin) = example("follow_up") else {
        return;
    };
    let (status, stdout, _) = run_bounded(&bin, &["--json"], &[], LIMIT);
    assert_eq!(status.code(), Some(2));
    assert_eq!(json_lines(&stdout)[0]["error"]["kind"], "config");
}

#[test]
fn project_status_json_for_an_unknown_project_is_not_found() {
    let Some(bin) = example("project_status") else {
        return;
    };
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
    let Some(bin) = example("project_status") else {
        return;
    };
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
