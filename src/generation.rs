//! The stream of one generation, its terminal rules, and its outcome.

use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::{FusedStream, Stream};
use http_body::Body as _;
use indexmap::IndexSet;
use tokio::time::{Instant, Sleep};

use crate::error::TimeoutKind;
use crate::id::LocalId;
use crate::progress::Progress;
use crate::reader::EventReader;
use crate::trace::CallSpan;
use crate::{Error, Event, Project, ProjectId, Result};

/// Stream settings, copied from the client into each generation.
#[derive(Debug, Clone)]
pub(crate) struct StreamConfig {
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) deadline: Option<Duration>,
    pub(crate) max_event_size: usize,
}

/// The event stream of one generation (new project or follow-up).
///
/// A [`Stream`] of `Result<Event>` driven by its consumer: no task runs in the
/// background, and dropping it closes the connection. It ends (yields `None`) after
/// its terminal item:
///
/// - `stream_end`: yielded as [`Event::StreamEnd`], the generation succeeded;
/// - `credits_exhausted`: yielded as `Err(`[`Error::CreditsExhausted`]`)`, so `?`
///   never mistakes it for success;
/// - the body ended without either: `Err(`[`Error::Incomplete`]`)` carrying the
///   project id seen so far;
/// - a timeout, a broken connection or an oversized event: that error.
///
/// An `Err` item is always the last one: a payload the SDK cannot make sense of
/// (`data: ping`, `data: [DONE]`, a `project_created` without an id) is yielded as
/// [`Event::Malformed`], counted in [`Stats::malformed`], and the stream goes on. The
/// `match event? { .. }` loop and [`finish`](Generation::finish) are therefore always
/// right.
///
/// ```no_run
/// # async fn run() -> laracopilot::Result<()> {
/// use laracopilot::Event;
/// let client = laracopilot::Client::from_env()?;
/// let mut generation = client.generate("Build a task management app").await?;
/// while let Some(event) = generation.next().await {
///     match event? {
///         Event::ContainerProgress(p) => println!("{} {:?}", p.message, p.percentage),
///         Event::FileCreated(f) => println!("file {:?}", f.path),
///         Event::StreamEnd(end) => println!("ready at {:?}", end.app_url),
///         _ => {}
///     }
/// }
/// # Ok(()) }
/// ```
#[must_use = "dropping a Generation closes its stream, while the server keeps generating and spending credits"]
pub struct Generation {
    body: Option<reqwest::Body>,
    reader: EventReader,
    idle_timeout: Option<Duration>,
    idle: Option<Pin<Box<Sleep>>>,
    /// The timer of the stream's total deadline (from sending the request); the
    /// deadline itself is the timer's.
    deadline: Option<Pin<Box<Sleep>>>,
    clock: Clock,
    span: CallSpan,
    /// The project id was reported to the span and to the watcher (a follow-up's
    /// id is theirs from the start).
    id_reported: bool,
    /// Who keeps records of this stream.
    watcher: Option<Box<dyn Watcher>>,
    /// An item held back until the watcher's write for it is done (boxed: rare, and
    /// four times the size of the pointer in every open stream).
    held: Option<Box<(Write, Result<Event>)>>,
    journal_id: Option<LocalId>,
    progress: Progress,
}

/// What the client wants to hear from a stream to keep its records true (its
/// journal, its concurrency slot, its credits breaker), without the stream knowing
/// what they are. A write it hands back is finished before the item that caused it
/// is handed out: "the caller saw it" implies "it is recorded". Dropped with the
/// stream.
pub(crate) trait Watcher: Send {
    /// The project id became known.
    fn project_known(&mut self, id: &ProjectId) -> Option<Write>;
    /// The stream's terminal item is about to be handed out.
    fn ended(&mut self, item: &Result<Event>, project_id: Option<&ProjectId>) -> Option<Write>;
}

