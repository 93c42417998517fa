//! What the server counts on the wire (POSTs with their prompts and times, streams
//! with their opens and closes, the most open at once), faults given per prompt to
//! concurrent calls, and streams held until the test lets them go on. Every wait is
//! bounded; nothing depends on the machine's speed.

use std::time::{Duration, Instant};

use laracopilot::{Client, Error, Event, Generation, ProjectId};
use laracopilot_mock::{Fault, MockServer, ProjectStatus, StreamRecord};

/// `future`, bounded to 20 seconds: a test that hangs fails instead.
async fn bounded<T>(future: impl std::future::IntoFuture<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), future)
        .await
        .expect("the test makes progress")
}

/// A client whose streams may stay silent as long as a test holds them.
fn patient(server: &MockServer) -> Client {
    server.client_builder().idle_timeout(None).build().unwrap()
}

/// A generation of `prompt` whose `project_created` was read.
async fn created(client: &Client, prompt: &str) -> (Generation, ProjectId) {
    let mut generation = bounded(client.generate(prompt)).await.unwrap();
    let first = bounded(generation.next()).await.unwrap().unwrap();
    let Event::ProjectCreated(created) = first else {
        panic!("not project_created first: {first:?}")
    };
    (generation, created.project_id)
}

/// Polls `condition` every 5 ms, at most 20 s.
async fn until(what: &str, mut condition: impl FnMut() -> bool) {
    for _ in 0..4_000 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("never came true: {what}");
}

fn the_stream_of(server: &MockServer, prompt: &str) -> StreamRecord {
    let streams: Vec<StreamRecord> = server
        .streams()
        .into_iter()
        .filter(|s| s.prompt == prompt)
        .collect();
    assert_eq!(streams.len(), 1, "{streams:#?}");
    streams.into_iter().next().unwrap()
}

#[tokio::test]
async fn every_generate_post_is_counted_with_its_prompt_and_time_whatever_the_answer() {
    let server = MockServer::start();
    let client = server
        .client_builder()
        .retry_policy(laracopilot::RetryPolicy::none())
        .build()
        .unwrap();
    let before = Instant::now();
    let outcome = bounded(async {
        client
            .generate("Build a task management app")
            .await?
            .finish()
            .await
    })
    .await
    .unwrap();
    let project = outcome.project_id().unwrap().clone();
    bounded(async {
        client
            .follow_up(&project, "Add a dark mode please")
            .await?
            .finish()
            .await
    })
    .await
    .unwrap();
    // Refused by validation (too short), and refused as unknown: POSTs all the same.
    assert!(matches!(
        bounded(client.generate("short")).await,
        Err(Error::Validation { .. })
    ));
    assert!(matches!(
        bounded(client.follow_up("p404", "Add a dark mode please")).await,
        Err(Error::NotFound { .. })
    ));
    // A status call is no POST.
    bounded(client.project(&project)).await.unwrap();

    let posts = server.posts();
    let prompts: Vec<Option<&str>> = posts.iter().map(|p| p.prompt.as_deref()).collect();
    assert_eq!(
        prompts,
        [
            Some("Build a task management app"),
            Some("Add a dark mode please"),
            Some("short"),
            Some("Add a dark mode please"),
        ]
    );
    assert_eq!(posts[0].path, "/api/v1/agent/generate");
    assert_eq!(posts[1].path, format!("/api/v1/agent/generate/{project}"));
    assert!(posts.windows(2).all(|w| w[0].at <= w[1].at));
    assert!(posts[0].at >= before && posts[3].at <= Instant::now());
    assert_eq!(server.posts_with_prompt("Add a dark mode please"), 2);
    assert_eq!(server.posts_with_prompt("Build a task management app"), 1);
    assert_eq!(server.posts_with_prompt("Build a blog"), 0);
    // Two of them became streams: the accepted ones.
    let streams = server.streams();
    assert_eq!(streams.len(), 2);
    assert!(!streams[0].follow_up && streams[1].follow_up);
    assert!(streams
        .iter()
        .all(|s| s.project_id == project && s.complete));
}

