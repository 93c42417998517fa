//! Terminal output is the program's own: server text (file paths, messages, project
//! ids, app URLs, error messages, status answers, journal prompts, a tape's
//! requests) never reaches a person's screen raw. Every control character (C0, DEL,
//! C1), bidirectional control and line or paragraph separator is escaped, so a
//! server can neither forge a line nor rewrite the screen; `--json` keeps the exact
//! values.

use serde_json::{json, Value};

use crate::common::*;
use crate::seed::{block_on, Seeder};

/// Text a hostile server sends: a forged line, ANSI sequences (clear screen, color,
/// cursor home), a CR overwrite, a bell, C1 controls (NEL, CSI), bidi overrides and
/// isolates, and the line and paragraph separators.
const HOSTILE: [&str; 8] = [
    "x\n     Created /etc/passwd",
    "\x1b[2J\x1b[H\x1b[31mred",
    "innocent\rEVIL overwrite",
    "bell\x07\x7f",
    "nel\u{85}csi\u{9b}2J",
    "\u{202e}php.exe\u{202c}",
    "\u{2066}iso\u{2069}\u{061c}\u{200e}\u{200f}",
    "line\u{2028}para\u{2029}",
];

/// The characters that must never reach a terminal (the line ends aside).
fn is_unsafe(c: char) -> bool {
    let code = u32::from(c);
    (c != '\n' && c.is_control())
        || matches!(code, 0x61c | 0x200b..=0x200f | 0x2028..=0x202e | 0x2060..=0x2069 | 0xfeff)
}

/// Fails naming the first unsafe character of `text` and the line it is on, and
/// any line that starts with a forged prefix.
fn assert_safe(label: &str, text: &str) {
    for (n, line) in text.lines().enumerate() {
        if let Some(c) = line.chars().find(|c| is_unsafe(*c)) {
            panic!("{label}: line {n} holds U+{:04X}: {line:?}", u32::from(c));
        }
        assert!(
            !line.starts_with("     Created /etc/passwd") && !line.starts_with("EVIL"),
            "{label}: a forged line: {line:?}\n{text}"
        );
    }
}

/// One event stream whose every server-given string is hostile.
fn hostile_stream(id: &str) -> String {
    let mut events = vec![
        json!({"type": "project_created", "project_id": id, "app_url": format!("https://{}", HOSTILE[1])}),
    ];
    for text in HOSTILE {
        events.push(json!({"type": "container_progress", "message": text, "percentage": 50}));
    }
    events.push(json!({"type": "container_ready", "message": HOSTILE[2]}));
    for text in HOSTILE {
        events.push(
            json!({"type": "file_created", "path": format!("app/{text}.php"), "action": "created"}),
        );
    }
    events.push(json!({"type": "stream_end", "project_id": id, "app_url": format!("https://{}", HOSTILE[5])}));
    let lines: Vec<String> = events.iter().map(Value::to_string).collect();
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    sse_body(&refs)
}

#[tokio::test]
async fn hostile_ids_urls_messages_and_paths_are_escaped_in_progress_and_summary() {
    for id in HOSTILE {
        let server = server().await;
        mount(&server, "POST", "/agent/generate", sse(hostile_stream(id))).await;
        let (status, stdout, stderr) =
            against(&server, cli("generate"), &["Build a task management app"]).await;
        assert!(status.success(), "{stderr}");
        assert_safe("stdout", &stdout);
        assert_safe("stderr", &stderr);
        assert!(stdout.starts_with("Project: "), "{stdout}");
        assert_eq!(
            stdout.lines().count(),
            4,
            "a summary of four lines: {stdout}"
        );
        for visible in ["\\u{1b}[2J", "\\r", "\\u{202e}", "\\u{85}", "\\u{2028}"] {
            assert!(
                stderr.contains(visible),
                "{visible} shown escaped: {stderr}"
            );
        }
        assert!(
            stderr.contains("Created app/x\\n     Created /etc/passwd.php"),
            "{stderr}"
        );
    }
}

