//! The record of one generation: how far it is (a typed reducer over its events)
//! and how lively its stream is, kept in one place.
//!
//! Every program that shows a generation to a person folds the same events into the
//! same few facts (which phase, which percentage, how many files, is it stuck?).
//! [`Progress`] is that fold, and the stream's one record: a
//! [`Generation`](crate::Generation) keeps it up to date
//! ([`Generation::progress`](crate::Generation::progress)), and its
//! [`Outcome`](crate::Outcome) hands it over at the end; [`Stats`] is a view of it.
//! It is usable on its own over any sequence of events with [`Progress::apply`] and
//! [`Progress::apply_error`].
//!
//! Its clock is tokio's (`tokio::time::Instant`): a test that pauses time
//! (`tokio::time::pause`, feature `test-util` of tokio) moves [`Progress::stalled`],
//! [`Progress::elapsed`] and the [`Stats`] alike.

use std::fmt;
use std::time::Duration;

use serde::ser::{Serialize, SerializeStruct, Serializer};
use tokio::time::Instant;

use crate::error::Error;
use crate::event::{Event, FileCreated};
use crate::id::{LocalId, ProjectId};

/// The phase of a generation, following the documented order of its events.
///
/// A new project's stream is `project_created`, `container_progress`\*,
/// `container_ready`, then any number of `file_created` / `tool_progress`, then
/// `stream_end`; its phases are [`Waiting`](Phase::Waiting),
/// [`Provisioning`](Phase::Provisioning), [`Generating`](Phase::Generating),
/// [`Finished`](Phase::Finished). A follow-up has no container: its first
/// `file_created` or `tool_progress` moves it from `Waiting` straight to
/// `Generating`. A stream that ends with an error (`credits_exhausted`, a broken
/// connection, a timeout, ...) ends in [`Failed`](Phase::Failed); a broken stream
/// whose project was then polled to success (see
/// [`Client::finish_or_recover`](crate::Client::finish_or_recover)) ends in
/// [`Recovered`](Phase::Recovered).
///
/// Phases only move forward: an event that belongs to an earlier phase (a late
/// `container_progress`) updates the message but never moves the phase back, and
/// once ended the phase stays (but for `Failed` turning `Recovered`).
///
/// Serialized as `{"name": "provisioning", "percentage": 40.0}`, `{"name":
/// "failed", "kind": "incomplete"}`, or `{"name": "finished"}`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[non_exhaustive]
pub enum Phase {
    /// No event yet: the request was sent, the server has not answered with an event.
    #[default]
    Waiting,
    /// The server provisions the project's container: from `project_created`, through
    /// each `container_progress`, until `container_ready`.
    #[non_exhaustive]
    Provisioning {
        /// The percentage of the last `container_progress` that gave one, clamped to
        /// 0 to 100; `None` until one did.
        percentage: Option<f64>,
    },
    /// The AI agent writes the application: from `container_ready` (or, on a
    /// follow-up, the first `file_created` or `tool_progress`) until `stream_end`.
    Generating,
    /// `stream_end` arrived: the generation succeeded.
    Finished,
    /// The stream broke, and polling the project found that the generation
    /// succeeded.
    Recovered,
    /// The stream ended with an error (see [`Progress::apply_error`]).
    #[non_exhaustive]
    Failed {
        /// [`Error::kind`] of the error that ended it, e.g. `"credits_exhausted"`.
        kind: &'static str,
    },
}

impl Phase {
    /// The phase's name in snake_case (`"waiting"`, `"provisioning"`, `"generating"`,
    /// `"finished"`, `"recovered"`, `"failed"`): a stable label for logs and
    /// machine-readable output.
    pub fn as_str(&self) -> &'static str {
        match self {
            Phase::Waiting => "waiting",
            Phase::Provisioning { .. } => "provisioning",
            Phase::Generating => "generating",
            Phase::Finished => "finished",
            Phase::Recovered => "recovered",
            Phase::Failed { .. } => "failed",
        }
    }

    /// Whether the generation is over: [`Finished`](Phase::Finished),
    /// [`Recovered`](Phase::Recovered) or [`Failed`](Phase::Failed).
    pub fn is_ended(&self) -> bool {
        matches!(
            self,
            Phase::Finished | Phase::Recovered | Phase::Failed { .. }
        )
    }

    /// Whether the generation succeeded: [`Finished`](Phase::Finished) or
    /// [`Recovered`](Phase::Recovered).
    pub fn is_success(&self) -> bool {
        matches!(self, Phase::Finished | Phase::Recovered)
    }

    /// The order of the phases; every end shares the last rank.
    fn rank(&self) -> u8 {
        match self {
            Phase::Waiting => 0,
            Phase::Provisioning { .. } => 1,
            Phase::Generating => 2,
            Phase::Finished | Phase::Recovered | Phase::Failed { .. } => 3,
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Phase {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let fields = 1 + usize::from(matches!(
            self,
            Phase::Provisioning { .. } | Phase::Failed { .. }
        ));
        let mut state = serializer.serialize_struct("Phase", fields)?;
        state.serialize_field("name", self.as_str())?;
        match self {
            Phase::Provisioning { percentage } => {
                state.serialize_field("percentage", percentage)?
            }
            Phase::Failed { kind } => state.serialize_field("kind", kind)?,
            _ => {}
        }
        state.end()
    }
}

/// Liveness figures of a stream: a view of its [`Progress`]
/// ([`Progress::stats`], [`Generation::stats`](crate::Generation::stats),
/// [`Outcome::stats`](crate::Outcome::stats)).
///
/// Serialized with its durations in milliseconds (`time_to_first_event_ms`,
/// `longest_gap_ms`, `slot_wait_ms`).
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
    /// after a token refresh included; 0 for the recorded outcome of an earlier call
    /// with the same idempotency key.
    pub attempts: u32,
    /// Time spent waiting for a free slot before sending, with
    /// [`ClientBuilder::max_concurrent_generations`](crate::ClientBuilder::max_concurrent_generations).
    pub slot_wait: Duration,
    /// Writes to the client's [journal](crate::journal) about this stream that
    /// failed (each also logged): its entry stays unfinished, for resuming.
    pub journal_failures: u32,
}

