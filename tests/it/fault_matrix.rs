//! The fault matrix: every fault the offline LaraCopilot can inject, on a new
//! generation and on a follow-up, ends in the documented typed outcome (or a
//! recovery), with every event before the fault delivered exactly once and in order,
//! and the project id never lost.

use std::time::Duration;

use crate::common;

use common::finish_ok;
use common::mock::{posts, signature};
use laracopilot::{Client, Error, Event, ProjectId, RetryPolicy};
use laracopilot_mock::{Fault, MockServer, Reply, TokenState};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Call {
    Generate,
    FollowUp,
}

const PROMPT: &str = "Build a task management app";
const CALLS: [Call; 2] = [Call::Generate, Call::FollowUp];

struct Run {
    events: Vec<Event>,
    end: Result<(), Error>,
    /// The project the follow-up was made on (`None` for a new generation).
    project: Option<ProjectId>,
}

impl Run {
    fn signatures(&self) -> Vec<String> {
        self.events.iter().map(signature).collect()
    }
}

/// The idle timeout of a stream that must not time out: far above any gap a
/// loaded machine puts between a server's bytes, below the 10 s `run` allows.
const IDLE_LIVE: Duration = Duration::from_secs(5);

/// The idle timeout of a stream that must time out in its stall: above the 0.2 s a
/// fresh connection and each event took with both cores busy (load average 17),
/// short enough for a quick test.
const IDLE_STALL: Duration = Duration::from_secs(1);

fn client_for(server: &MockServer, retry: RetryPolicy) -> Client {
    client_idle(server, retry, IDLE_LIVE)
}

/// [`client_for`], for the faults that the idle timeout must end.
fn stalling_client_for(server: &MockServer, retry: RetryPolicy) -> Client {
    client_idle(server, retry, IDLE_STALL)
}

fn client_idle(server: &MockServer, retry: RetryPolicy, idle: Duration) -> Client {
    server
        .client_builder()
        .idle_timeout(Some(idle))
        .max_event_size(16 * 1024)
        .retry_policy(retry)
        .build()
        .expect("client builds")
}

fn quick_retries() -> RetryPolicy {
    RetryPolicy::default()
        .base_delay(Duration::from_millis(5))
        .max_delay(Duration::from_millis(20))
}

/// The POSTs of `call` that reached `server`, beyond a follow-up's set-up
/// generation: 1 when the call was sent once.
fn posts_of(server: &MockServer, call: Call) -> usize {
    let posts = posts(server);
    match call {
        Call::Generate => posts,
        Call::FollowUp => posts.saturating_sub(1),
    }
}

/// A project to follow up on, made with a fault-free generation.
async fn existing_project(client: &Client) -> ProjectId {
    let outcome = finish_ok(client, PROMPT).await;
    outcome
        .project_id()
        .cloned()
        .expect("the mock names its projects")
}

/// Runs `call`, collecting every event until the terminal item (bounded in time and
/// count). `prepare` arms the fault after any set-up request (a project to follow
/// up on, made by a client whose idle timeout never fires).
async fn run(
    server: &MockServer,
    client: &Client,
    call: Call,
    prepare: impl FnOnce(&MockServer),
) -> Run {
    let project = match call {
        Call::Generate => None,
        Call::FollowUp => Some(existing_project(&client_for(server, RetryPolicy::none())).await),
    };
    prepare(server);
    let started = match &project {
        None => client.generate(PROMPT).await,
        Some(id) => client.follow_up(id, "Add a dark mode with a toggle").await,
    };
    let mut generation = match started {
        Ok(generation) => generation,
        Err(error) => {
            return Run {
                events: Vec::new(),
                end: Err(error),
                project,
            }
        }
    };
    let mut events = Vec::new();
    loop {
        let item = tokio::time::timeout(Duration::from_secs(10), generation.next())
            .await
            .expect("the stream never hangs");
        match item {
            Some(Ok(Event::StreamEnd(end))) => {
                events.push(Event::StreamEnd(end));
                assert!(
                    generation.next().await.is_none(),
                    "nothing after the terminal event"
                );
                return Run {
                    events,
                    end: Ok(()),
                    project,
                };
            }
            Some(Ok(event)) => events.push(event),
            Some(Err(error)) => {
                assert!(
                    generation.next().await.is_none(),
                    "nothing after a terminal error"
                );
                return Run {
                    events,
                    end: Err(error),
                    project,
                };
            }
            None => panic!("the stream ended without a terminal item"),
        }
        assert!(events.len() < 10_000, "runaway stream");
    }
}

