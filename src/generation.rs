//! The stream of one generation, its terminal rules, and its outcome.

use std::collections::HashSet;
use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use http_body::Body as _;
use tokio::time::{Instant, Sleep};

use crate::error::TimeoutKind;
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
#[must_use = "a generation does nothing unless polled; dropping it closes the connection while the server may keep working and spending credits"]
pub struct Generation {
    body: Option<reqwest::Body>,
    reader: EventReader,
    idle_timeout: Option<Duration>,
    idle: Option<Pin<Box<Sleep>>>,
    deadline: Option<Pin<Box<Sleep>>>,
    clock: Clock,
    span: CallSpan,
    /// The project id was reported to the span.
    id_reported: bool,
    progress: Progress,
}

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
    /// Requests sent to start the stream (1 when the first was accepted).
    pub attempts: u32,
}

/// Timestamps behind [`Stats`].
#[derive(Debug)]
struct Clock {
    sent: Instant,
    last_byte: Instant,
    first_event: Option<Duration>,
    longest_gap: Duration,
    attempts: u32,
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
    /// The project id known before the stream starts (a follow-up's).
    pub(crate) project_id: Option<ProjectId>,
    /// The span of the call, which the stream's end closes.
    pub(crate) span: CallSpan,
}

impl Generation {
    /// The stream of `body`, read with `config`.
    pub(crate) fn new(body: reqwest::Body, config: &StreamConfig, start: Start) -> Self {
        let Start {
            sent,
            attempts,
            project_id,
            span,
        } = start;
        let sleep = |d: Duration| Box::pin(tokio::time::sleep(d));
        let id_reported = project_id.is_some();
        let progress = Progress::with_start(sent.into_std()).with_project_id(project_id.clone());
        Generation {
            body: Some(body),
            reader: EventReader::new(config.max_event_size, project_id),
            idle_timeout: config.idle_timeout,
            idle: config.idle_timeout.map(sleep),
            deadline: config.deadline.map(sleep),
            clock: Clock {
                sent,
                last_byte: Instant::now(),
                first_event: None,
                longest_gap: Duration::ZERO,
                attempts,
            },
            span,
            id_reported,
            progress,
        }
    }

    /// The project's id, once known: from the call for a follow-up, from
    /// `project_created` (or `stream_end`) for a new project.
    pub fn project_id(&self) -> Option<&ProjectId> {
        self.reader.project_id()
    }

    /// How many events were delivered so far.
    pub fn events(&self) -> u64 {
        self.reader.events()
    }

    /// How many bytes of the body were received so far.
    pub fn bytes(&self) -> u64 {
        self.reader.bytes()
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
            events: 0,
            stats: Stats::default(),
            progress: Progress::new(),
            recovered: None,
        };
        let mut seen = HashSet::new();
        let close = |generation: &Generation, mut summary: Outcome| {
            summary.project_id = generation.project_id().cloned();
            summary.events = generation.events();
            summary.stats = generation.stats();
            summary.progress = generation.progress.clone();
            summary
        };
        while let Some(item) = self.next().await {
            let event = match item {
                Ok(event) => event,
                Err(error) => return Err((error, close(&self, summary))),
            };
            on_event(&event);
            match event {
                Event::ProjectCreated(created) => {
                    summary.app_url = created.app_url.or(summary.app_url)
                }
                Event::FileCreated(file) => {
                    if let Some(path) = file.path {
                        if seen.insert(path.clone()) {
                            summary.files.push(path);
                        }
                    }
                }
                Event::StreamEnd(end) => {
                    summary.app_url = end.app_url.or(summary.app_url);
                    return Ok(close(&self, summary));
                }
                _ => {}
            }
        }
        // The stream always ends with a terminal item; this is only reached if the
        // caller polled it to its end before calling `finish`.
        let error = Error::Incomplete {
            project_id: self.project_id().cloned(),
            events: self.events(),
        };
        Err((error, close(&self, summary)))
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
        self.clock.longest_gap = self.clock.longest_gap.max(now - self.clock.last_byte);
        self.clock.last_byte = now;
        if let (Some(idle), Some(limit)) = (self.idle.as_mut(), self.idle_timeout) {
            idle.as_mut().reset(now + limit);
        }
        self.reader.feed_bytes(data);
    }

    /// Book-keeping after an item was decoded: events are decoded as they are
    /// popped, not when their bytes arrive.
    fn on_item(&mut self, item: &Result<Event>) {
        // An event arrived with the last chunk received; an error ends the stream now.
        let at = match item {
            Ok(_) => self.clock.last_byte.into_std(),
            Err(_) => std::time::Instant::now(),
        };
        self.progress.apply_item_at(item, at);
        if self.clock.first_event.is_none() && self.reader.events() > 0 {
            // The event arrived with the last chunk received.
            let after = self.clock.last_byte - self.clock.sent;
            self.clock.first_event = Some(after);
            self.span.first_event(after);
        }
        if !self.id_reported {
            if let Some(id) = self.reader.project_id() {
                self.span.project(id);
                self.id_reported = true;
            }
        }
        if self.reader.is_finished() {
            self.close();
        }
    }
}

impl Stream for Generation {
    type Item = Result<Event>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(item) = this.reader.pop() {
                this.on_item(&item);
                return Poll::Ready(Some(item));
            }
            let Some(body) = this.body.as_mut() else {
                return Poll::Ready(None);
            };
            match Pin::new(body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        this.on_data(data);
                    }
                }
                Poll::Ready(Some(Err(e))) => this.fail(Error::from_reqwest(e, TimeoutKind::Idle)),
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
                    this.fail(Error::Timeout {
                        kind,
                        project_id: None,
                    });
                }
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let queued = self.reader.queued();
        (queued, self.body.is_none().then_some(queued))
    }
}

/// The summary of a successful generation, from [`Generation::finish`].
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
    /// How many events the stream delivered.
    pub events: u64,
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