impl Serialize for Stats {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut state = serializer.serialize_struct("Stats", 8)?;
        state.serialize_field("events", &self.events)?;
        state.serialize_field("malformed", &self.malformed)?;
        state.serialize_field("bytes", &self.bytes)?;
        state.serialize_field(
            "time_to_first_event_ms",
            &self.time_to_first_event.map(millis),
        )?;
        state.serialize_field("longest_gap_ms", &millis(self.longest_gap))?;
        state.serialize_field("attempts", &self.attempts)?;
        state.serialize_field("slot_wait_ms", &millis(self.slot_wait))?;
        state.serialize_field("journal_failures", &self.journal_failures)?;
        state.end()
    }
}

/// Whole milliseconds, saturating.
pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// How far a generation is, and how lively its stream: its [`Phase`], the files and
/// tool steps so far, the last message, the clock (elapsed time, time since the
/// last event, stall), and the [`Stats`] of its stream. The one record of a
/// generation: everything else ([`Stats`], [`Outcome`](crate::Outcome)'s project
/// id) is a view of it.
///
/// A [`Generation`](crate::Generation) keeps one up to date with every item it yields
/// ([`Generation::progress`](crate::Generation::progress)); its clock starts when the
/// request was sent, and each event is timed by the arrival of its bytes. On its own,
/// start from [`Progress::new`] (the clock starts with the first event) or
/// [`Progress::started`], then [`apply`](Progress::apply) each event and
/// [`apply_error`](Progress::apply_error) the error that ends the stream, if any
/// (`credits_exhausted` arrives as `Err(`[`Error::CreditsExhausted`]`)`).
///
/// [`Event::Unknown`] and [`Event::Malformed`] change nothing but the counters
/// ([`events`](Progress::events), [`unknown_events`](Progress::unknown_events),
/// [`malformed_events`](Progress::malformed_events)): in particular they do not
/// count as a sign of life, so a heartbeat of a type this version does not know, or
/// a `data: ping`, does not hide a stall. Keep-alive comments are not events at
/// all: they keep the connection within the client's idle timeout (which watches
/// bytes) while [`since_last_event`](Progress::since_last_event) keeps growing.
///
/// Applying an event allocates nothing beyond the buffers of the last path and the
/// last message, which are reused.
///
/// Serialized (with `serde`) as an object of its facts, durations in milliseconds
/// as seen when serialized: `phase`, `project_id`, `journal_id`, `events`,
/// `unknown_events`, `malformed_events`, `files_created`, `files_modified`,
/// `tool_steps`, `last_path`, `message`, `elapsed_ms`, `since_last_event_ms`,
/// `stats`.
///
/// ```no_run
/// use std::time::Duration;
///
/// # async fn run() -> laracopilot::Result<()> {
/// let client = laracopilot::Client::from_env()?;
/// let mut generation = client.generate("Build a task management app").await?;
/// loop {
///     // Wake up at least every 10 s, so that a quiet stream is noticed.
///     match tokio::time::timeout(Duration::from_secs(10), generation.next()).await {
///         Ok(Some(item)) => drop(item?),
///         Ok(None) => break,
///         Err(_quiet) => {}
///     }
///     let progress = generation.progress();
///     println!("{}: {} files, last {:?}", progress.phase(), progress.files(), progress.last_path());
///     if progress.stalled(Duration::from_secs(120)) {
///         eprintln!("no event for {:?}", progress.since_last_event());
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
#[must_use]
pub struct Progress {
    phase: Phase,
    phase_since: Option<Instant>,
    start: Option<Instant>,
    last_event: Option<Instant>,
    project_id: Option<ProjectId>,
    journal_id: Option<LocalId>,
    files_created: u64,
    files_modified: u64,
    last_path: Option<String>,
    tool_steps: u64,
    message: Option<String>,
    events: u64,
    unknown: u64,
    malformed: u64,
    stream: Liveness,
}

