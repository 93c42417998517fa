//! Every wait is bounded: error bodies that stall after their headers (HTTP/1.1 and
//! HTTP/2, plain and chunked; a 401's within one request timeout around its token
//! refresh), 2xx pages that stall, token providers that never
//! answer (also on the refresh after a 401), a wait whose polls are slow or never
//! answered, and a stream deadline against a body that never pauses or headers that
//! never come. Each call is bounded by the test, so a regression fails instead of
//! hanging.

use crate::common;

use std::future::pending;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[cfg(feature = "blocking")]
use common::raw::on_thread;
use common::raw::{self, wait_timeout, within, H2Server, RawServer, Step, PATIENCE};
use common::{token, TOKEN};
use laracopilot::tokens::{FnToken, TokenCheck, TokenFuture, TokenProvider};
use laracopilot::{BoxError, Client, Error, Event, RetryPolicy, TimeoutKind, Token, WaitOptions};

/// The timeout under test where nothing has to arrive before it (the head of the
/// answer is already in, or no request is sent at all): short, so that the tests
/// are quick.
const SHORT: Duration = Duration::from_millis(300);
/// The timeout under test where the head of the answer must arrive before it: a
/// fresh connection to a server on this machine, and its answer, took up to 0.2 s
/// with both cores busy (load average 17), so five times that, lest the timer win a
/// race against a slow machine instead of firing in the stall.
const ANSWER: Duration = Duration::from_secs(1);
/// What "promptly" means on a loaded machine, for a call bounded by [`SHORT`] or
/// [`ANSWER`].
const BOUND: Duration = Duration::from_secs(5);

/// What the server manages to send of its error body before it goes silent.
const PARTIAL: &str = r#"{"status":false,"message":"the gateway gave up wai"#;

/// An error answer whose body stalls after its first bytes.
fn stalled_error(status: u16) -> Vec<Step> {
    vec![
        Step::Write(raw::head(
            status,
            &[
                ("Content-Type", "application/json"),
                ("Content-Length", "4096"),
            ],
        )),
        Step::write(PARTIAL),
        Step::Stall,
    ]
}

/// An error answer whose chunked body stops in the middle of a chunk.
fn half_written_chunk(status: u16) -> Vec<Step> {
    let mut head = raw::head(
        status,
        &[
            ("Content-Type", "application/json"),
            ("Transfer-Encoding", "chunked"),
        ],
    );
    // A chunk of 0x400 bytes announced, a few written.
    head.extend_from_slice(format!("400\r\n{PARTIAL}").as_bytes());
    vec![Step::Write(head), Step::Stall]
}

/// A client for `base` with the default idle timeout (`idle = true`), which bounds
/// the wait for the answer's head, and a request timeout of [`SHORT`] for the body;
/// or without an idle timeout, so that the request timeout ([`ANSWER`]) bounds
/// both.
fn client(base: &str, idle: bool, http: Option<laracopilot::reqwest::Client>) -> Client {
    let mut builder = Client::builder()
        .token(token())
        .base_url(base)
        .request_timeout(if idle { SHORT } else { ANSWER })
        .retry_policy(RetryPolicy::none());
    if !idle {
        builder = builder.idle_timeout(None);
    }
    if let Some(http) = http {
        builder = builder.http_client(http);
    }
    builder.build().expect("client builds")
}

/// Starts a generation (`follow_up` for an existing project) and hands back the
/// error, checking that it came within [`BOUND`].
async fn start_error(client: &Client, follow_up: bool) -> Error {
    let started = Instant::now();
    let outcome = within(PATIENCE, "the generate call", async {
        if follow_up {
            client.follow_up("p1", "Add a dark mode").await
        } else {
            client.generate("Build a task management app").await
        }
    })
    .await;
    let elapsed = started.elapsed();
    let error = outcome.expect_err("a stalled answer is an error");
    assert!(elapsed < BOUND, "took {elapsed:?}: {error:?}");
    error
}

fn assert_partial_body_kept(error: &Error, status: u16) {
    let Error::Api {
        status: got, body, ..
    } = error
    else {
        panic!("not an Api error: {error:?}");
    };
    assert_eq!(*got, status, "{error:?}");
    assert!(body.contains(PARTIAL), "what was read is kept: {body:?}");
}

