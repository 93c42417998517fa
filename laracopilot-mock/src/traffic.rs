//! What really happened on the wire, counted by the server: every generate and
//! follow-up POST it read (when, and with which prompt), and every event stream it
//! opened and closed (when, for which prompt and project), with the number of
//! streams open at once. Suites that check spend guards from the outside (a
//! concurrency cap across processes, a breaker, a budget, a call made at most once)
//! read these instead of what the client says it did.
//!
//! Every time is an [`Instant`] taken under one lock, so the log's order is the order
//! things happened in, and instants of one process compare (a test's own kill
//! instants, say). Both logs are capped at [`MAX_RECORDED_STREAMS`] records each (the
//! oldest dropped first); the counts of open streams never are.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use laracopilot::ProjectId;

/// At most this many records are kept by
/// [`MockServer::posts`](super::MockServer::posts) and, apart,
/// by [`MockServer::streams`](super::MockServer::streams); the oldest are dropped
/// first.
pub const MAX_RECORDED_STREAMS: usize = 100_000;

/// One `POST /agent/generate` or `POST /agent/generate/{projectId}` as the server
/// read it, whatever it answered (a stream, a 4xx, a canned reply); from
/// [`MockServer::posts`](super::MockServer::posts).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PostRecord {
    /// When its body was read whole (before anything was answered).
    pub at: Instant,
    /// The path without the query, e.g. `"/api/v1/agent/generate"`.
    pub path: String,
    /// The `prompt` string of its JSON body, as sent (not trimmed); `None` when the
    /// body has none.
    pub prompt: Option<String>,
}

/// One event stream the server opened, from
/// [`MockServer::streams`](super::MockServer::streams).
///
/// A stream is open from the moment the server accepted its POST (the project
/// exists or the follow-up started; before any
/// [`DelayHeaders`](super::Fault::DelayHeaders)) until its terminal event was
/// handed to the connection whole (the generation is over then, whether or not its
/// client reads on to the body's end), its body ended, or it was dropped: what
/// LaraCopilot would count as a generation running.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamRecord {
    /// The prompt as accepted (trimmed, as validated).
    pub prompt: String,
    /// The project it generates (a follow-up's is the project it continues).
    pub project_id: ProjectId,
    /// Whether it is a follow-up (`POST /agent/generate/{projectId}`).
    pub follow_up: bool,
    /// When the server accepted the POST.
    pub opened_at: Instant,
    /// When it closed: its terminal event handed to the connection, its body's
    /// end, or its drop; `None` while it is open.
    pub closed_at: Option<Instant>,
    /// Whether the server wrote it to its end (its terminal event, or the end a
    /// fault chose) before it closed; `false` when the connection went first (the
    /// client left, a [`DropMidEvent`](super::Fault::DropMidEvent) tore it down, or
    /// the server stopped).
    pub complete: bool,
}

/// The server's log of POSTs and streams, and its counts of open streams.
#[derive(Default)]
pub(crate) struct Traffic {
    log: Mutex<Log>,
}

#[derive(Default)]
struct Log {
    posts: VecDeque<PostRecord>,
    streams: VecDeque<StreamRecord>,
    /// The number of the oldest stream kept (streams are numbered from 0 in the
    /// order they opened).
    first: u64,
    open: usize,
    max_open: usize,
}

impl Traffic {
    fn log(&self) -> MutexGuard<'_, Log> {
        // Every update is a few assignments: the log stays consistent even if a
        // holder panicked.
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a POST to a generate endpoint whose body is `body`.
    pub(crate) fn post(&self, path: &str, body: &[u8]) {
        let prompt = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|value| value.get("prompt")?.as_str().map(str::to_owned));
        let mut log = self.log();
        let record = PostRecord {
            at: Instant::now(),
            path: path.to_owned(),
            prompt,
        };
        log.posts.push_back(record);
        if log.posts.len() > MAX_RECORDED_STREAMS {
            log.posts.pop_front();
        }
    }

    /// Records that a stream opened; the ticket records its close.
    pub(crate) fn opened(
        self: &Arc<Self>,
        prompt: &str,
        project_id: &str,
        follow_up: bool,
    ) -> StreamTicket {
        let mut log = self.log();
        log.open += 1;
        log.max_open = log.max_open.max(log.open);
        log.streams.push_back(StreamRecord {
            prompt: prompt.to_owned(),
            project_id: ProjectId::from(project_id),
            follow_up,
            opened_at: Instant::now(),
            closed_at: None,
            complete: false,
        });
        let number = log.first + (log.streams.len() as u64 - 1);
        if log.streams.len() > MAX_RECORDED_STREAMS {
            log.streams.pop_front();
            log.first += 1;
        }
        StreamTicket {
            traffic: Arc::clone(self),
            number,
            complete: false,
        }
    }

    pub(crate) fn posts(&self) -> Vec<PostRecord> {
        self.log().posts.iter().cloned().collect()
    }

    pub(crate) fn posts_with_prompt(&self, prompt: &str) -> usize {
        self.log()
            .posts
            .iter()
            .filter(|post| post.prompt.as_deref() == Some(prompt))
            .count()
    }

    pub(crate) fn streams(&self) -> Vec<StreamRecord> {
        self.log().streams.iter().cloned().collect()
    }

    pub(crate) fn open_streams(&self) -> usize {
        self.log().open
    }

    pub(crate) fn max_open_streams(&self) -> usize {
        self.log().max_open
    }
}

/// An open stream's place in the log: dropped, it records the close (once).
pub(crate) struct StreamTicket {
    traffic: Arc<Traffic>,
    number: u64,
    complete: bool,
}

impl StreamTicket {
    /// The stream was written to its end: the close about to be recorded is a
    /// complete one.
    pub(crate) fn complete(&mut self) {
        self.complete = true;
    }
}

impl Drop for StreamTicket {
    fn drop(&mut self) {
        let mut log = self.traffic.log();
        log.open = log.open.saturating_sub(1);
        let Some(index) = self
            .number
            .checked_sub(log.first)
            .and_then(|i| usize::try_from(i).ok())
        else {
            // Dropped from the log already: only the count changes.
            return;
        };
        let complete = self.complete;
        if let Some(record) = log.streams.get_mut(index) {
            record.closed_at = Some(Instant::now());
            record.complete = complete;
        }
    }
}