/// The stream's own figures, behind [`Stats`].
#[derive(Debug, Clone, PartialEq, Default)]
struct Liveness {
    bytes: u64,
    /// When the last chunk arrived.
    last_byte: Option<Instant>,
    first_event: Option<Duration>,
    longest_gap: Duration,
    attempts: u32,
    slot_wait: Duration,
    journal_failures: u32,
}

impl Progress {
    /// A progress with nothing applied yet, whose clock starts with the first event;
    /// the same as [`Progress::default`], usable in a `const` or `static`.
    pub const fn new() -> Self {
        Progress {
            phase: Phase::Waiting,
            phase_since: None,
            start: None,
            last_event: None,
            project_id: None,
            journal_id: None,
            files_created: 0,
            files_modified: 0,
            last_path: None,
            tool_steps: 0,
            message: None,
            events: 0,
            unknown: 0,
            malformed: 0,
            stream: Liveness {
                bytes: 0,
                last_byte: None,
                first_event: None,
                longest_gap: Duration::ZERO,
                attempts: 0,
                slot_wait: Duration::ZERO,
                journal_failures: 0,
            },
        }
    }

    /// A progress whose clock starts now (typically when a request is sent), so that
    /// a stream that never sends an event is seen to stall.
    pub fn started() -> Self {
        Progress::starting_at(Instant::now())
    }

    /// A progress whose clock started at `start`.
    pub(crate) fn starting_at(start: Instant) -> Self {
        Progress {
            start: Some(start),
            phase_since: Some(start),
            ..Progress::new()
        }
    }

    /// The record of a stream that opens: the call's facts.
    pub(crate) fn of_call(
        sent: Instant,
        project_id: Option<ProjectId>,
        journal_id: Option<LocalId>,
        attempts: u32,
        slot_wait: Duration,
    ) -> Self {
        let mut progress = Progress::starting_at(sent);
        progress.project_id = project_id;
        progress.journal_id = journal_id;
        progress.stream.attempts = attempts;
        progress.stream.slot_wait = slot_wait;
        progress.stream.last_byte = Some(Instant::now());
        progress
    }

    /// Applies `event`, as if it arrived now:
    ///
    /// - `project_created`: the project id; phase
    ///   [`Provisioning`](Phase::Provisioning) without a percentage.
    /// - `container_progress`: the message (when not empty) and the percentage (when
    ///   given; a step without one keeps the last); phase `Provisioning`.
    /// - `container_ready`: the message; phase [`Generating`](Phase::Generating).
    /// - `file_created`: one more file created, or modified when its `action` is
    ///   `"modified"` or `"updated"` (ASCII case ignored; any other action, or none,
    ///   counts as created, as the event's name says), and the path when it has one;
    ///   phase `Generating`.
    /// - `tool_progress`: one more tool step, the message when it has one; phase
    ///   `Generating`.
    /// - `stream_end`: the project id when given; phase
    ///   [`Finished`](Phase::Finished).
    /// - [`Event::Unknown`], [`Event::Malformed`]: only their counters.
    ///
    /// Every event but the last two also marks the time of the last event.
    pub fn apply(&mut self, event: &Event) {
        self.apply_at(event, Instant::now());
    }

    /// Applies `event`, which arrived `at`.
    fn apply_at(&mut self, event: &Event, at: Instant) {
        self.events = self.events.saturating_add(1);
        match event {
            Event::Unknown(_) => {
                self.unknown = self.unknown.saturating_add(1);
                return;
            }
            Event::Malformed(_) => {
                self.malformed = self.malformed.saturating_add(1);
                return;
            }
            _ => {}
        }
        self.start.get_or_insert(at);
        self.last_event = Some(at);
        match event {
            Event::ProjectCreated(created) => {
                self.project_id = Some(created.project_id.clone());
                self.advance(Phase::Provisioning { percentage: None }, at);
            }
            Event::ContainerProgress(step) => {
                self.set_message(&step.message);
                let given = step.percentage.map(|p| p.clamp(0.0, 100.0));
                match &mut self.phase {
                    Phase::Provisioning { percentage } => {
                        if given.is_some() {
                            *percentage = given;
                        }
                    }
                    _ => self.advance(Phase::Provisioning { percentage: given }, at),
                }
            }
            Event::ContainerReady(ready) => {
                self.set_message(&ready.message);
                self.advance(Phase::Generating, at);
            }
            Event::FileCreated(file) => {
                if is_modification(file) {
                    self.files_modified = self.files_modified.saturating_add(1);
                } else {
                    self.files_created = self.files_created.saturating_add(1);
                }
                if let Some(path) = &file.path {
                    set(&mut self.last_path, path);
                }
                self.advance(Phase::Generating, at);
            }
            Event::ToolProgress(step) => {
                self.tool_steps = self.tool_steps.saturating_add(1);
                if let Some(message) = &step.message {
                    self.set_message(message);
                }
                self.advance(Phase::Generating, at);
            }
            Event::StreamEnd(end) => {
                if let Some(id) = &end.project_id {
                    self.project_id = Some(id.clone());
                }
                self.advance(Phase::Finished, at);
            }
            Event::Unknown(_) | Event::Malformed(_) => {}
        }
    }

