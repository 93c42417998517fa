//! The stream of one generation, its terminal rules, and its outcome.

use std::any::Any;
use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::{FusedStream, Stream};
use http_body::Body as _;
use indexmap::IndexSet;
use serde::ser::{Serialize, SerializeStruct, Serializer};
use tokio::time::{Instant, Sleep};

use crate::error::TimeoutKind;
use crate::progress::{Progress, Stats};
use crate::reader::EventReader;
use crate::trace::CallSpan;
use crate::{Error, Event, LocalId, Project, ProjectId, Result, Token};

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
/// Its one record is its [`Progress`] ([`Generation::progress`]): the phase, the
/// counts, the project and journal ids, the clock and the [`Stats`].
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
    span: CallSpan,
    /// The project id was reported to the span and to the watcher (a follow-up's
    /// id is theirs from the start).
    id_reported: bool,
    /// The timers were polled while the body was pending: they hold the waker of
    /// the task that polled them (see [`Generation::disarm_timers`]).
    timers_armed: bool,
    /// Who keeps records of this stream.
    watcher: Option<Box<dyn Watcher>>,
    /// A write of the watcher, and the item held back until it is done (boxed:
    /// rare, and larger than the pointer in every open stream).
    held: Option<Box<(Write, Option<Result<Event>>)>>,
    /// The stream's one record.
    progress: Progress,
    /// The recorded outcome of an earlier call with the same idempotency key.
    replay: bool,
    /// The span was told the stream ended (once its last item was handed out).
    span_ended: bool,
    /// The token of the call, to mask in what an error keeps of the server's text.
    token: Option<Token>,
}

/// What the client wants to hear from a stream to keep its records true (its
/// journal, its concurrency slot, its credits breaker), without the stream knowing
/// what they are. A write it hands back is finished before the next item is handed
/// out: "the caller saw it" implies "it is recorded" (or counted as failed in
/// [`Stats::journal_failures`]). Dropped with the stream.
pub(crate) trait Watcher: Send {
    /// The server accepted the call: before any item.
    fn accepted(&mut self) -> Option<Write>;
    /// The project id became known.
    fn project_known(&mut self, id: &ProjectId) -> Option<Write>;
    /// The stream's terminal item is about to be handed out.
    fn ended(&mut self, item: &Result<Event>) -> Option<Write>;
    /// The stream's entry in the client's journal.
    fn journal_id(&self) -> Option<&LocalId>;
    /// For the client, which knows what it is.
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send>;
}

/// A record a [`Watcher`] writes, awaited by the stream: `false` when it failed.
pub(crate) type Write = Pin<Box<dyn Future<Output = bool> + Send>>;

impl fmt::Debug for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Generation")
            .field("project_id", &self.progress.project_id())
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
    /// The project id known before the stream starts (a follow-up's).
    pub(crate) project_id: Option<ProjectId>,
    /// The span of the call, which the stream's end closes.
    pub(crate) span: CallSpan,
    /// When the stream must have ended (the call's start plus the stream deadline).
    pub(crate) deadline: Option<Instant>,
    /// The start of the body, already read by the transport.
    pub(crate) prefix: bytes::Bytes,
    /// The token the call was sent with.
    pub(crate) token: Token,
}

/// A stream that ended with an error, as [`Generation::drive`] hands it back: what
/// recovery needs.
pub(crate) struct Broken {
    pub(crate) error: Error,
    pub(crate) outcome: Outcome,
    pub(crate) watcher: Option<Box<dyn Watcher>>,
}

/// What the summary of a stream gathers from its events: the app URL, and each
/// distinct file path once, in order of first appearance.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    app_url: Option<String>,
    files: IndexSet<String>,
}

impl Tally {
    /// Takes one event; `true` when it ends the stream (`stream_end`).
    pub(crate) fn event(&mut self, event: Event) -> bool {
        match event {
            Event::ProjectCreated(created) => {
                self.app_url = created.app_url.or(self.app_url.take())
            }
            Event::FileCreated(file) => {
                if let Some(path) = file.path {
                    self.files.insert(path);
                }
            }
            Event::StreamEnd(end) => {
                self.app_url = end.app_url.or(self.app_url.take());
                return true;
            }
            _ => {}
        }
        false
    }

