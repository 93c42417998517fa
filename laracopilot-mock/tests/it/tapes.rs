//! The fault matrix on recorded traffic: one recorded session (a new project, its
//! status, a follow-up), turned into each of its faulty variants with one call, and
//! replayed to the SDK, ends in the crate's typed outcome for that fault: an
//! incomplete stream with its project id, a timeout, a transport error, a retried
//! 429 or 503, an unauthorized or expired token, a recovery by polling.

use crate::common;

use std::time::Duration;

use laracopilot::cassette::Cassette;
use laracopilot::{
    Client, Error, Event, Outcome, ProjectId, RetryPolicy, TimeoutKind, WaitOptions,
};
use laracopilot_mock::{CassetteExt, MockServer};

const PROMPT: &str = "Build a task management app";
const FOLLOW_UP: &str = "Add a dark mode with a toggle";

/// Records the session against the offline LaraCopilot: what is on the tape.
async fn recorded_session() -> (tempfile::TempDir, Cassette) {
    let dir = common::cassette::dir();
    let path = dir.path().join("session.cassette");
    let live = MockServer::start();
    let client = live.client_builder().record_to(&path).build().unwrap();
    let outcome = common::finish_ok(&client, PROMPT).await;
    let id = outcome.project_id().cloned().expect("a project");
    common::bounded(client.project(&id)).await.unwrap();
    let follow_up =
        common::bounded(async { client.follow_up(&id, FOLLOW_UP).await?.finish().await });
    follow_up.await.unwrap();
    let cassette = Cassette::load(&path).unwrap();
    (dir, cassette)
}

fn client(server: &MockServer, retry: RetryPolicy) -> Client {
    server
        .client_builder()
        .idle_timeout(Some(common::STALL))
        .retry_policy(retry)
        .build()
        .unwrap()
}

fn quick_retries() -> RetryPolicy {
    RetryPolicy::default()
        .base_delay(Duration::from_millis(5))
        .max_delay(Duration::from_millis(20))
}

/// The first generation of the tape, collected: the events, and the outcome or error.
async fn generate(client: &Client) -> (Vec<Event>, Result<Outcome, Error>) {
    let generation = match common::bounded(client.generate(PROMPT)).await {
        Ok(generation) => generation,
        Err(error) => return (Vec::new(), Err(error)),
    };
    let mut events = Vec::new();
    let outcome = common::bounded(generation.finish_with(|e| events.push(e.clone()))).await;
    (events, outcome)
}

#[tokio::test]
async fn the_recorded_session_replays_whole_and_uses_the_whole_tape() {
    let (_dir, tape) = recorded_session().await;
    assert_eq!(tape.len(), 3, "generate, status, follow-up");
    assert!(tape.exchanges()[0].is_event_stream() && tape.exchanges()[2].is_event_stream());
    let server = MockServer::replay(tape);
    let client = client(&server, RetryPolicy::none());
    let (events, outcome) = generate(&client).await;
    let outcome = outcome.unwrap();
    assert_eq!(events.len(), 34);
    let id = outcome.project_id().cloned().unwrap();
    assert_eq!(
        client.project(&id).await.unwrap().project_status.as_deref(),
        Some("ready")
    );
    client
        .follow_up(&id, FOLLOW_UP)
        .await
        .unwrap()
        .finish()
        .await
        .unwrap();
    assert_eq!(server.unplayed(), 0);
    assert!(server.unmatched().is_empty());
}