#[tokio::test]
async fn an_error_body_that_stalls_after_its_headers_ends_within_the_request_timeout_over_http1() {
    for status in [403, 500] {
        for stall in [stalled_error, half_written_chunk] {
            let server = RawServer::start(move |_| stall(status));
            // The four calls at once, each bounded on its own.
            let calls = [(false, true), (false, false), (true, true), (true, false)].map(
                |(follow_up, idle)| {
                    let client = client(&server.base_url(), idle, None);
                    async move {
                        let error = start_error(&client, follow_up).await;
                        assert_partial_body_kept(&error, status);
                        assert_eq!(error.project_id().is_some(), follow_up, "{error:?}");
                    }
                },
            );
            futures::future::join_all(calls).await;
            assert_eq!(server.count("POST"), 4, "one request per call, none resent");
        }
    }
}

#[tokio::test]
async fn an_error_body_that_stalls_after_its_headers_ends_within_the_request_timeout_over_http2() {
    for status in [403, 500] {
        let server = H2Server::start(
            status,
            &[("content-type", "application/json")],
            PARTIAL.as_bytes(),
        );
        // The four calls at once, each bounded on its own.
        let calls = [(false, true), (false, false), (true, true), (true, false)].map(
            |(follow_up, idle)| {
                let client = client(&server.base_url(), idle, Some(H2Server::http_client()));
                async move {
                    let error = start_error(&client, follow_up).await;
                    assert_partial_body_kept(&error, status);
                }
            },
        );
        futures::future::join_all(calls).await;
        let requests = server.requests();
        assert_eq!(requests.len(), 4, "{requests:?}");
        assert!(requests
            .iter()
            .all(|r| r.starts_with("POST /api/v1/agent/generate")));
    }
}

#[tokio::test]
async fn a_2xx_page_that_is_not_an_event_stream_and_stalls_ends_within_the_request_timeout() {
    let page = "<html><head><title>Sign in to the portal";
    let http1 = RawServer::start(move |_| {
        vec![
            Step::Write(raw::head(
                200,
                &[("Content-Type", "text/html"), ("Content-Length", "100000")],
            )),
            Step::write(page),
            Step::Stall,
        ]
    });
    let http2 = H2Server::start(200, &[("content-type", "text/html")], page.as_bytes());
    for (base, http) in [
        (http1.base_url(), None),
        (http2.base_url(), Some(H2Server::http_client())),
    ] {
        // The four calls at once, each bounded on its own.
        let calls = [(false, true), (false, false), (true, true), (true, false)].map(
            |(follow_up, idle)| {
                let client = client(&base, idle, http.clone());
                async move {
                    let error = start_error(&client, follow_up).await;
                    let Error::Api {
                        status: 200,
                        message: Some(message),
                        body,
                        ..
                    } = &error
                    else {
                        panic!("{error:?}");
                    };
                    assert!(message.contains("text/html"), "{message}");
                    assert!(body.contains(page), "{body:?}");
                }
            },
        );
        futures::future::join_all(calls).await;
    }
}

#[tokio::test]
async fn a_2xx_body_too_short_to_tell_what_it_is_that_stalls_ends_within_the_timeouts() {
    // "da" may be the start of "data:": the SDK cannot tell yet, and must not wait
    // for more forever.
    let server = RawServer::start(|_| {
        vec![
            Step::Write(raw::head(
                200,
                &[("Content-Type", "application/octet-stream")],
            )),
            Step::write("da"),
            Step::Stall,
        ]
    });
    // The head must arrive before either timeout: both are [`ANSWER`].
    for idle in [Some(ANSWER), None] {
        let client = Client::builder()
            .token(token())
            .base_url(server.base_url())
            .request_timeout(ANSWER)
            .idle_timeout(idle)
            .retry_policy(RetryPolicy::none())
            .build()
            .unwrap();
        let error = start_error(&client, false).await;
        let Error::Api {
            status: 200,
            message: Some(message),
            body,
            ..
        } = &error
        else {
            panic!("{error:?}");
        };
        assert!(message.contains("application/octet-stream"), "{message}");
        assert_eq!(body, "da");
    }
}

