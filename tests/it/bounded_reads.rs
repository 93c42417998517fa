//! Every read is capped: a status answer that claims (or streams) hundreds of MiB, an
//! error body of 100 MiB, headers that never end and a line that never ends are cut
//! after a small fraction, quickly; the server could only write what the socket
//! buffers hold. A `Retry-After` too large to count saturates instead of vanishing.

use crate::common;

use std::time::{Duration, Instant};

use common::raw::{self, within, RawServer, Step, PATIENCE};
use laracopilot::{Client, Error, RetryPolicy};

/// What "quickly" means on a loaded machine.
const BOUND: Duration = Duration::from_secs(5);
/// Far less than anything a test below offers; more than the socket buffers and the
/// client's own caps can take in.
const SMALL_FRACTION: u64 = 16 * 1024 * 1024;

fn flood(bytes: Vec<u8>) -> Step {
    Step::Flood {
        bytes,
        max_total: 600 * 1024 * 1024,
        limit: PATIENCE,
    }
}

/// Checks what the server managed to write once the client went away.
async fn assert_small_fraction(server: &RawServer, what: &str) {
    assert!(
        server.quiet(PATIENCE).await,
        "{what}: the client never let go of the connection"
    );
    let written = server.bytes_written();
    assert!(
        written < SMALL_FRACTION,
        "{what}: the server wrote {written} bytes"
    );
}