/// A record a [`Watcher`] writes, awaited by the stream.
pub(crate) type Write = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Liveness statistics of a stream, from [`Generation::stats`] and in [`Outcome`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Stats {
    /// Events delivered, malformed ones included.
    pub events: u64,
    /// Of the events, those the SDK could not make sense of
    /// ([`Event::Malformed`]).
    pub malformed: u64,
    /// Bytes of the body received.
    pub bytes: u64,
    /// Time from sending the request to the first event, once there was one.
    pub time_to_first_event: Option<Duration>,
    /// The longest time without any byte, between the answer's headers and the last
    /// byte received.
    pub longest_gap: Duration,
    /// Requests sent to start the stream (1 when the first was accepted), the resend
    /// after a token refresh included.
    pub attempts: u32,
    /// Time spent waiting for a free slot before sending, with
    /// [`ClientBuilder::max_concurrent_generations`](crate::ClientBuilder::max_concurrent_generations).
    pub slot_wait: Duration,
}

/// Timestamps behind [`Stats`].
#[derive(Debug)]
struct Clock {
    sent: Instant,
    last_byte: Instant,
    first_event: Option<Duration>,
    longest_gap: Duration,
    attempts: u32,
    slot_wait: Duration,
}

impl fmt::Debug for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Generation")
            .field("project_id", &self.reader.project_id())
            .field("stats", &self.stats())
            .field("finished", &self.reader.is_finished())
            .finish_non_exhaustive()
    }
}

/// Where a stream starts: what the call that opened it knows.
pub(crate) struct Start {
    /// When the first request of the call was sent.
    pub(crate) sent: Instant,
    /// Requests sent to open the stream, the first included.
    pub(crate) attempts: u32,
    /// Time spent waiting for a free generation slot before sending.
    pub(crate) slot_wait: Duration,
    /// Who keeps records of the stream.
    pub(crate) watcher: Option<Box<dyn Watcher>>,
    /// The stream's id in the client's journal, when it keeps one.
    pub(crate) journal_id: Option<LocalId>,
    /// The project id known before the stream starts (a follow-up's).
    pub(crate) project_id: Option<ProjectId>,
    /// The span of the call, which the stream's end closes.
    pub(crate) span: CallSpan,
    /// When the stream must have ended (the call's start plus the stream deadline).
    pub(crate) deadline: Option<Instant>,
    /// The start of the body, already read by the transport.
    pub(crate) prefix: bytes::Bytes,
}

impl Generation {
    /// The stream of `body`, read with `config`.
    pub(crate) fn new(body: reqwest::Body, config: &StreamConfig, start: Start) -> Self {
        let Start {
            sent,
            attempts,
            slot_wait,
            watcher,
            journal_id,
            project_id,
            span,
            deadline,
            prefix,
        } = start;
        let id_reported = project_id.is_some();
        let progress = Progress::with_start(sent.into_std()).with_project_id(project_id.clone());
        let mut reader = EventReader::new(config.max_event_size, project_id);
        if !prefix.is_empty() {
            reader.feed_bytes(prefix);
        }
        Generation {
            body: Some(body),
            reader,
            idle_timeout: config.idle_timeout,
            // `sleep` clamps a duration too long for the clock.
            idle: config
                .idle_timeout
                .map(|limit| Box::pin(tokio::time::sleep(limit))),
            deadline: deadline.map(|at| Box::pin(tokio::time::sleep_until(at))),
            clock: Clock {
                sent,
                last_byte: Instant::now(),
                first_event: None,
                longest_gap: Duration::ZERO,
                attempts,
                slot_wait,
            },
            span,
            id_reported,
            watcher,
            held: None,
            journal_id,
            progress,
        }
    }

    /// The project's id, once known: from the call for a follow-up, from
    /// `project_created` (or `stream_end`) for a new project.
    pub fn project_id(&self) -> Option<&ProjectId> {
        self.reader.project_id()
    }

    /// This generation's id in the client's [journal](crate::journal), when the client
    /// keeps one.
    pub fn journal_id(&self) -> Option<&LocalId> {
        self.journal_id.as_ref()
    }

    /// How far the generation is, updated with every item the stream yields: phase,
    /// files, tool steps, last message, elapsed time and stalls (see [`Progress`]).
    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    /// Liveness statistics so far.
    pub fn stats(&self) -> Stats {
        Stats {
            events: self.reader.events(),
            malformed: self.reader.malformed(),
            bytes: self.reader.bytes(),
            time_to_first_event: self.clock.first_event,
            longest_gap: self.clock.longest_gap,
            attempts: self.clock.attempts,
            slot_wait: self.clock.slot_wait,
        }
    }