#[cfg(feature = "blocking")]
#[test]
fn the_blocking_client_from_a_plain_thread_is_bounded_by_the_request_timeout_too() {
    let server = RawServer::start(|_| stalled_error(500));
    let base = server.base_url();
    let errors = on_thread(PATIENCE, "the blocking calls", move || {
        let client = Client::builder()
            .token(token())
            .base_url(base)
            .request_timeout(SHORT)
            .retry_policy(RetryPolicy::none())
            .build_blocking()
            .unwrap();
        let started = Instant::now();
        let generate = client
            .generate("Build a task management app")
            .send()
            .unwrap_err();
        let follow_up = client
            .follow_up("p1", "Add a dark mode")
            .send()
            .unwrap_err();
        (generate, follow_up, started.elapsed())
    });
    let (generate, follow_up, elapsed) = errors;
    assert!(elapsed < BOUND * 2, "{elapsed:?}");
    assert_partial_body_kept(&generate, 500);
    assert_partial_body_kept(&follow_up, 500);
    assert_eq!(follow_up.project_id().map(|id| id.as_str()), Some("p1"));
}

/// A provider that never answers.
struct Silent;

impl TokenProvider for Silent {
    fn token(&self) -> TokenFuture<'_> {
        Box::pin(pending())
    }
}

/// Every call of `client`, each with its error, each bounded.
async fn every_call(client: &Client) -> Vec<(&'static str, Error)> {
    let mut errors = Vec::new();
    let started = Instant::now();
    let generate = within(PATIENCE, "generate", client.generate("Build an app")).await;
    errors.push(("generate", generate.expect_err("no token, no call")));
    let follow_up = within(PATIENCE, "follow_up", client.follow_up("p1", "Add a page")).await;
    errors.push(("follow_up", follow_up.expect_err("no token, no call")));
    let project = within(PATIENCE, "project", client.project("p1")).await;
    errors.push(("project", project.expect_err("no token, no call")));
    let verify = within(PATIENCE, "verify_token", client.verify_token()).await;
    errors.push(("verify_token", verify.expect_err("no token, no verdict")));
    let elapsed = started.elapsed();
    assert!(elapsed < BOUND * 2, "four calls took {elapsed:?}");
    errors
}

#[tokio::test]
async fn a_token_provider_that_never_answers_fails_every_call_after_the_request_timeout() {
    let server = RawServer::answering(raw::json(200, "{}"));
    let closure = FnToken::new(pending::<Result<Token, BoxError>>);
    let providers: Vec<Box<dyn FnOnce() -> Client>> = vec![
        Box::new(|| {
            Client::builder()
                .token_provider(Silent)
                .base_url(server.base_url())
                .request_timeout(SHORT)
                .build()
                .unwrap()
        }),
        Box::new(|| {
            Client::builder()
                .token_provider(closure)
                .base_url(server.base_url())
                .request_timeout(SHORT)
                // Retries would not help: the provider is not the network.
                .retry_policy(RetryPolicy::default().max_attempts(5))
                .build()
                .unwrap()
        }),
    ];
    for make in providers {
        let client = make();
        for (call, error) in every_call(&client).await {
            assert!(
                matches!(
                    error,
                    Error::Timeout {
                        kind: TimeoutKind::TokenProvider,
                        ..
                    }
                ),
                "{call}: {error:?}"
            );
            assert_eq!(error.attempts(), 0, "{call}: nothing was sent");
            assert!(!error.may_have_started_work(), "{call}");
        }
    }
    assert_eq!(server.connections(), 0, "no request without a token");
}

/// A provider that hands out its token at once, and never answers a refresh.
struct RefreshNeverAnswers;

impl TokenProvider for RefreshNeverAnswers {
    fn token(&self) -> TokenFuture<'_> {
        Box::pin(async { Ok(token()) })
    }

    fn refresh<'a>(&'a self, _rejected: &'a Token) -> TokenFuture<'a> {
        Box::pin(pending())
    }
}

/// Whether the error's source is the token provider's timeout.
fn refresh_timed_out(error: &Error) -> bool {
    matches!(
        std::error::Error::source(error).and_then(|source| source.downcast_ref::<Error>()),
        Some(Error::Timeout {
            kind: TimeoutKind::TokenProvider,
            ..
        })
    )
}

