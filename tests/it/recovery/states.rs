//! Recovery never calls a failure a success: a stream that breaks after
//! `project_created` turns into polling, never into a second POST; a polled project
//! that failed (in any spelling) is `Error::GenerationFailed` with the project; one
//! still running is polled again, through a proxy's odd answers, until it succeeds.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::raw::{self, within, RawServer, Step, PATIENCE};
use laracopilot::{Client, Error, Outcome, ProjectState, WaitOptions};

const PROJECT_CREATED: &str =
    r#"{"type":"project_created","project_id":"p1","app_url":"https://p1.example"}"#;

/// The start of a stream: the head and `project_created`.
fn stream_start() -> Vec<u8> {
    let mut bytes = raw::sse_head();
    bytes.extend_from_slice(raw::sse_events(&[PROJECT_CREATED]).as_bytes());
    bytes
}

/// A stream broken after `project_created` (the connection closes).
fn broken_stream() -> Vec<Step> {
    vec![Step::Write(stream_start()), Step::Close]
}

/// A status answer with `project_status`, given as JSON text (escapes allowed).
fn status(project_status: &str) -> Vec<u8> {
    raw::json(
        200,
        &format!(
            r#"{{"status":true,"project_id":"p1","app_url":"https://p1.example/app","project_status":"{project_status}"}}"#
        ),
    )
}

/// A server that answers the generate call with `stream`, and poll number `n` with
/// `polls[n]` (the last one again once they run out).
fn server(stream: Vec<Step>, polls: Vec<Vec<u8>>) -> RawServer {
    let polls = Arc::new(polls);
    let gets = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    RawServer::start(move |request| {
        if request.method == "POST" {
            return stream.clone();
        }
        let n = gets.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let answer = polls
            .get(n)
            .or(polls.last())
            .cloned()
            .unwrap_or_else(|| raw::json(500, "{}"));
        vec![Step::Write(answer)]
    })
}

fn options() -> WaitOptions {
    WaitOptions::default()
        .timeout(Duration::from_secs(10))
        .interval(Duration::from_millis(100), Duration::from_millis(100))
}

/// The idle timeout (or stream deadline) of a stream that must break in its
/// silence: above the 0.2 s a fresh connection's answer took with both cores busy.
const SILENCE: Duration = Duration::from_secs(1);

fn client(server: &RawServer) -> Client {
    raw::builder(&server.base_url())
        .idle_timeout(Some(SILENCE))
        .build()
        .unwrap()
}

/// Generates, then finishes or recovers with `options`, bounded.
async fn recover(client: &Client, options: WaitOptions) -> laracopilot::Result<Outcome> {
    within(PATIENCE, "finish_or_recover", async {
        let generation = client.generate("Build a task management app").await?;
        client.finish_or_recover(generation, options).await
    })
    .await
}

#[tokio::test]
async fn a_polled_failure_in_any_spelling_is_generation_failed_carrying_the_project() {
    for failed in [
        "failed",
        "error",
        "cancelled",
        "canceled",
        "credits_exhausted",
        "aborted",
        "FAILED",
        " Failed ",
        "Error",
        "CANCELLED",
        "credits-exhausted",
        "Credits Exhausted",
        "CREDITS_EXHAUSTED",
        "timed out",
        "error\\n",
        "\\tcancelled",
    ] {
        // Still running at first, then failed.
        let server = server(broken_stream(), vec![status("active"), status(failed)]);
        let outcome = recover(&client(&server), options()).await;
        let error = match outcome {
            Err(error) => error,
            Ok(outcome) => panic!("{failed:?} was called a success: {outcome:?}"),
        };
        let Error::GenerationFailed { project, .. } = &error else {
            panic!("{failed:?}: {error:?}");
        };
        assert_eq!(project.project_id.as_str(), "p1");
        assert_eq!(project.state(), ProjectState::Failed, "{failed:?}");
        let sent: String = serde_json::from_str(&format!("\"{failed}\"")).unwrap();
        assert_eq!(project.project_status.as_deref(), Some(sent.as_str()));
        assert_eq!(error.project_id().map(|id| id.as_str()), Some("p1"));
        assert!(error.may_have_started_work(), "{failed:?}");
        assert!(!error.is_transient(), "{failed:?}");
        assert_eq!(server.count("POST"), 1, "{failed:?}: never a second POST");
        assert_eq!(server.count("GET"), 2, "{failed:?}");
    }
}