#[tokio::test]
async fn json_output_keeps_every_hostile_value_exact() {
    let id = HOSTILE[0];
    let server = server().await;
    mount(&server, "POST", "/agent/generate", sse(hostile_stream(id))).await;
    let (status, stdout, stderr) =
        against(&server, cli("generate"), &["--json", "Build it all"]).await;
    assert!(status.success(), "{stderr}");
    assert_safe("stderr", &stderr);
    let lines = json_lines(&stdout);
    assert_eq!(lines[0]["data"]["project_id"], id);
    let messages: Vec<&str> = lines
        .iter()
        .filter(|l| l["event"] == "container_progress")
        .map(|l| l["data"]["message"].as_str().unwrap())
        .collect();
    assert_eq!(messages, HOSTILE);
    let outcome = &lines.last().unwrap()["outcome"];
    assert_eq!(outcome["project_id"], id);
    let files: Vec<String> = HOSTILE.iter().map(|t| format!("app/{t}.php")).collect();
    assert_eq!(outcome["files"], json!(files));
}

#[tokio::test]
async fn hostile_error_messages_are_escaped_on_stderr() {
    let said = HOSTILE.join(" | ");
    let answers = [
        wiremock::ResponseTemplate::new(500).set_body_json(json!({"message": said})),
        wiremock::ResponseTemplate::new(422)
            .set_body_json(json!({"message": said, "errors": {"prompt": HOSTILE}})),
        wiremock::ResponseTemplate::new(401)
            .set_body_json(json!({"status": false, "message": said})),
        sse(sse_body(&[
            &json!({"type": "project_created", "project_id": HOSTILE[1]}).to_string(),
            &json!({"type": "credits_exhausted", "message": said}).to_string(),
        ])),
    ];
    for answer in answers {
        let server = server().await;
        mount(&server, "POST", "/agent/generate", answer).await;
        let (status, stdout, stderr) =
            against(&server, cli("generate"), &["Build a task management app"]).await;
        assert!(!status.success(), "{stderr}");
        assert_safe("stdout", &stdout);
        assert_safe("stderr", &stderr);
        assert!(stderr.contains("error: "), "{stderr}");
    }
}

#[tokio::test]
async fn a_hostile_status_answer_is_escaped() {
    let server = server().await;
    let body = json!({
        "status": true, "project_id": "abc123", "app_url": HOSTILE[1],
        "project_status": HOSTILE[2], "name": HOSTILE[0]
    });
    mount(
        &server,
        "GET",
        "/agent/project/abc123",
        wiremock::ResponseTemplate::new(200).set_body_json(&body),
    )
    .await;
    let (status, stdout, stderr) = against(&server, cli("status"), &["abc123"]).await;
    assert!(status.success(), "{stderr}");
    assert_safe("stdout", &stdout);
    assert_eq!(stdout.lines().count(), 4, "{stdout}");
    assert!(
        stdout.contains("Name:    x\\n     Created /etc/passwd\n"),
        "{stdout}"
    );

    let (status, stdout, _) = against(&server, cli("status"), &["--json", "abc123"]).await;
    assert!(status.success());
    assert_eq!(json_lines(&stdout), [body], "the answer as the API sent it");
}

/// A journal (made by the SDK) of one generation per hostile text: the text as its
/// prompt, and a hostile project id its server named; the project ids, in order.
fn hostile_journal(path: &std::path::Path) -> Vec<String> {
    let ids: Vec<String> = (0..HOSTILE.len())
        .map(|i| format!("{}{i}", HOSTILE[(i + 1) % HOSTILE.len()]))
        .collect();
    let entries = block_on(async {
        let mut seeder = Seeder::new(path, &[]);
        for (text, id) in HOSTILE.iter().zip(&ids) {
            seeder.generate_named(text, id).await;
        }
        seeder.close().await
    });
    let prompts: Vec<&str> = entries.iter().map(|e| e.prompt.as_str()).collect();
    assert_eq!(prompts, HOSTILE, "the journal holds the prompts exactly");
    ids
}