    /// The outcome of the stream whose record is `progress`.
    pub(crate) fn outcome(self, progress: Progress) -> Outcome {
        Outcome {
            app_url: self.app_url,
            files: self.files.into_iter().collect(),
            progress,
            recovered: None,
        }
    }
}

impl Generation {
    /// The stream of `body`, read with `config`.
    pub(crate) fn new(body: reqwest::Body, config: &StreamConfig, start: Start) -> Self {
        let Start {
            sent,
            attempts,
            slot_wait,
            mut watcher,
            project_id,
            span,
            deadline,
            prefix,
            token,
        } = start;
        let journal_id = watcher.as_ref().and_then(|w| w.journal_id().cloned());
        let id_reported = project_id.is_some();
        let mut progress = Progress::of_call(sent, project_id, journal_id, attempts, slot_wait);
        let mut reader = EventReader::new(config.max_event_size);
        if !prefix.is_empty() {
            progress.received(prefix.len(), Instant::now());
            reader.feed_bytes(prefix);
        }
        let held = watcher
            .as_mut()
            .and_then(|w| w.accepted())
            .map(|write| Box::new((write, None)));
        Generation {
            body: Some(body),
            reader,
            idle_timeout: config.idle_timeout,
            // `sleep` clamps a duration too long for the clock.
            idle: config
                .idle_timeout
                .map(|limit| Box::pin(tokio::time::sleep(limit))),
            deadline: deadline.map(|at| Box::pin(tokio::time::sleep_until(at))),
            span,
            id_reported,
            timers_armed: false,
            watcher,
            held,
            progress,
            replay: false,
            span_ended: false,
            token: Some(token),
        }
    }

    /// Finishes the watcher's first write, held back since the stream was built:
    /// that the server accepted the call. Awaited before the generation is handed
    /// out, so that its acceptance is recorded whether or not it is ever polled (a
    /// caller that drops it at once, a process killed before its first event).
    pub(crate) async fn record_accepted(&mut self) {
        let Some(held) = self.held.take() else {
            return;
        };
        let (write, item) = *held;
        if !write.await {
            self.progress.journal_failed();
        }
        // Nothing is held back with the first write; were it so, it goes out next.
        if let Some(item) = item {
            let done: Write = Box::pin(std::future::ready(true));
            self.held = Some(Box::new((done, Some(item))));
        }
    }

    /// The recorded outcome of an earlier call (the same idempotency key): a stream
    /// of one terminal item, `stream_end` with what the journal or the polled
    /// project says, that sends nothing.
    pub(crate) fn recorded(
        project_id: &ProjectId,
        app_url: Option<&str>,
        journal_id: Option<LocalId>,
    ) -> Self {
        let end = serde_json::json!({
            "type": "stream_end",
            "project_id": project_id.as_str(),
            "app_url": app_url,
        });
        let mut reader = EventReader::new(usize::MAX);
        reader.feed_bytes(bytes::Bytes::from(format!("data: {end}\n\n")));
        reader.end();
        let mut progress = Progress::of_call(
            Instant::now(),
            Some(project_id.clone()),
            journal_id,
            0,
            Duration::ZERO,
        );
        progress.received(0, Instant::now());
        Generation {
            body: None,
            reader,
            idle_timeout: None,
            idle: None,
            deadline: None,
            span: CallSpan::new("POST", "(recorded)"),
            id_reported: true,
            timers_armed: false,
            watcher: None,
            held: None,
            progress,
            replay: true,
            // Nothing was sent: no stream to report.
            span_ended: true,
            token: None,
        }
    }

    /// The project's id, once known: from the call for a follow-up, from
    /// `project_created` (or `stream_end`) for a new project.
    pub fn project_id(&self) -> Option<&ProjectId> {
        self.progress.project_id()
    }

