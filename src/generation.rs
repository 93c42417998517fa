//! The stream of one generation, its terminal rules, and its outcome.

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use http_body::Body as _;
use tokio::time::{Instant, Sleep};

use crate::error::TimeoutKind;
use crate::event::{decode_event, Decoded};
use crate::http::map_reqwest;
use crate::sse::{Decoder, Frame};
use crate::{Error, Event, ProjectId, Result};

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
/// An event that cannot be decoded is yielded as `Err(`[`Error::Decode`]`)` and the
/// stream goes on.
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
pub struct Generation {
    body: Option<reqwest::Body>,
    reader: EventReader,
    idle_timeout: Option<Duration>,
    idle: Option<Pin<Box<Sleep>>>,
    deadline: Option<Pin<Box<Sleep>>>,
}

/// Bytes in, typed items out: the SSE decoder plus the event rules of a generation
/// (terminal events, project id tracking). Everything but the I/O.
#[derive(Debug)]
pub struct EventReader {
    decoder: Decoder,
    state: State,
}

/// Everything the decoder's callback updates (kept apart from the decoder so both
/// can be borrowed at once).
#[derive(Debug)]
struct State {
    queue: VecDeque<Result<Event>>,
    project_id: Option<ProjectId>,
    events: u64,
    bytes: u64,
    /// A terminal item is queued or was yielded: nothing more is read.
    finished: bool,
}

impl fmt::Debug for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Generation")
            .field("project_id", &self.reader.state.project_id)
            .field("events", &self.reader.state.events)
            .field("bytes", &self.reader.state.bytes)
            .field("finished", &self.reader.state.finished)
            .finish_non_exhaustive()
    }
}

impl Generation {
    pub(crate) fn new(
        response: reqwest::Response,
        config: &StreamConfig,
        project_id: Option<ProjectId>,
    ) -> Self {
        let sleep = |d: Duration| Box::pin(tokio::time::sleep(d));
        Generation {
            body: Some(reqwest::Body::from(response)),
            reader: EventReader::new(config.max_event_size, project_id),
            idle_timeout: config.idle_timeout,
            idle: config.idle_timeout.map(sleep),
            deadline: config.deadline.map(sleep),
        }
    }

    /// The project's id, once known: from the call for a follow-up, from
    /// `project_created` (or `stream_end`) for a new project.
    pub fn project_id(&self) -> Option<&ProjectId> {
        self.reader.state.project_id.as_ref()
    }

    /// How many events were delivered so far.
    pub fn events(&self) -> u64 {
        self.reader.state.events
    }

    /// How many bytes of the body were received so far.
    pub fn bytes(&self) -> u64 {
        self.reader.state.bytes
    }

    /// The next item of the stream; the same as `StreamExt::next`, without the import.
    pub async fn next(&mut self) -> Option<Result<Event>> {
        poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }

    /// Drives the stream to its end and sums it up.
    ///
    /// # Errors
    ///
    /// The first error the stream yields: [`Error::CreditsExhausted`],
    /// [`Error::Incomplete`], [`Error::Timeout`], [`Error::Transport`],
    /// [`Error::Decode`] or [`Error::EventTooLarge`], each with the project id when it
    /// was known.
    pub async fn finish(mut self) -> Result<Outcome> {
        let mut files = Vec::new();
        let mut seen = HashSet::new();
        let mut app_url = None;
        while let Some(item) = self.next().await {
            match item? {
                Event::ProjectCreated(created) => app_url = created.app_url.or(app_url),
                Event::FileCreated(file) => {
                    if let Some(path) = file.path {
                        if seen.insert(path.clone()) {
                            files.push(path);
                        }
                    }
                }
                Event::StreamEnd(end) => {
                    return Ok(Outcome {
                        project_id: self.reader.state.project_id.take(),
                        app_url: end.app_url.or(app_url),
                        files,
                        events: self.reader.state.events,
                    })
                }
                _ => {}
            }
        }
        // The stream always ends with a terminal item; this is only reached if the
        // caller polled it to its end before calling `finish`.
        Err(Error::Incomplete {
            project_id: self.reader.state.project_id.take(),
            events: self.reader.state.events,
        })
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
    }

    fn on_data(&mut self, data: &[u8]) {
        if let (Some(idle), Some(limit)) = (self.idle.as_mut(), self.idle_timeout) {
            idle.as_mut().reset(Instant::now() + limit);
        }
        self.reader.feed(data);
        if self.reader.state.finished {
            self.close();
        }
    }
}