    /// The next item of the stream; the same as `StreamExt::next`, without the import.
    pub async fn next(&mut self) -> Option<Result<Event>> {
        poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }

    /// Drives the stream to its end and sums it up.
    ///
    /// # Errors
    ///
    /// The error that ends the stream: [`Error::CreditsExhausted`],
    /// [`Error::Incomplete`], [`Error::Timeout`], [`Error::Transport`] or
    /// [`Error::EventTooLarge`], each with the project id when it was known. To poll the project when the stream breaks instead of failing, see
    /// [`Client::finish_or_recover`](crate::Client::finish_or_recover).
    pub async fn finish(self) -> Result<Outcome> {
        self.finish_with(|_| {}).await
    }

    /// Like [`finish`](Generation::finish), calling `on_event` with every event on the
    /// way: progress display and outcome in one call.
    ///
    /// ```no_run
    /// # async fn run() -> laracopilot::Result<()> {
    /// let client = laracopilot::Client::from_env()?;
    /// let outcome = client
    ///     .generate("Build a task management app")
    ///     .await?
    ///     .finish_with(|event| println!("{}", event.type_name()))
    ///     .await?;
    /// println!("{} files", outcome.files.len());
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`finish`](Generation::finish).
    pub async fn finish_with(self, on_event: impl FnMut(&Event)) -> Result<Outcome> {
        self.drive(on_event).await.map_err(|(error, _)| error)
    }

    /// Drives the stream to its end; on an error, also hands back what was gathered
    /// (for recovery, which turns the gathered part and a polled project into an
    /// [`Outcome`]).
    pub(crate) async fn drive(
        mut self,
        mut on_event: impl FnMut(&Event),
    ) -> std::result::Result<Outcome, (Error, Outcome)> {
        let mut summary = Outcome {
            project_id: None,
            app_url: None,
            files: Vec::new(),
            stats: Stats::default(),
            progress: Progress::new(),
            recovered: None,
        };
        // Each distinct path once, in order of first appearance.
        let mut files = IndexSet::new();
        let close = |generation: &Generation, mut summary: Outcome, files: IndexSet<String>| {
            summary.files = files.into_iter().collect();
            summary.project_id = generation.project_id().cloned();
            summary.stats = generation.stats();
            summary.progress = generation.progress.clone();
            summary
        };
        while let Some(item) = self.next().await {
            let event = match item {
                Ok(event) => event,
                Err(error) => return Err((error, close(&self, summary, files))),
            };
            on_event(&event);
            match event {
                Event::ProjectCreated(created) => {
                    summary.app_url = created.app_url.or(summary.app_url)
                }
                Event::FileCreated(file) => {
                    if let Some(path) = file.path {
                        files.insert(path);
                    }
                }
                Event::StreamEnd(end) => {
                    summary.app_url = end.app_url.or(summary.app_url);
                    return Ok(close(&self, summary, files));
                }
                _ => {}
            }
        }
        // The stream always ends with a terminal item; this is only reached if the
        // caller polled it to its end before calling `finish`.
        let error = Error::Incomplete {
            project_id: self.project_id().cloned(),
            events: self.reader.events(),
        };
        Err((error, close(&self, summary, files)))
    }

    /// The next item when it needs no I/O: an event from bytes already received, or
    /// the end of a closed stream (`Some(None)`). `None` means "poll the stream".
    /// Touches neither the body nor the timers, so it needs no runtime.
    pub(crate) fn next_buffered(&mut self) -> Option<Option<Result<Event>>> {
        if self.held.is_some() {
            return None;
        }
        if let Some(item) = self.reader.pop() {
            if let Some(write) = self.on_item(&item) {
                self.held = Some(Box::new((write, item)));
                return None;
            }
            return Some(Some(item));
        }
        self.body.is_none().then_some(None)
    }

    /// Ends the stream with `error` after the items already queued.
    fn fail(&mut self, error: Error) {
        self.reader.fail(error);
        self.close();
    }

    fn close(&mut self) {
        if self.body.take().is_some() {
            self.span.ended(
                self.reader.events(),
                if self.reader.is_finished() {
                    "terminal"
                } else {
                    "closed"
                },
            );
        }
        self.idle = None;
        self.deadline = None;
    }

    fn on_data(&mut self, data: bytes::Bytes) {
        let now = Instant::now();
        self.clock.longest_gap = self
            .clock
            .longest_gap
            .max(now.saturating_duration_since(self.clock.last_byte));
        self.clock.last_byte = now;
        if let Some(limit) = self.idle_timeout {
            match now.checked_add(limit) {
                Some(at) => {
                    if let Some(idle) = self.idle.as_mut() {
                        idle.as_mut().reset(at);
                    }
                }
                // Beyond what the clock can hold: never.
                None => self.idle = None,
            }
        }
        self.reader.feed_bytes(data);
    }

    /// Book-keeping after an item was decoded (events are decoded as they are
    /// popped, not when their bytes arrive); the watcher's write, if it has one.
    fn on_item(&mut self, item: &Result<Event>) -> Option<Write> {
        // An event arrived with the last chunk received; an error ends the stream now.
        let at = match item {
            Ok(_) => self.clock.last_byte.into_std(),
            Err(_) => std::time::Instant::now(),
        };
        self.progress.apply_item_at(item, at);
        if self.clock.first_event.is_none() && self.reader.events() > 0 {
            // The event arrived with the last chunk received.
            let after = self
                .clock
                .last_byte
                .saturating_duration_since(self.clock.sent);
            self.clock.first_event = Some(after);
            self.span.first_event(after);
        }
        let mut writes = Vec::new();
        if !self.id_reported {
            if let Some(id) = self.reader.project_id() {
                self.span.project(id);
                if let Some(watcher) = self.watcher.as_mut() {
                    writes.extend(watcher.project_known(id));
                }
                self.id_reported = true;
            }
        }
        let terminal = self.reader.is_finished() && !self.reader.has_buffered();
        if terminal {
            self.close();
        }
        let watcher = self.watcher.as_mut()?;
        if terminal {
            writes.extend(watcher.ended(item, self.reader.project_id()));
            // Its slot, if it held one, is free from here on.
            self.watcher = None;
        }
        match writes.len() {
            0 => None,
            1 => writes.pop(),
            _ => Some(Box::pin(async move {
                for write in writes {
                    write.await;
                }
            })),
        }
    }
}

