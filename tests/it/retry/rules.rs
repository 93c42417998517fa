//! Retries never spend credits twice: a generate POST is resent only when it
//! certainly started no work (a refused connection, a 429, a 503 answered at once),
//! never after a gateway's late 503, a 5xx, a reset or a timeout; the status call is
//! resent freely. `attempts()` counts every request sent, the resend after a token
//! refresh and timed-out attempts included.

use crate::common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::raw::{self, within, RawServer, Step, PATIENCE};
use laracopilot::tokens::{TokenFuture, TokenProvider};
use laracopilot::{Client, Error, RetryPolicy, TimeoutKind, Token};

fn policy() -> RetryPolicy {
    RetryPolicy::default()
        .max_attempts(3)
        .base_delay(Duration::from_millis(1))
        .max_delay(Duration::from_millis(5))
}

fn client(server: &RawServer) -> Client {
    raw::builder(&server.base_url())
        .retry_policy(policy())
        .build()
        .unwrap()
}

async fn generate(client: &Client) -> laracopilot::Result<laracopilot::Generation> {
    within(PATIENCE, "generate", client.generate("Build an app")).await
}

async fn follow_up(client: &Client) -> laracopilot::Result<laracopilot::Generation> {
    within(PATIENCE, "follow_up", client.follow_up("p1", "Add a page")).await
}

#[tokio::test]
async fn a_generate_post_answered_503_after_a_long_wait_is_not_resent() {
    // A gateway that waited 2.5 s for the application, then gave up.
    let server = RawServer::start(|_| {
        vec![
            Step::sleep_ms(2_500),
            Step::Write(raw::response(
                503,
                &[("Content-Type", "text/html"), ("Retry-After", "7")],
                "<html>Service Unavailable</html>",
            )),
        ]
    });
    let client = client(&server);
    let started = Instant::now();
    let (generate, follow_up) = tokio::join!(generate(&client), follow_up(&client));
    assert!(started.elapsed() < Duration::from_secs(10));
    for error in [generate.unwrap_err(), follow_up.unwrap_err()] {
        assert!(matches!(error, Error::Api { status: 503, .. }), "{error:?}");
        assert!(error.may_have_started_work(), "{error:?}");
        assert!(error.is_transient(), "{error:?}");
        assert_eq!(error.retry_after(), Some(Duration::from_secs(7)));
        assert_eq!(error.attempts(), 1);
    }
    assert_eq!(server.count("POST"), 2, "one POST per call: never resent");
}

#[tokio::test]
async fn the_status_call_answered_503_after_a_long_wait_is_resent() {
    let server = RawServer::start(|request| {
        if request.index == 0 {
            vec![
                Step::sleep_ms(2_500),
                Step::Write(raw::response(503, &[("Retry-After", "0")], "")),
            ]
        } else {
            vec![Step::Write(raw::project_answer("p1", "ready"))]
        }
    });
    let project = within(PATIENCE, "project", client(&server).project("p1"))
        .await
        .expect("a GET is safe to resend");
    assert_eq!(project.project_status.as_deref(), Some("ready"));
    assert_eq!(server.count("GET"), 2);
}