    /// The stream's record: how far the generation is (phase, files, tool steps,
    /// last message, elapsed time, stalls), its project and journal ids, and its
    /// [`Stats`]; updated with every item the stream yields (see [`Progress`]).
    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    /// Liveness statistics so far (a view of the [`progress`](Generation::progress)).
    pub fn stats(&self) -> Stats {
        self.progress.stats()
    }

    /// Whether this is the recorded outcome of an earlier call with the same
    /// [idempotency key](crate::GenerateRequest::idempotency_key): a stream of one
    /// terminal item, and nothing was sent.
    pub fn is_replay(&self) -> bool {
        self.replay
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
    /// [`Error::EventTooLarge`], each with the project id when it was known. To poll
    /// the project when the stream breaks instead of failing, see
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
        self.drive(on_event).await.map_err(|broken| broken.error)
    }

    /// Drives the stream to its end; on an error, also hands back what was gathered
    /// and the watcher (for recovery, which turns them and a polled project into an
    /// [`Outcome`]).
    pub(crate) async fn drive(
        mut self,
        mut on_event: impl FnMut(&Event),
    ) -> std::result::Result<Outcome, Broken> {
        let mut tally = Tally::default();
        while let Some(item) = self.next().await {
            match item {
                Ok(event) => {
                    on_event(&event);
                    if tally.event(event) {
                        return Ok(tally.outcome(self.take_progress()));
                    }
                }
                Err(error) => return Err(self.broken(error, tally)),
            }
        }
        Err(self.ended_early(tally))
    }

    /// What is left of a stream that ended with `error`.
    pub(crate) fn broken(mut self, error: Error, tally: Tally) -> Broken {
        Broken {
            error,
            outcome: tally.outcome(self.take_progress()),
            watcher: self.watcher.take(),
        }
    }

    /// What is left of a stream polled to its end before it was summed up: the
    /// stream always ends with a terminal item, so only a caller that read it all
    /// first gets here.
    pub(crate) fn ended_early(self, tally: Tally) -> Broken {
        let error = Error::Incomplete {
            events: self.progress.events(),
            context: crate::error::ErrorContext::of(
                self.progress.project_id().cloned(),
                self.progress.stats().attempts,
            ),
        }
        .with_journal_id(self.progress.journal_id());
        self.broken(error, tally)
    }

    fn take_progress(&mut self) -> Progress {
        std::mem::take(&mut self.progress)
    }