    /// Records the error that ended the stream, as if now: the phase becomes
    /// [`Failed`](Phase::Failed) with [`Error::kind`] (`"credits_exhausted"` for the
    /// `credits_exhausted` event), unless the generation had already ended, and the
    /// error's project id is kept when none was known. An error is not an event: the
    /// counters and the time of the last event stay.
    pub fn apply_error(&mut self, error: &Error) {
        self.apply_error_at(error, Instant::now());
    }

    fn apply_error_at(&mut self, error: &Error, at: Instant) {
        self.start.get_or_insert(at);
        if self.project_id.is_none() {
            self.project_id = error.project_id().cloned();
        }
        self.advance(Phase::Failed { kind: error.kind() }, at);
    }

    /// Applies one item of a generation stream, which arrived `at`.
    pub(crate) fn apply_item(&mut self, item: &Result<Event, Error>, at: Instant) {
        match item {
            Ok(event) => {
                self.apply_at(event, at);
                if self.stream.first_event.is_none() {
                    let sent = self.start.unwrap_or(at);
                    self.stream.first_event = Some(at.saturating_duration_since(sent));
                }
            }
            Err(error) => self.apply_error_at(error, at),
        }
    }

    /// A chunk of `bytes` bytes of the stream arrived now.
    pub(crate) fn received(&mut self, bytes: usize, now: Instant) {
        self.stream.bytes = self.stream.bytes.saturating_add(bytes as u64);
        if let Some(last) = self.stream.last_byte {
            let gap = now.saturating_duration_since(last);
            self.stream.longest_gap = self.stream.longest_gap.max(gap);
        }
        self.stream.last_byte = Some(now);
    }

    /// When the last chunk arrived (or the stream opened).
    pub(crate) fn last_byte(&self) -> Option<Instant> {
        self.stream.last_byte
    }

    /// A write to the journal about this stream failed.
    pub(crate) fn journal_failed(&mut self) {
        self.stream.journal_failures = self.stream.journal_failures.saturating_add(1);
    }

    /// The stream broke, and the project polled afterwards succeeded.
    pub(crate) fn recovered(&mut self) {
        if matches!(self.phase, Phase::Failed { .. }) || !self.phase.is_ended() {
            self.phase = Phase::Recovered;
            self.phase_since = Some(Instant::now());
        }
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// When the current phase began: the event (or error) that started it, or the
    /// start of the clock while [`Waiting`](Phase::Waiting); `None` before either.
    pub fn phase_since(&self) -> Option<std::time::Instant> {
        self.phase_since.map(Instant::into_std)
    }

    /// When the clock started: when the request was sent, or the first event.
    pub fn start_time(&self) -> Option<std::time::Instant> {
        self.start.map(Instant::into_std)
    }

    /// When the last event arrived (not counting unknown and malformed ones).
    pub fn last_event_time(&self) -> Option<std::time::Instant> {
        self.last_event.map(Instant::into_std)
    }

    /// The project's id, once known: from `project_created` or `stream_end`, from the
    /// call for a follow-up, or from the error that ended the stream.
    pub fn project_id(&self) -> Option<&ProjectId> {
        self.project_id.as_ref()
    }

    /// The generation's entry in the client's [journal](crate::journal), when it
    /// keeps one.
    pub fn journal_id(&self) -> Option<&LocalId> {
        self.journal_id.as_ref()
    }

    /// `file_created` events counted as created (see [`apply`](Progress::apply)).
    /// A path reported twice counts twice; [`Outcome::files`](crate::Outcome::files)
    /// holds the distinct paths.
    pub fn files_created(&self) -> u64 {
        self.files_created
    }

    /// `file_created` events counted as modified (`action` `"modified"` or
    /// `"updated"`).
    pub fn files_modified(&self) -> u64 {
        self.files_modified
    }

    /// Every `file_created` event: created plus modified.
    pub fn files(&self) -> u64 {
        self.files_created.saturating_add(self.files_modified)
    }

    /// The path of the last `file_created` event that carried one.
    pub fn last_path(&self) -> Option<&str> {
        self.last_path.as_deref()
    }

    /// `tool_progress` events so far.
    pub fn tool_steps(&self) -> u64 {
        self.tool_steps
    }

    /// The last non-empty message of a `container_progress`, `container_ready` or
    /// `tool_progress` event.
    pub fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }

    /// Every event applied, unknown and malformed ones included (errors are not
    /// events).
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Of the events, those of a type this version does not know
    /// ([`Event::Unknown`]).
    pub fn unknown_events(&self) -> u64 {
        self.unknown
    }