#[tokio::test]
async fn a_503_answered_at_once_and_a_429_are_resent_up_to_the_policy() {
    for status in [503, 429] {
        let server = RawServer::answering(raw::json(status, r#"{"message":"busy"}"#));
        let client = client(&server);
        for error in [
            generate(&client).await.unwrap_err(),
            follow_up(&client).await.unwrap_err(),
        ] {
            assert_eq!(error.status(), Some(status), "{error:?}");
            assert_eq!(error.attempts(), 3, "{error:?}");
            assert!(!error.may_have_started_work(), "{error:?}");
            assert!(error.is_transient(), "{error:?}");
        }
        assert_eq!(server.count("POST"), 6, "{status}: three POSTs per call");
    }
}

#[tokio::test]
async fn a_quick_refusal_then_an_answer_streams_and_counts_both_requests() {
    for refusal in [
        raw::json(503, "{}"),
        raw::response(429, &[("Retry-After", "0")], ""),
    ] {
        let server = RawServer::start(move |request| {
            if request.index == 0 {
                vec![Step::Write(refusal.clone())]
            } else {
                vec![
                    Step::Write(raw::sse_answer(&[
                        r#"{"type":"project_created","project_id":"p1"}"#,
                        r#"{"type":"stream_end","project_id":"p1"}"#,
                    ])),
                    Step::Close,
                ]
            }
        });
        let generation = generate(&client(&server))
            .await
            .expect("the resend streams");
        assert_eq!(generation.stats().attempts, 2);
        let outcome = within(PATIENCE, "finish", generation.finish())
            .await
            .unwrap();
        assert_eq!(outcome.stats().attempts, 2);
        assert_eq!(server.count("POST"), 2);
    }
}

#[tokio::test]
async fn a_refused_connection_on_generate_is_retried_and_started_no_work() {
    let base = format!("http://127.0.0.1:{}/api/v1", raw::closed_port());
    let client = raw::builder(&base).retry_policy(policy()).build().unwrap();
    let started = Instant::now();
    for error in [
        generate(&client).await.unwrap_err(),
        follow_up(&client).await.unwrap_err(),
    ] {
        assert!(matches!(error, Error::Transport { .. }), "{error:?}");
        assert!(!error.may_have_started_work(), "{error:?}");
        assert!(error.is_transient(), "{error:?}");
        assert_eq!(error.attempts(), 3, "retried: {error:?}");
    }
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn other_failures_of_a_generate_post_are_never_resent() {
    let failures: Vec<(&str, Vec<Step>)> = vec![
        ("a 500", vec![Step::Write(raw::json(500, "{}"))]),
        ("a 502", vec![Step::Write(raw::json(502, "{}"))]),
        ("a 504", vec![Step::Write(raw::json(504, "{}"))]),
        ("a reset instead of an answer", vec![Step::Reset]),
        ("a close instead of an answer", vec![Step::Close]),
        (
            "a close in the middle of the headers",
            vec![Step::write("HTTP/1.1 200 OK\r\nContent-Ty"), Step::Close],
        ),
        ("no answer", vec![Step::Stall]),
    ];
    for (what, steps) in failures {
        let server = RawServer::start(move |_| steps.clone());
        let client = raw::builder(&server.base_url())
            .retry_policy(policy())
            .idle_timeout(Some(Duration::from_millis(300)))
            .request_timeout(Duration::from_millis(300))
            .build()
            .unwrap();
        let error = generate(&client).await.unwrap_err();
        assert!(error.may_have_started_work(), "{what}: {error:?}");
        assert!(error.is_transient(), "{what}: {error:?}");
        assert_eq!(error.attempts(), 1, "{what}: {error:?}");
        if what == "no answer" {
            assert!(
                matches!(
                    error,
                    Error::Timeout {
                        kind: TimeoutKind::Idle,
                        ..
                    }
                ),
                "{error:?}"
            );
        }
        assert_eq!(server.count("POST"), 1, "{what}: never resent");
        // The status call, which starts no work, is resent after the same failure.
        let _ = within(PATIENCE, "project", client.project("p1")).await;
        assert_eq!(server.count("GET"), 3, "{what}: the GET is retried");
    }
}

/// A provider that hands out `old` until a refresh, then `new`.
struct Rotating {
    current: Mutex<Token>,
    new: Token,
    refreshes: AtomicUsize,
}

impl Rotating {
    fn new() -> Arc<Rotating> {
        Arc::new(Rotating {
            current: Mutex::new(Token::new("lcp_old_token_0123456789").unwrap()),
            new: Token::new("lcp_new_token_9876543210").unwrap(),
            refreshes: AtomicUsize::new(0),
        })
    }
}

impl TokenProvider for Rotating {
    fn token(&self) -> TokenFuture<'_> {
        let token = self.current.lock().unwrap().clone();
        Box::pin(async move { Ok(token) })
    }

    fn refresh<'a>(&'a self, _rejected: &'a Token) -> TokenFuture<'a> {
        self.refreshes.fetch_add(1, Ordering::SeqCst);
        *self.current.lock().unwrap() = self.new.clone();
        let token = self.new.clone();
        Box::pin(async move { Ok(token) })
    }
}

/// The old token gets a 401; the new one what the path says.
fn rotation_server() -> RawServer {
    RawServer::start(|request| {
        let old = request.header("authorization") == Some("Bearer lcp_old_token_0123456789");
        let answer = if old {
            raw::json(401, r#"{"status":false,"message":"Unauthorized."}"#)
        } else if request.target.ends_with("/agent/generate") {
            raw::sse_answer(&[r#"{"type":"stream_end","project_id":"p1"}"#])
        } else if request.target.contains("/agent/generate/") {
            raw::json(404, r#"{"status":false,"message":"Project not found."}"#)
        } else {
            raw::json(429, "{}")
        };
        vec![Step::Write(answer), Step::Close]
    })
}

fn rotating_client(server: &RawServer, provider: Arc<Rotating>, retry: RetryPolicy) -> Client {
    raw::builder(&server.base_url())
        .token_provider(provider)
        .retry_policy(retry)
        .build()
        .unwrap()
}

#[tokio::test]
async fn attempts_count_the_resend_after_a_token_refresh() {
    let server = rotation_server();
    let provider = Rotating::new();
    let generation = generate(&rotating_client(
        &server,
        Arc::clone(&provider),
        RetryPolicy::none(),
    ))
    .await
    .expect("the new token streams");
    assert_eq!(generation.stats().attempts, 2);
    assert_eq!(provider.refreshes.load(Ordering::SeqCst), 1);

    let error = follow_up(&rotating_client(
        &server,
        Rotating::new(),
        RetryPolicy::none(),
    ))
    .await
    .unwrap_err();
    assert!(matches!(error, Error::NotFound { .. }), "{error:?}");
    assert_eq!(error.attempts(), 2);

    let error = within(
        PATIENCE,
        "project",
        rotating_client(&server, Rotating::new(), RetryPolicy::none()).project("p1"),
    )
    .await
    .unwrap_err();
    assert!(matches!(error, Error::RateLimited { .. }), "{error:?}");
    assert_eq!(error.attempts(), 2);

    // With retries: 401 and the resend, then two more 429s.
    let error = within(
        PATIENCE,
        "project",
        rotating_client(&server, Rotating::new(), policy()).project("p1"),
    )
    .await
    .unwrap_err();
    assert!(matches!(error, Error::RateLimited { .. }), "{error:?}");
    assert_eq!(error.attempts(), 4);
    assert!(!error.may_have_started_work());
    assert_eq!(server.requests().len(), 2 + 2 + 2 + 4);
}

#[tokio::test]
async fn timed_out_attempts_of_the_status_call_are_counted() {
    let server = RawServer::start(|_| vec![Step::Stall]);
    let client = raw::builder(&server.base_url())
        .request_timeout(Duration::from_millis(200))
        .retry_policy(policy())
        .build()
        .unwrap();
    let started = Instant::now();
    let error = within(PATIENCE, "project", client.project("p1"))
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(
            error,
            Error::Timeout {
                kind: TimeoutKind::Request,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(error.attempts(), 3, "{error:?}");
    assert!(error.is_transient());
    assert!(!error.may_have_started_work());
    assert_eq!(server.count("GET"), 3, "each attempt reached the server");
}

#[tokio::test]
async fn failures_that_the_same_call_cannot_outlive_are_not_transient() {
    for (status, body) in [
        (401, r#"{"status":false,"message":"Unauthorized."}"#),
        (404, r#"{"status":false,"message":"Project not found."}"#),
        (
            422,
            r#"{"message":"bad","errors":{"prompt":["too short"]}}"#,
        ),
        (400, "{}"),
        (403, "{}"),
    ] {
        let server = RawServer::answering(raw::json(status, body));
        let error = generate(&client(&server)).await.unwrap_err();
        assert!(!error.is_transient(), "{status}: {error:?}");
        if matches!(status, 401 | 404 | 422) {
            // The documented refusals: the server did no work.
            assert!(!error.may_have_started_work(), "{status}: {error:?}");
        }
        assert_eq!(error.attempts(), 1, "{status}: {error:?}");
        assert_eq!(server.count("POST"), 1, "{status}: not resent");
    }
}