#[tokio::test]
async fn a_project_still_running_is_polled_again_until_it_is_ready() {
    let server = server(
        broken_stream(),
        vec![
            status("active"),
            status("generating"),
            status("Active"),
            status(""),
            status("<string>"),
            raw::json(200, r#"{"status":true,"project_id":"p1"}"#),
            status("ready"),
        ],
    );
    let outcome = recover(&client(&server), options())
        .await
        .expect("a ready project is a success");
    let project = outcome
        .recovered
        .as_ref()
        .expect("the outcome says recovered");
    assert_eq!(project.project_status.as_deref(), Some("ready"));
    assert_eq!(outcome.project_id().map(|id| id.as_str()), Some("p1"));
    assert_eq!(outcome.app_url.as_deref(), Some("https://p1.example/app"));
    assert_eq!(server.count("GET"), 7);
    assert_eq!(server.count("POST"), 1);
}

#[tokio::test]
async fn a_proxys_html_page_and_gateway_errors_between_polls_do_not_end_the_recovery() {
    let html = |status| {
        raw::response(
            status,
            &[("Content-Type", "text/html")],
            "<html><body><h1>Bad Gateway</h1></body></html>",
        )
    };
    let server = server(
        broken_stream(),
        vec![
            html(200),
            html(502),
            raw::json(503, r#"{"message":"Service Unavailable"}"#),
            raw::response(504, &[], ""),
            raw::response(
                200,
                &[("Content-Type", "application/json")],
                r#"{"status":tr"#,
            ),
            status("active"),
            status("ready"),
        ],
    );
    let outcome = recover(&client(&server), options())
        .await
        .expect("the odd answers are transient");
    assert_eq!(
        outcome.recovered.and_then(|p| p.project_status).as_deref(),
        Some("ready")
    );
    assert_eq!(server.count("GET"), 7);
    assert_eq!(server.count("POST"), 1);
}

#[tokio::test]
async fn every_way_a_stream_breaks_after_project_created_is_recovered_without_a_second_post() {
    let oversized = format!(
        "data: {{\"type\":\"tool_progress\",\"message\":\"{}\"}}\n\n",
        "x".repeat(10 * 1024)
    );
    let mut chunked_head = raw::head(
        200,
        &[
            ("Content-Type", "text/event-stream"),
            ("Transfer-Encoding", "chunked"),
        ],
    );
    chunked_head.extend_from_slice(&raw::chunk(raw::sse_events(&[PROJECT_CREATED])));
    // A chunk of 0x100 bytes announced, a few written, then the connection closes.
    chunked_head.extend_from_slice(b"100\r\ndata: {\"type\":\"tool_");
    let breaks: Vec<(&str, Vec<Step>)> = vec![
        ("a close", broken_stream()),
        (
            "a reset",
            vec![Step::Write(stream_start()), Step::sleep_ms(50), Step::Reset],
        ),
        (
            "a half-written chunk",
            vec![Step::Write(chunked_head), Step::sleep_ms(50), Step::Close],
        ),
        ("silence", vec![Step::Write(stream_start()), Step::Stall]),
        (
            "an oversized event",
            vec![
                Step::Write(stream_start()),
                Step::write(oversized),
                Step::Stall,
            ],
        ),
    ];
    for (how, stream) in breaks {
        let server = server(stream, vec![status("active"), status("ready")]);
        let client = raw::builder(&server.base_url())
            .idle_timeout(Some(SILENCE))
            .max_event_size(1024)
            .build()
            .unwrap();
        let outcome = recover(&client, options())
            .await
            .unwrap_or_else(|e| panic!("{how}: {e:?}"));
        assert!(outcome.recovered.is_some(), "{how}");
        assert_eq!(server.count("POST"), 1, "{how}: never a second POST");
        assert_eq!(server.count("GET"), 2, "{how}");
    }

    // A stream deadline is a broken stream too.
    let server = server(
        vec![Step::Write(stream_start()), Step::Stall],
        vec![status("ready")],
    );
    let client = raw::builder(&server.base_url())
        .stream_deadline(Some(SILENCE))
        .build()
        .unwrap();
    let outcome = recover(&client, options()).await.expect("recovered");
    assert!(outcome.recovered.is_some());
    assert_eq!(server.count("POST"), 1);
}

#[tokio::test]
async fn credits_exhausted_and_a_stream_broken_before_its_project_id_are_not_recovered() {
    let credits = server(
        vec![Step::Write(raw::sse_answer(&[
            PROJECT_CREATED,
            r#"{"type":"credits_exhausted"}"#,
        ]))],
        vec![status("ready")],
    );
    let error = recover(&client(&credits), options()).await.unwrap_err();
    assert!(matches!(error, Error::CreditsExhausted { .. }), "{error:?}");
    assert_eq!(credits.count("GET"), 0, "an answer, not a broken stream");

    let no_id = server(
        vec![
            Step::Write(raw::sse_answer(&[
                r#"{"type":"container_progress","message":"m"}"#,
            ])),
            Step::Close,
        ],
        vec![status("ready")],
    );
    let error = recover(&client(&no_id), options()).await.unwrap_err();
    assert!(matches!(error, Error::Incomplete { .. }), "{error:?}");
    assert_eq!(no_id.count("GET"), 0, "no id to poll");
    assert_eq!(no_id.count("POST"), 1, "and no second POST instead");
}

#[tokio::test]
async fn classify_with_reads_the_servers_own_words() {
    let own_words = || {
        options().classify_with(|project| match project.project_status.as_deref() {
            Some("shipped") => ProjectState::Succeeded,
            Some("broken") => ProjectState::Failed,
            _ => ProjectState::Pending,
        })
    };
    // "ready" means nothing to this reading: keep polling until "shipped".
    let shipped = server(
        broken_stream(),
        vec![status("ready"), status("failed"), status("shipped")],
    );
    let outcome = recover(&client(&shipped), own_words())
        .await
        .expect("shipped");
    assert_eq!(
        outcome.recovered.and_then(|p| p.project_status).as_deref(),
        Some("shipped")
    );
    assert_eq!(shipped.count("GET"), 3);

    let broken = server(broken_stream(), vec![status("queued"), status("broken")]);
    let error = recover(&client(&broken), own_words()).await.unwrap_err();
    let Error::GenerationFailed { project, .. } = &error else {
        panic!("{error:?}");
    };
    assert_eq!(project.project_status.as_deref(), Some("broken"));
    // The default reading does not know "broken": the project would be pending.
    assert_eq!(project.state(), ProjectState::Pending);

    // And the default reading does not take "shipped" for a success.
    let unknown = server(broken_stream(), vec![status("shipped")]);
    let error = recover(
        &client(&unknown),
        options().timeout(Duration::from_millis(800)),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            error,
            Error::Timeout {
                kind: laracopilot::TimeoutKind::Wait,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(unknown.count("POST"), 1);
}

#[tokio::test]
async fn project_state_reads_statuses_in_any_case_and_spacing() {
    let cases: &[(&str, ProjectState)] = &[
        ("ready", ProjectState::Succeeded),
        ("READY", ProjectState::Succeeded),
        (" Completed ", ProjectState::Succeeded),
        ("deployed", ProjectState::Succeeded),
        ("failed", ProjectState::Failed),
        ("Credits Exhausted", ProjectState::Failed),
        ("credits-exhausted", ProjectState::Failed),
        ("timed_out", ProjectState::Failed),
        ("Timed-Out", ProjectState::Failed),
        ("active", ProjectState::Pending),
        ("generating", ProjectState::Pending),
        ("", ProjectState::Pending),
        ("ready!", ProjectState::Pending),
        ("not ready", ProjectState::Pending),
        ("failed_but_retrying", ProjectState::Pending),
    ];
    let answers: Vec<Vec<u8>> = cases.iter().map(|(s, _)| status(s)).collect();
    let server = server(vec![Step::Close], answers);
    let client = client(&server);
    for (text, state) in cases {
        let project = within(PATIENCE, "project", client.project("p1"))
            .await
            .unwrap();
        assert_eq!(project.project_status.as_deref(), Some(*text));
        assert_eq!(project.state(), *state, "{text:?}");
        assert_eq!(ProjectState::of(&project), *state, "{text:?}");
    }
    // No status at all is pending.
    let bare = RawServer::answering(raw::json(200, r#"{"status":true}"#));
    let project = within(
        PATIENCE,
        "project",
        raw::builder(&bare.base_url())
            .build()
            .unwrap()
            .project("p1"),
    )
    .await
    .unwrap();
    assert_eq!(project.state(), ProjectState::Pending);
}