#[tokio::test]
async fn a_refresh_after_a_401_that_never_answers_returns_the_401_with_the_timeout_as_source() {
    for (body, expired) in [
        (r#"{"status":false,"message":"Unauthorized."}"#, false),
        (
            r#"{"status":false,"message":"API token has expired."}"#,
            true,
        ),
    ] {
        let server = RawServer::answering(raw::json(401, body));
        let calls = Arc::new(AtomicUsize::new(0));
        let fetches = Arc::clone(&calls);
        // The first fetch answers; the refresh's fetch never does.
        let closure = FnToken::new(move || {
            let n = fetches.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    Ok(Token::new(TOKEN)?)
                } else {
                    pending().await
                }
            }
        });
        let clients = [
            Client::builder()
                .token_provider(RefreshNeverAnswers)
                .base_url(server.base_url())
                .request_timeout(ANSWER)
                .retry_policy(RetryPolicy::none())
                .build()
                .unwrap(),
            Client::builder()
                .token_provider(closure)
                .base_url(server.base_url())
                .request_timeout(ANSWER)
                .retry_policy(RetryPolicy::none())
                .build()
                .unwrap(),
        ];
        // The status call and the token check wait for the 401's head within the
        // request timeout. The two clients at once, each bounded on its own.
        let checks = clients.map(|client| async move {
            let started = Instant::now();
            let generate = within(PATIENCE, "generate", client.generate("Build an app"))
                .await
                .unwrap_err();
            let project = within(PATIENCE, "project", client.project("p1"))
                .await
                .unwrap_err();
            let check = within(PATIENCE, "verify_token", client.verify_token())
                .await
                .expect("a 401 is a verdict");
            assert!(started.elapsed() < BOUND * 2, "{:?}", started.elapsed());
            for error in [generate, project] {
                // The 401's body is still read after the slow refresh: an expired
                // token is told apart from a revoked one on every call.
                let typed = if expired {
                    matches!(error, Error::TokenExpired { locally: false, .. })
                } else {
                    matches!(&error, Error::Unauthorized { message: Some(m), .. } if m == "Unauthorized.")
                };
                assert!(typed, "{error:?}");
                assert!(refresh_timed_out(&error), "{error:?}");
                assert_eq!(error.attempts(), 1, "no resend without a new token");
            }
            let told = if expired {
                matches!(check, TokenCheck::Expired { locally: false, .. })
            } else {
                matches!(&check, TokenCheck::Unauthorized { message: Some(m), .. } if m == "Unauthorized.")
            };
            assert!(told, "{check:?}");
        });
        futures::future::join_all(checks).await;
        assert_eq!(server.requests().len(), 6);
    }
}

#[tokio::test]
async fn a_401_whose_body_stalls_after_its_first_bytes_ends_within_one_request_timeout_not_two() {
    // The 401's body is read before the token refresh (to tell an expired token
    // from a revoked one) and is the error's body after it: one deadline for both.
    // The timeout is long next to a loaded machine's delays, so that one timeout
    // and two are far apart.
    const TIMEOUT: Duration = Duration::from_secs(2);
    let server = RawServer::start(|_| stalled_error(401));
    let client = Client::builder()
        .token(token())
        .base_url(server.base_url())
        .request_timeout(TIMEOUT)
        .idle_timeout(None)
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap();
    let calls = ["generate", "follow_up", "project"].map(|call| {
        let client = &client;
        async move {
            let started = Instant::now();
            let error = within(PATIENCE, call, async {
                match call {
                    "generate" => client.generate("Build an app").await.map(drop),
                    "follow_up" => client.follow_up("p1", "Add a page").await.map(drop),
                    _ => client.project("p1").await.map(drop),
                }
            })
            .await
            .unwrap_err();
            let took = started.elapsed();
            assert!(
                took < TIMEOUT + TIMEOUT / 2,
                "{call}: {took:?}, two request timeouts are {:?}: {error:?}",
                TIMEOUT * 2
            );
            assert_eq!(error.status(), Some(401), "{call}: {error:?}");
            assert!(
                matches!(error, Error::Unauthorized { .. }),
                "{call}: {error:?}"
            );
            assert_eq!(
                error.attempts(),
                1,
                "{call}: not resent with the same token"
            );
            assert!(!error.may_have_started_work(), "{call}");
        }
    });
    futures::future::join_all(calls).await;
    assert_eq!(server.requests().len(), 3, "one request per call");
}

#[tokio::test]
async fn a_wait_whose_polls_take_a_second_each_ends_at_its_total_timeout() {
    let server = RawServer::start(|_| {
        vec![
            Step::sleep_ms(1_000),
            Step::Write(raw::project_answer("p1", "generating")),
        ]
    });
    let client = raw::builder(&server.base_url())
        .request_timeout(Duration::from_secs(30))
        .retry_policy(RetryPolicy::default())
        .build()
        .unwrap();
    let options = WaitOptions::default()
        .timeout(Duration::from_millis(1_500))
        .interval(Duration::from_millis(100), Duration::from_millis(100));
    let (error, elapsed) = wait_timeout(&client, options).await;
    assert_eq!(error.project_id().map(|id| id.as_str()), Some("p1"));
    assert!(elapsed >= Duration::from_millis(1_400), "{elapsed:?}");
    assert!(elapsed < BOUND, "{elapsed:?}");
    assert!(server.count("GET") >= 1);
}