    /// Of the events, those the SDK could not make sense of ([`Event::Malformed`]).
    pub fn malformed_events(&self) -> u64 {
        self.malformed
    }

    /// The liveness figures of the stream.
    pub fn stats(&self) -> Stats {
        Stats {
            events: self.events,
            malformed: self.malformed,
            bytes: self.stream.bytes,
            time_to_first_event: self.stream.first_event,
            longest_gap: self.stream.longest_gap,
            attempts: self.stream.attempts,
            slot_wait: self.stream.slot_wait,
            journal_failures: self.stream.journal_failures,
        }
    }

    /// Time since the start of the clock; once the generation ended, its whole
    /// duration (it no longer grows). Zero before the clock started.
    #[must_use]
    pub fn elapsed(&self) -> Duration {
        self.elapsed_at(Instant::now())
    }

    fn elapsed_at(&self, now: Instant) -> Duration {
        let Some(start) = self.start else {
            return Duration::ZERO;
        };
        let end = match (self.phase.is_ended(), self.phase_since) {
            (true, Some(ended)) => ended,
            _ => now,
        };
        end.saturating_duration_since(start)
    }

    /// Time since the last event (unknown and malformed ones do not count), or since
    /// the start of the clock when there was none yet; zero before the clock
    /// started. Unlike the client's idle timeout, which watches bytes, this grows
    /// while only keep-alives arrive.
    #[must_use]
    pub fn since_last_event(&self) -> Duration {
        self.since_last_event_at(Instant::now())
    }

    fn since_last_event_at(&self, now: Instant) -> Duration {
        self.last_event
            .or(self.start)
            .map_or(Duration::ZERO, |last| now.saturating_duration_since(last))
    }

    /// Whether the generation is still running and no event arrived for longer than
    /// `threshold` ([`since_last_event`](Progress::since_last_event)). Never true
    /// before the clock started, after the end, or for `Duration::MAX`.
    #[must_use]
    pub fn stalled(&self, threshold: Duration) -> bool {
        self.stalled_at(threshold, Instant::now())
    }

    fn stalled_at(&self, threshold: Duration, now: Instant) -> bool {
        !self.phase.is_ended()
            && (self.last_event.is_some() || self.start.is_some())
            && self.since_last_event_at(now) > threshold
    }

    /// Moves to `phase` if it comes later than the current one.
    fn advance(&mut self, phase: Phase, at: Instant) {
        if phase.rank() > self.phase.rank() {
            self.phase = phase;
            self.phase_since = Some(at);
        }
    }

    fn set_message(&mut self, message: &str) {
        if !message.is_empty() {
            set(&mut self.message, message);
        }
    }
}

impl Serialize for Progress {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let now = Instant::now();
        let mut state = serializer.serialize_struct("Progress", 14)?;
        state.serialize_field("phase", &self.phase)?;
        state.serialize_field("project_id", &self.project_id)?;
        state.serialize_field("journal_id", &self.journal_id)?;
        state.serialize_field("events", &self.events)?;
        state.serialize_field("unknown_events", &self.unknown)?;
        state.serialize_field("malformed_events", &self.malformed)?;
        state.serialize_field("files_created", &self.files_created)?;
        state.serialize_field("files_modified", &self.files_modified)?;
        state.serialize_field("tool_steps", &self.tool_steps)?;
        state.serialize_field("last_path", &self.last_path)?;
        state.serialize_field("message", &self.message)?;
        state.serialize_field("elapsed_ms", &millis(self.elapsed_at(now)))?;
        state.serialize_field(
            "since_last_event_ms",
            &millis(self.since_last_event_at(now)),
        )?;
        state.serialize_field("stats", &self.stats())?;
        state.end()
    }
}

/// Whether a `file_created` event reports a modification rather than a new file.
fn is_modification(file: &FileCreated) -> bool {
    file.action.as_deref().is_some_and(|action| {
        action.eq_ignore_ascii_case("modified") || action.eq_ignore_ascii_case("updated")
    })
}