impl FusedStream for Generation {
    /// `true` once the terminal item was yielded: the stream then yields `None`.
    fn is_terminated(&self) -> bool {
        self.body.is_none() && !self.reader.has_buffered() && self.held.is_none()
    }
}

impl Stream for Generation {
    type Item = Result<Event>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(held) = this.held.as_mut() {
                if held.0.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                if let Some(held) = this.held.take() {
                    return Poll::Ready(Some(held.1));
                }
            }
            if let Some(item) = this.next_buffered() {
                return Poll::Ready(item);
            }
            if this.held.is_some() {
                continue;
            }
            let Some(body) = this.body.as_mut() else {
                return Poll::Ready(None);
            };
            // Checked on every turn: a body that never pauses must not outrun it.
            if this
                .deadline
                .as_ref()
                .is_some_and(|timer| Instant::now() >= timer.deadline())
            {
                this.fail(Error::timeout(TimeoutKind::Deadline));
                continue;
            }
            match Pin::new(body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        this.on_data(data);
                    }
                }
                // The body of an accepted generate call broke: work had started.
                Poll::Ready(Some(Err(e))) => {
                    this.fail(Error::from_reqwest(e, TimeoutKind::Idle).started_work(true))
                }
                Poll::Ready(None) => {
                    this.reader.end();
                    this.close();
                }
                Poll::Pending => {
                    let fired = |timer: &mut Option<Pin<Box<Sleep>>>, cx: &mut Context<'_>| {
                        timer
                            .as_mut()
                            .is_some_and(|s| s.as_mut().poll(cx).is_ready())
                    };
                    let kind = if fired(&mut this.idle, cx) {
                        TimeoutKind::Idle
                    } else if fired(&mut this.deadline, cx) {
                        TimeoutKind::Deadline
                    } else {
                        return Poll::Pending;
                    };
                    this.fail(Error::timeout(kind));
                }
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let queued = self.reader.queued() + usize::from(self.held.is_some());
        (queued, self.body.is_none().then_some(queued))
    }
}