#[tokio::test]
async fn a_wait_whose_polls_are_never_answered_ends_at_its_total_timeout_not_after_request_timeouts(
) {
    let server = RawServer::start(|_| vec![Step::Stall]);
    let client = raw::builder(&server.base_url())
        .request_timeout(Duration::from_secs(30))
        .retry_policy(
            RetryPolicy::default()
                .base_delay(Duration::from_millis(1))
                .max_delay(Duration::from_millis(5)),
        )
        .build()
        .unwrap();
    let options = WaitOptions::default()
        .timeout(Duration::from_millis(1_500))
        .interval(Duration::from_millis(100), Duration::from_millis(100));
    let (_, elapsed) = wait_timeout(&client, options).await;
    assert!(elapsed < BOUND, "{elapsed:?}");
}

fn keep_alive_stream() -> Vec<u8> {
    let mut bytes = raw::sse_head();
    bytes.extend_from_slice(
        raw::sse_events(&[r#"{"type":"project_created","project_id":"p1"}"#]).as_bytes(),
    );
    bytes
}

/// Drives `client`'s generation to its end, bounded; its items.
async fn drain(client: &Client) -> Vec<laracopilot::Result<Event>> {
    let mut generation = within(PATIENCE, "generate", client.generate("Build an app"))
        .await
        .expect("the stream starts");
    let mut items = Vec::new();
    within(PATIENCE, "the stream", async {
        while let Some(item) = generation.next().await {
            items.push(item);
            assert!(items.len() < 1_000, "runaway stream");
        }
    })
    .await;
    items
}

fn assert_ended_by_deadline(items: &[laracopilot::Result<Event>]) {
    assert!(
        matches!(items.first(), Some(Ok(Event::ProjectCreated(_)))),
        "{items:?}"
    );
    let last = items.last().expect("a terminal item");
    let Err(error) = last else {
        panic!("{items:?}")
    };
    assert!(
        matches!(
            error,
            Error::Timeout {
                kind: TimeoutKind::Deadline,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(error.project_id().map(|id| id.as_str()), Some("p1"));
}

#[tokio::test]
async fn a_stream_deadline_fires_although_keep_alives_arrive_every_ten_milliseconds() {
    let server = RawServer::start(|_| {
        vec![
            Step::Write(keep_alive_stream()),
            Step::Repeat {
                bytes: b": keep-alive\n\n".to_vec(),
                every: Duration::from_millis(10),
                limit: PATIENCE,
            },
        ]
    });
    let client = raw::builder(&server.base_url())
        .idle_timeout(Some(Duration::from_secs(300)))
        .stream_deadline(Some(Duration::from_millis(500)))
        .build()
        .unwrap();
    let started = Instant::now();
    let items = drain(&client).await;
    assert!(started.elapsed() < BOUND, "{:?}", started.elapsed());
    assert_ended_by_deadline(&items);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_deadline_fires_against_a_body_that_never_pauses() {
    let comments = b": keep-alive\n".repeat(5_000);
    let server = RawServer::start(move |_| {
        vec![
            Step::Write(keep_alive_stream()),
            Step::Flood {
                bytes: comments.clone(),
                max_total: 64 * 1024 * 1024 * 1024,
                limit: PATIENCE,
            },
        ]
    });
    let client = raw::builder(&server.base_url())
        .stream_deadline(Some(Duration::from_millis(500)))
        .build()
        .unwrap();
    let started = Instant::now();
    let items = drain(&client).await;
    assert!(started.elapsed() < BOUND, "{:?}", started.elapsed());
    assert_ended_by_deadline(&items);
}

#[tokio::test]
async fn a_stream_deadline_bounds_the_wait_for_headers_that_never_come() {
    let server = RawServer::start(|_| vec![Step::Stall]);
    let client = raw::builder(&server.base_url())
        .idle_timeout(Some(Duration::from_secs(300)))
        .request_timeout(Duration::from_secs(300))
        .stream_deadline(Some(Duration::from_millis(500)))
        .build()
        .unwrap();
    let error = start_error(&client, false).await;
    assert!(
        matches!(
            error,
            Error::Timeout {
                kind: TimeoutKind::Deadline,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.may_have_started_work(), "the request was sent");
    assert_eq!(server.count("POST"), 1);
}
