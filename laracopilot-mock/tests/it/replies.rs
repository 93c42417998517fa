//! Canned replies: each gives the typed error it stands for, for exactly the
//! requests it was queued for; a hang sends nothing, a delayed reply comes late.

use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};

use laracopilot::{Error, TimeoutKind};
use laracopilot_mock::{MockServer, Reply};

use crate::common::mock::*;
use crate::common::*;

#[tokio::test]
async fn a_rate_limited_reply_is_rate_limited_with_retry_after_then_serving_resumes() {
    let server = MockServer::start();
    let client = one_attempt(&server);
    server.reply_next(1, Reply::rate_limited(Some(7)));
    let refused = client.generate(PROMPT).await;
    let Err(Error::RateLimited { retry_after, .. }) = refused else {
        panic!("{refused:?}")
    };
    assert_eq!(retry_after, Some(Duration::from_secs(7)));

    server.reply_next(1, Reply::rate_limited(None));
    let refused = client.project("p1").await;
    assert!(
        matches!(
            refused,
            Err(Error::RateLimited {
                retry_after: None,
                ..
            })
        ),
        "{refused:?}"
    );
    finish_ok(&client, PROMPT).await;
}

#[tokio::test]
async fn unavailable_html_and_custom_status_replies_are_api_errors() {
    let server = MockServer::start();
    let client = one_attempt(&server);

    server.reply_next(1, Reply::unavailable());
    let Err(Error::Api {
        status, message, ..
    }) = client.generate(PROMPT).await
    else {
        panic!("expected an API error")
    };
    assert_eq!(
        (status, message.as_deref()),
        (503, Some("Service Unavailable"))
    );

    server.reply_next(1, Reply::server_error_html());
    let Err(Error::Api {
        status,
        message,
        body,
        ..
    }) = client.generate(PROMPT).await
    else {
        panic!("expected an API error")
    };
    assert_eq!((status, message), (500, None));
    assert!(body.contains("<html"), "{body}");

    server.reply_next(1, Reply::status(418, r#"{"message": "I'm a teapot"}"#));
    let Err(Error::Api {
        status, message, ..
    }) = client.project("p1").await
    else {
        panic!("expected an API error")
    };
    assert_eq!((status, message.as_deref()), (418, Some("I'm a teapot")));
}

#[test]
fn a_status_reply_is_json_when_its_body_parses_and_plain_text_otherwise() {
    let server = raw_token_server();
    server.reply_next(1, Reply::status(502, "<h1>Bad Gateway</h1>"));
    server.reply_next(1, Reply::status(1000, "[]"));
    let text = request(&server, "GET", "/api/v1/agent/project/p1", None, "");
    assert_eq!(
        (text.status, text.header("content-type")),
        (502, Some("text/plain; charset=utf-8"))
    );
    assert_eq!(text.text(), "<h1>Bad Gateway</h1>");
    let json = request(&server, "GET", "/api/v1/agent/project/p1", None, "");
    assert_eq!(
        (json.status, json.header("content-type")),
        (500, Some("application/json"))
    );
}

#[tokio::test]
async fn a_reply_for_n_requests_answers_exactly_n_requests() {
    let server = MockServer::start();
    let client = one_attempt(&server);
    let id = finish_ok(&client, PROMPT)
        .await
        .project_id()
        .cloned()
        .unwrap();
    server.reply_next(2, Reply::unavailable());
    for _ in 0..2 {
        assert_eq!(client.project(&id).await.unwrap_err().status(), Some(503));
    }
    assert!(client.project(&id).await.is_ok());
}

#[tokio::test]
async fn a_429_before_any_event_is_retried_by_the_default_client_without_a_second_project() {
    let server = MockServer::start();
    server.reply_next(1, Reply::rate_limited(Some(0)));
    let outcome = finish_ok(&server.client(), PROMPT).await;
    let posts = server
        .requests()
        .iter()
        .filter(|r| r.method == "POST")
        .count();
    assert_eq!(posts, 2, "the refused attempt and the accepted one");
    assert_eq!(outcome.project_id().unwrap(), "p1");
    assert!(
        server.project("p2").is_none(),
        "only one project was created"
    );
}

#[test]
fn a_hang_reads_the_request_sends_nothing_and_ends_when_the_server_stops() {
    let server = raw_token_server();
    server.reply_next(1, Reply::hang());
    let mut stream = connect(server.addr());
    stream
        .write_all(b"GET /api/v1/agent/project/p1 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert!(
        server.wait_for_requests(1, Duration::from_secs(20)),
        "the request was read"
    );
    // Read, and not answered.
    stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut byte = [0u8; 1];
    let silent = stream.read(&mut byte).unwrap_err();
    assert!(
        matches!(silent.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{silent:?}"
    );

    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let started = Instant::now();
    server.shutdown();
    assert!(started.elapsed() < Duration::from_secs(2));
    let mut rest = Vec::new();
    let closed = stream.read_to_end(&mut rest);
    assert!(
        matches!(&closed, Ok(0))
            || closed
                .as_ref()
                .is_err_and(|e| e.kind() == ErrorKind::ConnectionReset),
        "closed without an answer: {closed:?} {rest:?}"
    );
}

#[tokio::test]
async fn a_hang_on_generate_ends_in_the_idle_timeout_without_a_project_id() {
    let server = MockServer::start();
    let client = server
        .client_builder()
        .idle_timeout(Some(Duration::from_millis(300)))
        .build()
        .unwrap();
    server.reply_next(1, Reply::hang());
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
    assert_eq!(server.requests().len(), 1, "sent once, never resent");
    assert!(
        server.project("p1").is_none(),
        "a canned reply creates nothing"
    );
}

#[tokio::test]
async fn a_delayed_reply_comes_after_its_delays_added_up() {
    let server = MockServer::start();
    let client = one_attempt(&server);
    let inner = Reply::delayed(Duration::from_millis(100), Reply::unavailable());
    server.reply_next(1, Reply::delayed(Duration::from_millis(100), inner));
    let started = Instant::now();
    let refused = client.generate(PROMPT).await.unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(refused.status(), Some(503));
    let started = Instant::now();
    finish_ok(&client, PROMPT).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the next request is served"
    );
}

/// A body that stalls after its first bytes is bounded by the request timeout on
/// every call; the error keeps the status and what was read, and the next request
/// is served as usual.
#[tokio::test]
async fn a_stalled_error_body_ends_within_the_request_timeout_keeping_what_was_read() {
    // The status call must get the answer's head within it too.
    const TIMEOUT: Duration = STALL;
    let server = MockServer::start();
    let client = server
        .client_builder()
        .request_timeout(TIMEOUT)
        .retry_policy(laracopilot::RetryPolicy::none())
        .build()
        .unwrap();
    for status in [500, 403] {
        for call in ["generate", "follow_up", "project"] {
            server.reply_next(1, Reply::stalled_body(status, r#"{"message": "Serv"#));
            let started = Instant::now();
            let error = bounded(async {
                match call {
                    "generate" => client.generate(PROMPT).await.map(drop),
                    "follow_up" => client.follow_up("p1", PROMPT).await.map(drop),
                    _ => client.project("p1").await.map(drop),
                }
            })
            .await
            .unwrap_err();
            let waited = started.elapsed();
            assert!(waited >= TIMEOUT / 2, "{call}: ended after {waited:?}");
            let Error::Api {
                status: got, body, ..
            } = &error
            else {
                panic!("{call}: {error:?}")
            };
            assert_eq!(*got, status, "{call}");
            assert!(body.contains(r#"{"message": "Serv"#), "{call}: {body:?}");
        }
    }
    finish_ok(&client, PROMPT).await;
}