/// The summary of a successful generation, from [`Generation::finish`].
///
/// What grows with the stream is `files`: each distinct path once, however often it
/// was created or modified; everything else has a fixed size.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Outcome {
    /// The project's id, when the stream or the call named it.
    pub project_id: Option<ProjectId>,
    /// Where the application is served, from `stream_end` (or `project_created`, or
    /// the polled project after a recovery).
    pub app_url: Option<String>,
    /// Paths of the files created or modified, in order of first appearance, where
    /// the `file_created` events carried one.
    pub files: Vec<String>,
    /// Liveness statistics of the stream.
    pub stats: Stats,
    /// How far the stream got: [`Phase::Finished`](crate::Phase::Finished) after
    /// `stream_end`; after a recovery, [`Phase::Failed`](crate::Phase::Failed) with
    /// the kind of the error that broke the stream, `recovered` telling the rest.
    pub progress: Progress,
    /// `Some` when the stream broke and the outcome comes from polling the project
    /// (see [`Client::finish_or_recover`](crate::Client::finish_or_recover)); `None`
    /// when the stream ended with `stream_end`.
    pub recovered: Option<Project>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A generation over `body`, as the client would build it, without a client.
    fn generation(body: &'static str, idle: Option<Duration>) -> Generation {
        let config = StreamConfig {
            idle_timeout: idle,
            deadline: None,
            max_event_size: 1024,
        };
        let start = Start {
            sent: Instant::now(),
            attempts: 1,
            slot_wait: Duration::ZERO,
            watcher: None,
            journal_id: None,
            project_id: None,
            span: CallSpan::new("POST", "/agent/generate"),
            deadline: None,
            prefix: bytes::Bytes::new(),
        };
        Generation::new(reqwest::Body::from(body), &config, start)
    }

    const FIVE: &str = "data: {\"type\":\"project_created\",\"project_id\":\"p1\"}\n\n\
        data: {\"type\":\"tool_progress\"}\n\n\
        data: {\"type\":\"tool_progress\"}\n\n\
        data: {\"type\":\"tool_progress\"}\n\n\
        data: {\"type\":\"stream_end\"}\n\n";

    #[tokio::test]
    async fn events_already_received_come_out_without_polling_the_body() {
        let mut generation = generation(FIVE, Some(Duration::from_secs(5)));
        // Nothing received yet: the body must be polled.
        assert!(generation.next_buffered().is_none());
        let first = generation.next().await;
        assert!(
            matches!(first, Some(Ok(Event::ProjectCreated(_)))),
            "{first:?}"
        );
        // The rest of the chunk is decoded without touching the body or the timers.
        for want in [
            "tool_progress",
            "tool_progress",
            "tool_progress",
            "stream_end",
        ] {
            let Some(Some(Ok(event))) = generation.next_buffered() else {
                panic!("not handed out from the buffer");
            };
            assert_eq!(event.type_name(), want);
        }
        // After the terminal event the stream is over, still without I/O.
        assert!(matches!(generation.next_buffered(), Some(None)));
        assert!(generation.is_terminated());
        assert_eq!(generation.stats().events, 5);
    }

    #[tokio::test]
    async fn a_generation_needs_no_client_and_ends_incomplete_without_a_terminal_event() {
        let generation = generation("data: {\"type\":\"tool_progress\"}\n\n", None);
        let (error, outcome) = generation.drive(|_| {}).await.unwrap_err();
        assert!(
            matches!(error, Error::Incomplete { events: 1, .. }),
            "{error:?}"
        );
        assert_eq!(outcome.stats.events, 1);
    }

    #[tokio::test]
    async fn files_are_kept_once_each_in_order_of_first_appearance() {
        let generation = generation(
            "data: {\"type\":\"file_created\",\"path\":\"b\"}\n\n\
             data: {\"type\":\"file_created\",\"path\":\"a\"}\n\n\
             data: {\"type\":\"file_created\",\"path\":\"b\"}\n\n\
             data: {\"type\":\"stream_end\"}\n\n",
            None,
        );
        let outcome = generation.finish().await.unwrap();
        assert_eq!(outcome.files, ["b", "a"]);
    }
}