    /// The next item when it needs no I/O: an event from bytes already received, or
    /// the end of a closed stream (`Some(None)`). `None` means "poll the stream".
    /// Touches neither the body nor the timers, so it needs no runtime.
    pub(crate) fn next_buffered(&mut self) -> Option<Option<Result<Event>>> {
        if self.held.is_some() {
            return None;
        }
        if let Some(item) = self.reader.pop() {
            let item = self.on_item(item);
            if let Some(write) = self.write_for(&item) {
                self.held = Some(Box::new((write, Some(item))));
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
        self.body = None;
        self.idle = None;
        self.deadline = None;
        // Items decoded from the last bytes are still to be handed out: the span
        // counts them, so it ends with the last of them (`write_for`).
        if !self.span_ended && !self.reader.has_buffered() {
            self.span_ended = true;
            self.span.ended(
                self.progress.events(),
                if self.reader.is_finished() {
                    "terminal"
                } else {
                    "closed"
                },
            );
        }
    }

    fn on_data(&mut self, data: bytes::Bytes) {
        let now = Instant::now();
        self.progress.received(data.len(), now);
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
        self.disarm_timers();
    }

    /// Replaces the waker the timers hold by one that does nothing, once the body
    /// woke the stream: a waker keeps its task alive, and a stream held open
    /// between two reads (or handed from the task that opened it to another) must
    /// not keep the last task that waited on it, which may have ended, with all its
    /// memory. The timers are polled with the waiting task's waker again whenever
    /// the body is pending, before the stream answers `Pending`, so no timeout is
    /// missed.
    fn disarm_timers(&mut self) {
        if !std::mem::take(&mut self.timers_armed) {
            return;
        }
        let mut nobody = Context::from_waker(std::task::Waker::noop());
        for timer in [&mut self.idle, &mut self.deadline].into_iter().flatten() {
            // Ready or not: the idle timer was just reset, and the deadline is
            // checked against the clock on every turn.
            let _ = timer.as_mut().poll(&mut nobody);
        }
    }

    /// Book-keeping of an item just decoded (events are decoded as they are popped,
    /// not when their bytes arrive): an error gets the stream's facts, and the
    /// record takes the item.
    fn on_item(&mut self, item: Result<Event>) -> Result<Event> {
        let item = item.map_err(|error| {
            let stats = self.progress.stats();
            let error = match error {
                Error::Incomplete { context, .. } => Error::Incomplete {
                    events: self.progress.events(),
                    context,
                },
                Error::CreditsExhausted {
                    mut raw,
                    locally,
                    until,
                    context,
                } => {
                    if let Some(token) = &self.token {
                        token.redact(&mut raw);
                    }
                    Error::CreditsExhausted {
                        raw,
                        locally,
                        until,
                        context,
                    }
                }
                other => other,
            };
            error
                .with_project_id(self.progress.project_id())
                .with_attempts(stats.attempts)
                .with_journal_id(self.progress.journal_id())
        });
        // An event arrived with the last chunk received; an error ends the stream now.
        let at = match &item {
            Ok(_) => self.progress.last_byte().unwrap_or_else(Instant::now),
            Err(_) => Instant::now(),
        };
        let first = self.progress.stats().time_to_first_event.is_none();
        self.progress.apply_item(&item, at);
        if first {
            if let Some(after) = self.progress.stats().time_to_first_event {
                self.span.first_event(after);
            }
        }
        item
    }

    /// The watcher's write for `item`, if any: the project id became known, or the
    /// stream's end.
    fn write_for(&mut self, item: &Result<Event>) -> Option<Write> {
        let mut writes = Vec::new();
        if !self.id_reported {
            if let Some(id) = self.progress.project_id() {
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
            if let Some(watcher) = self.watcher.as_mut() {
                writes.extend(watcher.ended(item));
            }
            // Its slot, if it held one, is free from here on; a broken stream keeps
            // its watcher (with its journal entry) for recovery.
            if item.is_ok() || matches!(item, Err(Error::CreditsExhausted { .. })) {
                self.watcher = None;
            }
        }
        match writes.len() {
            0 => None,
            1 => writes.pop(),
            _ => Some(Box::pin(async move {
                let mut all = true;
                for write in writes {
                    all &= write.await;
                }
                all
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
                let Poll::Ready(written) = held.0.as_mut().poll(cx) else {
                    return Poll::Pending;
                };
                if !written {
                    this.progress.journal_failed();
                }
                if let Some(held) = this.held.take() {
                    match held.1 {
                        Some(item) => return Poll::Ready(Some(item)),
                        None => continue,
                    }
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
                    this.timers_armed = true;
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
        let held = self.held.as_ref().is_some_and(|held| held.1.is_some());
        let queued = self.reader.queued() + usize::from(held);
        (queued, self.body.is_none().then_some(queued))
    }
}

/// The summary of a successful generation, from [`Generation::finish`]: the
/// stream's record ([`Progress`]: phase, counts, project and journal ids, clock,
/// [`Stats`]), where the application is, and the files it touched.
///
/// What grows with the stream is `files`: each distinct path once, however often it
/// was created or modified; everything else has a fixed size.
///
/// Serialized (with `serde`) as `project_id`, `journal_id`, `app_url`, `files`,
/// `recovered` (the polled project, or `null`) and `progress`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Outcome {
    /// Where the application is served, from `stream_end` (or `project_created`, or
    /// the polled project after a recovery).
    pub app_url: Option<String>,
    /// Paths of the files created or modified, in order of first appearance, where
    /// the `file_created` events carried one.
    pub files: Vec<String>,
    /// The stream's record: [`Phase::Finished`](crate::Phase::Finished) after
    /// `stream_end`, [`Phase::Recovered`](crate::Phase::Recovered) after a
    /// recovery.
    pub progress: Progress,
    /// `Some` when the stream broke and the outcome comes from polling the project
    /// (see [`Client::finish_or_recover`](crate::Client::finish_or_recover)), or when
    /// a [resumed](crate::Client::resume) entry was polled; `None` when the stream
    /// ended with `stream_end`.
    pub recovered: Option<Project>,
}

impl Outcome {
    /// The project's id, when the stream or the call named it.
    pub fn project_id(&self) -> Option<&ProjectId> {
        self.progress.project_id()
    }

    /// The generation's entry in the client's [journal](crate::journal), when it
    /// keeps one.
    pub fn journal_id(&self) -> Option<&LocalId> {
        self.progress.journal_id()
    }

    /// Liveness statistics of the stream.
    pub fn stats(&self) -> Stats {
        self.progress.stats()
    }

    /// The outcome of a journal entry settled by polling its project.
    pub(crate) fn polled(progress: Progress, project: Project) -> Self {
        Outcome {
            app_url: project.app_url.clone(),
            files: Vec::new(),
            progress,
            recovered: Some(project),
        }
    }
}

impl Serialize for Outcome {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let mut state = serializer.serialize_struct("Outcome", 6)?;
        state.serialize_field("project_id", &self.project_id())?;
        state.serialize_field("journal_id", &self.journal_id())?;
        state.serialize_field("app_url", &self.app_url)?;
        state.serialize_field("files", &self.files)?;
        state.serialize_field("recovered", &self.recovered)?;
        state.serialize_field("progress", &self.progress)?;
        state.end()
    }
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
        Generation::new(reqwest::Body::from(body), &config, start(None))
    }

    /// What the client hands a new generation: sent now, once, no watcher.
    fn start(deadline: Option<Instant>) -> Start {
        Start {
            sent: Instant::now(),
            attempts: 1,
            slot_wait: Duration::ZERO,
            watcher: None,
            project_id: None,
            span: CallSpan::new("POST", "/agent/generate"),
            deadline,
            prefix: bytes::Bytes::new(),
            token: Token::new("lcp_test_0123456789").unwrap(),
        }
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
        let broken = generation.drive(|_| {}).await.err().unwrap();
        assert!(
            matches!(broken.error, Error::Incomplete { events: 1, .. }),
            "{:?}",
            broken.error
        );
        assert_eq!(broken.outcome.stats().events, 1);
    }

    /// A body that yields what the test sends, and is pending in between.
    struct Gated(tokio::sync::mpsc::UnboundedReceiver<bytes::Bytes>);

    impl http_body::Body for Gated {
        type Data = bytes::Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<std::result::Result<http_body::Frame<bytes::Bytes>, Self::Error>>>
        {
            self.0
                .poll_recv(cx)
                .map(|chunk| chunk.map(|c| Ok(http_body::Frame::data(c))))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_idle_timeout_still_fires_after_the_timers_let_go_of_a_waker() {
        let (send, chunks) = tokio::sync::mpsc::unbounded_channel();
        let config = StreamConfig {
            idle_timeout: Some(Duration::from_secs(1)),
            deadline: None,
            max_event_size: 1024,
        };
        let start = start(Some(Instant::now() + Duration::from_secs(60)));
        let mut generation = Generation::new(reqwest::Body::wrap(Gated(chunks)), &config, start);
        // Pending: the timers now hold this task's waker.
        let waited = tokio::time::timeout(Duration::from_millis(100), generation.next()).await;
        assert!(waited.is_err(), "nothing was sent yet");
        send.send(bytes::Bytes::from_static(
            b"data: {\"type\":\"tool_progress\"}\n\n",
        ))
        .unwrap();
        let first = generation.next().await;
        assert!(
            matches!(first, Some(Ok(Event::ToolProgress(_)))),
            "{first:?}"
        );
        // The data let the timers go of the waker; silence must still time out.
        let silent = Instant::now();
        let item = generation.next().await;
        assert!(
            matches!(
                item,
                Some(Err(Error::Timeout {
                    kind: TimeoutKind::Idle,
                    ..
                }))
            ),
            "{item:?}"
        );
        assert_eq!(silent.elapsed(), Duration::from_secs(1));
        drop(send);
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
