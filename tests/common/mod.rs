//! Helpers shared by the integration tests: a wiremock server per test, a client
//! pointed at it, and fixtures read from files.
#![allow(dead_code, reason = "each test file uses a different subset")]

use std::time::Duration;

use laracopilot::{Client, Event, Result, Token};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A distinctive token: tests assert that it never shows up in any output.
pub const TOKEN: &str = "lcp_live_S3CR3T-t0k3n-never-print-9f8e";

pub fn token() -> Token {
    Token::new(TOKEN).expect("valid test token")
}

/// A wiremock server whose unmatched requests answer 418 with a body naming the
/// request, so a test that sends something unexpected says what it sent.
pub async fn server() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(|req: &wiremock::Request| {
            ResponseTemplate::new(418).set_body_string(format!(
                "unexpected request: {} {}",
                req.method,
                req.url.path()
            ))
        })
        .with_priority(u8::MAX)
        .mount(&server)
        .await;
    server
}

/// A client for `server`, with the API's `/api/v1` prefix.
pub fn client(server: &MockServer) -> Client {
    builder(server).build().expect("client builds")
}

pub fn builder(server: &MockServer) -> laracopilot::ClientBuilder {
    Client::builder()
        .token(token())
        .base_url(format!("{}/api/v1", server.uri()))
        .idle_timeout(Some(Duration::from_secs(5)))
}

pub fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

/// An SSE answer with `body`.
pub fn sse(body: impl Into<Vec<u8>>) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(body.into(), "text/event-stream")
}

/// Mounts `response` for `METHOD /api/v1{route}`.
pub async fn mount(server: &MockServer, verb: &str, route: &str, response: ResponseTemplate) {
    Mock::given(method(verb))
        .and(path(format!("/api/v1{route}")))
        .respond_with(response)
        .mount(server)
        .await;
}

/// SSE body from JSON event objects, framed with blank lines.
pub fn sse_body(events: &[&str]) -> String {
    events.iter().map(|e| format!("data: {e}\n\n")).collect()
}

/// Collects every item of a generation, bounded in count.
pub async fn collect(mut generation: laracopilot::Generation) -> Vec<Result<Event>> {
    let mut items = Vec::new();
    while let Some(item) = tokio::time::timeout(Duration::from_secs(10), generation.next())
        .await
        .expect("the stream makes progress")
    {
        items.push(item);
        assert!(items.len() < 100_000, "runaway stream");
    }
    items
}