#[tokio::test]
async fn streams_are_counted_open_from_acceptance_until_their_end_or_their_client_leaves() {
    let server = MockServer::start();
    let client = patient(&server);
    for i in 0..3 {
        server.faults_for_prompt(format!("Build stalled app {i}"), [Fault::StallBefore(1)]);
    }
    let mut held = Vec::new();
    for i in 0..3 {
        held.push(created(&client, &format!("Build stalled app {i}")).await);
        assert_eq!(server.open_streams(), i + 1);
    }
    // One more that runs to its end meanwhile: four at once at most.
    bounded(async {
        client
            .generate("Build a task management app")
            .await?
            .finish()
            .await
    })
    .await
    .unwrap();
    assert_eq!(server.open_streams(), 3);
    assert_eq!(server.max_open_streams(), 4);
    let done = the_stream_of(&server, "Build a task management app");
    assert!(done.complete && done.closed_at.unwrap() > done.opened_at);

    let left = Instant::now();
    let (generation, id) = held.remove(0);
    drop(generation);
    until("the server saw the client leave", || {
        server.open_streams() == 2
    })
    .await;
    let gone = the_stream_of(&server, "Build stalled app 0");
    assert_eq!(gone.project_id, id);
    assert!(!gone.complete, "{gone:?}");
    assert!(gone.closed_at.unwrap() >= left);
    assert!(the_stream_of(&server, "Build stalled app 1")
        .closed_at
        .is_none());
    drop(held);
    until("every stream closed", || server.open_streams() == 0).await;
    assert_eq!(server.max_open_streams(), 4, "the most at once is kept");
}

#[tokio::test]
async fn faults_for_a_prompt_reach_its_stream_whatever_the_order_and_leave_the_queue_alone() {
    let server = MockServer::start();
    let client = patient(&server);
    server.fault_next(Fault::DropAfter(2));
    server.faults_for_prompt("Build the second app", [Fault::DropAfter(5)]);
    server.faults_for_prompt("Build the third app", [Fault::StallBefore(1)]);
    // Concurrent calls, in any order: each gets what its prompt was given.
    let third = tokio::spawn({
        let client = client.clone();
        async move { created(&client, "Build the third app").await }
    });
    let second = client
        .generate("Build the second app")
        .await
        .unwrap()
        .finish()
        .await;
    assert!(
        matches!(second, Err(Error::Incomplete { events: 5, .. })),
        "{second:?}"
    );
    let (stalled, _) = bounded(third).await.unwrap();
    // The queued fault is for the next stream without faults of its own.
    let first = client
        .generate("Build the first app")
        .await
        .unwrap()
        .finish()
        .await;
    assert!(
        matches!(first, Err(Error::Incomplete { events: 2, .. })),
        "{first:?}"
    );
    // Used once: the same prompt again runs clean.
    let again = client
        .generate("Build the second app")
        .await
        .unwrap()
        .finish()
        .await;
    assert!(again.is_ok(), "{again:?}");
    assert_eq!(server.open_streams(), 1);
    drop(stalled);
}

#[tokio::test]
async fn a_held_stream_waits_for_its_release_then_ends_as_if_nothing_happened() {
    let server = MockServer::start();
    let client = patient(&server);
    // Held before its last event: `stream_end`.
    let total = bounded(async {
        client
            .generate("Build a task management app")
            .await?
            .finish()
            .await
    })
    .await
    .unwrap()
    .stats()
    .events as usize;
    server.faults_for_prompt("Build a held app", [Fault::HoldBefore(total - 1)]);
    server.faults_for_prompt("Build another held app", [Fault::HoldBefore(1)]);
    let (mut held, id) = created(&client, "Build a held app").await;
    let (other, other_id) = created(&client, "Build another held app").await;
    for _ in 1..total - 1 {
        let event = bounded(held.next()).await.unwrap().unwrap();
        assert!(!matches!(event, Event::StreamEnd(_)));
    }
    // Everything but the end was read: the stream is open, the project generating.
    let waiting = tokio::time::timeout(Duration::from_millis(200), held.next()).await;
    assert!(waiting.is_err(), "nothing comes while held: {waiting:?}");
    assert!(the_stream_of(&server, "Build a held app")
        .closed_at
        .is_none());
    assert_eq!(
        server.project(&id).unwrap().status,
        ProjectStatus::Generating
    );

    let released = Instant::now();
    server.release_held(&id);
    let end = bounded(held.next()).await.unwrap().unwrap();
    assert!(matches!(end, Event::StreamEnd(_)), "{end:?}");
    let record = the_stream_of(&server, "Build a held app");
    assert!(record.complete && record.closed_at.unwrap() >= released);
    assert_eq!(server.project(&id).unwrap().status, ProjectStatus::Ready);
    // A release names its project: the other one still holds.
    assert!(the_stream_of(&server, "Build another held app")
        .closed_at
        .is_none());

    // A release given before the hold is kept for it.
    server.release_held(&other_id);
    assert!(bounded(other.finish()).await.is_ok());
}

#[tokio::test]
async fn a_held_stream_whose_client_leaves_is_generated_to_its_end() {
    let server = MockServer::start();
    let client = patient(&server);
    server.faults_for_prompt("Build a held app", [Fault::HoldBefore(3)]);
    let (generation, id) = created(&client, "Build a held app").await;
    drop(generation);
    until("the project finished without its client", || {
        server.project(&id).unwrap().status == ProjectStatus::Ready
    })
    .await;
    until("the stream closed", || server.open_streams() == 0).await;
    assert!(!the_stream_of(&server, "Build a held app").complete);
}
