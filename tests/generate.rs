//! Generation streams end to end over HTTP: events, terminal rules, the request sent.

mod common;

use common::*;
use laracopilot::{Error, Event};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::Mock;

#[tokio::test]
async fn the_documented_example_stream_yields_its_four_events_with_exact_fields() {
    let server = server().await;
    mount(
        &server,
        "POST",
        "/agent/generate",
        sse(fixture("documented_stream.txt")),
    )
    .await;

    let items = collect(
        client(&server)
            .generate("Build a task management app")
            .await
            .unwrap(),
    )
    .await;
    let events: Vec<Event> = items.into_iter().map(|i| i.unwrap()).collect();
    assert_eq!(events.len(), 4);
    let Event::ProjectCreated(created) = &events[0] else {
        panic!("{:?}", events[0])
    };
    assert_eq!(created.project_id, "abc123");
    assert_eq!(
        created.app_url.as_deref(),
        Some("https://abc123.laracopilot.com")
    );
    let Event::ContainerProgress(progress) = &events[1] else {
        panic!("{:?}", events[1])
    };
    assert_eq!(progress.message, "Installing Laravel...");
    assert_eq!(progress.percentage, Some(40.0));
    let Event::ContainerReady(ready) = &events[2] else {
        panic!("{:?}", events[2])
    };
    assert_eq!(ready.message, "Container ready. Starting AI generation...");
    let Event::StreamEnd(end) = &events[3] else {
        panic!("{:?}", events[3])
    };
    assert_eq!(end.project_id.as_ref().map(|p| p.as_str()), Some("abc123"));
    assert_eq!(
        end.app_url.as_deref(),
        Some("https://abc123.laracopilot.com")
    );
}

#[tokio::test]
async fn the_request_has_the_documented_method_path_headers_and_body() {
    let server = server().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/agent/generate"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(header("accept", "text/event-stream"))
        .and(header("content-type", "application/json"))
        .and(header(
            "user-agent",
            concat!("laracopilot-rust/", env!("CARGO_PKG_VERSION")),
        ))
        .and(body_json(
            serde_json::json!({"prompt": "Build a task management app"}),
        ))
        .respond_with(sse(fixture("documented_stream.txt")))
        .expect(1)
        .mount(&server)
        .await;
    let outcome = client(&server)
        .generate("Build a task management app")
        .await
        .unwrap()
        .finish()
        .await
        .unwrap();
    assert_eq!(outcome.project_id.unwrap(), "abc123");
    assert_eq!(outcome.events, 4);
}
