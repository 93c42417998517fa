//! Tracing (always on): a span per call with method, path, status, attempts,
//! project id, the caller's labels, time to first event and event count, and never
//! the token.

use crate::common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use laracopilot::RetryPolicy;
use wiremock::ResponseTemplate;

/// Everything the subscriber writes, for assertions.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn a_generation_span_carries_status_attempts_project_first_event_and_count() {
    let capture = Capture::default();
    let _guard = capture.install();
    let server = server().await;
    mount_documented_generate(&server).await;
    client(&server)
        .generate("Build a task management app")
        .await
        .unwrap()
        .finish()
        .await
        .unwrap();

    let text = capture.text();
    let line = text
        .lines()
        .find(|l| l.contains("laracopilot stream ended"))
        .expect(&text);
    for field in [
        "method=\"POST\"",
        "path=\"/api/v1/agent/generate\"",
        "status=200",
        "attempts=1",
        "project_id=\"abc123\"",
        "time_to_first_event_ms=",
        "events=4",
    ] {
        assert!(line.contains(field), "missing {field} in {line}");
    }
    assert!(!text.contains(TOKEN), "{text}");
}

#[tokio::test]
async fn retries_are_visible_and_the_status_call_has_its_span() {
    let capture = Capture::default();
    let _guard = capture.install();
    let server = server().await;
    let project = ResponseTemplate::new(200)
        .set_body_json(serde_json::json!({"status": true, "project_id": "abc123"}));
    let unavailable = ResponseTemplate::new(503);
    mount_then(
        &server,
        "GET",
        "/agent/project/abc123",
        unavailable,
        1,
        project,
    )
    .await;
    let client = builder(&server)
        .retry_policy(RetryPolicy::default().base_delay(Duration::from_millis(1)))
        .build()
        .unwrap();
    client.project("abc123").await.unwrap();

    let text = capture.text();
    let retry = text
        .lines()
        .find(|l| l.contains("retrying laracopilot request"))
        .expect(&text);
    for field in [
        "method=GET",
        "path=\"/api/v1/agent/project/abc123\"",
        "attempt=1",
        "status=503",
        "project_id=\"abc123\"",
    ] {
        assert!(retry.contains(field), "missing {field} in {retry}");
    }
    assert!(!text.contains(TOKEN), "{text}");
    assert!(
        !text.to_ascii_lowercase().contains("authorization"),
        "{text}"
    );
}

#[tokio::test]
async fn a_calls_labels_are_fields_of_its_span() {
    let capture = Capture::default();
    let _guard = capture.install();
    let server = server().await;
    mount_documented_generate(&server).await;
    client(&server)
        .generate("Build a task management app")
        .label("tenant", "acme")
        .label("job", "nightly-42")
        .await
        .unwrap()
        .finish()
        .await
        .unwrap();
    let text = capture.text();
    let line = text
        .lines()
        .find(|l| l.contains("laracopilot stream ended"))
        .expect(&text);
    assert!(
        line.contains("labels=\"tenant=acme,job=nightly-42\""),
        "{line}"
    );
    assert!(!text.contains(TOKEN), "{text}");
}
