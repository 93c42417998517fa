//! Spans for calls and streams (feature `tracing`); no-ops without the feature.
//!
//! Fields are the method, the path, the status, the attempts, the project id, the time
//! to the first event and the event count. Never a header value, never the token.

use std::time::Duration;

use crate::ProjectId;

/// The span of one API call (and, for a generation, of its whole stream).
#[derive(Debug, Clone)]
pub(crate) struct CallSpan {
    #[cfg(feature = "tracing")]
    span: tracing::Span,
}

#[cfg(feature = "tracing")]
impl CallSpan {
    pub(crate) fn new(method: &str, path: &str) -> Self {
        let span = tracing::info_span!(
            "laracopilot",
            method,
            path,
            status = tracing::field::Empty,
            attempts = tracing::field::Empty,
            project_id = tracing::field::Empty,
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

    pub(crate) fn first_event(&self, after: Duration) {
        self.span
            .record("time_to_first_event_ms", after.as_millis() as u64);
    }

    pub(crate) fn ended(&self, events: u64, how: &str) {
        self.span.record("events", events);
        tracing::info!(parent: &self.span, events, how, "laracopilot stream ended");
    }
}

#[cfg(not(feature = "tracing"))]
impl CallSpan {
    pub(crate) fn new(_method: &str, _path: &str) -> Self {
        CallSpan {}
    }

    pub(crate) async fn run<F: std::future::Future>(&self, future: F) -> F::Output {
        future.await
    }

    pub(crate) fn answered(&self, _status: u16, _attempts: u32) {}

    pub(crate) fn project(&self, _id: &ProjectId) {}

    pub(crate) fn first_event(&self, _after: Duration) {}

    pub(crate) fn ended(&self, _events: u64, _how: &str) {}
}
