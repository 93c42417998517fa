//! What the offline LaraCopilot does when a client leaves in the middle of a stream
//! (by default the generation finishes, as the SDK documents of LaraCopilot; with
//! `OnClientDrop::Fail` it is marked failed), and the projects a server starts with.

use std::time::Duration;

use laracopilot::{Client, Generation, ProjectId};
use laracopilot_mock::{
    Fault, MockProject, MockServer, MockServerBuilder, OnClientDrop, ProjectStatus,
};

const PROMPT: &str = "Build a task management app";

/// Waits (at most 10 s) until the project has left `generating`; its status then.
async fn settled(server: &MockServer, id: &ProjectId) -> ProjectStatus {
    for _ in 0..1_000 {
        let status = server.project(id).unwrap().status;
        if status != ProjectStatus::Generating {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("project {id} is still generating after 10 s");
}

/// A generation on `client` whose first `events` events were read.
async fn started(client: &Client, events: usize) -> Generation {
    let mut generation = client.generate(PROMPT).await.unwrap();
    for _ in 0..events {
        let read = tokio::time::timeout(Duration::from_secs(10), generation.next()).await;
        read.expect("an event in time").unwrap().unwrap();
    }
    generation
}

/// A server whose streams are slow enough that a client leaves long before the end.
fn paced() -> MockServerBuilder {
    MockServer::builder().pacing(Duration::from_millis(50))
}

/// The files of a generation of `PROMPT` that ran to its end, on a server of its own.
async fn complete_files() -> Vec<String> {
    let server = MockServer::start();
    let outcome = server.client().generate(PROMPT).await.unwrap();
    outcome.finish().await.unwrap().files
}

#[tokio::test]
async fn a_generation_whose_client_leaves_finishes_as_if_it_had_stayed() {
    let server = paced().start().unwrap();
    let generation = started(&server.client(), 3).await;
    let id = generation.project_id().cloned().unwrap();
    drop(generation);

    assert_eq!(settled(&server, &id).await, ProjectStatus::Ready);
    let files = complete_files().await;
    assert_eq!(server.project(&id).unwrap().files, files);
    assert_eq!(
        server.credits(),
        laracopilot_mock::DEFAULT_CREDITS - files.len() as u64,
        "the files nobody read were spent for"
    );
    let polled = server.client().project(&id).await.unwrap();
    assert_eq!(polled.project_status.as_deref(), Some("ready"));
}

#[tokio::test]
async fn with_on_client_drop_fail_a_left_generation_is_failed_with_the_files_sent() {
    let server = paced().on_client_drop(OnClientDrop::Fail).start().unwrap();
    // project_created, six container steps, container_ready, then a tool_progress
    // and the first file.
    let generation = started(&server.client(), 10).await;
    let id = generation.project_id().cloned().unwrap();
    drop(generation);

    assert_eq!(settled(&server, &id).await, ProjectStatus::Failed);
    let recorded = server.project(&id).unwrap().files;
    let complete = complete_files().await;
    assert!(
        !recorded.is_empty() && recorded.len() < complete.len(),
        "only what was sent: {recorded:?}"
    );
}

#[tokio::test]
async fn a_left_generation_runs_out_of_credits_where_it_would_have() {
    let server = paced().credits(3).start().unwrap();
    let generation = started(&server.client(), 2).await;
    let id = generation.project_id().cloned().unwrap();
    drop(generation);

    assert_eq!(settled(&server, &id).await, ProjectStatus::CreditsExhausted);
    assert_eq!(server.project(&id).unwrap().files.len(), 3);
    assert_eq!(server.credits(), 0);
}

#[tokio::test]
async fn a_fault_ahead_of_a_left_generation_still_fails_it() {
    for fault in [
        Fault::StallBefore(12),
        Fault::DropAfter(12),
        Fault::DropMidEvent(12),
    ] {
        let server = paced().start().unwrap();
        server.fault_next(fault.clone());
        let generation = started(&server.client(), 2).await;
        let id = generation.project_id().cloned().unwrap();
        drop(generation);
        assert_eq!(
            settled(&server, &id).await,
            ProjectStatus::Failed,
            "{fault:?}"
        );
    }
}

#[tokio::test]
async fn a_client_that_leaves_a_stalled_stream_leaves_it_failed() {
    let server = MockServer::start();
    server.fault_next(Fault::StallBefore(3));
    let generation = started(&server.client(), 3).await;
    let id = generation.project_id().cloned().unwrap();
    assert_eq!(
        server.project(&id).unwrap().status,
        ProjectStatus::Generating
    );
    drop(generation);
    assert_eq!(settled(&server, &id).await, ProjectStatus::Failed);
}

#[tokio::test]
async fn a_client_that_leaves_before_the_headers_still_gets_its_project_generated() {
    let server = MockServer::start();
    server.fault_next(Fault::DelayHeaders(Duration::from_secs(3)));
    let client = server
        .client_builder()
        .idle_timeout(Some(Duration::from_millis(200)))
        .build()
        .unwrap();
    let refused = client.generate(PROMPT).await;
    assert!(refused.is_err(), "the headers came too late");
    let id = ProjectId::from("p1");
    assert_eq!(settled(&server, &id).await, ProjectStatus::Ready);
    assert!(!server.project(&id).unwrap().files.is_empty());
}

#[tokio::test]
async fn a_seeded_project_answers_its_status_takes_follow_ups_and_keeps_its_id() {
    let mut seeded = MockProject::new("p1", ProjectStatus::Ready);
    seeded.name = "Seeded Tasks".into();
    seeded.files = vec!["app/Models/Task.php".into(), "app/Models/Task.php".into()];
    let server = MockServer::builder()
        .project(seeded)
        .project(MockProject::new("p2", ProjectStatus::Failed))
        .start()
        .unwrap();
    assert_eq!(
        server.project("p1").unwrap().files,
        ["app/Models/Task.php"],
        "each path once"
    );
    let client = server.client();
    let p1 = client.project("p1").await.unwrap();
    assert_eq!(p1.name.as_deref(), Some("Seeded Tasks"));
    assert_eq!(p1.project_status.as_deref(), Some("ready"));
    assert_eq!(p1.app_url.as_deref(), Some("https://p1.laracopilot.com"));
    let p2 = client.project("p2").await.unwrap();
    assert_eq!(p2.project_status.as_deref(), Some("failed"));

    let created = client
        .generate(PROMPT)
        .await
        .unwrap()
        .finish()
        .await
        .unwrap();
    assert_eq!(
        created.project_id().unwrap(),
        "p3",
        "a new project skips known ids"
    );
    let id = ProjectId::from("p1");
    let followed = client.follow_up(&id, "Add a dark mode with a toggle").await;
    followed.unwrap().finish().await.unwrap();
    assert_eq!(
        server.project("p1").unwrap().prompts,
        ["Add a dark mode with a toggle"]
    );
}

#[test]
fn a_project_status_reads_back_from_its_string() {
    for status in [
        ProjectStatus::Generating,
        ProjectStatus::Ready,
        ProjectStatus::Failed,
        ProjectStatus::CreditsExhausted,
    ] {
        assert_eq!(status.as_str().parse::<ProjectStatus>(), Ok(status));
    }
    assert!("Ready".parse::<ProjectStatus>().is_err());
    assert!("".parse::<ProjectStatus>().is_err());
}