#[tokio::test]
async fn every_variant_ends_in_its_typed_outcome() {
    let (_dir, tape) = recorded_session().await;
    let id = ProjectId::from("p1");
    let whole = generate(&client(
        &MockServer::replay(tape.clone()),
        RetryPolicy::none(),
    ))
    .await
    .0;

    // Cut cleanly after 5 events: incomplete, with the project id and 5 events.
    let server = MockServer::replay(tape.cut_after(5));
    let (events, outcome) = generate(&client(&server, RetryPolicy::none())).await;
    assert_eq!(events, whole[..5]);
    match outcome {
        Err(error @ Error::Incomplete { events, .. }) => {
            assert_eq!(error.project_id(), Some(&id));
            assert_eq!(events, 5);
        }
        other => panic!("cut_after(5): {other:?}"),
    }

    // Cut before the first event: incomplete, and no project id to give.
    let server = MockServer::replay(tape.cut_after(0));
    let (events, outcome) = generate(&client(&server, RetryPolicy::none())).await;
    assert!(events.is_empty());
    let error = outcome.unwrap_err();
    assert!(
        matches!(error, Error::Incomplete { .. }) && error.project_id().is_none(),
        "{error:?}"
    );

    // Reset after 5 events: a transport error, the project id kept.
    let server = MockServer::replay(tape.reset_after(5));
    let (events, outcome) = generate(&client(&server, RetryPolicy::none())).await;
    assert_eq!(events, whole[..5]);
    let error = outcome.unwrap_err();
    assert!(matches!(error, Error::Transport { .. }), "{error:?}");
    assert_eq!(error.project_id(), Some(&id));

    // Stall before event 5: the idle timeout fires, the project id kept.
    let server = MockServer::replay(tape.stall_before(5));
    let (events, outcome) = generate(&client(&server, RetryPolicy::none())).await;
    assert_eq!(events, whole[..5]);
    let error = outcome.unwrap_err();
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
    assert_eq!(error.project_id(), Some(&id));

    // CRLF line ends and 1-byte chunks: the same events, nothing lost.
    for (name, variant) in [("crlf", tape.crlf()), ("chunk_size(1)", tape.chunk_size(1))] {
        let server = MockServer::replay(variant);
        let (events, outcome) = generate(&client(&server, RetryPolicy::none())).await;
        outcome.unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(events, whole, "{name}");
    }

    // A 429 with Retry-After, or a quick 503, before the stream: retried, then the
    // recorded stream.
    for (name, variant) in [
        ("429", tape.rate_limited(Some(0))),
        ("503", tape.unavailable()),
    ] {
        let server = MockServer::replay(variant);
        let (events, outcome) = generate(&client(&server, quick_retries())).await;
        let outcome = outcome.unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(outcome.stats().attempts, 2, "{name}");
        assert_eq!(events, whole, "{name}");
        assert!(server.unmatched().is_empty(), "{name}");
        assert_eq!(server.requests().len(), 2, "{name}: two requests");
    }
    // Without retries, the 429 is the caller's, with its delay.
    let server = MockServer::replay(tape.rate_limited(Some(7)));
    let error = generate(&client(&server, RetryPolicy::none()))
        .await
        .1
        .unwrap_err();
    assert!(matches!(error, Error::RateLimited { .. }), "{error:?}");
    assert_eq!(error.retry_after(), Some(Duration::from_secs(7)));

    // The token revoked, or expired: the documented 401s, on every call.
    let server = MockServer::replay(tape.revoked());
    let client_revoked = client(&server, quick_retries());
    let error = generate(&client_revoked).await.1.unwrap_err();
    assert!(matches!(error, Error::Unauthorized { .. }), "{error:?}");
    let error = client_revoked.project(&id).await.unwrap_err();
    assert!(matches!(error, Error::Unauthorized { .. }), "{error:?}");
    let server = MockServer::replay(tape.expired());
    let error = generate(&client(&server, quick_retries()))
        .await
        .1
        .unwrap_err();
    assert!(matches!(error, Error::TokenExpired { .. }), "{error:?}");
}

#[tokio::test]
async fn events_are_counted_over_the_tape_so_a_follow_up_can_be_cut_too() {
    let (_dir, tape) = recorded_session().await;
    let first = tape.exchanges()[0].events();
    assert_eq!(tape.events(), first + tape.exchanges()[2].events());
    let server = MockServer::replay(tape.cut_after(first + 3));
    let client = client(&server, RetryPolicy::none());
    let (_, outcome) = generate(&client).await;
    let id = outcome.unwrap().project_id().cloned().unwrap();
    client.project(&id).await.unwrap();
    let follow_up = client.follow_up(&id, FOLLOW_UP).await.unwrap();
    match common::bounded(follow_up.finish()).await {
        Err(error @ Error::Incomplete { events, .. }) => {
            assert_eq!(error.project_id(), Some(&id));
            assert_eq!(events, 3);
        }
        other => panic!("{other:?}"),
    }
    // Beyond the last event: no effect.
    assert_eq!(tape.cut_after(tape.events()), tape);
}

#[tokio::test]
async fn a_broken_stream_recovers_by_polling_the_status_on_the_tape() {
    let (_dir, tape) = recorded_session().await;
    let server = MockServer::replay(tape.reset_after(12));
    let client = client(&server, RetryPolicy::none());
    let generation = client.generate(PROMPT).await.unwrap();
    let options = WaitOptions::default()
        .interval(Duration::from_millis(100), Duration::from_millis(100))
        .timeout(Duration::from_secs(10));
    let outcome = common::bounded(client.finish_or_recover(generation, options))
        .await
        .unwrap();
    let project = outcome.recovered.expect("recovered by polling");
    assert_eq!(project.project_status.as_deref(), Some("ready"));
    assert!(server.unmatched().is_empty(), "{:?}", server.unmatched());
}

#[test]
fn variants_survive_saving_and_loading() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (dir, tape) = runtime.block_on(recorded_session());
    for (name, variant) in [
        ("cut", tape.cut_after(5)),
        ("reset", tape.reset_after(5)),
        ("stall", tape.stall_before(5)),
        ("crlf", tape.crlf()),
        ("bytes", tape.chunk_size(1)),
        ("429", tape.rate_limited(Some(3))),
        ("503", tape.unavailable()),
        ("revoked", tape.revoked()),
        ("expired", tape.expired()),
    ] {
        let path = dir.path().join(format!("{name}.cassette"));
        variant.save(&path).unwrap();
        assert_eq!(Cassette::load(&path).unwrap(), variant, "{name}");
    }
}
