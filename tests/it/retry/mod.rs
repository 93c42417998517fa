//! Retries: the status call retries freely; a generate call only when it certainly
//! started no work, and never after a byte of its stream (here, against wiremock);
//! the rule for every kind of failure, and how attempts are counted, against servers
//! that misbehave on purpose (`rules`).

use crate::common;

mod rules;

use std::time::Duration;

use common::*;
use laracopilot::{Error, RetryPolicy};
use wiremock::{MockServer, ResponseTemplate};

fn quick(attempts: u32) -> RetryPolicy {
    RetryPolicy::default()
        .max_attempts(attempts)
        .base_delay(Duration::from_millis(5))
        .max_delay(Duration::from_millis(20))
}

async fn requests_to(server: &MockServer, route: &str) -> usize {
    let full = format!("/api/v1{route}");
    count_requests(server, |r| r.url.path() == full).await
}

#[tokio::test]
async fn a_generate_answered_429_is_sent_again_after_retry_after() {
    let server = server().await;
    let limited = ResponseTemplate::new(429).insert_header("retry-after", "0");
    mount_then(
        &server,
        "POST",
        "/agent/generate",
        limited,
        1,
        documented_stream(),
    )
    .await;
    let client = builder(&server).retry_policy(quick(3)).build().unwrap();
    let outcome = finish_ok(&client, "Build a task management app").await;
    assert_eq!(outcome.stats().attempts, 2);
    assert_eq!(requests_to(&server, "/agent/generate").await, 2);
}

#[tokio::test]
async fn a_generate_answered_503_is_retried_up_to_the_attempt_limit() {
    let server = server().await;
    mount(
        &server,
        "POST",
        "/agent/generate",
        ResponseTemplate::new(503),
    )
    .await;
    let client = builder(&server).retry_policy(quick(3)).build().unwrap();
    let err = client
        .generate("Build a task management app")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Api { status: 503, .. }), "{err:?}");
    assert_eq!(err.attempts(), 3);
    assert_eq!(requests_to(&server, "/agent/generate").await, 3);
}

#[tokio::test]
async fn a_generate_answered_500_or_502_is_never_sent_again() {
    for status in [500, 502, 504] {
        let server = server().await;
        mount(
            &server,
            "POST",
            "/agent/generate",
            ResponseTemplate::new(status),
        )
        .await;
        let client = builder(&server).retry_policy(quick(5)).build().unwrap();
        let err = client
            .generate("Build a task management app")
            .await
            .unwrap_err();
        assert_eq!(err.status(), Some(status));
        assert_eq!(
            requests_to(&server, "/agent/generate").await,
            1,
            "status {status}"
        );
    }
}

#[tokio::test]
async fn a_retry_after_longer_than_the_cap_is_returned_at_once() {
    let server = server().await;
    mount(
        &server,
        "POST",
        "/agent/generate",
        ResponseTemplate::new(429).insert_header("retry-after", "3600"),
    )
    .await;
    let client = builder(&server).retry_policy(quick(5)).build().unwrap();
    let err = client
        .generate("Build a task management app")
        .await
        .unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(3600)));
    assert_eq!(err.attempts(), 1);
    assert_eq!(requests_to(&server, "/agent/generate").await, 1);
}

#[tokio::test]
async fn a_broken_stream_is_never_resent() {
    let server = server().await;
    let partial = sse_body(&[r#"{"type":"project_created","project_id":"p1"}"#]);
    mount(&server, "POST", "/agent/generate", sse(partial)).await;
    let client = builder(&server).retry_policy(quick(5)).build().unwrap();
    let err = finish(&client, "Build a task management app")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Incomplete { .. }), "{err:?}");
    assert_eq!(requests_to(&server, "/agent/generate").await, 1);
}

#[tokio::test]
async fn a_refused_connection_is_retried_because_nothing_was_sent() {
    // Nothing listens on the port: every attempt is refused before sending.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = laracopilot::Client::builder()
        .token(token())
        .base_url(format!("http://127.0.0.1:{port}/api/v1"))
        .retry_policy(quick(3))
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    let err = client
        .generate("Build a task management app")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Transport { .. }), "{err:?}");
    assert_eq!(
        err.attempts(),
        3,
        "every attempt was refused before sending"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn the_status_call_retries_5xx_and_succeeds() {
    let server = server().await;
    let project = ResponseTemplate::new(200).set_body_json(serde_json::json!({
        "status": true, "project_id": "abc123", "project_status": "ready"
    }));
    mount_then(
        &server,
        "GET",
        "/agent/project/abc123",
        ResponseTemplate::new(500),
        2,
        project,
    )
    .await;
    let client = builder(&server).retry_policy(quick(3)).build().unwrap();
    let project = client.project("abc123").await.unwrap();
    assert_eq!(project.project_status.as_deref(), Some("ready"));
    assert_eq!(requests_to(&server, "/agent/project/abc123").await, 3);
}

#[tokio::test]
async fn the_status_call_gives_up_after_the_attempt_limit() {
    let server = server().await;
    mount(
        &server,
        "GET",
        "/agent/project/abc123",
        ResponseTemplate::new(502),
    )
    .await;
    let client = builder(&server).retry_policy(quick(2)).build().unwrap();
    let err = client.project("abc123").await.unwrap_err();
    assert!(matches!(err, Error::Api { status: 502, .. }), "{err:?}");
    assert_eq!(err.attempts(), 2);
    assert_eq!(err.project_id().unwrap(), "abc123");
    assert_eq!(requests_to(&server, "/agent/project/abc123").await, 2);
}

#[tokio::test]
async fn the_status_call_does_not_retry_a_404() {
    // The API's own 404 (`NotFound`), and a 404 page that is not the API's (`Api`).
    let pages = [
        ResponseTemplate::new(404)
            .set_body_json(serde_json::json!({"status": false, "message": "Project not found."})),
        ResponseTemplate::new(404).set_body_raw("<html>Not Found</html>", "text/html"),
    ];
    for (i, page) in pages.into_iter().enumerate() {
        let server = server().await;
        mount(&server, "GET", "/agent/project/abc123", page).await;
        let client = builder(&server).retry_policy(quick(5)).build().unwrap();
        let result = client.project("abc123").await;
        match i {
            0 => assert!(matches!(result, Err(Error::NotFound { .. })), "{result:?}"),
            _ => assert!(
                matches!(result, Err(Error::Api { status: 404, .. })),
                "{result:?}"
            ),
        }
        assert_eq!(requests_to(&server, "/agent/project/abc123").await, 1);
    }
}
