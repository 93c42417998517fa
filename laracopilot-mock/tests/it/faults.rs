//! Faults inside a stream: each ends in the documented typed outcome with every
//! whole event before it delivered, changes exactly the bytes it says, or places a
//! wait where a crash test needs one.

use std::time::{Duration, Instant};

use laracopilot::{Error, Event, TimeoutKind};
use laracopilot_mock::{Fault, MockServer, OnClientDrop, ProjectStatus};
use serde_json::json;

use crate::common::mock::*;
use crate::common::*;

/// Event types and file paths of a default generation with `faults`.
async fn run_with(faults: Vec<Fault>) -> (Vec<String>, Vec<String>) {
    let server = MockServer::start();
    server.faults_next(faults);
    let events = events(server.client().generate(PROMPT).await.unwrap()).await;
    (types(&events), paths(&events))
}

#[tokio::test]
async fn chunked_and_crlf_streams_still_yield_every_event() {
    let baseline = run_with(vec![]).await;
    assert_eq!(baseline.0.len(), 34, "{baseline:?}");
    for faults in [
        vec![Fault::ChunkSize(1)],
        vec![Fault::ChunkSize(7)],
        vec![Fault::Crlf],
        vec![Fault::ChunkSize(3), Fault::Crlf],
    ] {
        assert_eq!(run_with(faults.clone()).await, baseline, "{faults:?}");
    }
}

#[tokio::test]
async fn drop_after_n_events_is_incomplete_with_the_project_id() {
    let server = MockServer::start();
    server.fault_next(Fault::DropAfter(4));
    let items = collect(server.client().generate(PROMPT).await.unwrap()).await;
    assert_eq!(items.len(), 5);
    let Some(Err(error @ Error::Incomplete { events, .. })) = items.last() else {
        panic!("{:?}", items.last())
    };
    assert_eq!(*events, 4);
    let id = error.project_id().cloned().unwrap();
    assert_eq!(server.project(&id).unwrap().status, ProjectStatus::Failed);
}

#[tokio::test]
async fn a_drop_in_the_middle_of_an_event_is_a_transport_error_after_the_whole_events() {
    let server = MockServer::start();
    server.fault_next(Fault::DropMidEvent(3));
    let items = collect(server.client().generate(PROMPT).await.unwrap()).await;
    assert_eq!(items.len(), 4, "{items:?}");
    assert!(items[..3].iter().all(Result::is_ok));
    let Err(error @ Error::Transport { .. }) = &items[3] else {
        panic!("{:?}", items[3])
    };
    let id = error.project_id().unwrap();
    assert_eq!(server.project(id).unwrap().status, ProjectStatus::Failed);
}

#[tokio::test]
async fn a_stall_with_a_short_idle_timeout_is_a_timeout_with_the_project_id() {
    let server = MockServer::start();
    server.fault_next(Fault::StallBefore(2));
    let client = server
        .client_builder()
        .idle_timeout(Some(STALL))
        .build()
        .unwrap();
    let items = collect(client.generate(PROMPT).await.unwrap()).await;
    assert_eq!(items.len(), 3, "{items:?}");
    let Err(
        error @ Error::Timeout {
            kind: TimeoutKind::Idle,
            ..
        },
    ) = &items[2]
    else {
        panic!("{:?}", items[2])
    };
    assert!(error.project_id().is_some(), "{error:?}");
}

#[tokio::test]
async fn the_status_is_generating_while_a_stream_stalls_and_failed_when_the_client_leaves() {
    let server = MockServer::start();
    let client = server.client();
    server.fault_next(Fault::StallBefore(3));
    let mut generation = client.generate(PROMPT).await.unwrap();
    for _ in 0..3 {
        bounded(generation.next()).await.unwrap().unwrap();
    }
    let id = generation.project_id().cloned().unwrap();
    let project = client.project(&id).await.unwrap();
    assert_eq!(project.project_status.as_deref(), Some("generating"));

    drop(generation);
    assert!(eventually(|| server.project(&id).unwrap().status == ProjectStatus::Failed).await);
}

#[tokio::test]
async fn a_delay_before_an_event_is_a_quiet_gap_that_an_idle_timeout_sees() {
    let server = MockServer::start();
    let client = server
        .client_builder()
        .idle_timeout(Some(STALL))
        .build()
        .unwrap();
    server.fault_next(Fault::DelayBefore(1, Duration::from_millis(100)));
    let started = Instant::now();
    assert_eq!(finish_ok(&client, PROMPT).await.stats().events, 34);
    assert!(started.elapsed() >= Duration::from_millis(100));

    server.fault_next(Fault::DelayBefore(2, Duration::from_secs(3)));
    let items = collect(client.generate(PROMPT).await.unwrap()).await;
    assert_eq!(items.len(), 3, "two events, then the timeout: {items:?}");
    assert!(matches!(
        items[2],
        Err(Error::Timeout {
            kind: TimeoutKind::Idle,
            ..
        })
    ));
}

#[tokio::test]
async fn delayed_headers_leave_an_accepted_generating_project_and_no_byte_yet() {
    let server = MockServer::builder()
        .on_client_drop(OnClientDrop::Fail)
        .start()
        .unwrap();
    server.fault_next(Fault::DelayHeaders(Duration::from_secs(3)));
    let client = server
        .client_builder()
        .idle_timeout(Some(STALL))
        .build()
        .unwrap();
    let refused = bounded(client.generate(PROMPT)).await;
    assert!(
        matches!(
            refused,
            Err(ref error @ Error::Timeout {
                kind: TimeoutKind::Idle,
                ..
            }) if error.project_id().is_none()
        ),
        "{refused:?}"
    );
    assert_eq!(server.requests().len(), 1, "the POST arrived");
    assert_eq!(
        server.project("p1").unwrap().status,
        ProjectStatus::Generating
    );
    // The client went away before the headers: this server marks it failed.
    assert!(eventually(|| server.project("p1").unwrap().status == ProjectStatus::Failed).await);

    server.fault_next(Fault::DelayHeaders(Duration::from_millis(100)));
    let started = Instant::now();
    let outcome = finish_ok(&server.client(), PROMPT).await;
    assert!(started.elapsed() >= Duration::from_millis(100));
    assert_eq!(outcome.project_id().unwrap(), "p2");
}

