//! The record-and-replay workflow through the subcommands, as the README shows it:
//! `generate --record FILE` (and `follow-up --record FILE`), then the same command
//! against `mock-server --replay FILE` (or `MockServer::replay`) through
//! `LARACOPILOT_BASE_URL`, prints the same events and outcome. Ported from the
//! SDK's `tests/cassette_examples.rs`.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use laracopilot::cassette::Cassette;
use laracopilot_mock::MockServer;
use serde_json::Value;

use crate::common::{cli, json_lines, run_bounded, BIN};

const LIMIT: Duration = Duration::from_secs(60);
const PROMPT: &str = "Build a task management app";
/// Any value: a replay does not check the token.
const ANY_TOKEN: &str = "lcp_replay_needs_no_real_token";

/// The event lines, and the outcome without its timing.
fn comparable(stdout: &str) -> (Vec<Value>, Value) {
    let mut lines = json_lines(stdout);
    let mut outcome = lines.pop().expect("an outcome line");
    outcome["outcome"]
        .as_object_mut()
        .expect("an outcome")
        .remove("elapsed_ms");
    (lines, outcome)
}

fn record(name: &'static str, args: &[&str], path: &Path) -> String {
    let bin = cli(name);
    let path = path.to_str().unwrap();
    let mut all = vec!["--json", "--record", path];
    all.extend_from_slice(args);
    let (status, stdout, stderr) = run_bounded(&bin, &all, &[], LIMIT);
    assert!(status.success(), "{name}: {stderr}");
    assert!(
        stderr.contains(&format!("Recording into {path}")),
        "{stderr}"
    );
    stdout
}

fn against(name: &'static str, args: &[&str], base_url: &str) -> String {
    let bin = cli(name);
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let env = [
        ("LARACOPILOT_API_TOKEN", ANY_TOKEN),
        ("LARACOPILOT_BASE_URL", base_url),
    ];
    let (status, stdout, stderr) = run_bounded(&bin, &all, &env, LIMIT);
    assert!(
        status.success(),
        "{name} against the replay: {stderr}\n{stdout}"
    );
    stdout
}

#[test]
fn generate_records_offline_and_replays_the_same_events_and_outcome() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("generate.cassette");
    let recorded = record("generate", &[PROMPT], &path);
    let tape = Cassette::load(&path).unwrap();
    assert_eq!(tape.len(), 1);
    assert_eq!(tape.events(), 34);

    let server = MockServer::replay(tape);
    let replayed = against("generate", &[PROMPT], server.base_url());
    assert_eq!(comparable(&replayed), comparable(&recorded));
    assert!(server.unmatched().is_empty(), "{:?}", server.unmatched());
}

#[test]
fn follow_up_records_both_calls_and_replays_the_follow_up() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("follow_up.cassette");
    let recorded = record(
        "follow-up",
        &["any", "Add a dark mode with a toggle"],
        &path,
    );
    let tape = Cassette::load(&path).unwrap();
    let paths: Vec<&str> = tape
        .exchanges()
        .iter()
        .map(|e| e.request.path.as_str())
        .collect();
    assert_eq!(paths, ["/agent/generate", "/agent/generate/p1"]);

    let server = MockServer::replay(tape);
    let replayed = against(
        "follow-up",
        &["p1", "Add a dark mode with a toggle"],
        server.base_url(),
    );
    assert_eq!(comparable(&replayed), comparable(&recorded));
    assert_eq!(
        server.unplayed(),
        1,
        "the preparing generation was not asked for"
    );
}

#[test]
fn mock_server_replays_a_cassette_for_any_program() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("served.cassette");
    let recorded = record("generate", &[PROMPT], &path);
    let out_path = dir.path().join("mock_server.out");
    let mut child = Command::new(BIN)
        .args([
            "mock-server",
            "--port",
            "0",
            "--replay-pacing",
            "0",
            "--replay",
        ])
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("mock_server starts");
    let started = Instant::now();
    let base_url = loop {
        let mut printed = String::new();
        if let Ok(mut file) = std::fs::File::open(&out_path) {
            let _ = file.read_to_string(&mut printed);
        }
        if let Some(url) = printed
            .lines()
            .find_map(|line| line.strip_prefix("Offline LaraCopilot listening at "))
        {
            assert!(printed.contains("Replaying"), "{printed}");
            break url.trim().to_owned();
        }
        if started.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("mock_server printed no address: {printed}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let replayed = against("generate", &[PROMPT], &base_url);
    // A second run is not on the tape: a 501, reported as an API error.
    let bin = cli("generate");
    let env = [
        ("LARACOPILOT_API_TOKEN", ANY_TOKEN),
        ("LARACOPILOT_BASE_URL", base_url.as_str()),
    ];
    let (status, stdout, _) = run_bounded(&bin, &["--json", PROMPT], &env, LIMIT);
    child.kill().expect("stop mock_server");
    child.wait().unwrap();
    assert_eq!(comparable(&replayed), comparable(&recorded));
    assert_eq!(status.code(), Some(1));
    let error = &json_lines(&stdout)[0]["error"];
    assert_eq!(error["status"], 501, "{stdout}");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("is not on the tape"), "{stdout}");
}