#[tokio::test]
async fn a_status_answer_that_claims_512_mib_fails_quickly_having_read_a_small_fraction() {
    let padding = vec![b'x'; 64 * 1024];
    let answers: Vec<(&str, Vec<Step>)> = vec![
        (
            "a Content-Length of 512 MiB",
            vec![
                Step::Write(raw::head(
                    200,
                    &[
                        ("Content-Type", "application/json"),
                        ("Content-Length", "536870912"),
                    ],
                )),
                Step::write(r#"{"a":""#),
                flood(padding.clone()),
            ],
        ),
        (
            "a project with an endless field",
            vec![
                Step::Write(raw::head(
                    200,
                    &[
                        ("Content-Type", "application/json"),
                        ("Content-Length", "536870912"),
                    ],
                )),
                Step::write(r#"{"status":true,"project_id":"p1","pad":""#),
                flood(padding.clone()),
            ],
        ),
        (
            "endless chunks",
            vec![
                Step::Write(raw::head(
                    200,
                    &[
                        ("Content-Type", "application/json"),
                        ("Transfer-Encoding", "chunked"),
                    ],
                )),
                Step::Write(raw::chunk(r#"{"a":""#)),
                flood(raw::chunk(&padding)),
            ],
        ),
        (
            "a body until the connection closes",
            vec![
                Step::Write(raw::head(
                    200,
                    &[
                        ("Content-Type", "application/json"),
                        ("Connection", "close"),
                    ],
                )),
                Step::write(r#"{"a":""#),
                flood(padding.clone()),
            ],
        ),
    ];
    for (what, steps) in answers {
        let server = RawServer::start(move |_| steps.clone());
        let client = raw::builder(&server.base_url())
            .request_timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let started = Instant::now();
        let error = within(PATIENCE, "project", client.project("p1"))
            .await
            .expect_err("not a project");
        let elapsed = started.elapsed();
        assert!(matches!(error, Error::Decode { .. }), "{what}: {error:?}");
        assert_eq!(error.project_id().map(|id| id.as_str()), Some("p1"));
        assert!(elapsed < BOUND, "{what}: took {elapsed:?}");
        drop(client);
        assert_small_fraction(&server, what).await;
    }
}

#[tokio::test]
async fn an_error_body_of_100_mib_arrives_quickly_with_a_capped_snippet() {
    for status in [500, 502, 404, 422, 401] {
        for call in ["generate", "follow_up", "project"] {
            let server = RawServer::start(move |_| {
                vec![
                    Step::Write(raw::head(
                        status,
                        &[
                            ("Content-Type", "text/html"),
                            ("Content-Length", "104857600"),
                        ],
                    )),
                    Step::write("<html><body>"),
                    flood(b"<p>Something went wrong.</p>".repeat(2_000)),
                ]
            });
            let client = raw::builder(&server.base_url()).build().unwrap();
            let started = Instant::now();
            let error = within(PATIENCE, call, async {
                match call {
                    "generate" => client.generate("Build an app").await.map(|_| ()),
                    "follow_up" => client.follow_up("p1", "Add a page").await.map(|_| ()),
                    _ => client.project("p1").await.map(|_| ()),
                }
            })
            .await
            .expect_err("an error answer");
            let elapsed = started.elapsed();
            assert!(elapsed < BOUND, "{status} {call}: took {elapsed:?}");
            assert_eq!(error.status(), Some(status), "{call}: {error:?}");
            if let Error::Api { body, .. } = &error {
                assert!(body.starts_with("<html><body><p>"), "{body:?}");
                assert!(body.len() <= 512 + '…'.len_utf8(), "{}", body.len());
                assert!(body.ends_with('…'), "the cut is marked: {body:?}");
            }
            // The Debug output stays small too.
            assert!(format!("{error:?}").len() < 4096, "{call}: {error:?}");
            drop(client);
            assert_small_fraction(&server, &format!("{status} on {call}")).await;
        }
    }
}

#[tokio::test]
async fn headers_that_never_end_are_refused_quickly() {
    let server = RawServer::start(|_| {
        vec![
            Step::write("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"),
            flood(b"X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n".repeat(1_000)),
        ]
    });
    let client = raw::builder(&server.base_url()).build().unwrap();
    for call in ["generate", "project"] {
        let started = Instant::now();
        let error = within(PATIENCE, call, async {
            match call {
                "generate" => client.generate("Build an app").await.map(|_| ()),
                _ => client.project("p1").await.map(|_| ()),
            }
        })
        .await
        .expect_err("no answer");
        assert!(started.elapsed() < BOUND, "{call}: {:?}", started.elapsed());
        assert!(
            matches!(error, Error::Transport { .. }),
            "{call}: {error:?}"
        );
    }
    drop(client);
    assert_small_fraction(&server, "endless headers").await;
}

#[tokio::test]
async fn a_line_that_never_ends_is_cut_at_the_event_size_cap() {
    let server = RawServer::start(|_| {
        let mut start = raw::sse_head();
        start.extend_from_slice(
            raw::sse_events(&[r#"{"type":"project_created","project_id":"p1"}"#]).as_bytes(),
        );
        start.extend_from_slice(b"data: {\"type\":\"tool_progress\",\"message\":\"");
        vec![Step::Write(start), flood(vec![b'x'; 64 * 1024])]
    });
    let client = raw::builder(&server.base_url())
        .max_event_size(256 * 1024)
        .build()
        .unwrap();
    let started = Instant::now();
    let outcome = within(PATIENCE, "the stream", async {
        client.generate("Build an app").await?.finish().await
    })
    .await;
    let error = outcome.expect_err("an oversized event ends the stream");
    assert!(started.elapsed() < BOUND, "{:?}", started.elapsed());
    assert!(
        matches!(error, Error::EventTooLarge { limit: 262_144, .. }),
        "{error:?}"
    );
    assert_eq!(error.project_id().map(|id| id.as_str()), Some("p1"));
    drop(client);
    assert_small_fraction(&server, "an endless line").await;
}

/// Thirty digits: far more seconds than a `u64` holds.
const HUGE: &str = "999999999999999999999999999999";

fn retrying_client(server: &RawServer) -> Client {
    raw::builder(&server.base_url())
        .retry_policy(
            RetryPolicy::default()
                .max_attempts(3)
                .base_delay(Duration::from_millis(1))
                .max_delay(Duration::from_millis(5)),
        )
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_retry_after_of_thirty_digits_saturates_instead_of_being_absent() {
    let saturated = Some(Duration::from_secs(u64::MAX));
    for status in [429, 503] {
        let server = RawServer::answering(raw::response(
            status,
            &[("Content-Type", "application/json"), ("Retry-After", HUGE)],
            "{}",
        ));
        let client = retrying_client(&server);
        let started = Instant::now();
        let generate = within(PATIENCE, "generate", client.generate("Build an app"))
            .await
            .unwrap_err();
        let follow_up = within(PATIENCE, "follow_up", client.follow_up("p1", "Add a page"))
            .await
            .unwrap_err();
        let project = within(PATIENCE, "project", client.project("p1"))
            .await
            .unwrap_err();
        assert!(started.elapsed() < BOUND, "{:?}", started.elapsed());
        for (call, error) in [
            ("generate", generate),
            ("follow_up", follow_up),
            ("project", project),
        ] {
            assert_eq!(error.status(), Some(status), "{call}: {error:?}");
            assert_eq!(error.retry_after(), saturated, "{call}: {error:?}");
            // Longer than the policy honours: returned at once for the caller to
            // decide, not retried after a guess.
            assert_eq!(error.attempts(), 1, "{call}: {error:?}");
        }
        assert_eq!(server.requests().len(), 3, "{status}: one request per call");
    }
}

#[tokio::test]
async fn without_a_retry_after_the_same_answer_is_retried_up_to_the_policy() {
    // The same server answers at once without the header: then it is retried.
    let server = RawServer::answering(raw::response(
        429,
        &[("Content-Type", "application/json")],
        "{}",
    ));
    let client = retrying_client(&server);
    let error = within(PATIENCE, "project", client.project("p1"))
        .await
        .unwrap_err();
    assert_eq!(error.retry_after(), None);
    assert_eq!(error.attempts(), 3, "{error:?}");
    assert_eq!(server.requests().len(), 3);
}