/// Replaces the text in `slot`, reusing its buffer.
fn set(slot: &mut Option<String>, value: &str) {
    match slot {
        Some(text) => {
            text.clear();
            text.push_str(value);
        }
        None => *slot = Some(value.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{decode_event, Decoded};

    fn event(json: &str) -> Event {
        match decode_event(json) {
            Decoded::Event(event) => event,
            Decoded::CreditsExhausted(_) => panic!("not an event: {json}"),
        }
    }

    /// `t0 + seconds`.
    fn at(t0: Instant, seconds: u64) -> Instant {
        t0 + Duration::from_secs(seconds)
    }

    const DOCUMENTED: [&str; 4] = [
        r#"{"type":"project_created","project_id":"abc123","app_url":"https://abc123.laracopilot.com"}"#,
        r#"{"type":"container_progress","message":"Installing Laravel...","percentage":40}"#,
        r#"{"type":"container_ready","message":"Container ready. Starting AI generation..."}"#,
        r#"{"type":"stream_end","project_id":"abc123","app_url":"https://abc123.laracopilot.com"}"#,
    ];

    #[test]
    fn a_new_project_goes_through_every_phase_in_the_documented_order() {
        let t0 = Instant::now();
        let mut progress = Progress::starting_at(t0);
        assert_eq!(progress.phase(), Phase::Waiting);
        assert_eq!(progress.phase_since, Some(t0));

        progress.apply_at(&event(DOCUMENTED[0]), at(t0, 1));
        assert_eq!(progress.phase(), Phase::Provisioning { percentage: None });
        assert_eq!(progress.project_id().map(ProjectId::as_str), Some("abc123"));
        assert_eq!(progress.phase_since, Some(at(t0, 1)));

        progress.apply_at(&event(DOCUMENTED[1]), at(t0, 3));
        assert_eq!(
            progress.phase(),
            Phase::Provisioning {
                percentage: Some(40.0)
            }
        );
        assert_eq!(progress.message(), Some("Installing Laravel..."));
        assert_eq!(progress.phase_since, Some(at(t0, 1)), "same phase");

        progress.apply_at(&event(DOCUMENTED[2]), at(t0, 5));
        assert_eq!(progress.phase(), Phase::Generating);
        assert_eq!(progress.phase_since, Some(at(t0, 5)));
        assert_eq!(
            progress.message(),
            Some("Container ready. Starting AI generation...")
        );

        progress.apply_at(
            &event(r#"{"type":"tool_progress","tool":"write_file","message":"Writing app/Models/Task.php"}"#),
            at(t0, 6),
        );
        progress.apply_at(
            &event(r#"{"type":"file_created","path":"app/Models/Task.php","action":"created"}"#),
            at(t0, 7),
        );
        progress.apply_at(
            &event(r#"{"type":"file_created","path":"routes/web.php","action":"modified"}"#),
            at(t0, 8),
        );
        assert_eq!(progress.tool_steps(), 1);
        assert_eq!(
            (progress.files_created(), progress.files_modified()),
            (1, 1)
        );
        assert_eq!(progress.files(), 2);
        assert_eq!(progress.last_path(), Some("routes/web.php"));
        assert_eq!(progress.message(), Some("Writing app/Models/Task.php"));
        assert_eq!(progress.elapsed_at(at(t0, 8)), Duration::from_secs(8));

        progress.apply_at(&event(DOCUMENTED[3]), at(t0, 10));
        assert_eq!(progress.phase(), Phase::Finished);
        assert!(progress.phase().is_ended());
        assert_eq!(progress.events(), 7);
        assert_eq!(
            progress.elapsed_at(at(t0, 100)),
            Duration::from_secs(10),
            "the clock stops at the end"
        );
        assert!(!progress.stalled_at(Duration::ZERO, at(t0, 100)));
    }

    #[test]
    fn a_follow_up_goes_straight_to_generating() {
        let t0 = Instant::now();
        let mut progress =
            Progress::of_call(t0, Some(ProjectId::from("abc123")), None, 1, Duration::ZERO);
        assert_eq!(progress.project_id().map(ProjectId::as_str), Some("abc123"));
        progress.apply_at(
            &event(r#"{"type":"file_created","path":"resources/css/app.css"}"#),
            at(t0, 2),
        );
        assert_eq!(progress.phase(), Phase::Generating);
        assert_eq!(progress.phase_since, Some(at(t0, 2)));
        assert_eq!(progress.files_created(), 1, "no action counts as created");
        progress.apply_at(
            &event(r#"{"type":"stream_end","app_url":"https://abc123.laracopilot.com"}"#),
            at(t0, 3),
        );
        assert_eq!(progress.phase(), Phase::Finished);
        assert_eq!(progress.project_id().map(ProjectId::as_str), Some("abc123"));
    }

    #[test]
    fn phases_never_move_back() {
        let t0 = Instant::now();
        let mut progress = Progress::default();
        progress.apply_at(&event(DOCUMENTED[2]), t0);
        progress.apply_at(&event(DOCUMENTED[1]), at(t0, 1));
        assert_eq!(progress.phase(), Phase::Generating);
        assert_eq!(progress.message(), Some("Installing Laravel..."));
        progress.apply_at(&event(DOCUMENTED[3]), at(t0, 2));
        progress.apply_at(&event(DOCUMENTED[0]), at(t0, 3));
        assert_eq!(progress.phase(), Phase::Finished);
    }

    #[test]
    fn unknown_and_malformed_events_change_only_the_counters() {
        let t0 = Instant::now();
        let mut progress = Progress::default();
        progress.apply_at(&event(DOCUMENTED[0]), t0);
        progress.apply_at(&event(DOCUMENTED[1]), at(t0, 1));
        let before = progress.clone();
        for (i, data) in [
            r#"{"type":"agent_thinking","message":"Hmm"}"#,
            "ping",
            r#"{"type":"project_created"}"#,
            r#"{"no":"type"}"#,
        ]
        .into_iter()
        .enumerate()
        {
            progress.apply_at(&event(data), at(t0, 2 + i as u64));
        }
        assert_eq!(progress.events(), 6);
        assert_eq!(progress.unknown_events(), 1);
        assert_eq!(progress.malformed_events(), 3);
        let mut expected = before;
        expected.events = 6;
        expected.unknown = 1;
        expected.malformed = 3;
        assert_eq!(progress, expected, "nothing else changed");
        assert_eq!(progress.last_event, Some(at(t0, 1)));
    }

    #[test]
    fn a_quiet_stream_stalls_while_keepalive_events_do_not_count() {
        let t0 = Instant::now();
        let mut progress = Progress::starting_at(t0);
        let threshold = Duration::from_secs(30);
        assert!(!progress.stalled_at(threshold, at(t0, 30)));
        assert!(
            progress.stalled_at(threshold, at(t0, 31)),
            "no event at all since the start"
        );
        progress.apply_at(&event(DOCUMENTED[0]), at(t0, 31));
        assert!(!progress.stalled_at(threshold, at(t0, 40)));
        progress.apply_at(&event("ping"), at(t0, 60));
        progress.apply_at(&event(r#"{"type":"heartbeat"}"#), at(t0, 61));
        assert_eq!(
            progress.since_last_event_at(at(t0, 62)),
            Duration::from_secs(31)
        );
        assert!(progress.stalled_at(threshold, at(t0, 62)));
        progress.apply_at(&event(DOCUMENTED[1]), at(t0, 63));
        assert!(!progress.stalled_at(threshold, at(t0, 63)));
    }

    #[test]
    fn without_a_start_nothing_stalls_or_elapses() {
        let progress = Progress::new();
        let later = at(Instant::now(), 3600);
        assert_eq!(progress, Progress::default());
        assert!(!progress.stalled_at(Duration::ZERO, later));
        assert_eq!(progress.elapsed_at(later), Duration::ZERO);
        assert_eq!(progress.since_last_event_at(later), Duration::ZERO);
    }

    #[test]
    fn credits_exhausted_marks_the_generation_failed() {
        let t0 = Instant::now();
        let mut progress = Progress::starting_at(t0);
        progress.apply_at(&event(DOCUMENTED[0]), at(t0, 1));
        progress.apply_at(&event(DOCUMENTED[2]), at(t0, 2));
        let error = Error::CreditsExhausted {
            raw: r#"{"type":"credits_exhausted"}"#.into(),
            locally: false,
            until: None,
            context: crate::error::ErrorContext::of(Some(ProjectId::from("abc123")), 1),
        };
        progress.apply_error_at(&error, at(t0, 4));
        assert_eq!(
            progress.phase(),
            Phase::Failed {
                kind: "credits_exhausted"
            }
        );
        assert_eq!(progress.phase().as_str(), "failed");
        assert_eq!(progress.events(), 2, "an error is not an event");
        assert_eq!(progress.elapsed_at(at(t0, 50)), Duration::from_secs(4));
        assert!(!progress.stalled_at(Duration::ZERO, at(t0, 50)));
    }

    #[test]
    fn an_error_after_the_end_changes_nothing_and_an_error_names_the_project() {
        let t0 = Instant::now();
        let mut progress = Progress::default();
        let error = Error::Incomplete {
            events: 0,
            context: crate::error::ErrorContext::of(Some(ProjectId::from("p9")), 1),
        };
        progress.apply_error_at(&error, t0);
        assert_eq!(progress.phase(), Phase::Failed { kind: "incomplete" });
        assert_eq!(progress.project_id().map(ProjectId::as_str), Some("p9"));

        let mut finished = Progress::default();
        finished.apply_at(&event(DOCUMENTED[3]), t0);
        finished.apply_error_at(&error, at(t0, 1));
        assert_eq!(finished.phase(), Phase::Finished);
        assert_eq!(finished.phase_since, Some(t0));
    }

    #[test]
    fn percentages_are_clamped_and_a_step_without_one_keeps_the_last() {
        let mut progress = Progress::default();
        progress.apply(&event(
            r#"{"type":"container_progress","message":"a","percentage":140}"#,
        ));
        assert_eq!(
            progress.phase(),
            Phase::Provisioning {
                percentage: Some(100.0)
            }
        );
        progress.apply(&event(
            r#"{"type":"container_progress","message":"b","percentage":-5}"#,
        ));
        progress.apply(&event(r#"{"type":"container_progress","message":""}"#));
        assert_eq!(
            progress.phase(),
            Phase::Provisioning {
                percentage: Some(0.0)
            }
        );
        assert_eq!(progress.message(), Some("b"), "an empty message is skipped");
    }

    #[test]
    fn file_actions_map_to_created_or_modified() {
        let mut progress = Progress::default();
        for action in [
            r#""created""#,
            r#""Modified""#,
            r#""updated""#,
            r#""deleted""#,
            "7",
        ] {
            progress.apply(&event(&format!(
                r#"{{"type":"file_created","path":"x","action":{action}}}"#
            )));
        }
        progress.apply(&event(r#"{"type":"file_created"}"#));
        assert_eq!(
            (progress.files_created(), progress.files_modified()),
            (4, 2)
        );
        assert_eq!(
            progress.last_path(),
            Some("x"),
            "a file without a path keeps the last"
        );
    }

    #[test]
    fn duration_max_thresholds_and_far_instants_never_panic() {
        let t0 = Instant::now();
        let mut progress = Progress::starting_at(t0);
        assert!(!progress.stalled_at(Duration::MAX, t0));
        let far = t0.checked_add(Duration::from_secs(u64::MAX / 4));
        if let Some(far) = far {
            assert!(!progress.stalled_at(Duration::MAX, far));
            assert!(progress.stalled_at(Duration::ZERO, far));
        }
        // Instants out of order saturate to zero instead of panicking.
        progress.apply_at(&event(DOCUMENTED[0]), at(t0, 10));
        assert_eq!(progress.since_last_event_at(t0), Duration::ZERO);
        assert_eq!(progress.elapsed_at(t0), Duration::ZERO);
        assert!(!progress.stalled_at(Duration::MAX, at(t0, 10)));
        assert!(!progress.stalled(Duration::MAX));
    }

    #[test]
    fn applying_reuses_the_text_buffers() {
        let mut progress = Progress::default();
        let long = r#"{"type":"file_created","path":"resources/views/tasks/index.blade.php"}"#;
        progress.apply(&event(long));
        let buffer = progress.last_path.as_ref().map(|p| p.as_ptr());
        progress.apply(&event(r#"{"type":"file_created","path":"routes/web.php"}"#));
        assert_eq!(progress.last_path.as_ref().map(|p| p.as_ptr()), buffer);
        assert_eq!(progress.last_path(), Some("routes/web.php"));
    }

    #[test]
    fn progress_and_stats_serialize_their_facts() {
        let t0 = Instant::now();
        let mut progress = Progress::of_call(
            t0,
            None,
            Some(LocalId::from("lcj-7")),
            2,
            Duration::from_millis(1500),
        );
        progress.received(100, t0 + Duration::from_millis(20));
        progress.apply_item(&Ok(event(DOCUMENTED[0])), at(t0, 1));
        progress.apply_item(&Ok(event(DOCUMENTED[1])), at(t0, 2));
        let json = serde_json::to_value(&progress).unwrap();
        assert_eq!(
            json["phase"],
            serde_json::json!({"name": "provisioning", "percentage": 40.0})
        );
        assert_eq!(json["project_id"], "abc123");
        assert_eq!(json["journal_id"], "lcj-7");
        assert_eq!(json["events"], 2);
        assert_eq!(json["message"], "Installing Laravel...");
        assert_eq!(json["stats"]["bytes"], 100);
        assert_eq!(json["stats"]["attempts"], 2);
        assert_eq!(json["stats"]["slot_wait_ms"], 1500);
        assert_eq!(json["stats"]["time_to_first_event_ms"], 1000);
        assert_eq!(json["stats"]["journal_failures"], 0);
        let failed = Phase::Failed { kind: "incomplete" };
        assert_eq!(
            serde_json::to_value(failed).unwrap(),
            serde_json::json!({"name": "failed", "kind": "incomplete"})
        );
        assert_eq!(
            serde_json::to_value(Phase::Finished).unwrap(),
            serde_json::json!({"name": "finished"})
        );
    }

    #[tokio::test(start_paused = true)]
    async fn paused_time_moves_stalls_elapsed_time_and_stats_alike() {
        let mut progress = Progress::of_call(Instant::now(), None, None, 1, Duration::ZERO);
        let threshold = Duration::from_secs(120);
        tokio::time::advance(Duration::from_secs(5)).await;
        progress.received(10, Instant::now());
        progress.apply_item(&Ok(event(DOCUMENTED[0])), Instant::now());
        assert!(!progress.stalled(threshold));
        tokio::time::advance(Duration::from_secs(121)).await;
        assert!(progress.stalled(threshold), "the paused clock was advanced");
        assert_eq!(progress.since_last_event(), Duration::from_secs(121));
        assert_eq!(progress.elapsed(), Duration::from_secs(126));
        progress.received(10, Instant::now());
        assert_eq!(progress.stats().longest_gap, Duration::from_secs(121));
        assert_eq!(
            progress.stats().time_to_first_event,
            Some(Duration::from_secs(5))
        );
    }

    #[test]
    fn a_recovered_generation_is_a_success_not_a_failure() {
        let mut progress = Progress::default();
        let error = Error::Incomplete {
            events: 0,
            context: crate::error::ErrorContext::of(Some(ProjectId::from("p9")), 1),
        };
        progress.apply_error(&error);
        assert!(!progress.phase().is_success());
        progress.recovered();
        assert_eq!(progress.phase(), Phase::Recovered);
        assert!(progress.phase().is_success() && progress.phase().is_ended());
    }
}