#[tokio::test]
async fn an_oversized_event_over_the_client_limit_is_event_too_large() {
    let server = MockServer::start();
    server.fault_next(Fault::OversizedEvent(256 * 1024));
    let client = server
        .client_builder()
        .max_event_size(4096)
        .build()
        .unwrap();
    let items = collect(client.generate(PROMPT).await.unwrap()).await;
    let Some(Err(error @ Error::EventTooLarge { limit: 4096, .. })) = items.last() else {
        panic!("{:?}", items.last())
    };
    assert!(error.project_id().is_some(), "{error:?}");
    assert_eq!(items.len(), 2, "project_created, then the oversized event");
}

#[tokio::test]
async fn an_oversized_event_within_the_limit_arrives_whole_with_its_fields() {
    let server = MockServer::start();
    server.fault_next(Fault::OversizedEvent(300_000));
    let events = events(server.client().generate(PROMPT).await.unwrap()).await;
    assert_eq!(events[1].type_name(), "container_progress");
    assert_eq!(events[1].raw_json().len(), 300_000);
    let padded: serde_json::Value = serde_json::from_str(events[1].raw_json()).unwrap();
    assert_eq!(padded["percentage"], 10);
    assert!(padded["padding"]
        .as_str()
        .unwrap()
        .bytes()
        .all(|b| b == b'x'));
    assert!(events[2].raw_json().len() < 100, "only one event is padded");
    assert_eq!(events.last().unwrap().type_name(), "stream_end");
}

#[test]
fn an_empty_object_is_padded_without_a_stray_comma() {
    let server = raw_token_server();
    server
        .script_next([json!({}), json!({"type": "stream_end"})])
        .unwrap();
    server.fault_next(Fault::OversizedEvent(40));
    let body = raw_generate(&server).text();
    let padded = format!(r#"{{"padding":"{}"}}"#, "x".repeat(26));
    assert_eq!(padded.len(), 40);
    assert_eq!(
        body,
        format!("data: {padded}\n\ndata: {{\"type\":\"stream_end\"}}\n\n")
    );
}

#[tokio::test]
async fn an_invalid_utf8_byte_is_replaced_and_every_event_still_arrives() {
    let baseline = run_with(vec![]).await;
    let server = MockServer::start();
    server.fault_next(Fault::InvalidUtf8);
    let events = events(server.client().generate(PROMPT).await.unwrap()).await;
    assert_eq!((types(&events), paths(&events)), baseline);
    let Event::ContainerProgress(progress) = &events[1] else {
        panic!("{:?}", events[1])
    };
    assert_eq!(progress.message, "Provisioning container...\u{FFFD}");
}

#[test]
fn chunk_size_frames_the_body_in_pieces_of_at_most_k_bytes() {
    let server = raw_token_server();
    let whole = raw_generate(&server);
    server.fault_next(Fault::ChunkSize(5));
    let answer = raw_generate(&server);
    assert_eq!(answer.header("transfer-encoding"), Some("chunked"));
    assert!(answer.chunks.iter().all(|c| !c.is_empty() && c.len() <= 5));
    assert_eq!(
        answer.body.len(),
        whole.body.len(),
        "the same events (p2 instead of p1)"
    );
    assert!(answer.chunks.len() >= answer.body.len() / 5);
}

#[test]
fn crlf_and_invalid_utf8_change_the_bytes_on_the_wire() {
    let server = raw_token_server();
    server.faults_next([Fault::Crlf, Fault::InvalidUtf8]);
    let body = raw_generate(&server).body;
    assert!(body.ends_with(b"\r\n\r\n"));
    let lf = body.iter().filter(|&&b| b == b'\n').count();
    let crlf = body.windows(2).filter(|w| w == b"\r\n").count();
    assert_eq!(lf, crlf, "every line ends with CRLF");
    assert_eq!(body.iter().filter(|&&b| b == 0xFF).count(), 1);
    assert!(memchr::memmem::find(&body, b"Provisioning container...\xFF\"").is_some());
}

#[test]
fn the_invalid_byte_goes_at_the_end_of_the_message_past_escaped_quotes() {
    let server = raw_token_server();
    server
        .script_next([
            json!({"type": "note", "detail": "\"message\":\"not a key"}),
            json!({"type": "tool_progress", "message": "say \"hi\" \\", "tool": "t"}),
        ])
        .unwrap();
    server.fault_next(Fault::InvalidUtf8);
    let body = raw_generate(&server).body;
    let expected: &[u8] = b"\"message\":\"say \\\"hi\\\" \\\\\xFF\",\"tool\"";
    assert!(
        memchr::memmem::find(&body, expected).is_some(),
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(body.iter().filter(|&&b| b == 0xFF).count(), 1);
}

#[test]
fn drop_after_closes_the_connection_after_a_clean_end_of_body() {
    let server = raw_token_server();
    server.fault_next(Fault::DropAfter(2));
    let answer = raw_generate(&server);
    assert_eq!(answer.header("connection"), Some("close"));
    assert_eq!(answer.text().matches("data: ").count(), 2);
}