/// The fault-free reference for `call`.
async fn baseline(call: Call) -> Vec<String> {
    let server = MockServer::start();
    let client = client_for(&server, RetryPolicy::none());
    let run = run(&server, &client, call, |_| {}).await;
    run.end.as_ref().expect("the baseline succeeds");
    run.signatures()
}

/// Checks that the run delivered exactly the first `count` baseline events, and that
/// its error carries the project id.
fn assert_prefix_then(run: &Run, reference: &[String], count: usize, call: Call) {
    assert_eq!(
        run.signatures(),
        reference[..count],
        "{call:?}: events before the fault"
    );
    let error = run
        .end
        .as_ref()
        .expect_err("the fault ends the stream in an error");
    let expected = match call {
        Call::FollowUp => run.project.clone(),
        Call::Generate => run.events.iter().find_map(|e| match e {
            Event::ProjectCreated(created) => Some(created.project_id.clone()),
            _ => None,
        }),
    };
    assert!(
        expected.is_some() || count == 0,
        "{call:?}: a project id was announced"
    );
    assert_eq!(error.project_id(), expected.as_ref(), "{call:?}: {error:?}");
}

#[tokio::test]
async fn benign_faults_still_deliver_every_event_in_order() {
    let faults: [&[Fault]; 5] = [
        &[Fault::ChunkSize(1)],
        &[Fault::ChunkSize(7), Fault::Crlf],
        &[Fault::Crlf],
        &[Fault::ChunkSize(4096)],
        &[Fault::ChunkSize(3), Fault::InvalidUtf8],
    ];
    for call in CALLS {
        let reference = baseline(call).await;
        for faults in faults {
            let server = MockServer::start();
            let client = client_for(&server, RetryPolicy::none());
            let run = run(&server, &client, call, |s| {
                s.faults_next(faults.iter().cloned())
            })
            .await;
            assert!(run.end.is_ok(), "{call:?} {faults:?}: {:?}", run.end);
            if faults.contains(&Fault::InvalidUtf8) {
                let types: Vec<&str> = run.events.iter().map(Event::type_name).collect();
                let reference_types: Vec<&str> = reference
                    .iter()
                    .map(|s| s.split(':').next().unwrap())
                    .collect();
                assert_eq!(types, reference_types, "{call:?} {faults:?}");
                assert!(
                    run.signatures().iter().any(|s| s.contains('\u{FFFD}')),
                    "{call:?}: replaced byte"
                );
            } else {
                assert_eq!(run.signatures(), reference, "{call:?} {faults:?}");
            }
        }
    }
}

#[tokio::test]
async fn a_dropped_connection_is_incomplete_after_exactly_the_events_sent() {
    for call in CALLS {
        let reference = baseline(call).await;
        let server = MockServer::start();
        let client = client_for(&server, quick_retries());
        let run = run(&server, &client, call, |s| {
            s.fault_next(Fault::DropAfter(5))
        })
        .await;
        assert_prefix_then(&run, &reference, 5, call);
        assert!(
            matches!(run.end, Err(Error::Incomplete { events: 5, .. })),
            "{call:?}: {:?}",
            run.end
        );
    }
}

#[tokio::test]
async fn a_connection_torn_mid_event_fails_after_the_whole_events_only() {
    for call in CALLS {
        let reference = baseline(call).await;
        let server = MockServer::start();
        let client = client_for(&server, quick_retries());
        let run = run(&server, &client, call, |s| {
            s.fault_next(Fault::DropMidEvent(4))
        })
        .await;
        assert_prefix_then(&run, &reference, 4, call);
        assert!(
            matches!(
                run.end,
                Err(Error::Transport { .. } | Error::Incomplete { .. })
            ),
            "{call:?}: {:?}",
            run.end
        );
    }
}

