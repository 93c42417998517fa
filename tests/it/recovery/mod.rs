//! Recovery instead of re-generation: polling a project until it settles, and the
//! opt-in that turns a broken stream into that polling (here, against wiremock);
//! every way a stream breaks and every state a poll may find, against servers that
//! misbehave on purpose (`states`).

use crate::common;

mod states;

use std::time::Duration;

use common::*;
use laracopilot::{Error, TimeoutKind, WaitOptions};
use wiremock::{MockServer, ResponseTemplate};

fn status(project_status: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(serde_json::json!({
        "status": true, "project_id": "p1", "app_url": "https://p1.laracopilot.com",
        "project_status": project_status, "name": "Tasks"
    }))
}

fn fast() -> WaitOptions {
    WaitOptions::default()
        .interval(Duration::from_millis(5), Duration::from_millis(20))
        .timeout(Duration::from_secs(5))
}

async fn status_then(server: &MockServer, first: &str, times: u64, then: &str) {
    mount_then(
        server,
        "GET",
        "/agent/project/p1",
        status(first),
        times,
        status(then),
    )
    .await;
}

/// A generation on `server` that opted in to recovery, driven to its end.
async fn generate_recovering(server: &MockServer) -> laracopilot::Result<laracopilot::Outcome> {
    let client = client(server);
    let generation = client.generate("Build a task management app").await?;
    client.finish_or_recover(generation, fast()).await
}

async fn count(server: &MockServer, verb: &str) -> usize {
    count_requests(server, |r| r.method.as_str() == verb).await
}

#[tokio::test]
async fn wait_for_project_polls_until_the_status_settles() {
    let server = server().await;
    status_then(&server, "generating", 3, "ready").await;
    let project = client(&server)
        .wait_for_project("p1", fast())
        .await
        .unwrap();
    assert_eq!(project.project_status.as_deref(), Some("ready"));
    assert_eq!(count(&server, "GET").await, 4);
}

#[tokio::test]
async fn wait_for_project_gives_up_at_its_timeout_with_the_project_id() {
    let server = server().await;
    mount(&server, "GET", "/agent/project/p1", status("generating")).await;
    let options = fast().timeout(Duration::from_millis(100));
    let err = client(&server)
        .wait_for_project("p1", options)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Timeout {
                kind: TimeoutKind::Wait,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.project_id().unwrap(), "p1");
}

#[tokio::test]
async fn wait_for_project_stops_at_once_on_a_404() {
    // The API's own 404 is `NotFound`; a 404 page that is not the API's (a proxy's,
    // a portal's) is `Api`. Neither is transient: the wait ends at the first poll.
    let pages = [
        (
            ResponseTemplate::new(404).set_body_json(
                serde_json::json!({"status": false, "message": "Project not found."}),
            ),
            "not_found",
        ),
        (
            ResponseTemplate::new(404).set_body_raw("<html>Not Found</html>", "text/html"),
            "api",
        ),
    ];
    for (page, kind) in pages {
        let server = server().await;
        mount(&server, "GET", "/agent/project/p1", page).await;
        let err = client(&server)
            .wait_for_project("p1", fast())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), kind, "{err:?}");
        assert_eq!(err.status(), Some(404), "{err:?}");
        assert_eq!(count(&server, "GET").await, 1);
    }
}

#[tokio::test]
async fn a_custom_reading_decides_when_a_project_succeeded() {
    let server = server().await;
    status_then(&server, "building", 2, "shipped").await;
    let options = fast().classify_with(|p| match p.project_status.as_deref() {
        Some("shipped") => laracopilot::ProjectState::Succeeded,
        _ => laracopilot::ProjectState::Pending,
    });
    let project = client(&server)
        .wait_for_project("p1", options)
        .await
        .unwrap();
    assert_eq!(project.project_status.as_deref(), Some("shipped"));
}

#[tokio::test]
async fn a_broken_stream_with_recovery_polls_instead_of_posting_again() {
    let server = server().await;
    let partial = sse_body(&[
        r#"{"type":"project_created","project_id":"p1"}"#,
        r#"{"type":"file_created","path":"app/Models/Task.php"}"#,
    ]);
    mount(&server, "POST", "/agent/generate", sse(partial)).await;
    status_then(&server, "generating", 1, "ready").await;

    let outcome = generate_recovering(&server).await.unwrap();
    let project = outcome.recovered.as_ref().expect("recovered by polling");
    assert_eq!(project.project_status.as_deref(), Some("ready"));
    assert_eq!(outcome.project_id().unwrap(), "p1");
    assert_eq!(
        outcome.app_url.as_deref(),
        Some("https://p1.laracopilot.com")
    );
    assert_eq!(outcome.files, ["app/Models/Task.php"]);
    assert_eq!(outcome.stats().events, 2);
    assert_eq!(count(&server, "POST").await, 1);
}

#[tokio::test]
async fn a_stream_broken_before_the_project_id_cannot_be_recovered() {
    let server = server().await;
    mount(
        &server,
        "POST",
        "/agent/generate",
        sse(sse_body(&[
            r#"{"type":"container_progress","message":"x"}"#,
        ])),
    )
    .await;
    let err = generate_recovering(&server).await.unwrap_err();
    assert!(
        matches!(err, Error::Incomplete { events: 1, .. }),
        "{err:?}"
    );
    assert_eq!(err.project_id(), None);
}

#[tokio::test]
async fn credits_exhausted_is_never_recovered() {
    let server = server().await;
    let body = sse_body(&[
        r#"{"type":"project_created","project_id":"p1"}"#,
        r#"{"type":"credits_exhausted"}"#,
    ]);
    mount(&server, "POST", "/agent/generate", sse(body)).await;
    let err = generate_recovering(&server).await.unwrap_err();
    assert!(matches!(err, Error::CreditsExhausted { .. }), "{err:?}");
    assert_eq!(count(&server, "GET").await, 0);
}

#[tokio::test]
async fn a_successful_stream_reports_its_liveness_statistics() {
    let server = server().await;
    mount_documented_generate(&server).await;
    let outcome = finish_ok(&client(&server), "Build a task management app").await;
    assert!(outcome.recovered.is_none());
    let stats = outcome.stats();
    assert_eq!(stats.events, 4);
    assert_eq!(stats.bytes, fixture("documented_stream.txt").len() as u64);
    assert_eq!(stats.attempts, 1);
    assert!(stats.time_to_first_event.is_some());
}