impl EventReader {
    /// A reader capping one event at `max_event_size` bytes; `project_id` is the id
    /// known before the stream starts (a follow-up's).
    pub fn new(max_event_size: usize, project_id: Option<ProjectId>) -> Self {
        EventReader {
            decoder: Decoder::new(max_event_size),
            state: State {
                queue: VecDeque::new(),
                project_id,
                events: 0,
                bytes: 0,
                finished: false,
            },
        }
    }

    /// Decodes one chunk of the body; its items are then available from
    /// [`EventReader::pop`]. Does nothing once a terminal item was produced.
    pub fn feed(&mut self, data: &[u8]) {
        if self.state.finished {
            return;
        }
        self.state.bytes += data.len() as u64;
        let state = &mut self.state;
        if let Err(too_large) = self.decoder.feed(data, &mut |frame| state.on_frame(frame)) {
            self.fail(Error::EventTooLarge {
                limit: too_large.limit,
                project_id: None,
            });
        }
    }

    /// The body ended: produces the last events and, without a terminal event,
    /// [`Error::Incomplete`].
    pub fn end(&mut self) {
        if self.state.finished {
            return;
        }
        let state = &mut self.state;
        if let Err(too_large) = self.decoder.finish(&mut |frame| state.on_frame(frame)) {
            return self.fail(Error::EventTooLarge {
                limit: too_large.limit,
                project_id: None,
            });
        }
        if !self.state.finished {
            let events = self.state.events;
            self.fail(Error::Incomplete {
                project_id: None,
                events,
            });
        }
    }

    /// The next decoded item, if any is waiting.
    pub fn pop(&mut self) -> Option<Result<Event>> {
        self.state.queue.pop_front()
    }

    /// Whether a terminal item was produced (it may still be waiting in the queue).
    pub fn is_finished(&self) -> bool {
        self.state.finished
    }

    /// Ends the stream with `error` after the items already queued.
    fn fail(&mut self, error: Error) {
        let error = error.with_project_id(self.state.project_id.as_ref());
        self.state.queue.push_back(Err(error));
        self.state.finished = true;
    }
}

impl State {
    fn on_frame(&mut self, frame: Frame<'_>) {
        if self.finished || frame.data.trim_ascii().is_empty() {
            return;
        }
        match decode_event(frame.data) {
            Ok(Decoded::Event(event)) => {
                self.events += 1;
                match &event {
                    Event::ProjectCreated(created) => {
                        self.project_id = Some(created.project_id.clone())
                    }
                    Event::StreamEnd(end) => {
                        if let Some(id) = &end.project_id {
                            self.project_id = Some(id.clone());
                        }
                        self.finished = true;
                    }
                    _ => {}
                }
                self.queue.push_back(Ok(event));
            }
            Ok(Decoded::CreditsExhausted(raw)) => {
                self.queue.push_back(Err(Error::CreditsExhausted {
                    project_id: self.project_id.clone(),
                    raw,
                }));
                self.finished = true;
            }
            Err(e) => self.queue.push_back(Err(
                Error::decode("event", e).with_project_id(self.project_id.as_ref())
            )),
        }
    }
}

impl Stream for Generation {
    type Item = Result<Event>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(item) = this.reader.pop() {
                return Poll::Ready(Some(item));
            }
            let Some(body) = this.body.as_mut() else {
                return Poll::Ready(None);
            };
            match Pin::new(body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        this.on_data(&data);
                    }
                }
                Poll::Ready(Some(Err(e))) => this.fail(map_reqwest(e, TimeoutKind::Idle)),
                Poll::Ready(None) => {
                    this.reader.end();
                    this.close();
                }
                Poll::Pending => {
                    if this
                        .idle
                        .as_mut()
                        .is_some_and(|s| s.as_mut().poll(cx).is_ready())
                    {
                        this.fail(Error::Timeout {
                            kind: TimeoutKind::Idle,
                            project_id: None,
                        });
                    } else if this
                        .deadline
                        .as_mut()
                        .is_some_and(|s| s.as_mut().poll(cx).is_ready())
                    {
                        this.fail(Error::Timeout {
                            kind: TimeoutKind::Deadline,
                            project_id: None,
                        });
                    } else {
                        return Poll::Pending;
                    }
                }
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let queued = self.reader.state.queue.len();
        (
            queued,
            if self.body.is_none() {
                Some(queued)
            } else {
                None
            },
        )
    }
}

/// The summary of a successful generation, from [`Generation::finish`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Outcome {
    /// The project's id, when the stream or the call named it.
    pub project_id: Option<ProjectId>,
    /// Where the application is served, from `stream_end` (or `project_created`).
    pub app_url: Option<String>,
    /// Paths of the files created or modified, in order of first appearance, where
    /// the `file_created` events carried one.
    pub files: Vec<String>,
    /// How many events the stream delivered.
    pub events: u64,
}
