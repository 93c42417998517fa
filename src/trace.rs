//! Spans and events for calls and streams, through `tracing` (a span without a
//! subscriber costs a few branches; `tracing` is in every build already, through the
//! HTTP/2 stack).
//!
//! Fields are the method, the path, the status, the attempts, the project id, the
//! caller's labels, the time to the first event and the event count. Never a header
//! value, never the token.

use std::time::Duration;

use crate::ProjectId;

/// The span of one API call (and, for a generation, of its whole stream).
#[derive(Debug, Clone)]
pub(crate) struct CallSpan {
    span: tracing::Span,
}

impl CallSpan {
    pub(crate) fn new(method: &str, path: &str) -> Self {
        let span = tracing::info_span!(
            "laracopilot",
            method,
            path,
            status = tracing::field::Empty,
            attempts = tracing::field::Empty,
            project_id = tracing::field::Empty,
            labels = tracing::field::Empty,
            time_to_first_event_ms = tracing::field::Empty,
            events = tracing::field::Empty,
        );
        CallSpan { span }
    }

    pub(crate) async fn run<F: std::future::Future>(&self, future: F) -> F::Output {
        use tracing::Instrument;
        future.instrument(self.span.clone()).await
    }

    pub(crate) fn answered(&self, status: u16, attempts: u32) {
        self.span.record("status", status);
        self.span.record("attempts", attempts);
    }

    pub(crate) fn project(&self, id: &ProjectId) {
        self.span.record("project_id", id.as_str());
    }

    /// The caller's labels of the call, as `key=value` pairs separated by commas.
    pub(crate) fn labels(&self, labels: &[(String, String)]) {
        if labels.is_empty() {
            return;
        }
        let text: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        self.span.record("labels", text.join(",").as_str());
    }

    pub(crate) fn first_event(&self, after: Duration) {
        self.span.record(
            "time_to_first_event_ms",
            u64::try_from(after.as_millis()).unwrap_or(u64::MAX),
        );
    }

    pub(crate) fn ended(&self, events: u64, how: &str) {
        self.span.record("events", events);
        tracing::info!(parent: &self.span, events, how, "laracopilot stream ended");
    }
}