#[tokio::test]
async fn a_stalled_stream_times_out_instead_of_hanging() {
    for call in CALLS {
        let reference = baseline(call).await;
        let server = MockServer::start();
        let client = stalling_client_for(&server, quick_retries());
        let run = run(&server, &client, call, |s| {
            s.fault_next(Fault::StallBefore(3))
        })
        .await;
        assert_prefix_then(&run, &reference, 3, call);
        assert!(
            matches!(
                run.end,
                Err(Error::Timeout {
                    kind: laracopilot::TimeoutKind::Idle,
                    ..
                })
            ),
            "{call:?}: {:?}",
            run.end
        );
    }
}

#[tokio::test]
async fn a_quiet_gap_longer_than_the_idle_timeout_times_out_after_the_events_sent() {
    for call in CALLS {
        let reference = baseline(call).await;
        let server = MockServer::start();
        let client = stalling_client_for(&server, quick_retries());
        let gap = Fault::DelayBefore(3, Duration::from_secs(3));
        let run = run(&server, &client, call, |s| s.fault_next(gap)).await;
        assert_prefix_then(&run, &reference, 3, call);
        assert!(
            matches!(run.end, Err(Error::Timeout { .. })),
            "{call:?}: {:?}",
            run.end
        );
    }
}

#[tokio::test]
async fn a_request_that_is_never_answered_times_out_and_is_never_resent() {
    for call in CALLS {
        let server = MockServer::start();
        let client = stalling_client_for(&server, quick_retries());
        let run = run(&server, &client, call, |s| s.reply_next(1, Reply::hang())).await;
        assert!(
            matches!(run.end, Err(Error::Timeout { .. })),
            "{call:?}: {:?}",
            run.end
        );
        assert!(run.events.is_empty());
        assert_eq!(posts_of(&server, call), 1, "{call:?}: sent once");
    }
}