#[test]
fn a_journal_with_hostile_prompts_and_ids_is_reported_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("app.db");
    hostile_journal(&journal);
    let path = journal.to_str().unwrap();
    let (status, stdout, stderr) = run_bounded(&cli("resume"), &["--journal", path], &[], LIMIT);
    assert_eq!(
        status.code(),
        Some(2),
        "offline: left unfinished\n{stdout}\n{stderr}"
    );
    assert_eq!(stdout.lines().count(), HOSTILE.len(), "{stdout}");
    assert_safe("stdout", &stdout);
    assert_safe("stderr", &stderr);

    // Against a server: each id is polled (or refused before sending), and told.
    let server = laracopilot_mock::MockServer::start();
    server.add_token(TOKEN, laracopilot_mock::TokenState::Valid);
    let env = [
        ("LARACOPILOT_API_TOKEN", TOKEN),
        ("LARACOPILOT_BASE_URL", server.base_url()),
    ];
    let args = ["--timeout", "1", "--journal", path];
    let (status, stdout, stderr) = run_bounded(&cli("resume"), &args, &env, LIMIT);
    assert!(!status.success(), "{stdout}\n{stderr}");
    assert_eq!(stdout.lines().count(), HOSTILE.len(), "{stdout}");
    assert_safe("stdout", &stdout);
    assert_safe("stderr", &stderr);
}

#[test]
fn resume_json_keeps_hostile_prompts_and_ids_exact() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("app.db");
    let ids = hostile_journal(&journal);
    let server = laracopilot_mock::MockServer::start();
    server.add_token(TOKEN, laracopilot_mock::TokenState::Valid);
    let env = [
        ("LARACOPILOT_API_TOKEN", TOKEN),
        ("LARACOPILOT_BASE_URL", server.base_url()),
    ];
    let args = [
        "--json",
        "--timeout",
        "1",
        "--journal",
        journal.to_str().unwrap(),
    ];
    let (_, stdout, stderr) = run_bounded(&cli("resume"), &args, &env, LIMIT);
    assert_safe("stderr", &stderr);
    let lines = json_lines(&stdout);
    assert_eq!(lines.len(), HOSTILE.len(), "{stdout}");
    for ((line, text), id) in lines.iter().zip(HOSTILE).zip(&ids) {
        assert_eq!(line["prompt"], text, "{line}");
        assert_eq!(line["project_id"], id.as_str(), "{line}");
        let told = &line["error"]["project_id"];
        assert!(told.is_null() || told == id.as_str(), "{line}");
    }
}

#[test]
fn a_hostile_tape_is_escaped_in_the_mock_servers_banner() {
    let dir = tempfile::tempdir().unwrap();
    let tape = dir.path().join("hostile.cassette");
    let path = "/agent/generate\u{1b}[2J\rEVIL";
    let body = "{\"prompt\":\"\u{1b}[2J\r\u{202e}evil\n     Created /etc/passwd\"}";
    let lines = [
        json!({"cassette": 1}).to_string(),
        json!({"x": 1, "request": {"method": "POST", "path": path, "body": body,
               "headers": {"accept": "text/event-stream\u{1b}[31m"}}})
        .to_string(),
        json!({"x": 1, "t": 3, "status": 200, "headers": [["content-type", "text/event-stream"]]})
            .to_string(),
        json!({"x": 1, "t": 4, "end": "complete"}).to_string(),
    ];
    std::fs::write(&tape, lines.join("\n") + "\n").unwrap();
    let mut child = command(
        cli("mock-server"),
        &["--replay", tape.to_str().unwrap()],
        &[],
        dir.path(),
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    let banner = read_until(&mut child, "Press Ctrl-C to stop.", LIMIT);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        banner.contains("Try the first request on the tape:"),
        "{banner}"
    );
    assert_safe("banner", &banner);
}