#[tokio::test]
async fn an_error_body_that_stalls_ends_within_the_request_timeout_and_is_never_resent() {
    const TIMEOUT: Duration = Duration::from_millis(500);
    for status in [500, 403] {
        for call in CALLS {
            let server = MockServer::start();
            // The head must arrive (the idle timeout bounds that wait), the body
            // stalls: the request timeout must end it.
            let client = server
                .client_builder()
                .idle_timeout(Some(IDLE_LIVE))
                .request_timeout(TIMEOUT)
                .retry_policy(quick_retries())
                .build()
                .unwrap();
            let stalled = run(&server, &client, call, |s| {
                s.reply_next(1, Reply::stalled_body(status, r#"{"message": "Unauth"#))
            });
            let run = tokio::time::timeout(Duration::from_secs(10), stalled)
                .await
                .expect("the call ends within its request timeout");
            let Err(Error::Api {
                status: got, body, ..
            }) = &run.end
            else {
                panic!("{call:?} {status}: {:?}", run.end)
            };
            assert_eq!(*got, status, "{call:?}");
            assert!(body.contains("Unauth"), "{call:?}: what was read is kept");
            assert_eq!(
                run.end.as_ref().unwrap_err().project_id(),
                run.project.as_ref(),
                "{call:?}: the follow-up's project id is kept"
            );
            assert!(run.events.is_empty());
            assert_eq!(posts_of(&server, call), 1, "{call:?}: sent once");
        }
    }
}

#[tokio::test]
async fn an_oversized_event_is_refused_with_the_events_before_it_kept() {
    for call in CALLS {
        let reference = baseline(call).await;
        let server = MockServer::start();
        let client = client_for(&server, RetryPolicy::none());
        let run = run(&server, &client, call, |s| {
            s.fault_next(Fault::OversizedEvent(64 * 1024))
        })
        .await;
        // The first event other than `project_created` is the oversized one.
        let before = usize::from(call == Call::Generate);
        assert_prefix_then(&run, &reference, before, call);
        assert!(
            matches!(run.end, Err(Error::EventTooLarge { limit: 16384, .. })),
            "{call:?}: {:?}",
            run.end
        );
    }
}

#[tokio::test]
async fn rate_limits_and_unavailability_before_the_stream_are_retried_to_success() {
    for call in CALLS {
        let reference = baseline(call).await;
        for reply in [Reply::rate_limited(Some(0)), Reply::unavailable()] {
            let server = MockServer::start();
            let client = client_for(&server, quick_retries());
            let run = run(&server, &client, call, |s| s.reply_next(1, reply.clone())).await;
            assert!(run.end.is_ok(), "{call:?} {reply:?}: {:?}", run.end);
            assert_eq!(run.signatures(), reference, "{call:?} {reply:?}");
            assert_eq!(
                posts_of(&server, call),
                2,
                "{call:?} {reply:?}: one refused attempt, one accepted"
            );
        }
    }
}

#[tokio::test]
async fn without_retries_each_status_answer_is_its_typed_error() {
    for call in CALLS {
        let cases = [
            (Reply::rate_limited(Some(9)), "rate_limited"),
            (Reply::unavailable(), "api"),
            (Reply::server_error_html(), "api"),
        ];
        for (reply, kind) in cases {
            let server = MockServer::start();
            let client = client_for(&server, RetryPolicy::none());
            let run = run(&server, &client, call, |s| s.reply_next(1, reply.clone())).await;
            let error = run.end.expect_err("the reply is an error");
            assert_eq!(error.kind(), kind, "{call:?} {reply:?}");
            assert!(run.events.is_empty());
            if let Reply::RateLimited { .. } = reply {
                assert_eq!(error.retry_after(), Some(Duration::from_secs(9)));
            }
            if call == Call::FollowUp {
                assert_eq!(error.project_id(), run.project.as_ref(), "{reply:?}");
            }
        }
    }
}

#[tokio::test]
async fn a_500_html_page_before_a_generation_is_never_retried() {
    for call in CALLS {
        let server = MockServer::start();
        let client = client_for(&server, quick_retries());
        let run = run(&server, &client, call, |s| {
            s.reply_next(1, Reply::server_error_html())
        })
        .await;
        assert!(
            matches!(run.end, Err(Error::Api { status: 500, .. })),
            "{call:?}: {:?}",
            run.end
        );
        assert_eq!(posts_of(&server, call), 1, "{call:?}");
    }
}

#[tokio::test]
async fn a_revocation_lets_the_running_stream_finish_and_fails_the_next_call() {
    for call in CALLS {
        let server = MockServer::builder()
            .pacing(Duration::from_millis(2))
            .start()
            .unwrap();
        let secret = "lcp_rotating_token_0001";
        server.add_token(secret, TokenState::Valid);
        let client = server
            .client_builder()
            .token(laracopilot::Token::new(secret).unwrap())
            .retry_policy(RetryPolicy::none())
            .build()
            .unwrap();
        let project = existing_project(&client).await;
        let mut generation = match call {
            Call::Generate => client.generate(PROMPT).await.unwrap(),
            Call::FollowUp => client
                .follow_up(&project, "Add a dark mode with a toggle")
                .await
                .unwrap(),
        };
        assert!(generation.next().await.unwrap().is_ok());
        server.revoke(secret);
        // The server checked the token when the stream started: it runs to its end.
        assert!(generation.finish().await.is_ok(), "{call:?}");
        let next = match call {
            Call::Generate => client.generate(PROMPT).await.map(drop),
            Call::FollowUp => client
                .follow_up(&project, "Add a dark mode with a toggle")
                .await
                .map(drop),
        };
        assert!(
            matches!(next, Err(Error::Unauthorized { .. })),
            "{call:?}: {next:?}"
        );
    }
}

#[tokio::test]
async fn credits_running_out_end_the_stream_with_the_project_id() {
    for call in CALLS {
        let reference = baseline(call).await;
        let server = MockServer::start();
        let client = client_for(&server, RetryPolicy::none());
        let run = run(&server, &client, call, |s| s.set_credits(2)).await;
        // Two files are paid for; the third `file_created` becomes `credits_exhausted`.
        let third_file = reference
            .iter()
            .enumerate()
            .filter(|(_, s)| s.starts_with("file_created:"))
            .nth(2)
            .map(|(i, _)| i)
            .expect("the reference has three files");
        assert_prefix_then(&run, &reference, third_file, call);
        assert!(
            matches!(run.end, Err(Error::CreditsExhausted { .. })),
            "{call:?}: {:?}",
            run.end
        );
    }
}

#[tokio::test]
async fn odd_lines_mid_stream_are_events_that_never_end_the_stream() {
    for call in CALLS {
        let reference = baseline(call).await;
        let server = MockServer::start();
        let client = client_for(&server, RetryPolicy::none());
        let run = run(&server, &client, call, |s| {
            s.faults_next([
                Fault::RawLineBefore(1, "data: ping".into()),
                Fault::RawLineBefore(1, "data: [DONE]".into()),
                Fault::RawLineBefore(2, ": keep-alive".into()),
                Fault::RawLineBefore(2, "retry: 99999999999999999999".into()),
                Fault::RawLineBefore(
                    3,
                    r#"data: {"type":"file_created","path":7,"path":[1]}"#.into(),
                ),
                Fault::RawLineBefore(
                    3,
                    "event: surprise\ndata: {\"type\":\"deploy_started\"}".into(),
                ),
                Fault::RawLineBefore(
                    4,
                    r#"data: {"type":"container_progress","percentage":1e999}"#.into(),
                ),
            ])
        })
        .await;
        assert!(run.end.is_ok(), "{call:?}: {:?}", run.end);
        let injected = |e: &Event| match e {
            Event::Malformed(_) | Event::Unknown(_) => true,
            Event::FileCreated(f) => f.path.is_none(),
            Event::ContainerProgress(p) => p.percentage.is_none() && p.message.is_empty(),
            _ => false,
        };
        let kept: Vec<String> = run
            .events
            .iter()
            .filter(|e| !injected(e))
            .map(signature)
            .collect();
        assert_eq!(
            kept, reference,
            "{call:?}: the real events, all and in order"
        );
        let malformed: Vec<&str> = run
            .events
            .iter()
            .filter_map(|e| match e {
                Event::Malformed(m) => Some(m.raw_json()),
                _ => None,
            })
            .collect();
        assert_eq!(malformed, ["ping", "[DONE]"], "{call:?}");
        assert_eq!(
            run.events.iter().filter(|e| injected(e)).count(),
            5,
            "{call:?}"
        );
    }
}

#[tokio::test]
async fn a_gateway_503_after_the_application_had_time_to_start_is_never_resent() {
    for call in CALLS {
        let server = MockServer::start();
        // Headers are awaited as long as the idle timeout: longer than the gateway.
        let client = server
            .client_builder()
            .idle_timeout(Some(Duration::from_secs(10)))
            .retry_policy(quick_retries())
            .build()
            .unwrap();
        // A gateway that waited past the 2 s in which a 503 still means "refused".
        let late = Reply::delayed(Duration::from_millis(2_500), Reply::unavailable());
        let run = run(&server, &client, call, |s| s.reply_next(1, late)).await;
        let error = run.end.expect_err("the 503 is the answer");
        assert_eq!(error.status(), Some(503), "{call:?}: {error:?}");
        assert!(error.may_have_started_work(), "{call:?}: {error:?}");
        assert_eq!(error.attempts(), 1, "{call:?}: {error:?}");
        assert_eq!(posts_of(&server, call), 1, "{call:?}: sent once only");
    }
}

#[tokio::test]
async fn a_token_provider_that_never_answers_fails_the_call_in_time_and_sends_nothing() {
    for call in CALLS {
        let server = MockServer::start();
        let project = existing_project(&client_for(&server, RetryPolicy::none())).await;
        let before = server.requests().len();
        let hung = laracopilot::tokens::FnToken::new(std::future::pending);
        let client = laracopilot::Client::builder()
            .token_provider(hung)
            .base_url(server.base_url())
            .request_timeout(Duration::from_millis(300))
            .build()
            .unwrap();
        let started = std::time::Instant::now();
        let outcome = tokio::time::timeout(Duration::from_secs(10), async {
            match call {
                Call::Generate => client.generate(PROMPT).await.map(drop),
                Call::FollowUp => client.follow_up(&project, PROMPT).await.map(drop),
            }
        })
        .await
        .expect("bounded by the request timeout");
        assert!(started.elapsed() < Duration::from_secs(5), "{call:?}");
        let Err(Error::Timeout { kind, .. }) = &outcome else {
            panic!("{call:?}: {outcome:?}");
        };
        assert_eq!(*kind, laracopilot::TimeoutKind::TokenProvider, "{call:?}");
        assert_eq!(server.requests().len(), before, "{call:?}: nothing sent");
    }
}
